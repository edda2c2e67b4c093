"""Registration of the sweep's final model as the champion: its key CV and test figures and
its configuration as tags, and a description that says how it was chosen, with the key
figures as a table (the full leaderboard stays an artifact of the sweep's run)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from sn_platform import tracking
from sn_platform.sweep.results import FinalResult
from sn_platform.sweep.space import override


def register_champion(
    cfg: DictConfig,
    sweep_run_id: str,
    best: Mapping[str, Any],
    final: FinalResult,
    members: int,
) -> str:
    """Register ``final.model_uri`` as ``tracking.model_name@tune.alias``; its version.

    ``best`` is the winning leaderboard entry; ``members`` the ensemble size (0: a refit).
    """
    tune_cfg = cfg.tune
    keys = list(tune_cfg.space)
    figures = tracking.key_figures({**best, **final.metrics}, {"cv": "oof/", "test": "best/test/"})
    tags = {
        "sweep_run_id": sweep_run_id,
        "final_run_id": final.run_id,
        "final_model": f"ensemble of {members} folds" if members else "refit",
        "config_id": best["config_id"],
        **{f"param.{k}": best[k] for k in keys},
        "cv.score": f"{best['score']:.4g}",
        **tracking.key_figure_tags(figures),
    }
    chosen = ", ".join(override(k, best[k]) for k in keys)
    how = (
        f"the ensemble of its {members} fold models."
        if members
        else "refit on all development subjects."
    )
    description = (
        f"Champion of sweep {tune_cfg.name}: {chosen}; selected by {dict(tune_cfg.selection)} "
        f"over {tune_cfg.cv.folds}-fold CV (score {best['score']:.4f}), {how}\n\n"
        f"{tracking.key_figure_table(figures)}\n\n"
        "cv: the pooled out-of-fold validation subjects; test: the held-out test subjects. "
        "Every metric: the sweep run's leaderboard artifact and the final run's metrics."
    )
    return tracking.register(
        str(final.model_uri), cfg.tracking.model_name, tune_cfg.alias, tags, description,
        once_per="sweep_run_id",
    )  # fmt: skip
