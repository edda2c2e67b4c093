"""Write a phantom cohort as a BIDS dataset (METHOD.md layout) with two raters and truth."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_start_method
from pathlib import Path

from threadpoolctl import threadpool_limits

from sn_platform.data.bids import (
    channel_path,
    chimap_path,
    dseg_path,
    dseg_table_path,
    echo_path,
    label_path,
)
from sn_platform.data.channels import NM
from sn_platform.data.io import write_nifti, write_text
from sn_platform.phantom.compositor import TissueClass
from sn_platform.phantom.generator import (
    RATER_SOURCES,
    SimulatedSubject,
    sample_subject_plan,
    simulate_subject,
)
from sn_platform.phantom.plan import SubjectPlan
from sn_platform.phantom.settings import PhantomConfig
from sn_platform.phantom.template import load_template

PARTICIPANT_COLUMNS = ("participant_id", "group", "age", "sex", "site")


def write_subject(root: Path, subject: SimulatedSubject) -> None:
    """Write one subject's images (+ JSON sidecars: the site's echoes and QSM, or its
    single-echo NM image), truth (with the tissue label map) and both raters' labels."""
    plan = subject.plan
    sub = plan.participant_id
    for number, (echo, te_ms) in enumerate(
        zip(subject.echoes, plan.site.echo_times_ms, strict=True), 1
    ):
        nm = plan.site.images == "nm"
        path = channel_path(root, sub, NM) if nm else echo_path(root, sub, number)
        write_nifti(path, echo, subject.affine)
        sidecar = {
            "EchoTime": round(float(te_ms) * 1e-3, 6),
            **({} if nm else {"EchoNumber": number}),
            "MagneticFieldStrength": 3,
            "MTState": True,
            "SliceThickness": plan.site.slice_thickness_mm,
            "InstitutionName": f"phantom site {plan.site.name}",
        }
        write_text(
            path.with_name(path.name.replace(".nii.gz", ".json")), json.dumps(sidecar, indent=2)
        )
    if plan.site.images == "megre":
        write_nifti(chimap_path(root, sub), subject.chi_ppm, subject.affine)
    for name, mask in subject.truth.items():
        write_nifti(label_path(root, "truth", sub, name), mask, subject.affine)
    write_nifti(dseg_path(root, sub), subject.tissue_classes, subject.affine)
    for source, masks in subject.tracings.items():
        for name, mask in masks.items():
            write_nifti(label_path(root, source, sub, name), mask, subject.affine)


def _generate_one(args: tuple[Path, PhantomConfig, int, bool]) -> SubjectPlan:
    root, config, index, preview = args
    plan = sample_subject_plan(config, index)
    subject = simulate_subject(plan, config)
    write_subject(root, subject)
    if preview:
        from sn_platform.phantom.preview import save_montage

        save_montage(subject, montage_path(root, plan.participant_id))
    return plan


def montage_path(root: Path, participant_id: str) -> Path:
    """Where ``preview=true`` writes a subject's montage (PNG)."""
    return root / "derivatives" / "preview" / f"sub-{participant_id}_montage.png"


def generate_cohort(
    root: Path | str, config: PhantomConfig, preview: bool = False, n_jobs: int = 2
) -> list[SubjectPlan]:
    """Generate ``config.subjects`` subjects into ``root`` (created) and return their plans.

    Subjects are computed in ``n_jobs`` processes, each with one BLAS/OpenMP thread (the
    processes share the cores); the output does not depend on it. Where they are forked
    (Linux's default), the MNI template's maps are computed here once, before they fork,
    not once in each.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tasks = [(root, config, index, preview) for index in range(config.subjects)]
    if n_jobs > 1 and len(tasks) > 1:
        if config.head_model == "mni" and get_start_method() == "fork":
            load_template()  # inherited by the forked processes (lru_cache)
        with ProcessPoolExecutor(max_workers=n_jobs, initializer=one_thread_each) as pool:
            plans = list(pool.map(_generate_one, tasks))
    else:
        plans = [_generate_one(task) for task in tasks]
    _write_dataset_files(root, config, plans)
    return plans


# Written into the dataset by training (data.splits.file's default): it describes the
# cohort it was drawn from.
SPLITS_FILE = "splits_final.json"


def remove_earlier_cohort(root: Path | str, kept: Iterable[str]) -> list[str]:
    """Remove from the phantom dataset at ``root`` what an earlier ``sn-phantom`` run left
    that the new cohort (participant ids ``kept``) does not overwrite: subjects beyond it
    (their images, labels and montages) and the saved splits of the earlier cohort (a
    training run draws new ones). Other files are left alone. Returns the removed ids."""
    root, kept = Path(root), set(kept)
    removed = sorted(
        folder.name.removeprefix("sub-")
        for folder in root.glob("sub-*")
        if folder.is_dir() and folder.name.removeprefix("sub-") not in kept
    )
    for participant_id in removed:
        shutil.rmtree(root / f"sub-{participant_id}")
        for source in (*RATER_SOURCES, "truth"):
            shutil.rmtree(
                root / "derivatives" / source / f"sub-{participant_id}", ignore_errors=True
            )
        montage_path(root, participant_id).unlink(missing_ok=True)
    (root / SPLITS_FILE).unlink(missing_ok=True)
    return removed


def one_thread_each() -> None:
    """A pool process's BLAS and OpenMP libraries limited to one thread: ``n_jobs``
    processes with a thread per core each would oversubscribe the cores (measured: 11 %
    more CPU for 20 subjects on 2 cores)."""
    threadpool_limits(limits=1)


def _write_dataset_files(root: Path, config: PhantomConfig, plans: list[SubjectPlan]) -> None:
    rows = ["\t".join(PARTICIPANT_COLUMNS)]
    rows += [f"sub-{p.participant_id}\t{p.group}\t{p.age}\t{p.sex}\t{p.site.name}" for p in plans]
    write_text(root / "participants.tsv", "\n".join(rows) + "\n")
    columns = {
        "group": {
            "Description": "diagnostic group",
            "Levels": {"HC": "healthy control", "PD": "Parkinson's disease"},
        },
        "age": {"Description": "age", "Units": "year"},
        "sex": {"Description": "sex", "Levels": {"F": "female", "M": "male"}},
        "site": {"Description": "simulated scanner site (protocol)"},
    }
    write_text(root / "participants.json", json.dumps(columns, indent=2))
    description = {
        "Name": "sn-platform digital midbrain phantom",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "sn-phantom", "Description": json.dumps(asdict(config))}],
    }
    write_text(root / "dataset_description.json", json.dumps(description, indent=2))
    classes = [f"{c.value}\t{c.name.lower()}" for c in TissueClass]
    write_text(dseg_table_path(root), "\n".join(["index\tname", *classes]) + "\n")
    for source, description_text in (
        ("manual", "rater 1: SN, RN and CC (crus cerebri) traced with a generous margin"),
        ("manual2", "rater 2: independent SN, RN and CC tracings"),
        (
            "truth",
            "exact phantom structures: SN, SNpc, N1 (nigrosome-1), RN, CC (crus cerebri), "
            "STN (subthalamic nucleus), and the tissue label map (dseg, classes in dseg.tsv)",
        ),
    ):
        derivative = {
            "Name": description_text,
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "sn-phantom"}],
        }
        write_text(
            root / "derivatives" / source / "dataset_description.json",
            json.dumps(derivative, indent=2),
        )
