"""The ``dfcseg`` command line on real files: its ``main`` in this process (``run_cli``), and in a
fresh interpreter as a user runs it where only a process shows the behaviour (``run_cli_process``:
exit status, console script, Ctrl-C on a terminal)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import AFFINE, run_cli, run_cli_process, write_dicom_series, write_nifti
from napari_dfcseg.cli import build_parser, orientation_codes
from napari_dfcseg.datasets import head_phantom

# a few iterations of the small preset: the tests check behaviour, not quality
QUICK = ["--preset", "fast", "--max-iter", "3"]

@pytest.fixture(scope="module")
def small_scan(tmp_path_factory):
    """A 10x48x40 head phantom as int16 NIfTI with :data:`AFFINE`."""
    phantom = head_phantom(shape=(10, 48, 40), spacing=(2.5, 0.9, 1.2), seed=3)
    path = tmp_path_factory.mktemp("scan") / "head.nii.gz"
    return write_nifti(path, phantom.image.astype(np.int16))


def assert_usage_error(result, *must_not_exist):
    """Exit 2, exactly one stderr line 'dfcseg: error: ...', no traceback, no output."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dfcseg: error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for path in must_not_exist:
        assert not Path(path).exists(), f"{path} was written"
    return lines[0]


def test_version_and_console_script():
    result = run_cli_process("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == "dfcseg 0.1.0"
    script = Path(sys.executable).parent / "dfcseg"
    if script.exists():  # the installed console script is the same program
        out = subprocess.run([str(script), "--version"], capture_output=True, text=True)
        assert out.stdout.strip() == "dfcseg 0.1.0"


def test_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    # the command list: lines "    NAME   help text" (not words of the description)
    listed = re.findall(r"^ {4}(\w+) {2,}\S", result.stdout, re.MULTILINE)
    assert listed[:3] == ["segment", "train", "apply"], result.stdout
    assert {"info", "demo"} <= set(listed)
    assert set(listed) == set(build_parser()._subparsers._group_actions[0].choices)


def test_no_command_is_a_usage_error():
    assert run_cli_process().returncode == 2  # the interpreter's exit status, too


def test_segment_writes_labels_with_the_input_affine(small_scan, tmp_path):
    out, model = tmp_path / "labels.nii.gz", tmp_path / "model.pt"
    result = run_cli("segment", small_scan, out, *QUICK, "--save-model", model)
    assert result.returncode == 0, result.stderr
    from napari_dfcseg import load_model

    assert load_model(model).in_channels == 1
    # stderr is not a terminal here: no progress bar, no chatter
    assert result.stderr == ""
    assert "labels" in result.stdout and str(out) in result.stdout
    scan, labels = nib.load(str(small_scan)), nib.load(str(out))
    np.testing.assert_allclose(labels.affine, scan.affine, atol=1e-4)
    assert labels.shape == scan.shape
    data = np.asarray(labels.dataobj)
    assert np.issubdtype(data.dtype, np.integer)
    assert len(np.unique(data)) >= 2
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


@pytest.mark.slow
def test_segment_inside_mask_labels_only_the_mask_quietly(small_scan, tmp_path):
    scan = np.asarray(nib.load(str(small_scan)).dataobj)  # x, y, z
    mask = np.zeros(scan.shape, dtype=np.uint8)
    mask[5:35, 5:40, 2:8] = 1
    mask_path = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, AFFINE), str(mask_path))
    out = tmp_path / "labels.nii.gz"
    result = run_cli("segment", small_scan, out, *QUICK, "--mask", mask_path, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    labels = np.asarray(nib.load(str(out)).dataobj)
    assert np.all(labels[mask == 0] == 0)
    assert np.all(labels[mask == 1] > 0)


@pytest.mark.slow
def test_segment_replaces_existing_labels_only_with_overwrite(small_scan, tmp_path):
    from napari_dfcseg.io import read_volume, write_labels

    out = tmp_path / "labels.nii.gz"
    scan = read_volume(small_scan)
    write_labels(out, (scan.array > 500).astype(np.uint8), like=scan)  # earlier results
    first = out.read_bytes()
    line = assert_usage_error(run_cli("segment", small_scan, out, *QUICK, "--seed", "1"))
    assert "--overwrite" in line
    assert out.read_bytes() == first
    assert run_cli("segment", small_scan, out, *QUICK, "--overwrite").returncode == 0
    assert nib.load(str(out)).shape == nib.load(str(small_scan)).shape


def test_overwrite_never_replaces_a_file_that_is_not_a_label_volume(small_scan, tmp_path):
    for name, content in [("notes.nii.gz", b"previous results"),
                          ("other_scan.nii.gz", small_scan.read_bytes())]:
        out = tmp_path / name
        out.write_bytes(content)
        assert_usage_error(run_cli("segment", small_scan, out, *QUICK, "--overwrite"))
        assert out.read_bytes() == content


# ------------------------------------------------------------------ bad input


def _truncated_nifti(tmp_path, small_scan):
    path = tmp_path / "truncated.nii.gz"
    data = small_scan.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def _jpeg_named_nifti(tmp_path, small_scan):
    from PIL import Image

    path = tmp_path / "photo.nii"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8)).save(
        path, format="JPEG")
    return path


