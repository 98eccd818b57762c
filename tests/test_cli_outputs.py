"""``dfcseg segment``'s outputs for 3D Slicer and PACS, and ``--progress json``/``slicer``.

Run as a user (or the Slicer module) runs it: ``python -m napari_dfcseg`` in a
subprocess, stdout a pipe.
"""

from __future__ import annotations

import io
import json
import os
import re

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli
from napari_dfcseg.cli._machine_progress import MachineProgress
from napari_dfcseg.datasets import head_phantom

QUICK = ["--preset", "fast", "--max-iter", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def small_scan(tmp_path_factory):
    phantom = head_phantom(shape=(6, 40, 32), spacing=(2.5, 0.9, 1.2), seed=3)
    affine = np.array([[-1.2, 0, 0, 30.5], [0, 0.9, 0, -20.0], [0, 0, 2.5, 12.0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(np.ascontiguousarray(phantom.image.astype(np.int16).transpose(2, 1, 0)), affine)
    img.header.set_sform(affine, code=1)
    img.header.set_qform(affine, code=1)
    path = tmp_path_factory.mktemp("scan") / "head.nii.gz"
    nib.save(img, str(path))
    return path


@pytest.mark.slow
def test_progress_json_and_seg_nrrd_output(tmp_path, small_scan):
    nrrd = pytest.importorskip("nrrd")
    out = tmp_path / "seg.seg.nrrd"
    done = run_cli("segment", small_scan, out, *QUICK, "--progress", "json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]  # every stdout line is JSON
    train = [e for e in events if e["stage"] == "train"]
    label = [e for e in events if e["stage"] == "label"]
    assert [e["iteration"] for e in train] == [1, 2, 3] and all(e["total"] == 3 for e in train)
    assert all(isinstance(e["loss"], float) and e["labels"] >= 1 for e in train)
    assert label and label[-1]["iteration"] == label[-1]["total"]
    fractions = [e["fraction"] for e in events if "fraction" in e]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 < fractions[0] <= 0.3
    assert events[-1]["stage"] == "message" and str(out) in events[-1]["message"]
    assert done.stderr == ""  # no progress bar or text mixed in

    labels, header = nrrd.read(str(out), index_order="C")
    reference = nib.load(str(small_scan))
    assert labels.shape == reference.shape[::-1]
    present = sorted(int(v) for v in np.unique(labels) if v > 0)
    values = sorted(int(v) for k, v in header.items() if k.endswith("_LabelValue"))
    assert values == present and len(present) >= 2
    assert sorted(os.listdir(tmp_path)) == ["seg.seg.nrrd"]  # no colour tables, no temp files

    again = run_cli("segment", small_scan, out, *QUICK)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_slicer_progress_lines_are_fractions():
    stream = io.StringIO()
    progress = MachineProgress("slicer", "segment", stream=stream)
    for i in range(1, 5):
        progress(i, 4, {"stage": "train", "loss": 1.0, "n_labels": 3})
    progress(1, 2, {"stage": "label"})
    progress(2, 2, {"stage": "label"})
    progress.message("not shown in slicer mode")
    lines = stream.getvalue().splitlines()
    values = [float(re.fullmatch(r"<filter-progress>([0-9.]+)</filter-progress>", line)[1]) for line in lines]
    assert values == [0.225, 0.45, 0.675, 0.9, 0.95, 1.0]


def test_json_progress_survives_nan_loss_and_early_stop():
    stream = io.StringIO()
    progress = MachineProgress("json", "segment", stream=stream)
    progress(5, 300, {"stage": "train", "loss": float("nan"), "n_labels": 2})  # stopped early at 5/300
    progress(1, 1, {"stage": "label"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["loss"] is None and first["fraction"] == 0.015
    assert second["fraction"] == 1.0


def test_dicom_seg_is_refused_for_non_dicom_input_before_the_run(tmp_path, small_scan):
    done = run_cli("segment", small_scan, tmp_path / "seg.nii.gz", "--dicom-seg", tmp_path / "seg.dcm", *QUICK)
    assert done.returncode == 2
    assert "not a DICOM series" in done.stderr and len(done.stderr.splitlines()) == 1
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_dicom_seg_for_a_dicom_series(tmp_path, make_dicom_series):
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("highdicom")
    series = make_dicom_series(shape=(4, 24, 20))
    out = tmp_path / "out"
    out.mkdir()
    done = run_cli("segment", series.folder, out / "seg.nii.gz", "--dicom-seg", out / "seg.dcm", *QUICK)
    assert done.returncode == 0, done.stderr
    seg = pydicom.dcmread(str(out / "seg.dcm"))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    assert str(seg.PatientName) == series.patient_name  # the documented, opt-in exception
    labels = np.asanyarray(nib.load(str(out / "seg.nii.gz")).dataobj)
    assert len(seg.SegmentSequence) == len([v for v in np.unique(labels) if v > 0])
    for name in ("seg.nii.gz", "seg.labels.txt", "seg.ctbl"):
        assert series.patient_name.encode() not in (out / name).read_bytes()
