"""Reader hardening (issue 15): damaged files are errors that name them, never silent wrong output."""

import gzip
import os
import shutil
import sys
import warnings
import zlib

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import rotation_matrix, write_dicom_series
from napari_dfcseg.errors import VolumeIOError
from napari_dfcseg.io import list_series, read_volume

REAL = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data", "real")


# ----------------------------------------------------------------- .nii.gz integrity
def _nii_gz(tmp_path, name="scan.nii.gz"):
    data = np.random.default_rng(0).integers(0, 4000, (24, 20, 16)).astype(np.int16)
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path, data


def test_nii_gz_without_its_gzip_trailer_is_an_error(tmp_path):
    path, _ = _nii_gz(tmp_path)
    path.write_bytes(path.read_bytes()[:-8])  # CRC-32 and ISIZE gone: the file was cut short
    with pytest.raises(VolumeIOError, match=r"scan.nii.gz: damaged .nii.gz: .*ends before its trailer"):
        read_volume(path)


def test_nii_gz_failing_its_crc_is_an_error_although_it_decompresses(tmp_path):
    # one voxel really differs: re-deflate changed voxels but keep the original trailer
    path, data = _nii_gz(tmp_path)
    raw = path.read_bytes()
    header_end = 10  # nibabel writes a plain 10-byte gzip header (no FNAME field)
    assert raw[3] == 0
    payload = bytearray(gzip.decompress(raw))
    payload[-2] ^= 0x01  # the last voxel, low byte
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflate.compress(bytes(payload)) + deflate.flush()
    path.write_bytes(raw[:header_end] + body + raw[-8:])
    with pytest.raises(VolumeIOError, match="CRC-32 check failed"):
        read_volume(path)


def test_intact_nii_gz_reads_and_only_its_own_bytes_are_checked(tmp_path):
    path, data = _nii_gz(tmp_path)
    np.testing.assert_array_equal(read_volume(path).array, data.T)


# ----------------------------------------------------------------- damaged DICOM slices
def _damage_pixels(path):
    """Cut the file inside its pixel data: the header (and its SeriesInstanceUID) stay intact."""
    path.write_bytes(path.read_bytes()[:-40])


@pytest.mark.parametrize("which", [0, 7, 3])
def test_a_damaged_slice_carrying_the_series_uid_is_an_error_naming_it(tmp_path, which):
    series = write_dicom_series(tmp_path / "ct", shape=(8, 6, 6))
    _damage_pixels(series.files[which])
    with pytest.raises(VolumeIOError) as err:
        read_volume(series.folder)
    message = str(err.value)
    assert "cannot be read" in message and str(series.files[which]) in message and "\n" not in message


def test_a_damaged_slice_whose_series_is_unknown_is_named_in_a_warning(tmp_path):
    series = write_dicom_series(tmp_path / "ct", shape=(8, 6, 6))
    series.files[7].write_bytes(b"\0" * 300)  # nothing of it is left, not even its UID
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\).*slice007.dcm"):
        volume = read_volume(series.folder)
    assert volume.shape == (7, 6, 6)


def test_a_lone_damaged_file_is_an_error_naming_it(tmp_path):
    series = write_dicom_series(tmp_path / "one", shape=(1, 6, 6))
    _damage_pixels(series.files[0])
    with pytest.raises(VolumeIOError, match=r"slice000.dcm: corrupt DICOM file: element \(7FE0,0010\) declares 72 bytes, beyond the end"):
        read_volume(series.files[0])


def test_screened_slice_order_is_gdcms_order(tmp_path):
    # our pydicom-based sort must give GDCM's ImagePositionPatient order exactly
    rotations = [rotation_matrix(), np.eye(3), np.diag([1.0, -1.0, -1.0]), rotation_matrix((90, 0, 0))]
    folders = []
    for n, rotation in enumerate(rotations):
        series = write_dicom_series(tmp_path / f"s{n}", shape=(7, 5, 5), rotation=rotation)
        order = np.random.default_rng(n).permutation(len(series.files))
        for file, new in zip(series.files, order):  # file names no longer follow position
            file.rename(file.with_name(f"x{new:03d}.dcm"))
        folders.append(series.folder)
    real = os.path.join(REAL, "mr-head-sagittal-dicom")
    if os.path.isdir(real):
        folders.append(real)
    for folder in folders:
        uid = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))[0]
        gdcm = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid))
        assert list(list_series(folder)[0].files) == gdcm


# ----------------------------------------------------------------- allocation bound
def _with_junk_element(path, length):
    """Append an element with a garbage VR declaring ``length`` bytes, as a fuzzer found."""
    junk = (0x58C5).to_bytes(2, "little") + (0x8FD6).to_bytes(2, "little") + b"\x8f\x01"
    path.write_bytes(path.read_bytes() + junk + length.to_bytes(4, "little") + b"\x07" * 20)


