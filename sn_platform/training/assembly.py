"""The composed Hydra config turned into one typed ``RunSpec``: the edge where ``instantiate``
builds every group from its ``_target_`` (data, trainer, inference and tracking settings,
loss, optimiser, augmentation)."""

from __future__ import annotations

from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from sn_platform.composition import build
from sn_platform.training.run import RunSpec


def run_spec(cfg: DictConfig) -> RunSpec:
    """The typed run of a composed training config (``conf/config.yaml``)."""
    config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    return RunSpec(
        name=str(cfg.run_name),
        seed=int(cfg.seed),
        data=build(cfg, "data"),
        trainer=build(cfg, "trainer"),
        inference=build(cfg, "inference"),
        measures=build(cfg, "measures"),
        tracking=build(cfg, "tracking"),
        model=config["model"],
        loss=build(cfg, "loss"),
        optimizer=build(cfg, "optim"),
        augmentation=build(cfg, "augment"),
        config=config,
    )
