"""Take the screenshots of docs/usage.md from a real napari window.

Run headless with::

    xvfb-run -a -s "-screen 0 1800x1100x24" .venv/bin/python docs/make_screenshots.py

Writes docs/img/widget_segmented_phantom.png (the whole window: widget beside
the segmented head phantom), docs/img/widget_advanced.png (the inputs with the
Advanced section open) and docs/img/label_table.png (the widget's label table
after naming a label).
"""

import warnings
from pathlib import Path

# keep napari's backend deprecation toast out of the pictures
warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from napari_dfcseg.plugin._widget import DFCSegWidget  # noqa: E402

IMG = Path(__file__).resolve().parent / "img"


def wait_until(condition, timeout_s=600):
    import time

    app = QApplication.instance()
    end = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the run did not finish in time")
        app.processEvents()
        time.sleep(0.05)


def main():
    IMG.mkdir(exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1700, 1000)
    [image] = viewer.open_sample("napari-dfcseg", "head_phantom")
    widget = DFCSegWidget(viewer)
    widget.setMinimumWidth(500)
    viewer.window.add_dock_widget(widget, name="DFC Segmentation", area="right")
    s = widget.settings
    s.image.value = image
    s.preset.value = "default"
    s.n_clusters.value = 5
    s.min_size.value = 20
    s.device.value = "cpu"
    # the inputs with the Advanced section open, before the run
    widget.settings.advanced.expand(animate=False)
    for _ in range(20):
        QApplication.processEvents()
    widget.settings.grab().save(str(IMG / "widget_advanced.png"))
    widget.settings.advanced.collapse(animate=False)
    widget.run()
    wait_until(lambda: not widget.running)
    wait_until(lambda: widget.label_table.table.rowCount() > 0, 60)
    table = widget.label_table.table
    # a name typed in the table goes into the saved label description files;
    # label 1 (the darkest) is the air around the head, as there is no mask
    table.item(0, 1).setText("background")
    viewer.layers.selection.active = widget.output_layer
    viewer.dims.set_point(0, image.data_to_world((20, 0, 0))[0])
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    for _ in range(20):
        QApplication.processEvents()
    viewer.screenshot(str(IMG / "widget_segmented_phantom.png"), canvas_only=False)
    widget.label_table.grab().save(str(IMG / "label_table.png"))
    print("status:", widget.status.text())
    viewer.close()


if __name__ == "__main__":
    main()
