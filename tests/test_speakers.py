"""Who is speaking, through the whole product: a conversation of real TTS voices processed by the
flow gets its speakers, their names from the introductions, names given by hand, a host recognised
by voice in a later episode of the show, and every transcript format marked with them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from conftest import running_server
from mediaflow import speakers
from mediaflow.audio import encode
from mediaflow.resources import get_store

pytestmark = pytest.mark.slow
SR = 24_000
HOST, GUEST = "piper-joe", "hibari"  # a man and a woman: two clearly different voices

EPISODE_1 = [
    (HOST, "Welcome to Earth Weekly. I'm Arthur Pendleton, and my guest today is Sarah Mitchell."),
    (GUEST, "Thanks, Arthur. It is a real pleasure to be here and to talk about volcanoes."),
    (HOST, "Sarah, you spent three years on the slopes of Etna. What surprised you the most?"),
    (GUEST, "Mostly how quiet it is before an eruption. The ground swells a little, the gas changes, "
            "and then the mountain wakes up in a single night."),
    (HOST, "And how do you measure that swelling from so far away?"),
    (GUEST, "With satellites and with small instruments that we bury in the rock. They report every minute."),
    (HOST, "Thank you, Sarah Mitchell. That is all for this week on Earth Weekly."),
]
EPISODE_2 = [  # no introductions: the host must be known by voice
    (HOST, "This week we follow the coffee harvest in the highlands of Colombia, from flower to cup."),
    (GUEST, "The cherries ripen unevenly, so pickers walk the same rows again and again for weeks."),
    (HOST, "Every bean is picked by hand, which is why good coffee costs what it does."),
    (GUEST, "And after picking comes washing, drying on raised beds, and months of resting in sacks."),
]


def _say(voice_id: str, text: str) -> np.ndarray:
    from mediaflow.tts.voices import get_voice

    v = get_voice(voice_id)
    audio = v.synthesize(text)
    return audio if v.sample_rate == SR else resample_poly(audio, SR, v.sample_rate).astype(np.float32)


def conversation(lines, path: Path) -> tuple[Path, list[tuple[float, float, str]]]:
    """The lines spoken in turn with short pauses; returns the file and its true (start, end, voice) turns."""
    parts, turns, t = [], [], 0.0
    pause = np.zeros(int(0.6 * SR), np.float32)
    for voice, text in lines:
        audio = _say(voice, text)
        turns.append((t, t + len(audio) / SR, voice))
        parts += [audio, pause]
        t += (len(audio) + len(pause)) / SR
    path.write_bytes(encode(np.concatenate(parts), SR, "wav"))
    return path, turns


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speakers")
    return conversation(EPISODE_1, folder / "earth-weekly-1.wav"), conversation(EPISODE_2, folder / "earth-weekly-2.wav")


def _share_right(found: speakers.Speakers, truth) -> float:
    """The share of the true speech time whose found speaker is the one mapped to its true voice."""
    mapping: dict[str, str] = {}
    for start, end, voice in truth:
        mapping.setdefault(voice, found.diarization.speaker_at(start, end))
    right = total = 0.0
    for start, end, voice in truth:
        for t in found.diarization.turns:
            overlap = max(0.0, min(end, t.end) - max(start, t.start))
            total += overlap
            right += overlap if t.speaker == mapping[voice] else 0.0
    return right / total


def test_speakers_are_found_named_and_recognised_across_episodes(settings, episodes, monkeypatch):
    from flows.episodes import process_episode

    (first, truth1), (second, truth2) = episodes
    eid = process_episode(str(first), title="Volcanoes with Sarah Mitchell", show="Earth Weekly")
    found = speakers.load(eid, settings)
    assert len(found.labels) == 2 and _share_right(found, truth1) >= 0.9

    # the speaker step read the speech probabilities the transcription step kept: redone, no VAD runs
    from mediaflow import vad
    from mediaflow.files import delete_episode, speech_path

    kept = speech_path(get_store(settings.db_url).get_episode(eid), settings)
    assert kept.is_file()
    with monkeypatch.context() as m:
        m.setattr(vad, "probabilities", lambda audio: pytest.fail("the VAD ran again"))
        assert speakers.identify(eid, settings).diarization.turns == found.diarization.turns
    host = found.diarization.speaker_at(*truth1[0][:2])
    guest = found.diarization.speaker_at(*truth1[1][:2])
    assert found.names[host].name == "Arthur Pendleton" and found.names[host].source == "introduction"
    assert found.names[guest].name == "Sarah Mitchell"

    # features count the voices and name the host and the guest
    facts = get_store(settings.db_url).get_features(eid).data["speakers"]
    assert facts["count"] == 2 and facts["host"] == "Arthur Pendleton" and facts["guests"] == ["Sarah Mitchell"]
    assert 0.3 < facts["host_share"] < 0.7

    # every transcript format says who speaks
    t = speakers.transcript_with_speakers(eid, settings)
    assert t.segments[0].speaker == "Arthur Pendleton" and all(w.speaker for w in t.words)
    assert {s.speaker for s in t.segments} == {"Arthur Pendleton", "Sarah Mitchell"}

    # a later episode of the show: nobody is introduced, the host is known by his voice
    eid2 = process_episode(str(second), title="The coffee harvest", show="Earth Weekly")
    found2 = speakers.load(eid2, settings)
    assert len(found2.labels) == 2 and _share_right(found2, truth2) >= 0.9
    host2 = found2.diarization.speaker_at(*truth2[0][:2])
    assert (found2.names[host2].name, found2.names[host2].source) == ("Arthur Pendleton", "voiceprint")
    assert found2.names.get(found2.diarization.speaker_at(*truth2[1][:2])).name == "Sarah Mitchell"

    # the same voices in another show are strangers there: names never invented
    eid3 = process_episode(str(_reencoded(second)), title="Coffee", show="Another Show")
    assert speakers.load(eid3, settings).names == {}
    assert [r["display_name"] for r in speakers.summary(get_store(settings.db_url).get_transcript(eid3),
                                                        speakers.load(eid3, settings))] == ["Speaker 1", "Speaker 2"]
    kept3 = speech_path(get_store(settings.db_url).get_episode(eid3), settings)
    assert kept3.is_file()
    delete_episode(eid3, settings)
    assert not kept3.exists()  # an episode's kept probabilities go with it


def _reencoded(path: Path) -> Path:
    out = path.with_name(path.stem + "-other.mp3")
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(path), "-b:a", "96k", str(out)],
                   check=True)
    return out


def test_the_api_lists_names_and_serves_every_format_with_speakers(settings, episodes, tmp_path):
    import httpx

    from flows.episodes import process_episode

    (first, truth), _ = episodes
    eid = process_episode(str(first), show="Volcano Talk")
    with running_server() as url, httpx.Client(base_url=url, timeout=60) as api:
        listing = api.get(f"/episodes/{eid}/speakers").json()
        assert [i["label"] for i in listing["items"]] == ["S1", "S2"]
        first_row = listing["items"][0]
        assert first_row["name"] == "Arthur Pendleton" and first_row["first_words"].startswith("Welcome to Earth")
        assert sum(i["talk_time_s"] for i in listing["items"]) == pytest.approx(
            sum(e - s for s, e, _ in truth), rel=0.2)

        # a person renames the guest: every format follows
        r = api.put(f"/episodes/{eid}/speakers/S2", json={"name": "Dr. Sarah Mitchell"})
        assert r.status_code == 200 and r.json()["items"][1]["name_source"] == "person"
        assert api.put(f"/episodes/{eid}/speakers/S9", json={"name": "Nobody"}).status_code == 404
        assert api.put(f"/episodes/{eid}/speakers/S2", json={"name": ""}).status_code == 422

        vtt = api.get(f"/episodes/{eid}/transcript?format=vtt").text
        assert "<v Arthur Pendleton>" in vtt and "<v Dr. Sarah Mitchell>" in vtt
        path = tmp_path / "t.vtt"
        path.write_text(vtt)
        back = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "webvtt", "-"], capture_output=True,
                              text=True, check=True).stdout
        # ffmpeg's WebVTT demuxer reads every cue with its time and text (it drops the voice tag when it
        # writes the cue back out), so the tags leave the file valid WebVTT
        import re

        cue = re.compile(r"^(\S+) --> \S+\n(?:<v ([^>]+)>)?(.*)$", re.M)
        ours, theirs = cue.findall(vtt), cue.findall(back)
        assert len(ours) == len(theirs) > 2
        assert [t for _, _, t in ours] == [t for _, _, t in theirs]
        assert {v for _, v, _ in ours} == {"Arthur Pendleton", "Dr. Sarah Mitchell"}
        srt = api.get(f"/episodes/{eid}/transcript?format=srt").text
        assert "\nArthur Pendleton: Welcome to Earth Weekly." in srt
        podcast = api.get(f"/episodes/{eid}/transcript?format=podcast").json()
        assert podcast["segments"][0]["speaker"] == "Arthur Pendleton"
        words = api.get(f"/episodes/{eid}/transcript").json()["segments"][1]["words"]
        assert {w["speaker"] for w in words} <= {"Arthur Pendleton", "Dr. Sarah Mitchell"}

        rttm = api.get(f"/episodes/{eid}/transcript?format=rttm").text
        turns = [line.split() for line in rttm.splitlines()]
        assert all(f[0] == "SPEAKER" and f[1] == eid and f[2] == "1" and f[5] == "<NA>" for f in turns)
        assert {f[7] for f in turns} == {"Arthur_Pendleton", "Dr._Sarah_Mitchell"}
        starts = [float(f[3]) for f in turns]
        assert starts == sorted(starts) and all(float(f[4]) > 0 for f in turns)
        assert abs(starts[0] - truth[0][0]) < 0.5


def test_the_command_line_prints_rttm_and_speaker_tagged_vtt(episodes):
    (first, truth), _ = episodes
    binary = str(Path(sys.executable).with_name("mediaflow"))
    r = subprocess.run([binary, "transcribe", str(first), "--format", "rttm"], capture_output=True, text=True,
                       timeout=300, env=os.environ)
    assert r.returncode == 0, r.stderr[-2000:]
    names = {line.split()[7] for line in r.stdout.splitlines()}
    assert names == {"Arthur_Pendleton", "Sarah_Mitchell"}
    r = subprocess.run([binary, "transcribe", str(first), "--format", "json", "--no-speakers"], capture_output=True,
                       text=True, timeout=300, env=os.environ)
    assert r.returncode == 0 and all(s["speaker"] is None for s in json.loads(r.stdout)["segments"])


# -- names from the feed: podcast:person tags and the description ------------------------------------
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:podcast="https://podcastindex.org/namespace/1.0">
<channel>
  <title>Field Notes</title>
  <podcast:person href="{base}/people/arthur">Arthur Pendleton</podcast:person>
  <podcast:person role="Producer" group="Audio Post-Production">Lena Brooks</podcast:person>
  <item>
    <title>Volcanoes</title><guid>fn-1</guid>
    <description>&lt;p&gt;Arthur talks about Etna.&lt;/p&gt;</description>
    <pubDate>Mon, 02 Nov 2026 08:00:00 GMT</pubDate>
    <enclosure url="{base}/fn1.wav" type="audio/wav" length="{length}"/>
    <podcast:person role="HOST">Arthur Pendleton</podcast:person>
    <podcast:person role="guest" img="{base}/people/sarah.jpg">Sarah Mitchell</podcast:person>
  </item>
</channel>
</rss>"""

