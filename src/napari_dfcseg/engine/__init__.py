"""The segmentation engine: differentiable feature clustering for volumes.

Modules, one responsibility each (torch is imported only by the ones that
need it, so the napari widget can use the torch-free ones at start-up):

- :mod:`.config` — :class:`DFCConfig` and its presets (torch-free)
- :mod:`.normalize` — input checks and the one intensity normalisation (torch-free)
- :mod:`.postprocess` — cluster → label mapping and label edits (torch-free)
- :mod:`.device` — device choice, mixed precision, determinism
- :mod:`.network` — the paper's feature extractor, 2D and 3D
- :mod:`.losses` — similarity, spacing-aware continuity and scribble losses
- :mod:`.training` — the training loop, its sampling and stop rule
- :mod:`.inference` — whole-volume labelling in slices / chunks with a halo
- :mod:`.model` — :class:`Model`, ``train_model``, ``apply_model``, ``load_model``
- :mod:`.segment` — :func:`segment` (train + apply) and :class:`SegmentationResult`
"""
