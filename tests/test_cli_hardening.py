"""CLI hardening (issue 15): options checked at parse time, outputs written together or not at all,
SIGTERM handled like Ctrl-C, and an exit status that tells the truth about what was written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli, run_cli_process
from napari_dfcseg.datasets import head_phantom

QUICK = ["--preset", "fast", "--max-iter", "3"]
SLOW_RUN = ["--preset", "paper", "--max-iter", "100000", "--min-labels", "1", "--progress", "json"]


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("dfcseg: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    phantom = head_phantom(shape=(6, 32, 28), spacing=(2.5, 1.0, 1.0), seed=2)
    path = tmp_path_factory.mktemp("scan") / "head.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(phantom.image.T.astype(np.int16)), np.eye(4)), str(path))
    return path


# ------------------------------------------------------------------ parse time
@pytest.mark.parametrize("args, words", [
    (["--seed", "-5"], "argument --seed: must not be negative"),
    (["--seed", "99999999999999999999"], "argument --seed: must be at most 4294967295"),
    (["--seed", "1.5"], "argument --seed: not an integer"),
    (["--device", "tpu"], "argument --device: invalid choice"),
])
def test_bad_seed_or_device_is_a_usage_error_before_anything_runs(scan, tmp_path, args, words):
    line = one_error_line(run_cli("segment", scan, tmp_path / "out.nii.gz", *args))
    assert words in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_unavailable_accelerator_is_refused_at_parse_time(scan, tmp_path, device):
    import torch

    available = torch.cuda.is_available() if device == "cuda" else torch.backends.mps.is_available()
    if available:
        pytest.skip(f"{device} is available here")
    start = time.monotonic()
    line = one_error_line(run_cli("segment", scan, tmp_path / "out.nii.gz", "--device", device))
    assert f"argument --device: {'CUDA' if device == 'cuda' else 'MPS'}" in line and "not available" in line
    assert time.monotonic() - start < 60  # refused before reading or training anything
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ never clobber
def test_users_own_colour_tables_are_refused_before_the_run(scan, tmp_path):
    table = tmp_path / "out.labels.txt"
    table.write_text("hand-edited names\n")
    line = one_error_line(run_cli("segment", scan, tmp_path / "out.nii.gz", *QUICK))
    assert "out.labels.txt: exists; refusing to overwrite" in line
    assert table.read_text() == "hand-edited names\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.labels.txt"]


def test_demo_refuses_an_existing_phantom_without_overwrite(tmp_path):
    (tmp_path / "phantom.nii.gz").write_bytes(b"my own scan")
    start = time.monotonic()
    line = one_error_line(run_cli("demo", tmp_path, "--max-iter", "2", "--shape", "8", "32", "32"))
    assert "phantom.nii.gz: exists; refusing to overwrite" in line and "--overwrite" in line
    assert time.monotonic() - start < 60
    assert (tmp_path / "phantom.nii.gz").read_bytes() == b"my own scan"
    assert [p.name for p in tmp_path.iterdir()] == ["phantom.nii.gz"]


# ------------------------------------------------------------------ --volume
def test_info_reads_the_volume_asked_for_and_the_error_names_the_option(tmp_path):
    data = np.random.default_rng(0).integers(0, 100, (8, 7, 6, 9)).astype(np.int16)
    path = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    line = one_error_line(run_cli("info", path))
    assert "9 volumes" in line and "--volume N" in line
    result = run_cli("info", path, "--volume", "4")
    assert result.returncode == 0, result.stderr
    assert "shape (z, y, x): (6, 7, 8)" in result.stdout


# ------------------------------------------------------------------ full disk / write failure
# a fresh process (its own RLIMIT_FSIZE) that trains: slow; the all-or-nothing commit itself is
# tests/test_io_atomic.py::test_a_run_refused_at_commit_removes_what_it_had_placed
@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE stands in for a full disk")
def test_model_that_does_not_fit_leaves_no_labels_behind(scan, tmp_path):
    import resource

    def small_disk():  # every file write past 16 kB fails with EFBIG: the labels fit, the model not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    out = tmp_path / "out"
    out.mkdir()
    result = run_cli_process("segment", scan, out / "labels.nii.gz", *QUICK, "--save-model", out / "model.pt",
                     preexec_fn=small_disk)
    line = one_error_line(result)
    assert "model.pt: cannot write it" in line
    assert list(out.iterdir()) == []  # neither the labels, their tables, nor a temporary file


# ------------------------------------------------------------------ signals, real processes
def _start(args):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "napari_dfcseg", *map(str, args)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_training(proc, timeout=180):
    """Read --progress json lines until the first training iteration is reported."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        event = json.loads(line)
        if event.get("stage") in ("train", "training") or event.get("iteration"):
            return event
    proc.kill()
    raise AssertionError(f"no training progress; stderr: {proc.stderr.read()}")


