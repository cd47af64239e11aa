"""``keel ingest`` and ``keel collections`` as a user runs them: subprocesses on a real index file,
embeddings from a fake OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.context.context_files import CLI, keel, write_corpus

from keel.testing import FakeUpstream

pytestmark = pytest.mark.integration

CONFIG = """\
models: [{{name: m, provider: openai, base_url: {url}}}]
features: [{{name: f, model: m}}]
embeddings: {{provider: openai, base_url: {url}, model: fake-embed, batch_size: {batch}}}
index: {{path: index.db, chunking: {{max_tokens: 64, overlap_tokens: 8}}}}
ledger: {{enabled: false}}
"""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(embedding_dim=32) as f:
        yield f


def project(tmp_path: Path, fake: FakeUpstream, batch: int = 32) -> Path:
    (tmp_path / "keel.yaml").write_text(CONFIG.format(url=fake.base_url, batch=batch))
    return tmp_path


def test_ingest_reports_each_bad_file_and_a_summary(tmp_path: Path, fake: FakeUpstream) -> None:
    root = project(tmp_path, fake)
    write_corpus(root / "docs")
    done = keel("ingest", "docs", "missing.md", "--collection", "handbook", cwd=root)
    assert done.returncode == 0, done.stderr
    skipped = sorted(line for line in done.stderr.splitlines() if line.startswith("skipped:"))
    assert [line.split(":")[1].strip() for line in skipped] == [
        "docs/broken.pdf",
        "docs/empty.md",
        "docs/latin1.txt",
        "missing.md",
    ]
    assert "corrupt PDF" in skipped[0] and "no such file" in skipped[3]
    assert done.stdout.startswith("handbook: 8 files: 4 ingested") and "4 skipped" in done.stdout

    again = keel("ingest", "docs", "--collection", "handbook", cwd=root)
    assert "0 ingested (0 chunks, 0 embedded), 4 unchanged, 3 skipped" in again.stdout


def test_collections_list_show_and_drop(tmp_path: Path, fake: FakeUpstream) -> None:
    root = project(tmp_path, fake)
    write_corpus(root / "docs")
    assert keel("ingest", "docs", "-C", "handbook", "--meta", "team=support", cwd=root).returncode == 0
    listed = json.loads(keel("collections", "list", "--format", "json", cwd=root).stdout)
    assert [(c["name"], c["documents"], c["model"], c["dim"]) for c in listed] == [
        ("handbook", 4, "fake-embed", 32)
    ]
    shown = json.loads(keel("collections", "show", "handbook", "-f", "json", cwd=root).stdout)
    assert sorted(d["source"] for d in shown["documents"]) == [
        "docs/handbook.md",
        "docs/hours.txt",
        "docs/loyalty.pdf",
        "docs/warranty.html",
    ]
    assert all(d["metadata"] == {"team": "support"} for d in shown["documents"])
    table = keel("collections", "show", "handbook", cwd=root).stdout
    assert "docs/handbook.md" in table and "Acme handbook" in table

    refused = keel("collections", "drop", "handbook", cwd=root)
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    assert "dropped handbook" in keel("collections", "drop", "handbook", "--yes", cwd=root).stdout
    gone = keel("collections", "show", "handbook", cwd=root)
    assert gone.returncode == 1 and gone.stderr.strip() == (
        "keel: error: no collection 'handbook' (see: keel collections list)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "docs", "-C", "bad name!"], "--collection 'bad name!': a collection name uses"),
        (["ingest", "docs", "-C", "ok", "--meta", "oops"], "--meta 'oops': expected key=value"),
    ],
)
def test_bad_arguments_get_one_line(
    tmp_path: Path, fake: FakeUpstream, args: list[str], message: str
) -> None:
    root = project(tmp_path, fake)
    (root / "docs").mkdir()
    done = keel(*args, cwd=root)
    assert done.returncode != 0 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_interrupted_ingest_leaves_the_index_consistent_and_a_rerun_finishes(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    root = project(tmp_path, fake, batch=8)
    docs = root / "docs"
    docs.mkdir()
    for i in range(60):  # 5 or 6 chunks each: a few batches of 128 chunks
        body = "".join(
            f"Paragraph {j} of note {i} explains item {i * 100 + j} in some detail, with an example.\n\n"
            for j in range(16)
        )
        (docs / f"note{i:03}.md").write_text(f"# Note {i}\n\n{body}")
    fake.configure(latency_ms=150)  # slow embeddings, so the kill lands mid-run
    try:
        proc = subprocess.Popen(
            [*CLI, "ingest", "docs", "-C", "notes", "--verbose"],
            cwd=root,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if line.startswith("ingested:") or not line:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.stderr.close()
    finally:
        fake.configure(latency_ms=0)
    db = sqlite3.connect(root / "index.db")
    try:
        records = dict(db.execute("SELECT source, chunks FROM documents").fetchall())
        stored = dict(db.execute("SELECT source, COUNT(*) FROM chunks GROUP BY source").fetchall())
        [cid] = db.execute("SELECT id FROM collections WHERE name = 'notes'").fetchone()
        indexed = db.execute(f"SELECT COUNT(*) FROM fts_{cid}").fetchone()[0]
    finally:
        db.close()
    assert 0 < len(records) < 60, "the kill should land between the first and the last file"
    assert stored == records  # every document has exactly its chunks, none has a partial set
    assert indexed == sum(stored.values())  # and the keyword index matches
    rerun = keel("ingest", "docs", "-C", "notes", cwd=root)
    assert f"{60 - len(records)} ingested" in rerun.stdout and f"{len(records)} unchanged" in rerun.stdout


def test_the_qdrant_backend_is_chosen_by_configuration(tmp_path: Path, fake: FakeUpstream) -> None:
    root = project(tmp_path, fake)
    text = (
        (root / "keel.yaml")
        .read_text()
        .replace("index: {path: index.db,", "index: {backend: qdrant, path: q,")
    )
    (root / "keel.yaml").write_text(text)
    write_corpus(root / "docs")
    done = keel("ingest", "docs", "-C", "handbook", cwd=root)
    assert done.returncode == 0 and "4 ingested" in done.stdout, done.stderr
    listed = json.loads(keel("collections", "list", "-f", "json", cwd=root).stdout)
    assert [(c["name"], c["documents"]) for c in listed] == [("handbook", 4)]
    assert (root / "q").is_dir() and not (root / "index.db").exists()
