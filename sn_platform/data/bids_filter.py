"""Which file of a scan each channel is: the channel's BIDS entities, a dataset's filter
over them (fMRIPrep's ``--bids-filter-file`` habit), and the choice among the files that fit.

A channel (``sn_platform.data.channels``) is a query: a suffix and entities, e.g. ``echo-2``
is ``MEGRE`` with ``echo-2`` and ``part-mag`` (or no ``part``: BIDS before 1.5). A file of
the scan's ``anat`` folder fits when it has the suffix and every entity of the query;
entities the query does not name (``acq-``, ``rec-``, ``run-`` ...) are allowed. Where
several files fit, the one with the fewest such entities is read (the canonical name wins);
two of them alike (``run-1``, ``run-2``) are ambiguous and a filter chooses:
``{MEGRE: {run: 2}}`` (every echo), ``{NM: {acq: neuromelanin}}`` (a lab's own ``acq``
label for its NM slab), ``{Chimap: {rec: null}}`` (no ``rec`` entity). A phase image is
never read (``part`` is ``mag`` or absent), and the echoes of a scan are one series (the
same entities but ``echo``: ``one_series_problem``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sn_platform.data.channels import CHIMAP, NIFTI_EXTENSIONS, NM, check_channels, echo_number

MEGRE = "MEGRE"  # a filter key for every echo channel
# BIDS entities a filter may set: ``sub``/``ses`` are the scan's and ``echo`` the channel's.
FILTER_ENTITIES = ("acq", "ce", "rec", "dir", "run", "mod", "flip", "inv", "mt", "part", "chunk")
SETTING = "data.bids_filter (sn-infer: bids_filter)"
INDEX = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class BidsName:
    """A BIDS file name split: ``sub-01_echo-1_part-mag_MEGRE.nii.gz`` ->
    entities ``{"sub": "01", "echo": "1", "part": "mag"}``, suffix ``MEGRE``, extension
    ``.nii.gz``."""

    entities: dict[str, str]
    suffix: str
    stem: str
    extension: str


def parse_bids_name(filename: str) -> BidsName | None:
    """``filename`` split into entities, suffix and extension; None for a name that is not
    ``key-value_..._suffix.ext``."""
    stem, dot, rest = filename.partition(".")
    *pairs, suffix = stem.split("_")
    if not pairs or not suffix or "-" in suffix or any(p.count("-") != 1 for p in pairs):
        return None
    entities = dict(pair.split("-", 1) for pair in pairs)
    if len(entities) != len(pairs) or not all(entities.values()):
        return None
    return BidsName(entities, suffix, stem, dot + rest)


def same_value(found: str, wanted: str) -> bool:
    """Entity values equal, an index as a number (``run-01`` is run 1)."""
    return _normalised(found) == _normalised(wanted)


def _normalised(value: str) -> str:
    """An entity value as compared: an index without its leading zeros."""
    return str(int(value)) if INDEX.fullmatch(value) else value


def series_of(name: BidsName, ignored: Sequence[str] = ("part",)) -> frozenset[tuple[str, str]]:
    """The entities that name ``name``'s series (indices as numbers), ``ignored`` aside:
    files of one series differ in them alone (a MEGRE echo with and without ``part``)."""
    return frozenset((k, _normalised(v)) for k, v in name.entities.items() if k not in ignored)


@dataclass(frozen=True)
class ChannelQuery:
    """The BIDS file of a channel: ``suffix``, ``entities`` it must have (a None value:
    must not have), and those of them a file may also lack (``part`` of a MEGRE echo)."""

    suffix: str
    entities: dict[str, str | None]
    may_lack: frozenset[str] = frozenset()

    def conflict(self, name: BidsName) -> tuple[str, str | None, str | None] | None:
        """The first entity of ``name`` at odds with the query, as (key, found, wanted);
        None when it fits (the suffix aside)."""
        for key, wanted in self.entities.items():
            found = name.entities.get(key)
            if wanted is None:
                if found is not None:
                    return key, found, None
            elif found is None:
                if key not in self.may_lack:
                    return key, None, wanted
            elif not same_value(found, wanted):
                return key, found, wanted
        return None

    def is_plain(self, name: BidsName) -> bool:
        """Whether ``name`` has no entity the query does not name (the canonical name, or a
        MEGRE echo without ``part``)."""
        return not set(name.entities) - set(self.entities) - {"sub", "ses"}


def channel_query(channel: str) -> ChannelQuery:
    """The BIDS query of ``channel`` (``sn_platform.data.channels``), before any filter."""
    check_channels([channel])
    if channel == NM:
        return ChannelQuery("T1w", {"acq": "NM", "part": "mag"}, frozenset({"part"}))
    if channel == CHIMAP:
        return ChannelQuery("Chimap", {})
    entities: dict[str, str | None] = {"echo": str(echo_number(channel)), "part": "mag"}
    return ChannelQuery(MEGRE, entities, frozenset({"part"}))


@dataclass(frozen=True)
class BidsFilter:
    """A dataset's choice among the files that fit a channel: channel name (``echo-2``,
    ``NM``, ``Chimap``) or ``MEGRE`` (every echo) -> entity -> value (None: the file must
    not have it). A channel's own entry is applied after ``MEGRE``'s.

    Raises
    ------
    ValueError
        naming an unknown key or entity, or a value that is no BIDS label.
    """

    queries: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.queries is not None and not isinstance(self.queries, Mapping):
            raise ValueError(
                "bids_filter: a map channel -> entity -> value, e.g. {MEGRE: {run: 2}}, "
                f"got {self.queries!r}"
            )
        queries = {}
        for key, entities in dict(self.queries or {}).items():
            key = str(key)
            if key != MEGRE:
                try:
                    check_channels([key])
                except ValueError as error:
                    raise ValueError(f"bids_filter: {error}; or {MEGRE} (every echo)") from None
            if not isinstance(entities, Mapping):
                raise ValueError(f"bids_filter: {key}: an entity -> value map, got {entities!r}")
            queries[key] = {
                _filter_entity(key, entity): _filter_value(key, entity, value)
                for entity, value in entities.items()
            }
        object.__setattr__(self, "queries", queries)

    def query(self, channel: str) -> ChannelQuery:
        """``channel_query(channel)`` with this filter's entries for it."""
        base = channel_query(channel)
        keys = ([MEGRE] if echo_number(channel) is not None else []) + [channel]
        chosen: dict[str, str | None] = {}
        for key in keys:
            chosen |= self.queries.get(key, {})
        return ChannelQuery(base.suffix, {**base.entities, **chosen}, base.may_lack - set(chosen))