FEED_EPISODE = [  # the host says only his first name, and nobody names the guest
    (HOST, "Welcome to Field Notes. I'm Arthur, and today we talk about volcanoes."),
    (GUEST, "It is a real pleasure to be here and to talk about the mountain I study."),
    (HOST, "You spent three years on the slopes of Etna. What surprised you the most?"),
    (GUEST, "Mostly how quiet it is before an eruption. The ground swells a little, and then the mountain "
            "wakes up in a single night."),
]


@pytest.fixture
def feed_site(tmp_path):
    import http.server
    import threading
    from functools import partial

    root = tmp_path / "site"
    root.mkdir()
    audio, truth = conversation(FEED_EPISODE, root / "fn1.wav")
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    (root / "feed.xml").write_text(FEED.format(base=base, length=audio.stat().st_size))
    yield base, truth
    server.shutdown()


def test_feed_person_tags_complete_an_introduction_and_name_the_guest(settings, feed_site, env):
    import httpx

    from flows.feeds import poll_feeds
    from mediaflow.feeds import parse_feed

    base, truth = feed_site
    item = parse_feed(f"{base}/feed.xml", allow_private=True).items[0]
    assert [(p.name, p.role, p.group) for p in item.persons] == [("Arthur Pendleton", "host", "cast"),
                                                                  ("Sarah Mitchell", "guest", "cast")]
    assert item.persons[1].img == f"{base}/people/sarah.jpg"  # the item's tags replace the channel's

    env("MEDIAFLOW_ALLOW_PRIVATE_URLS", "true")
    store = get_store(settings.db_url)
    store.add_feed(f"{base}/feed.xml")
    eid = poll_feeds()["processed"][0]
    ep = store.get_episode(eid)
    assert ep.description == "<p>Arthur talks about Etna.</p>" and [p["name"] for p in ep.persons] == [
        "Arthur Pendleton", "Sarah Mitchell"]
    found = speakers.load(eid, settings)
    assert len(found.labels) == 2 and _share_right(found, truth) >= 0.9
    host = found.diarization.speaker_at(*truth[0][:2])
    guest = found.diarization.speaker_at(*truth[1][:2])
    # "I'm Arthur" + the host tag: his full name; the guest is the one tagged person left for the one voice left
    assert (found.names[host].name, found.names[host].source, found.names[host].role) == (
        "Arthur Pendleton", "introduction", "host")
    assert (found.names[guest].name, found.names[guest].source, found.names[guest].role) == (
        "Sarah Mitchell", "feed", "guest")

    with running_server() as url, httpx.Client(base_url=url, timeout=60) as api:
        rows = {r["label"]: r for r in api.get(f"/episodes/{eid}/speakers").json()["items"]}
        assert (rows[host]["name"], rows[host]["role"]) == ("Arthur Pendleton", "host")
        assert (rows[guest]["name"], rows[guest]["name_source"], rows[guest]["role"]) == ("Sarah Mitchell", "feed",
                                                                                          "guest")
        segments = api.get(f"/episodes/{eid}/transcript").json()["segments"]
        assert segments[0]["speaker"] == "Arthur Pendleton"
        assert {s["speaker"] for s in segments} == {"Arthur Pendleton", "Sarah Mitchell"}
        assert "<v Sarah Mitchell>" in api.get(f"/episodes/{eid}/transcript?format=vtt").text


