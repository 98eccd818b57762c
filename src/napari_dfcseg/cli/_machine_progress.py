"""Machine-readable progress on stdout (``--progress json`` / ``--progress slicer``).

For programs that run ``dfcseg`` as a child process (the 3D Slicer module, job
schedulers): stdout then carries only progress lines, flushed one at a time.

``json``: one JSON object a line, for example::

    {"stage": "train", "iteration": 12, "total": 300, "fraction": 0.036, "loss": 2.71, "labels": 9}
    {"stage": "label", "iteration": 3, "total": 8, "fraction": 0.94}
    {"stage": "message", "message": "5 labels after 120 iterations (stopped by min_labels); wrote ..."}

``stage`` is the engine's stage ("train": iterations of the network,
"label": labelling the volume with the trained network); ``iteration`` /
``total`` count within the stage; ``fraction`` (0-1) is the whole run's,
monotone; ``loss`` and ``labels`` (clusters still in use) come with training
iterations.  ``slicer``: the same run as 3D Slicer's CLI progress lines,
``<filter-progress>0.036</filter-progress>``.  Errors stay one line on stderr
and the exit status says how the run ended (0, 2, 130).
"""

from __future__ import annotations

import json
import math
import sys

__all__ = ["MachineProgress", "PROGRESS_MODES", "TRAIN_SHARE"]

PROGRESS_MODES = ("bar", "json", "slicer", "none")
#: share of the whole run's fraction given to training; labelling gets the rest
TRAIN_SHARE = 0.9


def _number(value):
    """A JSON-safe float (NaN/inf, which JSON lacks, become None)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class MachineProgress:
    """The engine's ``progress(i, n, info)`` callback, written as lines on ``stream``.

    Parameters
    ----------
    mode : {"json", "slicer"}
    desc : str
        Stage reported when the engine's ``info`` names none (the sub-command).
    stream : file, optional
        Default ``sys.stdout``.
    """

    def __init__(self, mode, desc, stream=None):
        if mode not in ("json", "slicer"):
            raise ValueError(f"mode must be 'json' or 'slicer'; got {mode!r}")
        self.mode = mode
        self.desc = desc
        self.stream = stream
        self.fraction = 0.0

    def _write(self, line):
        stream = self.stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()

    def _overall(self, stage, i, n):
        within = min(max(i / n, 0.0), 1.0) if n else 0.0
        if stage == "train":
            value = TRAIN_SHARE * within
        elif stage == "label":
            value = TRAIN_SHARE + (1.0 - TRAIN_SHARE) * within
        else:
            value = within
        # a run that stops early jumps from training to labelling; never go backwards
        self.fraction = max(self.fraction, value)
        return self.fraction

    def __call__(self, i, n, info=None):
        info = info if isinstance(info, dict) else {}
        stage = str(info.get("stage") or self.desc)
        fraction = self._overall(stage, i, n)
        if self.mode == "slicer":
            self._write(f"<filter-progress>{fraction:.4f}</filter-progress>")
            return
        event = {"stage": stage, "iteration": int(i), "total": int(n or 0), "fraction": round(fraction, 4)}
        if "loss" in info:
            event["loss"] = _number(info["loss"])
        if "n_labels" in info:
            event["labels"] = int(info["n_labels"])
        self._write(json.dumps(event))

    def message(self, text):
        """A summary line: a ``message`` event in json mode, nothing in slicer mode."""
        if self.mode == "json":
            self._write(json.dumps({"stage": "message", "message": str(text)}))

    def close(self):
        """Nothing to release (same interface as the progress bar)."""
