"""Reading and writing photos without losing what the user cares about.

A Photo holds upright float32 pixels plus everything needed to write the file back faithfully:
alpha (passed through untouched), bit depth, EXIF (Orientation reset to 1) and the ICC profile.
Pillow decodes 8-bit files; OpenCV decodes 16-bit PNG/TIFF, which Pillow silently truncates to
8 bits. Every write goes to a temporary file in the target folder and is then renamed into place.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deblur.errors import InputError, OutputError
from deblur.files import write_atomic

# Pillow format name -> our format name. MPO is what many cameras write: JPEG with extra frames.
READ_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "TIFF": "tiff", "WEBP": "webp", "BMP": "bmp"}
EXTENSIONS = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".tif": "tiff",
    ".tiff": "tiff", ".webp": "webp", ".bmp": "bmp",
}
FORMAT_EXTENSION = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "webp": ".webp", "bmp": ".bmp"}
HIGH_BIT_DEPTH_FORMATS = {"png", "tiff"}
ALPHA_FORMATS = {"png", "tiff", "webp"}
ORIENTATION_TAG = 0x0112


@dataclass
class Photo:
    pixels: np.ndarray  # float32, H x W x C in [0, 1], C = 3 (RGB) or 1 (grayscale), upright
    alpha: np.ndarray | None  # H x W in the file's own dtype, upright; never processed
    bit_depth: int  # 8 or 16 bits per sample
    format: str  # one of FORMAT_EXTENSION's keys
    exif: bytes | None = None  # with Orientation already reset to 1
    icc: bytes | None = None

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def is_gray(self) -> bool:
        return self.pixels.shape[2] == 1


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


# A photo's pixel count is checked from its header, before decoding: a small file can declare a
# huge image (a decompression bomb) that would exhaust memory. 200 MP is above any camera's photo.
MAX_PIXELS_ENV = "DEBLUR_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 200_000_000


def max_pixels() -> int:
    """The pixel limit: DEBLUR_MAX_PIXELS if set (a whole number, or e.g. '500M'), else 200 MP."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = float(text[:-1]) * 1e6 if text[-1] in "mM" else float(text)
    except ValueError:
        value = -1
    if value < 1:
        raise InputError(f"{MAX_PIXELS_ENV}={text} is not a pixel count; use e.g. {MAX_PIXELS_ENV}=500M")
    return int(value)


def check_pixel_count(path: Path, width: int, height: int) -> None:
    limit = max_pixels()
    if width * height > limit:
        raise InputError(f"cannot read '{path}': it declares {width} x {height} px ({width * height / 1e6:.0f} MP), "
                         f"over the limit of {limit / 1e6:.0f} MP that guards against decompression bombs; if "
                         f"the photo is genuine, raise it with {MAX_PIXELS_ENV}=N (pixels, e.g. 500M)")


def _open_image(path: Path) -> Image.Image:
    """Image.open with Pillow's own bomb check off: check_pixel_count applies one limit to every command."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        return Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def declared_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding it; None if it is not a readable image."""
    try:
        with _open_image(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any unreadable file simply has no size; reading it reports why
        return None


def read_photo(path: str | os.PathLike) -> Photo:
    """Read an image file into an upright Photo. Raises InputError with the reason."""
    path = Path(path)
    try:
        with _open_image(path) as im:
            check_pixel_count(path, *im.size)
            fmt = READ_FORMATS.get(im.format or "")
            if fmt is None:
                raise InputError(
                    f"cannot read '{path}': {im.format} images are not supported "
                    "(use JPEG, PNG, TIFF, WebP or BMP)"
                )
            exif, orientation = _upright_exif(im)
            icc = im.info.get("icc_profile") or None
            if _sample_bits(path, im) > 8:
                data = _decode_with_opencv(path)
            else:
                data = _decode_with_pillow(im)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"cannot read '{path}': no such file") from None
    except UnidentifiedImageError:
        if path.stat().st_size == 0:
            raise InputError(f"cannot read '{path}': the file is empty (0 bytes)") from None
        raise InputError(
            f"cannot read '{path}': not a supported image (use JPEG, PNG, TIFF, WebP or BMP)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read '{path}': the file is damaged or truncated ({exc})") from None

    data = apply_orientation(data, orientation)
    return _photo_from_array(data, fmt, exif, icc, path)


