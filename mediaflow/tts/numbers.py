"""English number words as a narrator says them (American style: no "and", no commas).

    cardinal(1250) -> "one thousand two hundred fifty"
    ordinal(21)    -> "twenty-first"
    year(2024)     -> "twenty twenty-four"
"""

from __future__ import annotations

_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion"]
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}


def _below_1000(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return words


def cardinal(n: int) -> str:
    """Whole number in words; numbers past the quadrillions are read digit by digit."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n >= 1000 ** len(_SCALES):
        return digits(str(n))
    if n < 1000:
        return " ".join(_below_1000(n))
    groups, scale = [], 0
    while n:
        n, g = divmod(n, 1000)
        if g:
            groups.append(" ".join(_below_1000(g)) + (f" {_SCALES[scale]}" if scale else ""))
        scale += 1
    return " ".join(reversed(groups))


def ordinal(n: int) -> str:
    """'first', 'twenty-third', 'one hundredth'."""
    words = cardinal(n)
    head, sep, last = words.rpartition(" ")
    pre, dash, unit = last.rpartition("-")
    if unit in _ORDINAL_WORDS:
        unit = _ORDINAL_WORDS[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    return head + sep + pre + dash + unit


def digits(s: str) -> str:
    """Read a digit string one digit at a time ('0' as 'oh' would be ambiguous in codes)."""
    return " ".join(_ONES[int(c)] for c in s if c.isdigit())


def decimal(s: str) -> str:
    """'3.14' -> 'three point one four'; '1,250.5' -> 'one thousand two hundred fifty point five'."""
    whole, _, frac = s.replace(",", "").partition(".")
    words = cardinal(int(whole or "0"))
    return f"{words} point {digits(frac)}" if frac else words


def year(n: int) -> str:
    """How years are said: 1999 'nineteen ninety-nine', 2005 'two thousand five', 1900 'nineteen hundred'."""
    if n < 1000 or n > 9999 or (2000 <= n < 2010):
        return cardinal(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return f"{cardinal(hi)} hundred"
    return f"{cardinal(hi)} {'oh ' if lo < 10 else ''}{cardinal(lo)}"


def plural(words: str) -> str:
    """'nineteen ninety' -> 'nineteen nineties' (decades), 'six' -> 'sixes'."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith(("x", "s")):
        return words + "es"
    return words + "s"
