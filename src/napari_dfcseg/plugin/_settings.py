"""The widget's inputs: what to segment, where, into how many tissues, and the engine's knobs.

In front, the choices a clinician makes (Image, Region, Tissues, Scribbles,
Mode, Preset); under *Advanced*, the engine's parameters with a tooltip each.
:meth:`RunSettings.config` builds the
:class:`~napari_dfcseg.engine.config.DFCConfig` of a run: the preset, then the
advanced fields, then the tissue count.
"""

from __future__ import annotations


from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, RadioButtons, Select, SpinBox
from qtpy.QtWidgets import QVBoxLayout, QWidget
from superqt import QCollapsible

from napari_dfcseg.engine.config import PRESETS, DFCConfig
from napari_dfcseg.engine.parameters import (
    PARAMETERS,
    USER_PARAMETERS,
    apply_user_values,
    user_values,
    widget_options,
)

__all__ = ["RunSettings", "MODES", "DEVICES", "REGION_AUTO", "REGION_WHOLE", "TISSUES_AUTO",
           "PRESET_HELP", "supports_auto_tissues"]

#: label shown in the widget -> ``segment(mode=...)``
MODES = {"2D slice-wise": "2d", "3D": "3d"}
DEVICES = ("auto", "cpu", "cuda", "mps")
#: values of the Region control besides a Labels layer
REGION_AUTO = "auto"
REGION_WHOLE = "whole"
TISSUES_AUTO = "Auto"
#: the paper's rule: as many labels as the network ends with (no merging)
TISSUES_AS_FOUND = "As found"
_TISSUE_RANGE = range(2, 13)

#: one line per preset, shown under the Preset control
PRESET_HELP = {
    "default": "Recommended for real CT and MR scans: body outline and tissue count found per scan.",
    "fast": "Half the training of 'default': a quick first look.",
    "brain": "Brain tissues (CSF, grey and white matter) inside a brain mask: 3 labels.",
    "paper": "The published method (Kim et al. 2020), 1000 iterations: for comparison.",
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
            label="Tissues", choices=[TISSUES_AUTO, *(str(k) for k in _TISSUE_RANGE), TISSUES_AS_FOUND],
            value=TISSUES_AUTO,
            tooltip="How many tissue labels you want. Auto: chosen for each scan from its "
            "intensities; As found: as many as the network ends with (the paper's method). "
            "The preset sets it; change it after picking the preset.",
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

        # one field per row of the engine's table of user parameters; the tissue
        # count (n_clusters) is the Tissues control in front
        self.fields = {}
        for row in USER_PARAMETERS:
            if row.name == "n_clusters":
                continue
            options = widget_options(row)
            kind = SpinBox if options.pop("widget_type") == "SpinBox" else FloatSpinBox
            field = kind(**options.pop("options"), **options)
            self.fields[row.name] = field
            setattr(self, row.name, field)
        self.seed = SpinBox(label="Seed", min=0, max=2**31 - 1, value=0,
                            tooltip="Same seed and device: the same result")
        self.device = ComboBox(label="Device", choices=list(DEVICES), value="auto",
                               tooltip="auto: a GPU (CUDA, Apple MPS) when there is one, else the CPU")
        self._advanced = Container(widgets=[*self.fields.values(), self.seed, self.device])
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
        for field_name, value in user_values(name).items():
            if field_name in self.fields:
                self.fields[field_name].value = value
        self.preset_help.value = PRESET_HELP.get(name, f"Preset '{name}'.")
        k = DFCConfig.preset(name).n_clusters
        if k is None:
            self.tissues.value = TISSUES_AS_FOUND
        elif isinstance(k, int) and k in _TISSUE_RANGE:
            self.tissues.value = str(k)
        else:
            self.tissues.value = TISSUES_AUTO

    def tissue_count(self):
        """The forced number of tissues, or None for Auto and As found."""
        value = self.tissues.value
        return None if value in (TISSUES_AUTO, TISSUES_AS_FOUND) else int(value)

    def config(self):
        """The :class:`DFCConfig` of the preset with the advanced fields and the tissues applied."""
        values = {name: field.value for name, field in self.fields.items()}
        forced = self.tissue_count()
        if forced is not None:
            if forced > values["n_channels"]:
                from napari_dfcseg.errors import InvalidInputError

                raise InvalidInputError(
                    f"{forced} tissues need at least {forced} feature maps (Advanced): raise "
                    f"{self.n_channels.label} or ask for fewer tissues"
                )
            values["n_clusters"] = forced
        if self.tissues.value == TISSUES_AS_FOUND:
            values["n_clusters"] = PARAMETERS["n_clusters"].none_value  # no merging
        if self.tissues.value == TISSUES_AUTO and supports_auto_tissues():
            values["n_clusters"] = "auto"  # not the hidden field's count: nothing to check it against
        # else: an engine without an automatic count keeps the field's (the preset's)
        return apply_user_values(self.preset.value, values, words="label")

    def engine_mode(self):
        """``"2d"`` or ``"3d"``."""
        return MODES[self.mode.value]
