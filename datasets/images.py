"""Read one photo the way ``boxstrap prepare`` needs it: upright, RGB, small, without metadata.

:func:`read_image` turns the bytes of an image file (:data:`IMAGE_KINDS`) into a :class:`PreparedImage`:
EXIF orientation applied, alpha composited onto white, 16-bit and CMYK images converted to
8-bit RGB, an embedded colour profile (Display P3 on iPhones) converted to sRGB, the longer side reduced to at most ``max_side`` (never enlarged), its perceptual
hash, the capture time from EXIF, and the JPEG bytes to write (no EXIF, GPS or other metadata).
Anything that is not a readable image raises :class:`UnreadableImage` with the reason.
"""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

__all__ = ["DECODE_ERRORS", "IMAGE_KINDS", "IMAGE_SUFFIXES", "PreparedImage", "UnreadableImage", "colour_distance",
           "colour_signature", "read_image", "upright_srgb"]

register_heif_opener()

# File name endings read as images; anything else in a class folder is skipped and listed.
# Phones write JPEG and HEIC; PNG (screenshots), WebP (downloads, messaging apps), TIFF and BMP
# (scanners, exports) turn up in collected photo folders, and Pillow decodes them all. Animated
# formats (GIF) are left out: which frame is the photo is a guess. Of a multi-frame TIFF or
# WebP the first frame is read.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".heic", ".heif", ".webp", ".tif", ".tiff", ".bmp")
# The same, as messages name them.
IMAGE_KINDS = "JPEG, PNG, HEIC, WebP, TIFF or BMP"
JPEG_QUALITY = 95
_SRGB = ImageCms.createProfile("sRGB")
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 36867
_OFFSET_TIME_ORIGINAL = 36881
# What Pillow raises on broken, truncated or hostile files while opening or decoding them
# (also caught by datasets.tf_input.read_rgb).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError,
                 ZeroDivisionError, Image.DecompressionBombError, Image.DecompressionBombWarning)


class UnreadableImage(ValueError):
    """A file that cannot be prepared as an image; the message is the reason (without the path)."""


@dataclass(frozen=True)
class PreparedImage:
    """One photo read and prepared for writing.

    Attributes
    ----------
    jpeg : bytes
        The prepared image as a quality-95 JPEG without metadata.
    sha256 : str
        Hex SHA-256 of the *source* bytes.
    source_size, size : (width, height)
        Size of the source (as stored, before EXIF rotation) and of the prepared image.
    phash : str
        Hex perceptual hash (``imagehash.phash``, 64 bits) of the prepared image.
    captured_at : str or None
        EXIF ``DateTimeOriginal`` as ISO 8601 (``2024-05-01T12:30:05``, with the offset when
        the photo stores one), or ``None``.
    colour : str
        :func:`colour_signature` of the prepared image (the pHash is computed on grey levels).
    """

    jpeg: bytes
    sha256: str
    source_size: tuple[int, int]
    size: tuple[int, int]
    phash: str
    captured_at: str | None
    colour: str = ""


def read_image(data: bytes, *, max_side: int = 640) -> PreparedImage:
    """Prepare the bytes of one image file.

    Parameters
    ----------
    data : bytes
        The whole source file.
    max_side : int
        Longest side of the result in pixels; smaller images keep their size.

    Returns
    -------
    PreparedImage

    Raises
    ------
    TypeError
        If ``data`` is not bytes.
    ValueError
        If ``max_side`` is not a positive int.
    UnreadableImage
        If the bytes are empty, not an image Pillow knows, truncated, or larger than
        ``PIL.Image.MAX_IMAGE_PIXELS`` (a decompression bomb); the message says which.

    Examples
    --------
    >>> buffer = io.BytesIO()
    >>> Image.new("L", (64, 32)).save(buffer, "PNG")
    >>> read_image(buffer.getvalue(), max_side=16).size
    (16, 8)
    """
    if not isinstance(data, bytes | bytearray):
        raise TypeError(f"data must be bytes. Received: {type(data).__name__}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side must be a positive int. Received: max_side={max_side!r}")
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            source_size = image.size
            if image.format == "JPEG":
                # Decode at a reduced DCT scale when the photo is much larger than needed.
                image.draft("RGB", (max_side, max_side))
            image.load()
            captured_at = _captured_at(image)
            rgb = upright_srgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImage(
            f"too large to decode safely ({error}); resize it below "
            f"{Image.MAX_IMAGE_PIXELS} pixels or remove it"
        ) from None
    except UnidentifiedImageError:
        raise UnreadableImage(f"not a readable image (not a {IMAGE_KINDS} image Pillow knows)") from None
    except DECODE_ERRORS as error:
        raise UnreadableImage(f"not a readable image ({type(error).__name__}: {error})") from None
    rgb = _shrink(rgb, max_side)
    phash = str(imagehash.phash(rgb))
    buffer = io.BytesIO()
    rgb.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return PreparedImage(buffer.getvalue(), sha256, tuple(source_size), rgb.size, phash, captured_at,
                         colour_signature(np.asarray(rgb.convert("RGB"))))


