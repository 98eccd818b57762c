"""``dfcseg demo``: segment the synthetic head phantom and show how well it went.

Writes, into one folder, the phantom (``phantom.nii.gz``), its ground truth
(``phantom_truth.nii.gz``), the segmentation (``phantom_labels.nii.gz``), each
label file with its label-description file, and ``overview.png`` with the
middle axial, coronal and sagittal slices. Nothing is written until the
segmentation has finished, so a cancelled demo leaves no partial output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


__all__ = ["run_demo", "write_overview"]


#: the files run_demo writes in its folder (the label volumes also get .labels.txt and .ctbl)
DEMO_FILES = ("phantom.nii.gz", "phantom_truth.nii.gz", "phantom_labels.nii.gz", "overview.png")


def run_demo(outdir, *, shape=(40, 112, 96), config="fast", seed=0, device="auto",
             progress=None, cancel=None, overwrite=True):
    """Generate, segment, score and write the head phantom.

    Parameters
    ----------
    outdir : str or Path
        Folder for the results; created if missing.
    shape : tuple of 3 ints
        Phantom size in voxels (z, y, x).
    config : DFCConfig or str
        Engine parameters or a preset name.
    seed : int
        Seed of the phantom and of the engine.
    device : str
        Torch device, as for :func:`napari_dfcseg.segment`.
    progress, cancel
        Passed to :func:`napari_dfcseg.segment`.
    overwrite : bool
        Replace the label files of an earlier demo in ``outdir`` (False:
        refuse any existing one; ``dfcseg demo`` checks all of them first).

    Returns
    -------
    str
        A few lines for the user: labels found, Dice per tissue, files written.
    """
    from .datasets import TISSUES, head_phantom
    from .engine.pipeline import segment
    from .engine.result import check_cancel
    from .metrics import dice_per_tissue, match_many_to_one

    import matplotlib  # noqa: F401 - needed for the overview: fail before the minute of work

    outdir = Path(outdir)
    phantom = head_phantom(shape=tuple(shape), seed=seed)
    result = segment(phantom.image, mode="2d", spacing=phantom.spacing, config=config,
                     seed=seed, device=device, progress=progress, cancel=cancel)
    check_cancel(cancel)
    labels = np.asarray(result.labels)
    dice = dice_per_tissue(labels, phantom.truth, phantom.mask)
    matched = match_many_to_one(labels, phantom.truth, np.ones(labels.shape, dtype=bool))
    names = {c: f"cluster {c} ({TISSUES.get(t, 'background')})" for c, t in matched.items() if c}

    from .io import write_labels

    outdir.mkdir(parents=True, exist_ok=True)
    volume = _phantom_volume(phantom)
    written = [_write_image(volume, outdir / "phantom.nii.gz")]
    written += write_labels(outdir / "phantom_truth.nii.gz", phantom.truth, like=volume, overwrite=overwrite,
                            names=dict(TISSUES))
    written += write_labels(outdir / "phantom_labels.nii.gz", labels, like=volume, names=names,
                            overwrite=overwrite)
    written.append(write_overview(outdir / "overview.png", phantom, labels))

    n_labels = int(np.unique(labels[labels > 0]).size)
    scores = ", ".join(f"{TISSUES[t]} {d:.3f}" for t, d in sorted(dice.items()))
    mean = sum(dice.values()) / max(len(dice), 1)
    lines = [
        f"segmented a {'x'.join(map(str, phantom.image.shape))} head phantom:"
        f" {n_labels} labels after {result.n_iterations} iterations",
        f"no mask given: segmented inside the automatic head mask"
        f" ({(labels[phantom.truth == 0] == 0).mean():.1%} of the air outside labelled 0)"
        if result.mask_source == "auto" else f"segmented: {result.mask_source} mask",
        f"tissues: {result.n_tissues} ({result.tissue_count_reason})",
        f"Dice vs ground truth (brain, clusters matched to tissues): {scores}; mean {mean:.3f};"
        f" worst {min(dice.values()):.3f}",
        "wrote:",
        *(f"  {p}" for p in written),
        f"view: napari {outdir / 'phantom.nii.gz'} {outdir / 'phantom_labels.nii.gz'}",
    ]
    return "\n".join(lines)


def _phantom_volume(phantom):
    from .io import Volume

    return Volume.from_array(phantom.image, spacing=tuple(phantom.spacing), modality="MR",
                             description="synthetic T1 head phantom")


def _partial(path):
    """A temporary name beside ``path``, renamed over it once complete."""
    return path.with_name(f".partial-{os.getpid()}-{path.name}")


def _write_image(volume, path):
    """The phantom scan as NIfTI (``write_labels`` is for label volumes)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(volume.array, dtype=np.float32))
    image.SetSpacing(tuple(float(s) for s in volume.spacing[::-1]))  # SimpleITK is x, y, z
    image.SetOrigin(tuple(float(o) for o in volume.origin))
    image.SetDirection(tuple(float(d) for d in np.ravel(volume.direction)))
    tmp = _partial(path)
    try:
        sitk.WriteImage(image, str(tmp), True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_overview(path, phantom, labels):
    """A PNG of the middle axial, coronal and sagittal slices: image, truth, labels.

    Parameters
    ----------
    path : Path
        The PNG to write.
    phantom : Phantom
        Image, truth and spacing (:func:`napari_dfcseg.datasets.head_phantom`).
    labels : (z, y, x) ndarray of int
        The segmentation.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    sz, sy, sx = phantom.spacing
    z, y, x = (n // 2 for n in phantom.image.shape)
    views = [  # (name, cut, aspect = row spacing / column spacing); superior up
        ("axial", lambda a: a[z], sy / sx),
        ("coronal", lambda a: a[::-1, y], sz / sx),
        ("sagittal", lambda a: a[::-1, :, x], sz / sy),
    ]
    from matplotlib.colors import ListedColormap

    # one distinct colour per label value (a continuous colormap would grey some out)
    colours = ListedColormap(plt.get_cmap("tab20").colors)
    rows = [("image", phantom.image, None), ("ground truth", phantom.truth, colours),
            ("dfcseg labels", np.asarray(labels), colours)]
    fig, axes = plt.subplots(len(rows), len(views), figsize=(9, 9), squeeze=False)
    for r, (row_name, array, cmap) in enumerate(rows):
        for c, (view_name, cut, aspect) in enumerate(views):
            ax = axes[r][c]
            ax.imshow(cut(phantom.image), cmap="gray", aspect=aspect, interpolation="nearest")
            if r:
                ids = cut(array).astype(np.int64)
                overlay = np.ma.masked_equal((ids - 1) % 20, -1)  # label 0 stays transparent
                overlay.mask |= ids == 0
                ax.imshow(overlay, cmap=cmap, alpha=0.6, aspect=aspect, interpolation="nearest",
                          vmin=-0.5, vmax=19.5)
            ax.set_title(f"{row_name}, {view_name}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    tmp = _partial(path)
    try:
        fig.savefig(tmp, dpi=80, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
