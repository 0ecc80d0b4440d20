import io
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

from datasets.images import UnreadableImage, read_image


def _encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _decode(prepared) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.jpeg))
    image.load()
    return image


def _halves(size=(32, 24)) -> Image.Image:
    """Left half red, right half blue."""
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:, : size[0] // 2] = (255, 0, 0)
    pixels[:, size[0] // 2:] = (0, 0, 255)
    return Image.fromarray(pixels)


class TestReadImage:
    def test_jpeg_is_read_hashed_and_reencoded(self):
        data = _encode(_halves(), "JPEG")
        prepared = read_image(data, max_side=640)
        out = _decode(prepared)
        assert out.format == "JPEG" and out.mode == "RGB" and out.size == (32, 24)
        assert prepared.source_size == (32, 24) and prepared.size == (32, 24)
        assert len(prepared.sha256) == 64 and len(prepared.phash) == 16
        assert prepared.captured_at is None

    def test_never_upscales_and_limits_longer_side(self):
        assert read_image(_encode(_halves((32, 24))), max_side=64).size == (32, 24)
        assert read_image(_encode(_halves((32, 24))), max_side=16).size == (16, 12)
        assert read_image(_encode(_halves((24, 32))), max_side=16).size == (12, 16)

    def test_large_jpeg_is_decoded_reduced_and_keeps_source_size(self):
        data = _encode(_halves((1000, 750)), "JPEG")
        prepared = read_image(data, max_side=100)
        assert prepared.source_size == (1000, 750) and prepared.size == (100, 75)
        pixels = np.asarray(_decode(prepared)).astype(int)
        assert pixels[37, 10, 0] > 200 and pixels[37, 90, 2] > 200

    def test_zero_byte_file(self):
        with pytest.raises(UnreadableImage, match="empty file"):
            read_image(b"")

    def test_truncated_jpeg(self):
        data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
        with pytest.raises(UnreadableImage, match="not a readable image.*truncated"):
            read_image(data[: len(data) // 2])

    def test_text_file_named_jpg(self):
        with pytest.raises(UnreadableImage, match=r"not a readable image \(not a JPEG, PNG, HEIC, WebP, TIFF or BMP image"):
            read_image(b"these are my notes, not a photo\n")

    def test_png_with_alpha_is_composited_on_white(self):
        pixels = np.zeros((24, 32, 4), np.uint8)
        pixels[:, :16] = (255, 0, 0, 255)  # opaque red
        pixels[:, 16:] = (0, 0, 0, 0)  # fully transparent black
        out = np.asarray(_decode(read_image(_encode(Image.fromarray(pixels, "RGBA"))))).astype(int)
        assert out.shape == (24, 32, 3)
        assert out[12, 4, 0] > 240 and out[12, 4, 1] < 20
        assert (out[12, 28] > 240).all()  # white, not black

    def test_grayscale_becomes_rgb(self):
        gray = Image.fromarray(np.full((24, 32), 100, np.uint8), "L")
        out = np.asarray(_decode(read_image(_encode(gray)))).astype(int)
        assert out.shape == (24, 32, 3) and np.abs(out - 100).max() <= 2

    def test_cmyk_jpeg_becomes_rgb(self):
        cmyk = Image.new("CMYK", (32, 24), (0, 255, 255, 0))  # red in CMYK
        out = _decode(read_image(_encode(cmyk, "JPEG")))
        pixel = np.asarray(out).astype(int)[12, 16]
        assert out.mode == "RGB" and pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60

    def test_16_bit_png_is_scaled_not_clipped(self):
        values = np.zeros((24, 32), np.uint16)
        values[:, :16] = 65535
        values[:, 16:] = 32768
        image = Image.fromarray(values)
        data = _encode(image)
        assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really a 16-bit PNG
        out = np.asarray(_decode(read_image(data))).astype(int)
        assert np.abs(out[12, 4] - 255).max() <= 2 and np.abs(out[12, 28] - 128).max() <= 3

    def test_exif_rotation_is_applied_and_metadata_dropped(self):
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
        exif[0x010F] = "PhoneMaker"
        exif.get_ifd(0x8825)[2] = (52.0, 31.0, 12.0)  # GPSLatitude
        exif.get_ifd(0x8769)[36867] = "2024:05:01 12:30:05"  # DateTimeOriginal
        data = _encode(_halves((32, 24)), "JPEG", exif=exif.tobytes())
        assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the source has GPS
        prepared = read_image(data)
        out = _decode(prepared)
        assert prepared.source_size == (32, 24) and out.size == (24, 32)
        pixels = np.asarray(out).astype(int)
        # Rotated clockwise: the left (red) half is now on top, the right (blue) half at the bottom.
        assert pixels[4, 12, 0] > 200 and pixels[4, 12, 2] < 60
        assert pixels[28, 12, 2] > 200 and pixels[28, 12, 0] < 60
        assert len(out.getexif()) == 0 and "exif" not in out.info and "icc_profile" not in out.info
        assert b"PhoneMaker" not in prepared.jpeg and b"Exif" not in prepared.jpeg
        assert prepared.captured_at == "2024-05-01T12:30:05"

    def test_embedded_colour_profile_is_converted_and_dropped(self):
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        data = _encode(_halves(), "PNG", icc_profile=srgb)
        out = _decode(read_image(data))
        assert "icc_profile" not in out.info
        assert np.asarray(out).astype(int)[12, 4, 0] > 240  # sRGB to sRGB: red stays red

    def test_broken_colour_profile_is_ignored(self):
        out = _decode(read_image(_encode(_halves(), "PNG", icc_profile=b"not a profile")))
        assert out.size == (32, 24)

    def test_capture_time_with_offset(self):
        exif = Image.Exif()
        exif.get_ifd(0x8769)[36867] = "2024:05:01 12:30:05"
        exif.get_ifd(0x8769)[36881] = "+02:00"
        prepared = read_image(_encode(_halves(), "JPEG", exif=exif.tobytes()))
        assert prepared.captured_at == "2024-05-01T12:30:05+02:00"

    def test_malformed_capture_time_is_ignored(self):
        exif = Image.Exif()
        exif.get_ifd(0x8769)[36867] = "    :  :     :  :  "
        assert read_image(_encode(_halves(), "JPEG", exif=exif.tobytes())).captured_at is None

    @pytest.mark.parametrize(("fmt", "params"), [("WEBP", {"lossless": True}), ("TIFF", {}), ("BMP", {})])
    def test_webp_tiff_and_bmp_are_read(self, fmt, params):
        prepared = read_image(_encode(_halves((64, 48)), fmt, **params), max_side=32)
        out = np.asarray(_decode(prepared))
        assert prepared.size == (32, 24)
        # Left half red, right half blue, as drawn (JPEG re-encoding moves values a little).
        assert np.abs(out[:, :12].astype(int) - (255, 0, 0)).max() < 40
        assert np.abs(out[:, -12:].astype(int) - (0, 0, 255)).max() < 40

    def test_heic_is_read(self):
        import pillow_heif
        if not pillow_heif.libheif_info().get("encoders", {}).get("x265"):
            pytest.skip("no HEVC encoder to make a HEIC test file")
        data = _encode(_halves((64, 48)), "HEIF")
        prepared = read_image(data, max_side=32)
        assert prepared.size == (32, 24) and _decode(prepared).mode == "RGB"

    def test_rotated_heic_is_rotated_exactly_once(self):
        import pillow_heif
        if not pillow_heif.libheif_info().get("encoders", {}).get("x265"):
            pytest.skip("no HEVC encoder to make a HEIC test file")
        exif = Image.Exif()
        exif[0x0112] = 6  # pillow-heif stores it as the HEIF rotation and applies it when reading
        pixels = np.asarray(_decode(read_image(_encode(_halves(), "HEIF", exif=exif.tobytes(), quality=95))))
        assert pixels.shape == (32, 24, 3)
        assert pixels[4, 12, 0] > 200 and pixels[28, 12, 2] > 200  # red on top, blue below

    def test_decompression_bomb_error_is_a_clear_reason(self, monkeypatch):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
        with pytest.raises(UnreadableImage, match="too large to decode safely"):
            read_image(_encode(_halves((32, 24))))  # 768 pixels > 2 x 100: DecompressionBombError

    def test_decompression_bomb_warning_is_skipped_too(self, monkeypatch):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
        with pytest.raises(UnreadableImage, match="too large to decode safely"):
            read_image(_encode(_halves((32, 24))))  # 768 pixels: between 1x and 2x the limit

    def test_huge_png_header_is_refused_without_decoding(self):
        data = bytearray(_encode(Image.new("RGB", (1, 1))))
        # IHDR width/height live at bytes 16-24; claim 100000 x 100000 pixels.
        data[16:24] = (100000).to_bytes(4, "big") * 2
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
        with pytest.raises(UnreadableImage, match="too large"):
            read_image(bytes(data))

    def test_argument_errors(self):
        with pytest.raises(TypeError, match="data must be bytes"):
            read_image("photo.jpg")
        with pytest.raises(ValueError, match="max_side must be a positive int"):
            read_image(b"x", max_side=0)
