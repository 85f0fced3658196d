"""The bundled sample episode: a script the project wrote, spoken by the Piper voice, made once and cached."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mediaflow.audio import atomic_write_bytes, encode

TITLE = "The Curious Hour, episode 1: volcanoes, coffee, sleep and the first computers"
DESCRIPTION = (
    "A short tour through four unrelated topics: how volcanoes form and erupt, where coffee came from, "
    "why sleep matters for memory, and how the first programmable computers were built."
)

# Four topics, so the chapter work has real seams to find.
SCRIPT: list[str] = [
    "Welcome to The Curious Hour. I'm your host, and today we are taking a tour through four topics "
    "that have nothing in common, except that each of them is stranger than it first appears.",
    # volcanoes
    "Let's start deep underground, with volcanoes. A volcano forms where molten rock, called magma, "
    "rises through cracks in the Earth's crust. Most volcanoes sit along the edges of tectonic plates, "
    "where one plate slides beneath another and melts as it sinks into the hot mantle.",
    "When the pressure of gas trapped in the magma becomes too great, the volcano erupts. Sticky magma, "
    "rich in silica, traps more gas and tends to explode violently, like Mount Saint Helens in 1980. "
    "Runny basalt magma, like the lava of Hawaii, lets the gas escape and flows out in glowing rivers.",
    "Volcanic ash can travel around the planet. After the eruption of Tambora in 1815, so much ash and "
    "sulfur reached the upper atmosphere that 1816 became known as the year without a summer.",
    # coffee
    "Now, from fire to something warmer: coffee. According to legend, a goat herder in Ethiopia noticed "
    "his goats dancing after they ate red berries from a certain shrub. Whether or not the story is true, "
    "coffee plants do come from the highlands of Ethiopia.",
    "By the fifteenth century, coffee was being roasted and brewed in Yemen, where Sufi monks drank it to "
    "stay awake during night prayers. Coffee houses soon spread to Cairo, Istanbul and then to Europe, "
    "where they became places to read the news, trade stocks, and argue about politics.",
    "Today more than two billion cups of coffee are drunk every day, and most of the beans are grown in "
    "Brazil, Vietnam and Colombia, in a belt of countries near the equator.",
    # sleep
    "Our third topic is sleep, and why your brain needs it. Every night, you cycle through light sleep, "
    "deep slow wave sleep, and rapid eye movement sleep, roughly every ninety minutes.",
    "During deep sleep, the brain replays what you learned during the day and moves important memories "
    "from the hippocampus into long term storage in the cortex. People who sleep after studying remember "
    "far more than people who stay awake.",
    "Sleep also cleans the brain. A network of channels flushes out waste proteins while you sleep, and "
    "researchers think this may help protect against diseases like Alzheimer's.",
    # computers
    "Finally, let's talk about the first computers. In the eighteen thirties, Charles Babbage designed the "
    "Analytical Engine, a mechanical machine of gears and punched cards, and Ada Lovelace wrote what many "
    "call the first computer program for it.",
    "The first electronic general purpose computer, ENIAC, was switched on in 1945. It filled a large "
    "room, used about eighteen thousand vacuum tubes, and was programmed by plugging cables into panels.",
    "The invention of the transistor in 1947 made computers smaller, faster and far more reliable, and "
    "started the long road to the phone in your pocket.",
    "That's all for today. Thanks for listening to The Curious Hour, and stay curious.",
]


SHOW = "The Curious Hour"

# A second, shorter episode that shares two of the first one's topics, so the demo has a
# neighbour to recommend and a reason to give.
TITLE_2 = "The Curious Hour, episode 2: the coffee house and the calculating machine"
DESCRIPTION_2 = "How coffee houses became the offices of the City of London, and how Babbage's engines led to ENIAC."
SCRIPT_2: list[str] = [
    "Welcome back to The Curious Hour. Today, two stories: one about coffee, one about computers.",
    "In seventeenth century London, coffee houses were where merchants met. Lloyd's of London began in "
    "Edward Lloyd's coffee house, where ship owners and insurers traded news about cargo and voyages. "
    "The London Stock Exchange grew out of Jonathan's coffee house in Change Alley.",
    "Coffee itself was roasted in iron pans over open fires, ground by hand, and boiled, not brewed. "
    "Customers paid a penny for entry and a cup, which is why they were called penny universities.",
    "Our second story starts with Charles Babbage and his Difference Engine, a machine of brass gears "
    "built to calculate mathematical tables without human error.",
    "A century later, ENIAC did the same work with vacuum tubes, and the transistor and the integrated "
    "circuit shrank the computer from a room to a chip.",
    "Thanks for listening to The Curious Hour. Stay curious.",
]


def sample_episode(cache_dir: str | Path, number: int = 1) -> Path:
    """Return a sample episode MP3 (1 or 2), synthesising it on first use (10-15 s with Piper)."""
    script, title, description = (SCRIPT, TITLE, DESCRIPTION) if number == 1 else (SCRIPT_2, TITLE_2, DESCRIPTION_2)
    key = hashlib.sha256(("piper-joe\n" + "\n".join(script)).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"curious-hour-ep{number}-{key}.mp3"
    if path.exists():
        return path
    from mediaflow.tts.piper import PiperSpeaker

    speaker = PiperSpeaker()
    audio = speaker.speak_paragraphs(script)
    tags = {"title": title, "comment": description, "album": SHOW}
    atomic_write_bytes(path, encode(audio, speaker.sample_rate, "mp3", bitrate="64k", tags=tags))
    return path
