"""Every command's ``--help``, and the mistakes a newcomer makes: each ends in exit code 2
and one line on stderr that names the key, never a traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sn_platform import cli
from sn_platform.composition import CONFIG_DIR
from sn_platform.usage import quote_plain_values

COMMANDS = ("phantom", "train", "sweep", "infer", "track")

# (command, arguments, what the line names). In the arguments {cohort} is a 4-subject
# phantom, {unlabelled} the same images without derivatives, {empty} an empty folder,
# {file} a file and {missing} a path that does not exist.
MISTAKES: list[tuple[str, tuple[str, ...], str]] = [
    ("phantom", ("head=huge",), "head"),
    ("phantom", ("subjects=0",), "subjects"),
    ("phantom", ("subjects=-3",), "subjects"),
    ("phantom", ("subjects=abc",), "subjects"),
    ("phantom", ("subjects=2.5",), "subjects"),
    ("phantom", ("n_jobs=0",), "n_jobs"),
    ("phantom", ("sites=[Z]",), "sites"),
    ("phantom", ("sites=[]",), "sites"),
    ("phantom", ("colour=red",), "colour"),
    ("phantom", ("generator.pd_fraction=1.5",), "pd_fraction"),
    ("phantom", ("generator.head_scale=3",), "head_scale"),
    ("phantom", ("out={file}",), "out"),
    ("phantom", ("subjects=[",), "subjects=["),
    ("phantom", ("head=mni", "generator.head_scale=0.5"), "head_scale"),
    ("train", ("model=vnet_huge",), "model"),
    ("train", ("data=nifti",), "data"),
    ("train", ("optim.lrr=0.1",), "optim.lrr"),
    ("train", ("epochs=3",), "epochs"),
    ("train", ("trainer.max_epochs=abc",), "trainer.max_epochs"),
    ("train", ("trainer.max_epochs=0",), "trainer.max_epochs"),
    ("train", ("data.root={empty}", "optim.lr=-1"), "optim.lr"),
    ("train", ("data.root={empty}", "optim.lr=fast"), "optim.lr"),
    ("train", ("data.batch_size=0",), "data.batch_size"),
    ("train", ("data.splits.folds=1",), "data.splits.folds"),
    ("train", ("data.splits.test_fraction=1.5",), "data.splits.test_fraction"),
    ("train", ("trainer.lr_schedule=step",), "trainer.lr_schedule"),
    ("train", ("data.root={empty}", "trainer.device=tpu"), "trainer.device"),
    ("train", ("data.root={empty}", "model.depth=0"), "model"),
    ("train", ("data.root=[",), "data.root=["),
    ("train", ("data.root={empty}", "trainer.fold=3", "data.splits.folds=2"), "trainer.fold"),
    ("train", ("data.root={empty}", "inference.labels=[SN]"), "inference.labels"),
    ("train", ("trainer.warmup_epochs=40",), "trainer.warmup_epochs"),
    ("train", ("data.root={missing}",), "data.root"),
    ("train", ("data.root={file}",), "data.root"),
    ("train", ("data.root={empty}",), "{empty}: no sub-* folders"),
    ("train", ("data.root={unlabelled}",), "manual"),
    ("train", ("data.root={cohort}",), "data.splits.folds"),
    ("train", ("data.root={cohort}", "data.splits.folds=9"), "data.splits.folds"),
    ("train", ("data.root={cohort}", "data.patch_size=[512,512,8]"), "roi_mm"),
    (
        "train",
        ("data.root={cohort}", "data.preprocessing.roi_mm=null", "data.patch_size=[512,512,8]"),
        "data.patch_size",
    ),
    ("sweep", ("tune=bayes",), "tune"),
    ("sweep", ("tune/space=wide",), "tune/space"),
    ("sweep", ("tune.trials=4",), "tune.trials"),
    ("sweep", ("tune.num_samples=0",), "num_samples"),
    ("sweep", ("tune.scheduler=hyperband",), "scheduler"),
    ("sweep", ("tune.name=../elsewhere",), "tune.name"),
    ("sweep", ("tune=demo", "tune.cv.folds=6"), "tune.cv.folds"),
    ("sweep", ("tune=demo", "data.root={missing}"), "data.root"),
    ("sweep", ("tune=demo", "data.root={cohort}"), "data.splits.folds"),
    (
        "sweep",
        ("tune=demo", "data.root={cohort}", "data.splits.folds=2", "data.splits.test_fraction=0"),
        "tune.final=ensemble: the fold ensemble is evaluated on the test split",
    ),
    ("infer", (), "input"),
    ("infer", ("input={cohort}",), "output"),
    ("infer", ("tracking=cloud", "input={cohort}", "output={empty}"), "tracking"),
    ("infer", ("input={cohort}", "output={empty}", "infer.thresold=0.4"), "infer.thresold"),
    ("infer", ("input={cohort}", "output={empty}", "infer.threshold=1.5"), "threshold"),
    ("infer", ("input={cohort}", "output={empty}", "infer.threshold=high"), "infer.threshold"),
    ("infer", ("input={cohort}", "output={empty}", "infer.batch_size=0"), "batch_size"),
    ("infer", ("input={cohort}", "output={empty}", "infer.engine=gpu"), "engine"),
    (
        "infer",
        ("input={cohort}", "output={empty}", "infer.atlas_tolerance_mm=-1"),
        "atlas_tolerance_mm",
    ),
    ("infer", ("input={cohort}", "output={empty}", "infer.overlap_mode=max"), "overlap_mode"),
    ("infer", ("input={cohort}", "output={empty}", "measures.nm_reference=x"), "nm_reference"),
    ("infer", ("input={cohort}", "output={empty}", "label_source=../x"), "label_source"),
    ("infer", ("input={cohort}", "output={empty}", "bids_filter=false"), "bids_filter: a map"),
    ("infer", ("input={cohort}", "output={empty}", "model_uri=https://x/m"), "model_uri"),
    ("infer", ("input={missing}", "output={empty}"), "input"),
    ("infer", ("input={file}", "output={empty}"), "input"),
    ("infer", ("input={empty}", "output={empty}"), "{empty}: no sub-* folders"),
    ("infer", ("input={cohort}", "output={empty}", "subjects=[99]"), "99"),
    ("track", (), "sync"),
    ("track", ("push",), "push"),
    ("track", ("sync",), "folder"),
    ("track", ("sync", "{missing}"), "{missing}"),
    ("track", ("sync", "{file}"), "{file}"),
    ("track", ("sync", "{empty}"), "{empty}"),
    ("track", ("sync", "{empty}", "--url", "x"), "--url"),
]


@pytest.fixture
def places(tmp_path: Path, phantom_cohort) -> dict[str, str]:
    """The folders the mistakes name, in a fresh ``tmp_path``."""
    root, _ = phantom_cohort
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(root, unlabelled, ignore=shutil.ignore_patterns("derivatives"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a folder\n")
    return {
        "cohort": str(root),
        "unlabelled": str(unlabelled),
        "empty": str(tmp_path / "empty"),
        "file": str(tmp_path / "file.txt"),
        "missing": str(tmp_path / "missing"),
    }


def run_in_process(
    command: str, arguments: list[str], work: Path, monkeypatch, capsys
) -> tuple[int | str | None, list[str]]:
    """``sn-<command> ARGUMENTS`` in this process, run in ``work``: its exit code and the
    lines it wrote to stderr."""
    monkeypatch.chdir(work)
    hydra = [] if command == "track" else [f"hydra.run.dir={work}/hydra"]
    if command in ("train", "sweep"):
        hydra.append(f"data.splits.file={work}/splits.json")  # the shared cohort stays clean
    monkeypatch.setattr(sys, "argv", [f"sn-{command}", *arguments, *hydra])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        getattr(cli, command)()
    return stopped.value.code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("command", "arguments", "named"), MISTAKES)
def test_a_mistake_ends_in_one_line_and_exit_code_2(
    command, arguments, named, places, tmp_path, monkeypatch, capsys
):
    filled = [a.format(**places) for a in arguments]
    code, lines = run_in_process(command, filled, tmp_path, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"sn-{command}: ") and named.format(**places) in lines[0]


def test_the_table_covers_every_command_and_forty_mistakes():
    assert len(MISTAKES) >= 40
    assert {command for command, _, _ in MISTAKES} == set(COMMANDS)


# Numeric settings and values outside their range: (command, key, strategy of bad values).
OUT_OF_RANGE = [
    ("phantom", "subjects", st.integers(max_value=0)),
    ("phantom", "generator.pd_fraction", st.floats(min_value=1.001, max_value=1e6)),
    ("train", "optim.lr", st.floats(max_value=0.0, min_value=-1e6)),
    ("train", "optim.weight_decay", st.floats(max_value=-1e-9, min_value=-1e6)),
    ("train", "trainer.max_epochs", st.integers(max_value=0)),
    ("train", "data.batch_size", st.integers(max_value=0)),
    ("train", "data.splits.folds", st.integers(max_value=1)),
    ("train", "data.splits.test_fraction", st.floats(min_value=1.0, max_value=1e6)),
    ("sweep", "tune.num_samples", st.integers(max_value=0)),
    ("infer", "infer.threshold", st.floats(min_value=1.0, max_value=1e6)),
    ("infer", "infer.batch_size", st.integers(max_value=0)),
]


@st.composite
def numeric_mistakes(draw) -> tuple[str, str, str]:
    """(command, key, ``key=value``) with the value outside the key's range."""
    command, key, values = draw(st.sampled_from(OUT_OF_RANGE))
    return command, key, f"{key}={draw(values)!r}"


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(mistake=numeric_mistakes())
def test_numbers_out_of_range_end_in_one_line_naming_the_key(
    mistake, places, tmp_path, monkeypatch, capsys
):
    command, key, override = mistake
    required = {
        "train": [f"data.root={places['empty']}"],
        "sweep": [f"data.root={places['empty']}"],
        "infer": [f"input={places['cohort']}", f"output={places['empty']}"],
    }
    arguments = [*required.get(command, []), override]
    code, lines = run_in_process(command, arguments, tmp_path, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1, lines
    assert key.rpartition(".")[2] in lines[0]


@pytest.mark.parametrize(
    ("command", "groups", "absent"),
    [
        ("phantom", ["head"], ["model", "augment", "tune"]),
        ("train", ["augment", "data", "model", "optim", "trainer", "experiment"], ["tune", "head"]),
        ("sweep", ["tune", "tune/space", "model", "data"], ["head"]),
        ("infer", ["tracking", "measures"], ["augment", "loss", "optim", "tune", "model"]),
    ],
)
def test_help_shows_usage_options_examples_and_only_the_groups_read(
    command, groups, absent, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"sn-{command}", "--help"])
    with pytest.raises(SystemExit) as stopped:
        getattr(cli, command)()
    page = capsys.readouterr().out
    assert stopped.value.code == 0
    assert f"usage: sn-{command}" in page.lower() and "powered by Hydra" not in page
    assert page.count(f"  sn-{command} ") >= 2  # two examples
    section = page.split("Config groups")[1].split("\n\n")[0]
    listed = {line.split()[0].rstrip(":") for line in section.splitlines()[1:] if line.strip()}
    assert set(groups) <= listed and not listed & set(absent)


