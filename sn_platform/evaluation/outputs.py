"""The files of one evaluation: per-subject TSV, agreement JSON and three plots."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from sn_platform.evaluation import plots
from sn_platform.evaluation.cohort import Evaluation, agreement_report
from sn_platform.evaluation.subject import ReferenceCase
from sn_platform.evaluation.tables import write_table


def write_evaluation(
    evaluation: Evaluation, cases: Mapping[str, ReferenceCase], folder: Path, prefix: str
) -> list[Path]:
    """Write ``{prefix}_subjects.tsv``, ``{prefix}_agreement.json`` and the scatter,
    Bland-Altman and overlay plots into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    table = folder / f"{prefix}_subjects.tsv"
    write_table(evaluation.rows, table)
    report = folder / f"{prefix}_agreement.json"
    report.write_text(json.dumps(agreement_report(evaluation.rows), indent=2))
    figures = [folder / f"{prefix}_{name}.png" for name in ("scatter", "bland_altman", "overlays")]
    plots.save_agreement_scatter(evaluation.rows, figures[0])
    plots.save_bland_altman(evaluation.rows, figures[1])
    plots.save_overlays(evaluation.rows, cases, evaluation.masks, figures[2])
    return [table, report, *(f for f in figures if f.exists())]