def _upright_exif(im: Image.Image) -> tuple[bytes | None, int]:
    """Return the EXIF block with Orientation reset to 1, and the original orientation."""
    exif = im.getexif()
    orientation = int(exif.get(ORIENTATION_TAG, 1) or 1)
    if not len(exif):
        return None, 1
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    return exif.tobytes(), orientation


def _sample_bits(path: Path, im: Image.Image) -> int:
    """Bits per sample as stored in the file; Pillow's mode cannot be trusted for 16-bit RGB."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            header = f.read(25)
        return header[24] if len(header) == 25 else 8  # IHDR bit depth
    if im.format == "TIFF":
        bits = _as_tuple(im.tag_v2.get(258, 8))  # BitsPerSample
        if 3 in _as_tuple(im.tag_v2.get(339, 1)):  # SampleFormat 3 = IEEE float
            raise InputError(f"cannot read '{path}': floating-point TIFF is not supported yet")
        return max(bits)
    return 8


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _decode_with_opencv(path: Path) -> np.ndarray:
    import cv2

    # imdecode from bytes: cv2.imread cannot open non-ASCII paths on Windows.
    data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise InputError(f"cannot read '{path}': the 16-bit image could not be decoded")
    if data.dtype != np.uint16:
        raise InputError(f"cannot read '{path}': {data.dtype} samples are not supported")
    if data.ndim == 3 and data.shape[2] == 3:
        data = data[:, :, ::-1]  # BGR -> RGB
    elif data.ndim == 3 and data.shape[2] == 4:
        data = data[:, :, [2, 1, 0, 3]]  # BGRA -> RGBA
    return np.ascontiguousarray(data)


def _decode_with_pillow(im: Image.Image) -> np.ndarray:
    im.load()
    mode = im.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in im.info else "RGB"
    elif mode == "PA":
        mode = "RGBA"
    elif mode == "1":
        mode = "L"
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        mode = "RGBA" if "A" in mode else "RGB"  # CMYK, YCbCr, ...
    return np.asarray(im.convert(mode) if mode != im.mode else im)


def apply_orientation(data: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an array stored with EXIF orientation 1-8 into the upright picture."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],  # transverse
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(transforms.get(orientation, transforms[1])(data))


def _photo_from_array(data: np.ndarray, fmt: str, exif, icc, path: Path) -> Photo:
    if data.ndim == 2:
        data = data[:, :, None]
    channels = data.shape[2]
    alpha = None
    if channels in (2, 4):
        alpha = np.ascontiguousarray(data[:, :, -1])
        data = data[:, :, :-1]
    if data.dtype == np.uint8:
        bit_depth, scale = 8, 255.0
    elif data.dtype == np.uint16:
        bit_depth, scale = 16, 65535.0
    else:
        raise InputError(f"cannot read '{path}': {data.dtype} samples are not supported")
    pixels = data.astype(np.float32) / np.float32(scale)
    return Photo(pixels=pixels, alpha=alpha, bit_depth=bit_depth, format=fmt, exif=exif, icc=icc)


def quantize(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float [0, 1] -> integers, rounded (not truncated) so a round trip is exact."""
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(np.rint(pixels * top), 0, top).astype(dtype)


def alpha_at(alpha: np.ndarray, bit_depth: int) -> np.ndarray:
    """An alpha channel in the file's own dtype at 8 or 16 bits."""
    if bit_depth == 8 and alpha.dtype == np.uint16:
        return np.rint(alpha / 257.0).astype(np.uint8)
    if bit_depth == 16 and alpha.dtype == np.uint8:
        return alpha.astype(np.uint16) * 257
    return alpha


