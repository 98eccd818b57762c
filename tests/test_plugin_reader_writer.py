"""The plugin's reader, writer and sample data in a real napari viewer."""

import itertools

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from napari_dfcseg.plugin._reader import get_reader

PLUGIN = "napari-dfcseg"


def _corners(shape):
    return list(itertools.product(*[(0, n - 1) for n in shape]))


def test_oblique_nifti_corners_sit_at_simpleitk_physical_points(make_napari_viewer, make_oblique_nifti):
    path, _, _ = make_oblique_nifti()
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    reference = sitk.ReadImage(str(path))
    assert layer.data.shape == reference.GetSize()[::-1]
    for k, j, i in _corners(layer.data.shape):
        lps_xyz = reference.TransformIndexToPhysicalPoint((i, j, k))
        np.testing.assert_allclose(layer.data_to_world((k, j, i)), lps_xyz[::-1], atol=1e-4)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_oblique_mha_and_nrrd_corners_sit_at_their_physical_points(make_napari_viewer, tmp_path, suffix):
    from conftest import rotation_matrix

    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-31.0, 12.5, 88.0))
    image.SetDirection(rotation_matrix((5.0, 20.0, -35.0)).ravel().tolist())
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(image, str(path))
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(path), plugin=PLUGIN)
    for k, j, i in _corners(layer.data.shape):
        lps_xyz = image.TransformIndexToPhysicalPoint((i, j, k))
        np.testing.assert_allclose(layer.data_to_world((k, j, i)), lps_xyz[::-1], atol=1e-4)


def test_ct_dicom_opens_in_soft_tissue_window_with_its_geometry(make_napari_viewer, make_dicom_series):
    series = make_dicom_series()
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(series.folder), plugin=PLUGIN)
    assert layer.contrast_limits == [-160.0, 240.0]  # W400 / L40
    np.testing.assert_allclose(layer.data, series.hu)
    # geometry kept for the writer, without patient data
    meta = layer.metadata["dfcseg"]
    np.testing.assert_allclose(meta["origin"], series.origin, atol=1e-4)
    assert series.patient_name.split("^")[0] not in repr(meta)
    np.testing.assert_allclose(layer.data_to_world((0, 0, 0)), series.origin[::-1], atol=1e-4)
    # opening one file of the series opens the whole series
    [one] = viewer.open(str(series.files[0]), plugin=PLUGIN)
    assert one.data.shape == layer.data.shape


def test_multi_series_dicom_folder_gives_one_named_layer_per_series(make_napari_viewer, make_dicom_series, tmp_path):
    make_dicom_series("exam/a", description="Axial CT", series_number=2)
    make_dicom_series("exam/b", description="T1 MPRAGE", modality="MR", series_number=5,
                      shape=(4, 8, 8), file_prefix="mr")
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "exam"), plugin=PLUGIN)
    assert sorted(layer.name for layer in layers) == ["Axial CT", "T1 MPRAGE"]
    mr = next(layer for layer in layers if layer.name == "T1 MPRAGE")
    low, high = mr.contrast_limits
    assert np.percentile(mr.data, 0.5) == pytest.approx(low)
    assert np.percentile(mr.data, 99.5) == pytest.approx(high)


def test_reader_declines_files_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("not a scan")
    (tmp_path / "empty").mkdir()
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "empty")) is None
    assert get_reader(str(tmp_path / "scan.nii.gz")) is not None


def test_labels_saved_with_the_writer_have_the_source_affine(make_napari_viewer, make_oblique_nifti, tmp_path):
    path, _, _ = make_oblique_nifti()
    viewer = make_napari_viewer()
    [image] = viewer.open(str(path), plugin=PLUGIN)
    from napari_dfcseg.plugin._layers import output_layer_kwargs

    labels = (image.data > 500).astype(np.uint8)
    layer = viewer.add_labels(labels, name="seg", **output_layer_kwargs(image))
    layer.features = {"index": [0, 1], "name": ["", "bright tissue"]}
    target = tmp_path / "seg.nii.gz"
    written = _save(layer, target)
    assert str(target) in written
    saved = nib.load(str(target))
    np.testing.assert_allclose(saved.affine, nib.load(str(path)).affine, atol=1e-5)
    # nibabel's x, y, z array is our (z, y, x) array transposed
    np.testing.assert_array_equal(np.asarray(saved.dataobj).transpose(2, 1, 0), labels)
    # the name typed in the label table travels into ITK-SNAP's label description file
    assert "bright tissue" in (tmp_path / "seg.labels.txt").read_text()


