"""BM25 as sparse vectors, for an index (Qdrant) that has no keyword search of its own.

Terms come from the same analyser as the SQLite index (SQLite's FTS5 ``porter unicode61
remove_diacritics 2`` tokenizer, run on an in-memory table), so both backends stem alike. A chunk
carries BM25's saturated term frequencies; the index multiplies in the IDF at query time.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import Counter
from collections.abc import Sequence

from qdrant_client import models

from keel.context.sqlite_schema import query_words

_K1, _B, _AVGDL = 1.2, 0.75, 120.0  # BM25 constants; chunks are cut to about the same length


def _term_id(term: str) -> int:
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little")


class Analyser:
    """Terms of texts as SQLite's FTS5 ``porter unicode61 remove_diacritics 2`` tokenizer finds them."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(":memory:", isolation_level=None)
            db.execute(
                "CREATE VIRTUAL TABLE t USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2')"
            )
            db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        return db

    def terms(self, texts: Sequence[str]) -> list[Counter[str]]:
        """Term frequencies per text."""
        db = self._db()
        db.execute("BEGIN")
        try:
            db.executemany("INSERT INTO t (rowid, body) VALUES (?, ?)", enumerate(texts))
            out: list[Counter[str]] = [Counter() for _ in texts]
            for doc, term, n in db.execute("SELECT doc, term, COUNT(*) FROM v GROUP BY doc, term"):
                out[doc][term] = n
            db.execute("DELETE FROM t")
        finally:
            db.execute("COMMIT")
        return out

    def document(self, counts: Counter[str]) -> models.SparseVector:
        """BM25's saturated term frequencies (Qdrant multiplies in the IDF)."""
        dl = sum(counts.values())
        weights: dict[int, float] = {}
        for term, tf in counts.items():
            w = tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * dl / _AVGDL))
            tid = _term_id(term)
            weights[tid] = weights.get(tid, 0.0) + w
        return models.SparseVector(indices=list(weights), values=list(weights.values()))

    def query(self, text: str) -> models.SparseVector:
        """Each distinct query term once (stop words left out, as the SQLite index does)."""
        ids = sorted({_term_id(t) for t in self.terms([" ".join(query_words(text))])[0]})
        return models.SparseVector(indices=ids, values=[1.0] * len(ids))
