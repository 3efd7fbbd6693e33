import dataclasses

import pytest

from scn.config import TrainConfig, make_config


def test_built_in_runs_start_from_the_face_backbone_and_data_runs_from_random():
    assert make_config().pretrained == "synth-face"
    assert make_config(pretrained="none").pretrained is None
    assert make_config(data="/data/raf").pretrained is None
    assert make_config(data="/data/raf", pretrained="synth-face").pretrained == "synth-face"
    for preset in ("official", "paper"):
        config = make_config(preset=preset)
        assert (config.alpha_warmup_epochs, config.alpha_bias_init, config.relabel_min_val_accuracy) == (0, None, 0.0)


def test_new_options_declare_their_flag_help_and_group():
    declared = {f.name: f.metadata for f in dataclasses.fields(TrainConfig) if f.metadata}
    assert set(declared) >= {"alpha_warmup_epochs", "alpha_bias_init", "relabel_min_val_accuracy"}
    for metadata in declared.values():
        assert metadata["flag"].startswith("--") and metadata["help"] and metadata["group"] in ("data", "method", "run")


@pytest.mark.parametrize("bad", [{"alpha_warmup_epochs": -1}, {"relabel_min_val_accuracy": 1.5}])
def test_new_options_are_checked(bad):
    with pytest.raises(ValueError):
        make_config(**bad)
