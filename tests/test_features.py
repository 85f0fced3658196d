"""Content features: topics land apart, keywords and names are on topic, JSON round-trips, the
music/speech estimate tells chords from Piper speech, and semantic IDs are unique and stable."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest

from mediaflow.audio_features import describe_audio, describe_samples, resample_linear
from mediaflow.chapters import Chapter
from mediaflow.errors import InvalidInput
from mediaflow.features import EpisodeFeatures, decode_vector, encode_vector, extract_features, is_stale
from mediaflow.semantic_ids import Codebook, assign, fit_codebook, format_id, semantic_ids, unique_ids
from mediaflow.terms import entities, normalize
from mediaflow.transcript import Segment, Transcript, Word

# Three episodes per topic, each with its own sentences.
EPISODES = {
    "volcanoes": [
        ["Volcanoes form where molten rock rises through cracks in the crust of the Earth.",
         "Magma collects in a chamber several kilometres below the volcano.",
         "When gas pressure in the magma grows too high, the volcano erupts.",
         "Sticky magma rich in silica traps gas and explodes violently.",
         "Runny basalt lava flows out in glowing rivers on Hawaii."],
        ["The eruption of Tambora in 1815 cooled the climate of the entire planet.",
         "Volcanic ash from the eruption darkened the sky for months.",
         "Geologists watch volcanoes with seismometers and satellites.",
         "A swarm of small earthquakes often comes before an eruption.",
         "Volcanic soil is fertile, so farmers live close to active volcanoes."],
        ["Mount Vesuvius buried the Roman town of Pompeii under volcanic ash.",
         "Pyroclastic flows of hot gas and rock raced down the slopes of the volcano.",
         "Archaeologists found the shapes of people preserved in the ash.",
         "Vesuvius is still an active volcano near the city of Naples.",
         "Lava domes and craters show where magma reached the surface."],
    ],
    "coffee": [
        ["Coffee plants come from the highlands of Ethiopia.",
         "Legend says a goat herder noticed his goats dancing after eating coffee berries.",
         "Monks in Yemen roasted and brewed coffee to stay awake during night prayers.",
         "Coffee houses spread from Cairo to Istanbul and then to London.",
         "In London coffee houses merchants traded shares and insurance."],
        ["Arabica and robusta are the two main species of coffee beans.",
         "Brazil grows more coffee beans than any other country.",
         "Roasting turns green coffee beans brown and creates their aroma.",
         "Light roasts taste fruity while dark roasts taste bitter.",
         "Coffee farmers pick the ripe cherries by hand."],
        ["A barista pulls an espresso shot with hot water under high pressure.",
         "Steamed milk turns an espresso into a cappuccino or a latte.",
         "Caffeine blocks adenosine receptors, which is why coffee keeps you awake.",
         "A fine grind makes espresso, a coarse grind suits a French press.",
         "Cold brew coffee steeps in cold water for a whole day."],
    ],
    "football": [
        ["The football team won the championship final on penalties.",
         "Their goalkeeper saved two penalty kicks in the shootout.",
         "The striker scored twenty goals in the league this season.",
         "Fans filled the stadium and sang for the whole match.",
         "The captain lifted the trophy in front of the supporters."],
        ["The coach changed the formation to three defenders at half time.",
         "The referee showed a red card after a dangerous tackle.",
         "The midfielder passed the ball through the defence for the winning goal.",
         "The club signed a young winger from the academy.",
         "Training sessions focus on pressing and quick passing."],
        ["The World Cup brings national football teams together every four years.",
         "Brazil has won the World Cup more often than any other country.",
         "A goal from a corner kick decided the semi final.",
         "The league title was decided on the last day of the season.",
         "The goalkeeper dived to tip the ball over the crossbar."],
    ],
    "computers": [
        ["Charles Babbage designed the Analytical Engine with gears and punched cards.",
         "Ada Lovelace wrote the first computer program for that engine.",
         "Babbage never finished building his machine.",
         "Lovelace saw that the engine could work with symbols as well as numbers.",
         "Punched cards had been used before to weave patterns in silk."],
        ["ENIAC used eighteen thousand vacuum tubes and filled a large room.",
         "The transistor replaced vacuum tubes and made computers smaller.",
         "Integrated circuits put thousands of transistors on one silicon chip.",
         "Moore's law predicted that transistor counts would double every two years.",
         "Today a smartphone processor has billions of transistors."],
        ["The first personal computers were sold as kits to hobbyists.",
         "Programming languages like FORTRAN let scientists write software more easily.",
         "Operating systems manage memory, files and processes for programs.",
         "Early home computers loaded programs from cassette tapes.",
         "Computer memory grew from kilobytes to gigabytes in a few decades."],
    ],
}
TOPIC_WORDS = {
    "volcanoes": {"volcano", "volcanoe", "magma", "lava", "eruption", "ash", "vesuvius", "tambora", "crater",
                  "geologist", "earthquake", "pompeii", "rock", "silica", "gas", "soil", "pyroclastic"},
    "coffee": {"coffee", "espresso", "bean", "roast", "caffeine", "barista", "arabica", "robusta", "brew",
               "cappuccino", "latte", "grind", "ethiopia", "yemen", "cherry", "cherrie", "aroma"},
    "football": {"football", "goal", "goalkeeper", "penalty", "striker", "league", "referee", "stadium",
                 "match", "midfielder", "club", "world", "cup", "defender", "trophy", "team", "coach", "kick"},
    "computers": {"computer", "transistor", "babbage", "lovelace", "engine", "eniac", "chip", "silicon",
                  "program", "programming", "software", "memory", "vacuum", "tube", "fortran", "card", "processor"},
}


def transcript(sentences: list[str], seconds: float = 5.0) -> Transcript:
    segs = [Segment(i, i * seconds, i * seconds + seconds - 0.5, s) for i, s in enumerate(sentences)]
    return Transcript(segs, "en", len(sentences) * seconds, "test")


@lru_cache(maxsize=1)
def corpus() -> dict[str, EpisodeFeatures]:
    """Features of all twelve episodes, computed once per test session (test_recommend uses it)."""
    out = {}
    for topic, eps in EPISODES.items():
        for i, sents in enumerate(eps):
            out[f"{topic}-{i}"] = extract_features(transcript(sents), [], title=f"{topic.title()} {i + 1}")
    return out


def chords(seconds: float, sr: int = 16000, step: float = 0.5) -> np.ndarray:
    """Generated music: triads with harmonics and a bass note, a new chord every `step` seconds."""
    rng = np.random.default_rng(0)
    t = np.arange(int(step * sr)) / sr
    env = np.minimum(1, t / 0.02) * np.minimum(1, (step - t) / 0.05)
    out = []
    for _ in range(int(seconds / step)):
        root = [48, 53, 55, 57, 50][rng.integers(5)]
        x = sum(a * np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * h * t + rng.uniform(0, 6.3))
                for m in (root, root + 4, root + 7, root - 12) for h, a in ((1, 1), (2, .5), (3, .25)))
        out.append(x * env)
    y = np.concatenate(out)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def test_same_topic_episodes_are_close_and_different_topics_far():
    feats = corpus()
    ids = list(feats)
    topic = [i.split("-")[0] for i in ids]
    m = np.stack([feats[i].embedding for i in ids])
    sims = m @ m.T
    same = np.array([[a == b for b in topic] for a in topic])
    np.fill_diagonal(sims, np.nan)
    within = sims[same & ~np.eye(len(ids), dtype=bool)]
    across = sims[~same]
    assert np.nanmin(within) > np.nanmax(across), (np.nanmin(within), np.nanmax(across))
    for r, i in enumerate(ids):  # every episode's nearest neighbour is on its topic
        assert topic[int(np.nanargmax(sims[r]))] == topic[r]
    assert all(abs(np.linalg.norm(feats[i].embedding) - 1) < 1e-5 for i in ids)


def test_keywords_are_on_topic_and_ranked():
    for eid, f in corpus().items():
        words = TOPIC_WORDS[eid.split("-")[0]]
        top = f.keywords[:3]
        assert any(set(normalize(k.text).split()) & words for k in top), (eid, [k.text for k in f.keywords])
        scores = [k.score for k in f.keywords]
        assert len(f.keywords) >= 5 and all(0 < s <= 1.2 for s in scores)
        assert f.keywords[0].score == max(scores)
        # MMR: no keyword repeats another
        keys = [normalize(k.text) for k in f.keywords]
        assert len(set(keys)) == len(keys)


def test_names_are_found_without_sentence_starts_or_common_words():
    sents = EPISODES["computers"][0] + ["Coffee is not a name here.", "Later, Bandura’s students met Albert Bandura."]
    names = [e.text for e in entities(sents)]
    assert "Ada Lovelace" in names and "Charles Babbage" in names and "Analytical Engine" in names
    assert "Albert Bandura" in names and "Bandura" not in names and "Bandura’s" not in names
    assert not {"Coffee", "Later", "Punched", "Today"} & set(names)
    top = entities(sents)[0]
    assert top.score == 1.0 and top.count >= 2
    assert {"Ethiopia", "Yemen", "Cairo", "Istanbul", "London"} <= {e.text for e in corpus()["coffee-0"].entities}


def test_chapters_get_their_own_vectors_and_keywords():
    feats = corpus()
    sents = EPISODES["volcanoes"][0] + EPISODES["coffee"][1]
    t = transcript(sents)
    chapters = [Chapter(0.0, 25.0, "Under the volcano"), {"start": 25.0, "end": 50.0, "title": "Beans"}]
    f = extract_features(t, chapters, title="Two things")
    assert [c.title for c in f.chapters] == ["Under the volcano", "Beans"]
    assert f.chapters[0].embedding @ feats["volcanoes-0"].embedding > f.chapters[0].embedding @ feats["coffee-1"].embedding
    assert f.chapters[1].embedding @ feats["coffee-1"].embedding > f.chapters[1].embedding @ feats["volcanoes-0"].embedding
    assert any(set(normalize(k.text).split()) & TOPIC_WORDS["volcanoes"] for k in f.chapters[0].keywords)
    assert any(set(normalize(k.text).split()) & TOPIC_WORDS["coffee"] for k in f.chapters[1].keywords)


def test_features_round_trip_through_json_and_know_when_they_are_stale():
    f = corpus()["coffee-2"]
    d = json.loads(json.dumps(f.to_dict()))
    assert isinstance(d["embedding"], str) and d["vector_encoding"] == "base64-float32-le"
    g = EpisodeFeatures.from_dict(d)
    assert np.array_equal(g.embedding, f.embedding) and g.embedding.dtype == np.float32
    assert g.keywords == f.keywords and g.entities == f.entities and g.to_dict() == f.to_dict()
    assert (f.model_id, f.dim) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
    readable = json.dumps(f.to_dict(vectors=False))
    assert "embedding" not in readable and len(readable) < len(json.dumps(d)) / 2
    assert not is_stale(g.version, g.model_id)
    assert is_stale(g.version, "another-model")
    assert is_stale("features-v0", g.model_id)
    assert is_stale(None, None)  # none stored yet
    v = np.array([0.5, -1.25, 3.0], np.float32)
    assert np.array_equal(decode_vector(encode_vector(v)), v)


def test_rates_come_from_word_timestamps():
    words, t = [], 0.0
    for i in range(120):  # 120 words, 0.3 s each, with a 2 s pause after every 20th
        words.append(Word(t, t + 0.3, f" word{i}"))
        t += 0.3 + (2.0 if i % 20 == 19 else 0.05)
    seg = Segment(0, 0.0, t, " ".join(w.text.strip() for w in words) + ".", words)
    f = extract_features(Transcript([seg], "en", 60.0, "test"), [], title="Counting")
    assert f.word_count == 120 and f.words_per_minute == 120.0
    assert f.speech_timing == "words"
    spoken = t - 6 * 2.0 - 0.05
    assert f.transcribed_fraction == pytest.approx(spoken / 60.0, abs=0.02)
    assert f.speech_to_silence == pytest.approx(f.transcribed_fraction / (1 - f.transcribed_fraction), abs=1e-3)
    assert f.to_dict(vectors=False)["speech_to_silence"] == f.speech_to_silence  # served with the features
    assert f.language == "en" and f.duration_s == 60.0


def test_an_empty_transcript_falls_back_to_the_title():
    empty = Transcript([], "en", 0.0, "test")
    f = extract_features(empty, [], title="Volcanoes of Iceland")
    assert abs(np.linalg.norm(f.embedding) - 1) < 1e-5 and f.keywords == [] and f.words_per_minute is None
    with pytest.raises(InvalidInput, match="nothing to describe"):
        extract_features(empty, [], title="  ")


def test_music_speech_estimate_tells_chords_from_piper_speech(speech_wav, tmp_path):
    from mediaflow.audio import encode

    speech = describe_audio(speech_wav)
    assert speech.label == "speech" and speech.music_fraction < 0.3, speech
    music_path = tmp_path / "chords.wav"
    music_path.write_bytes(encode(chords(20.0), 16000, "wav"))
    music = describe_audio(music_path)
    assert music.label == "music" and music.music_fraction > 0.7, music
    assert music.low_energy_ratio < speech.low_energy_ratio and music.mod4 < speech.mod4
    assert -40 < speech.loudness_dbfs < 0 and 0.5 < speech.sound_fraction <= 1.0
    # a stream cut into odd-sized blocks gives the same answer as one block: nothing depends on block size
    x = np.concatenate([chords(6.0), np.zeros(16000, np.float32), resample_linear(chords(4.0, 22050), 22050)])
    whole = describe_samples([x])
    pieces = describe_samples(np.array_split(x, 37))
    assert whole == pieces
    silence = describe_samples([np.zeros(32000, np.float32)])
    assert silence.label == "silence" and silence.sound_fraction == 0.0


def test_audio_descriptors_join_the_episode_features(speech_wav):
    f = extract_features(transcript(EPISODES["volcanoes"][0]), [], "Volcanoes", audio_path=speech_wav)
    assert f.audio is not None and f.audio.label == "speech" and f.audio.duration_s > 5
    assert EpisodeFeatures.from_dict(json.loads(json.dumps(f.to_dict()))).audio == f.audio


def test_the_two_speech_shares_have_a_name_each_and_old_features_still_read(speech_wav):
    # 25 s of transcript segments over the 12 s of Piper speech: two different measures, two names
    f = extract_features(transcript(EPISODES["volcanoes"][0]), [], "Volcanoes", audio_path=speech_wav)
    d = json.loads(json.dumps(f.to_dict()))
    assert d["transcribed_fraction"] == f.transcribed_fraction == pytest.approx(22.5 / 25)  # inside the segments
    assert d["audio"]["speech_share_of_sound"] == f.audio.speech_share_of_sound
    assert f.audio.speech_share_of_sound == pytest.approx(1 - f.audio.music_fraction)
    assert "speech_fraction" not in json.dumps(d)  # no name is used for two things any more
    # features stored before the rename read back as the same values under the new names
    old = {**d, "speech_fraction": d["transcribed_fraction"],
           "audio": {**d["audio"], "speech_fraction": d["audio"]["speech_share_of_sound"]}}
    del old["transcribed_fraction"], old["audio"]["speech_share_of_sound"]
    back = EpisodeFeatures.from_dict(old)
    assert back.transcribed_fraction == f.transcribed_fraction and back.audio == f.audio
    assert back.to_dict() == f.to_dict()
    assert not is_stale(back.version, back.model_id)  # same values, same method: nothing to recompute


# -- semantic IDs ---------------------------------------------------------------------------------
def test_semantic_ids_are_unique_stable_and_group_topics(tmp_path):
    feats = corpus()
    ids = list(feats)
    vecs = np.stack([feats[i].embedding for i in ids])
    book, sid = semantic_ids(ids, vecs, levels=3, codes_per_level=4)
    assert len(set(sid.values())) == len(ids)
    # a re-run on the same catalogue, listed in another order, gives the same codebook and IDs
    order = np.random.default_rng(1).permutation(len(ids))
    book2, sid2 = semantic_ids([ids[i] for i in order], vecs[order], levels=3, codes_per_level=4)
    assert book2.version == book.version and sid2 == sid
    # four clear topics, four codes at the first level: each topic gets one first code
    first = {t: {sid[i][0] for i in ids if i.startswith(t)} for t in EPISODES}
    assert all(len(codes) == 1 for codes in first.values()) and len({min(c) for c in first.values()}) == 4
    path = book.save(tmp_path / "codebook.npz")
    loaded = Codebook.load(path)
    assert loaded.version == book.version and assign(loaded, vecs) == assign(book, vecs)
    assert [p.name for p in tmp_path.iterdir()] == ["codebook.npz"]  # no temp file left behind
    assert format_id(sid[ids[0]]).count("-") >= 2


def test_collisions_get_a_suffix_in_episode_id_order():
    codes = [(1, 2, 3), (1, 2, 3), (4, 5, 6), (1, 2, 3)]
    assert unique_ids(["b", "a", "c", "d"], codes) == {
        "a": (1, 2, 3, 0), "b": (1, 2, 3, 1), "c": (4, 5, 6), "d": (1, 2, 3, 2)}
    same = np.ones((3, 8), np.float32)
    _, sid = semantic_ids([30, 4, 12], same)
    assert sid == {4: (0, 0, 0, 0), 12: (0, 0, 0, 1), 30: (0, 0, 0, 2)}


def test_tiny_catalogues_get_ids_too():
    one = np.eye(1, 16, dtype=np.float32)
    book, sid = semantic_ids(["only"], one, levels=3, codes_per_level=64)
    assert sid == {"only": (0, 0, 0)} and book.codes_per_level == [1, 1, 1]
    book, sid = semantic_ids([], np.zeros((0, 16), np.float32))
    assert sid == {}
    with pytest.raises(InvalidInput, match="empty"):
        assign(book, one)
    book = fit_codebook(np.eye(2, 16, dtype=np.float32), levels=2, codes_per_level=8)
    assert book.codes_per_level[0] == 2 and len(set(assign(book, np.eye(2, 16)))) == 2
