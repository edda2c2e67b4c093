"""The short version of the sweep's soak (``benchmarks/soak.py``): a trial process killed
with SIGKILL and the private MLflow server killed, and still one finished child run per
(configuration, fold) with every epoch of its history, and a champion."""

from __future__ import annotations

import pytest

from benchmarks.soak import run_soak

pytestmark = pytest.mark.slow


def test_sweep_survives_a_killed_trial_and_a_killed_server(two_site_cohort, tmp_path):
    # One configuration x 2 folds; a trial killed 8 s after the first one starts, the
    # server 20 s after (the trials alone take about 35 s on two fast cores).
    figures = run_soak(two_site_cohort, tmp_path, 1, 4, kill_every_s=8, max_trial_kills=1)
    assert figures["exit_code"] == 0, figures.get("log_tail")
    assert (figures["trials_killed"], figures["server_kills"]) == (1, 1)
    assert figures["server_restarts"] == 1
    assert figures["child_runs"] == 2
    assert figures["duplicate_child_runs"] == figures["missing_child_runs"] == 0
    assert figures["unfinished_child_runs"] == 0
    assert figures["incomplete_metric_histories"] == []
    assert figures["champion_version"] == "1"
