"""Files for the Context layer's tests: a tiny hand-written PDF, a mixed-format corpus, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from keel.context.qdrant_index import QdrantIndex

CLI = [str(Path(sys.executable).parent / "keel")]


@contextmanager
def killed_before_commit(index: QdrantIndex) -> Iterator[None]:
    """The Qdrant write inside the block dies after its chunk points, before its manifest (the commit)."""
    upsert = index._upsert

    def crash_on_manifest(collection: str, points: list[Any]) -> None:
        if any((p.payload or {}).get("kind") == "document" for p in points):
            raise RuntimeError("killed")
        upsert(collection, points)

    index._upsert = crash_on_manifest  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError, match="killed"):
            yield
    finally:
        index._upsert = upsert  # type: ignore[method-assign]


def keel(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``keel ARGS`` in ``cwd`` and capture its output."""
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def tiny_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A valid PDF with one Helvetica text line per string, one page per list (written by hand)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, lines in enumerate(pages):
        content = (
            "BT /F1 12 Tf 14 TL 72 720 Td " + " ".join(f"({_escape(line)}) Tj T*" for line in lines) + " ET"
        )
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            f" /Resources << /Font << /F1 {font} 0 R >> >>"
            f" /Contents {4 + 2 * i} 0 R >>".encode()
        )
        data = content.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info = None
    if title is not None:
        objects.append(f"<< /Title ({_escape(title)}) >>".encode("latin-1"))
        info = len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


MARKDOWN = """\
# Acme handbook

Welcome to the Acme handbook for customers.

## Refunds

Refunds are paid within 14 days of the request, to the card that paid.

### Exceptions

Sale items and gift cards cannot be refunded.

## Shipping

Parcels leave the warehouse on weekdays before noon.
"""

HTML = """\
<!doctype html><html><head><title>Warranty</title><style>p {color: red}</style>
<script>var tracking = "do not index me";</script></head>
<body><nav>Home | Shop | About</nav>
<h1>Warranty terms</h1>
<p>Every kettle carries a warranty of three years from the date of purchase.</p>
<h2>Claims</h2>
<p>Send claims with the serial number to warranty@acme.example.</p>
<footer>Copyright Acme</footer></body></html>
"""

TEXT = "Opening hours\n\nThe Acme shop opens at nine and closes at six on weekdays.\n"

PDF_PAGES = [
    ["Acme loyalty programme"],
    ["Members collect one point per euro spent.", "Points expire after two years."],
]


def write_corpus(folder: Path) -> dict[str, Path]:
    """A small corpus of every supported format, plus files that must be skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "md": folder / "handbook.md",
        "html": folder / "warranty.html",
        "txt": folder / "hours.txt",
        "pdf": folder / "loyalty.pdf",
        "corrupt": folder / "broken.pdf",
        "empty": folder / "empty.md",
        "binary": folder / "latin1.txt",
    }
    files["md"].write_text(MARKDOWN)
    files["html"].write_text(HTML)
    files["txt"].write_text(TEXT)
    files["pdf"].write_bytes(tiny_pdf(PDF_PAGES, title="Loyalty"))
    files["corrupt"].write_bytes(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer <<>>\n%%EO"
    )
    files["empty"].write_text("")
    files["binary"].write_bytes("Café prices in Latin-1: caf\xe9".encode("latin-1"))
    return files
