"""index.html shows what it is given as text, never as markup."""

from __future__ import annotations

from pathlib import Path

from sn_platform.inference.report import write_index

HOSTILE = "<script>alert('x')</script>"


def test_every_inserted_string_is_escaped(tmp_path):
    rows = [{"participant_id": f"sub-{HOSTILE}", "group": f"'><img src=x onerror={HOSTILE}>",
             "qc_flag": HOSTILE, "sn_volume_mm3": 412.5}]  # fmt: skip
    errors = [{"participant_id": f"sub-{HOSTILE}", "reason": f"{HOSTILE}: bad & broken"}]
    figure = tmp_path / "figures" / "sub-x'><script>_qc.png"
    write_index(tmp_path, rows, errors, [figure])
    page = (tmp_path / "index.html").read_text()
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "bad &amp; broken" in page and "412.5" in page
    assert "sub-x&#x27;&gt;&lt;script&gt;_qc.png" in page
    assert Path(tmp_path / "index.html").exists()


def test_with_sessions_the_cohort_counts_scans_and_each_participant_once(tmp_path):
    visits = [("sub-01", "ses-1", "PD"), ("sub-01", "ses-2", "PD"), ("sub-02", "ses-1", "HC")]
    rows = [
        {"participant_id": p, "session_id": s, "group": g, "qc_flag": "ok"} for p, s, g in visits
    ]
    figures = [tmp_path / f"qc-{n}.png" for n in range(3)]
    write_index(tmp_path, rows, [], figures)
    page = (tmp_path / "index.html").read_text()
    counts = {"scans segmented": 3, "participants": 2, "group PD": 1, "group HC": 1}
    for label, count in counts.items():
        assert f"<tr><td>{label}</td><td>{count}</td></tr>" in page
    without_sessions = [{k: v for k, v in r.items() if k != "session_id"} for r in rows[::2]]
    write_index(tmp_path, without_sessions, [], figures[::2])
    page = (tmp_path / "index.html").read_text()
    assert "<tr><td>subjects segmented</td><td>2</td></tr>" in page and "participants<" not in page
