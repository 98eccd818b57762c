"""The npe2 manifest, its contributions and the plugin's import cost."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_manifest_is_the_root_manifest():
    packaged = ROOT / "src" / "napari_dfcseg" / "napari.yaml"
    assert packaged.is_symlink()
    assert packaged.resolve() == (ROOT / "napari.yaml").resolve()


def test_npe2_validates_the_installed_plugin():
    npe2 = Path(sys.executable).with_name("npe2")
    done = subprocess.run([str(npe2), "validate", "napari-dfcseg"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in done.stdout


def test_manifest_declares_reader_writer_widget_and_samples():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-dfcseg")
    assert manifest.display_name == "DFC Segmentation"
    contributions = manifest.contributions
    patterns = contributions.readers[0].filename_patterns
    assert {"*.nii.gz", "*.nrrd", "*.mha", "*.mhd", "*.dcm"} <= set(patterns)
    assert contributions.readers[0].accepts_directories
    assert contributions.writers[0].layer_types == ["labels"]
    assert set(contributions.writers[0].filename_extensions) == {".nii", ".nii.gz"}
    assert {s.key for s in contributions.sample_data} == {"head_phantom", "mni152"}
    # every command points at an importable callable
    for command in contributions.commands:
        assert callable(_resolve(command.python_name))


def _resolve(python_name):
    from importlib import import_module

    module, attr = python_name.split(":")
    return getattr(import_module(module), attr)


def test_importing_the_package_imports_neither_torch_nor_qt():
    code = (
        "import sys, napari_dfcseg, napari_dfcseg.errors;"
        "heavy = [m for m in ('torch', 'PyQt5', 'qtpy', 'napari', 'magicgui') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
