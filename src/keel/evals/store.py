"""Eval runs, per-case results and the output cache, in keel's SQLite state file.

The cache maps a case's input (prompt version, model, messages, variables, parameters) to the
output the model gave, with its latency and cost, so running a suite again costs nothing until
something under test changes. Judge verdicts are cached the same way.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keel.errors import ConfigError
from keel.prompts.sqlite_registry import immediate, open_sqlite

if TYPE_CHECKING:
    from keel.settings import Settings

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS eval_runs (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL, suite TEXT NOT NULL, feature TEXT NOT NULL,
        prompt TEXT, model TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, summary TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS eval_results (
        run_id TEXT NOT NULL, pos INTEGER NOT NULL, case_id TEXT NOT NULL, passed BOOLEAN NOT NULL,
        score DOUBLE PRECISION NOT NULL, output TEXT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL, cached BOOLEAN NOT NULL, error TEXT, outcomes TEXT NOT NULL,
        PRIMARY KEY (run_id, case_id))""",
    """CREATE TABLE IF NOT EXISTS eval_cache (
        key TEXT PRIMARY KEY, value TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)""",
]


Writer = Callable[[str, Sequence[Sequence[Any]]], Any]
"""Runs one statement once per row of parameters, inside the write transaction."""


def _create(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        db.execute(statement)
    columns = {row[1] for row in db.execute("PRAGMA table_info(eval_results)")}
    if "pos" not in columns:  # a store from the first release of evals kept cases in rowid order
        db.execute("ALTER TABLE eval_results ADD COLUMN pos INTEGER NOT NULL DEFAULT 0")


@dataclass(slots=True)
class CaseResult:
    """One case of one run."""

    case_id: str
    passed: bool
    score: float
    output: str
    latency_ms: float
    cost_usd: float
    cached: bool
    error: str | None
    outcomes: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Run:
    """A suite run against one model: its summary and its cases."""

    id: str
    suite: str
    feature: str
    prompt: str | None
    model: str
    created_at: float
    results: list[CaseResult]

    @property
    def pass_rate(self) -> float:
        """Share of cases that passed."""
        return sum(r.passed for r in self.results) / len(self.results) if self.results else 0.0

    @property
    def mean_score(self) -> float:
        """Mean case score."""
        return sum(r.score for r in self.results) / len(self.results) if self.results else 0.0

    def summary(self) -> dict[str, Any]:
        """Totals for listings: cases, passed, pass rate, mean score, cost, latency, cache hits."""
        lat = sorted(r.latency_ms for r in self.results)
        return {
            "cases": len(self.results),
            "passed": sum(r.passed for r in self.results),
            "pass_rate": round(self.pass_rate, 4),
            "mean_score": round(self.mean_score, 4),
            "cost_usd": sum(r.cost_usd for r in self.results if not r.cached),
            "cost_if_uncached_usd": sum(r.cost_usd for r in self.results),
            "p50_ms": lat[len(lat) // 2] if lat else 0.0,
            "p95_ms": lat[min(len(lat) - 1, int(len(lat) * 0.95))] if lat else 0.0,
            "cached": sum(r.cached for r in self.results),
            "errors": sum(r.error is not None for r in self.results),
        }


class EvalStore(ABC):
    """Runs and cache entries behind a small SQL seam; the backends differ in how they connect and lock.

    SQL here uses ``?`` placeholders and portable statements (``ON CONFLICT … DO UPDATE``).
    """

    where: str = "eval store"

    @abstractmethod
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read."""

    @abstractmethod
    def _write(self, build: Callable[[Writer], None]) -> None:
        """Run ``build`` in one write transaction, serialised with every other writer."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def cached(self, key: str) -> dict[str, Any] | None:
        """The cached value for ``key``, or None."""
        rows = self._query("SELECT value FROM eval_cache WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def remember(self, key: str, value: dict[str, Any]) -> None:
        """Cache ``value`` under ``key``."""

        def build(w: Writer) -> None:
            w(
                "INSERT INTO eval_cache VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                "SET value = excluded.value, created_at = excluded.created_at",
                [(key, json.dumps(value), time.time())],
            )

        self._write(build)

    def save(self, run: Run) -> None:
        """Store a finished run and its cases in one transaction."""
        head = (
            run.id,
            run.suite,
            run.feature,
            run.prompt,
            run.model,
            run.created_at,
            json.dumps(run.summary()),
        )
        rows = [
            (run.id, i, r.case_id, r.passed, r.score, r.output, r.latency_ms, r.cost_usd, r.cached, r.error,
             json.dumps(r.outcomes))
            for i, r in enumerate(run.results)
        ]  # fmt: skip

        def build(w: Writer) -> None:
            w(
                "INSERT INTO eval_runs (id, suite, feature, prompt, model, created_at, summary, seq) "
                "SELECT ?, ?, ?, ?, ?, ?, ?, coalesce(max(seq), 0) + 1 FROM eval_runs",
                [head],
            )
            w(
                "INSERT INTO eval_results (run_id, pos, case_id, passed, score, output, latency_ms, "
                "cost_usd, cached, error, outcomes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

        self._write(build)

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs first, with their summaries."""
        rows = self._query(
            "SELECT id, suite, feature, prompt, model, created_at, summary FROM eval_runs "
            "ORDER BY seq DESC LIMIT ?",
            (limit,),
        )
        keys = ("id", "suite", "feature", "prompt", "model", "created_at")
        return [{**dict(zip(keys, r[:6], strict=True)), **json.loads(r[6])} for r in rows]

    def resolve(self, ref: str) -> str:
        """A run id from ``ref``: an id (or unique prefix), ``latest``, or ``latest~N``."""
        if ref == "latest" or ref.startswith("latest~"):
            back_text = ref.removeprefix("latest").removeprefix("~")
            if ref != "latest" and not back_text.isdigit():
                raise ConfigError(f"bad run reference {ref!r}: use an id, latest or latest~N")
            found = self._query(
                "SELECT id FROM eval_runs ORDER BY seq DESC LIMIT 1 OFFSET ?", (int(back_text or 0),)
            )
            if not found:
                raise ConfigError(f"no eval run {ref!r} in {self.where}")
            return str(found[0][0])
        rows = self._query("SELECT id FROM eval_runs WHERE id LIKE ?", (ref.replace("%", "") + "%",))
        if len(rows) != 1:
            what = "no eval run" if not rows else "several eval runs match"
            raise ConfigError(f"{what} {ref!r} in {self.where} (keel eval list shows them)")
        return str(rows[0][0])

    def load(self, ref: str) -> Run:
        """The run ``ref`` names, with its cases."""
        run_id = self.resolve(ref)
        head = self._query(
            "SELECT id, suite, feature, prompt, model, created_at FROM eval_runs WHERE id = ?", (run_id,)
        )
        rows = self._query(
            "SELECT case_id, passed, score, output, latency_ms, cost_usd, cached, error, outcomes "
            "FROM eval_results WHERE run_id = ? ORDER BY pos, case_id",
            (run_id,),
        )
        results = [
            CaseResult(r[0], bool(r[1]), r[2], r[3], r[4], r[5], bool(r[6]), r[7], json.loads(r[8]))
            for r in rows
        ]
        h = head[0]
        return Run(h[0], h[1], h[2], h[3], h[4], h[5], results)

    def __enter__(self) -> EvalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SQLiteEvalStore(EvalStore):
    """The store in a SQLite file (WAL), beside the ledger by default; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        self._db = open_sqlite(path, "eval store", _create)
        self._lock = threading.Lock()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def _write(self, build: Callable[[Writer], None]) -> None:
        with self._lock, immediate(self._db):  # the write lock first: concurrent writers take turns
            build(lambda sql, rows: self._db.executemany(sql, rows))

    def close(self) -> None:
        self._db.close()


def open_eval_store(target: str | Path) -> EvalStore:
    """PostgreSQL for a ``postgresql://`` URL, else a SQLite file."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from keel.evals.postgres_store import PostgresEvalStore  # psycopg loads only when used

        return PostgresEvalStore(target)
    return SQLiteEvalStore(Path(target))


def eval_store_target(settings: Settings) -> str | Path:
    """``evals.store`` (a relative path against the config file), else keel's state file."""
    configured = settings.evals.store
    if configured is None:
        return settings.db_path
    if configured.startswith(("postgresql://", "postgres://")):
        return configured
    return settings.resolve(Path(configured))


def result_dict(result: CaseResult) -> dict[str, Any]:
    """A case result as plain data (for JSON output)."""
    return asdict(result)