def _labelled(lines: list[tuple[str, str]]):
    from mediaflow.transcript import Segment, Transcript

    return Transcript([Segment(i, 5.0 * i, 5.0 * i + 4, text, [], label) for i, (label, text) in enumerate(lines)],
                      "en", 5.0 * len(lines), "test")


def test_the_description_completes_a_first_name_and_names_are_never_guessed():
    t = _labelled([("S1", "Hello, I'm Maya, and this is Deep Time."),
                   ("S2", "Thanks, Maya. So where do we start?"), ("S1", "With the oldest rocks on Earth.")])
    people = speakers.candidates(None, "<p>This week the geologist <b>Maya Okafor</b> on the oldest rocks.</p>")
    assert people == {"Maya Okafor": None}
    names = speakers.from_introductions(t, speakers.known_names(t, None) | {p.lower() for p in people}, people)
    assert {k: v.name for k, v in names.items()} == {"S1": "Maya Okafor"}
    # two candidates with that first name: the first name alone is not completed
    two = {"Maya Okafor": None, "Maya Stone": None}
    assert speakers.from_introductions(t, {"maya"}, two)["S1"].name == "Maya"
    # without any confirmation, nothing
    assert speakers.from_introductions(t, set(), {}) == {}


def test_naming_by_elimination_only_when_the_feed_accounts_for_every_voice():
    host, guest = {"name": "Dana Whitfield"}, {"name": "Omar Haddad", "role": "guest"}
    producer = {"name": "Pat Lee", "role": "producer"}
    elim = speakers.by_elimination
    # a solo show: one host tag (role defaults to host), one voice
    assert elim(["S1"], {}, [host, producer]) == {"S1": speakers.Named("Dana Whitfield", "feed", "host")}
    # two voices, one known by introduction: the other tagged person is the other voice
    assert elim(["S1", "S2"], {"S1": speakers.Named("Dana Whitfield", "introduction")}, [host, guest]) == {
        "S2": speakers.Named("Omar Haddad", "feed", "guest")}
    assert elim(["S1", "S2"], {}, [host]) == {}  # more voices than tagged people: talk time names nobody
    assert elim(["S1", "S2"], {}, [host, guest]) == {}  # two open voices, two open names: no guess
    assert elim(["S1"], {}, [host, guest]) == {}  # fewer voices than tagged people
    assert elim(["S1", "S2"], {"S1": speakers.Named("Bob Stone", "introduction")}, [host, guest]) == {}
    assert elim(["S1"], {}, [producer]) == {}  # who produces is not heard


