"""Personal data found with presidio-analyzer's pattern recognisers (no NLP model, nothing downloaded).

Each entity type is one presidio recogniser: regular expressions plus its validation (the Luhn
checksum for cards, the IBAN checksum, libphonenumber for phone numbers, the public-suffix list
bundled with tldextract for e-mail domains). keel calls the recognisers itself rather than through
``AnalyzerEngine``: the engine's per-call overhead and its phone matcher over the whole text cost
tens of milliseconds on a 2,000-character prompt, while most recognisers only need to look where
a trigger could match (``findings.windows``): digits for numbers, ``@`` for e-mail addresses.

Scores are presidio's. Presidio raises a score when a context word ("phone", "card", "ssn", ...)
precedes the match, using an NLP model's lemmas; without one, keel looks for the recogniser's own
context words in the 48 characters before the match and adds presidio's default boost (0.35).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from keel.errors import ConfigError
from keel.input.findings import Finding, resolve, windows

CONTEXT_BOOST = 0.35  # presidio's LemmaContextAwareEnhancer default
_CONTEXT_CHARS = 48
_MARGIN = 48  # characters around a trigger a recogniser sees
# Phone numbers are checked run by run (libphonenumber tries eight regions per candidate), last,
# and not where a card, IBAN or SSN was found already.
_NARROW = {"PHONE_NUMBER"}
_PHONE = re.compile(r"\+?\(?\d[\d \t().\-/]{5,}\d")
_DATE = re.compile(r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b|\b\d{1,2}[-/.]\d{1,2}[-/.]\d{4}\b")
_PHONE_SCORE_INTL = 0.6  # valid, and written with its country code: more than presidio's 0.4

_DIGITS = re.compile(r"\d(?:[ \-./]?\d){7,}")  # eight or more digits, single separators between
_TRIGGERS: dict[str, re.Pattern[str] | None] = {
    "EMAIL_ADDRESS": re.compile("@"),
    "PHONE_NUMBER": _DIGITS,
    "CREDIT_CARD": _DIGITS,
    "US_SSN": _DIGITS,
    "US_ITIN": _DIGITS,
    "US_PASSPORT": _DIGITS,
    "US_BANK_NUMBER": _DIGITS,
    "ABA_ROUTING_NUMBER": _DIGITS,
    "UK_NHS": _DIGITS,
    "AU_TFN": _DIGITS,
    "PL_PESEL": _DIGITS,
    "IN_AADHAAR": _DIGITS,
    "IP_ADDRESS": re.compile(r"\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]*:|::"),
    "URL": re.compile(r"(?i)https?:|www\.|\.[a-z]{2,}/"),
    "IBAN_CODE": re.compile(r"[A-Z]{2}\d{2}"),  # the IBAN pattern is case-sensitive
    "CRYPTO": re.compile(r"bc1|[13][a-zA-HJ-NP-Z0-9]{25}"),
    "UK_NINO": re.compile(r"[A-Za-z]\s?\d{2}\s?\d{2}\s?\d{2}"),
    "MAC_ADDRESS": re.compile(r"[0-9A-Fa-f]{2}[:-][0-9A-Fa-f]{2}[:-]|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\."),
}

# entity → presidio recogniser class; the first group is what ``entities: null`` means.
DEFAULT_ENTITIES: dict[str, str] = {
    "EMAIL_ADDRESS": "EmailRecognizer",
    "PHONE_NUMBER": "PhoneRecognizer",
    "CREDIT_CARD": "CreditCardRecognizer",
    "IBAN_CODE": "IbanRecognizer",
    "IP_ADDRESS": "IpRecognizer",
    "US_SSN": "UsSsnRecognizer",
    "US_ITIN": "UsItinRecognizer",
    "UK_NHS": "NhsRecognizer",
    "UK_NINO": "UkNinoRecognizer",
    "CRYPTO": "CryptoRecognizer",
    "MAC_ADDRESS": "MacAddressRecognizer",
}
OPTIONAL_ENTITIES: dict[str, str] = {
    "URL": "UrlRecognizer",
    "US_PASSPORT": "UsPassportRecognizer",
    "US_BANK_NUMBER": "UsBankRecognizer",
    "US_DRIVER_LICENSE": "UsLicenseRecognizer",
    "ABA_ROUTING_NUMBER": "AbaRoutingRecognizer",
    "MEDICAL_LICENSE": "MedicalLicenseRecognizer",
    "IN_PAN": "InPanRecognizer",
    "IN_AADHAAR": "InAadhaarRecognizer",
    "ES_NIF": "EsNifRecognizer",
    "IT_FISCAL_CODE": "ItFiscalCodeRecognizer",
    "AU_TFN": "AuTfnRecognizer",
    "SG_NRIC_FIN": "SgFinRecognizer",
    "PL_PESEL": "PlPeselRecognizer",
}
ALIASES = {"EMAIL": "EMAIL_ADDRESS", "PHONE": "PHONE_NUMBER", "IBAN": "IBAN_CODE", "IP": "IP_ADDRESS"}
# More context words than presidio's own list, for phone numbers written without the word "phone".
_EXTRA_CONTEXT = {"PHONE_NUMBER": ("tel", "contact", "reach", "text", "whatsapp", "fax", "ring")}


def entity_names(given: Sequence[str] | None, *, where: str) -> list[str]:
    """The configured entity list in presidio's names (``None``: the default set); ConfigError if unknown."""
    if given is None:
        return list(DEFAULT_ENTITIES)
    known = {**DEFAULT_ENTITIES, **OPTIONAL_ENTITIES}
    out = []
    for raw in given:
        name = ALIASES.get(raw.upper(), raw.upper())
        if name not in known:
            raise ConfigError(f"{where}: unknown PII entity {raw!r}; supported: {', '.join(sorted(known))}")
        out.append(name)
    return list(dict.fromkeys(out))


