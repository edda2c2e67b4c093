"""``index.html`` of a batch-inference run: subjects, measures and QC thumbnails, flagged first."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sn_platform.data.io import write_text

SHOWN = (
    "participant_id", "group", "qc_flag", "sn_volume_mm3", "nm_volume_ratio", "chi_mean_ppm",
    "dsc", "hd95_mm", "nm_volume_ratio_manual", "chi_mean_ppm_manual",
)  # fmt: skip
STYLE = (
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}tr.flagged{background:#fde2e2}"
    "img{height:120px}"
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def write_index(
    output: Path,
    rows: Sequence[dict[str, Any]],
    errors: Sequence[dict[str, Any]],
    figures: Sequence[Path],
) -> None:
    """Write ``output/index.html``; ``figures[i]`` is the QC image of ``rows[i]``."""
    columns = [c for c in SHOWN if any(c in r for r in rows)]
    order = sorted(range(len(rows)), key=lambda i: (rows[i].get("qc_flag") == "ok", i))
    flagged = sum(rows[i].get("qc_flag") != "ok" for i in order)
    lines = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>sn-infer report</title><style>{STYLE}</style></head><body>",
        "<h1>sn-infer: substantia nigra segmentation</h1>",
        f"<p>{len(rows)} subjects segmented, {flagged} flagged for review, "
        f"{len(errors)} failed. Measures: <a href='measures.tsv'>measures.tsv</a>.</p>",
    ]
    if errors:
        lines.append("<h2>Failed</h2><table><tr><th>subject</th><th>reason</th></tr>")
        lines += [
            f"<tr><td>{_cell(e['participant_id'])}</td><td>{_cell(e['reason'])}</td></tr>"
            for e in errors
        ]
        lines.append("</table>")
    lines.append("<h2>Subjects</h2><table><tr>")
    lines += [f"<th>{html.escape(c)}</th>" for c in columns]
    lines.append("<th>QC</th></tr>")
    for i in order:
        row = rows[i]
        state = "" if row.get("qc_flag") == "ok" else " class='flagged'"
        cells = "".join(f"<td>{_cell(row.get(c, 'n/a'))}</td>" for c in columns)
        image = html.escape(os.path.relpath(figures[i], output))
        lines.append(
            f"<tr{state}>{cells}<td><a href='{image}'><img src='{image}' alt='QC'></a></td></tr>"
        )
    lines.append("</table></body></html>")
    write_text(Path(output) / "index.html", "\n".join(lines) + "\n")
