"""Model files (issue 15): every field checked on load, atomic save, nothing partial on a full disk."""

import dataclasses
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_dfcseg import DFCConfig, ModelFileError, apply_model, load_model, train_model
from napari_dfcseg.datasets import head_phantom
from napari_dfcseg.engine.normalize import IntensityNormalization

TINY = dataclasses.replace(DFCConfig.preset("fast"), n_channels=8, max_iter=3, min_labels=1,
                           batch_slices=2, patch_size=(4, 12, 12), batch_patches=1,
                           eval_slices=2, stop_rule="batch", min_size=0)


@pytest.fixture(scope="module")
def phantom():
    return head_phantom(shape=(4, 24, 20), spacing=(2.5, 1.0, 1.0))


@pytest.fixture(scope="module")
def model(phantom):
    torch.set_num_threads(1)
    return train_model(phantom.image, spacing=phantom.spacing, mask=phantom.mask, config=TINY, seed=0)


def _damaged(model, tmp_path, change):
    """Save ``model``, apply ``change(payload)`` to the stored payload, write it back."""
    path = model.save(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


def _set(key, value):
    def change(payload):
        payload[key] = value(payload) if callable(value) else value
    return change


def _first_weight_nan(payload):
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
    payload["state_dict"][name].view(-1)[0] = math.nan


def _norm(key, value):
    def change(payload):
        payload["norm_stats"] = dict(payload["norm_stats"])
        if value is None:
            del payload["norm_stats"][key]
        else:
            payload["norm_stats"][key] = value
    return change


def _label(value):
    def change(payload):
        payload["label_of"] = payload["label_of"].clone()
        payload["label_of"][0] = value
    return change


DAMAGE = [
    # tracebacks before (ValueError / KeyError)
    ("short label_of", _set("label_of", lambda p: p["label_of"][:-1]), "label_of has 7 entries; the network has 8"),
    ("norm_stats without high", _norm("high", None), "norm_stats lacks high"),
    ("no mode", lambda p: p.pop("mode"), "missing field 'mode'"),
    # silently wrong labels before
    ("label 70000", _label(70000), "label_of holds 0..70000; labels are 0..8"),
    ("label -3", _label(-3), "label_of holds -3"),
    ("NaN weight", _first_weight_nan, "NaN or infinite weights"),
    ("NaN normalisation", _norm("low", [math.nan]), "norm_stats.low holds nan"),
    ("inverted normalisation", _norm("high", [-1e9]), "must be above norm_stats.low"),
    ("label_means shape", _set("label_means", lambda p: p["label_means"][:, :3]), "label_means has shape"),
    ("infinite label_means", _set("label_means", lambda p: p["label_means"] * math.inf), "infinite"),
    ("negative seed", _set("seed", -5), "seed = -5 is outside"),
    ("float iterations", _set("n_iterations", 2.5), "n_iterations must be an integer"),
    ("3-channel model of 1-channel stats", _set("in_channels", 3), "norm_stats.low must be a list of 3"),
    ("mode 4d", _set("mode", "4d"), "mode must be '2d' or '3d'"),
    ("even kernel", _set("kernel_shape", [2, 3]), "kernel_shape must be 2 positive odd integers"),
    ("scribble classes", _set("n_scribble_classes", 99), "n_scribble_classes = 99 is outside 0..8"),
    ("zero spacing", _set("spacings", [[0.0, 1.0, 1.0]]), "spacings must be positive"),
    # the anchor mixture the labelling pass uses (labels depend on it)
    ("NaN mixture mean", _set("mixture", lambda p: [p["mixture"][0] * math.nan, *p["mixture"][1:]]),
     "mixture holds NaN"),
    ("zero mixture variance", _set("mixture", lambda p: [p["mixture"][0], p["mixture"][1] * 0,
                                                         p["mixture"][2]]), "must be positive"),
    ("mixture of 2 tensors", _set("mixture", lambda p: p["mixture"][:2]), "mixture must be three"),
    ("mixture of 2 channels", _set("mixture", lambda p: [p["mixture"][0].repeat(1, 2),
                                                         *p["mixture"][1:]]), "mixture has shapes"),
]


@pytest.mark.parametrize("name, change, problem", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_every_damaged_field_is_a_model_file_error_naming_it(model, tmp_path, name, change, problem):
    path = _damaged(model, tmp_path, change)
    with pytest.raises(ModelFileError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "damaged" in message
    assert problem in message


def test_an_intact_model_still_loads_and_labels_as_before(model, phantom, tmp_path):
    loaded = load_model(model.save(tmp_path / "model.pt"))
    np.testing.assert_array_equal(loaded.label_of, model.label_of)
    # the anchor mixture travels with the model: the labelling pass needs it
    assert model.mixture is not None
    for stored, kept in zip(loaded.mixture, model.mixture):
        np.testing.assert_array_equal(stored, kept)
    a = apply_model(model, phantom.image, spacing=phantom.spacing, mask=phantom.mask).labels
    b = apply_model(loaded, phantom.image, spacing=phantom.spacing, mask=phantom.mask).labels
    np.testing.assert_array_equal(a, b)


DATA = Path(__file__).parent / "data"


def test_a_model_file_of_the_previous_release_loads_and_labels_as_it_did():
    """``data/model_v1_norm_stats.pt``: written by the version whose Model held a plain
    ``norm_stats`` dict (before ``IntensityNormalization``), trained with conftest's TINY
    on ``head_phantom(shape=(4, 24, 20), spacing=(2.5, 1, 1))`` with its mask, seed 0;
    ``..._labels.npy``: what that version's ``apply_model`` gave on the same phantom."""
    phantom = head_phantom(shape=(4, 24, 20), spacing=(2.5, 1.0, 1.0))
    loaded = load_model(DATA / "model_v1_norm_stats.pt")
    assert isinstance(loaded.normalization, IntensityNormalization)
    assert loaded.normalization.low == pytest.approx((361.8285331726074,))
    assert loaded.normalization.high == pytest.approx((2445.019195556641,))
    assert loaded.normalization.hu_window is None and not loaded.normalization.constant
    labels = apply_model(loaded, phantom.image, spacing=phantom.spacing, mask=phantom.mask).labels
    before = np.load(DATA / "model_v1_norm_stats_labels.npy")
    # identical on the machine that wrote it; another CPU's float rounding may flip a rare tie
    assert np.mean(labels == before) >= 0.995
    assert set(np.unique(labels)) == set(np.unique(before))


def test_the_saved_normalisation_is_the_fitted_one(model, tmp_path):
    path = model.save(tmp_path / "model.pt")
    stored = torch.load(path, weights_only=True)["norm_stats"]
    assert stored == model.normalization.to_dict()
    assert load_model(path).normalization == model.normalization


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork and RLIMIT_FSIZE")
def test_save_on_a_full_disk_raises_model_file_error_and_leaves_nothing(model, tmp_path):
    import resource

    folder = tmp_path / "small-disk"
    folder.mkdir()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a file-size limit makes every write past 4 kB fail with EFBIG
        os.close(read_end)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            model.save(folder / "model.pt")
            outcome = "saved"
        except ModelFileError as err:
            outcome = f"ModelFileError {err}"
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            outcome = f"{type(err).__name__} {err}"
        os.write(write_end, outcome.encode()[:500])
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    outcome = os.read(read_end, 1000).decode()
    assert outcome.startswith("ModelFileError") and "model.pt: cannot write it" in outcome, outcome
    assert sorted(os.listdir(folder)) == []


def test_save_refuses_a_non_model_file_and_without_overwrite_any_file(model, tmp_path):
    notes = tmp_path / "notes.pt"
    notes.write_bytes(b"my own file")
    with pytest.raises(ModelFileError, match="exists and is not a napari-dfcseg model file"):
        model.save(notes)
    assert notes.read_bytes() == b"my own file"
    saved = model.save(tmp_path / "model.pt")
    with pytest.raises(ModelFileError, match="exists; refusing to overwrite"):
        model.save(saved, overwrite=False)
    assert model.save(saved) == saved  # a model file may be replaced (a save dialog asked)


def test_a_symlink_planted_at_the_old_temporary_name_is_not_followed(model, tmp_path):
    import threading

    from napari_dfcseg.cli._files import commit

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "shared" / "model.pt"
    target.parent.mkdir()
    # the name the CLI used to write through: .{name}.partial-{pid}{suffixes}
    (target.parent / f".model.pt.partial-{os.getpid()}.pt").symlink_to(victim)
    commit([model.output(target)], overwrite=False, cancel=threading.Event())  # as dfcseg train does
    assert victim.read_text() == "precious"
    assert load_model(target).n_labels == model.n_labels


def test_saved_file_is_readable_by_others_as_open_would_create_it(model, tmp_path):
    mask = os.umask(0o022)
    try:
        path = model.save(tmp_path / "model.pt")
    finally:
        os.umask(mask)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
