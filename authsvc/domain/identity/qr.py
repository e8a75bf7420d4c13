"""The otpauth URI as a QR code, for authenticator apps to scan (segno)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import segno

#: Pixels per module in the PNG and the SVG, and the quiet zone in modules
#: (4 is what the QR standard asks for).
SCALE = 6
BORDER = 4


@dataclass(frozen=True, slots=True)
class QrImages:
    svg: str  # an SVG document
    png: bytes


def images(uri: str) -> QrImages:
    """The same QR code as SVG and PNG; error correction level M, which
    survives a screen's glare and a photo's blur and keeps the code small."""
    code = segno.make(uri, error="m", micro=False)
    png = io.BytesIO()
    code.save(png, kind="png", scale=SCALE, border=BORDER)
    svg = io.BytesIO()
    code.save(svg, kind="svg", scale=SCALE, border=BORDER, xmldecl=False)
    return QrImages(svg.getvalue().decode("utf-8"), png.getvalue())


def terminal(uri: str) -> str:
    """The code drawn with block characters, for a terminal."""
    out = io.StringIO()
    segno.make(uri, error="m", micro=False).terminal(out, compact=True, border=BORDER)
    return out.getvalue()
