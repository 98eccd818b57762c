"""Reference models: save → load → apply, chunked inference, refusal of unsafe files."""

import dataclasses
import pickle
import warnings

import numpy as np
import pytest
import torch

import conftest
from napari_dfcseg import (InvalidInputError, ModelFileError, apply_model, load_model, segment,
                           train_model)
from napari_dfcseg.datasets import head_phantom
from napari_dfcseg.engine.network import receptive_radius

# islands under 3 voxels merged: apply_model must repeat that step too
TINY = dataclasses.replace(conftest.TINY, min_size=3)


@pytest.fixture(scope="module")
def phantom():
    return head_phantom(shape=(12, 40, 36), spacing=(2.5, 1.0, 1.0))


@pytest.fixture(scope="module")
def model_3d(phantom):
    """One 3D model of the phantom's 2.5 mm slices, shared by the tests that only read it."""
    return train_model(phantom.image, mode="3d", spacing=phantom.spacing, mask=phantom.mask,
                       config=TINY)


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_saved_model_reproduces_the_labels_of_its_training_volume(phantom, tmp_path, mode):
    result = segment(phantom.image, mode=mode, spacing=phantom.spacing, mask=phantom.mask,
                     config=TINY, seed=1)
    path = result.model.save(tmp_path / "model.pt")
    model = load_model(path)
    # the model stores the config as resolved: the tissue count chosen for this scan
    assert model.mode == mode and model.config == result.model.config
    assert dataclasses.replace(model.config, n_clusters=TINY.n_clusters,
                               mixture_components=TINY.mixture_components) == TINY
    assert model.kernel_shape == result.model.kernel_shape == ((3, 3) if mode == "2d" else (1, 3, 3))
    again = apply_model(model, phantom.image, spacing=phantom.spacing, mask=phantom.mask)
    np.testing.assert_array_equal(again.labels, result.labels)


@pytest.mark.parametrize("spacing, halo", [((1.0, 1.0, 1.0), (2, 2, 2)), ((2.5, 1.0, 1.0), (0, 2, 2))])
def test_chunked_3d_inference_equals_whole_volume(spacing, halo):
    phantom = head_phantom(shape=(12, 24, 20), spacing=(2.5, 1.0, 1.0))  # chunks of 5 slices
    model = train_model(phantom.image, mode="3d", spacing=spacing, mask=phantom.mask,
                        config=dataclasses.replace(TINY, min_size=0), seed=2)
    # thick slices (≥ 2× the finest spacing) get 1-voxel kernels along z, hence no z halo
    assert receptive_radius(model.config.n_conv, model.kernel_shape) == halo
    whole = dataclasses.replace(model, config=dataclasses.replace(model.config, chunk_size=512))
    chunked = dataclasses.replace(model, config=dataclasses.replace(model.config, chunk_size=5))
    a = apply_model(whole, phantom.image, mask=phantom.mask).labels
    b = apply_model(chunked, phantom.image, mask=phantom.mask).labels
    assert len(np.unique(a)) > 2
    np.testing.assert_array_equal(a, b)


def test_model_trained_on_several_volumes_applies_to_an_unseen_one():
    volumes = [head_phantom(shape=(8, 40, 36), seed=s) for s in (0, 1)]
    model = train_model([v.image for v in volumes], masks=[v.mask for v in volumes],
                        config=TINY, seed=0)
    unseen = head_phantom(shape=(8, 40, 36), seed=5)
    labels = apply_model(model, unseen.image, mask=unseen.mask).labels
    assert (labels[~unseen.mask] == 0).all()
    assert set(np.unique(labels[unseen.mask])) <= set(range(1, model.n_labels + 1))


