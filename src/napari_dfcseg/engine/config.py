"""Run parameters of the engine: :class:`DFCConfig` and its named presets.

Torch-free, so the napari widget can build its controls from it at start-up.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import InvalidInputError

__all__ = ["DFCConfig", "PRESETS", "PRECISIONS", "MODES", "DEVICES", "resolve_config"]

#: values of ``DFCConfig.precision``
PRECISIONS = ("auto", "float32", "bfloat16")
#: ``mode`` of segment / train_model: slice by slice, or the whole volume
MODES = ("2d", "3d")
#: ``device`` names the front ends offer (``"auto"``: CUDA, then MPS, then CPU)
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DFCConfig:
    """Parameters of one differentiable-feature-clustering run.

    Frozen, so derive variants with ``dataclasses.replace(cfg, max_iter=50)``.

    Parameters
    ----------
    n_channels : int
        Feature channels ``p`` of every layer; also the most clusters a run can give.
    n_conv : int
        Convolution blocks (conv k×k → ReLU → BatchNorm) before the 1×1 head.
    kernel : int
        Side of the convolution kernels (odd).
    thick_slice_ratio : float or None
        An axis whose voxel size is at least this many times the finest gets
        a 1-voxel kernel (e.g. 1×3×3 on 2.5×1×1 mm voxels), so no layer mixes
        tissue across thick slices; the continuity loss still links them.
        ``None``: isotropic kernels.
    lr, momentum : float
        SGD learning rate and momentum.
    max_iter : int
        Most training iterations (one mini-batch each).
    ct_max_iter : int or None
        On a scan whose intensities are CT numbers (HU,
        :func:`~napari_dfcseg.engine.foreground.looks_like_ct`): at most this many
        iterations instead of ``max_iter``. Calibrated HU without a bias field
        let the intensity anchor carry the classes, so later iterations move
        few labels (the public CT, seeds 0-2: mean best-label Dice 0.449 after
        20 iterations, 0.446 after 50; docs/benchmarks.md, "End to end: the
        stages around training"). ``None``: ``max_iter`` on every scan. A
        user's own ``max_iter`` replaces it (:func:`~.parameters.apply_user_values`).
    label_smoothing : float
        Strength ``beta`` of an edge-stopped Potts prior on the final labels
        (:mod:`~napari_dfcseg.engine.label_smoothing`: three mean-field steps over
        the 3-voxel neighbourhood, weaker where the intensities change), on
        anchored labels only. 0: each voxel's label on its own (the paper).
    ct_label_smoothing : float or None
        On a scan whose intensities are CT numbers: ``label_smoothing``
        instead. CT soft tissues differ by less than a voxel's noise, and the
        prior settles them (the public CT, mean best-label Dice 0.537 -> 0.561,
        bone kept); on MR it cost thin CSF (MNI152 5 %/20 %: 0.866 -> 0.859),
        so it is off there (docs/method.md, "CT: an edge-stopped Potts prior").
        ``None``: ``label_smoothing`` on every scan.
    min_labels : int
        The paper's stop rule: stop once the run shows this many labels or fewer.
    w_similarity, w_continuity, w_scribble : float
        Loss weights (the paper's μ = 1, ν = 1 and the scribble weight 0.5).
    w_continuity_3d : float or None
        Continuity weight in 3D mode (None: ``w_continuity``). The 3D term
        sums differences along three axes over a 5×5×5 receptive field and
        smooths away thin structures at the 2D weight (measured on MNI152,
        docs/method.md).
    mixture_components : int or None
        If set, the self-labels are anchored to a Gaussian mixture of this
        many components fitted to the normalised intensities (with scribbles
        covering the requested labels: one component per scribbled class): each voxel's target is the component that
        maximises the network's log-probability plus ``mixture_weight`` times
        the component's log-likelihood of the voxel's intensity, instead of
        the bare argmax (:func:`napari_dfcseg.engine.prior.anchored_target`).
        At least ``n_clusters`` components are fitted. ``None``: the paper's argmax.
    mixture_weight : float
        Weight of the intensity log-likelihood in the anchored target.
    batch_slices : int
        2D mode: slices per mini-batch, drawn from the whole volume.
    crop_size : int
        2D mode: largest in-plane side of a training crop (bounds memory).
    patch_size : tuple of 3 ints
        3D mode: (z, y, x) size of a training patch, clipped to the volume.
    batch_patches : int
        3D mode: patches per mini-batch, centred on random voxels of the mask.
    n_clusters : int, "auto" or None
        If set, clusters are merged after training down to this many labels
        (Ward agglomeration of the clusters' mean features). Scribbled classes
        are never merged with each other. ``"auto"``: chosen per scan inside
        the foreground (:func:`~napari_dfcseg.engine.tissue_count.choose_tissue_count`,
        K in 2-12), and the intensity anchor gets as many components; with
        scribbles at least the scribbled classes. The resolved number is what
        a trained model stores.
    denoise : None or "median"
        Filter the normalised intensities before the network and the
        intensity anchor see them (:func:`~napari_dfcseg.engine.normalize.denoise`):
        a 3-voxel median in-plane, and across slices unless they are thick.
    scribble_connected : bool
        A scribbled class keeps only the regions connected to its scribbles;
        distant regions that merely look alike get the nearest label nobody
        scribbled (:func:`~napari_dfcseg.engine.scribble_reach.confine_scribbled_classes`).
        For structures (a tumour, an organ); off for tissues spread everywhere
        (CSF, grey matter: the ``brain`` preset).
    auto_mask : bool
        Without a user mask, segment inside an automatic body / head mask
        (:func:`~napari_dfcseg.engine.foreground.auto_foreground`): air
        outside the patient gets label 0 and stays out of the intensity
        statistics and the training. A user mask always replaces it.
    min_size : int
        Islands (connected components) smaller than this many voxels are
        merged into the label that surrounds them. 0 keeps everything.
    stop_rule : {"batch", "eval"}
        Where ``min_labels`` is checked. ``"batch"`` (the paper): on the
        training batch, every iteration. ``"eval"``: every ``eval_every``
        iterations on a fixed evaluation set of slices / patches, with
        BatchNorm statistics recalibrated on that set, i.e. the labels the
        user gets; clusters under ``min_cluster_fraction`` of the mask are
        not counted.
    eval_every : int
        Iterations between two checks of the ``"eval"`` stop rule.
    eval_slices : int
        Slices (2D) or patches (3D) of the fixed evaluation set, spread evenly
        over the mask; also the set the BatchNorm statistics are recalibrated on.
    min_cluster_fraction : float
        ``"eval"`` stop rule: clusters covering less than this fraction of the
        evaluation voxels are not counted.
    min_iter : int
        Iterations before the stop rule may fire.
    recalibrate_bn : bool
        Recompute the BatchNorm statistics on the evaluation set before the
        final pass (does not change the paper's loss; makes the final pass
        consistent with what training saw).
    spacing_aware : bool
        Weight the continuity term along each axis by ``min(spacing) / spacing``.
    percentiles : tuple of 2 floats
        Intensity percentiles (inside the mask) mapped to 0 and 1.
    hu_window : tuple of 2 floats or None
        CT: clip intensities to this HU window before normalising.
    precision : {"auto", "float32", "bfloat16"}
        Arithmetic of the training iterations. ``"auto"``: mixed precision on
        CUDA, bfloat16 on a CPU with native bfloat16 (AVX512-BF16 / AMX),
        float32 otherwise. Labelling stays float32 on CPU.
    compile : bool
        2D mode: train through ``torch.compile`` (inductor), which fuses each
        ReLU and BatchNorm with its neighbours: measured 1.7x faster network
        forward + backward on the paper configuration on CPU, after a compile
        of ~50 s (the first run; ~8 s once inductor's cache under the system
        temp folder holds it), so it pays only for long runs (the paper's up
        to 1000 iterations, docs/benchmarks.md). Needs a C++ compiler on CPU;
        without one training falls back to eager with a warning. Labels are
        reproducible for one setting, but differ slightly from eager ones.
    preview_every : int
        Iterations between two live previews in ``progress``'s ``info``.
    infer_batch_slices : int
        2D mode: slices per batch of the final labelling pass.
    chunk_size : int
        3D mode: side of the cubic chunks of the final labelling pass.
    """

    n_channels: int = 100
    n_conv: int = 2
    kernel: int = 3
    thick_slice_ratio: float | None = 2.0
    lr: float = 0.1
    momentum: float = 0.9
    max_iter: int = 1000
    ct_max_iter: int | None = None
    label_smoothing: float = 0.0
    ct_label_smoothing: float | None = None
    min_labels: int = 3
    w_similarity: float = 1.0
    w_continuity: float = 1.0
    w_scribble: float = 0.5
    w_continuity_3d: float | None = None
    mixture_components: int | None = None
    mixture_weight: float = 1.0
    batch_slices: int = 8
    crop_size: int = 256
    patch_size: tuple = (32, 64, 64)
    batch_patches: int = 2
    n_clusters: int | str | None = None
    denoise: str | None = None
    auto_mask: bool = False
    scribble_connected: bool = False
    min_size: int = 0
    stop_rule: str = "batch"
    eval_every: int = 1
    eval_slices: int = 16
    min_cluster_fraction: float = 0.0
    min_iter: int = 0
    recalibrate_bn: bool = True
    spacing_aware: bool = True
    percentiles: tuple = (0.5, 99.5)
    hu_window: tuple | None = None
    precision: str = "auto"
    compile: bool = False
    preview_every: int = 10
    infer_batch_slices: int = 4
    chunk_size: int = 64

    def __post_init__(self):
        _validate(self)

    @classmethod
    def preset(cls, name: str) -> "DFCConfig":
        """The named preset (see :data:`PRESETS`)."""
        try:
            return PRESETS[name]
        except (KeyError, TypeError):
            raise InvalidInputError(
                f"unknown config preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}"
            ) from None

    def continuity_weight(self, mode: str) -> float:
        """The continuity weight of ``mode`` (``w_continuity_3d`` in 3D when set)."""
        if mode == "3d" and self.w_continuity_3d is not None:
            return self.w_continuity_3d
        return self.w_continuity

    @property
    def anchor_weight(self) -> float:
        """Weight of the intensity mixture in the self-labels; 0 when not anchored."""
        return self.mixture_weight if self.mixture_components else 0.0

    def with_anchor(self, weight: float) -> "DFCConfig":
        """This config anchored with ``weight`` (0: the paper's argmax).

        Keeps the config's component count, 3 if it had none.
        """
        if weight > 0:
            return dataclasses.replace(self, mixture_components=self.mixture_components or 3,
                                       mixture_weight=weight)
        return dataclasses.replace(self, mixture_components=None)

    def to_dict(self) -> dict:
        """Plain-type dictionary (tuples as lists): safe to store in a model file."""
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> "DFCConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``InvalidInputError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise InvalidInputError(f"unknown DFCConfig fields: {', '.join(sorted(unknown))}")
        clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
        return cls(**clean)


def _validate(cfg: DFCConfig) -> None:
    def bad(field, why):
        raise InvalidInputError(f"DFCConfig.{field} = {getattr(cfg, field)!r}: {why}")

    for field in ("n_channels", "n_conv", "kernel", "max_iter", "batch_slices", "crop_size",
                  "batch_patches", "eval_every", "eval_slices", "preview_every",
                  "infer_batch_slices", "chunk_size"):
        value = getattr(cfg, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            bad(field, "must be a positive integer")
    if cfg.n_channels < 2:
        bad("n_channels", "must be at least 2")
    if cfg.kernel % 2 == 0:
        bad("kernel", "must be odd")
    if cfg.thick_slice_ratio is not None and not cfg.thick_slice_ratio >= 1:
        bad("thick_slice_ratio", "must be None or at least 1")
    if cfg.lr <= 0:
        bad("lr", "must be positive")
    if not 0 <= cfg.momentum < 1:
        bad("momentum", "must be in [0, 1)")
    if cfg.ct_max_iter is not None and (not isinstance(cfg.ct_max_iter, int)
                                        or isinstance(cfg.ct_max_iter, bool) or cfg.ct_max_iter < 1):
        bad("ct_max_iter", "must be None or a positive integer")
    if not (isinstance(cfg.label_smoothing, (int, float)) and 0 <= cfg.label_smoothing < math.inf):
        bad("label_smoothing", "must be a number, 0 or more")
    if cfg.ct_label_smoothing is not None and not (
            isinstance(cfg.ct_label_smoothing, (int, float)) and 0 <= cfg.ct_label_smoothing < math.inf):
        bad("ct_label_smoothing", "must be None or a number, 0 or more")
    if cfg.min_labels < 1:
        bad("min_labels", "must be at least 1")
    if cfg.min_iter < 0 or cfg.min_size < 0:
        bad("min_iter" if cfg.min_iter < 0 else "min_size", "must not be negative")
    if cfg.mixture_components is not None and not (1 <= cfg.mixture_components <= cfg.n_channels):
        bad("mixture_components", f"must be None or between 1 and n_channels ({cfg.n_channels})")
    if cfg.n_clusters is not None and cfg.n_clusters != "auto" and not (
            isinstance(cfg.n_clusters, int) and not isinstance(cfg.n_clusters, bool)
            and 1 <= cfg.n_clusters <= cfg.n_channels):
        bad("n_clusters", f"must be None, 'auto' or between 1 and n_channels ({cfg.n_channels})")
    if cfg.denoise not in (None, "median"):
        bad("denoise", "must be None or 'median'")
    for flag in ("auto_mask", "scribble_connected", "compile"):
        if not isinstance(getattr(cfg, flag), bool):
            bad(flag, "must be True or False")
    if cfg.precision not in PRECISIONS:
        bad("precision", f"must be one of {', '.join(map(repr, PRECISIONS))}")
    if cfg.stop_rule not in ("batch", "eval"):
        bad("stop_rule", "must be 'batch' or 'eval'")
    if len(cfg.patch_size) != 3 or min(cfg.patch_size) < 1:
        bad("patch_size", "must be 3 positive integers (z, y, x)")
    if len(cfg.percentiles) != 2 or not 0 <= cfg.percentiles[0] < cfg.percentiles[1] <= 100:
        bad("percentiles", "must be (low, high) with 0 <= low < high <= 100")
    if cfg.hu_window is not None and (len(cfg.hu_window) != 2 or cfg.hu_window[0] >= cfg.hu_window[1]):
        bad("hu_window", "must be None or (low, high) with low < high")
    if not 0 <= cfg.min_cluster_fraction < 1:
        bad("min_cluster_fraction", "must be in [0, 1)")
    if cfg.w_continuity_3d is not None and cfg.w_continuity_3d < 0:
        bad("w_continuity_3d", "must be None or not negative")
    for field in ("w_similarity", "w_continuity", "w_scribble", "mixture_weight"):
        if getattr(cfg, field) < 0:
            bad(field, "must not be negative")


#: Named presets. ``"paper"``: the published defaults (Kim et al. 2020).
#: ``"default"``: for real scans as they come (unmasked, any modality): an automatic
#: body / head mask, the tissue count chosen per scan (docs/method.md).
#: ``"fast"``: half the iterations of ``"default"``, for a quick look.
#: ``"brain"``: 3 tissues (CSF, grey, white matter), for a skull-stripped brain or a brain mask.
PRESETS: dict[str, DFCConfig] = {
    "paper": DFCConfig(),
}
# measured on the head phantom (docs/method.md): a lower learning rate, a
# fixed evaluation set for the stop rule, and Ward merging to 3 labels
PRESETS["default"] = dataclasses.replace(
    PRESETS["paper"],
    n_channels=32,
    lr=0.01,
    max_iter=50,
    batch_slices=4,
    n_clusters=3,
    stop_rule="eval",
    eval_every=5,
    eval_slices=8,
    min_cluster_fraction=0.005,
    min_iter=20,
    patch_size=(16, 48, 48),
    # scribbles are a tiny fraction of the voxels: at the paper's 0.5 the self-labels
    # win and a scribbled class (thin CSF) can vanish; 2.0 measured best on MNI152
    # with 1 or 3 scribbled slices (docs/method.md, "Experiments on MNI152")
    w_scribble=2.0,
    # anchor the self-labels to a 3-component (tied-variance) intensity mixture: on
    # MNI152 CSF stays on every seed (docs/method.md, "Anchored self-labels"); weight
    # 1.0 rather than 0.5, which lost CSF on 2 of 3 seeds in 3D. The classes cannot
    # vanish, so the stop rule only guards against a collapse to one label and the
    # run trains its 50 iterations
    mixture_components=3,
    mixture_weight=1.0,
    min_labels=1,
    # 3D: at the 2D weight the continuity term erases CSF (Dice 0.01-0.13); 0.25 keeps it
    w_continuity_3d=0.25,
)
# the preset above was measured on brain MR with a brain mask (3 tissues): it stays as "brain"
PRESETS["brain"] = PRESETS["default"]
# real scans (issue 11): label 0 = outside the patient without a user mask, and as many
# classes as the scan's intensities show (docs/method.md, "Foreground" and "Tissue count")
# a 3-voxel median before the network and the anchor: on the head phantom without a
# mask it keeps thin CSF (seed 3: CSF Dice 0.926 -> 0.971; docs/method.md, "Denoising")
# a scribble marks a structure: its class stays on the regions connected to it (a tumour
# scribble took 1064 mL of scalp fat for a 16 mL tumour)
# on CT the HU anchor carries the classes: 20 iterations label as well as 50, at 0.4x the
# training time (issue 12; docs/benchmarks.md, "End to end: the stages around training")
# on CT an edge-stopped Potts prior settles the soft tissues the HU cannot (issue 11;
# docs/method.md, "CT: an edge-stopped Potts prior")
PRESETS["default"] = dataclasses.replace(PRESETS["brain"], n_clusters="auto", auto_mask=True,
                                         denoise="median", scribble_connected=True,
                                         ct_max_iter=20, ct_label_smoothing=1.0)
PRESETS["fast"] = dataclasses.replace(PRESETS["default"], max_iter=25)


def resolve_config(config: "DFCConfig | str | None") -> DFCConfig:
    """A :class:`DFCConfig` from a config, a preset name, or ``None`` (the default preset)."""
    if config is None:
        return PRESETS["default"]
    if isinstance(config, DFCConfig):
        return config
    if isinstance(config, str):
        return DFCConfig.preset(config)
    raise InvalidInputError(
        f"config must be a DFCConfig or a preset name ({', '.join(sorted(PRESETS))}), "
        f"got {type(config).__name__}"
    )
