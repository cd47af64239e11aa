"""Secrets (API keys, tokens, private keys, passwords) found with detect-secrets' plugins.

detect-secrets scans source files line by line and reports values; keel needs positions in free
text, so it runs the same plugins' expressions itself:

- every ``RegexBasedDetector`` plugin's ``denylist`` (AWS, Azure, GitHub, GitLab, Slack, Stripe,
  OpenAI, Twilio, SendGrid, npm, PyPI, JWT, basic-auth URLs, ...), with the plugin's own check
  where it has one (a JWT must decode);
- private keys: the plugin's ``BEGIN ... PRIVATE KEY`` markers, widened to the whole block;
- the keyword plugin's assignments (``password = "..."``, ``API_KEY=...``);
- high-entropy strings: quoted strings over the plugins' limits (base64 4.5, hex 3.0 bits per
  character), and unquoted tokens of 32+ characters that mix upper case, lower case and digits and
  reach the base64 limit. Unquoted hex is left alone: commit hashes and UUIDs are not secrets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache

from detect_secrets.plugins import keyword
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
from detect_secrets.plugins.jwt import JwtTokenDetector

from keel.input.findings import Finding, resolve

ENTITY = "SECRET"
_PLUGIN_MODULES = (
    "artifactory", "aws", "azure_storage_key", "basic_auth", "cloudant", "discord", "github_token",
    "gitlab_token", "ibm_cloud_iam", "ibm_cos_hmac", "mailchimp", "npm", "openai", "pypi_token",
    "sendgrid", "slack", "softlayer", "square_oauth", "stripe", "telegram_token", "twilio",
)  # fmt: skip
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"
    r"|PuTTY-User-Key-File-\d:.*?(?:Private-MAC: *[0-9a-fA-F]+|\Z)",
    re.DOTALL,
)
_KEYWORD_RULES = (
    *keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items(),
    (keyword.FOLLOWED_BY_EQUAL_SIGNS_REGEX, 5),  # API_KEY=value, as in a pasted .env file
)
_PLACEHOLDER = re.compile(r"^(?:[x*.#_-]+|<[^>]*>|\{\{.*\}\}|\$\{.*\}|\$\w+|%\w+%?)$", re.IGNORECASE)
_QUOTED = re.compile(r"""(['"`])([A-Za-z0-9+/=_\-]{16,})\1""")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/=_\-]{32,}(?![A-Za-z0-9+/=_\-])")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_UPPER, _LOWER, _DIGIT = re.compile("[A-Z]"), re.compile("[a-z]"), re.compile("[0-9]")


# Substrings (of the lower-cased text) without which a plugin's expressions cannot match: the
# assignment-style and long-prefix expressions cost ~0.3 ms each on 2,000 characters, a lookup none.
_HINTS: dict[str, tuple[str, ...]] = {
    "artifactory": ("akc", "ap"),
    "cloudant": ("cl",),
    "ibm_cloud_iam": ("key", "pw", "pass", "token"),
    "ibm_cos_hmac": ("secret",),
    "softlayer": ("sl", "softlayer"),
    "mailchimp": ("-us",),
    "aws": ("aws", "a3t", "abia", "acca", "akia", "asia"),
    "basic_auth": ("://",),
    "telegram_token": (":",),
    "slack": ("xox", "hooks.slack"),
    "gitlab_token": ("gl", "gr1348941"),
}
# Key formats newer than detect-secrets 1.5's plugins (OpenAI project and service-account keys,
# Anthropic, Google, Hugging Face).
_NEWER = (
    (re.compile(r"\bsk-(?:proj|ant|svcacct|admin)-[A-Za-z0-9_\-]{20,}"), ("sk-",)),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), ("aiza",)),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), ("hf_",)),
)
_KEYWORD_HINT = re.compile("|".join(keyword.DENYLIST), re.IGNORECASE)


