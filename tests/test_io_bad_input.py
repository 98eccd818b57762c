"""Bad input gives one error type with a one-line message naming the file, and writes nothing."""

import gzip
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from conftest import write_dicom_series, write_oblique_nifti
from napari_dfcseg.errors import VolumeIOError
from napari_dfcseg.io import Volume, list_series, read_volume, write_labels


def _missing(tmp_path):
    return tmp_path / "does_not_exist.nii.gz"


def _empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _folder_without_dicom(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not an image\n")
    (folder / "table.csv").write_text("a,b\n1,2\n")
    return folder


def _truncated_nii_gz(tmp_path):
    path, _, _ = write_oblique_nifti(tmp_path / "scan.nii.gz", shape_xyz=(20, 20, 10))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_nii(tmp_path):
    path, _, _ = write_oblique_nifti(tmp_path / "scan.nii", shape_xyz=(20, 20, 10))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    return path


def _jpeg_renamed_nii(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(64, dtype=np.uint8).reshape(8, 8)), str(tmp_path / "photo.jpg"))
    os.rename(tmp_path / "photo.jpg", tmp_path / "photo.nii")
    return tmp_path / "photo.nii"


def _text_renamed_dcm(tmp_path):
    (tmp_path / "report.dcm").write_text("Patient report\n" * 20)
    return tmp_path / "report.dcm"


def _empty_file(tmp_path):
    (tmp_path / "zero.nii.gz").write_bytes(b"")
    return tmp_path / "zero.nii.gz"


