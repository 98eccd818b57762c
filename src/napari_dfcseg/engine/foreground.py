"""Automatic foreground (body / head) mask: label 0 means "outside the patient".

Torch-free. Built from SimpleITK / SciPy filters only (threshold, opening,
connected components, hole filling), in the order a radiographer would use
in ITK-SNAP or Slicer's "threshold + keep largest island + fill holes":

- **CT** (:func:`looks_like_ct`): air is about -1000 HU and every tissue of
  the body is above -500 HU (lung parenchyma about -850 is *inside* the body
  outline). So: HU > -500, an opening that cuts the thin bridges to the
  table and the blanket, the largest component(s), then holes filled slice
  by slice and in 3D, so lungs, trachea and bowel gas are inside.
- **MR**: no absolute scale. The image is median-filtered in plane (the air's noise
  would otherwise speckle the threshold), thresholded at the lower of Otsu's and the
  triangle threshold (Otsu alone sits between dark tissue and bright fat on
  T1 and can cut CSF and muscle away; the triangle method is made for a
  histogram dominated by one mode, here air), closed, holes filled, the
  largest component(s) kept. When what is left outside is not much darker
  than the inside (a crop that holds no air), every voxel is foreground.

The mask never drives training beyond defining the region the network and
the intensity statistics see; a user's mask replaces it
(:func:`resolve_mask`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["looks_like_ct", "auto_foreground", "resolve_mask", "CT_BODY_HU"]

#: CT voxels above this many HU are body (air -1000, lung about -850 .. -500 is filled in)
CT_BODY_HU = -500.0

# a component is kept when it holds at least this fraction of the largest one
# (arms or legs that leave the body outline on some slices, a second breast)
_KEEP_FRACTION = 0.1

# MR: the region left outside counts as air when its median is under this fraction of the
# inside's (air is noise, a few % of tissue; a crop that is all tissue measured 0.6)
_AIR_FRACTION = 0.2


def looks_like_ct(image, modality=""):
    """True when ``image`` is a CT in Hounsfield units.

    ``modality`` ("CT", "MR", ... as stored in DICOM) decides when given.
    Otherwise the intensities decide: a CT in HU holds air near -1000, so its
    1st percentile is below -500 and its range stays inside [-3100, 40000]
    (CT scanners store -1024 .. 3071, metal up to tens of thousands). An MR
    has no such negative mode.
    """
    modality = (modality or "").upper()
    if modality in ("CT", "PT", "MR", "MRI"):
        return modality == "CT"
    a = np.asarray(image)
    sample = a.ravel()[:: max(1, a.size // 500_000)]
    low = float(np.percentile(sample, 1))
    return low < CT_BODY_HU and float(sample.min()) >= -3100 and float(sample.max()) <= 40000


def _to_sitk(array, spacing):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    img.SetSpacing(tuple(float(s) for s in spacing[::-1]))  # SimpleITK is (x, y, z)
    return img


def _radius(spacing, mm, shape):
    """Per-axis radius in voxels (x, y, z order) for ``mm``; 0 along axes of one voxel."""
    return [int(max(0, round(mm / s))) if n > 2 else 0
            for s, n in zip(spacing[::-1], shape[::-1])]


def _largest_components(binary, spacing):
    """The largest connected component and those at least ``_KEEP_FRACTION`` of it."""
    import SimpleITK as sitk

    cc = sitk.RelabelComponent(sitk.ConnectedComponent(_to_sitk(binary.astype(np.uint8), spacing)),
                               sortByObjectSize=True)
    labels = sitk.GetArrayFromImage(cc)
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.size == 0:
        return binary.copy()
    keep = np.flatnonzero(sizes >= _KEEP_FRACTION * sizes[0]) + 1
    return np.isin(labels, keep)


def _fill_holes(binary, spacing):
    """Holes filled in every slice (axis 0) and then in 3D.

    Per slice first: the trachea or the bowel open onto the edge of the
    field of view in 3D but are enclosed in every axial slice.
    """
    import SimpleITK as sitk
    from scipy import ndimage as ndi

    out = np.empty_like(binary)
    for z in range(binary.shape[0]):
        out[z] = ndi.binary_fill_holes(binary[z])
    filled = sitk.BinaryFillhole(_to_sitk(out.astype(np.uint8), spacing), fullyConnected=False)
    return sitk.GetArrayFromImage(filled).astype(bool)


def _morphology(filter_name, binary, spacing, mm):
    """SimpleITK's binary ``filter_name`` with a ball of ``mm`` radius (no-op below one voxel)."""
    import SimpleITK as sitk

    radius = _radius(spacing, mm, binary.shape)
    if not any(radius):
        return binary
    out = getattr(sitk, filter_name)(_to_sitk(binary.astype(np.uint8), spacing), radius,
                                     sitk.sitkBall)
    return sitk.GetArrayFromImage(out).astype(bool)


