"""Policy checks on the answer: banned terms, banned topics, URL allow-lists, length limits.

Each is a Validation-layer stage with its own reason codes:

==============================  ===============================================================
``policy.banned_term``          a banned word or phrase (block, flag, or redact to ``[removed]``)
``policy.banned_topic``         a banned subject, by pattern or by enough of its keywords
``policy.url_not_allowed``      a link to a host outside the allow-list (redact, flag or block)
``policy.too_long``             more characters or words than allowed (block, flag or truncate)
``policy.too_short``            fewer characters than required
==============================  ===============================================================

A blocked answer fails the call with 502 ``output_rejected`` unless the feature has a
``validation.fallback`` answer. A rewritten answer (redacted, truncated) is a new completion, so
a held stream is sent as rewritten.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from keel.call import Action, Call, Verdict
from keel.errors import OutputRejected
from keel.stage import Layer, Stage
from keel.validate.answer import rewrite
from keel.validate.settings import BannedTerms, BannedTopic, LengthPolicy, PolicyConfig, UrlPolicy

REMOVED = "[removed]"
LINK_REMOVED = "[link removed]"
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{1,15}://[^\s<>\"'`)\]]+|\bwww\.[^\s<>\"'`)\]]+")
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)")


def _words(terms: list[str], flags: int) -> re.Pattern[str]:
    """One regex matching any of ``terms`` as whole words (longest first, so phrases win)."""
    alternatives = "|".join(re.escape(t.strip()) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", flags)


def _block(call: Call, stage: str, reason: str, detail: str) -> None:
    call.add_verdict(Verdict(stage, Action.BLOCK, reason, detail=detail[:500]))
    raise OutputRejected(f"the answer was refused by policy: {detail}", code=reason.replace(".", "_"))


class BannedTermsStage(Stage):
    """Refuse, flag or redact banned words and phrases."""

    name = "validation.policy.terms"
    layer = Layer.VALIDATION

    def __init__(self, config: BannedTerms) -> None:
        self.config = config
        self.pattern = _words(config.terms, 0 if config.case_sensitive else re.IGNORECASE)

    async def run(self, call: Call) -> None:
        """Look for the terms in the answer text."""
        text = call.text
        found = sorted({m.group(0).lower() for m in self.pattern.finditer(text)})
        if not found:
            return
        detail = f"{len(found)} banned term(s)"  # never quote them back into logs and the ledger
        if self.config.action == "block":
            _block(call, self.name, "policy.banned_term", detail)
        if self.config.action == "redact":
            rewrite(call, self.pattern.sub(REMOVED, text))
            call.add_verdict(
                Verdict(self.name, Action.MODIFY, "policy.banned_term", float(len(found)), detail)
            )
        else:
            call.add_verdict(Verdict(self.name, Action.FLAG, "policy.banned_term", float(len(found)), detail))
        call.count("policy.banned_terms", len(found))


class BannedTopicsStage(Stage):
    """Refuse or flag answers that go into a banned topic."""

    name = "validation.policy.topics"
    layer = Layer.VALIDATION

    def __init__(self, topics: list[BannedTopic]) -> None:
        self.topics = [
            (
                t,
                [re.compile(p, re.IGNORECASE) for p in t.patterns],
                _words(t.keywords, re.IGNORECASE) if t.keywords else None,
            )
            for t in topics
        ]

    async def run(self, call: Call) -> None:
        """Check the answer against each topic in order; the first match decides."""
        text = call.text
        for topic, patterns, keywords in self.topics:
            hit = next((p.pattern for p in patterns if p.search(text)), None)
            if hit is None and keywords is not None:
                seen = {m.group(0).lower() for m in keywords.finditer(text)}
                hit = f"{len(seen)} keywords" if len(seen) >= topic.min_keywords else None
            if hit is None:
                continue
            detail = f"topic {topic.name!r}"
            if topic.action == "block":
                _block(call, self.name, "policy.banned_topic", detail)
            call.add_verdict(Verdict(self.name, Action.FLAG, "policy.banned_topic", detail=detail))


class UrlStage(Stage):
    """Links must point at allowed hosts; others are removed, flagged or refused."""

    name = "validation.policy.urls"
    layer = Layer.VALIDATION

    def __init__(self, config: UrlPolicy) -> None:
        self.config = config
        self.allow = [d.lower().lstrip("*.").rstrip(".") for d in config.allow]
        self.schemes = {s.lower() for s in config.schemes}

    def allowed(self, url: str) -> bool:
        """True when ``url`` has an allowed scheme and its host is an allowed domain or a subdomain."""
        scheme = url.split("://", 1)[0].lower() if "://" in url else "https"
        host = _host(url).rstrip(".")
        if scheme not in self.schemes or host == "?":
            return False
        return any(host == d or host.endswith("." + d) for d in self.allow)

    async def run(self, call: Call) -> None:
        """Find the links in the answer and act on those that are not allowed."""
        text = call.text
        links = ((m.start(), m.group(0).rstrip(".,;:!?")) for m in _URL.finditer(text))
        bad = [(start, url) for start, url in links if not self.allowed(url)]
        if not bad:
            return
        hosts = sorted({_host(url) for _, url in bad})
        detail = f"{len(bad)} link(s) to {', '.join(hosts)}"[:300]
        if self.config.action == "block":
            _block(call, self.name, "policy.url_not_allowed", detail)
        if self.config.action == "redact":
            out, last = [], 0
            for start, url in bad:
                out += [text[last:start], LINK_REMOVED]
                last = start + len(url)
            rewrite(call, "".join(out) + text[last:])
            call.add_verdict(
                Verdict(self.name, Action.MODIFY, "policy.url_not_allowed", float(len(bad)), detail)
            )
        else:
            call.add_verdict(
                Verdict(self.name, Action.FLAG, "policy.url_not_allowed", float(len(bad)), detail)
            )
        call.count("policy.urls_not_allowed", len(bad))


def _host(url: str) -> str:
    return urlsplit(url if "://" in url else f"//{url}").hostname or "?"


class LengthStage(Stage):
    """The answer's length within bounds: refused, flagged or truncated at a sentence end."""

    name = "validation.policy.length"
    layer = Layer.VALIDATION

    def __init__(self, config: LengthPolicy) -> None:
        self.config = config

    async def run(self, call: Call) -> None:
        """Measure the answer text."""
        if call.completion is None or call.completion.message.get("tool_calls"):
            return
        text, c = call.text, self.config
        words = len(_WORD.findall(text)) if c.max_words is not None else 0
        if c.min_chars is not None and len(text.strip()) < c.min_chars:
            detail = f"{len(text.strip())} characters; at least {c.min_chars} required"
            if c.action == "flag":
                call.add_verdict(Verdict(self.name, Action.FLAG, "policy.too_short", detail=detail))
                return
            _block(call, self.name, "policy.too_short", detail)
        over_chars = c.max_chars is not None and len(text) > c.max_chars
        over_words = c.max_words is not None and words > c.max_words
        if not (over_chars or over_words):
            return
        detail = f"{len(text)} characters" if over_chars else f"{words} words"
        limit = f"at most {c.max_chars} characters" if over_chars else f"at most {c.max_words} words"
        detail = f"{detail}; {limit} allowed"
        if c.action == "block":
            _block(call, self.name, "policy.too_long", detail)
        if c.action == "truncate":
            rewrite(call, truncate(text, c.max_chars, c.max_words))
            call.add_verdict(Verdict(self.name, Action.MODIFY, "policy.too_long", detail=detail))
        else:
            call.add_verdict(Verdict(self.name, Action.FLAG, "policy.too_long", detail=detail))


def truncate(text: str, max_chars: int | None, max_words: int | None) -> str:
    """``text`` cut within both limits: at the last sentence end inside them, else at a word boundary."""
    cut = len(text) if max_chars is None else max_chars
    if max_words is not None:
        words = list(_WORD.finditer(text))
        if len(words) > max_words:
            cut = min(cut, words[max_words].start())
    head = text[:cut]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] > cut // 3:  # a sentence end that keeps most of the allowed text
        return head[: ends[-1]]
    space = head.rfind(" ")
    return (head[:space] if space > 0 else head).rstrip() + "…"


def policy_stages(config: PolicyConfig) -> list[Stage]:
    """The stages ``config`` turns on, in the order they run."""
    stages: list[Stage] = []
    if config.banned_terms is not None:
        stages.append(BannedTermsStage(config.banned_terms))
    if config.banned_topics:
        stages.append(BannedTopicsStage(config.banned_topics))
    if config.urls is not None:
        stages.append(UrlStage(config.urls))
    if config.length is not None:
        stages.append(LengthStage(config.length))
    return stages
