"""Consistent fake values: the same original always gets the same stand-in of the same kind.

A stand-in is derived from a keyed hash of the original, so a conversation that sends the same
e-mail address again (its history) shows the model the same fake one, while nobody without the
key can tell which original a fake stands for. The key is ``KEEL_GUARD_SECRET`` when set (give
every replica the same one so they agree), else random per process.

Stand-ins keep the original's shape: e-mail addresses become ``name.surname<n>@example.<tld>``,
IP addresses fall in the documentation ranges (RFC 5737, RFC 3849), cards and IBANs keep a valid
checksum, and everything else keeps its layout with digits and letters replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import string
from functools import cache
from random import Random

_FIRST = ("alex", "sam", "robin", "kim", "jo", "lee", "pat", "chris", "dana", "ari", "noa", "max")
_LAST = ("morgan", "rivera", "tanaka", "novak", "okafor", "larsen", "silva", "moreau", "khan", "weber")
_TLDS = ("com", "org", "net")


@cache
def guard_key() -> bytes:
    """The key for pseudonyms and canary tokens: ``KEEL_GUARD_SECRET``, or random per process."""
    given = os.environ.get("KEEL_GUARD_SECRET")
    return given.encode() if given else secrets.token_bytes(32)


def keyed(label: str, value: str, key: bytes | None = None) -> int:
    """A 64-bit number from the guard key (or ``key``), ``label`` and ``value``."""
    digest = hmac.new(key or guard_key(), f"{label}\0{value}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big")


def pseudonym(entity: str, original: str, attempt: int = 0) -> str:
    """A stand-in for ``original`` (an ``entity``); another ``attempt`` gives another one."""
    rng = Random(keyed(f"{entity}:{attempt}", original))
    if entity == "EMAIL_ADDRESS":
        return (
            f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(10, 9999)}@example.{rng.choice(_TLDS)}"
        )
    if entity == "IP_ADDRESS":
        if ":" in original:
            return f"2001:db8::{rng.randrange(1, 0xFFFF):x}:{rng.randrange(1, 0xFFFF):x}"
        return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}"
    fake = _same_shape(original, rng)
    if entity == "CREDIT_CARD":
        return _with_luhn(fake)
    if entity == "IBAN_CODE":
        return _with_iban_check(fake, original)
    return fake


def _same_shape(original: str, rng: Random) -> str:
    out = []
    for ch in original:
        if ch.isdigit():
            out.append(rng.choice(string.digits))
        elif "a" <= ch <= "z":
            out.append(rng.choice(string.ascii_lowercase))
        elif "A" <= ch <= "Z":
            out.append(rng.choice(string.ascii_uppercase))
        else:
            out.append(ch)
    return "".join(out)


def _with_luhn(fake: str) -> str:
    """``fake`` with its last digit set so the digits pass the Luhn check."""
    digits = [int(c) for c in fake if c.isdigit()]
    if len(digits) < 2:
        return fake
    body = digits[:-1]
    total = 0
    for i, d in enumerate(reversed(body)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    check = str((10 - total % 10) % 10)
    last = max(i for i, c in enumerate(fake) if c.isdigit())
    return fake[:last] + check + fake[last + 1 :]


def _with_iban_check(fake: str, original: str) -> str:
    """The original's country code, ``fake``'s account part, and check digits that make it valid."""
    compact = [c for c in fake if not c.isspace()]
    orig = [c for c in original if not c.isspace()]
    if len(compact) < 5 or len(orig) < 2:
        return fake
    country = "".join(orig[:2]).upper()
    bban = "".join(compact[4:]).upper()
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = f"{98 - int(numeric) % 97:02d}"
    flat = country + check + bban
    # back into the original's grouping
    out, k = [], 0
    for ch in fake:
        if ch.isspace():
            out.append(ch)
        else:
            out.append(flat[k])
            k += 1
    return "".join(out)
