"""Classical baselines: k-means, Gaussian mixture and multi-Otsu, raw or after denoising.

Each baseline takes the normalised image and the mask, clusters the intensities
inside the mask into ``n_classes`` groups and returns a label volume (0 outside
the mask, 1..K inside, ordered by mean intensity so that runs are comparable).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

CLUSTERERS = ("kmeans", "gmm", "otsu")
DENOISERS = ("none", "median3", "gauss0.7")


def denoise(image, method):
    """Apply one of :data:`DENOISERS` to a (z, y, x) image (2-D images are treated alike)."""
    if method == "none":
        return image
    if method == "median3":
        return ndi.median_filter(image, size=3)
    if method == "gauss0.7":
        return ndi.gaussian_filter(image, sigma=0.7)
    raise ValueError(f"denoiser must be one of {DENOISERS}, got {method!r}")


def _order_by_intensity(values, assignment, n_classes):
    """Renumber clusters 1..K by increasing mean intensity."""
    means = [values[assignment == k].mean() if np.any(assignment == k) else np.inf
             for k in range(n_classes)]
    rank = np.empty(n_classes, dtype=np.int64)
    rank[np.argsort(means)] = np.arange(1, n_classes + 1)
    return rank[assignment]


def cluster(values, method, n_classes, *, seed=0):
    """Cluster 1-D intensities; returns labels 1..K ordered by intensity."""
    x = values.reshape(-1, 1).astype(np.float64)
    if method == "kmeans":
        from sklearn.cluster import KMeans

        assignment = KMeans(n_clusters=n_classes, n_init=3, random_state=seed).fit_predict(x)
    elif method == "gmm":
        from sklearn.mixture import GaussianMixture

        assignment = GaussianMixture(n_components=n_classes, random_state=seed).fit_predict(x)
    elif method == "otsu":
        from skimage.filters import threshold_multiotsu

        thresholds = threshold_multiotsu(values, classes=n_classes)
        assignment = np.digitize(values, thresholds)
    else:
        raise ValueError(f"clusterer must be one of {CLUSTERERS}, got {method!r}")
    return _order_by_intensity(values, assignment, n_classes)


def run_baseline(image, mask, *, clusterer, denoiser="none", n_classes=3, seed=0):
    """Denoise, then cluster the intensities inside ``mask``; returns a uint8 label volume."""
    smooth = denoise(image, denoiser)
    labels = np.zeros(image.shape, dtype=np.uint8)
    labels[mask] = cluster(smooth[mask], clusterer, n_classes, seed=seed)
    return labels


def baseline_name(clusterer, denoiser, n_classes):
    """Readable name used in tables, e.g. ``median3+gmm K=4``."""
    prefix = "" if denoiser == "none" else f"{denoiser}+"
    return f"{prefix}{clusterer} K={n_classes}"
