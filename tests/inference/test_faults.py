"""A full disk while sn-infer writes, and two sn-infer runs on one output folder."""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path

import nibabel as nib
import pytest

from sn_platform.errors import StorageError
from sn_platform.inference.batch import OutputPaths, local_engine
from sn_platform.inference.work_sharing import claim, share_work
from tests.inference.tiny_bids import tiny_job, tiny_segmenter, write_participants, write_subject

IDS = ["01", "02", "03"]


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    root = tmp_path / "bids"
    for index, participant_id in enumerate(IDS):
        write_subject(root, participant_id, seed=index)
    write_participants(root, IDS)
    return root


def test_full_disk_keeps_finished_subjects_and_stops_then_a_rerun_completes(
    tiny_dataset, tmp_path, monkeypatch
):
    output = tmp_path / "out"
    job = tiny_job(tiny_dataset, output)
    run = local_engine([tiny_segmenter()], job)
    real_save = nib.save
    saved: list[Path] = []

    def disk_fills_up(image, path):  # the 5th NIfTI (subject 02's probseg) meets a full disk
        if len(saved) == 4:
            Path(path).write_bytes(b"\x1f\x8b partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        saved.append(Path(path))
        real_save(image, path)

    monkeypatch.setattr(nib, "save", disk_fills_up)
    with pytest.raises(StorageError, match=r"sub-02_label-SN_probseg\.nii\.gz: no space left"):
        run(IDS)
    first = OutputPaths.of(output, "01")
    assert first.complete()
    assert json.loads(first.measures.read_text())["participant_id"] == "sub-01"
    assert nib.load(first.probseg).get_fdata().shape == (12, 10, 4)
    assert not OutputPaths.of(output, "02").complete()
    assert not list(output.rglob(".tmp-*"))  # no half-written file anywhere

    monkeypatch.setattr(nib, "save", real_save)  # space freed: the rerun skips sub-01
    results = run(IDS)
    assert [r.get("skipped", False) for r in results] == [True, False, False]
    assert all(OutputPaths.of(output, p).complete() for p in IDS)


def test_two_runs_on_one_folder_share_the_work_each_subject_done_once(tmp_path):
    made: list[tuple[str, str]] = []
    lock = threading.Lock()
    ids = [f"{n:02d}" for n in range(1, 9)]

    def worker(name: str, results: dict[str, list[str]]) -> None:
        def run_one(participant_id: str) -> str:
            done = tmp_path / f"sub-{participant_id}.done"
            if done.exists():
                return f"read {participant_id}"
            time.sleep(0.02)
            done.write_text(name)
            with lock:
                made.append((name, participant_id))
            return f"made {participant_id}"

        results[name] = share_work(tmp_path, ids, run_one)

    results: dict[str, list[str]] = {}
    threads = [threading.Thread(target=worker, args=(n, results)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(p for _, p in made) == ids  # every subject written exactly once
    for name in ("a", "b"):
        assert [r.split()[1] for r in results[name]] == ids  # each run reports all of them


def test_a_held_subject_is_announced_and_waited_for(tmp_path):
    held_elsewhere: list[list[str]] = []
    box: dict[str, list[str]] = {}

    def second_run() -> None:
        box["results"] = share_work(tmp_path, ["01", "02"], lambda p: p, held_elsewhere.append)

    with claim(tmp_path, "02", wait=False) as mine:
        assert mine
        thread = threading.Thread(target=second_run)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive() and held_elsewhere == [["02"]]  # said so, and waits
    thread.join(timeout=10)
    assert box["results"] == ["01", "02"]
