"""The composed Hydra config turned into one typed ``RunSpec``: the edge where ``instantiate``
builds every group from its ``_target_`` (data, trainer, inference and tracking settings,
loss, optimiser, augmentation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from sn_platform.composition import build
from sn_platform.errors import ConfigError, one_line
from sn_platform.inference.atlas import ATLAS_LOCALISER, AtlasLocaliser
from sn_platform.inference.predictor import Localiser, Segmenter
from sn_platform.training.spec import RunSpec

# (model URI, tracking URI) -> the segmenter logged there: ``tracking.load_segmenter_at``.
ModelLoader = Callable[[str, str], Segmenter]


def run_spec(cfg: DictConfig, load_model: ModelLoader | None = None) -> RunSpec:
    """The typed run of a composed training config (``conf/config.yaml``).

    ``load_model`` loads the cascade's first stage named by ``localiser`` and the model
    ``trainer.init_from`` names (both model URIs); without it (checking a config) neither
    is loaded. ``localiser=atlas`` is the registered MNI template (``AtlasLocaliser``).
    """
    config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
    tracking = build(cfg, "tracking")
    trainer = build(cfg, "trainer")

    def load(key: str, uri: str | None) -> Segmenter | None:
        if not uri or load_model is None:
            return None
        try:
            return load_model(str(uri), tracking.uri)
        except Exception as error:  # any failure to load is one line naming the URI
            raise ConfigError(f"{key}: cannot load {uri}: {one_line(error)}") from None

    localiser_uri = cfg.get("localiser")
    localiser: Localiser | None = (
        AtlasLocaliser() if localiser_uri == ATLAS_LOCALISER else load("localiser", localiser_uri)
    )
    build(cfg, "model")  # the network checks its arguments here, on one line naming the key
    return RunSpec(
        name=str(cfg.run_name),
        seed=int(cfg.seed),
        data=build(cfg, "data"),
        trainer=trainer,
        inference=build(cfg, "inference"),
        measures=build(cfg, "measures"),
        tracking=tracking,
        model=config["model"],
        loss=build(cfg, "loss"),
        optimizer=build(cfg, "optim"),
        augmentation=build(cfg, "augment"),
        config=config,
        localiser_uri=str(localiser_uri) if localiser_uri else None,
        localiser=localiser,
        initial=load("trainer.init_from", trainer.init_from),
    )