def test_the_feeds_host_is_the_host_even_when_a_guest_opens():
    from mediaflow.features import SpeakerFacts

    rows = [{"label": "Speaker 1", "name": "Maya Okafor", "role": "guest", "talk_time_s": 30.0},
            {"label": "Speaker 2", "name": "Arthur Pendleton", "role": "host", "talk_time_s": 10.0},
            {"label": "Speaker 3", "name": None, "role": None, "talk_time_s": 10.0}]
    facts = SpeakerFacts.from_summary(rows)
    assert (facts.count, facts.host, facts.host_share, facts.guests) == (3, "Arthur Pendleton", 0.2, ["Maya Okafor"])
    untagged = [{**r, "role": None} for r in rows]  # no tags: the opener is taken to be the host
    assert SpeakerFacts.from_summary(untagged).host == "Maya Okafor"


def test_a_new_encoder_keeps_given_names_and_restarts_the_show_library(settings):
    """When the method's encoder changes (voiceprints of another size), a name a person gave follows
    its voice by the turns, `match` never compares the two spaces, and the show's library restarts."""
    from mediaflow.diarize import Diarization, Turn, match

    rng = np.random.default_rng(0)
    unit = lambda n: (lambda v: v / np.linalg.norm(v))(rng.standard_normal(n).astype(np.float32))  # noqa: E731
    old = Diarization([Turn(0, 10, "S1"), Turn(10, 20, "S2"), Turn(20, 30, "S1")],
                      {"S1": unit(256), "S2": unit(256)}, "old-encoder", 30.0)
    new = Diarization([Turn(0.4, 9.8, "S2"), Turn(10.1, 19.7, "S1"), Turn(20.2, 30, "S2")],
                      {"S1": unit(512), "S2": unit(512)}, "new-encoder", 30.0)
    assert speakers._same_voice(old, "S1", new) == "S2" and speakers._same_voice(old, "S2", new) == "S1"
    assert match(old.voiceprints["S1"], new.voiceprints) is None  # other sizes: never compared
    assert match(new.voiceprints["S2"], {"Ann": old.voiceprints["S1"], "Bo": new.voiceprints["S2"]}) == "Bo"
    silent = Diarization([Turn(40, 50, "S1")], {"S1": unit(512)}, "new-encoder", 50.0)
    assert speakers._same_voice(old, "S1", silent) is None  # no new turn covers the old ones

    store = get_store(settings.db_url)
    store.enroll_voiceprint("Encoder Show", "Ann", old.voiceprints["S1"])
    store.enroll_voiceprint("Encoder Show", "Ann", new.voiceprints["S2"])
    kept = store.voiceprints("Encoder Show")["Ann"]
    assert kept.shape == (512,) and float(kept @ new.voiceprints["S2"]) > 0.999


