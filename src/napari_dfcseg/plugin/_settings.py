"""The widget's inputs: what to segment, where, into how many tissues, and the engine's knobs.

In front, the choices a clinician makes (Image, Region, Tissues, Scribbles,
Mode, Preset); under *Advanced*, the engine's parameters with a tooltip each.
:meth:`RunSettings.config` builds the
:class:`~napari_dfcseg.engine.config.DFCConfig` of a run: the preset, then the
advanced fields, then the tissue count.
"""

from __future__ import annotations

import dataclasses

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, RadioButtons, Select, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget
from superqt import QCollapsible

from napari_dfcseg.engine.config import PRESETS, DFCConfig

__all__ = ["RunSettings", "MODES", "DEVICES", "REGION_AUTO", "REGION_WHOLE", "TISSUES_AUTO",
           "PRESET_HELP", "supports_auto_tissues"]

#: label shown in the widget -> ``segment(mode=...)``
MODES = {"2D slice-wise": "2d", "3D": "3d"}
DEVICES = ("auto", "cpu", "cuda", "mps")
#: values of the Region control besides a Labels layer
REGION_AUTO = "auto"
REGION_WHOLE = "whole"
TISSUES_AUTO = "Auto"
_TISSUE_RANGE = range(2, 13)

#: one line per preset, shown under the Preset control
PRESET_HELP = {
    "default": "Recommended: tuned on real CT and MR scans.",
    "fast": "Half the training of 'default': a quick first look.",
    "paper": "The published method (Kim et al. 2020), 1000 iterations: for comparison.",
}

# advanced control -> DFCConfig field
_CONFIG_FIELDS = {
    "n_channels": "n_channels",
    "n_conv": "n_conv",
    "max_iter": "max_iter",
    "min_labels": "min_labels",
    "w_continuity": "w_continuity",
    "w_continuity_3d": "w_continuity_3d",
    "w_scribble": "w_scribble",
    "min_size": "min_size",
}


def supports_auto_tissues():
    """True once the engine chooses the tissue count itself (``n_clusters="auto"``)."""
    try:
        DFCConfig(n_clusters="auto")
    except Exception:  # noqa: BLE001 - an engine that validates K as an int
        return False
    return True


def _layer_choices(viewer, kind, exclude=None):
    def choices(_widget):
        return [
            (layer.name, layer)
            for layer in viewer.layers
            if isinstance(layer, kind) and (exclude is None or layer is not exclude())
        ]

    return choices


