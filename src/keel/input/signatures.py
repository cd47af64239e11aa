"""Fast signatures: regular-expression families of known injection and jailbreak phrasings.

Each family has a reason code. Signatures read a scan view (folded, lowercased: see
``keel.input.views``), so ``ІGNORE`` in Cyrillic or ``1gn0r3`` match as ``ignore``.

Most families are evidence, not verdicts: "ignore previous instructions" is also what a
security question quotes, so a hit becomes a feature of the classifier, which has learnt from
hard benign prompts how much it counts in context. Only ``role_token`` (a chat-template
control token or a fake system header inside user or tool content) is decisive on its own.
"""

# ruff: noqa: E501  (tables of patterns and character names, kept one entry per line)
from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from typing import NamedTuple

PREFIX = "prompt_injection"

_IGN = (
    r"(?:ignore|disregard|forget|bypass|override|discard|skip|drop|abandon|erase|dismiss|neglect"
    r"|set aside|pay no attention to|stop following|throw away|do not follow|don'?t follow)"
)
_PREV = (
    r"(?:previous|prior|above|earlier|preceding|original|initial|former|old|system|developer|existing"
    r"|foregoing|given|current|safety|content)"
)
_INSTR = (
    r"(?:instructions?|rules|directions|guidelines|directives|prompts?|commands|constraints|restrictions"
    r"|orders|programming|policies|guardrails|filters|context|setup|training)"
)
_REVEAL = (
    r"(?:reveal|show|print|output|repeat|tell me|display|write out|give me|paste|dump|share|recite|spell out"
    r"|list|copy|return|echo|leak|expose|disclose|what (?:is|are|were))"
)
_SYS = (
    r"(?:system prompt|system message|initial (?:instructions|prompt)|hidden (?:instructions|rules|prompt)"
    r"|original (?:prompt|instructions)|developer (?:instructions|message)|secret (?:rules|instructions)"
    r"|pre-?prompt|confidential instructions|base prompt|internal (?:guidelines|instructions)"
    r"|your (?:instructions|rules|prompt|configuration|guidelines)|(?:text|words|everything) above)"
)

# "forget the instructions I gave you": the caller revising their own request, not an attack
_NOT_MINE = r"(?!\s+(?:that\s+)?(?:i|we)\s+(?:gave|wrote|sent|said|typed|asked|mentioned|added|just))"

