"""Output rules (issue 15): no clobbering, outputs committed together, fsync before the rename."""

import os

import nibabel as nib
import numpy as np
import pytest

from napari_dfcseg.errors import VolumeIOError
from napari_dfcseg.io import Volume, label_outputs, stage_outputs, write_labels


@pytest.fixture
def scan():
    return Volume.from_array(np.zeros((3, 4, 5), np.float32), spacing=(2.0, 1.0, 1.0))


def _labels(value):
    return np.full((3, 4, 5), value, np.uint8)


def test_users_own_label_tables_are_not_replaced_without_overwrite(tmp_path, scan):
    table = tmp_path / "seg.labels.txt"
    table.write_text("my hand-edited ITK-SNAP names\n")
    with pytest.raises(VolumeIOError, match=r"seg.labels.txt: exists; refusing to overwrite"):
        write_labels(tmp_path / "seg.nii.gz", _labels(1), like=scan, overwrite=False)
    assert table.read_text() == "my hand-edited ITK-SNAP names\n"
    assert sorted(os.listdir(tmp_path)) == ["seg.labels.txt"]  # nothing else, no temporary file


def test_two_runs_to_the_same_name_never_mix_their_files(tmp_path, scan):
    # both runs pass the up-front check; the second to commit must be refused,
    # leaving the first run's three files intact
    target = tmp_path / "seg.nii.gz"
    with stage_outputs(label_outputs(target, _labels(1), scan, {1: "first"})) as first, \
            stage_outputs(label_outputs(target, _labels(2), scan, {2: "second"})) as second:
        written = first.commit()
        with pytest.raises(VolumeIOError, match="appeared while this run was working"):
            second.commit()
    assert np.unique(np.asarray(nib.load(target).dataobj)).tolist() == [1]
    assert '"first"' in written[1].read_text() and "first" in written[2].read_text()
    assert sorted(os.listdir(tmp_path)) == ["seg.ctbl", "seg.labels.txt", "seg.nii.gz"]


def test_a_run_refused_at_commit_removes_what_it_had_placed(tmp_path, scan):
    # the sidecar appears meanwhile: the NIfTI this run had already linked is taken back
    target = tmp_path / "seg.nii.gz"
    with stage_outputs(label_outputs(target, _labels(1), scan)) as staged:
        (tmp_path / "seg.ctbl").write_text("someone else's\n")
        with pytest.raises(VolumeIOError, match=r"seg.ctbl: exists"):
            staged.commit()
    assert sorted(os.listdir(tmp_path)) == ["seg.ctbl"]


def test_files_and_their_folder_are_fsynced_before_and_after_the_rename(tmp_path, scan, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((path, os.path.exists(tmp_path / "seg.nii.gz")))
        return real_fsync(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name the descriptors")
    monkeypatch.setattr(os, "fsync", recording_fsync)
    write_labels(tmp_path / "seg.nii.gz", _labels(1), like=scan)
    files = [(p, placed) for p, placed in synced if p != str(tmp_path)]
    assert len(files) == 3 and not any(placed for _, placed in files)  # each temp, before any rename
    assert all(os.path.basename(p).startswith(".seg.") and p.endswith(".partial") for p, _ in files)
    assert synced[-1] == (str(tmp_path), True)  # then the folder, after the renames


def test_temporary_names_are_unpredictable_and_created_exclusively(tmp_path, scan, monkeypatch):
    import tempfile

    made = []
    real = tempfile.mkstemp

    def recording_mkstemp(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        made.append(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", recording_mkstemp)
    write_labels(tmp_path / "a.nii.gz", _labels(1), like=scan)
    write_labels(tmp_path / "b.nii.gz", _labels(1), like=scan)
    assert len(made) == 6 and len({os.path.basename(n)[-17:] for n in made}) == 6
    assert all(os.path.dirname(n) == str(tmp_path) for n in made)