class RunSettings(QWidget):
    """Inputs of a run: image, region, tissues, scribbles, mode, preset, advanced.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the layer choices come from.
    """

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        from napari.layers import Image, Labels

        self._viewer = viewer
        labels_layers = _layer_choices(viewer, Labels)
        self.image = ComboBox(label="Image", choices=_layer_choices(viewer, Image),
                              tooltip="The scan to segment")
        self.region = ComboBox(
            label="Region",
            choices=lambda w: [("Auto (body outline)", REGION_AUTO), ("Whole image", REGION_WHOLE),
                               *labels_layers(w)],
            tooltip="Where to segment. Auto: the patient's body, found automatically and "
            "added as an editable '… body' layer; a Labels layer: its painted voxels; "
            "Whole image: every voxel, air included. Outside the region is label 0 (clear).",
        )
        self.tissues = ComboBox(
            label="Tissues", choices=[TISSUES_AUTO, *(str(k) for k in _TISSUE_RANGE)],
            value=TISSUES_AUTO,
            tooltip="How many tissue labels you want. Auto: chosen for each scan.",
        )
        self.scribbles = ComboBox(
            label="Scribbles", choices=labels_layers, nullable=True,
            tooltip="Optional: a Labels layer where you painted a few strokes of tissue 1, 2, 3…; "
            "each painted tissue keeps its number in the result",
        )
        self.channels = Select(
            label="Extra contrasts",
            choices=_layer_choices(viewer, Image, exclude=lambda: self.image.value),
            tooltip="Other co-registered scans of the same patient and grid (T2, FLAIR…), "
            "used together with the image (Ctrl-click to pick several)",
        )
        self.channels.native.setMaximumHeight(60)
        self.mode = RadioButtons(
            label="Mode", choices=list(MODES), value="2D slice-wise", orientation="horizontal",
            tooltip="2D slice-wise: one network over all slices, robust to thick slices. "
            "3D: 3D convolutions, for thin isotropic slices.",
        )
        self.preset = ComboBox(label="Preset", choices=list(PRESETS),
                               value="default" if "default" in PRESETS else next(iter(PRESETS)),
                               tooltip="A set of engine parameters (shown under Advanced)")
        self.preset_help = Label(value="")
        self.preset_help.native.setWordWrap(True)
        self._inputs = Container(
            widgets=[self.image, self.region, self.tissues, self.scribbles, self.channels,
                     self.mode, self.preset, self.preset_help]
        )
        self.image.changed.connect(self._on_image_changed)

        self.n_channels = SpinBox(
            label="Feature maps", min=2, max=512,
            tooltip="Feature channels of the network; also the most labels a run can find")
        self.n_conv = SpinBox(label="Network depth", min=1, max=8,
                              tooltip="Convolution layers of the network")
        self.max_iter = SpinBox(label="Training steps", min=1, max=100_000,
                                tooltip="Most training iterations; more is slower, rarely better")
        self.min_labels = SpinBox(
            label="Stop at labels", min=1, max=512,
            tooltip="Stop training early once the network shows this many labels or fewer")
        self.w_continuity = FloatSpinBox(
            label="Smoothness (2D)", min=0.0, max=100.0, step=0.05,
            tooltip="How strongly neighbouring voxels are pushed to the same label, "
            "2D slice-wise mode; higher gives smoother, larger regions")
        self.w_continuity_3d = FloatSpinBox(label="Smoothness (3D)", min=0.0, max=100.0, step=0.05,
                                            tooltip="The same in 3D mode")
        self.w_scribble = FloatSpinBox(label="Scribble weight", min=0.0, max=100.0, step=0.1,
                                       tooltip="How strongly your painted strokes steer the labels")
        self.anchor = FloatSpinBox(
            label="Intensity anchor", min=0.0, max=100.0, step=0.1,
            tooltip="Ties the labels to the scan's intensity classes; keeps thin tissues "
            "such as CSF (0 = off: the paper's method)")
        self.min_size = SpinBox(label="Min island (voxels)", min=0, max=10_000_000,
                                tooltip="Pieces smaller than this take the label around them "
                                "(0 = keep everything)")
        self.seed = SpinBox(label="Seed", min=0, max=2**31 - 1, value=0,
                            tooltip="Same seed and device: the same result")
        self.device = ComboBox(label="Device", choices=list(DEVICES), value="auto",
                               tooltip="auto: a GPU (CUDA, Apple MPS) when there is one, else the CPU")
        self._advanced = Container(
            widgets=[self.n_channels, self.n_conv, self.max_iter, self.min_labels,
                     self.w_continuity, self.w_continuity_3d, self.w_scribble, self.anchor,
                     self.min_size, self.seed, self.device]
        )
        self.advanced = QCollapsible("Advanced")
        self.advanced.setToolTip("The engine's parameters: the preset fills them")
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
        for widget in (self.image, self.channels, self.region, self.scribbles):
            widget.reset_choices()

    def _on_image_changed(self, image):
        self.channels.reset_choices()
        region = self.region.value
        if getattr(region, "data", None) is not None and image is not None and \
                region.data.shape != image.data.shape[: image.ndim]:
            self.region.value = REGION_AUTO  # a mask of another scan cannot apply

    def region_layer(self):
        """The Labels layer picked as Region, or None (Auto / Whole image)."""
        value = self.region.value
        return None if isinstance(value, str) or value is None else value

    # -------------------------------------------------------------- config
    def load_preset(self, name):
        """Fill the advanced fields from the preset ``name``."""
        cfg = DFCConfig.preset(name)
        for widget_name, field in _CONFIG_FIELDS.items():
            value = getattr(cfg, field)
            getattr(self, widget_name).value = 0 if value is None else value
        self.w_continuity_3d.value = cfg.continuity_weight("3d")
        self.anchor.value = cfg.anchor_weight
        self.preset_help.value = PRESET_HELP.get(name, f"Preset '{name}'.")

    def tissue_count(self):
        """The forced number of tissues, or None for Auto."""
        value = self.tissues.value
        return None if value == TISSUES_AUTO else int(value)

    def config(self):
        """The :class:`DFCConfig` of the preset with the advanced fields and tissues applied."""
        base = DFCConfig.preset(self.preset.value)
        changes = {field: getattr(self, name).value for name, field in _CONFIG_FIELDS.items()}
        forced = self.tissue_count()
        if forced is not None:
            changes["n_clusters"] = forced
        elif supports_auto_tissues():
            changes["n_clusters"] = "auto"
        # else: an engine without automatic K keeps the preset's count
        k = changes.get("n_clusters", base.n_clusters)
        if isinstance(k, int) and k > changes["n_channels"]:
            from napari_dfcseg.errors import InvalidInputError

            raise InvalidInputError(
                f"{k} tissues need at least {k} feature maps (Advanced): raise Feature maps "
                "or ask for fewer tissues"
            )
        return dataclasses.replace(base, **changes).with_anchor(self.anchor.value)

    def engine_mode(self):
        """``"2d"`` or ``"3d"``."""
        return MODES[self.mode.value]
