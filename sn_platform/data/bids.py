"""BIDS layout of the platform: file naming, subject discovery and input validation.

Layout (METHOD.md; the channels a model may read are in ``sn_platform.data.channels``)::

    sub-<id>/anat/sub-<id>_echo-<n>_part-mag_MEGRE.nii.gz
    sub-<id>/anat/sub-<id>_acq-NM_T1w.nii.gz                  (a single-echo NM-MRI slab)
    sub-<id>/anat/sub-<id>_Chimap.nii.gz
    derivatives/<source>/sub-<id>/anat/sub-<id>_label-<name>_mask.nii.gz   (label_files)
    derivatives/truth/sub-<id>/anat/sub-<id>_dseg.nii.gz   (phantom: tissue classes, dseg.tsv)

A dataset with sessions has one more folder and entity, in the inputs, the labels and the
outputs alike: ``sub-<id>/ses-<label>/anat/sub-<id>_ses-<label>_Chimap.nii.gz``. Each
session is a scan of its own, named by its scan id (``scan_id``: ``01`` without sessions,
``01_ses-pre`` with them), the part of its file names after ``sub-``.

Every problem a user's data can have raises ``DataValidationError`` whose message starts
with the offending file and says what is wrong, on one line.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from sn_platform.data.bids_filter import (
    NO_FILTER,
    BidsFilter,
    BidsName,
    ambiguity_problem,
    choose_file,
    fitting_files,
    near_miss_problem,
    one_series_problem,
    scan_files,
)
from sn_platform.data.channels import (
    CHIMAP,
    MEGRE_ECHOES,
    NM,
    channel_filename,
    describe,
    echo_channel,
    echo_number,
    is_magnitude,
    nm_channel,
)
from sn_platform.data.disk_cache import content_key, read_record, write_record
from sn_platform.data.label_files import (
    choose_label,
    label_ambiguity_problem,
    label_candidates,
    label_near_miss_problem,
    series_entities,
)
from sn_platform.errors import UsageError, one_line

BIDS_LABEL = re.compile(r"[A-Za-z0-9]+")


class DataValidationError(UsageError):
    """A dataset file is missing or malformed; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


SESSION_ENTITY = "_ses-"


def scan_id(participant_id: str, session: str | None = None) -> str:
    """The id of one scan: the participant label (``01``), with its session where the
    dataset has sessions (``01_ses-pre``); ``sub-<scan id>`` starts each of its file names."""
    return participant_id if session is None else f"{participant_id}{SESSION_ENTITY}{session}"


def split_scan_id(scan: str) -> tuple[str, str | None]:
    """(participant label, session label or None) of a scan id (``scan_id``'s inverse)."""
    participant_id, separator, session = scan.partition(SESSION_ENTITY)
    return participant_id, session if separator else None


def scans_in_words(scans: Sequence[str]) -> str:
    """``subjects``, or ``scans (N subjects, sessions)`` where ``scans`` has sessions."""
    participants = {split_scan_id(scan)[0] for scan in scans}
    if len(participants) == len(scans):
        return "subjects"
    return f"scans ({len(participants)} subjects, sessions)"


def scan_columns(scan: str) -> dict[str, str]:
    """The BIDS table columns that name a scan: ``participant_id`` (``sub-01``) and, for a
    session, ``session_id`` (``ses-pre``)."""
    participant_id, session = split_scan_id(scan)
    columns = {"participant_id": f"sub-{participant_id}"}
    return columns if session is None else {**columns, "session_id": f"ses-{session}"}


def scan_of_row(row: Mapping[str, object]) -> str:
    """The scan id of a table row that ``scan_columns`` named (``scan_columns``' inverse)."""
    session = row.get("session_id")
    participant_id = str(row["participant_id"]).removeprefix("sub-")
    if session in (None, "", "n/a"):
        return scan_id(participant_id)
    return scan_id(participant_id, str(session).removeprefix("ses-"))


