"""Screen DICOM files with pydicom before GDCM sees any of them.

GDCM trusts the element lengths a file declares: fuzzed files of a few kB
made it allocate 0.4-1.6 GB, and files it cannot parse simply vanish from a
series.  So every file of a folder is parsed here first, its declared image
size checked against the bytes it holds, and only non-identifying tags are
kept (:class:`FileHeader`).  GDCM is then given the screened files only.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VolumeIOError
from ._errors import one_line

__all__ = ["FileHeader", "NotDicom", "scan_file", "uid_of_damaged_file", "PIXEL_TAGS"]

PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # (float / double float) pixel data
UNDEFINED_LENGTH = 0xFFFFFFFF
DEFLATED_TRANSFER_SYNTAX = "1.2.840.10008.1.2.1.99"
# a compressed frame cannot be smaller than this fraction of its decoded size
# (deflate's limit is ~1032:1; JPEG / RLE / JPEG-LS / J2K of real images are
# far below it): a header declaring more is corrupt, and GDCM would allocate it
MAX_COMPRESSION_RATIO = 1100
COMPRESSED_SLACK_BYTES = 1 << 16
# names that are never DICOM: their parse failures are not worth a warning
NOT_DICOM_SUFFIXES = {
    ".txt", ".csv", ".json", ".xml", ".html", ".htm", ".pdf", ".md", ".rst", ".png", ".jpg",
    ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".nii", ".gz", ".nrrd", ".nhdr", ".mha", ".mhd",
    ".raw", ".zip", ".py", ".log", ".ini", ".yaml", ".yml", ".bat", ".sh", ".exe", ".db",
}
_UID_TAG = re.compile(rb"\x20\x00\x0e\x00(?:UI(..)|(....))", re.DOTALL)
_UID_TEXT = re.compile(rb"[0-9.]{3,64}")

# acquisition tags that tell the volumes of a 4D series apart (DICOM PS3.3
# C.7.6.1 / C.8.3.1 / C.8.13): temporal position, echo, trigger delay, b-value
TAG_TEMPORAL_POSITION = 0x00200100
TAG_ECHO_NUMBER = 0x00180086
TAG_TRIGGER_TIME = 0x00181060
TAG_B_VALUE = 0x00189087
TAG_ACQUISITION_NUMBER = 0x00200012
VOLUME_TAGS = (TAG_TEMPORAL_POSITION, TAG_ECHO_NUMBER, TAG_TRIGGER_TIME, TAG_B_VALUE,
               TAG_ACQUISITION_NUMBER)
# Siemens private block (0019,10xx) of creator "SIEMENS MR HEADER": NumberOfImagesInMosaic
TAG_SIEMENS_CREATOR = 0x00190010
TAG_SIEMENS_MOSAIC_COUNT = 0x0019100A


class NotDicom(Exception):
    """``path`` is not a DICOM file at all (no preamble and no image dataset)."""


@dataclass(frozen=True)
class FileHeader:
    """What the series checks need from one DICOM image file (no patient data).

    Attributes
    ----------
    path : str
    uid : str
        SeriesInstanceUID ("" when absent).
    modality, description : str
    position : (3,) ndarray or None
        ImagePositionPatient (LPS mm).
    orientation : (6,) ndarray or None
        ImageOrientationPatient.
    rescale : (str, str)
        RescaleSlope and RescaleIntercept as written ("" when absent).
    frames : int
        NumberOfFrames (1 for single-frame files).
    instance : int or None
        InstanceNumber.
    volume_key : tuple
        The acquisition tags of :data:`VOLUME_TAGS` as text.
    """

    path: str
    uid: str
    modality: str
    description: str
    position: np.ndarray | None
    orientation: np.ndarray | None
    rescale: tuple
    frames: int
    instance: int | None
    volume_key: tuple


def _text(dataset, keyword):
    try:
        value = dataset.get(keyword, "")
    except Exception:  # noqa: BLE001 - an unparseable value counts as absent
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip().strip("\x00").strip()


def _numbers(text, count):
    try:
        values = [float(v) for v in text.split("\\")]
    except ValueError:
        return None
    return np.array(values) if len(values) == count and np.all(np.isfinite(values)) else None


def _int(text, default=None):
    try:
        return int(float(text))
    except (TypeError, ValueError, OverflowError):
        return default


def _has_preamble(path):
    with open(path, "rb") as f:
        f.seek(128)
        return f.read(4) == b"DICM"


def _check_element_stream(path, size, encoding):
    """Walk the raw top-level element stream: every element needs a VR (explicit syntaxes)
    and a length that ends inside the file.

    pydicom's dataset hides what GDCM trips over: an element after the pixel
    data with a garbage VR and a length of gigabytes (GDCM allocates it).
    """
    from pydicom.filereader import data_element_generator, read_partial

    implicit, little = encoding
    with open(path, "rb") as fp:
        meta = read_partial(fp, stop_when=lambda *_: True, force=True).file_meta
        if str(meta.get("TransferSyntaxUID", "")) == DEFLATED_TRANSFER_SYNTAX:
            return  # the dataset is deflated: pydicom's own parse already covered it
        for raw in data_element_generator(fp, implicit, little, defer_size=256):
            tag = f"({raw.tag >> 16:04X},{raw.tag & 0xFFFF:04X})"
            if raw.VR is None and not implicit:
                raise VolumeIOError(f"{path}: corrupt DICOM file: element {tag} has no valid VR")
            length, tell = getattr(raw, "length", None), getattr(raw, "value_tell", None)
            if length is None or tell is None:
                continue  # read already (undefined length: sequences, encapsulated pixels)
            if length != UNDEFINED_LENGTH and tell + length > size:
                raise VolumeIOError(
                    f"{path}: corrupt DICOM file: element {tag} declares {length} bytes, "
                    f"beyond the end of the {size}-byte file"
                )


def _check_image_size(dataset, size, path):
    """Declared image size must agree with the pixel data actually present."""
    rows, columns = _int(_text(dataset, "Rows"), 0), _int(_text(dataset, "Columns"), 0)
    samples = _int(_text(dataset, "SamplesPerPixel"), 1)
    bits = _int(_text(dataset, "BitsAllocated"), 0)
    frames = _int(_text(dataset, "NumberOfFrames"), 1) or 1
    if rows <= 0 or columns <= 0 or bits not in (1, 8, 16, 32, 64) or samples not in (1, 3, 4) or frames < 1:
        raise VolumeIOError(
            f"{path}: corrupt DICOM image header (Rows {rows}, Columns {columns}, "
            f"BitsAllocated {bits}, SamplesPerPixel {samples}, NumberOfFrames {frames})"
        )
    declared = (rows * columns * samples * frames * bits + 7) // 8
    tag = next(t for t in PIXEL_TAGS if t in dataset)
    length = getattr(dataset.get_item(tag), "length", None)
    if length is not None and length != UNDEFINED_LENGTH:  # native (uncompressed) pixels
        if length < declared:
            raise VolumeIOError(
                f"{path}: truncated or corrupt DICOM image: {rows}x{columns}x{frames} frame(s) need "
                f"{declared} bytes of pixel data, the file holds {length}"
            )
    elif declared > MAX_COMPRESSION_RATIO * size + COMPRESSED_SLACK_BYTES:
        raise VolumeIOError(
            f"{path}: corrupt DICOM image: {rows}x{columns}x{frames} frame(s) ({declared} bytes) "
            f"cannot be held compressed in a {size}-byte file"
        )
    return frames


def _check_geometry_tags(dataset, path):
    spacing_text = _text(dataset, "PixelSpacing")
    if spacing_text:
        spacing = _numbers(spacing_text, 2)
        if spacing is None or np.any(spacing <= 0):
            # GDCM silently reads 0 or a negative spacing as 1.0 mm
            raise VolumeIOError(
                f"{path}: PixelSpacing (0028,0030) is {spacing_text!r}; it must be two positive "
                "numbers (mm): the pixel size is unknown"
            )
    image_type = _text(dataset, "ImageType").upper().split("\\")
    creator = dataset.get(TAG_SIEMENS_CREATOR)
    siemens = creator is not None and "SIEMENS MR HEADER" in str(creator.value).upper()
    mosaic = dataset.get(TAG_SIEMENS_MOSAIC_COUNT) if siemens else None
    if "MOSAIC" in image_type or mosaic is not None:
        count = _int(getattr(mosaic, "value", ""), None) if mosaic is not None else None
        tiles = f"{count} slices" if count else "several slices"
        raise VolumeIOError(
            f"{path}: a Siemens mosaic ({tiles} tiled in one image); napari-dfcseg does not "
            "de-mosaic: convert the series with dcm2niix first and read its NIfTI"
        )


def scan_file(path):
    """Parse one file with pydicom; return its :class:`FileHeader`, or ``None`` for a non-image object.

    Raises
    ------
    NotDicom
        The file is not DICOM (no preamble, and no image dataset in it).
    VolumeIOError
        A damaged DICOM file: broken element stream, element lengths
        beyond the end of the file, pixel data shorter than the declared
        image, impossible image header, non-positive PixelSpacing, or a
        Siemens mosaic.
    """
    import pydicom

    path = Path(path)
    size = path.stat().st_size
    preamble = size >= 132 and _has_preamble(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = pydicom.dcmread(str(path), defer_size=1024, force=True)
            encoding = getattr(dataset, "original_encoding", None) or (
                getattr(dataset, "is_implicit_VR", True), getattr(dataset, "is_little_endian", True))
            _check_element_stream(path, size, encoding)
            elements = [int(tag) for tag in dataset.keys()]
            for tag in elements:  # parse every element except the (large) pixel data
                if tag not in PIXEL_TAGS:
                    dataset[tag]
    except VolumeIOError:
        if not preamble:
            raise NotDicom(str(path)) from None
        raise
    except Exception as err:  # noqa: BLE001 - any pydicom failure means a broken file
        if not preamble:
            raise NotDicom(str(path)) from None
        raise VolumeIOError(f"{path}: not a readable DICOM file: {one_line(err)}") from None
    if not preamble and "SOPClassUID" not in dataset and "SeriesInstanceUID" not in dataset:
        raise NotDicom(str(path))
    implicit = encoding[0]
    if implicit is False and any("VR lookup failed" in str(w.message) for w in caught):
        # an explicit-VR file carries every element's VR: a missing one means
        # the element stream is broken (GDCM would misread its length)
        raise VolumeIOError(f"{path}: corrupt DICOM file (an element without a valid VR)")
    if not PIXEL_TAGS.intersection(elements):
        return None  # DICOMDIR, structured report, presentation state...: not an image
    frames = _check_image_size(dataset, size, path)
    _check_geometry_tags(dataset, path)
    return FileHeader(
        path=str(path),
        uid=_text(dataset, "SeriesInstanceUID"),
        modality=_text(dataset, "Modality"),
        description=_text(dataset, "SeriesDescription"),
        position=_numbers(_text(dataset, "ImagePositionPatient"), 3),
        orientation=_numbers(_text(dataset, "ImageOrientationPatient"), 6),
        rescale=(_text(dataset, "RescaleSlope"), _text(dataset, "RescaleIntercept")),
        frames=frames,
        instance=_int(_text(dataset, "InstanceNumber")),
        volume_key=tuple(_volume_tag(dataset, tag) for tag in VOLUME_TAGS),
    )


def _volume_tag(dataset, tag):
    element = dataset.get(tag)
    if element is None:
        return ""
    value = element.value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def uid_of_damaged_file(path):
    """The SeriesInstanceUID found in the raw bytes of a file pydicom could not parse, or ``""``."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError:
        return ""
    for match in _UID_TAG.finditer(data):
        explicit, implicit = match.group(1), match.group(2)
        length = int.from_bytes(explicit or implicit, "little")
        if not 3 <= length <= 64:
            continue
        value = data[match.end(): match.end() + length].rstrip(b"\x00 ")
        if _UID_TEXT.fullmatch(value):
            return value.decode("ascii")
    return ""


def looks_like_dicom_name(path):
    """False for names that are never DICOM (text, pictures, other scan formats, hidden files)."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() not in NOT_DICOM_SUFFIXES
