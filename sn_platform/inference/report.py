"""``index.html`` of a batch-inference run, after the habit of MRIQC and fMRIPrep reports:
a cohort summary on top (counts, QC flags, auto-vs-manual agreement, effect sizes), then
one section per subject, flagged first, with its zoomed QC panel and its measures.

Self-contained beside its folder (images by relative path); every inserted string is
escaped.
"""

from __future__ import annotations

import html
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sn_platform.data.bids import scan_of_row
from sn_platform.data.io import write_text
from sn_platform.evaluation.cohort import sessions_of

SUMMARY = ("participant_id", "session_id", "group", "qc_flag", "roi_source", "sn_volume_mm3",
           "nm_volume_ratio", "chi_mean_ppm", "dsc")  # fmt: skip
DETAILS = (
    "sn_volume_mm3", "sn_volume_left_mm3", "sn_volume_right_mm3", "sn_volume_whole_mm3",
    "rn_volume_mm3", "cc_volume_mm3", "nm_volume_ratio", "chi_mean_ppm",
    "nm_volume_ratio_whole", "chi_mean_ppm_whole", "roi_source", "slab_source",
    "slab_bottom_mm", "slab_top_mm", "slab_offset_slices", "dsc", "hd95_mm", "dsc_truth",
    "nm_volume_ratio_manual", "chi_mean_ppm_manual", "nm_volume_ratio_truth",
    "chi_mean_ppm_truth",
)  # fmt: skip
STYLE = (
    "body{font-family:sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
    ".flagged{background:#fde2e2}.ok{background:#e6f4e6}"
    "img{max-width:100%;height:auto;display:block;margin:0.5em 0}"
    "section{border-top:2px solid #ddd;margin-top:1.5em}"
    ".wide{overflow-x:auto}"
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def _image(path: Path, output: Path, alt: str) -> str:
    source = html.escape(os.path.relpath(path, output), quote=True)
    return f"<img src='{source}' alt='{html.escape(alt, quote=True)}'>"


def _name(row: dict[str, Any]) -> str:
    """``sub-01``, or ``sub-01_ses-pre`` for a session (``bids.scan_of_row``)."""
    return f"sub-{scan_of_row(row)}"


def _anchor(row: dict[str, Any]) -> str:
    return html.escape(_name(row), quote=True)


def _summary(rows: Sequence[dict[str, Any]], errors: Sequence[dict[str, Any]]) -> list[str]:
    flags = Counter(
        reason.split(" (")[0]
        for row in rows
        if row.get("qc_flag") != "ok"
        for reason in str(row.get("qc_flag", "")).split("; ")
    )
    sessions = bool(sessions_of(rows))
    participants = {str(r.get("participant_id")): r for r in rows}  # each counted once
    groups = Counter(str(r.get("group", "n/a")) for r in participants.values())
    flagged = sum(r.get("qc_flag") != "ok" for r in rows)
    counted = (
        [("scans segmented", len(rows)), ("participants", len(participants))]
        if sessions
        else [("subjects segmented", len(rows))]
    )
    lines = [
        "<h2>Cohort</h2><table>",
        *(f"<tr><td>{label}</td><td>{n}</td></tr>" for label, n in counted),
        f"<tr><td>flagged for review</td><td>{flagged}</td></tr>",
        f"<tr><td>failed</td><td>{len(errors)}</td></tr>",
        *(f"<tr><td>group {_cell(g)}</td><td>{n}</td></tr>" for g, n in sorted(groups.items())),
        "</table>",
    ]
    if flags:
        lines.append("<h3>QC flags</h3><table><tr><th>reason</th><th>subjects</th></tr>")
        lines += [f"<tr><td>{_cell(k)}</td><td>{n}</td></tr>" for k, n in flags.most_common()]
        lines.append("</table>")
    return lines


def write_index(
    output: Path,
    rows: Sequence[dict[str, Any]],
    errors: Sequence[dict[str, Any]],
    figures: Sequence[Path],
    cohort_figures: Sequence[Path] = (),
) -> None:
    """Write ``output/index.html``; ``figures[i]`` is the QC panel of ``rows[i]``,
    ``cohort_figures`` the cohort's (scatter, Bland-Altman, effect sizes)."""
    output = Path(output)
    order = sorted(range(len(rows)), key=lambda i: (rows[i].get("qc_flag") == "ok", i))
    lines = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>sn-infer report</title><style>{STYLE}</style></head><body>",
        "<h1>sn-infer: substantia nigra segmentation</h1>",
        "<p>Tables: <a href='measures.tsv'>measures.tsv</a> (dictionary: "
        "<a href='measures.json'>measures.json</a>), "
        "<a href='agreement.json'>agreement.json</a>.</p>",
        *_summary(rows, errors),
        *(_image(path, output, path.stem.replace("_", " ")) for path in cohort_figures),
    ]
    if errors:
        lines.append("<h2>Failed</h2><table><tr><th>subject</th><th>reason</th></tr>")
        lines += [
            f"<tr><td>{_cell(_name(e))}</td><td>{_cell(e['reason'])}</td></tr>" for e in errors
        ]
        lines.append("</table>")
    columns = [c for c in SUMMARY if any(c in r for r in rows)]
    lines.append("<h2>Subjects (flagged first)</h2><div class='wide'><table><tr>")
    lines += [f"<th>{html.escape(c)}</th>" for c in columns]
    lines.append("</tr>")
    for i in order:
        row = rows[i]
        state = "ok" if row.get("qc_flag") == "ok" else "flagged"
        cells = [f"<td><a href='#{_anchor(row)}'>{_cell(row.get(columns[0]))}</a></td>"]
        cells += [f"<td>{_cell(row.get(c, 'n/a'))}</td>" for c in columns[1:]]
        lines.append(f"<tr class='{state}'>{''.join(cells)}</tr>")
    lines.append("</table></div>")
    for i in order:
        row = rows[i]
        state = "ok" if row.get("qc_flag") == "ok" else "flagged"
        lines += [
            f"<section id='{_anchor(row)}'>",
            f"<h3>{_cell(_name(row))} ({_cell(row.get('group', 'n/a'))})</h3>",
            f"<p class='{state}'>QC: {_cell(row.get('qc_flag', 'n/a'))}</p>",
            _image(figures[i], output, f"QC panel of {_name(row)}"),
            "<div class='wide'><table>",
            *(
                f"<tr><td>{html.escape(c)}</td><td>{_cell(row[c])}</td></tr>"
                for c in DETAILS
                if c in row
            ),
            "</table></div></section>",
        ]
    lines.append("</body></html>")
    write_text(output / "index.html", "\n".join(lines) + "\n")