def subject_dir(root: Path, scan: str) -> Path:
    """``root/sub-<id>/anat``, or ``root/sub-<id>/ses-<label>/anat`` for a session's scan
    id (``scan_id``)."""
    participant_id, session = split_scan_id(scan)
    subject = Path(root) / f"sub-{participant_id}"
    return (subject if session is None else subject / f"ses-{session}") / "anat"


def channel_path(root: Path, scan: str, channel: str) -> Path:
    """The file of channel ``channel`` (``echo-1``, ``NM``, ``Chimap``) of a scan."""
    return subject_dir(root, scan) / channel_filename(scan, channel)


def find_channel(
    root: Path, scan: str, channel: str, bids_filter: BidsFilter = NO_FILTER
) -> Path | None:
    """The scan's file of ``channel`` (``sn_platform.data.bids_filter``: the file with the
    channel's suffix and entities, as ``bids_filter`` chooses them, nearest the canonical
    name); None if no file fits.

    Raises
    ------
    DataValidationError
        naming the files, when several fit alike (``run-1`` and ``run-2``).
    """
    participant_id, session = split_scan_id(scan)
    folder = subject_dir(root, scan)
    query = bids_filter.query(channel)
    path, alike = choose_file(fitting_files(folder, participant_id, session, query), query)
    if alike:
        raise DataValidationError(folder, ambiguity_problem(channel, alike))
    return path


def missing_channel_problem(
    root: Path, scan: str, channel: str, bids_filter: BidsFilter = NO_FILTER
) -> str:
    """Why the scan has no file of ``channel``, where a near miss tells
    (``bids_filter.near_miss_problem``); '' otherwise."""
    participant_id, session = split_scan_id(scan)
    files = scan_files(subject_dir(root, scan), participant_id, session)
    return near_miss_problem(files, bids_filter.query(channel), channel)


def echo_path(root: Path, scan: str, echo: int) -> Path:
    """Magnitude image of echo ``echo`` (1-based)."""
    return channel_path(root, scan, echo_channel(echo))


def chimap_path(root: Path, scan: str) -> Path:
    """QSM susceptibility map (ppm)."""
    return channel_path(root, scan, CHIMAP)


def label_path(root: Path, source: str, scan: str, label: str, suffix: str = "mask") -> Path:
    """Label image under ``derivatives/<source>`` (``suffix`` mask or probseg)."""
    return (
        subject_dir(Path(root) / "derivatives" / source, scan)
        / f"sub-{scan}_label-{label}_{suffix}.nii.gz"
    )


def find_label(
    root: Path, source: str, scan: str, label: str, image: Path | None = None
) -> Path | None:
    """The scan's mask of ``label`` under ``derivatives/<source>`` drawn on ``image``'s
    series (``sn_platform.data.label_files``: ``sub-01_label-SN_mask.nii.gz``, or
    ``sub-01_run-2_label-SN_mask.nii`` for a ``run-2`` image); None when none fits.

    Raises
    ------
    DataValidationError
        naming the masks, when several fit alike (``desc-rater1`` and ``desc-rater2``).
    """
    folder, candidates = _label_candidates(root, source, scan, label)
    path, alike = choose_label(candidates, series_entities(image))
    if alike:
        raise DataValidationError(folder, label_ambiguity_problem(label, alike))
    return path


def _label_candidates(
    root: Path, source: str, scan: str, label: str
) -> tuple[Path, list[tuple[Path, BidsName]]]:
    """The scan's folder under ``derivatives/<source>`` and its masks of ``label``
    (``label_files.label_candidates``)."""
    participant_id, session = split_scan_id(scan)
    folder = subject_dir(Path(root) / "derivatives" / source, scan)
    return folder, label_candidates(folder, participant_id, session, label)


def find_labels(
    root: Path, source: str, scan: str, names: Iterable[str], image: Path | None = None
) -> dict[str, Path]:
    """Label name -> mask (``find_label``) of each of ``names`` the scan has."""
    found = {name: find_label(root, source, scan, name, image) for name in names}
    return {name: path for name, path in found.items() if path is not None}


