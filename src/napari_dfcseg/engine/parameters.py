"""The user-facing parameters: ONE table, from which the CLI options and the widget fields are built,
and settings files (torch-free).

:data:`USER_PARAMETERS` lists the parameters a user may set in a front end:
name, type, range, help text, CLI flag, widget label and what ``None``
means. The front ends never spell a parameter themselves:

- the CLI adds one option per row (``cli/_options.py``) and turns the options
  the user gave into a config with :func:`apply_user_values`;
- the widget builds one field per row (:func:`widget_options`), fills them
  from a preset with :func:`user_values` and reads them back with
  :func:`apply_user_values`.

So the same choices give the same :class:`~.config.DFCConfig` in both
(``tests/test_front_end_config.py``).

Settings files (:func:`save_config`, :func:`load_config`) hold a whole
config as JSON (TOML is read too): ``dfcseg segment --config FILE`` and the
widget's settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError
from .config import DFCConfig, resolve_config

__all__ = ["UserParameter", "USER_PARAMETERS", "PARAMETERS", "apply_user_values", "user_values",
           "widget_options", "save_config", "load_config", "CONFIG_SUFFIXES"]

#: suffixes of settings files (:func:`load_config` reads both, :func:`save_config` writes JSON)
CONFIG_SUFFIXES = (".json", ".toml")
_FORMAT = "napari-dfcseg-config"


@dataclass(frozen=True)
class UserParameter:
    """One user-facing parameter.

    Attributes
    ----------
    name : str
        The :class:`~.config.DFCConfig` field, or ``"anchor"`` (set through
        :meth:`~.config.DFCConfig.with_anchor`, read as ``anchor_weight``).
    type : type
        ``int`` or ``float``.
    minimum, maximum : number
        The accepted range (inclusive).
    help : str
        One line, for ``--help`` and the widget's tooltip.
    label : str
        The widget's label.
    metavar : str
        The CLI's placeholder.
    none_value : number or None
        The value a front end shows for the field's ``None`` (e.g. 0 for
        ``n_clusters``: no merging); None when the field is never None.
    step : float or None
        The widget's step for a float.
    auto : bool
        ``"auto"`` is also a value (``n_clusters``: chosen per scan).
    """

    name: str
    type: type
    minimum: float
    maximum: float
    help: str
    label: str
    metavar: str = "N"
    none_value: object = None
    step: float | None = None
    auto: bool = False

    @property
    def flag(self) -> str:
        """The CLI option, e.g. ``--max-iter``."""
        return "--" + self.name.replace("_", "-")

    def check(self, value):
        """``value`` as :attr:`type`, inside the range; ``InvalidInputError`` naming :attr:`flag` if not."""
        if self.auto and isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInputError(f"{self.flag}: must be a number, got {value!r}")
        if self.type is int and value != int(value):
            raise InvalidInputError(f"{self.flag}: must be an integer, got {value!r}")
        value = self.type(value)
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum:
            show = str if self.type is int else "{:g}".format
            raise InvalidInputError(f"{self.flag}: must be between {show(self.minimum)} and"
                                    f" {show(self.maximum)}, got {show(value)}")
        return value

    def parse(self, text: str):
        """A command-line string as a checked value."""
        if self.auto and text.strip().lower() == "auto":
            return "auto"
        try:
            value = self.type(text)
        except ValueError:
            kind = "an integer" if self.type is int else "a number"
            if self.auto:
                kind = "'auto' or " + kind
            raise InvalidInputError(f"{self.flag}: not {kind}: {text!r}") from None
        return self.check(value)


_W = dict(type=float, minimum=0.0, maximum=100.0, metavar="W")

#: The table. Order = the order of the widget's fields and of ``--help``.
USER_PARAMETERS: tuple[UserParameter, ...] = (
    UserParameter("n_channels", int, 2, 512, "feature channels of every layer; also the most"
                  " clusters a run can give", "Feature maps"),
    UserParameter("n_conv", int, 1, 8, "convolution blocks before the 1x1 head", "Network layers"),
    UserParameter("max_iter", int, 1, 100_000, "maximum number of training iterations",
                  "Training steps"),
    UserParameter("min_labels", int, 1, 512, "stop once the run shows K labels or fewer",
                  "Stop at labels", metavar="K"),
    UserParameter("n_clusters", int, 0, 512, "number of labels: auto (chosen per scan from its"
                  " intensities, the default preset's), K (the clusters merged down to K) or 0"
                  " (no merging)", "Clusters (0 = no merging)", metavar="auto|K", none_value=0,
                  auto=True),
    UserParameter("w_continuity", help="weight of the neighbour agreement term", step=0.05,
                  label="Smoothness", **_W),
    UserParameter("w_continuity_3d", help="the continuity weight in 3D mode", step=0.05,
                  label="Smoothness 3D", **_W),
    UserParameter("w_scribble", help="weight of the scribble term", step=0.1,
                  label="Scribble weight", **_W),
    UserParameter("anchor", help="weight of the intensity mixture in the self-labels (keeps thin"
                  " classes such as CSF; 0: off, the paper's argmax)", step=0.1,
                  label="Intensity anchor", **_W),
    UserParameter("min_size", int, 0, 10_000_000, "merge connected regions smaller than N voxels"
                  " into a neighbour (0: keep all)", "Min island (voxels)"),
)

#: name -> row of :data:`USER_PARAMETERS`
PARAMETERS = {p.name: p for p in USER_PARAMETERS}


def _name(row: UserParameter, words: str) -> str:
    """How the front end ``words`` names ``row``: ``"flag"`` (CLI), ``"label"`` (widget), ``"name"`` (file)."""
    return {"flag": row.flag, "label": row.label, "name": row.name}[words]


def _check_together(config, changes, anchor, given, words) -> None:
    """The rules between parameters that each row's range cannot check, in the front end's words.

    A run gives at most as many labels as feature channels, and the intensity
    anchor's components are labels too: checked here so that the message names
    the options / fields the user set, not :class:`~.config.DFCConfig` fields.
    """
    def said(name, value):
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        text = _name(PARAMETERS[name], words) + (" " if words == "flag" else " = ") + shown
        return text if name in given else f"{text} (from the preset or settings file)"

    channels = changes.get("n_channels", config.n_channels)
    clusters = changes.get("n_clusters", config.n_clusters)
    if isinstance(clusters, int) and clusters > channels:
        raise InvalidInputError(
            f"{said('n_clusters', clusters)}: more labels than feature channels"
            f" ({said('n_channels', channels)}): raise {_name(PARAMETERS['n_channels'], words)} to at least"
            f" {clusters} or ask for fewer labels")
    weight = config.anchor_weight if anchor is None else anchor
    components = (config.mixture_components or 3) if weight > 0 else 0
    if components > channels:
        raise InvalidInputError(
            f"{said('anchor', weight)}: its {components} intensity classes are more than the"
            f" feature channels ({said('n_channels', channels)}): raise"
            f" {_name(PARAMETERS['n_channels'], words)} to at least {components} or set"
            f" {_name(PARAMETERS['anchor'], words)} to 0")


def apply_user_values(config, values, *, words="flag") -> DFCConfig:
    """``config`` with the user's ``values`` (name -> value) applied: the one ``None`` rule.

    A value equal to a row's ``none_value`` sets the field to None; ``anchor``
    goes through :meth:`~.config.DFCConfig.with_anchor`. Names not in the
    table, or values out of range, raise ``InvalidInputError`` naming the
    parameter as the front end does: ``words="flag"`` (``--n-clusters``, the
    CLI), ``"label"`` (the widget's labels) or ``"name"`` (a settings file's
    keys). Pass only the values the user set (the CLI) or all of them (the widget).

    >>> from napari_dfcseg.engine.config import DFCConfig
    >>> cfg = apply_user_values("default", {"n_clusters": 0, "anchor": 0.0, "max_iter": 80})
    >>> cfg.n_clusters, cfg.mixture_components, cfg.max_iter
    (None, None, 80)
    """
    config = resolve_config(config)
    changes, anchor = {}, None
    for name, value in values.items():
        if name not in PARAMETERS:
            raise InvalidInputError(f"unknown parameter {name!r}; known: {', '.join(PARAMETERS)}")
        row = PARAMETERS[name]
        try:
            value = row.check(value)
        except InvalidInputError as exc:
            if words == "flag":
                raise
            raise InvalidInputError(str(exc).replace(row.flag, _name(row, words), 1)) from None
        if row.none_value is not None and value == row.none_value:
            value = None
        if name == "anchor":
            anchor = value or 0.0
        else:
            changes[name] = value
    _check_together(config, changes, anchor, set(values), words)
    # the user's iteration count holds on every scan, CT included: any the CLI was given
    # (it passes only those), one other than the config's from the widget (it passes all)
    if "max_iter" in changes and (words == "flag" or changes["max_iter"] != config.max_iter):
        changes["ct_max_iter"] = None
    if changes:
        config = dataclasses.replace(config, **changes)
    return config if anchor is None else config.with_anchor(anchor)


def user_values(config) -> dict:
    """What a front end shows for ``config``: name -> value, ``None`` as the row's ``none_value``.

    ``anchor`` is the config's anchor weight, ``w_continuity_3d`` the weight 3D mode uses.
    ``apply_user_values(config, user_values(config))`` labels as ``config`` does.
    """
    config = resolve_config(config)
    out = {}
    for row in USER_PARAMETERS:
        if row.name == "anchor":
            value = config.anchor_weight
        elif row.name == "w_continuity_3d":
            value = config.continuity_weight("3d")
        else:
            value = getattr(config, row.name)
        out[row.name] = row.none_value if value is None else value
    return out


def widget_options(row: UserParameter) -> dict:
    """magicgui keyword arguments of the field for ``row``.

    ``magicgui.widgets.create_widget(**widget_options(row))``, or
    ``SpinBox(**...)`` / ``FloatSpinBox(**...)`` after popping ``widget_type``.
    """
    options = {"widget_type": "SpinBox" if row.type is int else "FloatSpinBox",
               "name": row.name, "label": row.label, "tooltip": row.help[:1].upper() + row.help[1:],
               "options": {"min": row.minimum, "max": row.maximum}}
    if row.step is not None:
        options["options"]["step"] = row.step
    return options


def save_config(config, path, *, overwrite=False) -> Path:
    """Write ``config`` (every field) to the JSON settings file ``path``, atomically.

    Refuses an existing file unless ``overwrite``; ``InvalidInputError`` for a
    suffix other than ``.json``.
    """
    config = resolve_config(config)
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise InvalidInputError(f"settings file {path}: must end with .json")
    if path.exists() and not overwrite:
        raise InvalidInputError(f"settings file {path} exists: refusing to overwrite it")
    text = json.dumps({"format": _FORMAT, "version": 1, **config.to_dict()}, indent=2)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_config(path) -> DFCConfig:
    """Read a settings file: JSON (as :func:`save_config` writes) or TOML.

    The file holds :class:`~.config.DFCConfig` fields and, optionally,
    ``preset`` (the base the fields change; default ``"default"``) and the
    table's ``anchor``. Fields it does not name keep the preset's values.
    Every problem is one ``InvalidInputError`` naming the file.

    Examples
    --------
    A hand-written ``settings.toml``::

        preset = "fast"
        n_clusters = 4
        anchor = 0.5
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"settings file {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".toml":
            import tomllib  # Python >= 3.11

            values = tomllib.loads(text)
        else:
            values = json.loads(text)
    except ImportError:
        raise InvalidInputError(f"settings file {path}: reading TOML needs Python 3.11; use JSON")
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, TOMLDecodeError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInputError(f"settings file {path}: cannot read it ({first})") from None
    if not isinstance(values, dict):
        raise InvalidInputError(f"settings file {path}: must hold a table of settings")
    if values.pop("format", _FORMAT) != _FORMAT:
        raise InvalidInputError(f"settings file {path}: not a napari-dfcseg settings file")
    values.pop("version", None)
    try:
        config = resolve_config(values.pop("preset", None))
        anchor = {"anchor": values.pop("anchor")} if "anchor" in values else {}
        config = DFCConfig.from_dict({**config.to_dict(), **values})
        return apply_user_values(config, anchor, words="name")
    except InvalidInputError as exc:  # the file's keys are DFCConfig's field names
        raise InvalidInputError(f"settings file {path}: {str(exc).removeprefix('DFCConfig.')}") from None
    except TypeError as exc:  # e.g. a list where a number belongs
        raise InvalidInputError(f"settings file {path}: {exc}") from None