def _save(layer, target):
    from napari import save_layers

    return save_layers(str(target), [layer], plugin=PLUGIN)


def test_writer_falls_back_to_the_layer_transform_without_metadata(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    rotate = np.array([[1.0, 0, 0], [0, 0.8, -0.6], [0, 0.6, 0.8]])
    labels = np.zeros((3, 4, 5), dtype=np.uint8)
    labels[1, 2, 3] = 7
    layer = viewer.add_labels(labels, scale=(3.0, 0.5, 0.7), translate=(10.0, -20.0, 30.0), rotate=rotate)
    target = tmp_path / "plain.nii"
    _save(layer, target)
    saved = nib.load(str(target))
    for k, j, i in _corners(labels.shape):
        ras = saved.affine @ np.array([i, j, k, 1.0])
        lps_zyx = (ras[:3] * [-1, -1, 1])[::-1]
        np.testing.assert_allclose(layer.data_to_world((k, j, i)), lps_zyx, atol=1e-5)


def test_head_phantom_sample_opens_with_its_spacing(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "head_phantom")
    [layer] = viewer.layers
    assert layer.data.ndim == 3
    np.testing.assert_allclose(layer.scale, (2.5, 1.0, 1.0))
    assert layer.metadata["dfcseg"]["spacing"] == [2.5, 1.0, 1.0]


def test_mni152_sample_opens_when_nilearn_is_installed(make_napari_viewer):
    pytest.importorskip("nilearn")
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "mni152")
    [layer] = viewer.layers
    assert layer.data.shape == (189, 233, 197)
    np.testing.assert_allclose(np.abs(layer.scale), 1.0)


def test_unreadable_series_is_skipped_with_a_warning_not_a_crash(make_napari_viewer, make_dicom_series, tmp_path):
    make_dicom_series("exam/good", description="Axial CT", series_number=2)
    tilted = [[1, 0, 0, 0, 1, 0], [0, 1, 0, 0, 0, 1], [1, 0, 0, 0, 0, 1]]
    make_dicom_series("exam/scout", description="Localizer", series_number=1, shape=(3, 8, 8),
                      orientations=tilted, file_prefix="scout")
    from napari.utils.notifications import NotificationSeverity, notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    viewer = make_napari_viewer()
    try:
        layers = viewer.open(str(tmp_path / "exam"), plugin=PLUGIN)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert [layer.name for layer in layers] == ["Axial CT"]
    warnings = [n.message for n in seen if n.severity == NotificationSeverity.WARNING]
    assert any("Localizer" in message for message in warnings)


# ------------------------------------------------------------ label volumes open as Labels


def test_a_real_label_nrrd_opens_as_labels_on_its_scan(real_data, make_napari_viewer):
    from napari.layers import Image, Labels

    folder = real_data / "mr-brain-tumour"
    viewer = make_napari_viewer()
    [scan] = viewer.open(str(folder / "image.nrrd"), plugin=PLUGIN)
    [label] = viewer.open(str(folder / "tumour_label.nrrd"), plugin=PLUGIN)
    assert isinstance(scan, Image) and isinstance(label, Labels)
    assert label.data.shape == scan.data.shape and label.data.max() >= 1
    for k, j, i in _corners(label.data.shape):
        np.testing.assert_allclose(label.data_to_world((k, j, i)), scan.data_to_world((k, j, i)),
                                   atol=1e-4)
    assert label.colormap.map(np.array([0]))[0][3] == 0.0  # 0 is the clear label


