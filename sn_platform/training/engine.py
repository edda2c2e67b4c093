"""The one training loop: epochs of patches, whole-volume validation, checkpoints, resume.

It knows nothing about Hydra, MLflow or Ray: it reports through ``report(metrics, epoch)``,
so ``sn-train``, a Ray Tune trial and a test drive the same code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torchio as tio
from torch import nn
from tqdm.auto import tqdm

from sn_platform.data.io import atomic_write
from sn_platform.data.loaders import stack_channels
from sn_platform.data.preprocessing import ANNOTATED_KEY, LABEL_KEY, PreprocessingSpec
from sn_platform.devices import Runtime, autocast
from sn_platform.errors import ConfigError, one_line
from sn_platform.models.losses import marginal_logits
from sn_platform.seeding import restore_rng_state, rng_state
from sn_platform.training.settings import TrainerSettings

LAST_CHECKPOINT = "last.pt"
BEST_WEIGHTS = "best.pt"

Report = Callable[[Mapping[str, float], int], None]
Validate = Callable[[nn.Module], Mapping[str, float]]


class CheckpointError(ConfigError):
    """A checkpoint that cannot be (safely) loaded; the message names the file."""


@dataclass
class Progress:
    """What survives between epochs besides weights: kept in every checkpoint."""

    epoch: int = 0
    best_metric: float | None = None
    best_epoch: int = 0
    stale_epochs: int = 0
    stopped_early: bool = False
    last_metrics: dict[str, float] = field(default_factory=dict)


def learning_rate_factor(epoch: int, settings: TrainerSettings) -> float:
    """Multiplier of the base learning rate at ``epoch`` (0-based)."""
    if epoch < settings.warmup_epochs:
        return (epoch + 1) / (settings.warmup_epochs + 1)
    span = settings.max_epochs - settings.warmup_epochs
    progress = (epoch - settings.warmup_epochs) / span
    if settings.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if settings.lr_schedule == "poly":
        return (1.0 - progress) ** 0.9
    return 1.0


def make_scheduler(
    optimizer: torch.optim.Optimizer, settings: TrainerSettings
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch schedule of ``learning_rate_factor``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: learning_rate_factor(epoch, settings)
    )


def _improved(value: float, progress: Progress, settings: TrainerSettings) -> bool:
    if not math.isfinite(value):
        return False
    if progress.best_metric is None:
        return True
    delta = value - progress.best_metric if settings.mode == "max" else progress.best_metric - value
    return delta > settings.min_delta


def load_tensors(path: Path) -> Any:
    """A checkpoint file's tensors and plain values; never runs code from the file.

    Raises
    ------
    CheckpointError
        when the file is unreadable or holds anything else (code, arbitrary objects).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        reason = one_line(error, 160)
        raise CheckpointError(
            f"{path}: not a plain sn-platform checkpoint ({reason}); refusing to load it"
        ) from None


def read_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The last checkpoint in ``directory``, or None when there is none."""
    path = Path(directory) / LAST_CHECKPOINT
    if not path.exists():
        return None
    return dict(load_tensors(path))


def load_best_weights(model: nn.Module, directory: Path) -> None:
    """Load the best epoch's weights saved by ``Trainer.fit``."""
    model.load_state_dict(load_tensors(Path(directory) / BEST_WEIGHTS))


