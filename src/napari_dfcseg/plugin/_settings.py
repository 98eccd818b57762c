"""The widget's inputs: layers, mode, preset and the "Advanced" parameters of a run.

Builds a :class:`~napari_dfcseg.engine.config.DFCConfig` from what the user
set; the preset fills the advanced fields, which then override it.
"""

from __future__ import annotations

import dataclasses

from magicgui.widgets import ComboBox, Container, FloatSpinBox, RadioButtons, Select, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget
from superqt import QCollapsible

from napari_dfcseg.engine.config import PRESETS, DFCConfig

__all__ = ["RunSettings", "MODES", "DEVICES"]

#: label shown in the widget -> ``segment(mode=...)``
MODES = {"2D slice-wise": "2d", "3D": "3d"}
DEVICES = ("auto", "cpu", "cuda", "mps")

# advanced field -> DFCConfig field (n_clusters 0 means "no merging": None)
_CONFIG_FIELDS = {
    "n_channels": "n_channels",
    "n_conv": "n_conv",
    "max_iter": "max_iter",
    "min_labels": "min_labels",
    "n_clusters": "n_clusters",
    "w_continuity": "w_continuity",
    "w_continuity_3d": "w_continuity_3d",
    "w_scribble": "w_scribble",
    "min_size": "min_size",
}


def _layer_choices(viewer, kind, exclude=None):
    def choices(_widget):
        return [
            (layer.name, layer)
            for layer in viewer.layers
            if isinstance(layer, kind) and (exclude is None or layer is not exclude())
        ]

    return choices


class RunSettings(QWidget):
    """Inputs of a run: image, extra channels, mask, scribbles, mode, preset, advanced.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the layer choices come from.
    """

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        from napari.layers import Image, Labels

        self._viewer = viewer
        self.image = ComboBox(label="Image", choices=_layer_choices(viewer, Image))
        self.channels = Select(
            label="Extra channels",
            choices=_layer_choices(viewer, Image, exclude=lambda: self.image.value),
            tooltip="Co-registered image layers of the same shape (e.g. T2, FLAIR), "
            "used as extra input channels",
        )
        self.channels.native.setMaximumHeight(70)
        self.mask = ComboBox(
            label="Mask", choices=_layer_choices(viewer, Labels), nullable=True,
            tooltip="Only voxels > 0 of this Labels layer are segmented",
        )
        self.scribbles = ComboBox(
            label="Scribbles", choices=_layer_choices(viewer, Labels), nullable=True,
            tooltip="Painted classes 1, 2, 3… guide the clustering (0 = unlabelled)",
        )
        self.mode = RadioButtons(label="Mode", choices=list(MODES), value="2D slice-wise",
                                 orientation="horizontal")
        self.preset = ComboBox(label="Preset", choices=list(PRESETS),
                               value="default" if "default" in PRESETS else next(iter(PRESETS)))
        self._inputs = Container(
            widgets=[self.image, self.channels, self.mask, self.scribbles, self.mode, self.preset]
        )
        self.image.changed.connect(self.channels.reset_choices)

        self.n_channels = SpinBox(label="Feature channels", min=2, max=512)
        self.n_conv = SpinBox(label="Conv layers", min=1, max=8)
        self.max_iter = SpinBox(label="Iterations", min=1, max=100_000)
        self.min_labels = SpinBox(label="Min labels", min=1, max=512,
                                  tooltip="Stop once the run shows this many labels or fewer")
        self.n_clusters = SpinBox(label="Clusters (0 = auto)", min=0, max=512,
                                  tooltip="Merge the clusters down to this many labels at the end")
        self.w_continuity = FloatSpinBox(label="Continuity weight", min=0.0, max=100.0, step=0.05,
                                         tooltip="Weight of the neighbour agreement term (2D mode)")
        self.w_continuity_3d = FloatSpinBox(label="Continuity weight 3D", min=0.0, max=100.0,
                                            step=0.05, tooltip="The same in 3D mode")
        self.w_scribble = FloatSpinBox(label="Scribble weight", min=0.0, max=100.0, step=0.1)
        self.anchor = FloatSpinBox(
            label="Intensity anchor", min=0.0, max=100.0, step=0.1,
            tooltip="Weight of the intensity mixture in the self-labels; keeps thin classes "
            "such as CSF (0 = off: the paper's argmax)")
        self.min_size = SpinBox(label="Min island (voxels)", min=0, max=10_000_000)
        self.seed = SpinBox(label="Seed", min=0, max=2**31 - 1, value=0)
        self.device = ComboBox(label="Device", choices=list(DEVICES), value="auto")
        self._advanced = Container(
            widgets=[self.n_channels, self.n_conv, self.max_iter, self.min_labels,
                     self.n_clusters, self.w_continuity, self.w_continuity_3d,
                     self.w_scribble, self.anchor,
                     self.min_size,
                     self.seed, self.device]
        )
        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(self._advanced.native)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._inputs.native)
        layout.addWidget(self.advanced)

        self.preset.changed.connect(self.load_preset)
        self.load_preset(self.preset.value)

    # ------------------------------------------------------------- choices
    def reset_choices(self, *_):
        """Refresh the layer lists (connected to the viewer's layer events)."""
        self.image.reset_choices()
        self.channels.reset_choices()
        self.mask.reset_choices()
        self.scribbles.reset_choices()

    # -------------------------------------------------------------- config
    def load_preset(self, name):
        """Fill the advanced fields from the preset ``name``."""
        cfg = DFCConfig.preset(name)
        for widget_name, field in _CONFIG_FIELDS.items():
            value = getattr(cfg, field)
            getattr(self, widget_name).value = 0 if value is None else value
        self.w_continuity_3d.value = cfg.continuity_weight("3d")
        self.anchor.value = cfg.anchor_weight

    def config(self):
        """The :class:`DFCConfig` of the preset with the advanced fields applied."""
        changes = {field: getattr(self, name).value for name, field in _CONFIG_FIELDS.items()}
        changes["n_clusters"] = changes["n_clusters"] or None
        return dataclasses.replace(DFCConfig.preset(self.preset.value), **changes) \
            .with_anchor(self.anchor.value)

    def engine_mode(self):
        """``"2d"`` or ``"3d"``."""
        return MODES[self.mode.value]
