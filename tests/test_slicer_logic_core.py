"""The 3D Slicer module's Slicer-free logic (slicer/DFCSegmentation/DFCSegmentationLib/logic_core.py).

The command line it builds is parsed by the real ``dfcseg`` parser; progress
lines come from the real ``--progress json`` writer; geometry conversions are
checked against napari-dfcseg's ``Volume``.  (The Qt widget cannot run here:
see docs/slicer.md.)
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

MODULE_DIR = Path(__file__).resolve().parents[1] / "slicer" / "DFCSegmentation"
sys.path.insert(0, str(MODULE_DIR))

from DFCSegmentationLib import logic_core  # noqa: E402
from DFCSegmentationLib.logic_core import RunParameters, build_command, parse_progress_line  # noqa: E402

from napari_dfcseg.cli import build_parser  # noqa: E402
from napari_dfcseg.cli._machine_progress import MachineProgress  # noqa: E402
from napari_dfcseg.io import Volume  # noqa: E402


def _parse(command):
    assert command[:3] == ["PythonSlicer", "-m", "napari_dfcseg"]
    return build_parser().parse_args(command[3:])


def test_segment_command_is_accepted_by_the_real_parser_with_every_option():
    params = RunParameters(mode="3d", n_tissues=5, device="cpu", seed=7, preset="fast", max_iter=40,
                           mask_path="/tmp/m.nrrd", scribbles_path="/tmp/s.nrrd", save_model_path="/tmp/model.pt")
    args = _parse(build_command("PythonSlicer", "/tmp/in.nrrd", "/tmp/out.seg.nrrd", params))
    assert (args.command, args.input, args.output) == ("segment", "/tmp/in.nrrd", "/tmp/out.seg.nrrd")
    assert (args.mode, args.n_clusters, args.device, args.seed, args.preset, args.max_iter) == (
        "3d", 5, "cpu", 7, "fast", 40)
    assert (args.mask, args.scribbles, args.save_model) == (["/tmp/m.nrrd"], "/tmp/s.nrrd", "/tmp/model.pt")
    assert args.progress == "json" and args.overwrite


def test_auto_tissue_count_leaves_the_engine_to_decide():
    args = _parse(build_command("PythonSlicer", "in.nrrd", "out.seg.nrrd", RunParameters()))
    assert args.n_clusters is None and args.mask is None and args.scribbles is None and args.mode == "2d"


def test_apply_model_command():
    params = RunParameters(apply_model_path="/tmp/model.pt", mask_path="/tmp/m.nrrd", device="cpu")
    args = _parse(build_command("PythonSlicer", "in.nrrd", "out.seg.nrrd", params))
    assert (args.command, args.model, args.input, args.output, args.mask) == (
        "apply", "/tmp/model.pt", "in.nrrd", "out.seg.nrrd", "/tmp/m.nrrd")


@pytest.mark.parametrize("params, match", [
    (RunParameters(mode="4d"), "mode"),
    (RunParameters(n_tissues=0), "n_tissues"),
    (RunParameters(device="tpu"), "device"),
    (RunParameters(apply_model_path="m.pt", scribbles_path="s.nrrd"), "not both"),
])
def test_bad_parameters_are_refused_with_the_field_named(params, match):
    with pytest.raises(ValueError, match=match):
        build_command("PythonSlicer", "in.nrrd", "out.seg.nrrd", params)


def test_progress_lines_written_by_the_engine_parse_back():
    stream = io.StringIO()
    writer = MachineProgress("json", "segment", stream=stream)
    writer(12, 300, {"stage": "train", "loss": 2.71, "n_labels": 9})
    writer(4, 8, {"stage": "label"})
    writer.message("5 labels; wrote out.seg.nrrd")
    first, second, third = (parse_progress_line(line) for line in stream.getvalue().splitlines())
    assert (first.stage, first.iteration, first.total, first.loss, first.labels) == ("train", 12, 300, 2.71, 9)
    assert first.fraction == pytest.approx(0.9 * 12 / 300, abs=1e-4)
    assert logic_core.status_text(first) == "Training 12/300 - loss 2.710 - 9 labels"
    assert second.fraction == pytest.approx(0.95) and logic_core.status_text(second) == "Labelling 4/8"
    assert third.message == "5 labels; wrote out.seg.nrrd"


def test_status_box_gets_a_line_per_stage_boundary_and_every_25_iterations():
    events = [logic_core.ProgressEvent("train", iteration=i, total=300) for i in range(1, 301)]
    logged = [e.iteration for e in events if logic_core.worth_logging(e)]
    assert logged == [1, *range(25, 301, 25)]
    assert logic_core.worth_logging(logic_core.ProgressEvent("message", message="done"))


def test_engine_warnings_on_stderr_are_recognised(capsys):
    from napari_dfcseg.cli._common import warning_line

    warning_line(UserWarning("the spacing differs from the model's"), UserWarning, "x.py", 1)
    line = capsys.readouterr().err
    assert logic_core.parse_warning_line(line) == "the spacing differs from the model's"
    assert logic_core.parse_warning_line("dfcseg: error: INPUT x: no such file") is None
    assert logic_core.parse_warning_line(b"plain text") is None


@pytest.mark.parametrize("line", ["", "hello", "{not json", "[1, 2]", '{"no_stage": 1}', b"\xff\xfe"])
def test_other_output_is_not_progress(line):
    assert parse_progress_line(line) is None


def test_slicer_filter_progress_lines_and_out_of_range_values():
    assert parse_progress_line("<filter-progress>0.25</filter-progress>\n").fraction == 0.25
    assert parse_progress_line(json.dumps({"stage": "train", "fraction": 1.7})).fraction == 1.0
    assert parse_progress_line('{"stage": "train", "loss": NaN}').loss is None


def _oblique_left_handed_volume():
    angle = np.deg2rad(25.0)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    return Volume.from_array(np.zeros((4, 5, 6)), spacing=(3.0, 0.8, 1.1), origin=(12.0, -40.5, 7.25),
                             direction=rotation @ np.diag([1.0, -1.0, 1.0]))


def test_ijk_to_ras_conversions_match_volume_geometry():
    volume = _oblique_left_handed_volume()
    matrix = logic_core.ijk_to_ras_from_geometry(volume.spacing, volume.origin, volume.direction)
    np.testing.assert_allclose(matrix, volume.affine_ras, atol=1e-12)
    spacing, origin, direction = logic_core.geometry_from_ijk_to_ras(matrix)
    np.testing.assert_allclose(spacing, volume.spacing)
    np.testing.assert_allclose(origin, volume.origin)
    np.testing.assert_allclose(direction, volume.direction, atol=1e-12)


def test_same_grid_accepts_a_k_flipped_copy_and_rejects_a_shift():
    volume = _oblique_left_handed_volume()
    dims = volume.shape[::-1]
    flipped = volume.affine_ras.copy()
    flipped[:3, 3] += flipped[:3, 2] * (dims[2] - 1)  # start at the last slice ...
    flipped[:3, 2] *= -1  # ... and step backwards: the same voxels, indexed the other way
    assert logic_core.same_grid(volume.affine_ras, dims, flipped, dims)
    shifted = volume.affine_ras.copy()
    shifted[:3, 3] += [0.0, 0.0, 0.5]
    assert not logic_core.same_grid(volume.affine_ras, dims, shifted, dims)
    assert not logic_core.same_grid(volume.affine_ras, dims, volume.affine_ras, (6, 5, 5))


def test_version_and_install_rules():
    assert not logic_core.slicer_version_ok(5, 8) and logic_core.slicer_version_ok(5, 10)
    assert logic_core.install_method(5, 10) == "pip_install" and logic_core.install_method(5, 11) == "pydeps"
    assert set(logic_core.NEVER_REPLACE) == {"SimpleITK", "numpy", "torch"}


def test_module_files_have_the_extension_wizard_layout():
    root = MODULE_DIR.parent
    cmake = (root / "CMakeLists.txt").read_text()
    for needle in ("EXTENSION_HOMEPAGE", 'EXTENSION_CATEGORY "Segmentation"', "EXTENSION_DESCRIPTION",
                   'EXTENSION_DEPENDS "PyTorch"', "add_subdirectory(DFCSegmentation)"):
        assert needle in cmake
    module_cmake = (MODULE_DIR / "CMakeLists.txt").read_text()
    for listed in ("${MODULE_NAME}Lib/logic_core.py", "${MODULE_NAME}Lib/mrml_io.py",
                   "Resources/UI/${MODULE_NAME}.ui", "Resources/Icons/${MODULE_NAME}.png"):
        assert listed in module_cmake
        path = MODULE_DIR / listed.replace("${MODULE_NAME}", "DFCSegmentation")
        assert path.is_file(), path
    png = (MODULE_DIR / "Resources" / "Icons" / "DFCSegmentation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 200
    source = (MODULE_DIR / "DFCSegmentation.py").read_text()
    for cls in ("class DFCSegmentation(", "class DFCSegmentationParameterNode", "class DFCSegmentationWidget(",
                "class DFCSegmentationLogic(", "class DFCSegmentationTest("):
        assert cls in source
    compile(source, "DFCSegmentation.py", "exec")


def test_ui_names_every_widget_the_module_uses_and_binds_parameters_that_exist():
    import re
    import xml.etree.ElementTree as ET

    tree = ET.parse(MODULE_DIR / "Resources" / "UI" / "DFCSegmentation.ui")
    names = {w.get("name") for w in tree.iter("widget")}
    source = (MODULE_DIR / "DFCSegmentation.py").read_text()
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used <= names, used - names
    bound = {p.find("string").text for p in tree.iter("property") if p.get("name") == "SlicerParameterName"}
    block = source[source.index("class DFCSegmentationParameterNode"):source.index("# Widget")]
    fields = set(re.findall(r"^    (\w+):", block, re.M))
    assert bound <= fields, bound - fields
