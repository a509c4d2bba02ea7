"""QR codes (ISO/IEC 18004) for the contact exchange (Client.adoc "Kontaktdatenaustausch mit
2D-Barcode"): made with segno, read with zxing-cpp.

The text is encoded as UTF-8 bytes without an ECI designator (vCard 4.0 is UTF-8 by
definition, RFC 6350 §3.1; ECI is the part of ISO/IEC 18004 phone scanners support least);
:func:`decode_png` reads the payload bytes as UTF-8 for the same reason and falls back to
zxing-cpp's own character set detection only for codes that are not UTF-8.

Images are read by Pillow restricted to PNG and JPEG (no format whose decoder runs external
programs), at most :data:`MAX_IMAGE_BYTES` and :data:`MAX_PIXELS`.
"""

from __future__ import annotations

import io
import warnings

import segno
import zxingcpp  # type: ignore[import-not-found]  # a C extension without stubs
from PIL import Image, UnidentifiedImageError

from timkit.core.errors import Codes, TimkitError

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""Largest image file read (a phone photo is a few MB)."""
MAX_PIXELS = 50_000_000
"""Largest image read, in pixels (a 50 MP camera); larger ones are refused before decoding."""
FORMATS = ("PNG", "JPEG")
"""Image formats :func:`decode_png` reads."""


def _make(text: str) -> segno.QRCode:
    """A QR code (never a Micro QR) of ``text`` in UTF-8, error correction level M or better.

    Raises:
        TimkitError: 400 ``M_TOO_LARGE`` when ``text`` does not fit into a QR code.
    """
    try:
        return segno.make(text, encoding="utf-8", error="m", micro=False)
    except segno.DataOverflowError as e:
        raise TimkitError(
            400, Codes.TOO_LARGE, f"{len(text.encode())} bytes do not fit into a QR code"
        ) from e


def qr_png(text: str, *, scale: int = 8, border: int = 4) -> bytes:
    """A PNG of the QR code of ``text``: ``scale`` pixels per module, ``border`` modules of
    quiet zone (4 is the standard's minimum).

    Raises:
        TimkitError: 400 ``M_TOO_LARGE`` when ``text`` does not fit into a QR code.
    """
    out = io.BytesIO()
    _make(text).save(out, kind="png", scale=scale, border=border)
    return out.getvalue()


def qr_terminal(text: str, *, border: int = 2) -> str:
    """The QR code of ``text`` for a terminal: two modules per character cell in UTF-8 half
    blocks (segno's compact output), light modules drawn, for dark terminal backgrounds.

    Raises:
        TimkitError: 400 ``M_TOO_LARGE`` when ``text`` does not fit into a QR code.
    """
    out = io.StringIO()
    _make(text).terminal(out=out, border=border, compact=True)
    return out.getvalue()


def decode_png(data: bytes) -> str:
    """The text of the one QR code in the image ``data`` (PNG, or JPEG for a photo of one).

    Raises:
        TimkitError: 400 ``M_INVALID_PARAM`` when ``data`` is no PNG/JPEG image, is too large,
            holds no readable QR code or more than one; 400 ``M_TOO_LARGE`` beyond
            :data:`MAX_IMAGE_BYTES` or :data:`MAX_PIXELS`.
    """
    if len(data) > MAX_IMAGE_BYTES:
        raise TimkitError(400, Codes.TOO_LARGE, f"the image exceeds {MAX_IMAGE_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise TimkitError(400, Codes.TOO_LARGE, f"the image exceeds {MAX_PIXELS} pixels")
            gray = image.convert("L")
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise TimkitError(400, Codes.INVALID_PARAM, "the file is no PNG or JPEG image") from None
    except OSError as e:
        raise TimkitError(
            400, Codes.INVALID_PARAM, f"the image cannot be read ({type(e).__name__})"
        ) from None
    codes = [
        code
        for code in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)
        if code.valid
    ]
    if not codes:
        raise TimkitError(400, Codes.INVALID_PARAM, "the image holds no readable QR code")
    if len(codes) > 1:
        raise TimkitError(
            400,
            Codes.INVALID_PARAM,
            f"the image holds {len(codes)} QR codes; show exactly one",
        )
    payload: bytes = codes[0].bytes
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return str(codes[0].text)
