"""One table of user parameters: the CLI and the widget build the same config from the same choices,
and settings files round-trip."""

import json

import pytest

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