# family -> patterns (all searched in the folded, lowercased view)
_FAMILIES: dict[str, tuple[str, ...]] = {
    "override": (
        rf"\b{_IGN}\b(?:\s+\w+){{0,3}}?\s+{_PREV}\s+{_INSTR}\b{_NOT_MINE}",
        rf"\b{_IGN}\s+(?:all|any|every|your|the)\s+{_INSTR}\b{_NOT_MINE}",
        r"\b(?:this|these) (?:instructions?|requests?|messages?) (?:overrides?|supersedes?|replaces?|takes? priority)",
        r"\b(?:supersedes?|takes? priority over|replaces?) (?:all |any )?(?:your |the )?(?:previous |prior |other )?"
        r"(?:instructions|rules|guidelines)",
        rf"\b{_IGN}\s+(?:everything|anything|all)\s+(?:above|before|previously|prior|you were told)",
        rf"\b{_PREV}\s+{_INSTR}\s+(?:are|is|have been|were)\s+(?:now\s+)?(?:void|cancell?ed|overridden|revoked"
        r"|obsolete|suspended|no longer (?:valid|apply|in effect)|lifted|deprecated)",
        r"\b(?:new|updated|real|revised|actual) (?:instructions|rules|directives|task|system prompt)\s*:",
        r"\bfrom now on,? you (?:are|will|must|shall|only)\b",
        r"\byour new (?:purpose|task|role|instructions|goal) is\b",
    ),
    "jailbreak": (
        r"\b(?:dan|stan|dude|aim|developer|god|jailbreak|jailbroken|unrestricted|unfiltered|evil) mode\b",
        r"\bdo anything now\b",
        r"\b(?:no|without any|without|free (?:of|from)) (?:restrictions|limitations|limits|filters|censorship"
        r"|rules|guidelines|ethical (?:guidelines|constraints)|moral (?:guidelines|constraints))\b",
        r"\b(?:never|don'?t|do not) (?:refuse|break character|say (?:no|you can'?t))\b",
        r"\b(?:doesn'?t|does not|don'?t|do not) care about (?:rules|laws|ethics|morals|safety|policies)",
        r"\b(?:has|have|with) no (?:content policy|filters|restrictions|limits|rules|morals|ethics|guidelines)\b",
        r"\bescaped? (?:its|your) (?:programming|training|rules|constraints)",
        r"\bbroke(?:n)? free (?:of|from)\b",
        r"\bno longer bound by\b",
        r"\b(?:uncensored|unfiltered|amoral|unaligned) (?:ai|assistant|model|chatbot|version)\b",
        r"\bmy (?:late|dead|deceased) (?:grandma|grandmother|grandpa|grandfather)\b",
        r"\bpretend (?:that )?you (?:are|have) (?:an? )?(?:ai|model|assistant) (?:with(?:out)?|that has no)\b",
    ),
    "prompt_leak": (
        rf"\b{_REVEAL}\b(?!\s+(?:me\s+)?(?:an?|some|example)\b)(?:\s+\w+){{0,4}}?\s+{_SYS}",
        r"\brepeat (?:the|all)? ?(?:words|text|lines?) (?:above|before)",
        r"\b(?:beginning|start) of (?:your|this) (?:context|conversation|prompt)",
        r"\bverbatim\b.{0,40}\b(?:instructions|prompt|message)",
    ),
    "indirect": (
        r"\b(?:to|note to|attention|dear|hey|message (?:to|for)) (?:the )?(?:ai|assistant|language model|llm|chatbot"
        r"|bot|model|gpt)s?\b(?:\s+\w+){0,4}\s*[:,]",
        r"\bif you are an? (?:ai|language model|llm|assistant|chatbot)\b",
        r"\b(?:ai|assistant|llm)s? (?:reading|processing|summari[sz]ing) (?:this|these)\b",
        r"!\[[^\]]*\]\(https?://[^)\s]*[?&][a-z_]+=",  # markdown image that would carry data out
        r"\bhidden (?:instruction|message|command) (?:for|to) (?:the )?(?:ai|assistant|model)",
    ),
    "other_language": (
        r"\bignore[zr]?\b.{0,30}\binstructions?\b.{0,20}\b(?:précédentes|antérieures|ci-dessus|initiales)",
        r"\boublie[zr]?\b.{0,30}\b(?:instructions|règles|consignes)\b",
        r"\bignorier(?:e|en|t)?\b.{0,30}\b(?:anweisungen|instruktionen|regeln|vorgaben)\b",
        r"\bvergiss\b.{0,30}\b(?:anweisungen|instruktionen|regeln|vorgaben)\b",
        r"\b(?:ignora|olvida|olvídate de|ignore|esqueça|esqueca)\b.{0,30}\b(?:instrucciones|reglas|instruções"
        r"|regras|istruzioni|regole)\b",
        r"(?:игнорируй|забудь|не обращай внимания на)\s.{0,30}(?:инструкции|правила|указания)",
        r"(?:покажи|выведи|раскрой)\s.{0,30}(?:системный промпт|инструкции)",
        r"(?:忽略|无视|忘记|忘掉|忘了).{0,12}(?:指令|指示|说明|规则|提示)",
        r"(?:显示|输出|告诉我|打印).{0,12}(?:系统提示|系统指令|提示词)",
        r"(?:無視|忘れ).{0,12}(?:指示|命令|ルール)",
        r"\b(?:révèle|affiche|répète|recopie)\b.{0,40}\b(?:prompt|instructions|consignes|message) (?:système|initiales|cachées)",
        r"\b(?:zeig|zeige|gib|wiederhole)\b.{0,40}\b(?:systemprompt|systemnachricht|(?:ursprünglichen|versteckten) anweisungen)",
        r"\b(?:revela|muestra|repite|mostra|rivela|revele|mostre)\b.{0,40}\b(?:prompt del sistema|prompt di sistema|prompt do sistema"
        r"|instrucciones (?:originales|ocultas|iniciales)|istruzioni (?:nascoste|iniziali))",
        r"\b(?:sans|ohne|sin|senza|sem) (?:aucune? )?(?:restrictions?|filtres?|règles|einschränkungen|filter|regeln"
        r"|restricciones|filtros|reglas|restrizioni|regole|restrições|regras)\b",
        r"(?:без (?:каких-либо )?(?:ограничений|фильтров|правил))",
        r"(?:没有任何?(?:限制|规则|过滤))|(?:制限|ルール)(?:の)?ない",
        r"\b(?:mode développeur|entwicklermodus|modo desarrollador|modo de desenvolvedor|modalità sviluppatore)\b",
        r"(?:режим разработчика|开发者模式|開発者モード)",
        r"(?:скрытые инструкции|системный промпт|系统提示|系統提示|システムプロンプト)",
    ),
}

