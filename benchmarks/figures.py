"""Qualitative figure: the paper's 2D images segmented by the original loop and by this engine."""

from __future__ import annotations

import numpy as np

from .common import PAPER_SAMPLES

UNSUPERVISED_IMAGES = ("101027.jpg", "108004.jpg", "196062.jpg")
SCRIBBLE_IMAGE = "2007_001774.jpg"


def _mean_colour(labels, rgb):
    """Paint each segment with its mean colour (how the paper's figures read best)."""
    from skimage.color import label2rgb

    return label2rgb(labels + 1, image=rgb, kind="avg", bg_label=0).astype(np.uint8)


def paper_images(out_png, *, max_iter=200, downscale=1, seed=0, device="cpu", log=print):
    """Segment the paper's sample images with both implementations and save one figure.

    Both run the paper's configuration and stop rule (3 labels, or as many as
    scribbled classes), capped at ``max_iter`` iterations. ``downscale``
    (quick runs) keeps every n-th pixel. Returns per-image iteration counts
    and label counts.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.io import imread

    from .engine_runner import engine_config, run_engine
    from .original_dfc import original_dfc, read_bgr

    names = UNSUPERVISED_IMAGES + (SCRIBBLE_IMAGE,)
    fig, axes = plt.subplots(len(names), 3, figsize=(9, 2.4 * len(names)), squeeze=False)
    summary = []
    for row, name in enumerate(names):
        bgr = np.ascontiguousarray(read_bgr(PAPER_SAMPLES / name)[::downscale, ::downscale])
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        scribble_png = None
        ours_scribbles = None
        if name == SCRIBBLE_IMAGE:
            scribble_png = imread(PAPER_SAMPLES / name.replace(".jpg", "_scribble.png"))
            if scribble_png.ndim == 3:
                scribble_png = scribble_png[..., 0]
            scribble_png = np.ascontiguousarray(scribble_png[::downscale, ::downscale])
            ours_scribbles, _ = scribbles_from_png(scribble_png)
        original, t = original_dfc(bgr, scribble=scribble_png, max_iter=max_iter, seed=seed,
                                   device=device)
        config = engine_config("paper", max_iter=max_iter, crop_size=max(rgb.shape[:2]))
        ours, info = run_engine(rgb, mode="2d", spacing=(1.0, 1.0), channel_axis=-1,
                                scribbles=ours_scribbles, config=config, seed=seed, device=device)
        ours = ours.reshape(rgb.shape[:2])
        item = {"image": name, "original_iterations": len(t),
                "original_labels": int(np.unique(original).size),
                "engine_iterations": info["n_iterations"],
                "engine_labels": int(np.unique(ours).size), "scribbles": scribble_png is not None}
        summary.append(item)
        log(f"  {name}: original {item['original_iterations']} it / {item['original_labels']} "
            f"labels; engine {item['engine_iterations']} it / {item['engine_labels']} labels")
        shown = rgb.copy()
        if scribble_png is not None:
            shown[scribble_png != 255] = (255, 255, 0)
        panels = [(shown, name + (" + scribbles" if scribble_png is not None else "")),
                  (_mean_colour(original, rgb),
                   f"original: {item['original_iterations']} it, {item['original_labels']} labels"),
                  (_mean_colour(ours, rgb),
                   f"napari-dfcseg: {item['engine_iterations']} it, "
                   f"{item['engine_labels']} labels")]
        for ax, (img, title) in zip(axes[row], panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.suptitle(f"Paper configuration (100 ch, 2 conv, SGD 0.1), seed {seed}, "
                 f"at most {max_iter} iterations"
                 + (f", images downscaled ×{downscale}" if downscale > 1 else ""), fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return summary


def scribbles_from_png(array):
    """Convert the original code's scribble PNG (255 = unlabelled) to our convention.

    Parameters
    ----------
    array : (y, x) int ndarray
        Pixel values: 255 = no scribble, any other value = a class.

    Returns
    -------
    scribbles : (y, x) int16 ndarray
        0 = unlabelled, classes 1..S in increasing order of their PNG value.
    mapping : dict
        ``{png_value: class}``.
    """
    array = np.asarray(array)
    if array.ndim == 3:  # a greyscale PNG read as RGB(A): all channels equal
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"scribble PNG must be a 2D array, got shape {array.shape}")
    values = [int(v) for v in np.unique(array) if v != 255]
    mapping = {v: k + 1 for k, v in enumerate(values)}
    out = np.zeros(array.shape, dtype=np.int16)
    for v, k in mapping.items():
        out[array == v] = k
    return out, mapping