@dataclass(slots=True, frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None
    hints: tuple[str, ...] = ()  # at least one must be in the lower-cased text


@cache
def _rules() -> tuple[_Rule, ...]:
    """Every regex plugin's expressions (imported once)."""
    import importlib

    rules = []
    for name in _PLUGIN_MODULES:
        module = importlib.import_module(f"detect_secrets.plugins.{name}")
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, RegexBasedDetector)
                and obj.__module__ == module.__name__
            ):
                patterns: Iterable[re.Pattern[str]] = obj.denylist  # type: ignore[assignment]
                rules += [_Rule(p, hints=_HINTS.get(name, ())) for p in patterns]
    # The plugin's own expression stops at the signature's first character (it only needs to know a
    # token is there); this one takes the whole token, then the plugin checks that it decodes.
    jwt = re.compile(r"eyJ[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+\.?[A-Za-z0-9\-_.+/=]*")
    rules.append(_Rule(jwt, JwtTokenDetector.is_formally_valid, ("eyj",)))
    rules += [_Rule(p, hints=h) for p, h in _NEWER]
    return tuple(rules)


_BASE64 = Base64HighEntropyString()
_HEXES = HexHighEntropyString()


class SecretDetector:
    """Finds secrets in a text; ``find`` returns resolved findings, all of entity ``SECRET``."""

    def __init__(self) -> None:
        self.rules = _rules()

    def find(self, text: str) -> list[Finding]:
        """Secrets in ``text``, without overlaps, in text order."""
        if len(text) < 8 or not _might_hold_secrets(text):
            return []
        return resolve(self._all(text))

    def _all(self, text: str) -> Iterator[Finding]:
        lower = text.lower()
        for rule in self.rules:
            if rule.hints and not any(h in lower for h in rule.hints):
                continue
            for m in rule.pattern.finditer(text):
                start, end = _value_span(m)
                if end > start and (rule.check is None or rule.check(text[start:end])):
                    yield Finding(ENTITY, start, end, 1.0)
        if "PRIVATE KEY" in text or "PuTTY-User-Key-File" in text:
            for m in _PRIVATE_KEY.finditer(text):
                yield Finding(ENTITY, m.start(), m.end(), 1.0)
        yield from _keywords(text)
        yield from _high_entropy(text)


# Every detector above needs one of these: a token of 16+ key characters (all key and token formats,
# high-entropy strings; Artifactory's expressions would take 11, its real keys have 73), a URL with
# credentials, a private-key marker, or an assignment.
_CANDIDATE = re.compile(r"[A-Za-z0-9_\-+/=.]{16,}|://|PRIVATE KEY|PuTTY-User-Key|[=:]")


def _might_hold_secrets(text: str) -> bool:
    """A cheap necessary condition: prose without long tokens or assignments skips every detector."""
    for m in _CANDIDATE.finditer(text):
        if m.group() not in "=:":
            return True
        if _KEYWORD_HINT.search(text):  # an assignment only matters with a keyword
            return True
    return False


def _value_span(m: re.Match[str]) -> tuple[int, int]:
    """The secret's span: the longest group when it is 8+ characters (the value of ``user:VALUE@``
    or ``key = 'VALUE'``), else the whole match (a group such as ``(ghp|gho)`` is only a prefix)."""
    best = m.span()
    longest = 0
    for i in range(1, (m.re.groups or 0) + 1):
        start, end = m.span(i)
        if start >= 0 and end - start > longest:
            longest, span = end - start, (start, end)
    return span if longest >= 8 else best


def _keywords(text: str) -> Iterator[Finding]:
    if "=" not in text and ":" not in text:
        return
    offset = 0
    for line in text.splitlines(keepends=True):
        if ("=" in line or ":" in line) and _KEYWORD_HINT.search(line):
            for pattern, group in _KEYWORD_RULES:
                for m in pattern.finditer(line):
                    value = m.group(group)
                    if value and len(value) >= 6 and not _PLACEHOLDER.match(value):
                        yield Finding(ENTITY, offset + m.start(group), offset + m.end(group), 0.8)
        offset += len(line)


def _high_entropy(text: str) -> Iterator[Finding]:
    for m in _QUOTED.finditer(text):
        value = m.group(2)
        plugin = _HEXES if _HEX.match(value) else _BASE64
        if plugin.calculate_shannon_entropy(value) >= plugin.entropy_limit:
            yield Finding(ENTITY, m.start(2), m.end(2), 0.7)
    for m in _TOKEN.finditer(text):
        value = m.group()
        if _HEX.match(value) or not (_UPPER.search(value) and _LOWER.search(value) and _DIGIT.search(value)):
            continue
        if "/" in value and value.count("/") > 2:
            continue  # a path or URL piece, not a key
        if _BASE64.calculate_shannon_entropy(value) >= _BASE64.entropy_limit:
            yield Finding(ENTITY, m.start(), m.end(), 0.7)
