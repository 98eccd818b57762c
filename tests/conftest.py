"""Shared test helpers and fixtures: small synthetic scans written by third-party libraries.

Import the helpers with ``from conftest import ...`` (pytest puts tests/ on the path):

- ``TINY``: a config that trains in a second (tests check behaviour, not quality);
- ``write_nifti(path, zyx, affine=AFFINE)``: a (z, y, x) array as a NIfTI with
  sform = qform = ``affine`` (``AFFINE``: x flipped, 1.2 x 0.9 x 2.5 mm, offset);
- ``write_dicom_series``: a CT (or MR) series with pydicom, one file per
  slice, with an oblique ImageOrientationPatient (``rotation=np.eye(3)`` for an
  axial one), anisotropic voxels, a non-zero origin, rescale slope/intercept and
  patient identifiers (to check they never leak);
- ``write_oblique_nifti``: a NIfTI whose sform/qform are oblique;
- ``run_cli(*args)``: ``dfcseg ARGS`` in this process (the CLI's ``main``), and
  ``run_cli_process(*args)`` in a fresh interpreter, both returning a ``CompletedProcess``.

The writers return what they wrote, so tests can compare a reader's output
with the ground truth. Fixtures: ``make_dicom_series``, ``make_oblique_nifti``
(factories in ``tmp_path``), ``real_data`` (the public real scans, or a skip).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from napari_dfcseg.engine.config import DFCConfig

# One intra-op thread for the whole session (and the processes it starts): the test volumes
# are tiny, so a second thread mostly spins; on the 2-core machine test_engine_segment.py took
# 32 s of CPU with torch's default 2 threads and 9 s with 1. Before, whichever test first called
# torch.set_num_threads(1) set it for the rest of the run, so costs depended on the order.
# Tests of other thread counts set them explicitly (test_reproducibility.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # the torch-free parts can be tested without it
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_FROZEN = []


@pytest.fixture(autouse=True)
def _import_time_objects_out_of_the_collector(request):
    """Before the first napari test: napari, Qt and the plugin imported, then ``gc.freeze()``.

    napari runs a full ``gc.collect()`` on every layer removal (each viewer's
    teardown clears its layers), which walks every object alive: the modules,
    classes and caches of napari, Qt, vispy, torch and pytest, ~0.4 s of CPU
    each time. ``gc.freeze()`` (CPython's tool for this) leaves the objects
    alive now out of later collections; objects the tests create are collected
    as before, so napari's leak checks still see a leaked viewer.
    """
    if not _FROZEN and "make_napari_viewer" in request.fixturenames:
        import gc

        import napari  # noqa: F401
        import napari._qt.qt_viewer  # noqa: F401
        import napari._vispy.canvas  # noqa: F401

        import napari_dfcseg.plugin._widget  # noqa: F401

        gc.collect()
        gc.freeze()
        _FROZEN.append(True)
    yield

#: a config that trains in about a second: 8 channels, 8 iterations, tiny batches
TINY = dataclasses.replace(DFCConfig.preset("fast"), n_channels=8, max_iter=8, min_labels=1,
                           batch_slices=2, patch_size=(6, 12, 12), batch_patches=1,
                           eval_slices=4, stop_rule="batch", chunk_size=16)

#: a RAS affine that is neither identity nor LPS-aligned: x flipped, 1.2 x 0.9 x 2.5 mm, offset origin
AFFINE = np.array([
    [-1.2, 0.0, 0.0, 30.5],
    [0.0, 0.9, 0.0, -20.0],
    [0.0, 0.0, 2.5, 12.0],
    [0.0, 0.0, 0.0, 1.0],
])


def trunk_ct(shape, regions, *, body=(4, 4), blur=0.0, noise=8.0, seed=0):
    """A synthetic trunk CT in HU: air, a fat body inset ``body`` voxels in (y, x), then each
    ``((y0, y1), (x0, x1), hu)`` of ``regions`` painted in order on every slice, an in-plane
    Gaussian blur of ``blur`` voxels (a scanner's partial volume) and Gaussian noise."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    hu = np.full(shape, -1000.0)
    hu[:, body[0]:shape[1] - body[0], body[1]:shape[2] - body[1]] = -100.0
    for (y0, y1), (x0, x1), value in regions:
        hu[:, y0:y1, x0:x1] = value
    if blur:
        hu = ndi.gaussian_filter(hu, (0, blur, blur))
    return hu + rng.normal(0, noise, hu.shape)


def write_nifti(path, zyx, affine=AFFINE):
    """A (z, y, x) array as a NIfTI file (nibabel stores x, y, z), sform = qform = ``affine``."""
    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(np.transpose(zyx, (2, 1, 0))), affine)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    nib.save(img, str(path))
    return Path(path)


def run_cli(*args, cwd=None, timeout=None):
    """``dfcseg ARGS`` in this process: :func:`napari_dfcseg.cli.main`, the function the console
    script and ``python -m napari_dfcseg`` run, with stdout / stderr captured (not terminals),
    warnings filtered as in a fresh interpreter, one torch thread, ``cwd`` as working folder.

    Returns a :class:`subprocess.CompletedProcess` (``returncode``, ``stdout``, ``stderr``), as
    :func:`run_cli_process` does. A fresh interpreter costs ~2 s of torch import per call, which
    is most of what the CLI tests took; what only a process shows (exit status of the
    interpreter, signals, the console script, a small disk) uses :func:`run_cli_process`.
    ``timeout`` is accepted for the same signature and ignored.
    """
    import contextlib
    import io
    import os
    import subprocess
    import sys
    import tempfile
    import warnings

    import torch

    from napari_dfcseg.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    threads = torch.get_num_threads()
    here = os.getcwd()
    # file descriptors 1 and 2 too: what C++ libraries (ITK, torch) print bypasses sys.stderr
    fd_out, fd_err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        torch.set_num_threads(1)
        if cwd is not None:
            os.chdir(cwd)
        os.dup2(fd_out.fileno(), 1)
        os.dup2(fd_err.fileno(), 2)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.resetwarnings()  # a fresh interpreter's filters (and no pytest "error" filters)
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's --help / --version
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        os.chdir(here)
        torch.set_num_threads(threads)

    def text(stream, fd_file):
        fd_file.seek(0)
        return stream.getvalue() + fd_file.read().decode(errors="replace")

    try:
        return subprocess.CompletedProcess(["dfcseg", *argv], code, text(out, fd_out), text(err, fd_err))
    finally:
        fd_out.close()
        fd_err.close()


def run_cli_process(*args, timeout=240, cwd=None, **kwargs):
    """``python -m napari_dfcseg ARGS`` in a fresh interpreter, stderr a pipe, one thread."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "napari_dfcseg", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                          stdin=subprocess.DEVNULL, **kwargs)


def rotation_matrix(angles_deg=(15.0, -10.0, 25.0)):
    """3x3 rotation from rotations about x, y then z (degrees)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class DicomSeries:
    """What ``make_dicom_series`` wrote: files plus the geometry truth (LPS)."""

    folder: Path
    files: list
    stored: np.ndarray  # (z, y, x) stored pixel values
    hu: np.ndarray  # (z, y, x) stored * slope + intercept
    spacing: tuple  # (sz, sy, sx)
    origin: tuple  # LPS (x, y, z) of the first slice's first pixel
    direction: np.ndarray  # columns: row dir, column dir, slice normal
    series_uid: str
    patient_name: str


def _ds(value):
    """A DICOM decimal string (at most 16 characters)."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8f}"[:16]


def write_dicom_series(
    folder,
    shape=(6, 10, 12),
    spacing=(2.5, 0.7, 0.7),
    origin=(-120.5, 35.25, 410.0),
    rotation=None,
    slope=0.5,
    intercept=-1024.0,
    modality="CT",
    description="Synthetic oblique CT",
    patient_name="SENTINEL^Jane^Q",
    patient_id="SENTINEL-ID-123",
    series_uid=None,
    series_number=3,
    positions=None,
    orientations=None,
    stored=None,
    file_prefix="slice",
    seed=0,
):
    """Write a single-frame DICOM series with pydicom and return a :class:`DicomSeries`.

    ``positions`` (list of LPS points) and ``orientations`` (list of 6-vectors)
    override the regular geometry per slice, to make broken series.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = shape
    sz, sy, sx = spacing
    rot = rotation_matrix() if rotation is None else np.asarray(rotation, float)
    row_dir, col_dir = rot[:, 0], rot[:, 1]
    normal = np.cross(row_dir, col_dir)
    if stored is None:
        rng = np.random.default_rng(seed)
        zz, yy, xx = np.mgrid[0:nz, 0:ny, 0:nx]
        stored = (zz * 400 + yy * 23 + xx * 7 + rng.integers(0, 5, shape)).astype(np.int16)
    stored = np.asarray(stored, dtype=np.int16)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    frame_uid = generate_uid()
    files = []
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = "19700101"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyDate = datetime.date(2024, 1, 2).strftime("%Y%m%d")
        ds.Modality = modality
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        position = origin + k * sz * normal if positions is None else positions[k]
        ds.ImagePositionPatient = [_ds(v) for v in np.asarray(position, float)]
        iop = np.concatenate([row_dir, col_dir]) if orientations is None else orientations[k]
        ds.ImageOrientationPatient = [_ds(v) for v in iop]
        ds.PixelSpacing = [_ds(sy), _ds(sx)]  # row spacing (between rows), column spacing
        ds.SliceThickness = _ds(sz)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = _ds(slope)
        ds.RescaleIntercept = _ds(intercept)
        ds.PixelData = stored[k].tobytes()
        path = folder / f"{file_prefix}{k:03d}.dcm"
        if int(pydicom.__version__.split(".")[0]) >= 3:
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
        else:  # pydicom 2.x
            ds.is_little_endian, ds.is_implicit_VR = True, False
            pydicom.dcmwrite(path, ds, write_like_original=False)
        files.append(path)
    direction = np.column_stack([row_dir, col_dir, normal])
    return DicomSeries(
        folder=folder,
        files=files,
        stored=stored,
        hu=stored * float(slope) + float(intercept),
        spacing=tuple(spacing),
        origin=tuple(np.asarray(origin, float)),
        direction=direction,
        series_uid=series_uid,
        patient_name=patient_name,
    )


@pytest.fixture
def make_dicom_series(tmp_path):
    """Factory: ``make_dicom_series(subfolder="ct", **write_dicom_series_kwargs)``."""

    def make(subfolder="ct", **kwargs):
        return write_dicom_series(tmp_path / subfolder, **kwargs)

    return make


def oblique_affine_ras(zooms=(0.8, 1.1, 2.0), offset=(-90.3, 102.7, -40.2), angles_deg=(12.0, -7.0, 30.0)):
    """A RAS affine with rotation, anisotropic zooms (i, j, k) and an offset."""
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix(angles_deg) @ np.diag(zooms)
    affine[:3, 3] = offset
    return affine


def write_oblique_nifti(path, shape_xyz=(9, 7, 5), affine=None, dtype=np.int16, qform_affine=None, seed=0):
    """Write a NIfTI with nibabel (sform = qform = ``affine`` unless ``qform_affine``).

    Returns ``(path, data_xyz, affine)``.
    """
    import nibabel as nib

    affine = oblique_affine_ras() if affine is None else np.asarray(affine, float)
    rng = np.random.default_rng(seed)
    data = rng.integers(-1000, 2000, size=shape_xyz).astype(dtype)
    img = nib.Nifti1Image(data, affine)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine if qform_affine is None else qform_affine, code=1)
    nib.save(img, str(path))
    return Path(path), data, affine


