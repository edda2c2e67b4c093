"""The stage boundaries hold, and the contracts that guard them catch a breach."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contracts on the package found in ``package_parent``."""
    environment = {"PYTHONPATH": str(package_parent), "PATH": str(LINT_IMPORTS.parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPOSITORY / "pyproject.toml"), "--no-cache"],
        capture_output=True, text=True, cwd=package_parent, env=environment, timeout=120,
    )  # fmt: skip


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")
def test_contracts_fail_when_a_core_module_imports_mlflow(tmp_path):
    shutil.copytree(REPOSITORY / "sn_platform", tmp_path / "sn_platform")
    clean = _lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout[-2000:]
    metrics = tmp_path / "sn_platform" / "evaluation" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nimport mlflow  # noqa\n")
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "sn_platform.evaluation.metrics -> mlflow" in broken.stdout


def test_importing_the_core_loads_no_framework():
    script = (
        "import sys, sn_platform.models, sn_platform.data.loaders, sn_platform.evaluation.metrics, "
        "sn_platform.training.engine, sn_platform.inference.batch\n"
        "print(sorted(m for m in ('omegaconf', 'hydra', 'ray', 'mlflow') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed")
def test_contracts_fail_on_an_import_circle_even_under_type_checking(tmp_path):
    shutil.copytree(REPOSITORY / "sn_platform", tmp_path / "sn_platform")
    spec = tmp_path / "sn_platform" / "training" / "spec.py"
    spec.write_text(
        spec.read_text()
        + "\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
        + "    from sn_platform.training.run import train_and_evaluate  # noqa\n"
    )
    broken = _lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "No import circle" in broken.stdout and "BROKEN" in broken.stdout
    assert "- .spec -> .run (1 import)" in broken.stdout  # the circle, and how to break it