def _peak_rss_mb_reading(path):
    """Read ``path`` in a forked child; return (its peak RSS in MB, what happened)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                read_volume(path)
            outcome = b"read"
        except VolumeIOError as err:
            outcome = b"VolumeIOError " + str(err).encode()[:300]
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            outcome = type(err).__name__.encode()
        os.write(write_end, outcome)
        os._exit(0)
    os.close(write_end)
    _, _, usage = os.wait4(pid, 0)
    outcome = os.read(read_end, 1000).decode()
    os.close(read_end)
    return usage.ru_maxrss / 1024, outcome


@pytest.mark.skipif(sys.platform != "linux", reason="peak memory via fork/wait4 on Linux")
def test_corrupt_element_length_is_refused_before_gdcm_allocates_it(tmp_path):
    baseline, outcome = _peak_rss_mb_reading(write_dicom_series(tmp_path / "ok", shape=(1, 8, 8)).files[0])
    assert outcome == "read"
    path = write_dicom_series(tmp_path / "bad", shape=(1, 8, 8)).files[0]
    _with_junk_element(path, 914_102_164)  # GDCM allocated 960 MB for this 1.2 kB file
    peak, outcome = _peak_rss_mb_reading(path)
    assert outcome.startswith("VolumeIOError") and "no valid VR" in outcome
    assert peak < baseline + 50, f"peak {peak:.0f} MB vs {baseline:.0f} MB for a valid file"


def test_pixel_data_shorter_than_the_declared_image_is_refused(tmp_path):
    path = write_dicom_series(tmp_path / "s", shape=(1, 8, 8)).files[0]
    ds = pydicom.dcmread(path)
    ds.Rows = 4000  # declares 4000x8 pixels, holds 8x8
    ds.save_as(path)
    with pytest.raises(VolumeIOError, match=r"need 64000 bytes of pixel data, the file holds 128"):
        read_volume(path)


# ----------------------------------------------------------------- geometry tags
@pytest.mark.parametrize("spacing", [["0", "0.7"], ["-0.7", "0.7"]])
def test_non_positive_pixel_spacing_is_refused(tmp_path, spacing):
    series = write_dicom_series(tmp_path / "s", shape=(3, 6, 6))
    for file in series.files:
        ds = pydicom.dcmread(file)
        ds.PixelSpacing = spacing
        ds.save_as(file)
    with pytest.raises(VolumeIOError, match=r"PixelSpacing \(0028,0030\).*must be two positive"):
        read_volume(series.files[0])
    with pytest.raises(VolumeIOError, match="PixelSpacing"):
        read_volume(series.folder)


def _mosaic(path, tiles=4):
    """A Siemens-style mosaic: ImageType MOSAIC and NumberOfImagesInMosaic in the CSA block."""
    series = write_dicom_series(path.parent / "tmp", shape=(1, 16, 16), modality="MR", slope=1, intercept=0)
    ds = pydicom.dcmread(series.files[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    ds.Manufacturer = "SIEMENS"
    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0A, "US", tiles)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    shutil.rmtree(series.folder)
    return path


def test_siemens_mosaic_is_refused_with_what_to_do(tmp_path):
    path = _mosaic(tmp_path / "fmri" / "mosaic.dcm")
    with pytest.raises(VolumeIOError, match=r"mosaic.dcm: a Siemens mosaic \(4 slices tiled.*dcm2niix"):
        read_volume(path)
    with pytest.raises(VolumeIOError, match=r"Siemens mosaic"):
        read_volume(path.parent)


# ----------------------------------------------------------------- NRRD / MetaImage headers
def _raw_and_header(folder, data_file):
    folder.mkdir(parents=True, exist_ok=True)
    header = folder / "scan.nhdr"
    header.write_text(
        "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 2 2\nencoding: raw\nspace: left-posterior-superior\n"
        f"space directions: (1,0,0) (0,1,0) (0,0,1)\ndata file: {data_file}\n"
    )
    return header


def test_detached_nrrd_reads_a_data_file_beside_it(tmp_path):
    header = _raw_and_header(tmp_path / "scan", "voxels.raw")
    (tmp_path / "scan" / "voxels.raw").write_bytes(bytes(range(8)))
    assert read_volume(header).array.ravel().tolist() == list(range(8))


@pytest.mark.parametrize("kind", ["absolute", "parent", "list"])
def test_detached_nrrd_may_not_read_files_outside_its_folder(tmp_path, kind):
    secret = tmp_path / "private" / "secret.raw"
    secret.parent.mkdir()
    secret.write_bytes(b"PASSWORD")
    name = {"absolute": str(secret), "parent": "../private/secret.raw", "list": "LIST"}[kind]
    header = _raw_and_header(tmp_path / "scan", name)
    if kind == "list":
        header.write_text(header.read_text() + "\n../private/secret.raw\n")
    with pytest.raises(VolumeIOError, match=r"scan.nhdr: 'data file:' names .*(absolute|outside)"):
        read_volume(header)


def test_metaimage_may_not_read_files_outside_its_folder(tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"PASSWORD")
    header = tmp_path / "scan" / "scan.mhd"
    header.parent.mkdir()
    header.write_text(
        "ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\n"
        f"ElementDataFile = {secret}\n"
    )
    with pytest.raises(VolumeIOError, match=r"ElementDataFile names .*absolute"):
        read_volume(header)


# ----------------------------------------------------------------- multi-frame and 4D
def write_enhanced_mr(path, frames=5, rows=8, cols=6, spacing=(3.0, 0.9, 0.8), series_uid=None, seed=0):
    """One Enhanced MR Image Storage file: ``frames`` slices stacked along z, geometry per frame."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), series_uid or generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality, ds.SeriesDescription, ds.InstanceNumber = "MR", "Enhanced T1", 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    measures = Dataset()
    measures.PixelSpacing = [str(spacing[1]), str(spacing[2])]
    measures.SliceThickness = str(spacing[0])
    plane = Dataset()
    plane.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([plane])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in range(frames):
        position = Dataset()
        position.ImagePositionPatient = ["-10", "20", str(30 + k * spacing[0])]
        item = Dataset()
        item.PlanePositionSequence = Sequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    pixels = np.random.default_rng(seed).integers(0, 1000, (frames, rows, cols)).astype(np.uint16)
    ds.PixelData = pixels.tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return pixels