def label_near_miss(
    root: Path, source: str, scan: str, label: str, image: Path | None = None
) -> str:
    """The masks of ``label`` the scan has that are not read for ``image``, each with why
    (``label_files.label_conflict``); '' where it has none."""
    _, candidates = _label_candidates(root, source, scan, label)
    return label_near_miss_problem(candidates, series_entities(image))


def missing_label_error(
    root: Path, source: str, scan: str, label: str, image: Path | None = None
) -> DataValidationError:
    """The error of a scan without a mask of ``label`` (``find_label``), naming the masks
    of ``label`` it has and why none is read (``label_near_miss``)."""
    hint = label_near_miss(root, source, scan, label, image)
    problem = f"missing {label} label" + (f"; {hint}" if hint else "")
    return DataValidationError(label_path(root, source, scan, label), problem)


def dseg_path(root: Path, scan: str, source: str = "truth") -> Path:
    """Tissue label map (one integer class per voxel) under ``derivatives/<source>``; its
    classes are listed in ``dseg_table_path``."""
    return subject_dir(Path(root) / "derivatives" / source, scan) / f"sub-{scan}_dseg.nii.gz"


def dseg_table_path(root: Path, source: str = "truth") -> Path:
    """``derivatives/<source>/dseg.tsv``: the classes (index, name) of every dseg there."""
    return Path(root) / "derivatives" / source / "dseg.tsv"


@dataclass(frozen=True)
class SubjectRecord:
    """Files of one scan: a subject, or one session of a subject.

    ``session`` is the session label where the dataset has sessions (else None);
    ``channels`` maps each channel a model reads (``echo-1``, ``NM``, ``Chimap``), in
    channel order, to its file; the first is the grid everything is predicted onto.
    ``chimap`` is the QSM map where the subject has one (read or not), ``anatomy`` a
    magnitude image beside channels that hold none (a QSM-only model's: the subject's MEGRE
    echo 1 or NM image), which a template can be registered to; ``labels`` maps a label
    name (SN, RN) to its mask file; ``tissues`` is the tissue label map (``dseg_path``)
    when training renders images from it.
    """

    participant_id: str
    channels: dict[str, Path]
    chimap: Path | None = None
    labels: dict[str, Path] = field(default_factory=dict)
    group: str | None = None
    site: str | None = None
    tissues: Path | None = None
    anatomy: Path | None = None
    session: str | None = None

    @property
    def scan(self) -> str:
        """The scan id (``scan_id``): what ``sub-`` precedes in each of its file names."""
        return scan_id(self.participant_id, self.session)

    @property
    def grid_image(self) -> Path:
        """The first channel's file, whose grid predictions and measures are on."""
        return next(iter(self.channels.values()))

    @property
    def nm_image(self) -> Path | None:
        """The channel the NM volume ratio is taken on (``channels.nm_channel``), or None."""
        name = nm_channel(list(self.channels))
        return None if name is None else self.channels[name]

    @property
    def anatomical_image(self) -> Path | None:
        """The first magnitude channel, else ``anatomy``, else None."""
        magnitudes = [path for name, path in self.channels.items() if is_magnitude(name)]
        return magnitudes[0] if magnitudes else self.anatomy


def read_participants(root: Path) -> dict[str, dict[str, str]]:
    """Rows of ``participants.tsv`` keyed by id without the ``sub-`` prefix ({} if absent)."""
    path = Path(root) / "participants.tsv"
    if not path.exists():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataValidationError(path, f"not a UTF-8 TSV table ({one_line(error, 120)})") from None
    if rows and "participant_id" not in rows[0]:
        raise DataValidationError(path, "no participant_id column")
    # A short row has no id (None): it describes no one.
    named = [row for row in rows if row["participant_id"]]
    return {row["participant_id"].removeprefix("sub-"): row for row in named}