def test_saved_labels_reopen_as_labels_with_their_names_and_colours(make_napari_viewer, tmp_path):
    import pandas as pd
    from napari.layers import Labels

    from napari_dfcseg.io import Volume, label_colour
    from napari_dfcseg.plugin._layers import image_layer_data, labels_colormap, output_layer_kwargs

    viewer = make_napari_viewer()
    volume = Volume.from_array(np.zeros((3, 6, 5), np.float32), spacing=(2.5, 0.8, 0.8),
                               origin=(10.0, -4.0, 7.0))
    data, kwargs, _ = image_layer_data(volume, name="scan")
    scan = viewer.add_image(data, **kwargs)
    labels = np.zeros((3, 6, 5), np.uint8)
    labels[1, 2:4, 1:3] = 2
    labels[2, 0, 0] = 5
    # label 5's colour picked by the user (the label table's colour dialog sets it so)
    layer = viewer.add_labels(labels, name="seg", colormap=labels_colormap(colours={5: (10, 200, 30)}),
                              **output_layer_kwargs(scan))
    layer.features = pd.DataFrame({"index": [2, 5], "name": ["liver", "bone"]})
    viewer.layers.selection.active = layer
    written = viewer.layers.save(str(tmp_path / "x.nii.gz"), selected=True)  # no plugin named
    [row] = [line.split() for line in (tmp_path / "x.labels.txt").read_text().splitlines()
             if line.split()[:1] == ["5"]]
    assert row[1:4] == ["10", "200", "30"] and row[-1] == '"bone"'
    assert " 10 200 30 " in (tmp_path / "x.ctbl").read_text()
    assert written and written[0].endswith("x.nii.gz")
    [again] = viewer.open(written[0], plugin=PLUGIN)
    assert isinstance(again, Labels)
    np.testing.assert_array_equal(again.data, labels)
    names = dict(zip(again.features["index"], again.features["name"]))
    assert names == {2: "liver", 5: "bone"}
    # the colours of the written ITK-SNAP file: label 2 the standard green, label 5 the picked one
    np.testing.assert_allclose(again.get_color(2)[:3], np.array(label_colour(2)) / 255, atol=1 / 255)
    np.testing.assert_allclose(again.get_color(5)[:3], np.array([10, 200, 30]) / 255, atol=1 / 255)
    np.testing.assert_allclose(again.data_to_world((2, 5, 4)), scan.data_to_world((2, 5, 4)), atol=1e-4)


def test_integer_scans_stay_images_and_a_nifti_label_intent_alone_makes_labels(make_napari_viewer, tmp_path):
    import nibabel as nib
    from napari.layers import Image, Labels

    viewer = make_napari_viewer()
    ct = np.random.default_rng(0).integers(-1000, 2000, (4, 5, 6)).astype(np.int16)
    nib.save(nib.Nifti1Image(ct, np.eye(4)), str(tmp_path / "ct.nii.gz"))
    [layer] = viewer.open(str(tmp_path / "ct.nii.gz"), plugin=PLUGIN)
    assert isinstance(layer, Image)
    img = nib.Nifti1Image((ct > 0).astype(np.uint8), np.eye(4))
    img.header.set_intent(1002)
    nib.save(img, str(tmp_path / "anything.nii.gz"))
    [layer] = viewer.open(str(tmp_path / "anything.nii.gz"), plugin=PLUGIN)
    assert isinstance(layer, Labels)


def test_save_selected_layers_dialog_writes_nifti_with_the_plugins_filter(make_napari_viewer, tmp_path,
                                                                          qtbot):
    """napari's File > Save Selected Layers... in a real Qt dialog, the user picking our file type."""
    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.eye(6, dtype=np.uint8)[None].repeat(2, 0), name="seg")
    viewer.layers.selection.active = layer
    target = tmp_path / "typed.nii.gz"
    answered = _answer_save_dialog(qtbot, target, name_filter="NIfTI labels + ITK-SNAP")
    viewer.window._qt_viewer._save_layers_dialog(selected=True)
    assert answered and "*.nii.gz" in answered[0]
    assert target.is_file()
    assert nib.load(str(target)).header["intent_code"] == 1002


