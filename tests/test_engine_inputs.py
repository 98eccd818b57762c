"""assemble_inputs: the one place that stacks channels, applies the mask rule and the 2D flag."""

import numpy as np
import pytest

from napari_dfcseg import EngineInputs, InvalidInputError, assemble_inputs


def test_extra_channels_are_stacked_last_as_float32_and_keep_their_values():
    t1 = np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5)
    t2 = -t1.astype(np.float64)
    two = np.stack([t1, t1 * 2], axis=-1)  # an extra volume with channels of its own
    inputs = assemble_inputs(t1, channels=[t2, two], spacing=(3, 0.5, 0.5))
    assert isinstance(inputs, EngineInputs)
    assert inputs.image.shape == (4, 6, 5, 4) and inputs.image.dtype == np.float32
    np.testing.assert_array_equal(inputs.image[..., 0], t1)
    np.testing.assert_array_equal(inputs.image[..., 1], t2)
    np.testing.assert_array_equal(inputs.image[..., 3], t1 * 2)
    assert inputs.spacing == (3.0, 0.5, 0.5) and inputs.shape == (4, 6, 5)


def test_an_image_without_extra_channels_is_not_copied():
    image = np.zeros((3, 4, 5), np.int16)
    assert np.shares_memory(assemble_inputs(image).image, image)


def test_the_mask_is_the_voxels_above_zero():
    # a float mask with negative values: astype(bool) would select them, "> 0" does not
    mask = np.array([[-1.0, 0.0], [0.5, 2.0]])[None].repeat(2, 0)
    inputs = assemble_inputs(np.ones((2, 2, 2)), mask=mask)
    assert inputs.mask.dtype == bool
    assert inputs.mask.sum() == 4 and not inputs.mask[:, 0].any()


def test_a_4d_mask_and_scribble_volume_use_their_first_channel():
    image = np.ones((2, 3, 3))
    mask = np.stack([np.ones((2, 3, 3)), np.zeros((2, 3, 3))], -1)
    scribbles = np.zeros((2, 3, 3, 1), np.uint8)
    scribbles[0, 0, 0, 0] = 2
    inputs = assemble_inputs(image, mask=mask, scribbles=scribbles)
    assert inputs.mask.all() and inputs.n_scribble_classes == 2
    assert inputs.scribbles.shape == (2, 3, 3)


def test_a_2d_image_is_one_slice_and_its_labels_come_back_2d():
    image = np.ones((6, 5, 3))  # (y, x, rgb)
    inputs = assemble_inputs(image, channel_axis=-1, channels=[np.zeros((6, 5))],
                             mask=np.ones((6, 5)), scribbles=np.zeros((6, 5), int))
    assert inputs.was_2d and inputs.image.shape == (1, 6, 5, 4)
    assert inputs.mask.shape == (1, 6, 5) and inputs.scribbles is None
    assert inputs.restore_shape(np.zeros(inputs.shape)).shape == (6, 5)
    assert inputs.spacing == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=[np.ones((4, 6, 4))]), r"--channel t2.nii: shape \(4, 6, 4\) does not match"),
    (dict(mask=np.ones((4, 6, 4))), r"--mask m.nii shape \(4, 6, 4\) does not match"),
    (dict(mask=np.zeros((4, 6, 5))), "--mask m.nii is empty"),
    (dict(scribbles=np.full((4, 6, 5), 0.5)), "--scribbles s.nii must hold integer class ids"),
    (dict(channels=[np.ones((4, 6, 5), bool)]), "--channel t2.nii must hold real numbers"),
    (dict(spacing=(1, 0, 1)), "spacing must be 3 positive voxel sizes"),
], ids=["channel-shape", "mask-shape", "empty-mask", "float-scribbles", "bool-channel", "spacing"])
def test_bad_inputs_are_refused_naming_the_input_at_fault(kwargs, message):
    names = {"mask": "--mask m.nii", "scribbles": "--scribbles s.nii", "channels": ["--channel t2.nii"]}
    with pytest.raises(InvalidInputError, match=message):
        assemble_inputs(np.ones((4, 6, 5)), names=names, **kwargs)


def test_entry_points_refuse_inputs_given_twice():
    from napari_dfcseg import segment

    inputs = assemble_inputs(np.ones((4, 6, 5)))
    with pytest.raises(InvalidInputError, match="mask: give them to assemble_inputs"):
        segment(inputs, mask=np.ones((4, 6, 5)))
