"""A longitudinal study's layout made from a dataset without sessions."""

from __future__ import annotations

import shutil
from pathlib import Path


def into_sessions(root: Path, participant_id: str, sessions: tuple[str, ...]) -> None:
    """Move a subject's files (inputs and every ``derivatives/<source>``) into session
    folders, each file named with the ``ses`` entity; each session holds a copy of them."""
    for base in (root, *sorted((root / "derivatives").glob("*"))):
        anat = base / f"sub-{participant_id}" / "anat"
        if not anat.is_dir():
            continue
        for session in sessions:
            target = base / f"sub-{participant_id}" / f"ses-{session}" / "anat"
            target.mkdir(parents=True)
            for path in anat.iterdir():
                prefix = f"sub-{participant_id}_"
                shutil.copyfile(path, target / path.name.replace(prefix, f"{prefix}ses-{session}_"))
        shutil.rmtree(anat)
