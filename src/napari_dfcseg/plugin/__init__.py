"""napari adapter of napari-dfcseg, declared in the npe2 manifest ``napari.yaml``.

Thin by design: no computation lives here. One module per responsibility:

- :mod:`._reader` / :mod:`._writer` / :mod:`._sample_data` — npe2 contributions
- :mod:`._layers` — the one mapping between a ``Volume``'s geometry and napari layers
- :mod:`._worker` — runs engine calls off the GUI thread, relays progress, cancels
- :mod:`._settings` — the widget's inputs and advanced parameters → ``DFCConfig``
- :mod:`._label_table` — per-label table and undoable label edits
- :mod:`._widget` — the dock widget that ties them together
"""
