"""The images a model reads (its channels) and the BIDS file each one is.

A channel is named by what it is, and every name maps to one BIDS file of ``sub-<id>/anat``
(of ``sub-<id>/ses-<label>/anat``, its names ``sub-<id>_ses-<label>_...``, in a dataset with
sessions: ``data.bids.scan_id``):

- ``echo-<n>``: the magnitude of echo ``n`` of a multi-echo GRE,
  ``sub-<id>_echo-<n>_part-mag_MEGRE.nii.gz``. Echo 1 of the method's sequence is
  neuromelanin (NM) sensitive, so a model that reads ``echo-1`` and no ``NM`` image takes
  its NM volume ratio on echo 1 (METHOD.md).
- ``NM``: a single-echo NM-MRI image (an MT-prepared GRE or TSE slab),
  ``sub-<id>_acq-NM_T1w.nii.gz``: BIDS files such a scan as a T1-weighted anatomical image
  and its ``acq`` entity says how it was acquired. An ``MTRmap`` is not accepted in its
  place: it is a ratio derived from an MT-on and an MT-off scan, another contrast on another
  scale, and the NM volume ratio on it would be another measure. Neither is a MEGRE echo:
  it belongs to the multi-echo protocol, whose first echo is ``echo-1``.
- ``Chimap``: the QSM susceptibility map (ppm), ``sub-<id>_Chimap.nii.gz``.

Each is read as ``.nii`` too, a MEGRE echo also without its ``part-mag`` entity
(``sub-<id>_echo-<n>_MEGRE.nii.gz``), and a file with other entities (``acq-``, ``run-``)
too, chosen by a dataset's filter where several fit (``sn_platform.data.bids_filter``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NM = "NM"
CHIMAP = "Chimap"
ECHO_CHANNEL = re.compile(r"echo-([1-9][0-9]*)")
MEGRE_ECHOES = ("echo-1", "echo-2", "echo-3")  # the method's channels


def echo_channel(number: int) -> str:
    """Channel name of the magnitude of echo ``number`` (1-based)."""
    return f"echo-{int(number)}"


def echo_number(name: str) -> int | None:
    """Echo number of an ``echo-<n>`` channel; None for another channel."""
    match = ECHO_CHANNEL.fullmatch(name)
    return int(match.group(1)) if match else None


def check_channels(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or a ValueError naming the first unknown or repeated one."""
    names = tuple(str(name) for name in names)
    if not names:
        raise ValueError("channels: a model reads at least one image (echo-1, NM, Chimap)")
    for name in names:
        if name not in (NM, CHIMAP) and echo_number(name) is None:
            raise ValueError(
                f"channels: unknown channel {name!r}; known: echo-<n> (a MEGRE echo "
                f"magnitude, n >= 1), {NM} (a single-echo NM image), {CHIMAP} (QSM)"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"channels: each channel once, got {list(names)}")
    return names


def channel_filename(scan: str, name: str) -> str:
    """BIDS file name of channel ``name`` of scan ``scan`` (no ``sub-``: ``01``, or
    ``01_ses-pre`` for a session, ``data.bids.scan_id``)."""
    check_channels([name])
    if name == NM:
        return f"sub-{scan}_acq-NM_T1w.nii.gz"
    if name == CHIMAP:
        return f"sub-{scan}_Chimap.nii.gz"
    return f"sub-{scan}_echo-{echo_number(name)}_part-mag_MEGRE.nii.gz"


NIFTI_EXTENSIONS = (".nii.gz", ".nii")


def channel_key(name: str) -> str:
    """TorchIO subject key of channel ``name`` (``echo-1`` -> ``echo1``)."""
    return name.replace("-", "")


def key_echo_number(key: str) -> int | None:
    """Echo number of the TorchIO key of an ``echo-<n>`` channel (``echo2`` -> 2), the
    inverse of ``channel_key``; None for another key."""
    return echo_number(key.replace("echo", "echo-", 1)) if key.startswith("echo") else None


def is_magnitude(name: str) -> bool:
    """Whether a channel is a magnitude image (non-negative; not the QSM map)."""
    return name != CHIMAP


def nm_channel(names: Sequence[str]) -> str | None:
    """The channel the NM volume ratio is taken on: ``NM``, else ``echo-1``, else None."""
    for candidate in (NM, echo_channel(1)):
        if candidate in names:
            return candidate
    return None


def describe(name: str) -> str:
    """A channel in words, for model cards and errors."""
    if name == NM:
        return "a single-echo NM-MRI image, acq-NM_T1w"
    if name == CHIMAP:
        return "the QSM map, Chimap"
    return f"the magnitude of MEGRE echo {echo_number(name)}"
