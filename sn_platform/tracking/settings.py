"""The ``tracking`` config group as one typed object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackingSettings:
    """Where and what a run logs.

    Parameters
    ----------
    uri : tracking and registry store (``sqlite:///mlruns/mlflow.db``, ``http://HOST:5000``)
    artifact_location : artifact root of a new experiment (None: the server's default)
    experiment : experiment name
    enabled : track at all
    log_model : log the final weights as a pyfunc model
    register : register the logged model as ``model_name@alias``
    model_name, alias : registry name and alias
    """

    uri: str = "sqlite:///mlruns/mlflow.db"
    artifact_location: str | None = "mlruns"
    experiment: str = "sn-platform"
    enabled: bool = True
    log_model: bool = True
    register: bool = False
    model_name: str = "sn-vnet"
    alias: str = "candidate"
