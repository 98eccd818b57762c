"""Shared cases of the issue-11 experiments: phantoms, MNI152, the real scans in ../shared/data/real."""
from pathlib import Path

import numpy as np

from napari_dfcseg.datasets import head_phantom, mni152
from napari_dfcseg.io import read_volume

#: ../shared/data/real beside the repository (its README lists the cases)
REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def cases():
    """Yield ``(name, image, spacing, mask or None)`` for every case of the experiments."""
    for s in range(4):
        p = head_phantom(seed=s)
        yield f"phantom s{s}", p.image, p.spacing, None
    p = head_phantom(shape=(16, 48, 40))
    yield "phantom small", p.image, p.spacing, None
    p = mni152()
    yield "mni5/20", p.image, p.spacing, p.mask
    p = mni152(noise=.09, bias=.4)
    yield "mni9/40", p.image, p.spacing, p.mask
    for c in ["ct-abdomen-3mm/ct.nii.gz", "mr-abdomen-3mm/mr.nii.gz", "mr-brain-tumour/image.nrrd",
              "mr-head-sagittal-dicom", "mr-breast/image.nrrd"]:
        v = read_volume(REAL / c)
        yield c.split('/')[0], np.asarray(v.array).astype(np.float32), v.spacing, None