class Trainer:
    """Trains ``model`` with a loss on patch batches; validates whole volumes.

    Parameters
    ----------
    model, loss, optimizer : the network (logits out), a loss on (logits, target), its optimiser
    spec : preprocessing spec (which subject keys are the channels)
    settings : ``TrainerSettings``
    runtime : device, (resolved) precision and whether to compile, the same as validation's
    checkpoint_dir : holds ``last.pt`` (everything, every epoch) and ``best.pt`` (weights)
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: torch.optim.Optimizer,
        spec: PreprocessingSpec,
        settings: TrainerSettings,
        runtime: Runtime,
        checkpoint_dir: Path,
    ):
        device = runtime.device
        self.model = model.to(device)
        compiled = torch.compile(self.model) if runtime.compile else self.model
        self.network: nn.Module = compiled  # type: ignore[assignment]
        self.loss = loss
        self.optimizer = optimizer
        self.spec = spec
        self.settings = settings
        self.device, self.precision = device, runtime.precision
        self.checkpoint_dir = Path(checkpoint_dir)
        self.scheduler = make_scheduler(optimizer, settings)
        self.scaler = torch.amp.GradScaler(device.type, enabled=runtime.precision == "fp16")
        self.progress = Progress()

    def resume(self, checkpoint: Mapping[str, Any]) -> None:
        """Restore weights, optimiser, schedule, scaler, RNG and progress from a checkpoint."""
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_state(checkpoint["rng"])
        self.progress = Progress(**checkpoint["progress"])

    def _save(self) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "progress": asdict(self.progress),
        }
        atomic_write(self.checkpoint_dir / LAST_CHECKPOINT, partial(torch.save, payload))

    def train_epoch(self, batches: Iterable[Mapping[str, Any]], total: int | None) -> float:
        """One pass over ``batches``; returns the mean loss."""
        self.model.train()
        losses: list[float] = []
        bar = tqdm(
            batches,
            total=total,
            desc=f"epoch {self.progress.epoch + 1}/{self.settings.max_epochs}",
            unit="batch",
            disable=not self.settings.progress,
            leave=False,
        )
        for batch in bar:
            inputs = stack_channels(batch, self.spec).to(self.device)
            target = batch[LABEL_KEY][tio.DATA].to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, self.precision):
                logits = self.network(inputs).float()
                if ANNOTATED_KEY in batch and logits.shape[1] > 1:
                    logits = marginal_logits(logits, batch[ANNOTATED_KEY])
                loss = self.loss(logits, target)
            self.scaler.scale(loss).backward()
            if self.settings.grad_clip_norm is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if not losses:
            raise ValueError("the training loader produced no batches")
        return sum(losses) / len(losses)

    def fit(
        self,
        make_batches: Callable[[int], Iterable[Mapping[str, Any]]],
        validate: Validate | None = None,
        report: Report | None = None,
        batches_per_epoch: int | None = None,
    ) -> Progress:
        """Train from ``progress.epoch`` to ``max_epochs`` (or early stop).

        ``make_batches(epoch)`` gives the batches of ``epoch`` (0-based), drawn from the
        epoch alone (``data.patches``) or from the RNG state at its start (TorchIO's queue),
        so a resumed run repeats an uninterrupted one exactly.
        After each epoch the checkpoint is written first, then ``report`` is called.
        Without ``validate`` every epoch counts as the best (the last weights are kept).
        """
        settings = self.settings
        while self.progress.epoch < settings.max_epochs and not self.progress.stopped_early:
            start = time.perf_counter()
            train_loss = self.train_epoch(make_batches(self.progress.epoch), batches_per_epoch)
            metrics: dict[str, float] = {
                "train/loss": train_loss,
                "train/lr": self.optimizer.param_groups[0]["lr"],
                "train/epoch_seconds": time.perf_counter() - start,
            }
            self.scheduler.step()
            self.progress.epoch += 1
            last = self.progress.epoch == settings.max_epochs
            if validate is not None and (self.progress.epoch % settings.val_every == 0 or last):
                start = time.perf_counter()
                metrics |= dict(validate(self.model))
                metrics["val/seconds"] = time.perf_counter() - start
            self._track_best(metrics, validate is not None)
            self.progress.last_metrics = metrics
            self._save()
            if report is not None:
                report(metrics, self.progress.epoch)
        if not (self.checkpoint_dir / BEST_WEIGHTS).exists():
            self._save_best()  # the monitor was never finite: keep the last weights
        return self.progress

    def _track_best(self, metrics: dict[str, float], validating: bool) -> None:
        progress, settings = self.progress, self.settings
        if not validating:
            progress.best_epoch = progress.epoch
            self._save_best()
            return
        if settings.monitor not in metrics:
            return
        value = float(metrics[settings.monitor])
        if _improved(value, progress, settings):
            progress.best_metric, progress.best_epoch, progress.stale_epochs = (
                value,
                progress.epoch,
                0,
            )
            self._save_best()
        else:
            progress.stale_epochs += 1
            if settings.patience is not None and progress.stale_epochs >= settings.patience:
                progress.stopped_early = True
        metrics["val/best_epoch"] = float(progress.best_epoch)

    def _save_best(self) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(
            self.checkpoint_dir / BEST_WEIGHTS, partial(torch.save, self.model.state_dict())
        )
