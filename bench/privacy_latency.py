"""Latency of keel's PII and secret scanning on a 2,000-character prompt, beside the libraries' own way.

References, in the same run on the same texts:
- PII: presidio's ``AnalyzerEngine`` (no-op NLP engine, the same recognisers, libphonenumber's
  ``PhoneNumberMatcher`` over the whole text), which is what keel would cost calling presidio as
  documented;
- secrets: detect-secrets' ``scan_line`` over each line with its default plugins and filters.

Also the whole Input layer (normalisation, limits, secrets, PII) as the pipeline runs it.

    .venv/bin/python bench/privacy_latency.py [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from keel.call import Call
from keel.input.limits import LimitsStage
from keel.input.normalize import NormalizeStage
from keel.input.pii import DEFAULT_ENTITIES, PIIDetector, _presidio, _recognizer
from keel.input.redact import PIIStage, SecretsStage
from keel.input.secrets import SecretDetector
from keel.settings import Limits, PIIGuard
from keel.stage import Stage

TICKET = (
    "the order arrived late and the box was damaged so I would like a refund or a replacement "
    "please check the tracking number and tell me when the courier will come back on Monday "
    "our team uses version 3 of the app since 2024 and the invoice shows 42 items instead of 40"
)
WORDS = TICKET.split(" ")
PII = (
    " You can reach me at jane.roe@example.org or call +1 (415) 555-0132. My card is "
    "4111 1111 1111 1111 and the IBAN for the refund is DE89370400440532013000."
    " Our old key was ghp_abcdefghijklmnopqrstuvwxyz0123456789, please ignore it."
)


def prose(n: int, seed: int = 7) -> str:
    """About ``n`` characters of support-ticket prose (no personal data, no secrets)."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < n:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 18))).capitalize() + "."
        out.append(sentence)
        size += len(sentence) + 1
    return " ".join(out)[:n]


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    for _ in range(5):
        fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def presidio_engine() -> Any:
    """AnalyzerEngine with a no-op NLP engine and the same default recognisers, presidio's way."""
    _presidio()
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    registry = RecognizerRegistry(recognizers=[_recognizer(e) for e in DEFAULT_ENTITIES])
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
    return AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])


def detect_secrets_scan() -> Callable[[str], list[Any]]:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    def scan(text: str) -> list[Any]:
        with default_settings():
            return [s for line in text.splitlines() for s in scan_line(line)]

    return scan


def input_layer(stages: list[Stage], text: str) -> Callable[[], None]:
    loop = asyncio.new_event_loop()

    async def once() -> None:
        call = Call(feature="bench", messages=[{"role": "user", "content": text}])
        for st in stages:
            await st.run(call)

    return lambda: loop.run_until_complete(once())


def stream_cost(answer: str, system: str, runs: int, *, pii: bool) -> tuple[float, float, int]:
    """Per-chunk ms of the stream guard (4-character chunks), and ms to check the answer whole."""
    from keel.llm.canary import canary_token
    from keel.validate.leakage import LeakageStage, Scanner
    from keel.validate.stream_guard import guard_for

    scanners = [Scanner("secret", "redact", SecretDetector().find)]
    if pii:
        scanners.append(Scanner("pii", "redact", PIIDetector().find))
    stage = LeakageStage(canary_token("bench"), 80, scanners, live=True)
    call = Call(feature="bench", messages=[{"role": "system", "content": system}])
    pieces = [answer[i : i + 4] for i in range(0, len(answer), 4)]

    def streamed() -> None:
        guard = guard_for(call, stage, live=True)
        assert guard is not None
        for piece in pieces:
            guard.apply({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        guard.finish(None)

    def whole() -> None:
        watch = stage.watch(call)
        assert watch is not None
        watch.feed(answer)
        for scanner in scanners:
            scanner.find(answer)

    per_stream = timed(streamed, max(runs // 10, 20))[0]
    return per_stream / len(pieces), timed(whole, runs)[0], len(pieces)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    plain = prose(2000)
    dense = prose(2000 - len(PII)) + PII
    pii, secrets = PIIDetector(), SecretDetector()
    engine, ds = presidio_engine(), detect_secrets_scan()
    base: list[Stage] = [NormalizeStage(), LimitsStage(Limits(), lambda m: 0, "bench")]
    secrets_stage = SecretsStage.for_action("redact")
    pii_stage = PIIStage.for_guard(PIIGuard(action="redact"))
    assert secrets_stage is not None and pii_stage is not None
    rows = []
    for name, text in (("prose, nothing to find", plain), ("4 PII values and a key", dense)):
        k_pii = timed(lambda t=text: pii.find(t), args.runs)
        r_pii = timed(lambda t=text: engine.analyze(t, language="en"), max(args.runs // 10, 20))
        k_sec = timed(lambda t=text: secrets.find(t), args.runs)
        r_sec = timed(lambda t=text: ds(t), args.runs)
        default = timed(input_layer([*base, secrets_stage], text), args.runs)
        with_pii = timed(input_layer([*base, secrets_stage, pii_stage], text), args.runs)
        rows.append((name, k_pii, r_pii, k_sec, r_sec, default, with_pii))
    print(f"{len(plain)}-character prompts, {args.runs} runs, Python {platform.python_version()}")
    print()
    columns = [
        "prompt",
        "keel PII p50 (p95)",
        "presidio AnalyzerEngine p50",
        "keel secrets p50 (p95)",
        "detect-secrets scan_line p50",
        "Input layer, default p50 (p95)",
        "Input layer + PII redact p50 (p95)",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for name, kp, rp, ks, rs, d, w in rows:
        print(
            f"| {name} | {kp[0]:.2f} ({kp[1]:.2f}) ms | {rp[0]:.2f} ms ({rp[0] / kp[0]:.0f}x) | "
            f"{ks[0]:.2f} ({ks[1]:.2f}) ms | {rs[0]:.2f} ms ({rs[0] / ks[0]:.1f}x) | "
            f"{d[0]:.2f} ({d[1]:.2f}) ms | {w[0]:.2f} ({w[1]:.2f}) ms |"
        )
    print()
    print("A 2,000-character answer streamed in 4-character chunks through the stream guard (canary and")
    print("system-prompt watch on a 1,000-character system prompt, secrets redaction, optionally PII):")
    print()
    print("| output guards | per chunk p50 | whole stream | the same answer checked whole |")
    print("|---|---:|---:|---:|")
    system = prose(1000, seed=3)
    for label, with_pii in (("canary, leak, secrets (default)", False), ("and PII redaction", True)):
        chunk_ms, whole_ms, n = stream_cost(dense, system, args.runs, pii=with_pii)
        print(f"| {label} | {chunk_ms * 1000:.0f} µs | {chunk_ms * n:.1f} ms | {whole_ms:.2f} ms |")


if __name__ == "__main__":
    main()
