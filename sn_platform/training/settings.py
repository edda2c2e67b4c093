"""The ``trainer`` config group as one typed object: the loop and the run around it."""

from __future__ import annotations

from dataclasses import dataclass

from sn_platform.devices import COMPILE_CHOICES, PRECISIONS

SCHEDULES = ("cosine", "poly", "constant")


@dataclass(frozen=True)
class TrainerSettings:
    """How long and how a model is trained, on which fold and device.

    Parameters
    ----------
    max_epochs : epochs to train (an epoch is one pass over the patch queue)
    fold : fold of the saved split; None trains on all development subjects
    lr_schedule : ``cosine``, ``poly`` (nnU-Net's (1 - t)^0.9) or ``constant``
    warmup_epochs : linear warm-up epochs before the schedule
    grad_clip_norm : maximum gradient L2 norm, or None
    monitor : metric that selects the best epoch and drives early stopping
    mode : ``max`` or ``min`` for ``monitor``
    patience : epochs without improvement before stopping (None: never stop early)
    min_delta : smallest change that counts as an improvement
    val_every : validate every this many epochs (and at the last one)
    precision : ``auto`` (bf16 on CUDA, float32 elsewhere), ``none``, ``bf16`` or ``fp16``;
        resolved once per run (mixed precision on CUDA only)
    compile : train through ``torch.compile``: ``auto`` (on CUDA), true or false (CUDA only;
        checkpoints hold the plain weights)
    device : ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    deterministic : deterministic kernels
    progress : show a progress bar per epoch
    resume : continue from ``checkpoint_dir/last.pt``
    checkpoint_dir : holds ``last.pt`` and ``best.pt``
    evaluate_test : also evaluate the held-out test subjects at the end
    calibrate_thresholds : after training, choose each label's probability threshold where
        its mean DSC is highest on the validation subjects (without any: on the training
        subjects' drawn labels); the logged model carries them
        (``sn_platform.training.calibration``)
    init_from : a logged model's URI (``models:/sn-vnet@champion``, ``runs:/ID/model``) whose
        weights the run starts from (fine-tuning to a site); None starts from random weights
    """

    max_epochs: int = 30
    fold: int | None = 0
    lr_schedule: str = "cosine"
    warmup_epochs: int = 0
    grad_clip_norm: float | None = 12.0
    monitor: str = "val/dsc"
    mode: str = "max"
    patience: int | None = None
    min_delta: float = 0.0
    val_every: int = 1
    precision: str = "auto"
    compile: bool | str = "auto"
    device: str = "auto"
    deterministic: bool = True
    progress: bool = True
    resume: bool = False
    checkpoint_dir: str = "checkpoints"
    evaluate_test: bool = False
    calibrate_thresholds: bool = False
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}")
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.val_every < 1:
            raise ValueError(f"val_every must be >= 1, got {self.val_every}")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.max_epochs:
            raise ValueError(f"warmup_epochs must be in [0, max_epochs), got {self.warmup_epochs}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.compile not in COMPILE_CHOICES:
            raise ValueError(f"compile must be one of {COMPILE_CHOICES}, got {self.compile!r}")
