"""Every option of every config group composes and instantiates into its typed object."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchio as tio
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from sn_platform.cli import phantom_config
from sn_platform.composition import CONFIG_DIR, build
from sn_platform.data.augment import reads_tissues
from sn_platform.data.preprocessing import PreprocessingSpec
from sn_platform.data.settings import DataSettings
from sn_platform.errors import ConfigError
from sn_platform.inference.options import InferenceOptions, QualityLimits, RaySettings
from sn_platform.inference.predictor import InferenceSettings
from sn_platform.models.vnet import VNet
from sn_platform.phantom.settings import PhantomConfig, SiteProtocol
from sn_platform.sweep.settings import CrossValidation, TuneSettings
from sn_platform.sweep.space import search_space
from sn_platform.tracking.settings import TrackingSettings
from sn_platform.training.assembly import run_spec
from sn_platform.training.settings import TrainerSettings
from sn_platform.training.spec import RunSpec


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def _compose(*overrides: str, name: str = "config"):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


def test_groups_have_the_expected_options():
    assert _options("model") == ["vnet_milletari", "vnet_paper", "vnet_small"]
    assert _options("loss") == ["dice", "dice_bce", "dice_milletari", "focal_tversky", "tversky"]
    assert _options("augment") == ["none", "paper", "protocol", "qsm", "strong", "synth"]
    assert _options("data") == ["bids", "phantom"]


@pytest.mark.parametrize("model", _options("model"))
def test_models_instantiate_for_the_configured_patch(model):
    cfg = _compose(f"model={model}", "data.patch_size=[32,32,3]")
    network = instantiate(cfg.model)
    assert isinstance(network, VNet)
    # background, SN, RN and CC of data.labels; one label gives one (sigmoid) channel
    assert network(torch.zeros(1, 3, 32, 32, 3)).shape == (1, 4, 32, 32, 3)
    single = _compose(f"model={model}", "data.patch_size=[32,32,3]", "data.labels=[SN]")
    assert single.model.out_channels == 1


@pytest.mark.parametrize("loss", _options("loss"))
@pytest.mark.parametrize("optim", _options("optim"))
def test_losses_and_optimisers_instantiate(loss, optim):
    cfg = _compose(f"loss={loss}", f"optim={optim}")
    parameter = torch.nn.Parameter(torch.zeros(1, 1, 2, 2, 2))
    value = instantiate(cfg.loss)(parameter, torch.ones(1, 1, 2, 2, 2))
    value.backward()
    optimiser = instantiate(cfg.optim)([parameter])
    optimiser.step()
    assert parameter.abs().sum() > 0


@pytest.mark.parametrize("augment", _options("augment"))
def test_augmentations_run_on_a_subject(augment):
    cfg = _compose(f"augment={augment}")
    transform = instantiate(cfg.augment)
    label = (torch.rand(1, 24, 24, 8) > 0.5).to(torch.uint8)
    subject = tio.Subject(
        echo1=tio.ScalarImage(tensor=torch.rand(1, 24, 24, 8) * 100),
        label=tio.LabelMap(tensor=label),
        tissues=tio.LabelMap(tensor=label + 1),  # the tissue map the synth preset renders from
    )
    torch.manual_seed(0)
    assert transform(subject)["echo1"].shape == (1, 24, 24, 8)


@pytest.mark.parametrize("data", _options("data"))
def test_data_options_build_their_settings(data):
    cfg = _compose(f"data={data}", "data.root=/data/bids", "data.patch_size=[48,48,3]")
    settings = build(cfg, "data")
    assert isinstance(settings, DataSettings) and settings.patch_size == (48, 48, 3)
    assert settings.preprocessing == PreprocessingSpec(
        min_shape=(48, 48, 3), roi_mm=(64.0, 64.0, 64.0)
    )
    assert settings.splits.file == "/data/bids/splits_final.json"
    assert settings.labels == ("SN", "RN", "CC")
    assert settings.label_probabilities == {0: 0.3, 1: 0.35, 2: 0.2, 3: 0.15}


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiments_build_a_typed_run(experiment):
    cfg = _compose(f"experiment={experiment}", "data.root=/data/bids")
    spec = run_spec(cfg)
    assert isinstance(spec, RunSpec) and spec.name.startswith(experiment)
    assert isinstance(spec.trainer, TrainerSettings) and isinstance(spec.data, DataSettings)
    assert spec.inference.patch_size == spec.data.patch_size
    assert spec.model["in_channels"] == len(spec.data.preprocessing.channels)


@pytest.mark.parametrize(
    ("group", "kind"),
    [
        ("trainer", TrainerSettings),
        ("inference", InferenceSettings),
        ("tracking", TrackingSettings),
    ],
)
def test_settings_groups_build_their_dataclass(group, kind):
    for option in _options(group):
        assert isinstance(build(_compose(f"{group}={option}"), group), kind)


@pytest.mark.parametrize(
    ("override", "key", "message"),
    [
        ("trainer.lr_schedule=step", "trainer", "trainer.lr_schedule: must be one of"),
        ("data.splits.folds=1", "data", "data.splits.folds: must be >= 2, got 1"),
        ("trainer.max_epochs=abc", "trainer", "trainer.max_epochs: 'abc' is not a whole number"),
        ("optim.lr=fast", "optim", "optim.lr: 'fast' is not a number"),
        ("data.patch_size=[a,8,8]", "data", "data.patch_size: .* is not a list of whole numbers"),
        ("model.depth=0", "model", "model.depth: must be 3, 4 or 5 stages, got 0"),
        ("data.pipeline=fast", "data", "data.pipeline: must be one of \\('patches', 'queue'\\)"),
        ("data.num_workers=-1", "data", "data.num_workers: must be >= 0, got -1"),
    ],
)
def test_a_bad_setting_names_its_full_key(override, key, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        build(_compose(override), key)


@pytest.mark.parametrize("tune", _options("tune"))
@pytest.mark.parametrize("space", _options("tune/space"))
def test_tune_options_and_spaces_compose(tune, space):
    settings = build(_compose(f"tune={tune}", f"tune/space={space}", name="sweep"), "tune")
    assert isinstance(settings, TuneSettings) and isinstance(settings.cv, CrossValidation)
    assert set(search_space(settings.space)) == set(settings.space)
    assert settings.selection and settings.resources_per_trial["cpu"] >= 1.0


def test_optuna_with_asha_over_several_folds_is_refused():
    cfg = _compose("tune.search_alg=optuna", "tune.scheduler=asha", "tune.cv.folds=2", name="sweep")
    with pytest.raises(ValueError, match=r"^tune\.scheduler: ASHA cannot compare Optuna trials"):
        build(cfg, "tune")


def test_infer_options_default_to_the_models_own():
    cfg = _compose("input=in", "output=out", "overwrite=true", name="infer")
    options = build(cfg, "infer")
    assert isinstance(options, InferenceOptions) and options.overwrite
    assert isinstance(options.qc, QualityLimits) and isinstance(options.ray, RaySettings)
    assert (options.threshold, options.patch_overlap, options.flip_tta) == (None, None, None)


def test_bids_root_must_be_given():
    assert _compose("data=bids").data.root is None
    assert _compose("data=phantom").data.root == "data/phantom"


def test_phantom_config_sites_and_generator():
    cfg = _compose("subjects=7", "seed=3", name="phantom")
    sites = {name: instantiate(node, _convert_="all") for name, node in cfg.site_catalog.items()}
    assert all(isinstance(site, SiteProtocol) for site in sites.values())
    assert sites["A"].shape == (440, 440, 40) and sites["B"].orientation == "LAS"
    generator = instantiate(cfg.generator, _convert_="all")
    assert isinstance(generator, PhantomConfig) and (generator.subjects, generator.seed) == (7, 3)


def test_the_small_head_keeps_each_sites_voxels_in_a_136_mm_slab():
    adult = phantom_config(_compose("sites=[A,B,C]", name="phantom"))
    small = phantom_config(_compose("sites=[A,B,C]", "head=small", name="phantom"))
    assert [s.shape for s in adult.sites] == [(440, 440, 40), (366, 366, 34), (400, 400, 40)]
    assert [s.shape for s in small.sites] == [(272, 272, 40), (227, 227, 34), (248, 248, 40)]
    assert [s.voxel_mm for s in small.sites] == [s.voxel_mm for s in adult.sites]
    assert (adult.head_scale, small.head_scale) == (1.0, 0.5)
    assert (adult.head_model, small.head_model) == ("mni", "geometric")
    assert tuple(small.midbrain_offset_mm) == (8.0, 8.0, 5.0)


def test_the_localiser_experiment_sees_the_whole_field_of_view_coarsely():
    spec = run_spec(_compose("experiment=localiser", "data.root=/data/bids"))
    assert spec.data.preprocessing.spacing_mm == (2.0, 2.0, 2.0)
    assert spec.data.preprocessing.roi_mm is None
    # One channel, echo 1, on synthetic contrasts: it runs on any protocol.
    assert spec.data.preprocessing.channels == ("echo-1",) and spec.model["in_channels"] == 1
    assert reads_tissues(spec.augmentation)
    assert spec.tracking.model_name == "sn-localiser" and spec.localiser_uri is None


def test_run_spec_loads_the_named_localiser_through_the_given_loader():
    cfg = _compose("localiser=models:/sn-localiser@champion", "data.root=/data/bids")
    calls = []

    def load(model_uri: str, tracking_uri: str) -> str:
        calls.append((model_uri, tracking_uri))
        return "the localiser"

    spec = run_spec(cfg, load)  # type: ignore[arg-type]
    assert spec.localiser == "the localiser"
    assert calls == [("models:/sn-localiser@champion", cfg.tracking.uri)]
    assert run_spec(cfg).localiser is None  # checking a config loads nothing


def test_a_localiser_that_does_not_load_is_one_line():
    cfg = _compose("localiser=models:/missing@champion", "data.root=/data/bids")

    def fail(model_uri: str, tracking_uri: str) -> None:
        raise OSError("no such registered model\nmore detail")

    with pytest.raises(
        ConfigError, match=r"^localiser: cannot load models:/missing@champion: "
    ) as error:
        run_spec(cfg, fail)  # type: ignore[arg-type]
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("experiment", "channels"), [("nm_slab", ("NM",)), ("qsm_only", ("Chimap",))]
)
def test_protocol_presets_declare_their_channels(experiment, channels):
    spec = run_spec(_compose(f"experiment={experiment}", "data.root=/data/bids"))
    assert spec.data.channels == spec.data.preprocessing.channels == channels
    assert spec.model["in_channels"] == 1


def test_data_channels_and_the_spec_s_must_agree():
    with pytest.raises(ValueError, match=r"set data\.channels only"):
        run_spec(_compose("data.root=/data/bids", "data.preprocessing.channels=[echo-1]"))