def encode_photo(photo: Photo, fmt: str, quality: int = 95, keep_metadata: bool = True) -> tuple[bytes, list[str]]:
    """Encode a photo as `fmt`; return the bytes and any warnings about what could not be kept."""
    warnings: list[str] = []
    if photo.alpha is not None and fmt not in ALPHA_FORMATS:
        raise OutputError(f"{fmt.upper()} cannot store the alpha channel; use --format png, webp or tiff "
                          "(or an --output file name with one of those extensions)")
    bit_depth = photo.bit_depth if fmt in HIGH_BIT_DEPTH_FORMATS else 8
    if photo.bit_depth > bit_depth:
        warnings.append(f"{fmt.upper()} stores 8 bits per sample; the 16-bit input was reduced to 8 bits")
    data = quantize(photo.pixels, bit_depth)
    if photo.alpha is not None:
        data = np.concatenate([data, alpha_at(photo.alpha, bit_depth)[:, :, None]], axis=2)
    exif = photo.exif if keep_metadata else None
    icc = photo.icc if keep_metadata else None
    if fmt == "bmp" and (exif or icc):
        warnings.append("BMP cannot store EXIF or ICC metadata; they were not copied")
    if bit_depth == 16:
        return _encode_16bit(data, fmt, exif, icc, warnings), warnings
    return _encode_8bit(data, fmt, quality, exif, icc, photo.is_gray), warnings


def _encode_8bit(data, fmt, quality, exif, icc, is_gray) -> bytes:
    if data.shape[2] == 1:
        im = Image.fromarray(data[:, :, 0], "L")
    elif data.shape[2] == 2:
        im = Image.fromarray(data, "LA")
        if fmt == "webp":  # WebP has no gray+alpha mode
            im = im.convert("RGBA")
    else:
        im = Image.fromarray(data, "RGBA" if data.shape[2] == 4 else "RGB")
    options: dict = {}
    if exif and fmt != "bmp":
        options["exif"] = exif
    if icc and fmt != "bmp":
        options["icc_profile"] = icc
    if fmt == "jpeg":
        options.update(quality=quality, subsampling=0)  # 4:4:4: no colour bleeding on fine detail
    elif fmt == "webp":
        options.update(quality=quality, lossless=quality >= 100)
    elif fmt == "tiff":
        options.update(compression="tiff_adobe_deflate")
    buffer = io.BytesIO()
    im.save(buffer, format=fmt.upper(), **options)
    return buffer.getvalue()


def _encode_16bit(data, fmt, exif, icc, warnings) -> bytes:
    import cv2

    if data.shape[2] == 3:
        data = data[:, :, ::-1]
    elif data.shape[2] == 4:
        data = data[:, :, [2, 1, 0, 3]]
    ok, encoded = cv2.imencode(FORMAT_EXTENSION[fmt], np.ascontiguousarray(data))
    if not ok:
        raise OutputError(f"could not encode a 16-bit {fmt.upper()} image")
    encoded = encoded.tobytes()
    if fmt == "png":
        return _png_with_metadata(encoded, exif, icc)
    if exif or icc:
        warnings.append("16-bit TIFF output keeps the pixels but not the EXIF/ICC metadata")
    return encoded


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with_metadata(png: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    """Insert iCCP and eXIf chunks after IHDR (OpenCV writes neither)."""
    ihdr_end = 8 + 8 + 13 + 4  # signature, length+type, IHDR data, CRC
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    return png[:ihdr_end] + extra + png[ihdr_end:]


def write_photo(photo: Photo, path: str | os.PathLike, fmt: str | None = None, quality: int = 95,
                overwrite: bool = False, keep_metadata: bool = True) -> list[str]:
    """Encode and atomically write a photo; return warnings about anything that was not kept."""
    path = Path(path)
    fmt = fmt or EXTENSIONS.get(path.suffix.lower()) or photo.format
    data, warnings = encode_photo(photo, fmt, quality, keep_metadata)
    write_atomic(path, data, overwrite)
    return warnings


def side_by_side(before: Photo, after: Photo, gap: int = 8) -> Photo:
    """Blurry | restored, with a white gap, as an 8-bit photo for looking at."""
    height, _, channels = before.pixels.shape
    spacer = np.ones((height, gap, channels), np.float32)
    pixels = np.concatenate([before.pixels, spacer, after.pixels], axis=1)
    return replace(after, pixels=pixels, alpha=None, bit_depth=8)
