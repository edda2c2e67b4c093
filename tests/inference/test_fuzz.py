"""A fuzzer for sn-infer's per-subject path: valid tiny subjects, mutated (headers, dtypes,
shapes, sizes, names, sidecars, participants.tsv), then validated, segmented and reported.

Whatever the mutation, every subject ends as complete outputs or as one line in
``errors.tsv`` naming a data problem (never an exception type, never a traceback), nothing
is written outside the output folder and no input file changes. The suite runs a seeded,
bounded profile; ``SN_FUZZ_EXAMPLES=2000`` runs more.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sn_platform.data.bids import echo_path
from sn_platform.inference.batch import OutputPaths, local_engine, select_subjects, write_reports
from tests.inference.tiny_bids import tiny_job, tiny_segmenter, write_participants, write_subject

pytestmark = pytest.mark.slow
IDS = ["01", "02"]
EXAMPLES = int(os.environ.get("SN_FUZZ_EXAMPLES", "50"))
SEGMENTER = tiny_segmenter()


def _resave(path: Path, change: Callable[[nib.Nifti1Image], nib.Nifti1Image]) -> None:
    nib.save(change(nib.load(path)), path)


def _with_header(path: Path, edit: Callable[[nib.Nifti1Header], None]) -> None:
    image = nib.load(path)
    header = image.header.copy()
    edit(header)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), None, header), path)


def _with_affine(path: Path, affine: np.ndarray, qform: bool = True) -> None:
    """``affine`` as the sform, and as the qform too when it has one (written field by
    field: nibabel refuses a NaN or singular qform)."""
    image = nib.load(path)
    header = image.header.copy()
    if qform:
        header.set_qform(affine, code=1)
    else:
        header["qform_code"] = 0
    header["sform_code"] = 1
    header["srow_x"], header["srow_y"], header["srow_z"] = affine[:3]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(header.binaryblock + raw[348:]))


def _set_dtype(path: Path, dtype: str) -> None:
    data = np.asarray(nib.load(path).dataobj)
    if dtype == "complex64":
        array = (data + 1j * data).astype(np.complex64)
    elif dtype == "RGB":
        array = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    else:
        array = (
            np.clip(data, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
            if (np.issubdtype(np.dtype(dtype), np.integer))
            else data.astype(dtype)
        )
    image = nib.Nifti1Image(array, nib.load(path).affine)
    if dtype == "float16":
        image.header.set_data_dtype(np.float32)  # NIfTI has no float16: stored scaled to it
    nib.save(image, path)


def _claim_shape(path: Path, shape: tuple[int, int, int]) -> None:
    """A header claiming ``shape`` on the few bytes of the real volume."""
    header = nib.load(path).header.copy()
    header.set_data_shape(shape)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(header.binaryblock + raw[348:]))


def _uncompressed(path: Path) -> None:
    """The echo stored as ``.nii.gz`` but uncompressed bytes, its data cut short."""
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(raw[: len(raw) // 2])


def _shear(affine_scale: float) -> np.ndarray:
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    affine[0, 1] = affine_scale
    return affine


def _rows(text: str) -> Callable[[Path, int], None]:
    def write(root: Path, _: int) -> None:
        (root / "participants.tsv").write_text(text)

    return write


def _rename(new_name: str) -> Callable[[Path, int], None]:
    def rename(root: Path, _: int) -> None:
        (root / "sub-02").rename(root / new_name)

    return rename


def _echo(edit: Callable[..., None], *args: object) -> Callable[[Path, int], None]:
    def on_echo(root: Path, echo: int) -> None:
        edit(echo_path(root, "01", echo), *args)

    return on_echo


def _sidecar(text: str | None) -> Callable[[Path, int], None]:
    def on_sidecar(root: Path, echo: int) -> None:
        path = Path(str(echo_path(root, "01", echo)).replace(".nii.gz", ".json"))
        if text is None:
            path.unlink()
        else:
            path.write_text(text)

    return on_sidecar


def _set(field: str, value: object) -> Callable[[nib.Nifti1Header], None]:
    def edit(header: nib.Nifti1Header) -> None:
        header[field] = value

    return edit


def _pixdim(value: float) -> Callable[[nib.Nifti1Header], None]:
    def edit(header: nib.Nifti1Header) -> None:
        header["pixdim"][1] = value
        header["sform_code"] = 0  # the qform (built from pixdim) rules

    return edit


MUTATIONS: dict[str, Callable[[Path, int], None]] = {
    "pixdim 0": _echo(_with_header, _pixdim(0.0)),
    "pixdim negative": _echo(_with_header, _pixdim(-0.5)),
    "dim 2D": _echo(_resave, lambda i: nib.Nifti1Image(np.asarray(i.dataobj)[..., 0], i.affine)),
    "one voxel": _echo(
        _resave, lambda i: nib.Nifti1Image(np.asarray(i.dataobj)[:1, :1, :1], i.affine)
    ),
    "4D one volume": _echo(
        _resave, lambda i: nib.Nifti1Image(np.asarray(i.dataobj)[..., None], i.affine)
    ),
    "NaN affine": _echo(_with_affine, np.where(np.eye(4) == 1, np.nan, 0.0), False),
    "sheared affine": _echo(_with_affine, _shear(0.3)),
    "singular affine": _echo(_with_affine, np.diag([0.5, 0.0, 1.0, 1.0]), False),
    "qform/sform disagree": _echo(
        _with_header, lambda h: h.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]), code=1)
    ),
    "scl_slope 0": _echo(_with_header, _set("scl_slope", 0.0)),
    "scl_slope NaN": _echo(_with_header, _set("scl_slope", np.nan)),
    "scl_slope 1e30": _echo(_with_header, _set("scl_slope", 1e30)),
    "int8": _echo(_set_dtype, "int8"),
    "uint16": _echo(_set_dtype, "uint16"),
    "float64": _echo(_set_dtype, "float64"),
    "complex": _echo(_set_dtype, "complex64"),
    "RGB": _echo(_set_dtype, "RGB"),
    "empty file": _echo(lambda p: p.write_bytes(b"")),
    "1 GB claimed": _echo(_claim_shape, (1024, 1024, 256)),
    "more voxels claimed": _echo(_claim_shape, (24, 10, 4)),
    "uncompressed, cut short": _echo(_uncompressed),
    "garbage bytes": _echo(lambda p: p.write_bytes(b"\x00" * 400)),
    "sidecar missing": _sidecar(None),
    "sidecar invalid JSON": _sidecar("{EchoTime: 0.005,"),
    "EchoTime string": _sidecar('{"EchoTime": "five ms"}'),
    "EchoTime out of order": _sidecar('{"EchoTime": 0.5}'),
    "participants missing": lambda root, _: (root / "participants.tsv").unlink(),
    "participants malformed": _rows("participant_id\tgroup\nsub-01\tHC\textra\tcells\n\n\t\n"),
    "participants short row": _rows("participant_id\tgroup\nsub-01\n"),
    "participants no id column": _rows("id\tgroup\nsub-01\tHC\n"),
    "participants unknown group": _rows("participant_id\tgroup\nsub-01\t<b>ALIEN</b>\n"),
    "participants binary": lambda root, _: (root / "participants.tsv").write_bytes(b"\xff\xfe\x00"),
    "name sub-..": _rename("sub-.."),
    "name with space": _rename("sub-0 2"),
    "name unicode": _rename("sub-ü2"),
    "name with tab": _rename("sub-0\t2"),
    "echo missing": _echo(lambda p: p.unlink()),
}


def _snapshot(folder: Path, skip: Path) -> dict[str, str]:
    """Every file under ``folder`` but ``skip``: its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and skip not in p.parents
    }


