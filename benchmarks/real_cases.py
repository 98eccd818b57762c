"""The real scans of ``../shared/data/real`` as benchmark cases (torch-free).

Every method gets the scan as read (HU for the CT, raw values for MR), with
no mask: what a user opens. Scores use the references in that folder and the
engine-independent outside rule of :func:`benchmarks.real_metrics.outside_rule`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .common import ROOT
from .real_metrics import outside_rule

REAL_DATA = ROOT.parent / "shared" / "data" / "real"

#: TotalSegmentator "total" (v2) class ids per tissue group (the data folder's README)
TS_GROUPS = {
    "lung": (*range(10, 15), 16),
    "bone": (*range(25, 51), *range(69, 79), 91, *range(92, 118)),
    "liver": (5,),
    "kidney": (2, 3),
    "spleen": (1,),
    "muscle": tuple(range(80, 90)),
    "vessels": (52, *range(62, 69)),
}
#: the groups averaged into the CT's headline "mean best-label Dice" (issue 11)
CT_MEAN_GROUPS = ("lung", "bone", "liver", "kidney", "spleen", "muscle")


@dataclass
class RealCase:
    """One real scan: the image every method sees and what it is scored on.

    ``structures``: named boolean references (tissue groups, a lesion);
    ``lesion``: the name among them scored also as a connected component;
    ``outside``: surely-outside voxels (the rule is in ``outside_note``).
    """

    name: str
    image: np.ndarray
    spacing: tuple
    modality: str
    outside: np.ndarray
    outside_note: str
    structures: dict = field(default_factory=dict)
    lesion: str | None = None
    source: str = ""


def _read(path):
    from napari_dfcseg.io import read_volume

    return read_volume(path)


def ct_abdomen(folder=REAL_DATA):
    """``ct-abdomen-3mm`` with its TotalSegmentator reference grouped into tissues."""
    folder = folder / "ct-abdomen-3mm"
    vol = _read(folder / "ct.nii.gz")
    ref = np.asarray(_read(folder / "reference_totalsegmentator.nii.gz").array)
    image = np.asarray(vol.array, dtype=np.float32)
    structures = {g: np.isin(ref, ids) for g, ids in TS_GROUPS.items()}
    outside = outside_rule(image, "CT", protect=ref > 0)
    return RealCase("ct-abdomen-3mm", image, tuple(vol.spacing), "CT", outside,
                    "per axial slice, the largest HU < -500 region touching the slice border, "
                    "eroded 2 voxels in-plane, "
                    "minus any reference structure", structures, source=str(folder))


def _mr(name, image_file, lesion_file=None, lesion_name="lesion", folder=REAL_DATA):
    vol = _read(folder / name / image_file) if image_file else _read(folder / name)
    image = np.asarray(vol.array, dtype=np.float32)
    structures = {}
    if lesion_file:
        structures[lesion_name] = np.asarray(_read(folder / name / lesion_file).array) > 0
    protect = structures.get(lesion_name)
    outside = outside_rule(image, "MR", protect=protect)
    return RealCase(name, image, tuple(vol.spacing), "MR", outside,
                    "per slice, the largest region of 3×3-median intensity < 5 % of the 99th "
                    "percentile touching the slice border, eroded 2 voxels in-plane", structures,
                    lesion=lesion_name if lesion_file else None, source=str(folder / name))


def real_cases(folder=REAL_DATA, *, names=None):
    """The real cases present in ``folder`` (skips any that is missing), in a fixed order."""
    makers = {
        "ct-abdomen-3mm": lambda: ct_abdomen(folder),
        "mr-brain-tumour": lambda: _mr("mr-brain-tumour", "image.nrrd", "tumour_label.nrrd",
                                       "tumour", folder),
        "mr-breast": lambda: _mr("mr-breast", "image.nrrd", "lesion_label.nrrd", "lesion",
                                 folder),
        "mr-abdomen-3mm": lambda: _mr("mr-abdomen-3mm", "mr.nii.gz", folder=folder),
        "mr-head-sagittal-dicom": lambda: _mr("mr-head-sagittal-dicom", None, folder=folder),
    }
    out = []
    for name, make in makers.items():
        if names is not None and name not in names:
            continue
        if (folder / name).exists():
            out.append(make())
    return out
