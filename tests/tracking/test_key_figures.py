"""The key figures a registered version carries: the chosen few, finite ones only, as tags
and as a Markdown table."""

from __future__ import annotations

import math

from sn_platform.tracking.key_figures import (
    KEY_FIGURES,
    key_figure_table,
    key_figure_tags,
    key_figures,
)

METRICS = {
    "oof/dsc": 0.8123456,
    "oof/hd95_mm": 2.5,  # not a key figure
    "oof/nm_ratio_icc": math.nan,  # undefined on too few subjects: left out
    "oof/chi_mean_icc": 0.9712,
    "best/test/dsc": 0.83,
    "best/test/nm_ratio_pearson_r": 0.955,
    "best/epoch": 12.0,
}
SETS = {"cv": "oof/", "test": "best/test/"}


def test_only_the_finite_key_figures_of_each_set_are_kept():
    figures = key_figures(METRICS, SETS)
    assert figures == {
        "cv.dsc": 0.8123456,
        "cv.chi_mean_icc": 0.9712,
        "test.dsc": 0.83,
        "test.nm_ratio_pearson_r": 0.955,
    }
    assert key_figure_tags(figures)["cv.dsc"] == "0.8123"


def test_the_table_has_a_row_per_figure_present_and_a_column_per_set():
    table = key_figure_table(key_figures(METRICS, SETS)).splitlines()
    assert table[0] == "| | cv | test |"
    assert table[1] == "|---|---:|---:|"
    titles = dict(KEY_FIGURES)
    assert table[2:] == [
        f"| {titles['dsc']} | 0.812 | 0.830 |",
        f"| {titles['nm_ratio_pearson_r']} | n/a | 0.955 |",
        f"| {titles['chi_mean_icc']} | 0.971 | n/a |",
    ]


def test_no_figures_no_table():
    assert key_figure_table(key_figures({"best/epoch": 3.0}, SETS)) == ""
