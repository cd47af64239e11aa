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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keel.errors import ConfigError
from keel.prompts.sqlite_registry import immediate, open_sqlite

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS eval_runs (
        id TEXT PRIMARY KEY, seq INTEGER NOT NULL, suite TEXT NOT NULL, feature TEXT NOT NULL,
        prompt TEXT, model TEXT NOT NULL, created_at REAL NOT NULL, summary TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS eval_results (
        run_id TEXT NOT NULL, case_id TEXT NOT NULL, passed INTEGER NOT NULL, score REAL NOT NULL,
        output TEXT NOT NULL, latency_ms REAL NOT NULL, cost_usd REAL NOT NULL, cached INTEGER NOT NULL,
        error TEXT, outcomes TEXT NOT NULL, PRIMARY KEY (run_id, case_id))""",
    """CREATE TABLE IF NOT EXISTS eval_cache (
        key TEXT PRIMARY KEY, value TEXT NOT NULL, created_at REAL NOT NULL)""",
]


def _create(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        db.execute(statement)


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


class EvalStore:
    """Runs and cache entries in SQLite (WAL); safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        self._db = open_sqlite(path, "eval store", _create)
        self._lock = threading.Lock()

    def cached(self, key: str) -> dict[str, Any] | None:
        """The cached value for ``key``, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM eval_cache WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def remember(self, key: str, value: dict[str, Any]) -> None:
        """Cache ``value`` under ``key``."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO eval_cache VALUES (?, ?, ?)", (key, json.dumps(value), time.time())
            )

    def save(self, run: Run) -> None:
        """Store a finished run and its cases in one transaction."""
        with self._lock:
            db = self._db
            with immediate(db):  # the write lock first: concurrent writers take turns
                seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM eval_runs").fetchone()[0]
                db.execute(
                    "INSERT INTO eval_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.id,
                        seq,
                        run.suite,
                        run.feature,
                        run.prompt,
                        run.model,
                        run.created_at,
                        json.dumps(run.summary()),
                    ),
                )
                db.executemany(
                    "INSERT INTO eval_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            run.id,
                            r.case_id,
                            int(r.passed),
                            r.score,
                            r.output,
                            r.latency_ms,
                            r.cost_usd,
                            int(r.cached),
                            r.error,
                            json.dumps(r.outcomes),
                        )
                        for r in run.results
                    ],
                )

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest runs first, with their summaries."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, suite, feature, prompt, model, created_at, summary FROM eval_runs "
                "ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {
                "id": r[0],
                "suite": r[1],
                "feature": r[2],
                "prompt": r[3],
                "model": r[4],
                "created_at": r[5],
                **json.loads(r[6]),
            }
            for r in rows
        ]

    def resolve(self, ref: str) -> str:
        """A run id from ``ref``: an id (or unique prefix), ``latest``, or ``latest~N``."""
        with self._lock:
            if ref == "latest" or ref.startswith("latest~"):
                back_text = ref.removeprefix("latest").removeprefix("~")
                if ref != "latest" and not back_text.isdigit():
                    raise ConfigError(f"bad run reference {ref!r}: use an id, latest or latest~N")
                back = int(back_text or 0)
                row = self._db.execute(
                    "SELECT id FROM eval_runs ORDER BY seq DESC LIMIT 1 OFFSET ?", (back,)
                ).fetchone()
                if row is None:
                    raise ConfigError(f"no eval run {ref!r} in {self.where}")
                return str(row[0])
            rows = self._db.execute("SELECT id FROM eval_runs WHERE id LIKE ?", (ref + "%",)).fetchall()
        if len(rows) != 1:
            what = "no eval run" if not rows else "several eval runs match"
            raise ConfigError(f"{what} {ref!r} in {self.where} (keel eval list shows them)")
        return str(rows[0][0])

    def load(self, ref: str) -> Run:
        """The run ``ref`` names, with its cases."""
        run_id = self.resolve(ref)
        with self._lock:
            head = self._db.execute(
                "SELECT id, suite, feature, prompt, model, created_at FROM eval_runs WHERE id = ?", (run_id,)
            ).fetchone()
            rows = self._db.execute(
                "SELECT case_id, passed, score, output, latency_ms, cost_usd, cached, error, outcomes "
                "FROM eval_results WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        results = [
            CaseResult(r[0], bool(r[1]), r[2], r[3], r[4], r[5], bool(r[6]), r[7], json.loads(r[8]))
            for r in rows
        ]
        return Run(head[0], head[1], head[2], head[3], head[4], head[5], results)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> EvalStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def result_dict(result: CaseResult) -> dict[str, Any]:
    """A case result as plain data (for JSON output)."""
    return asdict(result)