def _empty_folder(tmp_path, small_scan):
    path = tmp_path / "empty"
    path.mkdir()
    return path


def _folder_without_dicom(tmp_path, small_scan):
    path = tmp_path / "notes"
    path.mkdir()
    (path / "readme.txt").write_text("no scans here\n")
    (path / "table.csv").write_text("a,b\n1,2\n")
    return path


@pytest.mark.parametrize("make_input", [
    lambda tmp_path, scan: tmp_path / "does-not-exist.nii.gz",
    _empty_folder,
    _folder_without_dicom,
    _truncated_nifti,
    _jpeg_named_nifti,
], ids=["missing-path", "empty-folder", "folder-without-dicom", "truncated-nii-gz",
        "jpeg-renamed-nii"])
def test_unreadable_input_exits_2_with_one_line_and_writes_nothing(make_input, small_scan, tmp_path):
    bad = make_input(tmp_path, small_scan)
    out = tmp_path / "out" / "labels.nii.gz"
    (tmp_path / "out").mkdir()
    line = assert_usage_error(run_cli("segment", bad, out, *QUICK), out)
    assert bad.name in line  # the message names the file
    assert list((tmp_path / "out").iterdir()) == []


def test_output_equal_to_input_is_refused_and_the_scan_is_untouched(small_scan, tmp_path):
    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(small_scan.read_bytes())
    before = scan.read_bytes()
    line = assert_usage_error(run_cli("segment", scan, scan, *QUICK, "--overwrite"))
    assert "input" in line
    assert scan.read_bytes() == before
    # the same file through another spelling of its path
    assert_usage_error(run_cli("segment", scan, tmp_path / "." / "scan.nii.gz", "--overwrite"))
    assert scan.read_bytes() == before


def test_mask_of_the_wrong_shape_is_refused(small_scan, tmp_path):
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), dtype=np.uint8), AFFINE), str(mask))
    out = tmp_path / "labels.nii.gz"
    line = assert_usage_error(run_cli("segment", small_scan, out, "--mask", mask), out)
    assert "--mask" in line and "shape" in line


def test_channel_of_the_wrong_shape_is_refused(small_scan, tmp_path):
    extra = write_nifti(tmp_path / "t2.nii.gz", np.ones((4, 8, 8), dtype=np.int16))
    out = tmp_path / "labels.nii.gz"
    line = assert_usage_error(run_cli("segment", small_scan, out, "--channel", extra), out)
    assert "--channel" in line


