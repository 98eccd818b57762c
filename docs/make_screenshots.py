"""Take the screenshots of docs/usage.md and the README from a real napari window on a real scan.

Run headless from the repository root::

    xvfb-run -a -s "-screen 0 1800x1100x24" .venv/bin/python docs/make_screenshots.py [SCAN]

SCAN defaults to the public brain MR with a tumour
(``../shared/data/real/mr-brain-tumour/image.nrrd``: 23 slices of 6.5 mm,
unmasked). Writes into docs/img/:

- ``widget_segmented.png``: the whole window, the widget beside the segmented scan
  (automatic body outline, tissue count chosen automatically);
- ``widget_running.png``: a run in progress, its live preview on the slice in view;
- ``widget_coronal.png``: the same in a coronal view (head up, as in Slicer);
- ``widget_advanced.png``: the widget's inputs with the Advanced section open;
- ``label_table.png``: the label table after naming a label.
"""

import sys
import warnings
from pathlib import Path

# keep napari's backend deprecation toast out of the pictures
warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from napari_dfcseg.plugin._widget import DFCSegWidget  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
DEFAULT_SCAN = ROOT.parent / "shared" / "data" / "real" / "mr-brain-tumour" / "image.nrrd"


def wait_until(condition, timeout_s=1200):
    import time

    app = QApplication.instance()
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the run did not finish in time")
        app.processEvents()
        time.sleep(0.05)


def settle(n=30):
    for _ in range(n):
        QApplication.processEvents()


def close_toasts(viewer):
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def main(scan=DEFAULT_SCAN):
    IMG.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1700, 1050)
    [image] = viewer.open(str(scan), plugin="napari-dfcseg")
    widget = DFCSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="DFC Segmentation", area="right")
    wait_until(lambda: not widget.warm_up_worker.is_running)
    s = widget.settings
    s.image.value = image
    s.preset.value = "default"
    s.device.value = "cpu"
    # the inputs with the Advanced section open, before the run
    s.advanced.expand(animate=False)
    settle()
    s.grab().save(str(IMG / "widget_advanced.png"))
    s.advanced.collapse(animate=False)
    nz = image.data.shape[0]
    viewer.dims.set_point(0, image.data_to_world((nz // 2 + 2, 0, 0))[0])
    widget.run()
    # the live preview: the slice in view, drawn into the result layer while it trains
    wait_until(lambda: not widget.running or (
        widget.preview.layer is not None and widget.preview.layer.data.any()
        and "Training" in widget.status.text()))
    if widget.running:
        close_toasts(viewer)
        settle()
        viewer.screenshot(str(IMG / "widget_running.png"), canvas_only=False)
    wait_until(lambda: not widget.running)
    wait_until(lambda: widget.label_table.table.rowCount() > 0, 120)
    from napari_dfcseg.plugin._label_table import NAME

    table = widget.label_table.table
    # a name typed in the table goes into the saved label description files
    table.item(table.rowCount() - 1, NAME).setText("brightest tissue")
    viewer.layers.selection.active = widget.output_layer
    close_toasts(viewer)
    settle()
    viewer.screenshot(str(IMG / "widget_segmented.png"), canvas_only=False)
    widget.label_table.grab().save(str(IMG / "label_table.png"))
    viewer.dims.order = (1, 0, 2)  # coronal
    viewer.reset_view()
    viewer.dims.set_point(1, image.data_to_world((0, image.data.shape[1] // 2, 0))[1])
    close_toasts(viewer)
    settle()
    viewer.screenshot(str(IMG / "widget_coronal.png"), canvas_only=False)
    print("status:", widget.status.text())
    print("run record:", widget.output_layer.metadata.get("dfcseg_run"))
    viewer.close()


if __name__ == "__main__":
    main(*sys.argv[1:2])
