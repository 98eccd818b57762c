"""``dfcseg batch`` / :mod:`napari_dfcseg.batch`: manifests, resume, ledger, volume table,
and the Dask path on a real 2-process LocalCluster (a worker killed mid-run included).

Scans are small head phantoms written as NIfTI; the model is trained once per module
on one of them (fast preset, 40 iterations, a few seconds).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from conftest import write_nifti
from napari_dfcseg.batch import (Ledger, apply_one, read_manifest, run_batch)
from napari_dfcseg.datasets import head_phantom
from napari_dfcseg.errors import InvalidInputError

SPACING = (2.5, 0.9, 1.2)
SHAPE = (12, 64, 56)


def read_labels(path):
    return np.asarray(nib.load(str(path)).dataobj).T


def run_cli(*args, timeout=300, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "napari_dfcseg", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, **kwargs)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Five phantoms (seeds 0-4) with brain masks and truth, and a model trained on seed 0."""
    import torch

    from napari_dfcseg.engine.config import resolve_config
    from napari_dfcseg.engine.pipeline import train_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cohort")
    phantoms = [head_phantom(shape=SHAPE, spacing=SPACING, seed=s) for s in range(5)]
    for i, p in enumerate(phantoms):
        write_nifti(root / f"scan{i}.nii.gz", p.image.astype(np.int16))
        write_nifti(root / f"mask{i}.nii.gz", p.mask.astype(np.uint8))
    (root / "broken.nii.gz").write_bytes(b"this is not a NIfTI file")
    config = dataclasses.replace(resolve_config("fast"), max_iter=40, n_clusters=3)  # 3 tissues
    model = train_model([phantoms[0].image], mask=phantoms[0].mask, spacing=SPACING,
                        config=config, seed=0, device="cpu")
    model.save(root / "model.pt")
    return SimpleNamespace(root=root, model=root / "model.pt", phantoms=phantoms)


def write_manifest(path, lines, header="input,mask,output"):
    Path(path).write_text(header + "\n" + "".join(line + "\n" for line in lines))
    return Path(path)


def four_with_one_broken(cohort, tmp_path):
    lines = [f"{cohort.root}/scan{i}.nii.gz,{cohort.root}/mask{i}.nii.gz,s{i}.nii.gz" for i in (1, 2, 3)]
    lines.insert(2, f"{cohort.root}/broken.nii.gz,,broken_labels.nii.gz")
    return write_manifest(tmp_path / "manifest.csv", lines)