@pytest.mark.parametrize("args, words", [
    (["--preset", "no-such-preset"], ["no-such-preset"]),
    (["--max-iter", "0"], ["--max-iter"]),
    (["--mode", "4d"], ["--mode"]),
    (["--min-size", "-3"], ["--min-size"]),
    (["--bogus-flag"], ["--bogus-flag"]),
], ids=["unknown-preset", "zero-iterations", "unknown-mode", "negative-min-size", "unknown-flag"])
def test_bad_options_exit_2_with_one_line(args, words, small_scan, tmp_path):
    out = tmp_path / "labels.nii.gz"
    line = assert_usage_error(run_cli("segment", small_scan, out, *args), out)
    for word in words:
        assert word in line


def test_output_that_is_not_nifti_is_refused(small_scan, tmp_path):
    out = tmp_path / "labels.png"
    line = assert_usage_error(run_cli("segment", small_scan, out), out)
    assert ".nii" in line


def test_output_in_a_missing_folder_is_refused(small_scan, tmp_path):
    out = tmp_path / "no" / "such" / "labels.nii.gz"
    assert_usage_error(run_cli("segment", small_scan, out), out, tmp_path / "no")


# ------------------------------------------------------------------ Ctrl-C


@pytest.mark.slow
def test_sigint_mid_run_exits_130_and_writes_nothing(small_scan, tmp_path):
    """stderr is a terminal here, so the progress bar shows; Ctrl-C once it moves."""
    out = tmp_path / "labels.nii.gz"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "napari_dfcseg", "segment", str(small_scan), str(out),
         "--preset", "paper", "--max-iter", "100000", "--min-labels", "1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env,
    )
    os.close(slave)
    seen = b""

    def drain(seconds):
        nonlocal seen
        ready, _, _ = select.select([master], [], [], seconds)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:  # the child closed the terminal
                pass

    try:
        deadline = time.monotonic() + 180
        while b"segment:" not in seen and proc.poll() is None and time.monotonic() < deadline:
            drain(0.5)
        assert b"segment:" in seen, f"no progress bar on the terminal: {seen!r}"
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            drain(0.2)
        drain(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    assert proc.returncode == 130, seen.decode(errors="replace")
    assert b"Traceback" not in seen
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ info


def test_info_on_nifti_prints_geometry(small_scan):
    result = run_cli("info", small_scan)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "(10, 48, 40)" in out
    assert "2.5, 0.9, 1.2" in out
    # RAS affine with x flipped: voxel axes point towards L, A, S
    assert "orientation" in out and "LAS" in out


def test_info_on_dicom_folder_lists_series_and_no_patient_data(tmp_path):
    zyx = head_phantom(shape=(6, 32, 24), seed=1).image
    folder = write_dicom_series(tmp_path / "dicom", shape=zyx.shape, spacing=(3.0, 0.8, 0.8),
                                stored=zyx, rotation=np.eye(3), slope=1.0, intercept=0.0,
                                modality="MR", series_uid="1.2.826.0.1.3680043.8.498.2",
                                patient_name="Doe^Jane", patient_id="PID-778899").folder
    result = run_cli("info", folder)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "1 DICOM series" in out and "1.2.826.0.1.3680043.8.498.2" in out
    assert "(6, 32, 24)" in out and "MR" in out and "LPS" in out
    for identifier in ("Doe", "Jane", "PID-778899", "19700101"):
        assert identifier not in out + result.stderr


def test_info_on_missing_file_is_one_line_error(tmp_path):
    assert_usage_error(run_cli("info", tmp_path / "nothing.nii"))


@pytest.mark.parametrize("direction, codes", [
    (np.eye(3), "LPS"),
    (np.diag([-1.0, -1.0, 1.0]), "RAS"),
    (np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]), "LIP"),  # a coronal acquisition
])
def test_orientation_codes_name_where_the_axes_point(direction, codes):
    assert orientation_codes(direction) == codes


# ------------------------------------------------------------------ train / apply