@pytest.mark.slow
def test_sigterm_mid_run_exits_143_and_writes_nothing(scan, tmp_path):
    proc = _start(["segment", scan, tmp_path / "labels.nii.gz", *SLOW_RUN, "--save-model",
                   tmp_path / "model.pt"])
    try:
        _wait_for_training(proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "dfcseg: terminated, nothing written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_output_that_appears_during_the_run_is_not_replaced(scan, tmp_path):
    from napari_dfcseg.io import read_volume, write_labels

    out = tmp_path / "labels.nii.gz"
    proc = _start(["segment", scan, out, *QUICK[:2], "--max-iter", "30", "--progress", "json"])
    try:
        _wait_for_training(proc)  # past the up-front check, before the commit
        # another run finishes first, to the same name: its three files must stay as they are
        other = write_labels(out, np.full((6, 32, 28), 7, np.uint8), like=read_volume(scan),
                             names={7: "other run"})
        before = [p.read_bytes() for p in other]
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    assert "labels.nii.gz: exists; refusing to overwrite it" in err
    assert [p.read_bytes() for p in other] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.ctbl", "labels.labels.txt", "labels.nii.gz"]


# ------------------------------------------------------------------ signals, in process
def _outputs(tmp_path, on_check=None):
    from napari_dfcseg.io import Output

    def replaceable(path):
        if on_check is not None:
            on_check()
        return True

    return [Output(tmp_path / f"out{k}.bin", write=lambda f, k=k: f.write(bytes([k]) * 1000),
                   may_replace=replaceable) for k in range(3)]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_signals_during_the_commit_are_deferred_and_the_outputs_complete(tmp_path):
    from napari_dfcseg.cli._common import signals_cancel
    from napari_dfcseg.cli._files import commit

    for k in range(3):
        (tmp_path / f"out{k}.bin").write_bytes(b"old")
    cancel = threading.Event()

    checks = []

    def two_ctrl_c():  # real signals, delivered while the files are being renamed into place
        checks.append(1)
        if len(checks) > 3:  # the first 3 checks are the up-front ones, before writing
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with signals_cancel(cancel) as state:
        written = commit(_outputs(tmp_path, on_check=two_ctrl_c), overwrite=True, cancel=cancel)
    assert state.late == [signal.SIGINT] * 6  # recorded, not acted on: the outputs are complete
    assert [p.read_bytes() for p in written] == [bytes([k]) * 1000 for k in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0.bin", "out1.bin", "out2.bin"]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_sigterm_while_writing_the_outputs_leaves_nothing(tmp_path):
    from napari_dfcseg.cli._common import Terminated, signals_cancel
    from napari_dfcseg.cli._files import commit
    from napari_dfcseg.io import Output

    def write_then_terminated(stream):
        stream.write(b"half")
        os.kill(os.getpid(), signal.SIGTERM)
        stream.write(b"never")

    outputs = _outputs(tmp_path)[:2] + [Output(tmp_path / "big.bin", write=write_then_terminated)]
    cancel = threading.Event()
    with pytest.raises(Terminated), signals_cancel(cancel):
        commit(outputs, overwrite=False, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_first_ctrl_c_while_writing_stops_before_the_commit(tmp_path):
    from napari_dfcseg.cli._common import signals_cancel
    from napari_dfcseg.cli._files import commit
    from napari_dfcseg.errors import Cancelled
    from napari_dfcseg.io import Output

    def write_then_ctrl_c(stream):
        stream.write(b"data")
        os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C only asks to stop

    cancel = threading.Event()
    with pytest.raises(Cancelled), signals_cancel(cancel):
        commit([Output(tmp_path / "a.bin", write=write_then_ctrl_c)], overwrite=False, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a folder no one can write: /proc")
def test_unwritable_model_folder_is_refused_before_the_run(scan, tmp_path):
    # /proc refuses new files even to root: the write probe finds out before any training
    start = time.monotonic()
    line = one_error_line(run_cli("segment", scan, tmp_path / "labels.nii.gz", *QUICK,
                                  "--save-model", "/proc/dfcseg-model.pt"))
    assert "--save-model /proc: cannot write there" in line
    assert time.monotonic() - start < 60
    assert list(tmp_path.iterdir()) == []
