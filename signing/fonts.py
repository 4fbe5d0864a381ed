"""A CJK font to write names with, for the text the PDF standard fonts cannot show.

The standard fonts cover WinAnsi (Latin-1 plus a few): a Chinese signer's name would print as '?'
on the completion page and in the visible signatures. When a text needs more, it is set in
WenQuanYi Micro Hei (Debian fonts-wqy-microhei, a dependency of `make sysdeps`), embedded as a
subset through pyhanko's OpenType engine. Its "Mono" face sets Latin at 0.6 em like Courier, so the
completion page keeps its columns. No font installed: the standard fonts, '?' and a warning.
"""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection, TTFont, TTLibError
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.api import FontEngineFactory
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.writer import BasePdfFileWriter

log = logging.getLogger(__name__)
# fontTools names every table it drops from a subset (FFTM, a FontForge timestamp) at WARNING,
# at each signing: noise in the server's log.
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)


def winansi(text: str) -> bool:
    """Whether the PDF standard fonts (WinAnsiEncoding) can show `text`."""
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


class EmbeddedFont:
    """One face of a TrueType font, as bytes pyhanko can subset, with its advance widths."""

    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name
        font = TTFont(io.BytesIO(data))
        self._units = font["head"].unitsPerEm
        self._cmap = font.getBestCmap()
        self._advances = {glyph: advance for glyph, (advance, _) in font["hmtx"].metrics.items()}
        notdef = self._advances.get(".notdef", self._units)
        self._widths: dict[str, float] = {}
        self._missing_width = notdef / self._units

    def width_em(self, text: str) -> float:
        """Advance of `text` in em (no kerning: the faces used here have none that matters)."""
        total = 0.0
        for char in text:
            width = self._widths.get(char)
            if width is None:
                glyph = self._cmap.get(ord(char))
                advance = self._advances.get(glyph) if glyph is not None else None
                # In thousandths of an em, as the PDF's widths are: Mono's Latin is then 0.6 exactly.
                width = (
                    round(1000 * advance / self._units) / 1000 if advance is not None else self._missing_width
                )
                self._widths[char] = width
            total += width
        return total

    def engine(self, writer: BasePdfFileWriter, size: float, obj_stream: object = None) -> GlyphAccumulator:
        """A shaping engine on `writer` that embeds the glyphs it shapes, as a subset."""
        return _ThousandthsAccumulator(writer, io.BytesIO(self.data), size, obj_stream=obj_stream)

    def for_text(self, text: str) -> EmbeddedFont:
        """This face cut down to the glyphs `text` and printable ASCII need. pyhanko then parses,
        shapes and subsets a font of kilobytes rather than megabytes: signing with a Chinese name
        took 1.67 s with the whole font."""
        return _cut_down(self, frozenset(text) | _PRINTABLE_ASCII)

    def factory(self, size: float = 10) -> FontEngineFactory:
        """For pyhanko's text boxes (signature stamps)."""
        return _EngineFactory(self, size)


class _ThousandthsAccumulator(GlyphAccumulator):
    """pyhanko's engine (0.38) writes glyph widths and font metrics in the font's own units, which
    a PDF reads as thousandths of an em: right only for fonts of 1000 units per em. WenQuanYi has
    2048, and every glyph came out twice as wide. This one works in thousandths of an em
    throughout: HarfBuzz scaled to 1000, widths and the font descriptor converted."""

    def __init__(
        self, writer: BasePdfFileWriter, font_handle: io.BytesIO, size: float, obj_stream: object = None
    ):
        super().__init__(writer, font_handle, size, obj_stream=obj_stream)
        scale = 1000 / self.units_per_em
        self._to_thousandths = scale
        self.units_per_em = 1000
        self.hb_font.scale = (1000, 1000)
        descriptor = self.cidfont_obj._font_descriptor
        for key in ("/Ascent", "/Descent", "/CapHeight"):
            descriptor[key] = generic.NumberObject(round(int(descriptor[key]) * scale))
        descriptor["/FontBBox"] = generic.ArrayObject(
            generic.NumberObject(round(int(v) * scale)) for v in descriptor["/FontBBox"]
        )

    def _get_cid_and_width(self, glyph_id: int) -> tuple[int, int]:
        known: tuple[int, int] | None = self._glyphs.get(glyph_id)
        if known is not None:
            return known
        cid, width = super()._get_cid_and_width(glyph_id)
        self._glyphs[glyph_id] = result = (cid, round(width * self._to_thousandths))
        return result


class _EngineFactory(FontEngineFactory):
    def __init__(self, font: EmbeddedFont, size: float):
        self._font = font
        self._size = size

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> GlyphAccumulator:
        return self._font.engine(writer, self._size, obj_stream)


_PRINTABLE_ASCII = frozenset(map(chr, range(0x20, 0x7F)))


@functools.lru_cache(maxsize=16)
def _cut_down(font: EmbeddedFont, chars: frozenset[str]) -> EmbeddedFont:
    face = TTFont(io.BytesIO(font.data))
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]  # pyhanko names the embedded font from the PostScript name
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in chars])
    subsetter.subset(face)
    out = io.BytesIO()
    face.save(out)
    return EmbeddedFont(out.getvalue(), font.name)


@functools.cache
def cjk_font(mono: bool = False) -> EmbeddedFont | None:
    """The installed CJK face (the Mono one if asked and present), or None with a warning."""
    for path in FONT_CANDIDATES:
        if not path.is_file():
            continue
        try:
            faces = TTCollection(str(path)).fonts if path.suffix == ".ttc" else [TTFont(str(path))]
            face = next(
                (f for f in faces if "mono" in str(f["name"].getDebugName(4)).lower()) if mono else iter(()),
                faces[0],
            )
            if "glyf" not in face:
                continue  # CFF outlines: pyhanko embeds them too, but the widths differ; not tried
            out = io.BytesIO()
            face.save(out)
            return EmbeddedFont(out.getvalue(), str(face["name"].getDebugName(4)))
        except (OSError, TTLibError, KeyError) as exc:
            log.warning("signing font %s unusable: %s", path, exc)
    log.warning(
        "no CJK TrueType font found (%s): names outside Latin-1 print as '?' in signed PDFs; "
        "install the Debian package fonts-wqy-microhei",
        ", ".join(str(p) for p in FONT_CANDIDATES),
    )
    return None
