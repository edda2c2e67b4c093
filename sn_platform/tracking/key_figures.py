"""The key figures a registered model version carries where the registry's version page
shows them: a few tags (``cv.dsc``, ``test.nm_ratio_icc``, ...) and a table in its
description. The full metric table stays with the run (its metrics and artifacts)."""

from __future__ import annotations

import math
from collections.abc import Mapping

# (metric name as the cohort summary writes it, what a reader of the registry calls it)
KEY_FIGURES: tuple[tuple[str, str], ...] = (
    ("dsc", "SN DSC in the slab"),
    ("dsc_sd", "SN DSC, SD over subjects"),
    ("slab_within_one", "slab within one slice of the manual one (share)"),
    ("nm_ratio_pearson_r", "NM volume ratio, Pearson r (auto vs manual)"),
    ("nm_ratio_icc", "NM volume ratio, ICC"),
    ("chi_mean_pearson_r", "mean chi, Pearson r (auto vs manual)"),
    ("chi_mean_icc", "mean chi, ICC"),
)


def key_figures(metrics: Mapping[str, float], sets: Mapping[str, str]) -> dict[str, float]:
    """The finite key figures of ``metrics``, keyed ``<set>.<figure>``.

    Parameters
    ----------
    metrics : metric name -> value (``oof/dsc``, ``best/test/nm_ratio_icc``, ...)
    sets : label -> the prefix of that set's metrics, e.g. ``{"cv": "oof/"}``

    Returns
    -------
    ``{"cv.dsc": 0.81, "test.dsc": 0.83, ...}`` in the order of ``sets`` then
    ``KEY_FIGURES``; a figure a protocol lacks (no NM image: no NM ratio) is left out.
    """
    figures = {}
    for label, prefix in sets.items():
        for name, _ in KEY_FIGURES:
            value = metrics.get(prefix + name)
            if value is not None and math.isfinite(float(value)):
                figures[f"{label}.{name}"] = float(value)
    return figures


def key_figure_tags(figures: Mapping[str, float]) -> dict[str, str]:
    """The key figures as registry tags, 4 significant digits."""
    return {key: f"{value:.4g}" for key, value in figures.items()}


def key_figure_table(figures: Mapping[str, float]) -> str:
    """The key figures as a Markdown table: a row per figure, a column per set; empty when
    there are none."""
    labels = list(dict.fromkeys(key.split(".", 1)[0] for key in figures))
    rows = [
        f"| {title} | "
        + " | ".join(_cell(figures.get(f"{label}.{name}")) for label in labels)
        + " |"
        for name, title in KEY_FIGURES
        if any(f"{label}.{name}" in figures for label in labels)
    ]
    if not rows:
        return ""
    header = ["| | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    return "\n".join([*header, *rows])


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