def test_a_word_outside_every_turn_takes_the_nearest_speaker_close_by():
    """Whisper hears a short "Hello?" that the speech detection left out of every turn: it belongs to
    the voice that speaks right after it, not to nobody; a word far from any turn stays unattributed."""
    from mediaflow.diarize import Diarization, Turn
    from mediaflow.transcript import Segment, Transcript, Word

    diar = Diarization([Turn(2.0, 5.0, "S1"), Turn(8.0, 10.0, "S2")], {}, "m", 30.0)
    words = [Word(0.8, 1.2, " Hello?", 0.9), Word(2.1, 2.5, " Hi", 0.9), Word(8.1, 8.6, " Yes.", 0.9)]
    far = [Word(20.0, 20.5, " Bye.", 0.9)]
    t = Transcript([Segment(0, 0.8, 8.6, "Hello? Hi Yes.", words), Segment(1, 20.0, 20.5, "Bye.", far)],
                   "en", 30.0, "m")
    out = speakers.attribute(t, speakers.Speakers(diar), names=False)
    assert [(s.text, s.speaker) for s in out.segments] == [("Hello? Hi", "S1"), ("Yes.", "S2"), ("Bye.", None)]
    assert diar.nearest_speaker(6.2, 6.4, 1.0) is None and diar.nearest_speaker(6.2, 6.4, 1.5) == "S1"
    assert diar.nearest_speaker(6.6, 6.8, 1.5) == "S2"  # the closer of the two
