"""Take the screenshots of docs/usage.md from a real napari window.

Run headless with::

    xvfb-run -a .venv/bin/python docs/make_screenshots.py

Writes docs/img/widget_segmented_phantom.png (the whole window: widget beside
the segmented head phantom) and docs/img/label_table.png (the widget's label
table after naming two labels).
"""

from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_dfcseg.plugin._widget import DFCSegWidget

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
    viewer.window._qt_window.resize(1500, 950)
    [image] = viewer.open_sample("napari-dfcseg", "head_phantom")
    widget = DFCSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="DFC Segmentation", area="right")
    s = widget.settings
    s.image.value = image
    s.preset.value = "fast"
    s.n_clusters.value = 4
    s.min_size.value = 20
    s.device.value = "cpu"
    widget.run()
    wait_until(lambda: not widget.running)
    wait_until(lambda: widget.label_table.table.rowCount() > 0, 60)
    table = widget.label_table.table
    for row, name in enumerate(["CSF", "grey matter", "white matter", "scalp"][: table.rowCount()]):
        table.item(row, 1).setText(name)
    viewer.layers.selection.active = widget.output_layer
    viewer.dims.set_point(0, image.data_to_world((20, 0, 0))[0])
    for _ in range(20):
        QApplication.processEvents()
    viewer.screenshot(str(IMG / "widget_segmented_phantom.png"), canvas_only=False)
    widget.label_table.grab().save(str(IMG / "label_table.png"))
    print("status:", widget.status.text())
    viewer.close()


if __name__ == "__main__":
    main()
