"""Per-subject claims in an output folder: two sn-infer runs on one folder share the work
instead of writing the same subject at once.

A claim is an exclusive ``flock`` on ``.claims/sub-<id>.lock`` in the output folder. The
kernel drops it when its process ends, however it ends, so a crashed run never leaves a
stale claim behind (on NFS, flock needs a server with lock support: NFSv4 or lockd).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

CLAIMS = ".claims"

T = TypeVar("T")


@contextlib.contextmanager
def claim(output: Path, participant_id: str, wait: bool) -> Iterator[bool]:
    """Hold the claim on one subject while the block runs; yields whether it is held.

    ``wait`` blocks until another process lets the claim go; otherwise a claim held
    elsewhere yields False at once.
    """
    folder = Path(output) / CLAIMS
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / f"sub-{participant_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def share_work(
    output: Path,
    participant_ids: Sequence[str],
    run_one: Callable[[str], T],
    on_held: Callable[[list[str]], None] | None = None,
) -> list[T]:
    """``run_one(id)`` for every subject, each under its claim; results in input order.

    Subjects another process holds are left for last: ``on_held`` hears which, then each
    is waited for and ``run_one`` runs on it too (it finds the other's outputs complete and
    reads them, or redoes the subject the other gave up).
    """
    results: dict[str, T] = {}
    for participant_id in participant_ids:
        with claim(output, participant_id, wait=False) as mine:
            if mine:
                results[participant_id] = run_one(participant_id)
    held = [p for p in participant_ids if p not in results]
    if held and on_held is not None:
        on_held(held)
    for participant_id in held:
        with claim(output, participant_id, wait=True):
            results[participant_id] = run_one(participant_id)
    return [results[p] for p in participant_ids]
