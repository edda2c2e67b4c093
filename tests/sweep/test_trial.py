"""A trial's share of the machine: its data workers and threads from its CPU share, the
device it reports (a GPU faked here), and the line sn-sweep prints for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import torch
from hydra import compose, initialize_config_dir

from sn_platform.composition import CONFIG_DIR, build
from sn_platform.sweep.driver import SweepPlan, trial_overrides
from sn_platform.sweep.settings import TuneSettings
from sn_platform.sweep.trial import placement, trial_device


@pytest.mark.parametrize(
    ("resources", "workers", "threads"),
    [
        ({"cpu": 1, "gpu": 0}, 0, 1),
        ({"cpu": 4, "gpu": 0}, 0, 4),  # a CPU trial's cores compute the model
        ({"cpu": 4, "gpu": 0.25}, 3, 1),  # four trials on one card, 3 workers each
        ({"cpu": 1, "gpu": 0.5}, 0, 1),
        ({"cpu": 2.5, "gpu": 1}, 1, 1),
    ],
)
def test_a_trials_data_workers_follow_its_cpu_share(resources, workers, threads):
    settings = TuneSettings(resources_per_trial=resources)
    assert (settings.trial_data_workers, settings.trial_threads) == (workers, threads)


def _plan(tmp_path: Path, *overrides: str) -> SweepPlan:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="sweep", overrides=[f"data.root={tmp_path}", *overrides])
    return SweepPlan(cfg, build(cfg, "tune"), {}, [0], tmp_path)


def test_trials_get_their_data_workers_unless_given(tmp_path):
    plan = _plan(tmp_path, "tune.resources_per_trial={cpu:4,gpu:0.25}")
    base = trial_overrides(plan, [], "http://127.0.0.1:5000")
    assert "data.num_workers=3" in base and "trainer.device=cpu" not in base
    given = trial_overrides(plan, ["data.num_workers=1"], "http://127.0.0.1:5000")
    assert [o for o in given if o.startswith("data.num_workers")] == ["data.num_workers=1"]
    cpu_only = trial_overrides(_plan(tmp_path), [], "http://127.0.0.1:5000")
    assert {"data.num_workers=0", "trainer.device=cpu"} <= set(cpu_only)


def test_a_trial_reports_the_card_ray_gave_it(monkeypatch):
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    assert trial_device() == "cpu"
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [1])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "NVIDIA H200")
    assert trial_device() == "cuda:0 NVIDIA H200 (Ray GPU 1)"


def test_sn_sweep_prints_one_line_per_trial_with_its_device():
    variant = {"variant": {"config_id": "c01", "folds": [0], "overrides": {}}}
    on_gpu = {"device": "cuda:0 NVIDIA H200 (Ray GPU 0)", "trial_id": "ab12_00003"}
    assert placement("ab12_00003", variant, on_gpu, 0.25) == (
        "sn-sweep: trial ab12_00003 c01 fold 0: cuda:0 NVIDIA H200 (Ray GPU 0) (0.25 of the GPU)"
    )
    # Optuna's trial runs every fold and is its own configuration; a CPU trial has no share.
    assert placement("ab12_00004", {"optim.lr": 0.01}, {"device": "cpu"}, 0.0) == (
        "sn-sweep: trial ab12_00004 ab12_00004 fold all: cpu"
    )
    assert placement("ab12_00005", variant, {}, 0.0).endswith("c01 fold 0: not reported")
