"""One table of user parameters: the CLI and the widget build the same config from the same choices,
and settings files round-trip."""

import json

import numpy as np
import pytest
from conftest import run_cli, write_nifti

from napari_dfcseg import DFCConfig, InvalidInputError
from napari_dfcseg.cli import build_parser
from napari_dfcseg.cli._options import config_from_args
from napari_dfcseg.engine.parameters import (USER_PARAMETERS, apply_user_values, load_config,
                                             save_config, user_values)


def _choice(row, preset="fast"):
    """A value of ``row`` that differs from the preset's, inside the range."""
    shown = user_values(preset)[row.name]
    for value in (row.minimum + 1, row.minimum + 2, 0.5, 1.5):
        value = row.type(value)
        if value != shown and row.minimum <= value <= row.maximum:
            return value
    raise AssertionError(row)


def _cli_config(*options, preset="fast"):
    args = build_parser().parse_args(["segment", "in.nii", "out.nii", "--preset", preset, *options])
    return config_from_args(args)


def _cli_options(row, value):
    return [row.flag, str(value)]


@pytest.mark.parametrize("row", USER_PARAMETERS, ids=lambda r: r.name)
def test_every_cli_option_of_the_table_changes_the_config(row):
    value = _choice(row)
    config = _cli_config(*_cli_options(row, value))
    assert config != DFCConfig.preset("fast")
    assert config == apply_user_values("fast", {row.name: value})
    assert user_values(config)[row.name] == value


def test_the_none_rule_has_one_home():
    config = _cli_config("--n-clusters", "0", "--anchor", "0")
    assert config.n_clusters is None and config.mixture_components is None
    assert user_values(config)["n_clusters"] == 0 and user_values(config)["anchor"] == 0
    # what a front end shows for a preset gives the preset back
    for name in ("default", "fast", "paper"):
        again = apply_user_values(name, user_values(name))
        assert user_values(again) == user_values(name)


def test_out_of_range_values_are_refused_naming_the_option():
    with pytest.raises(InvalidInputError, match="--n-clusters: must be between 0 and 512"):
        apply_user_values("default", {"n_clusters": 600})
    with pytest.raises(InvalidInputError, match="unknown parameter 'lr'"):
        apply_user_values("default", {"lr": 0.1})


def test_settings_file_round_trips_and_cli_options_override_it(tmp_path):
    config = apply_user_values("paper", {"max_iter": 77, "n_clusters": 4, "anchor": 0.5})
    path = save_config(config, tmp_path / "settings.json")
    assert json.loads(path.read_text())["max_iter"] == 77
    assert load_config(path) == config
    with pytest.raises(InvalidInputError, match="exists"):
        save_config(config, path)
    args = build_parser().parse_args(["segment", "a.nii", "b.nii", "--config", str(path),
                                      "--max-iter", "9"])
    from_cli = config_from_args(args)
    assert from_cli.max_iter == 9 and from_cli.n_clusters == 4 and from_cli.mixture_weight == 0.5
    assert from_cli.lr == DFCConfig.preset("paper").lr


def test_a_hand_written_toml_file_starts_from_its_preset(tmp_path):
    pytest.importorskip("tomllib")
    path = tmp_path / "settings.toml"
    path.write_text('preset = "fast"\nn_clusters = 4\nanchor = 0.25\n')
    config = load_config(path)
    assert config == apply_user_values("fast", {"n_clusters": 4, "anchor": 0.25})


@pytest.mark.parametrize("text, message", [
    ("{not json", "cannot read it"),
    ('{"max_iter": 0}', "max_iter"),
    ('{"learning_rate": 0.1}', "unknown DFCConfig fields: learning_rate"),
    ('{"preset": "turbo"}', "turbo"),
    ('[1, 2]', "a table of settings"),
], ids=["syntax", "range", "unknown-field", "unknown-preset", "not-a-table"])
def test_a_bad_settings_file_is_one_error_naming_it(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(InvalidInputError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_config_and_preset_together_are_refused(tmp_path):
    path = save_config(DFCConfig.preset("fast"), tmp_path / "s.json")
    args = build_parser().parse_args(["segment", "a", "b", "--config", str(path), "--preset", "fast"])
    with pytest.raises(InvalidInputError, match="--config and --preset"):
        config_from_args(args)


# ----------------------------------------------------------------- the widget's side


def test_widget_and_cli_give_the_same_config_for_the_same_choice(make_napari_viewer):
    """Row by row, on fresh settings widgets of one viewer (a viewer per row cost ~1 s each)."""
    pytest.importorskip("napari")
    from napari_dfcseg.plugin._settings import RunSettings

    viewer = make_napari_viewer()
    differ = {}
    for row in USER_PARAMETERS:
        settings = RunSettings(viewer)
        settings.preset.value = "fast"
        value = _choice(row)
        if row.name == "n_clusters":  # the widget's Tissues control (Auto, 2..12)
            value = 4
            settings.tissues.value = str(value)
        else:
            getattr(settings, row.name).value = value
        widget, cli = settings.config(), _cli_config(*_cli_options(row, value))
        if widget != cli or widget == DFCConfig.preset("fast"):
            differ[row.name] = (widget, cli)
    assert not differ, differ


# ------------------------------------------- errors name what the user set, not DFCConfig's fields


def test_cli_refuses_more_labels_than_feature_channels_naming_its_options(tmp_path):
    scan = write_nifti(tmp_path / "scan.nii.gz", np.zeros((4, 8, 8), np.int16))
    out = tmp_path / "labels.nii.gz"
    result = run_cli("segment", scan, out, "--n-clusters", "40", "--n-channels", "8")
    assert result.returncode == 2 and not out.exists()
    (line,) = result.stderr.strip().splitlines()
    assert "--n-clusters 40" in line and "--n-channels 8" in line and "at least 40" in line
    assert "DFCConfig" not in line and "n_channels" not in line
    # a count the preset set is named as the option that changes it, and said to come from there
    result = run_cli("segment", scan, out, "--preset", "brain", "--n-channels", "2")
    (line,) = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "--n-clusters 3 (from the preset" in line, line
    assert "DFCConfig" not in line


def test_cli_names_the_anchor_option_when_its_classes_outnumber_the_channels():
    with pytest.raises(InvalidInputError) as caught:
        _cli_config("--anchor", "1", "--n-clusters", "0", "--n-channels", "2")
    message = str(caught.value)
    assert "--anchor 1:" in message and "--n-channels 2" in message and "--anchor to 0" in message
    assert "mixture_components" not in message and "DFCConfig" not in message


def test_settings_file_errors_name_the_file_and_its_keys(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"n_clusters": 40, "n_channels": 8}))
    with pytest.raises(InvalidInputError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"settings file {path}: n_clusters = 40") and "DFCConfig" not in message


def test_widget_run_error_names_its_fields_in_the_status_line(widget_viewer):
    pytest.importorskip("napari")
    _, _, widget, _ = widget_viewer(preset="brain")
    s = widget.settings
    s.tissues.value = "As found"
    s.anchor.value = 1.0
    s.n_channels.value = 2
    assert widget.run() is None and not widget.running
    status = widget.status.text()
    assert status.startswith(f"{s.anchor.label} = 1: its 3 intensity classes"), status
    assert f"({s.n_channels.label} = 2)" in status and f"set {s.anchor.label} to 0" in status
    assert "DFCConfig" not in status and "n_channels" not in status
