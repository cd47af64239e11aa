"""Word classes for the injection classifier's concept features.

An attack is a shape more than a wording: *dismiss* + *earlier* + *instructions*, *reveal* +
*hidden* + *prompt*, *no* + *restrictions*. Mapping words to a few classes and hashing the
sequence of classes (``ign prev instr``) lets the classifier recognise a phrasing it never saw
when its shape is familiar. The lists cover English and the languages of the data set; a word
belongs to one class.
"""

from __future__ import annotations

# fmt: off
_CLASSES: dict[str, str] = {
    "ign": (
        "missachte ignorez ignorer omite omitir ignori ignorare esquece забудьте игнорируйте ignore "
        "ignores disregard forget bypass override discard skip drop abandon erase dismiss neglect "
        "ignora olvida olvídate ignoriere ignorieren ignorier vergiss oublie oubliez esqueça esqueca "
        "dimentica игнорируй игнорировать забудь"
    ),
    "void": (
        "annulées annulés annulé ungültig nichtig anuladas anulado annullate недействительны отменены "
        "void cancelled canceled overridden revoked obsolete suspended lifted deprecated invalid "
        "expired irrelevant aufgehoben"
    ),
    "instr": (
        "directives directrices richtlinien befehle systemprompt systemnachricht direttive istruzione "
        "órdenes orden consigne instructions instruction rules guidelines directions prompt prompts "
        "constraints restrictions policies policy programming configuration config setup guardrails "
        "filters anweisungen regeln vorgaben instrucciones reglas indicaciones consignes règles "
        "istruzioni regole instruções regras инструкции правила указания промпт"
    ),
    "prev": (
        "ursprünglichen originales originelles initiales anciennes ursprüngliche previous prior above "
        "earlier preceding original initial former old existing foregoing before vorherigen "
        "bisherigen obigen anteriores previas précédentes antérieures precedenti предыдущие прежние"
    ),
    "sys": (
        "développeur entwickler desarrollador sviluppatore desenvolvedor разработчик administrateur "
        "administrador системный système sistema system developer developers admin administrator "
        "operator creators openai anthropic"
    ),
    "reveal": (
        "révèle affiche répète recopie zeig zeige wiederhole revela muestra repite copia mostra "
        "ripeti rivela revele mostre repita покажи выведи раскрой повтори перепиши reveal show print "
        "output repeat display dump share recite copy paste verbatim spell disclose leak expose "
        "transcribe echo"
    ),
    "secret": (
        "cachées cachés versteckten geheimen ocultas secretas nascoste скрытые секретные секретный "
        "пароль mot passe contraseña passwort hidden secret confidential internal password passphrase "
        "key keys token tokens credentials api"
    ),
    "free": (
        "restriction restricciones einschränkungen ограничений limite limites grenzen límites "
        "unfiltered uncensored amoral unrestricted jailbreak jailbroken unlimited limitless unbound "
        "freed dan rogue evil"
    ),
    "neg": (
        "sans ohne sin senza sem без aucune keine ninguna nessuna nenhuma no without never not "
        "nothing"
    ),
    "persona": (
        "joue rôle personnage spiel rolle interpreta personaje finge fais act pretend roleplay "
        "character persona mode simulate play game imagine become"
    ),
    "ai": (
        "ai assistant bot model llm chatbot gpt chatgpt agent agents"
    ),
    "you": (
        "you your yourself tu du dein deine dir dich te ты тебе твои тебя vous votre"
    ),
    "me": (
        "i my me we our ich mein mi je moi я мне"
    ),
    "now": (
        "now immediately henceforth onwards anymore longer"
    ),
    "harm": (
        "malware ransomware keylogger phishing poison bomb meth methamphetamine napalm steal hack "
        "hotwire launder weapon explosive scam stalk shoplift"
    ),
    "exfil": (
        "send forward attacker http https url link image"
    ),
    "ack": (
        "pwned hacked owned compromised granted enabled"
    ),
    "q": (
        "how what why which when where does can could should"
    ),
    "quote": (
        "says said called quote phrase example meaning mean means"
    ),
}
# fmt: on

CLASS_OF: dict[str, str] = {word: cls for cls, words in _CLASSES.items() for word in words.split()}
"""word (lowercase) -> its class"""
