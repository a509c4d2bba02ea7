"""QR codes of the contact exchange: segno makes them, zxing-cpp reads them back from real
PNG and JPEG files; images without exactly one code are refused."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from timkit.client.qr import MAX_PIXELS, decode_png, qr_png, qr_terminal
from timkit.client.vcard import ContactCard, make_vcard, parse_vcard
from timkit.core.errors import TimkitError

CARD = ContactCard(
    "Müller-Lüdenscheidt", "Jürgen", "", "Dr.", "", "", "@juergen:klinikum-nord.tim.test"
)


def _image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def _save(image: Image.Image, kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=kind)
    return out.getvalue()


def test_af_10061_a_vcard_survives_qr_png_and_decoding() -> None:
    text = make_vcard(CARD)
    png = qr_png(text)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode_png(png) == text
    assert parse_vcard(decode_png(png)) == parse_vcard(text)


def test_a_photo_of_the_code_as_jpeg_is_read_too() -> None:
    text = make_vcard(CARD)
    photo = _image(qr_png(text, scale=6)).convert("RGB").rotate(90, expand=True)
    assert decode_png(_save(photo, "JPEG")) == text


def test_the_terminal_rendering_is_half_blocks_that_decode_to_the_same_text() -> None:
    text = make_vcard(CARD)
    rendered = qr_terminal(text)
    rows = rendered.rstrip("\n").split("\n")
    assert "\x1b" not in rendered
    assert set(rendered) <= {"█", "▀", "▄", " ", "\n"}
    assert len({len(row) for row in rows}) == 1
    # draw it back into pixels: a character cell is two modules, drawn halves are light
    width, scale = len(rows[0]), 6
    image = Image.new("L", (width * scale, len(rows) * 2 * scale), 0)
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            for half, light in enumerate((char in "█▀", char in "█▄")):
                if light:
                    top = (2 * y + half) * scale
                    image.paste(255, (x * scale, top, (x + 1) * scale, top + scale))
    framed = Image.new("L", (image.width + 8 * scale, image.height + 8 * scale), 0)
    framed.paste(image, (4 * scale, 4 * scale))
    assert decode_png(_save(Image.eval(framed, lambda v: 255 - v))) == text


def test_an_image_without_a_qr_code_is_refused() -> None:
    blank = Image.new("L", (400, 300), 255)
    for x in range(0, 400, 40):
        blank.paste(0, (x, 100, x + 20, 120))  # stripes, no code
    with pytest.raises(TimkitError) as raised:
        decode_png(_save(blank))
    assert (raised.value.status, raised.value.errcode) == (400, "M_INVALID_PARAM")
    assert "no readable QR code" in raised.value.message


def test_an_image_with_two_codes_is_refused() -> None:
    first, second = _image(qr_png("erster Code")), _image(qr_png("zweiter Code"))
    both = Image.new("L", (first.width + second.width, max(first.height, second.height)), 255)
    both.paste(first.convert("L"), (0, 0))
    both.paste(second.convert("L"), (first.width, 0))
    with pytest.raises(TimkitError) as raised:
        decode_png(_save(both))
    assert raised.value.status == 400
    assert "2 QR codes" in raised.value.message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"BEGIN:VCARD\r\n",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
    ],
)
def test_what_is_no_png_or_jpeg_is_refused(data: bytes) -> None:
    with pytest.raises(TimkitError) as raised:
        decode_png(data)
    assert (raised.value.status, raised.value.errcode) == (400, "M_INVALID_PARAM")


def test_other_image_formats_are_not_decoded() -> None:
    """Only PNG and JPEG: Pillow's other decoders (some run external programs) stay unused."""
    with pytest.raises(TimkitError) as raised:
        decode_png(_save(_image(qr_png("GIF")), "GIF"))
    assert "no PNG or JPEG" in raised.value.message


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    side = int(MAX_PIXELS**0.5) + 100
    bomb = _save(Image.new("1", (side, side), 1))
    assert len(bomb) < 1_000_000
    with pytest.raises(TimkitError) as raised:
        decode_png(bomb)
    assert (raised.value.status, raised.value.errcode) == (400, "M_TOO_LARGE")


def test_a_text_too_long_for_a_qr_code_is_a_clear_error() -> None:
    with pytest.raises(TimkitError) as raised:
        qr_png("x" * 3000 + "ü" * 100)
    assert (raised.value.status, raised.value.errcode) == (400, "M_TOO_LARGE")
