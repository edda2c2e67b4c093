"""The driver's collection of finished folds: the leaderboard written even when nothing is
crowned, so the user sees why."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sn_platform.sweep.driver import SweepPlan, SweepRun, collect
from sn_platform.sweep.leaderboard import NothingToSelect
from sn_platform.sweep.results import FoldResult, write_fold
from sn_platform.sweep.settings import CrossValidation, TuneSettings


class _Parent:
    """The parent run's logger: records what was logged."""

    def __init__(self) -> None:
        self.logged: list[tuple[Path, str]] = []

    def log_artifact(self, path: Path, folder: str) -> None:
        self.logged.append((Path(path), folder))


def _plan(tmp_path: Path) -> SweepPlan:
    settings = TuneSettings(
        name="dead-rn", space={"optim.lr": {"grid": [3e-3, 6e-3]}}, cv=CrossValidation(folds=2)
    )
    cfg = OmegaConf.create({"data": {"labels": ["SN", "RN", "CC"]}})
    return SweepPlan(cfg, settings, dict(settings.space), [0, 1], tmp_path)


def _record(plan: SweepPlan, config_id: str, lr: float, rn: float) -> None:
    for fold in (0, 1):
        metrics = {"best/val/dsc": 0.7, "best/val/dsc_rn": rn, "best/val/dsc_cc": 0.6}
        write_fold(plan.experiment_dir, FoldResult(config_id, fold, {"optim.lr": lr}, metrics))


def test_nothing_crowned_still_writes_and_logs_the_leaderboard_and_names_it(tmp_path):
    plan = _plan(tmp_path)
    _record(plan, "c00", 3e-3, rn=0.004)
    _record(plan, "c01", 6e-3, rn=0.02)
    parent = _Parent()
    run = SweepRun(state=None, parent=parent, endpoint="unused")  # type: ignore[arg-type]
    table = plan.experiment_dir / "leaderboard.tsv"
    with pytest.raises(NothingToSelect, match=rf"c00: val/dsc_rn 0.004; c01: val/dsc_rn 0.020.*"
                       rf"\(leaderboard: {table}\)$"):  # fmt: skip
        collect(plan, run)
    with table.open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [(r["config_id"], r["unlearnt"]) for r in rows] == [
        ("c00", "val/dsc_rn 0.004"), ("c01", "val/dsc_rn 0.020")
    ]  # fmt: skip
    assert (plan.experiment_dir / "selection.png").stat().st_size > 0
    assert [(p.name, folder) for p, folder in parent.logged] == [
        ("leaderboard.tsv", "leaderboard"), ("selection.png", "leaderboard")
    ]  # fmt: skip


def test_a_learnt_configuration_is_returned_first(tmp_path):
    plan = _plan(tmp_path)
    _record(plan, "c00", 3e-3, rn=0.004)
    _record(plan, "c01", 6e-3, rn=0.5)
    leaderboard = collect(plan, SweepRun(None, _Parent(), "unused"))  # type: ignore[arg-type]
    assert [(e["config_id"], e["unlearnt"]) for e in leaderboard] == [
        ("c01", ""), ("c00", "val/dsc_rn 0.004")
    ]  # fmt: skip
