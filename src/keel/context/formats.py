"""Format readers: text, Markdown, HTML and PDF files become a title and blocks under headings.

``read_document(path, data)`` picks the reader by suffix. A file that cannot be read (a corrupt
PDF, bytes that are not UTF-8 text, a file with no text at all) raises ``InvalidRequest`` with
code ``unreadable_document`` and a reason short enough for one line of ``keel ingest`` output.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import struct
import warnings
import zlib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from keel.context.chunk import Block, ParsedDocument
from keel.errors import InvalidRequest

MARKDOWN = frozenset({".md", ".markdown", ".mdown", ".mkd"})
HTML = frozenset({".html", ".htm", ".xhtml"})
PDF = frozenset({".pdf"})
TEXT = frozenset({".txt", ".text", ".rst"})
SUPPORTED = MARKDOWN | HTML | PDF | TEXT
"""Suffixes ``keel ingest`` picks up when it walks a directory."""


def unreadable(reason: str) -> InvalidRequest:
    """The error for a file keel cannot read."""
    return InvalidRequest(reason, code="unreadable_document")


def file_type(path: Path) -> str:
    """The reader a file gets: ``md``, ``html``, ``pdf`` or ``text``."""
    suffix = path.suffix.lower()
    if suffix in MARKDOWN:
        return "md"
    if suffix in HTML:
        return "html"
    if suffix in PDF:
        return "pdf"
    return "text"


def read_document(path: Path, data: bytes) -> ParsedDocument:
    """Parse ``data`` (the bytes of ``path``); InvalidRequest(unreadable_document) when it has no text."""
    kind = file_type(path)
    reader: Callable[[bytes, str], ParsedDocument] = _READERS[kind]
    doc = reader(data, path.stem)
    if not any(b.text.strip() for b in doc.blocks):
        raise unreadable("empty: no text" + (" (a scanned PDF? keel does no OCR)" if kind == "pdf" else ""))
    return doc


def decode(data: bytes) -> str:
    """Bytes as text: UTF-8 (a BOM is dropped) or UTF-16 with a BOM; anything else is refused."""
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    encoding = "utf-16" if utf16 else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        what = "UTF-16" if utf16 else "UTF-8"
        raise unreadable(f"not {what} text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})") from None
    if "\x00" in text:
        raise unreadable("binary data, not text")
    return text


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


# -- plain text -----------------------------------------------------------------------------------


def read_text(data: bytes, stem: str) -> ParsedDocument:
    """Paragraphs separated by blank lines; the file name is the title."""
    return ParsedDocument(stem, [Block(p) for p in _paragraphs(decode(data))])


# -- Markdown -------------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```+|~~~+)")
_FRONT_TITLE = re.compile(r"^title:\s*['\"]?(.*?)['\"]?\s*$", re.MULTILINE)


def read_markdown(data: bytes, stem: str) -> ParsedDocument:
    """Sections by ATX (``#``) and setext headings; fenced code stays one block; front matter is dropped."""
    lines = decode(data).splitlines()
    title = ""
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
        if end is not None:
            found = _FRONT_TITLE.search("\n".join(lines[1:end]))
            title = found.group(1) if found else ""
            lines = lines[end + 1 :]
    stack: list[tuple[int, str]] = []
    blocks: list[Block] = []
    para: list[str] = []
    fence: str | None = None

    def flush() -> None:
        text = "\n".join(para).strip()
        para.clear()
        if text:
            blocks.append(Block(text, tuple(h for _, h in stack)))

    def heading(level: int, text: str) -> None:
        nonlocal title
        flush()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        if level == 1 and not title:
            title = text

    for i, line in enumerate(lines):
        if fence is not None:
            para.append(line)
            if line.strip().startswith(fence):
                fence = None
                flush()
            continue
        if m := _FENCE.match(line):
            flush()
            fence = m.group(1)
            para.append(line)
        elif m := _ATX.match(line):
            heading(len(m.group(1)), (m.group(2) or "").strip())
        elif _SETEXT.match(line) and para and i > 0 and lines[i - 1].strip() and len(para) == 1:
            text = para.pop()
            heading(1 if line.strip().startswith("=") else 2, text.strip())
        elif not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    return ParsedDocument(title or stem, blocks)


# -- HTML -----------------------------------------------------------------------------------------

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head", "nav", "footer", "iframe"})
_BLOCK = frozenset(
    {
        "p",
        "div",
        "li",
        "ul",
        "ol",
        "pre",
        "blockquote",
        "section",
        "article",
        "main",
        "table",
        "tr",
        "dl",
        "dt",
        "dd",
        "figure",
        "figcaption",
        "form",
        "hr",
        "br",
        "address",
        "details",
        "summary",
    }
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_VOID = frozenset(
    {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"}
)
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_-]+)""", re.IGNORECASE)


class _HTMLText(HTMLParser):
    """Text of the visible blocks, with headings as a path; scripts, styles and navigation are left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.blocks: list[Block] = []
        self._stack: list[tuple[int, str]] = []
        self._text: list[str] = []
        self._skip = 0
        self._in_title = False
        self._heading: int | None = None
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP and tag not in _VOID:
            self._skip += 1
        elif tag in _HEADINGS:
            self._flush()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCK:
            self._flush()
            self._pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP:
            self._skip = max(self._skip - 1, 0)
        elif tag in _HEADINGS and self._heading is not None:
            text = " ".join("".join(self._text).split())
            self._text.clear()
            level, self._heading = self._heading, None
            while self._stack and self._stack[-1][0] >= level:
                self._stack.pop()
            if text:
                self._stack.append((level, text))
                if level == 1 and not self.title:
                    self.title = text
        elif tag in _BLOCK:
            self._flush()
            self._pre -= tag == "pre" and self._pre > 0

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = self.title or " ".join(data.split())
        elif not self._skip:
            self._text.append(data)

    def _flush(self) -> None:
        if self._heading is not None:
            return  # a block inside a heading: the heading's text goes on
        raw = "".join(self._text)
        self._text.clear()
        text = raw.strip("\n") if self._pre else " ".join(raw.split())
        if text.strip():
            self.blocks.append(Block(text, tuple(h for _, h in self._stack)))

    def close(self) -> None:
        super().close()
        self._heading = None
        self._flush()


def read_html(data: bytes, stem: str) -> ParsedDocument:
    """Visible text by block element, under the path of ``h1``–``h6`` headings; ``<title>`` is the title."""
    charset = _CHARSET.search(data[:4096])
    if charset and charset.group(1).lower() not in (b"utf-8", b"utf8"):
        try:
            text = data.decode(charset.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            raise unreadable(f"cannot decode as its declared charset {charset.group(1).decode()}") from None
    else:
        text = decode(data)
    if "<" not in text:
        raise unreadable("not HTML: no markup")
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    return ParsedDocument(parser.title or stem, parser.blocks)


# -- PDF ------------------------------------------------------------------------------------------


def read_pdf(data: bytes, stem: str) -> ParsedDocument:
    """Each page's text (pypdf), by paragraph, with its page number; the PDF's title when it has one."""
    from pypdf import PdfReader  # imported here: only PDFs need it
    from pypdf.errors import PyPdfError

    # pypdf logs what it finds wrong with a damaged file; keel reports one reason per file itself.
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise unreadable("not a PDF (no %PDF header)")
    # A damaged PDF makes pypdf raise many kinds of errors from deep inside its parser.
    broken = (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        AttributeError,
        AssertionError,
        RecursionError,
        struct.error,
        zlib.error,
        OSError,
        EOFError,
        UnicodeError,
    )
    try:
        with warnings.catch_warnings():  # nor its warnings
            warnings.simplefilter("ignore")
            title, blocks = _pdf_text(PdfReader(io.BytesIO(data), strict=False))
    except broken as exc:
        raise unreadable(f"corrupt PDF ({type(exc).__name__}: {str(exc)[:120]})") from None
    return ParsedDocument(title or stem, blocks)


def _pdf_text(reader: Any) -> tuple[str, list[Block]]:
    if reader.is_encrypted and not reader.decrypt(""):
        raise unreadable("encrypted PDF")
    title = ""
    meta = reader.metadata
    if meta is not None and meta.title:
        title = str(meta.title).strip()
    blocks: list[Block] = []
    for number, page in enumerate(reader.pages, start=1):
        text = page.extract_text() or ""
        blocks += [Block(p, (), number) for p in _paragraphs(text)]
    return title, blocks


_READERS: dict[str, Callable[[bytes, str], ParsedDocument]] = {
    "md": read_markdown,
    "html": read_html,
    "pdf": read_pdf,
    "text": read_text,
}