def snapshot(folder):
    """name -> (sha1, mtime_ns) of every file in ``folder``."""
    return {p.name: (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(Path(folder).iterdir()) if p.is_file()}


def ledger_lines(outdir):
    return [json.loads(line) for line in (Path(outdir) / "ledger.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ manifest


def test_manifest_resolves_paths_names_outputs_and_skips_comments(tmp_path):
    (tmp_path / "data").mkdir()
    manifest = tmp_path / "data" / "m.csv"
    manifest.write_text("# a cohort\ninput,mask,channels,output\n"
                        "a.nii.gz,a_mask.nii.gz,a_t2.nii.gz;a_flair.nii.gz,\n\n"
                        "dicom/sub-02/,,,two.nii\n")
    rows = read_manifest(manifest, tmp_path / "out")
    assert [Path(r.output).name for r in rows] == ["a_labels.nii.gz", "two.nii"]
    assert rows[0].input == str(tmp_path / "data" / "a.nii.gz")
    assert rows[0].mask == str(tmp_path / "data" / "a_mask.nii.gz")
    assert [Path(c).name for c in rows[0].channels] == ["a_t2.nii.gz", "a_flair.nii.gz"]
    assert rows[1].input == str(tmp_path / "data" / "dicom" / "sub-02") and rows[1].mask is None
    assert rows[1].output == str((tmp_path / "out" / "two.nii").resolve())


@pytest.mark.parametrize("text, words", [
    ("input,output\na.nii.gz,x.nii.gz\nb.nii.gz,x.nii.gz\n", ["line 3", "also line 2"]),
    ("inputs,output\na.nii.gz,x.nii.gz\n", ["line 1", "columns"]),
    ("input,output\na.nii.gz,x.nrrd\n", ["line 2", ".nii"]),
    ("input,mask\n,m.nii.gz\n", ["line 2", "no input"]),
    ("input\n", ["no rows"]),
    ("", ["empty"]),
])
def test_bad_manifest_is_one_error_naming_the_line(tmp_path, text, words):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(InvalidInputError) as err:
        read_manifest(manifest, tmp_path / "out")
    assert "m.csv" in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_ledger_ignores_a_line_cut_short_and_appends_on_a_new_line(tmp_path):
    ledger = Ledger(tmp_path)
    ledger.append({"output": "a", "status": "ok"})
    with open(ledger.path, "a") as f:
        f.write('{"output": "b", "sta')  # a crash in the middle of a write
    ledger.append({"output": "c", "status": "ok"})
    assert [r["output"] for r in ledger.records()] == ["a", "c"]


# ------------------------------------------------------------------ sequential


@pytest.mark.slow
def test_cohort_with_a_broken_scan_then_resume(cohort, tmp_path):
    manifest = four_with_one_broken(cohort, tmp_path)
    out = tmp_path / "out"
    rows = read_manifest(manifest, out)
    report = run_batch(cohort.model, rows, out)
    assert sorted(Path(r["output"]).name for r in report.done) == ["s1.nii.gz", "s2.nii.gz", "s3.nii.gz"]
    assert [Path(r["input"]).name for r in report.bad] == ["broken.nii.gz"]
    assert "broken.nii.gz" in report.bad[0]["error"]
    assert not (out / "broken_labels.nii.gz").exists()
    assert len(ledger_lines(out)) == 4
    for i in (1, 2, 3):
        labels = read_labels(out / f"s{i}.nii.gz")
        assert labels.shape == SHAPE and set(np.unique(labels)) == {0, 1, 2, 3}
    with open(out / "volumes.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [Path(t["input"]).name for t in table] == ["scan1.nii.gz", "scan2.nii.gz", "scan3.nii.gz"]
    # the table's numbers are the label volume's: voxels and mL of label 2 in scan 2
    labels = read_labels(out / "s2.nii.gz")
    ml_per_voxel = np.prod(SPACING) / 1000
    assert int(table[1]["label_2_voxels"]) == int((labels == 2).sum())
    assert float(table[1]["label_2_ml"]) == pytest.approx((labels == 2).sum() * ml_per_voxel, abs=1e-3)
    image = cohort.phantoms[2].image.astype(np.int16)
    assert float(table[1]["label_3_mean_intensity"]) == pytest.approx(image[labels == 3].mean(), rel=1e-4)

    before = snapshot(out)
    again = run_batch(cohort.model, rows, out)
    assert snapshot(out) == before  # no work, not a byte (nor an mtime) changed
    assert (len(again.done), len(again.skipped), len(again.bad)) == (0, 3, 1)

    (out / "s2.nii.gz").unlink()
    third = run_batch(cohort.model, rows, out)
    assert [Path(r["output"]).name for r in third.done] == ["s2.nii.gz"]
    assert np.array_equal(read_labels(out / "s2.nii.gz"), labels)
    assert [Path(r["output"]).name for r in ledger_lines(out)[4:]] == ["s2.nii.gz"]
    after = snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith(("s2.", "ledger", "volumes"))} == \
        {k: v for k, v in before.items() if not k.startswith(("s2.", "ledger", "volumes"))}


@pytest.mark.slow
def test_fixed_bad_input_is_retried_unchanged_one_is_not(cohort, tmp_path):
    scan = tmp_path / "late.nii.gz"
    scan.write_bytes(b"still copying")
    manifest = write_manifest(tmp_path / "m.csv", [f"{scan},,late_labels.nii.gz"])
    out = tmp_path / "out"
    rows = read_manifest(manifest, out)
    assert run_batch(cohort.model, rows, out).bad
    assert run_batch(cohort.model, rows, out).bad and len(ledger_lines(out)) == 1  # not redone
    write_nifti(scan, cohort.phantoms[4].image.astype(np.int16))
    report = run_batch(cohort.model, rows, out)
    assert len(report.done) == 1 and (out / "late_labels.nii.gz").exists()


@pytest.mark.slow
def test_output_of_another_scan_is_never_relabelled(cohort, tmp_path):
    out = tmp_path / "out"
    first = write_manifest(tmp_path / "a.csv", [f"{cohort.root}/scan1.nii.gz,,x.nii.gz"])
    run_batch(cohort.model, read_manifest(first, out), out)
    before = (out / "x.nii.gz").read_bytes()
    second = write_manifest(tmp_path / "b.csv", [f"{cohort.root}/scan2.nii.gz,,x.nii.gz"])
    report = run_batch(cohort.model, read_manifest(second, out), out)
    assert report.bad and "scan1.nii.gz" in report.bad[0]["error"]
    assert (out / "x.nii.gz").read_bytes() == before
    assert len(ledger_lines(out)) == 2  # reported once in the ledger...
    run_batch(cohort.model, read_manifest(second, out), out)
    assert len(ledger_lines(out)) == 2  # ...and again without a new line


@pytest.mark.slow
def test_existing_complete_output_is_reused_not_relabelled(cohort, tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", [f"{cohort.root}/scan1.nii.gz,,a.nii.gz"])
    out = tmp_path / "out"
    rows = read_manifest(manifest, out)
    run_batch(cohort.model, rows, out)
    (out / "ledger.jsonl").unlink()  # e.g. the ledger was lost: the file itself is checked
    stamp = (out / "a.nii.gz").stat().st_mtime_ns
    record = apply_one(cohort.model, rows[0])
    assert record["status"] == "ok" and record["reused"] is True
    assert (out / "a.nii.gz").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_output_that_is_not_a_label_volume_is_a_bad_input_and_kept(cohort, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.nii.gz").write_bytes(b"someone's file")
    manifest = write_manifest(tmp_path / "m.csv", [f"{cohort.root}/scan1.nii.gz,,a.nii.gz"])
    report = run_batch(cohort.model, read_manifest(manifest, out), out)
    assert report.bad and "not a label volume" in report.bad[0]["error"]
    assert (out / "a.nii.gz").read_bytes() == b"someone's file"


@pytest.mark.slow
def test_batch_labels_equal_dfcseg_apply_byte_for_byte(cohort, tmp_path):
    scan, mask = cohort.root / "scan3.nii.gz", cohort.root / "mask3.nii.gz"
    single = tmp_path / "apply.nii.gz"
    result = run_cli("apply", cohort.model, scan, single, "--mask", mask, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    manifest = write_manifest(tmp_path / "m.csv", [f"{scan},{mask},batch.nii.gz"])
    out = tmp_path / "out"
    report = run_batch(cohort.model, read_manifest(manifest, out), out, device="cpu")
    assert len(report.done) == 1
    assert (out / "batch.nii.gz").read_bytes() == single.read_bytes()


@pytest.mark.slow
def test_same_label_means_the_same_tissue_in_two_scans(cohort, tmp_path):
    """Reference mode: label k is one tissue in every scan (majority of the truth, inside the brain)."""
    manifest = write_manifest(tmp_path / "m.csv", [
        f"{cohort.root}/scan{i}.nii.gz,{cohort.root}/mask{i}.nii.gz,s{i}.nii.gz" for i in (1, 2)])
    out = tmp_path / "out"
    run_batch(cohort.model, read_manifest(manifest, out), out)
    tissue_of = []
    for i in (1, 2):
        labels, truth = read_labels(out / f"s{i}.nii.gz"), cohort.phantoms[i].truth
        mapping = {}
        for k in np.unique(labels[labels > 0]):
            counts = np.bincount(truth[labels == k], minlength=5)
            mapping[k] = (int(counts.argmax()), counts.max() / counts.sum())
        tissue_of.append(mapping)
    assert {k: t for k, (t, _) in tissue_of[0].items()} == {k: t for k, (t, _) in tissue_of[1].items()}
    assert sorted(t for t, _ in tissue_of[0].values()) == [1, 2, 3]  # CSF, grey, white matter
    assert min(purity for m in tissue_of for _, purity in m.values()) > 0.8


# ------------------------------------------------------------------ SLURM job script


def test_slurm_job_script_books_the_cores_and_retires_workers_before_the_walltime():
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue import SLURMCluster

    from napari_dfcseg.batch.cluster import slurm_cluster_kwargs, walltime_seconds

    kwargs = slurm_cluster_kwargs(cores=8, memory="32GB", walltime="01:30:00", queue="cpu",
                                  account="lab42", directives=["--constraint=avx2"],
                                  prologue=["source /opt/venv/bin/activate"])
    cluster = SLURMCluster(**kwargs)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH --cpus-per-task=8", "#SBATCH -t 01:30:00", "#SBATCH -p cpu",
                 "#SBATCH -A lab42", "#SBATCH --constraint=avx2", "export OMP_NUM_THREADS=8",
                 "source /opt/venv/bin/activate"):
        assert line in script, script
    worker = script.strip().splitlines()[-1]
    assert "--nthreads 1" in worker  # one scan at a time, torch gets the 8 cores
    args = worker.split()
    lifetime = int(args[args.index("--lifetime") + 1].rstrip("s"))
    stagger = int(args[args.index("--lifetime-stagger") + 1].rstrip("s"))
    assert lifetime + stagger + 300 <= walltime_seconds("01:30:00") == 5400
    assert lifetime >= 3600


@pytest.mark.parametrize("text, seconds", [("02:00:00", 7200), ("1-00:00:00", 86400),
                                           ("90", 5400), ("00:45", 2700)])
def test_walltime_forms(text, seconds):
    from napari_dfcseg.batch.cluster import walltime_seconds

    assert walltime_seconds(text) == seconds


# ------------------------------------------------------------------ Dask: a real LocalCluster


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes, 1 thread each (as ``dfcseg batch`` starts one)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as c:
        yield c


def events(client, since=0.0):
    """(event, row) audit events apply_one logged on the scheduler after ``since``."""
    return [(m["event"], m["row"]) for t, m in client.get_events("dfcseg-batch") if t >= since]


@pytest.mark.slow
def test_dask_cohort_broken_once_never_retried_and_rerun_does_nothing(cohort, cluster, tmp_path):
    from distributed import Client

    from napari_dfcseg.batch.cluster import DaskExecutor

    manifest = four_with_one_broken(cohort, tmp_path)
    out = tmp_path / "out"
    rows = read_manifest(manifest, out)
    start = time.time()
    with DaskExecutor(address=cluster.scheduler_address) as ex:
        report = run_batch(cohort.model, rows, out, executor=ex)
    assert len(report.done) == 3 and len(report.bad) == 1 and not report.failed
    with Client(cluster.scheduler_address) as client:
        seen = events(client, start)
    broken = next(r.index for r in rows if "broken" in r.input)
    assert seen.count(("start", broken)) == 1  # a bad input is not retried
    assert sorted(row for e, row in seen if e == "written") == [r.index for r in rows if r.index != broken]
    assert {r["worker"] for r in report.done} <= set(cluster.scheduler_info["workers"])
    loads = {}
    for r in sorted(report.done, key=lambda r: r["row"]):
        loads.setdefault(r["pid"], set()).add(r["model_loads"])
    assert all(len(n) == 1 for n in loads.values())  # each process loaded the model once
    before, start = snapshot(out), time.time()
    with DaskExecutor(address=cluster.scheduler_address) as ex:
        again = run_batch(cohort.model, rows, out, executor=ex)
    assert snapshot(out) == before and len(again.skipped) == 3
    with Client(cluster.scheduler_address) as client:
        assert events(client, start) == []


@pytest.mark.slow
def test_worker_killed_mid_run_every_good_row_done_exactly_once(tmp_path, cluster):
    """Six larger scans on 2 workers; when the first finishes, the worker busiest with another
    row is terminated. Dask reruns its row elsewhere; every row is in the ledger once."""
    import psutil
    import torch
    from distributed import Client

    from napari_dfcseg.batch.cluster import DaskExecutor
    from napari_dfcseg.engine.config import resolve_config
    from napari_dfcseg.engine.pipeline import train_model

    torch.set_num_threads(1)
    shape = (32, 160, 144)  # about a second per row here: long enough to be caught mid-row
    lines = []
    for s in range(6):
        p = head_phantom(shape=shape, spacing=SPACING, seed=10 + s)
        write_nifti(tmp_path / f"big{s}.nii.gz", p.image.astype(np.int16))
        lines.append(f"{tmp_path}/big{s}.nii.gz,,")
        if s == 0:
            model = train_model([p.image], spacing=SPACING, device="cpu", seed=0,
                                config=dataclasses.replace(resolve_config("fast"), max_iter=5))
            model.save(tmp_path / "model.pt")
    out = tmp_path / "out"
    rows = read_manifest(write_manifest(tmp_path / "m.csv", lines), out)
    killed, recorded_before_kill = [], set()

    def kill_a_busy_worker(record, done, total):
        if killed or done == total:
            return
        recorded_before_kill.add(record["row"])
        with Client(cluster.scheduler_address) as client:
            busy = [w for w, keys in client.processing().items()
                    if any(k.startswith("dfcseg-row-") for k in keys)]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                psutil.Process(pid).terminate()
                killed.append(pid)

    start = time.time()
    with DaskExecutor(address=cluster.scheduler_address) as ex:
        report = run_batch(tmp_path / "model.pt", rows, out, executor=ex, on_record=kill_a_busy_worker)
    assert killed, "no worker was busy when the first row finished"
    assert len(report.done) == 6 and not report.failed and not report.bad
    lines = ledger_lines(out)
    assert sorted(r["row"] for r in lines) == list(range(6))  # once each
    assert all(Path(r["output"]).is_file() for r in lines)
    # The killed process may have finished rows before it was killed (the busiest worker can be
    # the one that just wrote the first row); none of its rows can be recorded after the kill.
    assert {r["row"] for r in lines if r["pid"] == killed[0]} <= recorded_before_kill
    with Client(cluster.scheduler_address) as client:
        written = [row for e, row in events(client, start) if e == "written"]
        client.wait_for_workers(2, timeout=60)  # the nanny restarted it: later tests get 2
    assert sorted(set(written)) == list(range(6)) and len(written) == 6
    assert not list(out.glob(".*tmp*"))


@pytest.mark.slow
def test_cli_batch_on_its_own_local_cluster_with_json_progress(cohort, tmp_path):
    manifest = four_with_one_broken(cohort, tmp_path)
    out = tmp_path / "out"
    result = run_cli("batch", cohort.model, manifest, out, "--workers", "2", "--progress", "json")
    assert result.returncode == 2, result.stderr  # one bad input
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # stdout: JSON only
    assert [(e["stage"], e["iteration"], e["total"]) for e in lines[:4]] == \
        [("batch", i, 4) for i in (1, 2, 3, 4)]
    assert sorted(e["status"] for e in lines[:4]) == ["bad-input", "ok", "ok", "ok"]
    assert lines[4] == {**lines[4], "stage": "summary", "labelled": 3, "bad_input": 1}
    assert lines[5]["stage"] == "message" and "3 labelled" in lines[5]["message"]
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("dfcseg:")] == \
        [f"dfcseg: bad-input: {cohort.root}/broken.nii.gz: cannot read the NIfTI header:"
         " it is not gzip-compressed (is the .gz suffix right?)"]
    records = ledger_lines(out)
    workers = {r["worker"] for r in records}
    assert len(workers) == 2 and all(w.startswith("tcp://") for w in workers)
    from napari_dfcseg.batch.cluster import machine_cores

    # each worker's torch gets its share of the cores
    assert {r["torch_threads"] for r in records if r["status"] == "ok"} == {max(1, machine_cores() // 2)}
    assert len(list(out.glob("s*.nii.gz"))) == 3


@pytest.mark.slow
@pytest.mark.parametrize("where", [["--sequential"], ["--workers", "2"]], ids=["sequential", "dask"])
def test_ctrl_c_keeps_finished_rows_and_writes_nothing_partial(cohort, tmp_path, where):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it, Dask workers included):
    exit 130 with one line, whole files only, every ledger line's output exists; a rerun finishes."""
    lines = [f"{cohort.root}/scan{i % 5}.nii.gz,,r{i}.nii.gz" for i in range(40)]
    manifest = write_manifest(tmp_path / "m.csv", lines)
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "napari_dfcseg", "batch", str(cohort.model),
                             str(manifest), str(out), "--progress", "json", *where],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    first = proc.stdout.readline()  # the first row is done: interrupt the others
    assert json.loads(first)["status"] == "ok"
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("dfcseg: interrupted")
    assert "Traceback" not in stderr and "error" not in stderr
    done = ledger_lines(out)
    assert 1 <= len(done) < 40 and all(r["status"] == "ok" for r in done)
    written = sorted(p.name for p in out.glob("r*.nii.gz"))
    assert written == sorted(Path(r["output"]).name for r in done)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files
    result = run_cli("batch", cohort.model, manifest, out, *where)
    assert result.returncode == 0, result.stderr
    assert sorted(r["row"] for r in ledger_lines(out)) == list(range(40))


@pytest.mark.slow
def test_train_first_trains_on_the_first_rows_then_labels_all(cohort, tmp_path):
    manifest = write_manifest(tmp_path / "m.csv", [
        f"{cohort.root}/scan{i}.nii.gz,{cohort.root}/mask{i}.nii.gz,s{i}.nii.gz" for i in (0, 1, 2)])
    model, out = tmp_path / "new_model.pt", tmp_path / "out"
    result = run_cli("batch", model, manifest, out, "--train-first", "1", "--preset", "fast",
                     "--max-iter", "5", "--sequential")
    assert result.returncode == 0, result.stderr
    assert model.is_file() and "trained on 1 scan(s)" in result.stdout
    assert sorted(p.name for p in out.glob("s*.nii.gz")) == ["s0.nii.gz", "s1.nii.gz", "s2.nii.gz"]
    missing = run_cli("batch", tmp_path / "none.pt", manifest, out)
    assert missing.returncode == 2 and "--train-first" in missing.stderr
