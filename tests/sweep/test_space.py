"""YAML search spaces -> Ray Tune distributions -> configurations drawn up front."""

from __future__ import annotations

import math

import pytest

from sn_platform.sweep.driver import training_overrides
from sn_platform.sweep.space import override, sample_configurations, search_space

SPACE = {
    "model.base_filters": {"choice": [8, 16, 32]},
    "optim.lr": {"loguniform": [1e-4, 1e-2]},
    "loss": {"grid": ["dice", "dice_bce"]},
    "trainer.warmup_epochs": {"randint": [0, 3]},
    "optim.weight_decay": {"uniform": [0.0, 1e-3]},
    "augment.transforms.1.p": {"quniform": [0.0, 1.0, 0.25]},
}


def test_every_distribution_is_drawn_within_its_bounds():
    configurations = sample_configurations(search_space(SPACE), num_samples=5, seed=0)
    assert len(configurations) == 2 * 5  # grid values times random draws
    assert [c["loss"] for c in configurations] == ["dice"] * 5 + ["dice_bce"] * 5
    for configuration in configurations:
        assert configuration["model.base_filters"] in (8, 16, 32)
        assert 1e-4 <= configuration["optim.lr"] <= 1e-2
        assert configuration["trainer.warmup_epochs"] in (0, 1, 2)
        assert 0.0 <= configuration["optim.weight_decay"] <= 1e-3
        assert configuration["augment.transforms.1.p"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert type(configuration["optim.lr"]) is float


def test_draws_are_reproducible_and_seed_dependent():
    space = search_space(SPACE)
    first = sample_configurations(space, 3, seed=1)
    assert first == sample_configurations(space, 3, seed=1)
    assert first != sample_configurations(space, 3, seed=2)


def test_loguniform_covers_decades_evenly():
    draws = sample_configurations(search_space({"lr": {"loguniform": [1e-4, 1e-2]}}), 400, 0)
    below = sum(d["lr"] < 1e-3 for d in draws) / len(draws)
    assert below == pytest.approx(0.5, abs=0.08)
    assert min(math.log10(d["lr"]) for d in draws) >= -4


@pytest.mark.parametrize(
    "bad",
    [
        {"x": {"normal": [0, 1]}},
        {"x": {"choice": []}},
        {"x": {"uniform": [1.0, 0.0]}},
        {"x": {"loguniform": [0.0, 1.0]}},
        {"x": {"choice": [1], "grid": [2]}},
    ],
)
def test_invalid_spaces_name_the_key(bad):
    with pytest.raises(ValueError, match=r"tune\.space\.x"):
        search_space(bad)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("optim.lr", 0.001, "optim.lr=0.001"),
        ("loss", "dice_bce", "loss=dice_bce"),
        ("data.patch_size", [32, 32, 3], "data.patch_size=[32,32,3]"),
        ("trainer.patience", None, "trainer.patience=null"),
        ("trainer.compile", True, "trainer.compile=true"),
    ],
)
def test_hydra_overrides(key, value, expected):
    assert override(key, value) == expected


def test_trials_get_only_the_training_overrides():
    given = [
        "tune=demo",
        "tune/space=none",
        "tune.cv.folds=2",
        "ray.address=auto",
        "+tune.x=1",
        "optim.lr=0.01",
    ]
    assert training_overrides([*given, "data.root=/d"]) == ["optim.lr=0.01", "data.root=/d"]
