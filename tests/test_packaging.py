"""A wheel carries its configs: the entry points compose them from outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed from its wheel (no dependencies) into a folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"),
         str(REPOSITORY)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("sn_platform-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "sn_platform/conf/config.yaml" in names
    assert "sn_platform/conf/model/vnet_paper.yaml" in names
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return target


@pytest.mark.parametrize(
    ("entry", "arguments"),
    [
        ("phantom", ["subjects=1"]),
        ("train", ["experiment=paper"]),
        ("sweep", ["tune=demo"]),
        ("infer", ["input=in", "output=out"]),
    ],
)
def test_entry_points_compose_the_installed_configs_from_any_folder(
    installed, tmp_path, entry, arguments
):
    script = (
        f"import sn_platform, sn_platform.cli as cli; print(sn_platform.__file__); cli.{entry}()"
    )
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", script, "--cfg", "job", *arguments],
        capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0].startswith(str(installed))
    assert "_target_" in result.stdout
