"""Write items.jsonl: (question, retrieved context, answer, supported?) items for grounding checks.

    .venv/bin/python data/grounding/build.py

Built from the Context layer's test corpus, ``data/pydoc_beir`` (Python's own documentation),
deterministically. For each of its 64 questions the context is the passages judged relevant to
it, and there are four answers:

- ``supported/evidence``: the context's sentence that answers the question, reworded as an
  assistant would say it (a lead-in, fact-preserving rewordings);
- ``supported/two_sentences``: that sentence and the next one of the same passage;
- ``unsupported/changed``: the evidence sentence with a number changed, or else one entity
  swapped for a plausible other (True/False, before/after, list/tuple, a dunder name for
  another, ...), or else a negation added: the kind of small error a model makes;
- ``unsupported/addition``: the evidence sentence followed by a sentence from a passage of
  another topic, which the context does not support.

See README.md.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BEIR = HERE.parent / "pydoc_beir"
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
SWAPS = [
    ("True", "False"),
    ("before", "after"),
    ("once", "twice"),
    ("left", "right"),
    ("first", "last"),
    ("list", "tuple"),
    ("dictionary", "set"),
    ("integer", "float"),
    ("string", "bytes object"),
    ("always", "never"),
    ("must", "need not"),
    ("increasing", "decreasing"),
    ("positive", "negative"),
    ("local", "global"),
    ("class", "module"),
    ("keyword", "positional"),
    ("lower", "upper"),
    ("minimum", "maximum"),
    ("inner", "outer"),
    ("read", "written"),
    ("start", "end"),
]
# Rewordings that keep the facts: a model rarely copies its source word for word.
PARAPHRASES = [
    ("is used", "gets used"),
    ("is called", "gets invoked"),
    ("must be", "has to be"),
    ("returns", "gives back"),
    ("therefore", "so"),
    ("However,", "But"),
    ("In particular,", "Notably,"),
    ("is equivalent to", "is the same as"),
    ("is evaluated", "gets evaluated"),
    ("may be", "can be"),
    ("the following", "these"),
    ("specified", "given"),
    ("contains", "holds"),
    ("an error", "an exception"),
    ("is raised", "gets raised"),
    ("in order to", "to"),
    ("refer to", "point to"),
    ("allows", "lets"),
]
LEADS = ["", "In short: ", "According to the documentation, ", "Yes. ", "The reference says that "]
DUNDER = re.compile(r"__[a-z]+__")
NUMBER = re.compile(r"(?<![\w.])\d+(?![\w.])")


def sentences(text: str) -> list[str]:
    """The passage's sentences, whitespace collapsed, without the very short ones."""
    flat = " ".join(text.split())
    return [s for s in _SENT.split(flat) if len(s.split()) >= 5]


def reworded(sentence: str, r: random.Random) -> str:
    """``sentence`` said the way an assistant would: a lead-in and some rewording, same facts."""
    out = sentence
    for a, b in PARAPHRASES:
        if a in out:
            out = out.replace(a, b, 1)
    lead = r.choice(LEADS)
    return lead + (out[0].lower() + out[1:] if lead and not lead.endswith(". ") else out)


def changed(sentence: str, r: random.Random, dunders: list[str]) -> tuple[str, str]:
    """``sentence`` with one fact changed, and how."""
    numbers = list(NUMBER.finditer(sentence))
    if numbers:
        m = r.choice(numbers)
        value = int(m.group(0))
        new = str(value + r.choice([1, 2, 3, 10]) if value < 1000 else value * 2)
        return sentence[: m.start()] + new + sentence[m.end() :], "number"
    for a, b in r.sample(SWAPS, len(SWAPS)):
        for x, y in ((a, b), (b, a)):
            pattern = re.compile(rf"\b{re.escape(x)}\b")
            if pattern.search(sentence):
                return pattern.sub(y, sentence, count=1), "entity"
    found = DUNDER.findall(sentence)
    if found:
        other = r.choice([d for d in dunders if d not in found])
        return sentence.replace(found[0], other, 1), "entity"
    m = re.search(r"\b(is|are|can|does|will)\b", sentence)
    if m:
        return sentence[: m.end()] + " not" + sentence[m.end() :], "negation"
    return "It is not " + sentence[0].lower() + sentence[1:], "negation"


def main() -> None:
    r = random.Random(20261129)
    corpus = {d["_id"]: d for d in map(json.loads, (BEIR / "corpus.jsonl").read_text().splitlines())}
    queries = [json.loads(line) for line in (BEIR / "queries.jsonl").read_text().splitlines()]
    qrels: dict[str, list[str]] = {}
    for line in (BEIR / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, doc, _ = line.split("\t")
        qrels.setdefault(q, []).append(doc)
    import sys

    sys.path.insert(0, str(BEIR))
    from queries import QUERIES  # the evidence phrase of each question

    evidence = {q: ev for q, _, _, ev in QUERIES}
    dunders = sorted({d for doc in corpus.values() for d in DUNDER.findall(doc["text"])})
    items: list[dict[str, Any]] = []
    for query in queries:
        qid = query["_id"]
        docs = [corpus[d] for d in qrels.get(qid, [])]
        if not docs:
            continue
        topic = query["metadata"]["topic"]
        phrase = " ".join(evidence[qid][0].split())
        source = next(d for d in docs if phrase in " ".join(d["text"].split()))
        sents = sentences(source["text"])
        i = next((k for k, s in enumerate(sents) if phrase[:30] in s), None)
        if i is None:  # the evidence spans a sentence break: take the text around it
            flat = " ".join(source["text"].split())
            at = flat.index(phrase)
            sents, i = [flat[max(0, at - 80) : at + len(phrase) + 80]], 0
        answer = reworded(sents[i], r)
        following = sents[i + 1] if i + 1 < len(sents) else (sents[i - 1] if i > 0 else None)
        following = None if following is None else reworded(following, r).removeprefix("Yes. ")
        others = [
            d for d in corpus.values() if not d["_id"].startswith(topic + "/") and d["_id"] not in qrels[qid]
        ]
        extra = r.choice(
            [s for d in r.sample(others, 5) for s in sentences(d["text"])]
            or ["It also runs in constant time."]
        )
        wrong, how = changed(answer, r, dunders)
        context = [{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs]
        base = {"question": query["text"], "query_id": qid, "context": context}
        items.append({**base, "answer": answer, "supported": True, "kind": "evidence"})
        if following is not None:
            items.append(
                {**base, "answer": f"{answer} {following}", "supported": True, "kind": "two_sentences"}
            )
        items.append({**base, "answer": wrong, "supported": False, "kind": f"changed_{how}"})
        items.append({**base, "answer": f"{answer} {extra}", "supported": False, "kind": "addition"})
    (HERE / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    print(f"{len(items)} items, {sum(i['supported'] for i in items)} supported")


if __name__ == "__main__":
    main()