def _zero_sized_dimension(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((4, 0, 3))
    header.set_data_dtype(np.int16)
    path = tmp_path / "flat.nii"
    with open(path, "wb") as f:
        header.write_to(f)
        f.write(b"\0" * 4)
    return path


def _dicom_missing_slice(tmp_path):
    series = write_dicom_series(tmp_path / "gap", shape=(5, 6, 6))
    series.files[2].unlink()
    return series.folder


def _dicom_mixed_series(tmp_path):
    write_dicom_series(tmp_path / "mixed", file_prefix="a", description="A")
    write_dicom_series(tmp_path / "mixed", file_prefix="b", description="B")
    return tmp_path / "mixed"


def _itk_file(tmp_path, name, compress, keep):
    """A 6x20x16 int16 volume written by SimpleITK, cut to ``keep`` of its bytes."""
    path = tmp_path / name
    image = sitk.GetImageFromArray(np.arange(6 * 20 * 16, dtype=np.int16).reshape(6, 20, 16))
    sitk.WriteImage(image, str(path), useCompression=compress)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _truncated_nrrd_gz(tmp_path):
    return _itk_file(tmp_path, "scan.nrrd", True, 0.6)


def _truncated_raw_nrrd(tmp_path):
    return _itk_file(tmp_path, "scan.nrrd", False, 0.5)


def _truncated_mha(tmp_path):
    return _itk_file(tmp_path, "scan.mha", False, 0.5)


def _mha_header_cut(tmp_path):
    return _itk_file(tmp_path, "scan.mha", False, 0.02)


def _text_renamed_nrrd(tmp_path):
    (tmp_path / "notes.nrrd").write_text("hello, not an image\n")
    return tmp_path / "notes.nrrd"


@pytest.mark.parametrize("make, problem", [
    (_truncated_nrrd_gz, "the file is truncated"),
    (_truncated_raw_nrrd, "of its 1920 voxels are there"),
    (_truncated_mha, "the file is truncated"),
    (_mha_header_cut, "its header is incomplete or damaged"),
    (_text_renamed_nrrd, "its content is not an image format"),
])
def test_a_damaged_itk_file_is_one_line_in_the_users_words(tmp_path, capfd, make, problem):
    """Not SimpleITK's build path, class address or reader chain; and nothing more on stderr
    (MetaIO prints its reason there: it goes into the message)."""
    path = make(tmp_path)
    with pytest.raises(VolumeIOError) as err:
        read_volume(path)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot read the {path.suffix} file: ") and problem in message
    assert "\n" not in message
    for noise in (".cxx", "SimpleITK-build", "0x", "[nrrd]", "Exception thrown"):
        assert noise not in message
    assert capfd.readouterr().err == ""


def test_native_stderr_of_a_successful_read_is_passed_on_and_of_a_failed_one_goes_in_the_message(capfd):
    from napari_dfcseg.io._errors import library_errors

    with library_errors("a.mha", "read it", native_stderr=True):
        os.write(2, b"ITK warning: something worth seeing\n")
    assert capfd.readouterr().err == "ITK warning: something worth seeing\n"
    with pytest.raises(VolumeIOError, match="^a.mha: cannot read it: the file is truncated: 5 of its 9 bytes"):
        with library_errors("a.mha", "read it", native_stderr=True):
            os.write(2, b"MetaImage: M_ReadElementsData: data not read completely\n   ideal = 9 : actual = 5\n")
            raise RuntimeError("File cannot be read: a.mha for reading.")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "make, problem",
    [
        (_missing, "no such file"),
        (_empty_folder, "no DICOM files"),
        (_folder_without_dicom, "no DICOM files"),
        (_truncated_nii_gz, "cannot read the NIfTI voxels: the file is truncated: its compressed data end early"),
        (_truncated_nii, "truncated"),
        (_jpeg_renamed_nii, "cannot read the NIfTI header: it has no valid NIfTI header"),
        (_text_renamed_dcm, "not a DICOM image"),
        (_empty_file, "empty"),
        (_zero_sized_dimension, "zero-sized dimension"),
        (_dicom_missing_slice, "missing slice"),
        (_dicom_mixed_series, "holds 2 DICOM series"),
    ],
)
def test_bad_input_raises_one_line_volume_io_error_naming_the_file(tmp_path, make, problem):
    path = make(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(VolumeIOError) as err:
        read_volume(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and problem in message
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_list_series_of_a_missing_folder_is_an_io_error(tmp_path):
    with pytest.raises(VolumeIOError, match="no such file"):
        list_series(tmp_path / "nope")


def test_series_choice_for_a_nifti_is_an_error(tmp_path):
    path, _, _ = write_oblique_nifti(tmp_path / "scan.nii.gz")
    with pytest.raises(VolumeIOError, match="applies only to DICOM"):
        read_volume(path, series=2)


def test_label_writer_refusals_write_nothing(tmp_path):
    path, _, _ = write_oblique_nifti(tmp_path / "scan.nii.gz", shape_xyz=(4, 3, 2))
    volume = read_volume(path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(VolumeIOError, match="shape"):
        write_labels(tmp_path / "seg.nii.gz", np.zeros((4, 3, 2), int), like=volume)
    with pytest.raises(VolumeIOError, match="refusing to overwrite"):
        write_labels(path, np.zeros((2, 3, 4), int), like=volume)
    assert sorted(os.listdir(tmp_path)) == before


def _corrupt(data, rng):
    """Flip bytes, truncate, or insert junk: the damage real files suffer."""
    data = bytearray(data)
    mode = rng.integers(3)
    if mode == 0:
        for _ in range(rng.integers(1, 20)):
            data[rng.integers(len(data))] = rng.integers(256)
    elif mode == 1:
        data = data[: rng.integers(len(data))]
    else:
        at = rng.integers(len(data))
        data[at:at] = rng.bytes(int(rng.integers(1, 50)))
    return bytes(data)


def test_fuzzed_nifti_and_dicom_files_raise_only_volume_io_error(tmp_path):
    (tmp_path / "src").mkdir()
    nii_gz, _, _ = write_oblique_nifti(tmp_path / "src" / "scan.nii.gz", shape_xyz=(6, 5, 4))
    nii, _, _ = write_oblique_nifti(tmp_path / "src" / "scan.nii", shape_xyz=(6, 5, 4))
    dicom = write_dicom_series(tmp_path / "src" / "dicom", shape=(1, 8, 8)).files[0]
    sources = [p.read_bytes() for p in (nii_gz, nii, dicom)]
    names = [nii_gz.name, nii.name, dicom.name]
    rng = np.random.default_rng(20240607)
    outcomes = {"read": 0, "refused": 0}
    for n in range(360):
        folder = tmp_path / f"case{n}"
        folder.mkdir()
        path = folder / names[n % 3]
        path.write_bytes(_corrupt(sources[n % 3], rng))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                volume = read_volume(path)
        except VolumeIOError as err:
            assert "\n" not in str(err) and str(path) in str(err)
            outcomes["refused"] += 1
        else:
            assert isinstance(volume, Volume)
            outcomes["read"] += 1
    # most damage must be detected; some (e.g. flipped voxel bytes) is undetectable
    assert outcomes["refused"] > 200 and outcomes["read"] > 0


def test_gzip_with_wrong_header_size_is_refused_without_allocating_it(tmp_path):
    # a header that promises a 2 GB volume inside a tiny .nii.gz
    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 1024))
    header.set_data_dtype(np.int16)
    path = tmp_path / "huge.nii.gz"
    with gzip.open(path, "wb") as f:
        header.write_to(f)
        f.write(b"\0" * 1000)
    with pytest.raises(VolumeIOError, match="corrupt or truncated"):
        read_volume(path)


def _read_or_refuse(path, outcomes, *, names):
    """Read ``path``: a Volume or a one-line VolumeIOError naming one of ``names``; nothing else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            volume = read_volume(path)
    except VolumeIOError as err:
        assert "\n" not in str(err) and any(str(n) in str(err) for n in names), str(err)
        outcomes["refused"] += 1
    else:
        assert isinstance(volume, Volume)
        outcomes["read"] += 1


@pytest.mark.slow
def test_fuzzed_slice_inside_a_valid_dicom_series_raises_only_volume_io_error(tmp_path):
    series = write_dicom_series(tmp_path / "src", shape=(5, 8, 8))
    sources = [f.read_bytes() for f in series.files]
    rng = np.random.default_rng(20261201)
    outcomes = {"read": 0, "refused": 0}
    for n in range(150):
        folder = tmp_path / f"case{n}"
        folder.mkdir()
        victim = int(rng.integers(len(sources)))
        for k, data in enumerate(sources):
            (folder / series.files[k].name).write_bytes(_corrupt(data, rng) if k == victim else data)
        # through the folder and through one intact file of the series
        _read_or_refuse(folder, outcomes, names=[folder])
        intact = folder / series.files[(victim + 1) % len(sources)].name
        _read_or_refuse(intact, outcomes, names=[folder, intact])
    assert outcomes["refused"] > 100 and outcomes["read"] > 0


def test_fuzzed_detached_nrrd_headers_raise_only_volume_io_error(tmp_path):
    header = (
        "NRRD0004\ntype: int16\ndimension: 3\nsizes: 4 3 2\nencoding: raw\nendian: little\n"
        "space: left-posterior-superior\nspace directions: (0.8,0,0) (0,0.8,0) (0,0,2.5)\n"
        "space origin: (-10,20,30)\ndata file: voxels.raw\n"
    ).encode()
    voxels = np.arange(24, dtype="<i2").tobytes()
    rng = np.random.default_rng(20261202)
    outcomes = {"read": 0, "refused": 0}
    for n in range(120):
        folder = tmp_path / f"case{n}"
        folder.mkdir()
        (folder / "voxels.raw").write_bytes(voxels if n % 4 else _corrupt(voxels, rng))
        path = folder / "scan.nhdr"
        path.write_bytes(_corrupt(header, rng))
        _read_or_refuse(path, outcomes, names=[path])
    assert outcomes["refused"] > 40 and outcomes["read"] > 0