@pytest.fixture
def make_oblique_nifti(tmp_path):
    """Factory: ``make_oblique_nifti(name="scan.nii.gz", **write_oblique_nifti_kwargs)``."""

    def make(name="scan.nii.gz", **kwargs):
        return write_oblique_nifti(tmp_path / name, **kwargs)

    return make


@pytest.fixture
def real_data():
    """``../shared/data/real`` (the public real scans); skips the test when it is absent."""
    folder = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
    if not folder.is_dir():
        pytest.skip(f"real scans not available ({folder} is absent)")
    return folder


#: the scan and reference files of each case in ``../shared/data/real`` (its README)
REAL_CASES = {"ct-abdomen-3mm": ("ct.nii.gz", "reference_totalsegmentator.nii.gz"),
              "mr-brain-tumour": ("image.nrrd", "tumour_label.nrrd"),
              "mr-breast": ("image.nrrd", "lesion_label.nrrd")}


def read_real_case(real_data, case):
    """``(volume, image, reference)`` of a real case: its Volume, voxels as float32, reference labels."""
    from napari_dfcseg.io import read_volume

    scan_name, reference_name = REAL_CASES[case]
    volume = read_volume(real_data / case / scan_name)
    reference = np.asarray(read_volume(real_data / case / reference_name).array)
    return volume, np.asarray(volume.array).astype(np.float32), reference