@cache
def _presidio() -> Any:
    """presidio's predefined recognisers, imported once.

    presidio's package imports its transformers NLP engine, which imports torch and transformers
    when they are installed (seconds of start-up) although pattern recognisers need neither: they
    are hidden while presidio loads, unless something imported them already.
    """
    hidden = [m for m in ("transformers", "torch") if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]
    try:
        return importlib.import_module("presidio_analyzer.predefined_recognizers")
    except ImportError as exc:
        raise ConfigError(
            f"PII detection needs presidio-analyzer: pip install 'keel[pii]' (import failed: {exc})"
        ) from None
    finally:
        for m in hidden:
            sys.modules.pop(m, None)


@cache
def _offline_tld() -> Callable[[str], bool]:
    """A domain check with the public-suffix list bundled in tldextract (its default fetches it online)."""
    import tldextract

    extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    return lambda text: extract(text).fqdn != ""


def _recognizer(entity: str) -> Any:
    cls = getattr(_presidio(), {**DEFAULT_ENTITIES, **OPTIONAL_ENTITIES}[entity])
    if entity == "EMAIL_ADDRESS":
        valid = _offline_tld()

        class OfflineEmail(cls):  # type: ignore[misc, valid-type]
            def validate_result(self, pattern_text: str) -> bool:
                return valid(pattern_text)

        return OfflineEmail()
    return cls()


@dataclass(slots=True)
class _Entity:
    name: str
    recognizer: Any
    trigger: re.Pattern[str] | None
    context: tuple[str, ...]


class PIIDetector:
    """Finds the configured entity types in a text; ``find`` returns resolved, thresholded findings."""

    def __init__(
        self, entities: Sequence[str] | None = None, *, score_threshold: float = 0.5, where: str = "pii"
    ) -> None:
        """ConfigError (naming ``where``) for an unknown entity or when presidio is not installed."""
        self.entities = entity_names(entities, where=f"{where}.entities")
        self.score_threshold = score_threshold
        self._rules = []
        for name in sorted(self.entities, key=lambda n: n in _NARROW):
            try:
                rec = _recognizer(name)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc.message}") from None
            words = tuple(w.lower() for w in (getattr(rec, "context", None) or ()))
            self._rules.append(_Entity(name, rec, _TRIGGERS.get(name), words + _EXTRA_CONTEXT.get(name, ())))

    def find(self, text: str) -> list[Finding]:
        """Entities in ``text`` scoring at least the threshold, without overlaps, in text order."""
        if not text:
            return []
        found: list[Finding] = []
        for rule in self._rules:
            if rule.trigger is None:
                found += self._run(rule, text, 0, len(text))
                continue
            if rule.name in _NARROW:
                found += self._phones(rule, text, found)
                continue
            for start, end in windows(text, rule.trigger, _MARGIN):
                found += self._run(rule, text, start, end)
        return resolve(f for f in found if f.score >= self.score_threshold)

    def _phones(self, rule: _Entity, text: str, found: list[Finding]) -> list[Finding]:
        """Phone numbers: each run of digits that libphonenumber accepts as valid in one of the regions.

        The same check as presidio's PhoneRecognizer (its regions, its score), run on candidates
        rather than through ``PhoneNumberMatcher``, which costs ten times as much per region.
        """
        out = []
        for m in _PHONE.finditer(text):
            cand = m.group()
            digits = sum(c.isdigit() for c in cand)
            if not 7 <= digits <= 15 or _DATE.search(cand) or _covered(found, m.start(), m.end(), 0.5):
                continue
            if not _valid_phone(cand, rule.recognizer.supported_regions):
                continue
            score = _PHONE_SCORE_INTL if cand.startswith("+") else float(rule.recognizer.SCORE)
            if rule.context and _has_context(text, m.start(), rule.context):
                score = min(score + CONTEXT_BOOST, 1.0)
            out.append(Finding(rule.name, m.start(), m.end(), score))
        return out

    def _run(self, rule: _Entity, text: str, start: int, end: int) -> list[Finding]:
        part = text[start:end] if start or end != len(text) else text
        out = []
        for r in rule.recognizer.analyze(part, [rule.name], None):
            s, e = r.start + start, r.end + start
            score = float(r.score)
            if score < 1.0 and rule.context and _has_context(text, s, rule.context):
                score = min(score + CONTEXT_BOOST, 1.0)
            out.append(Finding(rule.name, s, e, score))
        return out


def _valid_phone(candidate: str, regions: Sequence[str]) -> bool:
    import phonenumbers

    for region in (None,) if candidate.startswith("+") else regions:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _covered(found: list[Finding], start: int, end: int, threshold: float) -> bool:
    """True when confident findings already cover every digit of ``start:end``."""
    return any(f.start <= start and f.end >= end and f.score >= threshold for f in found)


def _has_context(text: str, start: int, words: tuple[str, ...]) -> bool:
    before = text[max(start - _CONTEXT_CHARS, 0) : start].lower()
    return any(w in before for w in words)