@pytest.mark.slow
def test_train_then_apply_to_another_scan(small_scan, tmp_path):
    model = tmp_path / "model.pt"
    result = run_cli("train", model, small_scan, *QUICK)
    assert result.returncode == 0, result.stderr
    assert model.exists()
    other_affine = AFFINE.copy()
    other_affine[:3, 3] += (5.0, -3.0, 7.5)
    other = write_nifti(tmp_path / "other.nii.gz",
                        head_phantom(shape=(10, 48, 40), seed=9).image.astype(np.int16),
                        affine=other_affine)
    out = tmp_path / "other_labels.nii.gz"
    result = run_cli("apply", model, other, out)
    assert result.returncode == 0, result.stderr
    labels = nib.load(str(out))
    np.testing.assert_allclose(labels.affine, other_affine, atol=1e-4)
    assert len(np.unique(np.asarray(labels.dataobj))) >= 2


def test_a_warning_of_the_engine_is_one_line_in_a_fresh_process(tmp_path):
    """A model of 5 mm slices applied to 1 mm voxels: one ``dfcseg: warning:`` line, not also
    the logging module's last-resort copy (only a process without pytest's handlers shows it)."""
    from conftest import TINY
    from napari_dfcseg import train_model

    thick = head_phantom(shape=(6, 24, 20), spacing=(5.0, 1.0, 1.0))
    model = train_model(thick.image, mode="3d", spacing=thick.spacing, config=TINY).save(tmp_path / "m.pt")
    scan = write_nifti(tmp_path / "iso.nii.gz", thick.image.astype(np.int16), np.eye(4))
    result = run_cli_process("apply", model, scan, tmp_path / "labels.nii.gz")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dfcseg: warning: the model's network has 1×3×3 kernels")


def test_apply_with_a_corrupt_model_is_one_line_error(small_scan, tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"not a model at all")
    out = tmp_path / "labels.nii.gz"
    line = assert_usage_error(run_cli("apply", model, small_scan, out), out)
    assert "model.pt" in line


# ------------------------------------------------------------------ demo


@pytest.mark.slow
def test_demo_writes_phantom_labels_and_overview(tmp_path):
    outdir = tmp_path / "demo"
    result = run_cli("demo", outdir, "--shape", "8", "48", "40", "--max-iter", "5")
    assert result.returncode == 0, result.stderr
    assert "Dice" in result.stdout and str(outdir) in result.stdout
    for name in ("phantom.nii.gz", "phantom_labels.nii.gz", "phantom_truth.nii.gz", "overview.png"):
        assert (outdir / name).is_file(), name
    assert (outdir / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image, labels = nib.load(str(outdir / "phantom.nii.gz")), nib.load(str(outdir / "phantom_labels.nii.gz"))
    assert image.shape == labels.shape == (40, 48, 8)
    np.testing.assert_allclose(labels.affine, image.affine, atol=1e-5)
    np.testing.assert_allclose(nib.affines.voxel_sizes(image.affine), (1.0, 1.0, 2.5))
    assert not list(outdir.glob(".partial-*"))


@pytest.mark.slow
# with the default n_clusters="auto" the mixture has as many components as the chosen count
@pytest.mark.parametrize("anchor, components, weight", [("0", None, None), ("1.5", "K", 1.5)])
def test_anchor_option_sets_the_intensity_mixture(small_scan, tmp_path, anchor, components, weight):
    out, model = tmp_path / "labels.nii.gz", tmp_path / "model.pt"
    result = run_cli("segment", small_scan, out, *QUICK, "--anchor", anchor, "--save-model", model)
    assert result.returncode == 0, result.stderr
    from napari_dfcseg import load_model

    config = load_model(model).config
    assert config.mixture_components == (config.n_clusters if components == "K" else components)
    if weight is not None:
        assert config.mixture_weight == weight


def test_negative_anchor_is_a_usage_error(small_scan, tmp_path):
    result = run_cli("segment", small_scan, tmp_path / "l.nii.gz", "--anchor", "-1")
    assert result.returncode == 2 and "--anchor" in result.stderr
    assert not (tmp_path / "l.nii.gz").exists()
