"""The option schema: TrainConfig's field metadata drives the parser, the argv and the range checks."""
import argparse
import dataclasses

import pytest

from scn.config import (DLIB_FACE, DLIB_MEAN, DLIB_STD, IMAGENET_MEAN, PRESETS, TrainConfig, add_arguments, config_argv, config_from_args, make_config,
                        option_argv, option_specs, options)


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def unusual_value(spec):
    """A valid value other than the field's default, for every kind of option."""
    if spec.is_switch:
        return not spec.default
    if "choices" in spec.limits:
        return next(c for c in spec.limits["choices"] if c != spec.default)
    if spec.type is str:
        return f"/some/{spec.name}"
    low = spec.limits.get("min", spec.limits.get("above", 0))
    high = spec.limits.get("max", spec.limits.get("below", low + 100))
    if spec.type is int:
        return int(low) + 3 if int(low) + 3 != spec.default else int(low) + 4
    return round(low + (high - low) * 0.37, 6)


def test_every_option_round_trips_config_to_argv_to_parser_to_config():
    values = {spec.name: unusual_value(spec) for spec in options()}
    config = TrainConfig(**values)
    assert parse(config_argv(config)) == config
    assert parse(config_argv(TrainConfig())) == TrainConfig()


def test_each_option_alone_reaches_the_config():
    for spec in options():
        value = unusual_value(spec)
        # The built-in benchmark's default start needs 112 px or more: smaller sizes name another.
        start = ["--pretrained", "none"] if spec.name == "image_size" else []
        argv = option_argv({spec.name: value}) + start
        assert getattr(parse(argv), spec.name) == value, spec.name


def test_the_dlib_face_start_takes_its_own_input_scaling_and_refuses_small_images():
    config = make_config(image_size=112)
    assert config.pretrained == DLIB_FACE and config.mean == DLIB_MEAN and config.std == DLIB_STD
    assert make_config(pretrained="none").mean == IMAGENET_MEAN
    with pytest.raises(ValueError, match="dlib-face start needs --image-size 112 or more"):
        make_config(image_size=64)


def test_every_option_has_a_flag_help_and_group():
    specs = options()
    assert len({s.flag for s in specs}) == len(specs)
    for spec in specs:
        assert spec.flag.startswith("--") and len(spec.help) > 10 and spec.group in ("data", "method", "run")
        if spec.is_switch:
            assert spec.flag.startswith("--no-") == spec.default


def test_presets_apply_and_explicit_options_override_them():
    assert parse(["--preset", "paper"]).batch_size == PRESETS["paper"]["batch_size"]
    assert parse(["--preset", "paper", "--batch-size", "32"]).batch_size == 32
    assert parse([]).margin_1 == PRESETS["official"]["margin_1"]


def test_the_demo_preset_is_the_one_click_demos_scn_and_switches_follow_presets():
    from scn.runs import DEMO_RUNS

    demo, one_click = parse(["--preset", "demo"]), make_config(**DEMO_RUNS["scn"])
    assert {k for k, v in vars(demo).items() if vars(one_click)[k] != v} == {"threads", "device"}
    assert demo.relabel_scope == "low" and parse([]).relabel_scope == "all"
    assert demo.backbone_lr_scale == 0.01 and parse([]).backbone_lr_scale == 1.0
    assert parse(["--preset", "demo", "--margin2", "0.3"]).margin_2 == 0.3


@pytest.mark.parametrize("name, value, message", [
    ("margin_2", -1.0, "margin2 must be at least 0"),
    ("beta", 1.0, "beta must be less than 1"),
    ("lr", 0.0, "lr must be greater than 0"),
    ("method", "magic", "method must be one of scn, baseline"),
    ("val_fraction", 0.5, "val-fraction must be less than 0.5"),
    ("epochs", 0, "epochs must be at least 1"),
])
def test_out_of_range_values_are_refused_everywhere(name, value, message):
    with pytest.raises(ValueError, match=message):
        make_config(**{name: value})
    with pytest.raises(ValueError, match=message):
        option_argv({name: value})
    with pytest.raises((ValueError, SystemExit)):  # argparse itself refuses a value outside choices
        parse([option_specs()[name].flag, str(value)])


def test_option_argv_switches_and_unknown_names():
    assert option_argv({"skip_bad": True, "attention": False, "rank_reg": True, "lr": None}) == [
        "--skip-bad", "--no-attention"]
    with pytest.raises(KeyError, match="colour"):
        option_argv({"colour": "red"})


def test_fields_that_are_not_options_are_the_recorded_ones():
    not_options = {f.name for f in dataclasses.fields(TrainConfig)} - set(option_specs())
    assert not_options == {"dataset_description", "class_names", "mean", "std"}


def test_built_in_runs_start_from_the_face_backbone_and_data_runs_from_random():
    assert make_config().pretrained == "dlib-face"
    assert make_config(pretrained="none").pretrained is None
    assert make_config(data="/data/raf").pretrained is None
    assert make_config(data="/data/raf", pretrained="synth-face").pretrained == "synth-face"
    assert parse(config_argv(make_config(pretrained="none"))).pretrained is None
    for preset in ("official", "paper"):
        config = make_config(preset=preset)
        assert (config.alpha_warmup_epochs, config.alpha_bias_init, config.relabel_min_val_accuracy,
                config.alpha_normalize) == (0, None, 0.0, False)


def test_official_preset_relabels_every_sample_and_paper_the_low_group():
    official, paper = make_config(preset="official"), make_config(preset="paper")
    assert (official.relabel_scope, paper.relabel_scope) == ("all", "low")
    assert official.to_dict()["relabel_scope"] == "all"
    assert parse(["--preset", "paper", "--relabel-scope", "all"]).relabel_scope == "all"
    assert TrainConfig().relabel_scope == official.relabel_scope
    assert (official.method_label, paper.method_label) == ("SCN", "SCN")
    assert make_config(preset="official", relabel_scope="low").method_label == "SCN (relabel low group)"
    assert make_config(preset="paper", relabel_scope="all").method_label == "SCN (relabel all)"


@pytest.mark.parametrize("bad", [{"alpha_warmup_epochs": -1}, {"relabel_min_val_accuracy": 1.5}])
def test_standing_start_options_are_checked(bad):
    with pytest.raises(ValueError):
        make_config(**bad)


def test_config_diff_lists_only_the_options_that_differ():
    from scn.config import config_diff

    scn = make_config(method="scn", epochs=10).to_dict()
    baseline = make_config(method="baseline", epochs=10).to_dict()
    older = {k: v for k, v in make_config(method="scn", epochs=4, relabel_scope="low").to_dict().items()
             if k != "relabel_min_val_accuracy"}
    table = config_diff({"a-scn": scn, "b-base": baseline, "c-old": older})
    assert list(table.columns) == ["option", "a-scn", "b-base", "c-old"]
    rows = table.set_index("option")
    assert rows.index.tolist() == ["epochs", "method", "relabel_min_val_accuracy", "relabel_scope"]
    assert rows.loc["method"].tolist() == ["scn", "baseline", "scn"]
    assert rows.loc["epochs"].tolist() == ["10", "10", "4"]
    assert rows.loc["relabel_min_val_accuracy", "c-old"] == "(not recorded)"
    assert config_diff({"a": scn, "b": dict(scn)}).empty
    with pytest.raises(ValueError, match="at least two runs, not 1"):
        config_diff({"a": scn})
