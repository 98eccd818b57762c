"""The segmentation engine: differentiable feature clustering for volumes.

Modules, one responsibility each (torch is imported only by the ones that
need it, so the napari widget can use the torch-free ones at start-up):

- :mod:`.config` — :class:`DFCConfig` and its presets, MODES, DEVICES (torch-free)
- :mod:`.inputs` — :func:`assemble_inputs`, the one input boundary (torch-free)
- :mod:`.result` — :class:`SegmentationResult`, the progress and cancel callbacks (torch-free)
- :mod:`.normalize` — the one intensity normalisation (torch-free)
- :mod:`.parameters` — the one table of user parameters, settings files (torch-free)
- :mod:`.labelling` — the pipeline's steps from clusters to labels (torch-free)
- :mod:`.label_edits` — the label edits a user applies: merge, islands, relabel, table (torch-free)
- :mod:`.device` — device choice, mixed precision, determinism
- :mod:`.network` — the paper's feature extractor, 2D and 3D
- :mod:`.losses` — similarity, spacing-aware continuity and scribble losses
- :mod:`.training` — the training loop, its sampling and stop rule
- :mod:`.inference` — whole-volume labelling in slices / chunks with a halo
- :mod:`.model` — :class:`Model` (what training fitted), its file: ``Model.save``, ``load_model``
- :mod:`.pipeline` — the entry points :func:`segment`, ``train_model``, ``apply_model``
"""
