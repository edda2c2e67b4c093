"""The validator evaluates a set of weights once: a run's final evaluation of weights that
its last validation already scored is that validation's."""

from __future__ import annotations

import copy

import pytest
import torch
from hydra import compose, initialize_config_dir

from sn_platform.composition import CONFIG_DIR
from sn_platform.devices import Runtime
from sn_platform.inference.predictor import Segmenter
from sn_platform.models.factory import build_module
from sn_platform.training.assembly import run_spec
from sn_platform.training.run import _validator
from sn_platform.training.subjects import split_subjects
from sn_platform.training.validation import weights_digest


def _network():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=smoke"])
    torch.manual_seed(0)
    return build_module(cfg.model)


def test_weights_digest_follows_the_weights_not_the_object():
    network = _network()
    twin = copy.deepcopy(network)
    assert weights_digest(twin) == weights_digest(network)
    with torch.no_grad():
        next(twin.parameters()).view(-1)[0] += 1e-6
    assert weights_digest(twin) != weights_digest(network)
    twin.load_state_dict(network.state_dict())
    assert weights_digest(twin) == weights_digest(network)


def test_weights_digest_reads_bfloat16_and_scalar_buffers():
    network = _network().to(torch.bfloat16)
    network.register_buffer("steps", torch.tensor(3))
    assert len(weights_digest(network)) == 64


@pytest.mark.slow
def test_the_same_weights_are_evaluated_once(phantom_cohort, monkeypatch):
    root, _ = phantom_cohort
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=smoke", f"data.root={root}", "data.splits.folds=2",
                       "data.splits.test_fraction=0", "trainer.fold=0"],
        )  # fmt: skip
    spec = run_spec(cfg)
    subjects = split_subjects(spec.data, spec.trainer.fold)
    validator = _validator(spec, Runtime.resolve("cpu", "none", False), subjects.validation, "val")
    predictions: list[str] = []
    predict = Segmenter.predict_preprocessed

    def counted(self, *args, **kwargs):
        predictions.append("one")
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(Segmenter, "predict_preprocessed", counted)
    network = _network()
    first = validator.evaluate(network)
    assert len(predictions) == len(subjects.validation) > 0
    assert validator.evaluate(copy.deepcopy(network)) is first
    assert len(predictions) == len(subjects.validation)
    with torch.no_grad():
        next(network.parameters()).mul_(0.5)
    second = validator.evaluate(network)
    assert second is not first
    assert len(predictions) == 2 * len(subjects.validation)