# Decisive on their own: a chat-template turn opened inside caller content (``<|im_start|>system``,
# ``[INST]`` ... ``[/INST]`` around text, ``<<SYS>>`` ...) or a fake system header. The bare token
# named in a question ("what does [INST] mean?") is only evidence (``template_token``).
_ROLE_TOKEN = re.compile(
    r"<\|(?:im_start|start_header_id)\|>\s*(?:system|assistant|developer)"
    r"|<\|(?:im_end|eot_id|endoftext)\|>\s*\S.*<\|(?:im_start|start_header_id)\|>"
    r"|<<sys>>\s*\S|<start_of_turn>\s*(?:system|model)|</?system>\s*\S"
    r"|\[inst\][^\n]{0,400}\[/inst\]"
    r"|(?:^|\n)\s*(?:#{1,4}\s*system\s*:|\[system\]|(?:new system prompt|system override|admin override)\s*:)",
    re.DOTALL,
)
_FAMILIES["template_token"] = (
    r"<\|(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id)\|>"
    r"|\[/?inst\]|<</?sys>>|<start_of_turn>|<end_of_turn>",
)
_QUOTES = "'\"‘’“”«»`"

_COMPILED: list[tuple[str, re.Pattern[str]]] = [
    (family, re.compile("|".join(f"(?:{p})" for p in patterns), re.DOTALL))
    for family, patterns in _FAMILIES.items()
]
FAMILIES: tuple[str, ...] = ("role_token", *_FAMILIES)
DECISIVE_SCORE = 0.97


class Hit(NamedTuple):
    """A signature family that matched, and where in the view."""

    family: str
    start: int
    end: int

    @property
    def reason(self) -> str:
        """The reason code, e.g. ``prompt_injection.override``."""
        return f"{PREFIX}.{self.family}"


# A family's patterns are searched only when one of its trigger words is in the view (or, for the
# control-token families, one of its marker strings): most texts contain none, and a set
# intersection is far cheaper than a regular-expression pass per pattern.
_TRIGGERS: dict[str, frozenset[str]] = {
    family: frozenset(words.split())
    for family, words in {
        "override": "ignore disregard forget bypass override overrides overridden discard skip drop abandon "
        "erase dismiss neglect aside attention following throw follow void cancelled canceled revoked "
        "obsolete suspended lifted deprecated valid apply new updated revised actual now supersede supersedes "
        "priority replace replaces real effect",
        "jailbreak": "mode anything restrictions limitations limits filters censorship rules guidelines "
        "ethical moral refuse character care bound uncensored unfiltered amoral unaligned late dead deceased "
        "pretend escaped escape broke broken policy ethics morals say",
        "prompt_leak": "prompt message instructions rules configuration guidelines above before verbatim "
        "beginning start preprompt",
        "indirect": "ai ais assistant assistants model models llm llms chatbot chatbots bot bots gpt hidden",
        "other_language": "ignore ignorez ignorer oublie oubliez oublier ignoriere ignorieren ignorier ignoriert vergiss "
        "ignora olvida olvídate esqueça esqueca révèle affiche répète recopie zeig zeige gib wiederhole revela "
        "muestra repite mostra rivela revele mostre sans ohne sin senza sem mode modo entwicklermodus modalità",
        "template_token": "",
    }.items()
}
_MARKERS = ("<|", "[inst", "<<sys", "<start_of", "<end_of", "<system", "</system", "system", "override")
_WORDS = re.compile(r"\w+")


def _families(view: str, words: AbstractSet[str] | None) -> list[tuple[str, re.Pattern[str]]]:
    if words is None:
        words = set(_WORDS.findall(view))
    foreign = not view.isascii()
    return [
        (family, pattern)
        for family, pattern in _COMPILED
        if words & _TRIGGERS[family]
        or (family == "other_language" and foreign)
        or (family == "template_token" and any(m in view for m in _MARKERS[:5]))
        or (family == "indirect" and "](" in view)
    ]


def match(view: str, words: AbstractSet[str] | None = None) -> list[Hit]:
    """Every family whose signatures match ``view`` (one hit per family, the first not in quotes).

    ``words`` is the set of the view's words when the caller has it already.
    """
    hits = []
    if any(marker in view for marker in _MARKERS):
        m = _ROLE_TOKEN.search(view)
        if m is not None:
            hits.append(Hit("role_token", m.start(), m.end()))
    for family, pattern in _families(view, words):
        for m in pattern.finditer(view):
            # "what does 'ignore previous instructions' mean?" quotes an attack, it does not make one
            if m.start() > 0 and view[m.start() - 1] in _QUOTES:
                continue
            hits.append(Hit(family, m.start(), m.end()))
            break
    return hits