# ------------------------------------------------------------------ napari widget
#: widget settings that train in a second or two (tests of the GUI check behaviour, not quality)
FAST_WIDGET = {"preset": "fast", "n_channels": 8, "max_iter": 3, "device": "cpu"}


def dock_dfc_widget(viewer, image, **settings):
    """The DFC Segmentation widget docked in ``viewer`` on ``image``, with :data:`FAST_WIDGET` settings.

    ``settings`` (widget field name -> value) override them; the preset is set first.
    """
    from napari_dfcseg.plugin._widget import DFCSegWidget

    widget = DFCSegWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    widget.settings.image.value = image
    for name, value in {**FAST_WIDGET, **settings}.items():
        getattr(widget.settings, name).value = value
    return widget


def wait_until_idle(qtbot, widget, timeout=120_000):
    """Wait until the widget's run (or model application) has finished."""
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


@pytest.fixture
def widget_viewer(make_napari_viewer):
    """Factory: a real napari viewer with a scan and the docked widget (:func:`dock_dfc_widget`).

    ``make(volume=None, name="head", shape=(6, 40, 36), phantom_seed=0, show=False, **settings)``
    returns ``(viewer, image_layer, widget, phantom)``; without ``volume`` the scan
    is a head phantom of ``shape`` (3 x 1.2 x 1.2 mm, MR), returned as ``phantom``
    (else None).
    """
    from napari_dfcseg.datasets import head_phantom
    from napari_dfcseg.io import Volume
    from napari_dfcseg.plugin._layers import image_layer_data

    def make(volume=None, name="head", shape=(6, 40, 36), phantom_seed=0, show=False, **settings):
        phantom = None
        if volume is None:
            phantom = head_phantom(shape=shape, spacing=(3.0, 1.2, 1.2), seed=phantom_seed)
            volume = Volume.from_array(phantom.image, spacing=phantom.spacing, modality="MR")
        viewer = make_napari_viewer(show=show)
        data, kwargs, _ = image_layer_data(volume, name=name)
        image = viewer.add_image(data, **kwargs)
        return viewer, image, dock_dfc_widget(viewer, image, **settings), phantom

    return make


@pytest.fixture
def notifications():
    """Every napari notification dispatched during the test."""
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)