NO_FILTER = BidsFilter()


def _filter_entity(key: str, entity: object) -> str:
    entity = str(entity)
    if entity not in FILTER_ENTITIES:
        raise ValueError(
            f"bids_filter: {key}: entity {entity!r} cannot be chosen; one of "
            f"{', '.join(FILTER_ENTITIES)} (sub and ses are the scan's, echo the channel's)"
        )
    return entity


def _filter_value(key: str, entity: str, value: object) -> str | None:
    if value is None:
        return None
    text = str(value)
    if entity == "part" and text != "mag":
        raise ValueError(f"bids_filter: {key}: part-{text} is no magnitude; part is mag or null")
    if not re.fullmatch(r"[A-Za-z0-9]+", text):
        raise ValueError(
            f"bids_filter: {key}: {entity}={text!r} is no BIDS label (letters, digits)"
        )
    return text


def fitting_files(
    folder: Path, participant_id: str, session: str | None, query: ChannelQuery
) -> list[tuple[Path, BidsName]]:
    """The NIfTI files of ``folder`` named for the scan (its ``sub`` and ``ses``) with the
    query's suffix and entities, sorted by name."""
    fits = []
    for path, name in scan_files(folder, participant_id, session):
        if name.suffix == query.suffix and query.conflict(name) is None:
            fits.append((path, name))
    return fits


def scan_files(
    folder: Path, participant_id: str, session: str | None
) -> list[tuple[Path, BidsName]]:
    """The NIfTI files of ``folder`` whose names are BIDS names of the scan, sorted."""
    files = []
    for path in sorted(folder.glob("sub-*.nii*")) if folder.is_dir() else []:
        name = parse_bids_name(path.name)
        if (
            name is None
            or name.extension not in NIFTI_EXTENSIONS
            or not path.is_file()
            or name.entities.get("sub") != participant_id
            or name.entities.get("ses") != session
        ):
            continue
        files.append((path, name))
    return files


