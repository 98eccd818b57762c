"""Gaussian mixtures by EM from k-means starts, for :mod:`.prior` and :mod:`.tissue_count`; torch-free.

The one-channel fits (the tissue count's 36 fits of 5 000 values, the
anchor of every one-contrast scan) run on (k, n) rows instead of (n, k)
arrays: the same floats bit for bit, without numpy's row-at-a-time loops
over a short last axis (tests/test_engine_prior.py checks the identity).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_gaussian_mixture"]


def _kmeans(x, k, n_iter=100, init="quantile", rows=None):
    """Lloyd's k-means from equal-count ("quantile") or equal-width ("uniform") bins of channel 0.

    ``rows`` (optional): ``(values, counts, inverse)`` of :func:`_distinct_rows`;
    the iterations then run on the distinct rows (each counted as often as it
    occurs), which is the same k-means. Returns the assignment of every row of ``x``.
    """
    if init == "uniform":
        edges = np.linspace(x[:, 0].min(), x[:, 0].max(), k + 1)[1:-1]
        assign = np.searchsorted(edges, x[:, 0]).astype(np.int64)
    else:
        order = np.argsort(x[:, 0], kind="stable")
        assign = np.empty(len(x), dtype=np.int64)
        for i, part in enumerate(np.array_split(order, k)):
            assign[part] = i
    # the first centres from the start's bins (equal-count bins may split tied values);
    # every later assignment depends on a row's value only
    centres = np.stack([x[assign == i].mean(0) if np.any(assign == i) else x.mean(0)
                        for i in range(k)])
    values, counts, inverse = rows if rows is not None else (x, None, None)
    current = None
    for _ in range(n_iter):
        if current is not None:
            centres = _centres(values, counts, current, k, x)
        new = _nearest(values, centres)
        if current is None:
            if np.array_equal(new if inverse is None else new[inverse], assign):
                break
        elif np.array_equal(new, current):
            break
        current = new
    if current is None:
        return assign
    return current if inverse is None else current[inverse]


def _centres(values, counts, assign, k, x):
    """(k, c) means of the rows of each cluster (counted ``counts`` times); empty: ``x``'s mean.

    One channel: the same pairwise sums of the same selected values as
    :func:`_weighted_mean`, without ``np.mean``'s Python layers (k calls a k-means
    iteration, ~1 000 iterations a tissue count).
    """
    if values.shape[1] != 1:
        return np.stack([_weighted_mean(values, counts, assign == i) if np.any(assign == i)
                         else x.mean(0) for i in range(k)])
    column = values[:, 0]
    centres = np.empty((k, 1))
    members = np.empty(column.shape, bool)
    for i in range(k):
        # np.compress: the same values in the same order as column[members], 3x faster
        np.equal(assign, i, out=members)
        chosen = np.compress(members, column)
        if chosen.size == 0:
            centres[i] = x.mean(0)
        elif counts is None:
            centres[i, 0] = np.add.reduce(chosen) / chosen.size
        else:
            w = np.compress(members, counts)
            centres[i, 0] = np.add.reduce(chosen * w) / np.add.reduce(w)
    return centres


def _nearest(values, centres):
    """``argmin`` over the centres of the squared distance of every row (the first on ties).

    One channel: the distances as (k, n) rows and a running minimum, the same
    floats and indices as the (n, k) ``argmin``, without numpy's row-at-a-time
    loops over a short last axis (~0.1 ms a k-means iteration on 5 000 values).
    """
    if values.shape[1] != 1 or len(centres) < 2:
        return ((values[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)
    distances = (values[:, 0][None] - centres[:, 0][:, None]) ** 2
    nearest = np.zeros(values.shape[0], dtype=np.intp)
    best = distances[0].copy()
    closer = np.empty(best.shape, bool)
    step = np.empty(best.shape, np.intp)
    for j in range(1, len(centres)):
        np.less(distances[j], best, out=closer)
        # nearest < j so far: the maximum with closer * j sets j where closer, 2x faster
        # than nearest[closer] = j
        np.maximum(nearest, np.multiply(closer, j, out=step), out=nearest)
        np.minimum(best, distances[j], out=best)
    return nearest


def _weighted_mean(values, counts, where):
    if counts is None:
        return values[where].mean(0)
    w = counts[where]
    return (values[where] * w[:, None]).sum(0) / w.sum()


def _distinct_rows(x):
    """``(values, counts, inverse)`` of the distinct rows of ``x``, or None when few repeat.

    Intensities of CT (integer HU) and of most MR scans take a few thousand
    distinct values, also after normalisation and a median filter (a median
    picks one of the values): EM over the distinct values, each weighted by
    its count, is the same EM at a fraction of the cost (200 000 samples of
    the public CT: 2 000-5 000 distinct values).
    """
    if x.shape[1] == 1:
        # one contrast: the 1-D unique gives the same values, counts and inverse 20x
        # faster, and its sort lets go of the GIL (the rows' structured sort held it
        # ~0.2-0.3 s: the napari window froze meanwhile)
        values, inverse, counts = np.unique(x[:, 0], return_inverse=True, return_counts=True)
        values = values[:, None]
    else:
        values, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
    if len(values) > len(x) // 4:
        return None
    return values, counts.astype(np.float64), inverse.reshape(-1)


def fit_gaussian_mixture(samples, n_components, *, n_iter=500, tol=1e-7, tied=False, var_floor=None,
                         init="quantile"):
    """Diagonal Gaussian mixture of ``samples`` by EM, initialised by k-means (as scikit-learn).

    Parameters
    ----------
    samples : (n, c) float ndarray
    n_components : int
    tied : bool
        One variance shared by all components.
    var_floor : float or None
        Smallest variance of a component; default ``1e-4`` times the data's
        variance. A larger floor keeps a component from collapsing onto a
        spike of identical values (quantised or clipped intensities).
    init : {"quantile", "uniform"}
        k-means start from equal-count or equal-width bins of channel 0.

    Returns
    -------
    means, variances : (k, c) ndarrays
    weights : (k,) ndarray
        Components sorted by the mean of the first channel.
    """
    x = np.asarray(samples, dtype=np.float64)
    n, c = x.shape
    k = int(min(n_components, max(1, n)))
    rows = _distinct_rows(x) if n > 1 else None
    # deterministic start: k-means from equal-count bins of channel 0
    assign = _kmeans(x, k, init=init, rows=rows)
    parts = [np.flatnonzero(assign == i) for i in range(k)]
    parts = [p if p.size else np.arange(n) for p in parts]
    means = np.stack([x[p].mean(0) for p in parts])
    if var_floor is None:
        var_floor = max(1e-6, 1e-4 * float(x.var(0).mean()))
    variances = np.stack([x[p].var(0) for p in parts]) + var_floor
    weights = np.array([p.size for p in parts], dtype=np.float64) / n
    # EM over the distinct rows, each weighted by its count (identical sums, regrouped)
    values, counts = (x, None) if rows is None else rows[:2]
    squares = values * values
    em = _em_one_channel if c == 1 and k >= 2 else _em
    means, variances, weights = em(values, squares, counts, n, means, variances, weights,
                                   var_floor, n_iter, tol, tied)
    order = np.argsort(means[:, 0], kind="stable")
    return means[order], variances[order], weights[order]


def _em(values, squares, counts, n, means, variances, weights, var_floor, n_iter, tol, tied):
    """EM of :func:`fit_gaussian_mixture` from a start, over ``values`` (distinct rows, ``counts``)."""
    previous = -np.inf
    for _ in range(n_iter):
        log_p = _log_joint(values, means, variances, weights)
        top = _row_max(log_p)
        resp = np.exp(log_p - top)
        total = resp.sum(1, keepdims=True)
        if counts is None:
            likelihood = float((np.log(total) + top).mean())
            resp /= total
        else:
            likelihood = float(counts @ (np.log(total) + top)[:, 0]) / n
            resp *= counts[:, None] / total
        nk = resp.sum(0) + 1e-12
        weights = nk / n
        means = (resp.T @ values) / nk[:, None]
        variances = (resp.T @ squares) / nk[:, None] - means ** 2 + var_floor
        if tied:  # one variance for all components (a soft k-means)
            variances = np.broadcast_to((weights[:, None] * variances).sum(0), variances.shape).copy()
        if likelihood - previous < tol * abs(likelihood):
            break
        previous = likelihood
    return means, variances, weights


def _em_one_channel(values, squares, counts, n, means, variances, weights, var_floor, n_iter, tol, tied):
    """The EM loop of :func:`fit_gaussian_mixture` for one channel and k >= 2, the same floats.

    The (n, k) arrays of the general loop have a short last axis, and numpy runs
    every broadcast and reduction over it one row at a time (~0.5 ms an iteration
    on 5 000 x 3, 36 fits a tissue count). Here the responsibilities are (k, n),
    each component a contiguous row: every element is the same operation on the
    same operands, the row sums repeat numpy's order (sequential, the first 8
    pairwise from 8 components on), the column sums its sequential order (a
    cumulative sum), and the two products are the same BLAS calls on an (n, k)
    copy. tests/test_engine_prior.py checks the identity bit for bit.
    """
    x = values[:, 0]
    k = means.shape[0]
    previous = -np.inf
    for _ in range(n_iter):
        # _log_joint, one row per component
        scale = (np.log(weights)[None] - 0.5 * np.log(2 * np.pi * variances[:, 0])[None])[0]
        d = x[None] - means[:, 0][:, None]
        log_p = scale[:, None] - 0.5 * (d * d / variances[:, 0][:, None])
        top = log_p[0].copy()
        for j in range(1, k):
            np.maximum(top, log_p[j], out=top)
        resp = np.exp(log_p - top[None])
        total = _rows_sum(resp)
        if counts is None:
            likelihood = float((np.log(total) + top).mean())
            resp /= total[None]
        else:
            likelihood = float(counts @ (np.log(total) + top)) / n
            resp *= (counts / total)[None]
        nk = np.cumsum(resp, axis=1)[:, -1] + 1e-12
        weights = nk / n
        resp_nk = np.ascontiguousarray(resp.T)
        means = (resp_nk.T @ values) / nk[:, None]
        variances = (resp_nk.T @ squares) / nk[:, None] - means ** 2 + var_floor
        if tied:
            variances = np.broadcast_to((weights[:, None] * variances).sum(0), variances.shape).copy()
        if likelihood - previous < tol * abs(likelihood):
            break
        previous = likelihood
    return means, variances, weights


def _rows_sum(a):
    """``a.T.sum(1)`` of a (k, n) array in numpy's order for a length-k row, the same floats.

    numpy's pairwise sum of a short row: sequential below 8 terms, else the
    first 8 in a fixed tree and the rest added one by one.
    """
    k = a.shape[0]
    if k < 8:
        total = a[0].copy()
        for j in range(1, k):
            total += a[j]
        return total
    total = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    for j in range(8, k):
        total += a[j]
    return total


def _log_joint(x, means, variances, weights):
    if x.shape[1] == 1:
        # one channel: the same floats without the (n, k, 1) array and its sum over a
        # length-1 axis (numpy's slow short-axis reduction: 0.8 ms a call on 5 000 x 6)
        d = x - means[:, 0][None]
        return (np.log(weights)[None] - 0.5 * np.log(2 * np.pi * variances[:, 0])[None]
                - 0.5 * (d * d / variances[:, 0][None]))
    d = x[:, None, :] - means[None]
    return (np.log(weights)[None] - 0.5 * (np.log(2 * np.pi * variances).sum(1))[None]
            - 0.5 * (d * d / variances[None]).sum(2))


def _row_max(a):
    """``a.max(1, keepdims=True)`` of an (n, k) array, a column at a time (the same values).

    numpy reduces a short last axis one row at a time: 0.5 ms for 5 000 x 6,
    k vectorised ``maximum`` calls take a tenth of it.
    """
    top = a[:, :1].copy()
    for j in range(1, a.shape[1]):
        np.maximum(top[:, 0], a[:, j], out=top[:, 0])
    return top
