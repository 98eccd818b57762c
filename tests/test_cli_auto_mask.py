"""``dfcseg segment`` on an unmasked scan: the automatic mask, the tissue count and their options."""

from __future__ import annotations


import nibabel as nib
import numpy as np
import pytest

from conftest import run_cli
from napari_dfcseg.datasets import head_phantom

QUICK = ["--preset", "fast", "--max-iter", "3"]
AFFINE = np.diag([1.2, 0.9, 2.5, 1.0])


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    p = head_phantom(shape=(10, 48, 40), spacing=(2.5, 0.9, 1.2), seed=3)
    path = tmp_path_factory.mktemp("scan") / "head.nii.gz"
    img = nib.Nifti1Image(np.ascontiguousarray(p.image.astype(np.int16).transpose(2, 1, 0)), AFFINE)
    nib.save(img, str(path))
    return path, p


def _xyz(path):
    return np.asarray(nib.load(str(path)).dataobj).transpose(2, 1, 0)  # back to (z, y, x)


def test_default_segments_inside_the_automatic_mask_and_says_why(head, tmp_path):
    scan, p = head
    out, mask = tmp_path / "labels.nii.gz", tmp_path / "mask.nii.gz"
    result = run_cli("segment", scan, out, *QUICK, "--save-mask", mask)
    assert result.returncode == 0, result.stderr
    assert "automatic body/head mask" in result.stdout
    assert "intensity classes" in result.stdout  # the chosen K and why
    labels, region = _xyz(out), _xyz(mask)
    assert set(np.unique(region)) == {0, 1}
    assert (labels[region == 0] == 0).all() and (labels[region == 1] > 0).all()
    assert (region[p.truth == 0] == 0).mean() > 0.95  # air outside the head
    assert (region[p.truth > 0] == 1).mean() > 0.99


def test_no_auto_mask_and_forced_k(head, tmp_path):
    scan, _ = head
    out = tmp_path / "labels.nii.gz"
    result = run_cli("segment", scan, out, *QUICK, "--no-auto-mask", "--n-clusters", "3")
    assert result.returncode == 0, result.stderr
    assert "the whole array" in result.stdout and "3 tissues (--n-clusters)" in result.stdout
    labels = _xyz(out)
    assert (labels > 0).all()
    assert np.unique(labels).size == 3


def test_bad_n_clusters_is_one_usage_line(head, tmp_path):
    scan, _ = head
    result = run_cli("segment", scan, tmp_path / "l.nii.gz", "--n-clusters", "many")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "auto" in lines[0] and "Traceback" not in result.stderr
