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