def _open(binary, spacing, mm):
    return _morphology("BinaryMorphologicalOpening", binary, spacing, mm)


def _dilate(binary, spacing, mm):
    return _morphology("BinaryDilate", binary, spacing, mm)


def _close(binary, spacing, mm):
    # SimpleITK's default safeBorder=True: the closing does not glue the body to the array's edge
    return _morphology("BinaryMorphologicalClosing", binary, spacing, mm)


def _mr_threshold(image, spacing):
    import SimpleITK as sitk

    from .median import median_filter

    # a 3x3 in-plane median: removes the speckle of the air's noise without moving edges
    # (a Gaussian blur moved the outline one to two voxels out into the air); SimpleITK's
    # Median(img, [1, 1, 0]) bit for bit, ~5x faster (engine/median.py)
    values = median_filter(image.astype(np.float32), (0, 1, 1))
    smooth = _to_sitk(values, spacing)
    thresholds = []
    for f in (sitk.OtsuThresholdImageFilter(), sitk.TriangleThresholdImageFilter()):
        f.SetInsideValue(0)
        f.SetOutsideValue(1)
        f.SetNumberOfHistogramBins(256)
        f.Execute(smooth)
        thresholds.append(f.GetThreshold())
    return values, min(thresholds)


def auto_foreground(image, spacing=(1.0, 1.0, 1.0), *, modality=""):
    """Automatic body / head mask of a CT or MR volume.

    Parameters
    ----------
    image : (z, y, x) or (y, x) ndarray
        Intensities (CT in HU). For several channels pass the first.
    spacing : tuple of 3 floats
        Voxel size (sz, sy, sx) in mm: the morphology radii are in mm.
    modality : str
        "CT", "MR" or "" (decided from the intensities, :func:`looks_like_ct`).

    Returns
    -------
    mask : bool ndarray of ``image``'s shape
        True inside the patient. When nothing stands out (a constant image,
        an image that is all tissue) every voxel is True.
    """
    a = np.asarray(image)
    two_d = a.ndim == 2
    if two_d:
        a = a[np.newaxis]
        spacing = (1.0,) + tuple(spacing)[-2:]
    spacing = tuple(float(s) for s in spacing)
    if float(a.max()) <= float(a.min()):
        mask = np.ones(a.shape, bool)
    elif looks_like_ct(a, modality):
        body = a > CT_BODY_HU
        # 3 mm opening: the table top and a blanket touch the skin over a few mm
        core = _largest_components(_open(body, spacing, 3.0), spacing)
        # give back the skin the opening took, not the table it cut off
        mask = _fill_holes(body & _dilate(core, spacing, 3.0), spacing)
    else:
        smooth, threshold = _mr_threshold(a, spacing)
        body = _close(smooth > threshold, spacing, 3.0)
        mask = _fill_holes(_largest_components(body, spacing), spacing)
        low = float(np.percentile(smooth, 0.5))
        outside, inside = np.median(smooth[~mask]) - low, np.median(smooth[mask]) - low
        if mask.all() or not outside < _AIR_FRACTION * inside:
            # what lies outside is not air (a crop inside the body): segment everything
            mask = np.ones(a.shape, bool)
    if not mask.any():
        mask = np.ones(a.shape, bool)
    return mask[0] if two_d else mask


def resolve_mask(image, mask=None, *, spacing=(1.0, 1.0, 1.0), modality="", auto=True):
    """The region to segment: the user's ``mask`` if given, else the automatic one, else None.

    Returns
    -------
    mask : bool ndarray or None
    source : str
        ``"user"``, ``"auto"`` or ``"none"`` (the whole array).
    """
    if mask is not None:
        return np.asarray(mask).astype(bool, copy=False), "user"
    if not auto:
        return None, "none"
    return auto_foreground(image, spacing, modality=modality), "auto"