#: Hue bins of :func:`colour_signature` (30 degrees each), then one bin for grey pixels.
HUE_BINS = 12


def colour_signature(rgb: np.ndarray) -> str:
    """A coarse colour histogram of an image as a hex string: the share of its pixels in each of
    12 hue bins (pixels with saturation and value of at least 0.2) and of grey pixels (the rest),
    each quantised to 0-15.

    The perceptual hash sees grey levels only: a green and a blue photo of one background can hash
    alike. Two photos whose signatures differ (:func:`colour_distance`) are not the same scene.

    Examples
    --------
    >>> green = np.zeros((8, 8, 3), np.uint8); green[..., 1] = 200
    >>> colour_signature(green)
    '0000f00000000'
    """
    pixels = np.asarray(rgb, np.float32).reshape(-1, 3) / 255.0
    if pixels.size == 0:
        return "0" * (HUE_BINS + 1)
    top, low = pixels.max(axis=1), pixels.min(axis=1)
    span = top - low
    chromatic = (top >= 0.2) & (span >= 0.2 * np.maximum(top, 1e-6))
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    safe = np.where(span > 0, span, 1.0)
    hue = np.where(top == r, ((g - b) / safe) % 6, np.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    bins = np.minimum((hue[chromatic] * HUE_BINS).astype(np.int64), HUE_BINS - 1)
    counts = np.append(np.bincount(bins, minlength=HUE_BINS), np.count_nonzero(~chromatic)).astype(np.float64)
    shares = np.rint(counts / counts.sum() * 15).astype(np.int64)
    return "".join(f"{v:x}" for v in shares)


def colour_distance(a: str, b: str) -> float | None:
    """Half the L1 distance of two :func:`colour_signature` histograms, in [0, 1] (the share of
    pixels that would have to change colour); None when either is unknown (an older manifest).

    Examples
    --------
    >>> colour_distance('0000f00000000', '00000000f0000')
    1.0
    """
    if not a or not b or len(a) != len(b):
        return None
    x = np.array([int(c, 16) for c in a], np.float64)
    y = np.array([int(c, 16) for c in b], np.float64)
    if x.sum() == 0 or y.sum() == 0:
        return None
    return float(np.abs(x / x.sum() - y / y.sum()).sum() / 2)


def _captured_at(image: Image.Image) -> str | None:
    """EXIF DateTimeOriginal as ISO 8601, or None when absent or malformed."""
    try:
        exif = image.getexif().get_ifd(_EXIF_IFD)
    except DECODE_ERRORS:
        return None
    value = exif.get(_DATETIME_ORIGINAL)
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ")
    if len(value) < 19 or value[4] != ":" or value[7] != ":" or value[10] != " ":
        return None
    iso = f"{value[:4]}-{value[5:7]}-{value[8:10]}T{value[11:19]}"
    if not (iso[:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19]).isdigit():
        return None
    offset = exif.get(_OFFSET_TIME_ORIGINAL)
    if isinstance(offset, str) and len(offset.strip("\x00 ")) == 6:
        iso += offset.strip("\x00 ")
    return iso


def upright_srgb(image: Image.Image) -> Image.Image:
    """A decoded image as the network sees every photo: upright, 8-bit sRGB, no metadata.

    EXIF orientation applied, alpha composited onto white, 16-bit scaled, CMYK converted, and
    an embedded colour profile (iPhones: Display P3) converted to sRGB. ``prepare`` and every
    reader of raw photos (:func:`datasets.tf_input.read_rgb`) go through it, so a photo shown
    to ``boxstrap predict`` has the colours its prepared copy had in training.

    Examples
    --------
    >>> upright_srgb(Image.new("RGBA", (4, 2), (0, 0, 0, 0))).getpixel((0, 0))
    (255, 255, 255)
    """
    upright = ImageOps.exif_transpose(image)
    return _to_srgb(_to_rgb(upright), upright.info.get("icc_profile"))


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB without metadata: alpha composited onto white, 16-bit scaled, CMYK converted."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode != "I" or values.max() > 255 else 255.0
        gray = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        image = Image.fromarray(gray, "L")
    elif mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
    else:
        rgb = image.convert("RGB")
    # A fresh image carries no info dict (EXIF, ICC, XMP, GPS) into the saved JPEG.
    return Image.frombytes("RGB", rgb.size, rgb.tobytes())


def _to_srgb(rgb: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert from the photo's embedded colour profile (iPhones: Display P3) to sRGB.

    The profile is dropped with the rest of the metadata, so without this step the colours of a
    wide-gamut photo would be read as sRGB and look washed out. A broken profile is ignored.
    """
    if not icc_profile:
        return rgb
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(rgb, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return rgb
    return Image.frombytes("RGB", converted.size, converted.tobytes()) if converted is not None else rgb


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    """Resize so the longer side is at most ``max_side``; never enlarge."""
    width, height = image.size
    longest = max(width, height)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