@settings(
    max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
@given(
    mutations=st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3, unique=True),
    echo=st.integers(min_value=1, max_value=3),
)
def test_every_subject_ends_as_outputs_or_one_error_line(mutations, echo):
    with tempfile.TemporaryDirectory() as work:
        root, output = Path(work) / "bids", Path(work) / "out"
        for index, participant_id in enumerate(IDS):
            write_subject(root, participant_id, seed=index)
        write_participants(root, IDS)
        for name in mutations:
            # A file an earlier mutation already broke stays broken: that is the case.
            with contextlib.suppress(Exception):
                MUTATIONS[name](root, echo)
        before = _snapshot(Path(work), output)

        participant_ids = select_subjects(root, None)
        results = local_engine([SEGMENTER], tiny_job(root, output))(participant_ids)
        rows, errors = write_reports(output, results, ["models:/fuzz@x"], root)

        assert _snapshot(Path(work), output) == before  # inputs unchanged, nothing else written
        failed = {e["participant_id"] for e in errors}
        assert len(failed) == len(errors)
        for participant_id in participant_ids:
            if f"sub-{participant_id}" not in failed:
                assert OutputPaths.of(output, participant_id).complete(), participant_id
        for error in errors:  # one line naming the file (or folder) and the problem
            assert "\n" not in error["reason"] and error["reason"].startswith(str(root)), error
        if errors:
            with (output / "errors.tsv").open(newline="") as handle:
                written = list(csv.DictReader(handle, delimiter="\t"))
            assert [w["participant_id"] for w in written] == [e["participant_id"] for e in errors]
        assert len(rows) + len(errors) == len(participant_ids)
