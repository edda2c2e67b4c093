"""A wheel carries its configs: the entry points compose them from outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def test_the_build_lists_every_package_and_maps_conf_into_the_package():
    setuptools = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {
        ".".join(init.parent.relative_to(REPOSITORY).parts)
        for init in (REPOSITORY / "sn_platform").rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == packages | {"sn_platform.conf"}
    assert setuptools["package-dir"] == {"sn_platform.conf": "conf"}
    assert (REPOSITORY / "conf" / "config.yaml").is_file()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package installed from its wheel (no dependencies) into a folder of its own."""
    work = tmp_path_factory.mktemp("wheel")
    source = _copy_of_the_checkout(work / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"),
         str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = (work / "dist").glob("sn_platform-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    configs = {p.relative_to(REPOSITORY).as_posix() for p in (REPOSITORY / "conf").rglob("*.yaml")}
    assert {f"sn_platform/{name}" for name in configs} <= set(names)
    assert "sn_platform/data/atlases/nuclei_mni.nii.gz" in names
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return target


def _copy_of_the_checkout(destination: Path) -> Path:
    """The files git tracks or would track, copied: the build writes its build/ and egg-info
    there, and a stale build/lib of the checkout cannot stand in for a missing mapping."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPOSITORY, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    for name in filter(None, listing.split("\0")):
        if (REPOSITORY / name).is_file():  # a tracked file deleted in the work tree is listed
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPOSITORY / name, destination / name)
    return destination


@pytest.mark.slow
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
        "import sn_platform.cli as cli, sn_platform.composition as c; print(c.CONFIG_DIR); "
        f"cli.{entry}()"
    )
    environment = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [sys.executable, "-c", script, "--cfg", "job", *arguments],
        capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0] == str((installed / "sn_platform" / "conf").resolve())
    assert "_target_" in result.stdout
