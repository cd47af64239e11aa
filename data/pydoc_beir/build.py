"""Build the pydoc BEIR set from the Python documentation that ships with the interpreter.

    .venv/bin/python data/pydoc_beir/build.py            # rewrites corpus.jsonl, queries.jsonl, qrels/test.tsv

Corpus: every topic of ``pydoc_data.topics`` (the language reference and built-in types pages that
``help()`` shows), cut into sections at its underlined headings and each section into passages
of whole paragraphs of at most about 1,200 characters. A passage's id is ``topic/section/part``
and its title ``topic heading > section heading``.

Queries: hand-written in ``queries.py`` beside this file, each with the topic it was written
from and evidence, the sentence that answers it. The relevant passages (qrels, grade 1) are the
passages whose text contains the evidence (the reference repeats some sections under several
topics; every copy counts). The build fails when a query's evidence is not found in its topic,
so every judgement is checked against the text each time the set is rebuilt.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pydoc_data.topics

HERE = Path(__file__).resolve().parent
HEADING = re.compile(r"^([^\n]+)\n([*=\-~^])\2{2,}[ \t]*$", re.MULTILINE)
MAX_CHARS = 1200

def sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) per underlined heading of a topic."""
    found = list(HEADING.finditer(text))
    out = []
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        out.append((m.group(1).strip(), text[m.end() : end].strip("\n")))
    return out


def passages(body: str) -> list[str]:
    """Whole paragraphs packed into passages of at most MAX_CHARS (a longer paragraph stays whole)."""
    paragraphs = [p.rstrip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    out: list[str] = []
    current = ""
    for p in paragraphs:
        if current and len(current) + len(p) + 2 > MAX_CHARS:
            out.append(current)
            current = ""
        current = f"{current}\n\n{p}" if current else p
    if current:
        out.append(current)
    return out


def corpus() -> list[dict[str, str]]:
    """Every passage as a BEIR corpus record."""
    docs = []
    for topic in sorted(pydoc_data.topics.topics):
        parts = sections(pydoc_data.topics.topics[topic])
        top = parts[0][0] if parts else topic
        for s, (heading, body) in enumerate(parts):
            title = top if s == 0 or heading == top else f"{top} > {heading}"
            for p, text in enumerate(passages(body)):
                docs.append({"_id": f"{topic}/{s}/{p}", "title": title, "text": text})
    return docs


def main() -> int:
    """Write the three files; fail when a query's evidence is found nowhere in its topic."""
    from queries import QUERIES as written  # the hand-written judgements, beside this file

    docs = corpus()
    flat = {d["_id"]: " ".join(d["text"].split()) for d in docs}
    qrels: list[tuple[str, str]] = []
    problems = []
    for qid, _, topic, evidence in written:
        hits = [i for i, text in flat.items() if any(" ".join(e.split()) in text for e in evidence)]
        if not any(h.split("/")[0] == topic for h in hits):
            problems.append(f"{qid}: no passage of {topic!r} contains {evidence}")
        qrels += [(qid, h) for h in hits]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    with (HERE / "corpus.jsonl").open("w") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with (HERE / "queries.jsonl").open("w") as f:
        for qid, text, topic, _ in written:
            f.write(json.dumps({"_id": qid, "text": text, "metadata": {"topic": topic}}) + "\n")
    (HERE / "qrels").mkdir(exist_ok=True)
    with (HERE / "qrels" / "test.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, did in qrels:
            f.write(f"{qid}\t{did}\t1\n")
    per_query = len(qrels) / len(written)
    print(f"{len(docs)} passages, {len(written)} queries, {len(qrels)} judgements ({per_query:.1f} per query)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
