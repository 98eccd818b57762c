"""PNG plots of the benchmark results (matplotlib, Agg backend)."""

from __future__ import annotations

import numpy as np

TISSUE_NAMES = {"1": "CSF", "2": "GM", "3": "WM"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_dice(record):
    """Mean of the many-to-one Dice over the scored tissues."""
    d = record["dice_many_to_one"]
    return float(np.mean([d[k] for k in TISSUE_NAMES if k in d]))


def plot_grid(records, out_png):
    """Mean Dice of the K = 3 baselines vs noise, one panel per bias level."""
    plt = _pyplot()
    from matplotlib.ticker import PercentFormatter

    rows = [r for r in records if r["family"] == "baseline" and r["k"] == 3
            and r["case"].startswith("MNI")]
    biases = sorted({r["bias"] for r in rows})
    methods = sorted({r["method"] for r in rows})
    fig, axes = plt.subplots(1, len(biases), figsize=(4 * len(biases), 3.4), sharey=True,
                             squeeze=False)
    for ax, bias in zip(axes[0], biases):
        for method in methods:
            pts = sorted((r["noise"], mean_dice(r)) for r in rows
                         if r["bias"] == bias and r["method"] == method)
            if pts:
                style = "-" if "+" in method else "--"
                ax.plot(*zip(*pts), style, marker="o", ms=3, label=method.replace(" K=3", ""))
        ax.set_title(f"MNI152, bias {bias:.0%}")
        ax.set_xlabel("Rician noise (% of WM intensity)")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean Dice (CSF, GM, WM)")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)


def plot_reference(rows, out_png):
    """Bar chart of Dice per tissue at the MNI reference point, best baselines vs engine runs.

    ``rows``: ``(method, {tissue: (mean, sd)})`` in display order.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(rows) + 2), 3.6))
    width = 0.27
    x = np.arange(len(rows))
    for i, (tissue, name) in enumerate(TISSUE_NAMES.items()):
        means = [r[1][tissue][0] for r in rows]
        sds = [r[1][tissue][1] for r in rows]
        ax.bar(x + (i - 1) * width, means, width, yerr=sds, label=name, capsize=2)
    ax.set_xticks(x, [r[0] for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("Dice (many-to-one)")
    ax.set_title("MNI152, 5 % noise, 20 % bias")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)


def plot_scaling(runs, out_png, *, limit_gib=8.0):
    """Wall time and peak RSS vs number of voxels, one line per mode."""
    plt = _pyplot()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.4))
    for mode in sorted({r["mode"] for r in runs}):
        pts = sorted((int(np.prod(r["shape"])), r["wall_s"], r["peak_rss_mib"] / 1024)
                     for r in runs if r["mode"] == mode)
        vox, wall, mem = zip(*pts)
        ax_t.loglog(vox, wall, marker="o", label=mode)
        ax_m.semilogx(vox, mem, marker="o", label=mode)
    ax_m.axhline(limit_gib, color="red", ls=":", label=f"goal {limit_gib:g} GiB")
    ax_t.set_xlabel("voxels")
    ax_m.set_xlabel("voxels")
    ax_t.set_ylabel("wall time (s)")
    ax_m.set_ylabel("peak RSS (GiB)")
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
