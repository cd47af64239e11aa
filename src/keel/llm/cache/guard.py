"""A lexical check on a semantic hit: the near-misses that sentence embeddings cannot see.

Embeddings place "Can I return it after 30 days?" and "... after 60 days?" almost on top of
each other, and likewise a question and its negation, "from savings to checking" and back,
"enable" and "disable", or "a card" and "all cards". Each pair needs a different answer, so
before a cached answer is served for a paraphrase, the two questions must agree on:

- numbers (digits and number words), currencies and percentages;
- dates and times: months, weekdays, "today"/"tomorrow", "next"/"last", units such as "weeks";
- negation ("not", "never", "no", "-n't", "non-");
- opposite actions ("enable"/"disable", "lock"/"unlock", "on"/"off", "add"/"remove", ...);
- quantity ("a card" against "all cards", "every", "each", "both", ...);
- the roles of the words they share (the same words in another order);
- the one thing a question is about: two questions that are the same sentence but for a short
  span ("the blue sofa" and "the grey sofa", "Visa" and "Mastercard") ask about different things.

A refusal only costs a miss; a wrong answer costs trust. The rules are general (no word list
of a domain), so they also refuse some true paraphrases; ``bench/semantic_cache.py`` measures
both sides on the labelled set in ``data/paraphrases``.
"""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"\d+(?:[.,:/]\d+)*|[a-z]+(?:'[a-z]+)?|[$€£¥%]")


def _list(text: str) -> list[str]:
    return text.split()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CARDINALS = _list(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
)
_ORDINALS = _list("zeroth first second third fourth fifth sixth seventh eighth ninth tenth")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(_CARDINALS)} | {w: str(i) for i, w in enumerate(_ORDINALS)}
_NUMBER_WORDS |= {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "ninety": "90"}
_NUMBER_WORDS |= {"hundred": "100", "thousand": "1000", "million": "1000000", "dozen": "12"}
_NUMBER_WORDS |= {"once": "1", "twice": "2"}

_UNITS = {"$": "usd", "dollar": "usd", "usd": "usd", "€": "eur", "euro": "eur", "eur": "eur"}
_UNITS |= {"£": "gbp", "pound": "gbp", "gbp": "gbp", "¥": "jpy", "yen": "jpy", "%": "%", "percent": "%"}

# "may" is left out: far more often "May I ...?" than the month.
_TIME_WORDS = _words(
    "january february march april june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec "
    "monday tuesday wednesday thursday friday saturday sunday weekend weekday "
    "today tomorrow yesterday tonight morning afternoon evening night noon midnight "
    "daily weekly monthly yearly annually quarterly hourly "
    "next last previous coming "
    "minute hour day week month year decade "
    "christmas easter thanksgiving halloween holiday"
)

_NEGATIONS = _words(
    "not no never none nothing nobody nowhere neither nor without cannot cant dont doesnt didnt "
    "isnt arent wasnt werent wont wouldnt shouldnt couldnt havent hasnt hadnt non"
)

_QUANTIFIERS = _words("all every each whole entire both several multiple many bulk")

_OPPOSITES = [
    ("enable", "disable"),
    ("on", "off"),
    ("in", "out"),
    ("add", "remove"),
    ("increase", "decrease"),
    ("upgrade", "downgrade"),
    ("show", "hide"),
    ("join", "leave"),
    ("start", "end"),
    ("start", "stop"),
    ("open", "close"),
    ("import", "export"),
    ("upload", "download"),
    ("include", "exclude"),
    ("allow", "block"),
    ("accept", "reject"),
    ("buy", "sell"),
    ("send", "receive"),
    ("deposit", "withdraw"),
    ("credit", "debit"),
    ("before", "after"),
    ("more", "less"),
    ("over", "under"),
    ("above", "below"),
    ("minimum", "maximum"),
    ("first", "last"),
    ("earlier", "later"),
    ("higher", "lower"),
    ("raise", "lower"),
    ("inbound", "outbound"),
    ("arrive", "depart"),
    ("public", "private"),
]
_OPPOSITE = {a: b for a, b in _OPPOSITES} | {b: a for a, b in _OPPOSITES}
_PREFIXES = ("un", "dis", "de", "non", "in", "im", "ir", "il")

_STOP = _words(
    "a an the i my me we our you your it its is are was were be been of at for do does did can "
    "could would should will how what when where why which who whom please and or with this that these "
    "those there here if so just now right currently actually exactly really still get got any some "
    "i'd i'm i've i'll you're it's what's that's there's "
    # the frame of a request, not its content: "can you tell me ...", "I'd like to know ..."
    "tell know help want like need wonder wondering let possible able way"
)

_SLOT = 2  # content words a differing span may hold and still be "one thing changed"


def _tokens(text: str) -> list[str]:
    raw = _TOKEN.findall(text.lower().replace("’", "'"))
    return [t.removesuffix("'s") for t in raw]  # "the buyer's costs" has the buyer in it


def _stem(t: str) -> str:
    return t[:-1] if len(t) > 3 and t.endswith("s") and not t.endswith("ss") else t


def _numbers(tokens: list[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for i, t in enumerate(tokens):
        if t[0].isdigit():
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            out[t.replace(",", "") + (nxt if nxt in ("am", "pm") else "")] += 1
        elif t in _NUMBER_WORDS:
            out[_NUMBER_WORDS[t]] += 1
        elif _stem(t) in _UNITS:
            out[_UNITS[_stem(t)]] += 1
    return out


def _times(tokens: list[str]) -> set[str]:
    return {_stem(t) for t in tokens if _stem(t) in _TIME_WORDS}


def _negated(tokens: list[str]) -> bool:
    return any(t in _NEGATIONS or t.endswith("n't") for t in tokens)


def _opposed(ta: list[str], tb: list[str]) -> bool:
    only_a, only_b = set(ta) - set(tb), set(tb) - set(ta)
    for t in only_a:
        if _OPPOSITE.get(t) in only_b:
            return True
        for p in _PREFIXES:
            if p + t in only_b or (t.startswith(p) and t[len(p) :] in only_b):
                return True
    return False


def _slot_changed(ca: list[str], cb: list[str]) -> bool:
    """The same sentence but for one short span: what the question is about has changed."""
    n = min(len(ca), len(cb))
    p = 0
    while p < n and ca[p] == cb[p]:
        p += 1
    s = 0
    while s < n - p and ca[-1 - s] == cb[-1 - s]:
        s += 1
    ma, mb = len(ca) - p - s, len(cb) - p - s
    return p + s > 0 and 0 < max(ma, mb) <= _SLOT


def conflict(a: str, b: str) -> str | None:
    """Why questions ``a`` and ``b`` may need different answers, or None when nothing says so."""
    ta, tb = _tokens(a), _tokens(b)
    if _numbers(ta) != _numbers(tb):
        return "numbers"
    if _times(ta) != _times(tb):
        return "time"
    if _negated(ta) != _negated(tb):
        return "negation"
    if _opposed(ta, tb):
        return "opposite"
    if {t for t in ta if t in _QUANTIFIERS} != {t for t in tb if t in _QUANTIFIERS}:
        return "quantity"
    ca = [_stem(t) for t in ta if t not in _STOP]
    cb = [_stem(t) for t in tb if t not in _STOP]
    if ca == cb:
        return None
    if Counter(ca) == Counter(cb):
        return "order"  # the same words in other roles: "from savings to checking" and back
    if _slot_changed(ca, cb):
        return "subject"
    return None
