"""The ledger rows a test pipeline wrote to its SQLite file."""

from __future__ import annotations

import sqlite3
from typing import Any

from keel import Settings


def last_row(settings: Settings) -> dict[str, Any]:
    """The newest row, as a dict (JSON columns left as text)."""
    with sqlite3.connect(settings.db_path) as db:
        db.row_factory = sqlite3.Row
        row = dict(db.execute("select * from calls order by ts desc limit 1").fetchone())
    db.close()
    return row