def test_a_label_colour_out_of_range_is_refused_in_one_line(tmp_path):
    from napari_dfcseg.errors import VolumeIOError
    from napari_dfcseg.io import Volume, write_labels

    like = Volume.from_array(np.zeros((2, 3, 4), np.float32), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(VolumeIOError, match=r"label colours: label 1 needs \(r, g, b\) in 0..255"):
        write_labels(tmp_path / "x.nii.gz", np.ones((2, 3, 4), np.uint8), like, colours={1: (300, 0, 0)})
    assert not list(tmp_path.iterdir())  # nothing written


def _answer_save_dialog(qtbot, path, name_filter=None):
    """Answer the next modal Qt file dialog as a user does: (pick a type,) type ``path``, Save."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QDialogButtonBox, QFileDialog, QLineEdit

    answered = []

    def answer():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(50, answer)
            return
        buttons = dialog.findChild(QDialogButtonBox)
        try:
            if name_filter is not None:
                [entry] = [f for f in dialog.nameFilters() if name_filter in f]
                dialog.selectNameFilter(entry)
            dialog.findChild(QLineEdit, "fileNameEdit").setText(str(path))  # typed
            answered.append(dialog.selectedNameFilter())
            buttons.button(QDialogButtonBox.Save).click()
        except Exception:
            buttons.button(QDialogButtonBox.Cancel).click()  # never leave the test hanging
            raise

    QTimer.singleShot(50, answer)
    return answered


def _io_utilities_action(viewer, text):
    [io_menu] = [a.menu() for a in viewer.window.file_menu.actions()
                 if a.menu() is not None and a.text().replace("&", "") == "IO Utilities"]
    viewer.window.file_menu.aboutToShow.emit()  # napari updates the enabled states on opening
    [action] = [a for a in io_menu.actions() if a.text().startswith(text)]
    return action


def test_file_menu_save_labels_writes_the_typed_nii_gz_with_the_scans_geometry(
        make_napari_viewer, qtbot, tmp_path, make_oblique_nifti):
    """File > IO Utilities > Save labels as NIfTI or Slicer segmentation… through napari's own menu."""
    from napari_dfcseg.plugin._layers import output_layer_kwargs

    path, _, _ = make_oblique_nifti()
    viewer = make_napari_viewer()
    [scan] = viewer.open(str(path), plugin=PLUGIN)
    shape = scan.data.shape
    labels = np.zeros(shape, np.uint8)
    labels[1:3, 2:5, 1:4] = 2
    seg = viewer.add_labels(labels, name="seg", **output_layer_kwargs(scan))
    viewer.layers.selection.active = seg
    action = _io_utilities_action(viewer, "Save labels as NIfTI or Slicer segmentation")
    assert action.isEnabled()
    target = tmp_path / "typed.nii.gz"
    answered = _answer_save_dialog(qtbot, target)  # the default type, a typed .nii.gz name
    action.trigger()
    qtbot.waitUntil(lambda: target.is_file(), timeout=10_000)
    assert answered and "nii.gz" in answered[0]
    saved = nib.load(str(target))
    assert saved.header["intent_code"] == 1002
    np.testing.assert_allclose(saved.affine, nib.load(str(path)).affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(saved.dataobj).transpose(2, 1, 0), labels)

    # a typed .seg.nrrd name is a 3D Slicer segmentation, whatever type is picked
    slicer = tmp_path / "typed.seg.nrrd"
    _answer_save_dialog(qtbot, slicer)
    action.trigger()
    qtbot.waitUntil(lambda: slicer.is_file(), timeout=10_000)
    import nrrd

    _, header = nrrd.read(str(slicer))
    assert any(key.startswith("Segment0_") for key in header)

    # an image layer selected: the item is disabled (napari's enablement)
    viewer.layers.selection.active = scan
    assert not _io_utilities_action(viewer, "Save labels as NIfTI").isEnabled()