def find_scans(root: Path) -> list[str]:
    """The scan ids (``scan_id``) of a dataset, sorted: one per ``sub-<id>`` folder with an
    ``anat`` folder, and one per ``ses-<label>`` folder of it with an ``anat`` folder (a
    subject with neither is listed, for its missing files to be named). A folder whose name
    is no BIDS label is listed as it is, for ``check_scan_id`` to refuse where it is read."""
    scans = []
    for subject in sorted(p for p in Path(root).glob("sub-*") if p.is_dir()):
        participant_id = subject.name.removeprefix("sub-")
        if not BIDS_LABEL.fullmatch(participant_id):
            scans.append(participant_id)
            continue
        sessions = [
            scan_id(participant_id, folder.name.removeprefix("ses-"))
            for folder in sorted(subject.glob("ses-*"))
            if (folder / "anat").is_dir()
        ]
        alone = (subject / "anat").is_dir() or not sessions
        scans += [participant_id] * alone + sessions
    return list(dict.fromkeys(scans))


def check_scan_id(root: Path, scan: str) -> None:
    """Refuse a scan id whose participant or session label is not a BIDS label (letters
    and digits: nothing that leads out of the dataset).

    Raises
    ------
    DataValidationError
        naming the scan's folder.
    """
    listed_as_is = Path(root) / f"sub-{scan}"  # a folder such as sub-01_ses-pre
    if listed_as_is.is_dir() and not BIDS_LABEL.fullmatch(scan):
        raise DataValidationError(
            listed_as_is, "not a BIDS participant label (letters and digits only)"
        )
    participant_id, session = split_scan_id(scan)
    for entity, label in (("participant", participant_id), ("session", session)):
        if label is not None and not BIDS_LABEL.fullmatch(label):
            raise DataValidationError(
                subject_dir(root, scan).parent,
                f"not a BIDS {entity} label (letters and digits only)",
            )


def select_scans(root: Path, found: Sequence[str], wanted: Iterable[str | int]) -> list[str]:
    """The scans of ``found`` that ``wanted`` names, in ``found``'s order: a participant
    (``01``, ``sub-01``, or 1 for ``sub-01``) names each of its sessions, a scan id
    (``01_ses-pre``) one session.

    Raises
    ------
    DataValidationError
        on ``root`` naming what ``wanted`` holds that no folder matches, or on a wanted
        folder whose name is no BIDS label (``check_scan_id``).
    """
    matched: set[str] = set()
    unknown = []
    for item in wanted:
        text = str(item).removeprefix("sub-")
        check_scan_id(root, text)
        participant_id, session = split_scan_id(text)
        matches = (
            {text}
            if text in found
            else {  # a folder's own id names it alone
                scan
                for scan in found
                if _same_label(split_scan_id(scan)[0], participant_id)
                and (session is None or split_scan_id(scan)[1] == session)
            }
        )
        if not matches:
            unknown.append(text)
        matched |= matches
    if unknown:
        raise DataValidationError(root, f"no folder for subjects {', '.join(unknown)}")
    return [scan for scan in found if scan in matched]


def _same_label(found: str, wanted: str) -> bool:
    """Whether a participant label names a folder's: equal, or equal as numbers (1, 01)."""
    return found == wanted or (found.isdigit() and wanted.isdigit() and int(found) == int(wanted))


