"""Which mask under ``derivatives/<source>`` is a scan's label: the BIDS derivative name
``sub-<id>[_ses-<label>][_acq-...][_run-...][_space-...]_label-<name>[_desc-...]_mask``.

A label is drawn on an image series: where its name has an entity that names a series
(``acq``, ``ce``, ``rec``, ``dir``, ``run``, ``chunk``: ``SERIES_ENTITIES``), the value is
the one of the image read (``sub-01_run-2_label-SN_mask`` for the ``run-2`` echoes, not for
``run-1``); a label without them fits any series of the scan. A label on another grid
(``space``, ``res``, ``den`` other than the image's; without them in the image, ``space``
may only be ``scanner`` or ``orig``) and a label of one hemisphere (``hemi-L``: the labels
are of both sides) are never read. Of the labels that fit, the one naming most of the
series' entities is read, then the one with fewest other entities (the plain
``sub-01_label-SN_mask`` before ``..._desc-eroded_mask``); two left alike (``desc-rater1``,
``desc-rater2``) are ambiguous.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sn_platform.data.bids_filter import BidsName, parse_bids_name, same_value, scan_files
from sn_platform.data.channels import NIFTI_EXTENSIONS

LABEL_SUFFIX = "mask"
SERIES_ENTITIES = ("acq", "ce", "rec", "dir", "run", "chunk")
# Entities of a derivative resampled to another grid than its source's.
GRID_ENTITIES = ("space", "res", "den")
# ``space`` values of an image's own grid where the image names none (BIDS: ``scanner``;
# several tools write ``orig``).
NATIVE_SPACES = ("scanner", "orig")
_OWN_ENTITIES = ("sub", "ses", "label")


def series_entities(image: Path | None) -> dict[str, str]:
    """The ``SERIES_ENTITIES`` and ``GRID_ENTITIES`` of the image a label is drawn on
    (``{}`` without one)."""
    name = None if image is None else parse_bids_name(image.name)
    if name is None:
        return {}
    kept = (*SERIES_ENTITIES, *GRID_ENTITIES)
    return {k: v for k, v in name.entities.items() if k in kept}


def label_candidates(
    folder: Path, participant_id: str, session: str | None, label: str
) -> list[tuple[Path, BidsName]]:
    """The masks of ``label`` in ``folder`` named for the scan, whatever their other
    entities and the case of the label (``label-sn`` is the SN's), and the masks without a
    ``label`` entity that name it by ``desc`` (never read: ``label_conflict``), sorted by
    name."""

    def names_label(name: BidsName) -> bool:
        given = name.entities.get("label", name.entities.get("desc", ""))
        return given.lower() == label.lower()

    return [
        (path, name)
        for path, name in scan_files(folder, participant_id, session)
        if name.suffix == LABEL_SUFFIX and names_label(name)
    ]


def label_conflict(name: BidsName, series: dict[str, str]) -> str:
    """Why the mask ``name`` is not a label of the image series ``series``
    (``series_entities``): '' where it is."""
    if "label" not in name.entities:
        desc = name.entities.get("desc")
        return f"names its structure by desc-{desc}, where label-{desc} is read"
    if (hemi := name.entities.get("hemi")) is not None:
        return f"is of one hemisphere (hemi-{hemi}), where a label of both sides is read"
    for key in GRID_ENTITIES:
        found, wanted = name.entities.get(key), series.get(key)
        native = key == "space" and wanted is None and found in NATIVE_SPACES
        if found is not None and found != wanted and not native:
            return f"is on another grid ({key}-{found}) than the image read"
    for key in SERIES_ENTITIES:
        found, wanted = name.entities.get(key), series.get(key)
        if found is not None and (wanted is None or not same_value(found, wanted)):
            read = f"{key}-{wanted}" if wanted is not None else f"no {key}"
            return f"is drawn on {key}-{found} where {read} is read"
    return ""


def choose_label(
    candidates: Sequence[tuple[Path, BidsName]], series: dict[str, str]
) -> tuple[Path | None, list[Path]]:
    """The mask read among ``candidates`` for the image series ``series``, and the masks
    that fit alike when none can be chosen (then no mask); see the module docstring."""
    fits = [(path, name) for path, name in candidates if not label_conflict(name, series)]
    if not fits:
        return None, []

    def rank(name: BidsName) -> tuple[int, int]:
        named = sum(key in name.entities for key in SERIES_ENTITIES)
        others = len(set(name.entities) - set(SERIES_ENTITIES) - set(_OWN_ENTITIES))
        return -named, others

    best = min(rank(name) for _, name in fits)
    nearest = [(path, name) for path, name in fits if rank(name) == best]
    stems = {name.stem for _, name in nearest}
    if len(stems) > 1:
        return None, [path for path, _ in nearest]
    return min(nearest, key=lambda fit: NIFTI_EXTENSIONS.index(fit[1].extension))[0], []


def label_ambiguity_problem(label: str, alike: Sequence[Path]) -> str:
    """Why ``alike`` (masks that fit ``label`` alike) refuse the scan's labels."""
    return (
        f"{len(alike)} files are the {label} label ({', '.join(p.name for p in alike)}): "
        "keep one, or move the others to a derivatives folder of their own "
        "(data.label_source; sn-infer: label_source)"
    )


def label_near_miss_problem(
    candidates: Sequence[tuple[Path, BidsName]], series: dict[str, str]
) -> str:
    """Why none of ``candidates`` is read for the series ``series``: each file and its
    conflict; '' without candidates."""
    return "; ".join(f"{path.name} {label_conflict(name, series)}" for path, name in candidates)