def test_folder_of_multiframe_files_lists_them_and_reads_the_one_picked(tmp_path):
    folder = tmp_path / "enhanced"
    folder.mkdir()
    uid = generate_uid()
    pixels = [write_enhanced_mr(folder / f"volume{k}.dcm", series_uid=uid, seed=k) for k in range(3)]
    with pytest.raises(VolumeIOError) as err:
        read_volume(folder)
    message = str(err.value)
    assert "holds 3 multi-frame DICOM files, each a separate volume" in message
    assert "--series NUMBER" in message and message.count("multi-frame file of 5 frames") == 3
    assert "lack ImagePositionPatient" not in message
    volume = read_volume(folder, series=2)
    np.testing.assert_array_equal(volume.array, pixels[1])
    assert volume.spacing == pytest.approx((3.0, 0.9, 0.8))


def test_4d_nifti_reads_the_volume_asked_for(tmp_path):
    data = np.random.default_rng(0).integers(0, 1000, (5, 4, 3, 7)).astype(np.int16)
    path = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])), str(path))
    with pytest.raises(VolumeIOError, match=r"7 volumes.*--volume N \(volume=N in Python\), N = 1..7"):
        read_volume(path)
    np.testing.assert_array_equal(read_volume(path, volume=3).array, data[..., 2].T)
    with pytest.raises(VolumeIOError, match="no volume 8: the image holds 7"):
        read_volume(path, volume=8)
    with pytest.raises(VolumeIOError, match="volume must be a whole number >= 1"):
        read_volume(path, volume=0)


def _two_time_points(folder, tagged):
    """Two volumes of 4 slices at the same positions in one series (one folder)."""
    uid = generate_uid()
    first = write_dicom_series(folder, shape=(4, 6, 6), series_uid=uid, file_prefix="t1_", seed=1)
    second = write_dicom_series(folder, shape=(4, 6, 6), series_uid=uid, file_prefix="t2_", seed=2,
                                stored=np.full((4, 6, 6), 7, np.int16))
    for t, series in enumerate((first, second), start=1):
        for k, file in enumerate(series.files):
            ds = pydicom.dcmread(file)
            if tagged:
                ds.TemporalPositionIdentifier = t
                ds.InstanceNumber = 1  # useless, as some scanners write it
            else:
                ds.InstanceNumber = (t - 1) * 4 + k + 1
            ds.save_as(file)
    return first, second


@pytest.mark.parametrize("tagged", [True, False])
def test_dicom_series_with_repeated_positions_reads_the_volume_asked_for(tmp_path, tagged):
    first, second = _two_time_points(tmp_path / "dyn", tagged)
    with pytest.raises(VolumeIOError, match=r"holds 2 volumes at the same 4 slice positions.*--volume N"):
        read_volume(tmp_path / "dyn")
    np.testing.assert_array_equal(read_volume(tmp_path / "dyn", volume=1).array, first.hu)
    np.testing.assert_array_equal(read_volume(tmp_path / "dyn", volume=2).array, second.hu)
    assert read_volume(tmp_path / "dyn", volume=2).spacing == pytest.approx(first.spacing)


def test_a_damaged_middle_slice_whose_series_is_unknown_leaves_a_gap_error(tmp_path):
    series = write_dicom_series(tmp_path / "ct", shape=(8, 6, 6))
    series.files[3].write_bytes(b"\0" * 300)  # unreadable, and no UID left to attribute it
    with pytest.warns(UserWarning, match=r"slice003.dcm"):
        with pytest.raises(VolumeIOError, match=r"missing slice.*between slices 3 and 4"):
            read_volume(series.folder)
