"""The device, precision and compilation a run resolves: bf16 and torch.compile by default
on CUDA (availability faked here), float32 and eager on CPU."""

from __future__ import annotations

import warnings

import pytest
import torch

from sn_platform.devices import Runtime


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA reported available (nothing is run on it); returns a switch for its bf16 support."""
    support = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: support["bf16"])
    return support


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, ("cuda", "bf16", True)),
        ({"device": "cuda:0"}, ("cuda:0", "bf16", True)),
        ({"precision": "none", "compile": False}, ("cuda", "none", False)),
        ({"precision": "fp16", "compile": True}, ("cuda", "fp16", True)),
        ({"device": "cpu"}, ("cpu", "none", False)),
    ],
)
def test_bf16_and_compile_by_default_on_cuda(fake_cuda, arguments, expected):
    runtime = Runtime.resolve(**arguments)
    assert (str(runtime.device), runtime.precision, runtime.compile) == expected


def test_auto_precision_is_float32_on_a_card_without_bf16(fake_cuda):
    fake_cuda["bf16"] = False
    assert Runtime.resolve().precision == "none"


def test_without_cuda_auto_is_float32_and_eager_without_a_warning(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Runtime.resolve() == Runtime(torch.device("cpu"), "none", False)
    with pytest.raises(ValueError, match="compile must be one of"):
        Runtime.resolve("cpu", "auto", "sometimes")