def discover_subjects(
    root: Path | str,
    channels: Sequence[str] = MEGRE_ECHOES,
    label_source: str | None = "manual",
    labels: Sequence[str] = ("SN",),
    optional_labels: Sequence[str] = ("RN",),
    subjects: Iterable[str] | None = None,
    tissues: bool = False,
    bids_filter: BidsFilter = NO_FILTER,
) -> list[SubjectRecord]:
    """Find the scans of a BIDS dataset (a subject's sessions each one; ``find_scans``) and
    the files the platform reads.

    Parameters
    ----------
    root : dataset root (holds ``sub-*`` folders)
    channels : the images read (``sn_platform.data.channels``), in channel order
    label_source : derivatives folder of the labels (``manual``), or None for no labels
    labels : labels every scan must have
    optional_labels : labels used when present (the RN picks the slab)
    subjects : participants or scan ids to keep (``select_scans``); all when None
    tissues : also find every scan's tissue label map (``dseg_path``, ``derivatives/truth``),
        which synthetic contrasts are rendered from in training
    bids_filter : which file each channel is where several fit (``bids_filter``)

    Raises
    ------
    DataValidationError
        naming the missing file, when a channel, a required label or (with ``tissues``) the
        tissue label map is missing, or the files, when several fit a channel alike.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataValidationError(root, "dataset folder does not exist")
    found = find_scans(root)
    wanted = found if subjects is None else select_scans(root, found, subjects)
    if not wanted:
        raise DataValidationError(root, "no sub-* folders found")
    for scan in wanted:
        check_scan_id(root, scan)
    participants = read_participants(root)
    records = []
    for scan in wanted:
        images = _channel_files(root, scan, channels, bids_filter)
        grid_image = next(iter(images.values()), None)
        label_files = {}
        if label_source is not None:
            label_files = find_labels(
                root, label_source, scan, (*labels, *optional_labels), grid_image
            )
            for name in labels:
                if name not in label_files:
                    raise missing_label_error(root, label_source, scan, name, grid_image)
        tissue_map = dseg_path(root, scan) if tissues else None
        if tissue_map is not None and not tissue_map.exists():
            raise DataValidationError(
                tissue_map,
                "missing tissue label map (dseg), which augment=synth renders images from; "
                "write one per subject or choose another augmentation",
            )
        participant_id, session = split_scan_id(scan)
        row = participants.get(participant_id, {})
        records.append(
            SubjectRecord(
                participant_id=participant_id,
                channels=images,
                chimap=find_channel(root, scan, CHIMAP, bids_filter),
                labels=label_files,
                group=row.get("group"),
                site=row.get("site"),
                tissues=tissue_map,
                anatomy=_anatomy(root, scan, channels, bids_filter),
                session=session,
            )
        )
    return records


def with_labels_from(
    record: SubjectRecord, root: Path, source: str, names: Sequence[str]
) -> SubjectRecord:
    """``record`` with each label of ``names`` it lacks taken from ``derivatives/<source>``
    where that folder has it (a teacher model's masks filling partial labels); the labels
    it has are kept."""
    lacking = [name for name in names if name not in record.labels]
    found = find_labels(root, source, record.scan, lacking, record.grid_image)
    return replace(record, labels={**record.labels, **found}) if found else record


def missing_channels(
    root: Path, scan: str, channels: Sequence[str], bids_filter: BidsFilter = NO_FILTER
) -> list[str]:
    """The channels among ``channels`` no file of the scan fits, in channel order (one
    that several files fit is not missing: ``find_channel`` names them)."""
    participant_id, session = split_scan_id(scan)
    folder = subject_dir(root, scan)
    return [
        name
        for name in channels
        if not fitting_files(folder, participant_id, session, bids_filter.query(name))
    ]


def _channel_files(
    root: Path, scan: str, channels: Sequence[str], bids_filter: BidsFilter
) -> dict[str, Path]:
    """Channel name -> file of one scan; a missing one raises, naming it and the channels
    (and a near miss: ``missing_channel_problem``)."""
    files = {name: find_channel(root, scan, name, bids_filter) for name in channels}
    missing = [name for name, path in files.items() if path is None]
    if missing:
        hint = missing_channel_problem(root, scan, missing[0], bids_filter)
        raise DataValidationError(
            channel_path(root, scan, missing[0]),
            f"missing channel {missing[0]}, {describe(missing[0])}, of the channels read "
            f"{list(channels)}" + (f"; {hint}" if hint else ""),
        )
    found = {name: path for name, path in files.items() if path is not None}
    echoes = [path for name, path in found.items() if echo_number(name) is not None]
    if problem := one_series_problem(echoes):
        raise DataValidationError(subject_dir(root, scan), problem)
    return found


def magnitude_path(root: Path, scan: str, bids_filter: BidsFilter = NO_FILTER) -> Path | None:
    """The scan's MEGRE echo 1, else its NM image, where it has one; else None."""
    for name in (echo_channel(1), NM):
        path = find_channel(root, scan, name, bids_filter)
        if path is not None:
            return path
    return None


def _anatomy(
    root: Path, scan: str, channels: Sequence[str], bids_filter: BidsFilter
) -> Path | None:
    """For channels without a magnitude image (a QSM-only model), ``magnitude_path``; else
    None (``SubjectRecord.anatomical_image``)."""
    if any(is_magnitude(name) for name in channels):
        return None
    return magnitude_path(root, scan, bids_filter)


@dataclass(frozen=True)
class Geometry:
    """Grid of a subject: spatial shape (voxels) and (4, 4) voxel-to-world affine (mm)."""

    shape: tuple[int, int, int]
    affine: NDArray[np.float64]

    @property
    def voxel_mm(self) -> tuple[float, float, float]:
        """Voxel size (mm) along the stored axes."""
        x, y, z = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return (float(x), float(y), float(z))


def _opened_volume(path: Path) -> nib.Nifti1Image | nib.Nifti2Image:
    """The NIfTI image at ``path`` with its header checked (``load_volume``), its voxels
    not yet read."""
    try:
        image = nib.load(path)
    except Exception as error:  # nibabel raises many types for a bad file
        raise DataValidationError(path, f"unreadable file ({one_line(error, 200)})") from error
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise DataValidationError(path, f"not a NIfTI image ({type(image).__name__})")
    dtype = image.get_data_dtype()
    if dtype.names is not None or not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise DataValidationError(path, f"unsupported data type {dtype}")
    if np.issubdtype(dtype, np.complexfloating):
        raise DataValidationError(path, f"complex data type {dtype}; magnitude images are expected")
    if len(image.shape) != 3:
        raise DataValidationError(
            path, f"{len(image.shape)}D image of shape {image.shape}; a 3D volume is expected"
        )
    _check_header(path, image)
    return image


def _geometry(image: nib.Nifti1Image | nib.Nifti2Image) -> Geometry:
    shape = (int(image.shape[0]), int(image.shape[1]), int(image.shape[2]))
    return Geometry(shape=shape, affine=np.asarray(image.affine, dtype=np.float64))


def load_volume(path: Path, kind: str = "image") -> tuple[NDArray[np.float64], Geometry]:
    """Read a 3D NIfTI volume and check it; ``kind`` "label" also checks it is binary,
    "dseg" that it holds classes (non-negative integers).

    Raises
    ------
    DataValidationError
        unreadable or truncated file, not 3D, non-numeric data, NaN/Inf, non-binary label,
        a dseg of other values than classes.
    """
    image = _opened_volume(path)
    try:
        data = np.asarray(image.dataobj, dtype=np.float64)
    except Exception as error:
        raise DataValidationError(
            path, f"unreadable or truncated data ({one_line(error, 200)})"
        ) from error
    finite = np.isfinite(data)
    if not finite.all():
        raise DataValidationError(path, f"{int((~finite).sum())} NaN/Inf voxels")
    if kind == "label" and not ((data == 0.0) | (data == 1.0)).all():
        shown = ", ".join(f"{v:g}" for v in np.unique(data)[:6])  # a sort only to name them
        raise DataValidationError(path, f"label is not binary (values {shown})")
    if kind == "dseg":
        odd = np.unique(data[(data < 0.0) | (data != np.round(data))])
        if odd.size:
            shown = ", ".join(f"{v:g}" for v in odd[:6])
            raise DataValidationError(path, f"dseg holds values that are not classes ({shown})")
    return data, _geometry(image)


# Part of the key under which a file's passed checks are kept: change it whenever
# load_volume's checks change, so that no file skips the new ones.
CHECKS_VERSION = "load_volume-v1"
CHECKED_KIND = "checked-volumes"


def checked_geometry(path: Path, kind: str = "image") -> Geometry:
    """The geometry of the volume at ``path`` once ``load_volume``'s checks of ``kind``
    have passed on its bytes. Files whose bytes passed before (in any process: kept in
    ``data.disk_cache``) have only their header read and checked, so that a sweep's
    trials, its refit and ``sn-infer`` do not decompress every volume again.

    Raises
    ------
    DataValidationError
        as ``load_volume``.
    """
    key = content_key(path, f"{CHECKS_VERSION}:{kind}")
    if read_record(CHECKED_KIND, key) is not None:
        return _geometry(_opened_volume(path))
    _, geometry = load_volume(path, kind)
    write_record(CHECKED_KIND, key, {"kind": kind})
    return geometry


MAX_VOLUME_BYTES = 2**31  # far above any MRI volume: a larger claim is a broken header
QFORM_SFORM_TOLERANCE_MM = 0.01


def _check_header(path: Path, image: nib.Nifti1Image | nib.Nifti2Image) -> None:
    """Refuse what a reader would misread: a size no file holds, an affine with NaN or a
    zero voxel size, and a qform and sform that place the volume differently (viewers and
    libraries differ in which one they use)."""
    claimed = int(np.prod(image.shape)) * image.get_data_dtype().itemsize
    if claimed > MAX_VOLUME_BYTES:
        raise DataValidationError(
            path, f"header claims {claimed / 2**30:.3g} GiB of voxels {image.shape}; broken header"
        )
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise DataValidationError(path, "affine has NaN/Inf entries")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise DataValidationError(path, "affine is singular (a voxel size of 0)")
    header = image.header
    if int(header["qform_code"]) > 0 and int(header["sform_code"]) > 0:
        qform, sform = header.get_qform(), header.get_sform()
        deviation = float(np.abs(qform - sform).max())
        if not np.isfinite(deviation) or deviation > QFORM_SFORM_TOLERANCE_MM:
            raise DataValidationError(
                path, f"qform and sform disagree by {deviation:.4g} mm; fix the header"
            )


def check_same_grid(
    path: Path, geometry: Geometry, reference: Geometry, tolerance_mm: float
) -> None:
    """Raise unless ``geometry`` matches ``reference`` in shape and affine (within mm)."""
    if geometry.shape != reference.shape:
        raise DataValidationError(
            path, f"shape {geometry.shape} differs from the first channel's {reference.shape}"
        )
    deviation = float(np.abs(geometry.affine - reference.affine).max())
    if deviation > tolerance_mm:
        raise DataValidationError(
            path,
            f"affine differs from the first channel's by {deviation:.4g} mm "
            f"(tolerance {tolerance_mm} mm)",
        )


def validate_subject(record: SubjectRecord, tolerance_mm: float = 1e-3) -> Geometry:
    """Check every file of a subject: readable, 3D, finite, binary labels, integer tissue
    classes, one grid (``checked_geometry``: the voxels of a file whose bytes passed
    before are not read again).

    Returns the subject's geometry (that of its first channel).
    """
    reference = checked_geometry(record.grid_image)
    validate_later_channels(record, reference, tolerance_mm)
    others: list[tuple[Path, str]] = []
    if record.chimap is not None and record.chimap not in record.channels.values():
        others.append((record.chimap, "image"))
    others.extend((p, "label") for p in record.labels.values())
    if record.tissues is not None:
        others.append((record.tissues, "dseg"))
    for path, kind in others:
        check_same_grid(path, checked_geometry(path, kind), reference, tolerance_mm)
    return reference


def validate_later_channels(
    record: SubjectRecord, reference: Geometry, tolerance_mm: float = 1e-3
) -> None:
    """Check the channels after the first as ``validate_subject`` does, against the first's
    geometry (for a caller that has read and checked the first, the QSM map and the labels
    itself)."""
    for path in list(record.channels.values())[1:]:
        check_same_grid(path, checked_geometry(path), reference, tolerance_mm)


def dataset_fingerprint(records: Sequence[SubjectRecord]) -> str:
    """SHA-256 (first 16 hex digits) of the contents of every file the records use."""
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: r.scan):
        paths = list(dict.fromkeys([*record.channels.values(), *filter(None, [record.chimap])]))
        paths += [record.labels[name] for name in sorted(record.labels)]
        paths += [record.tissues] if record.tissues else []
        for path in paths:
            digest.update(path.name.encode())
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]