@pytest.mark.parametrize("page", ["sn_train", "sn_sweep", "sn_infer", "sn_phantom"])
def test_help_lists_every_option_of_the_groups_it_names(page):
    text = (Path(CONFIG_DIR) / "hydra" / "help" / f"{page}.yaml").read_text()
    section = text.split("Config groups (GROUP=OPTION):")[1].split("\n\n")[0]
    for line in section.splitlines()[1:]:
        group, options = line.strip().split(": ", 1)
        listed = {o.strip() for o in re.sub(r"\([^)]*\)", "", options).split(",")}
        assert listed == {p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml")}, group


def test_track_help_shows_usage_and_an_example(capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.track(["--help"])
    page = capsys.readouterr().out
    assert stopped.value.code == 0 and page.startswith("usage: sn-track")
    assert "sn-track sync checkpoints/" in page


@pytest.mark.parametrize(
    ("command", "arguments", "line"),
    [
        ("sn-phantom", ["subjects=0"], "sn-phantom: generator.subjects: must be >= 1, got 0"),
        ("sn-train", ["optim.lrr=1"], "sn-train: optim.lrr: no such setting"),
        ("sn-track", ["sync", "nowhere"], "sn-track: nowhere: "),
    ],
)
def test_no_traceback_reaches_a_user(tmp_path, command, arguments, line):
    executable = Path(sys.executable).with_name(command)
    environment = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[1])}
    result = subprocess.run(
        [str(executable), *arguments], capture_output=True, text=True, cwd=tmp_path,
        env=environment, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(line), result.stderr


def test_a_path_hydra_cannot_read_bare_is_read_as_written():
    arguments = [
        "input=/data/Müller/bids", "output=/data/Scan (3T)/out", "out=/data/it's ü",
        "subjects=[1,2]", "tune=demo", "+tune.selection={val/dsc:1.0}", "a.b=/plain/path",
        "x='quoted ü'", "--help", "k=a'b\"ü",
    ]  # fmt: skip
    assert quote_plain_values(arguments) == [
        "input='/data/Müller/bids'", "output='/data/Scan (3T)/out'", 'out="/data/it\'s ü"',
        *arguments[3:],  # what Hydra reads bare, a quoted value, a flag, and both quotes
    ]  # fmt: skip
    parser = OverridesParser.create()
    for argument in quote_plain_values(arguments[:3]):  # the grammar reads them as written
        override = parser.parse_override(argument)
        assert f"{override.key_or_group}={override.value()}" in arguments


def test_sn_infer_reads_a_path_with_letters_outside_ascii(tmp_path):
    executable = Path(sys.executable).with_name("sn-infer")
    environment = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[1])}
    missing = tmp_path / "Müller (3T)" / "bids"
    result = subprocess.run(
        [str(executable), f"input={missing}", f"output={tmp_path}/out", "model_uri=unused"],
        capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"sn-infer: {missing}: input folder does not exist"


def test_a_bug_still_shows_its_traceback(tmp_path, monkeypatch, capsys):
    def broken(*_: object) -> None:
        raise AttributeError("a bug in platform code")

    monkeypatch.setattr(cli, "phantom_config", broken)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sn-phantom", f"out={tmp_path}/cohort"])
    with pytest.raises(AttributeError, match="a bug in platform code"):
        cli.phantom()