def choose_file(
    fits: Sequence[tuple[Path, BidsName]], query: ChannelQuery
) -> tuple[Path | None, list[Path]]:
    """The file read among ``fits``, and the files that fit alike when it cannot be chosen
    (then no file). Files without other entities (``ChannelQuery.is_plain``) come before
    the others; among those left, files of more than one series (``series_of``: ``run-1``,
    ``run-2``) are alike; in one series ``part-mag`` comes before no ``part``, ``.nii.gz``
    before ``.nii``."""
    if not fits:
        return None, []
    plain = [(path, name) for path, name in fits if query.is_plain(name)]
    nearest = plain or list(fits)
    if len({series_of(name) for _, name in nearest}) > 1:
        return None, [path for path, _ in nearest]

    def preference(name: BidsName) -> tuple[bool, int]:
        return "part" not in name.entities, NIFTI_EXTENSIONS.index(name.extension)

    best = min(preference(name) for _, name in nearest)
    chosen = [(path, name) for path, name in nearest if preference(name) == best]
    if len({name.stem for _, name in chosen}) > 1:  # run-1 beside run-01
        return None, [path for path, _ in chosen]
    return chosen[0][0], []


def filter_key(channel: str) -> str:
    """The filter key a suggestion for ``channel`` names: ``MEGRE`` for an echo."""
    return MEGRE if echo_number(channel) is not None else channel


def ambiguity_problem(channel: str, alike: Sequence[Path]) -> str:
    """Why ``alike`` (files that fit ``channel`` alike) refuse the scan, with a filter that
    reads the first where a choosable entity tells them apart."""
    names = [name for path in alike if (name := parse_bids_name(path.name)) is not None]
    problem = f"{len(alike)} files are channel {channel} ({', '.join(p.name for p in alike)})"
    for entity in FILTER_ENTITIES:
        values = [name.entities.get(entity) for name in names]
        first = values[0]
        if first is None or (entity == "part" and first != "mag"):
            continue
        if sum(v is not None and same_value(v, first) for v in values) == 1:
            example = f"{{{filter_key(channel)}: {{{entity}: {first}}}}}"
            return f"{problem}: choose one with {SETTING}, e.g. {example}"
    return f"{problem}: no entity a filter chooses tells them apart; keep one"


def near_miss_problem(
    files: Sequence[tuple[Path, BidsName]], query: ChannelQuery, channel: str
) -> str:
    """Why no file fits ``channel``, where files with its suffix (and echo) differ from the
    query in one entity: the files, and the filter that reads one of them; '' otherwise."""
    near: dict[str, list[tuple[Path, str | None]]] = {}
    wanted: dict[str, str | None] = {}
    for path, name in files:
        conflict = query.conflict(name)
        if name.suffix != query.suffix or conflict is None or conflict[0] == "echo":
            continue
        key, found, wanted[key] = conflict
        relaxed = ChannelQuery(query.suffix, {**query.entities, key: found}, query.may_lack)
        if relaxed.conflict(name) is None:
            near.setdefault(key, []).append((path, found))
    if not near:
        return ""
    key, misses = next(iter(near.items()))
    value = wanted[key]
    reads = f"{key}-{value}" if value is not None else f"no {key}"
    has = ", ".join(
        f"{path.name} ({key}-{found})" if found else path.name for path, found in misses
    )
    problem = f"{has} {'is' if len(misses) == 1 else 'are'} {query.suffix} where {reads} is read"
    labels = [found for _, found in misses if found is not None]
    if key == "part" or key not in FILTER_ENTITIES or not labels:
        return problem
    if len(labels) == 1:
        return f"{problem}; {SETTING} {{{filter_key(channel)}: {{{key}: {labels[0]}}}}} reads it"
    example = f"{{{filter_key(channel)}: {{{key}: LABEL}}}}"
    return f"{problem}; {SETTING} {example} reads the one with {key}-LABEL"


def one_series_problem(echoes: Sequence[Path]) -> str:
    """Where the MEGRE echo files ``echoes`` are not one series (their entities, ``echo``
    and ``part`` aside, differ; ``series_of``): the two files; '' otherwise."""
    series: dict[frozenset[tuple[str, str]], str] = {}
    for path in echoes:
        name = parse_bids_name(path.name)
        if name is not None:
            series.setdefault(series_of(name, ("echo", "part")), path.name)
    if len(series) < 2:
        return ""
    first, other = list(series.values())[:2]
    return (
        f"{first} and {other} are echoes of two series (their entities differ); choose one "
        f"series with {SETTING}"
    )