class _WritesAFile:
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_model_file_with_code_is_refused(tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-dfcseg-model", "payload": _WritesAFile(target)}, path)
    with pytest.raises(ModelFileError, match="not a safe"):
        load_model(path)
    assert not target.exists()
    # the payload is live: an unsafe load would have run it
    torch.load(path, weights_only=False)
    assert target.exists()


def test_plain_pickle_and_garbage_files_are_refused(tmp_path):
    target = tmp_path / "pwned.txt"
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_WritesAFile(target)))
    with pytest.raises(ModelFileError):
        load_model(raw)
    assert not target.exists()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelFileError, match="not a napari-dfcseg model"):
        load_model(other)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
    with pytest.raises(ModelFileError, match="is a folder, not a napari-dfcseg model file"):
        load_model(tmp_path)


@pytest.mark.parametrize("content, problem", [
    (b"", "is not a napari-dfcseg model file: the file is empty"),
    (b"hello, not a model", "is not a napari-dfcseg model file: it is not a file PyTorch wrote"),
    ("half", "is a damaged napari-dfcseg model file: it is truncated or corrupt"),
    ("code", "is not a safe napari-dfcseg model file: it holds Python objects other than tensors"),
], ids=["empty", "text", "truncated", "code"])
def test_an_unreadable_model_file_is_one_line_in_the_users_words(model_3d, tmp_path, content, problem):
    """torch says ``101`` for the text file and ``[Errno 22] Invalid argument`` for the truncated one."""
    path = tmp_path / "model.pt"
    if content == "half":
        whole = model_3d.save(tmp_path / "m.pt")
        content = whole.read_bytes()[: whole.stat().st_size // 2]
    elif content == "code":
        torch.save({"format": "napari-dfcseg-model", "payload": _WritesAFile(tmp_path / "pwned")}, path)
        content = path.read_bytes()
    path.write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor a torch warning about pickle protocols
        with pytest.raises(ModelFileError) as err:
            load_model(path)
    assert str(err.value) == f"{path} {problem}" or str(err.value).startswith(f"{path} {problem}")
    assert "Errno" not in str(err.value) and "101" not in str(err.value)


def test_apply_rejects_an_image_with_other_channels(phantom, model_3d):
    model = model_3d
    with pytest.raises(InvalidInputError, match="2 channel.*trained on 1"):
        apply_model(model, np.stack([phantom.image] * 2, -1), channel_axis=-1)


def test_the_model_stores_its_training_spacing_and_kernel(phantom, model_3d, tmp_path):
    model = model_3d
    assert model.spacings == (phantom.spacing,) and model.kernel_shape == (1, 3, 3)
    again = load_model(model.save(tmp_path / "model.pt"))
    assert again.spacings == model.spacings and again.kernel_shape == (1, 3, 3)


def test_apply_warns_when_the_spacing_would_change_the_kernel(phantom, model_3d):
    # trained on 2.5 mm slices: 1x3x3 kernels, nothing mixed across slices; applied to
    # 1 mm isotropic voxels, training would have built 3x3x3 kernels
    model = model_3d
    with pytest.warns(UserWarning, match=r"1×3×3 kernels .*2\.5×1×1 mm.* 1×1×1 mm would get 3×3×3"):
        apply_model(model, phantom.image, spacing=(1.0, 1.0, 1.0), mask=phantom.mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the training spacing, or one as thick: no warning
        apply_model(model, phantom.image, spacing=(3.0, 0.9, 0.9), mask=phantom.mask)


def test_apply_with_extra_channels_assembled_once(phantom):
    from napari_dfcseg import assemble_inputs

    inputs = assemble_inputs(phantom.image, channels=[phantom.image.max() - phantom.image],
                             mask=phantom.mask, spacing=phantom.spacing)
    result = segment(inputs, config=TINY, seed=0)
    again = apply_model(result.model, inputs)
    np.testing.assert_array_equal(again.labels, result.labels)
    with pytest.raises(InvalidInputError, match="1 channel.*trained on 2"):
        apply_model(result.model, phantom.image, spacing=phantom.spacing, mask=phantom.mask)
