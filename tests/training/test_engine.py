"""The training loop: schedules, checkpoints, early stopping and exact resume."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import pytest
import torch
import torchio as tio
from torch import nn

from sn_platform.data.preprocessing import LABEL_KEY, PreprocessingSpec
from sn_platform.devices import Runtime
from sn_platform.errors import StorageError
from sn_platform.models.losses import DiceLoss
from sn_platform.seeding import seed_everything
from sn_platform.training.engine import (
    BEST_WEIGHTS,
    LAST_CHECKPOINT,
    CheckpointError,
    Trainer,
    learning_rate_factor,
    read_checkpoint,
)
from sn_platform.training.settings import TrainerSettings

SPEC = PreprocessingSpec(channels=("echo-1",), spacing_mm=None, min_shape=(8, 8, 2))


@pytest.mark.parametrize(
    ("schedule", "epoch", "expected"),
    [
        ("cosine", 0, 1.0),
        ("cosine", 5, 0.5),
        ("cosine", 9, 0.5 * (1 + math.cos(math.pi * 0.9))),
        ("poly", 5, 0.5**0.9),
        ("constant", 7, 1.0),
    ],
)
def test_learning_rate_factor(schedule, epoch, expected):
    settings = TrainerSettings(max_epochs=10, lr_schedule=schedule)
    assert learning_rate_factor(epoch, settings) == pytest.approx(expected)


def test_warmup_rises_linearly_then_follows_the_schedule():
    settings = TrainerSettings(max_epochs=12, lr_schedule="cosine", warmup_epochs=2)
    factors = [learning_rate_factor(e, settings) for e in range(12)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert factors[7] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "bad",
    [{"max_epochs": 0}, {"lr_schedule": "step"}, {"mode": "up"}, {"warmup_epochs": 5}],
)
def test_settings_refuse_invalid_values(bad):
    with pytest.raises(ValueError):
        TrainerSettings(**{"max_epochs": 5, **bad})


def _batches(count: int = 3):
    """A fresh loader of random (1, 8, 8, 2) patches whose label is the bright half."""

    def make(epoch: int):
        for _ in range(count):
            image = torch.rand(2, 1, 8, 8, 2)
            image[:, :, :4] += 1.0
            label = torch.zeros_like(image)
            label[:, :, :4] = 1
            yield {"echo1": {tio.DATA: image}, LABEL_KEY: {tio.DATA: label}}

    return make


def _trainer(tmp_path, settings: TrainerSettings) -> Trainer:
    seed_everything(3)
    model = nn.Conv3d(1, 1, 3, padding=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    return Trainer(model, DiceLoss(), optimizer, SPEC, settings, Runtime.resolve("cpu"), tmp_path)


def test_training_lowers_the_loss_and_checkpoints_every_epoch(tmp_path):
    reports = []
    trainer = _trainer(tmp_path, TrainerSettings(max_epochs=6, progress=False))
    trainer.fit(_batches(), report=lambda m, e: reports.append((e, m["train/loss"])))
    assert [e for e, _ in reports] == [1, 2, 3, 4, 5, 6]
    assert reports[-1][1] < reports[0][1]
    assert (tmp_path / LAST_CHECKPOINT).exists() and (tmp_path / BEST_WEIGHTS).exists()
    assert read_checkpoint(tmp_path)["progress"]["epoch"] == 6


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    values = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.9])
    settings = TrainerSettings(max_epochs=6, patience=3, progress=False)
    trainer = _trainer(tmp_path, settings)
    progress = trainer.fit(_batches(1), validate=lambda model: {"val/dsc": next(values)})
    assert progress.stopped_early and progress.epoch == 5
    assert progress.best_epoch == 2 and progress.best_metric == pytest.approx(0.6)


class Interrupted(Exception):
    pass


def test_resume_repeats_an_uninterrupted_run_exactly(tmp_path):
    settings = TrainerSettings(max_epochs=4, progress=False)
    reference = _trainer(tmp_path / "whole", settings)
    reference.fit(_batches())

    def stop_after_second(metrics, epoch):
        if epoch == 2:
            raise Interrupted

    first = _trainer(tmp_path / "split", settings)
    with pytest.raises(Interrupted):
        first.fit(_batches(), report=stop_after_second)
    resumed = _trainer(tmp_path / "split", settings)
    resumed.resume(read_checkpoint(tmp_path / "split"))
    epochs = []
    resumed.fit(_batches(), report=lambda m, e: epochs.append(e))
    assert epochs == [3, 4]
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_precision_is_resolved_once_for_training_and_validation(tmp_path):
    with pytest.warns(UserWarning, match="needs CUDA"):
        runtime = Runtime.resolve("cpu", "bf16")
    model = nn.Conv3d(1, 1, 3, padding=1)
    trainer = Trainer(
        model, DiceLoss(), torch.optim.Adam(model.parameters()), SPEC,
        TrainerSettings(max_epochs=1, precision="bf16"), runtime, tmp_path,
    )  # fmt: skip
    assert (runtime.precision, trainer.precision) == ("none", "none")
    assert not trainer.scaler.is_enabled()


def test_full_disk_at_a_checkpoint_keeps_the_previous_one_and_stops(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, TrainerSettings(max_epochs=3, progress=False))

    def full_disk(payload, path, *args, **kwargs):
        Path(path).write_bytes(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    def disk_fills_after(metrics, epoch):
        monkeypatch.setattr(torch, "save", full_disk)

    with pytest.raises(StorageError, match=r"\.pt: no space left on device"):
        trainer.fit(_batches(), report=disk_fills_after)
    monkeypatch.undo()
    checkpoint = read_checkpoint(tmp_path)
    assert checkpoint is not None and checkpoint["progress"]["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST_WEIGHTS, LAST_CHECKPOINT]


def test_checkpoints_load_without_running_code_and_code_is_refused(tmp_path):
    trainer = _trainer(tmp_path, TrainerSettings(max_epochs=1, progress=False))
    trainer.fit(_batches())
    checkpoint = read_checkpoint(tmp_path)  # weights_only=True: tensors and plain values
    assert checkpoint is not None and checkpoint["progress"]["epoch"] == 1
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"model": Payload()}, tmp_path / LAST_CHECKPOINT)
    with pytest.raises(CheckpointError, match=r"last\.pt: not a plain sn-platform checkpoint"):
        read_checkpoint(tmp_path)
    assert not marker.exists()
