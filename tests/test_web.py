"""The web player in a real headless Chromium, against the real server and episodes processed here."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import tone
from flows.episodes import process_episode
from mediaflow import pipeline
from mediaflow.audio import encode

CHROMIUM = os.environ.get("MEDIAFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
INSTALL = "apt-get install -y chromium"

# Titles the page must show as text, never as markup.
MIXED_TITLE = 'Coffee, sleep & <b>computers</b> "live"'


def _artifacts(tmp_path: Path) -> Path:
    """Screenshots go to $MEDIAFLOW_TEST_ARTIFACTS when set (to keep and look at), else the test's tmp dir."""
    out = Path(os.environ.get("MEDIAFLOW_TEST_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="session")  # session: set up, or skipped, before the speech fixtures are synthesised
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `{INSTALL}`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed in this venv")
    with sync_api.sync_playwright() as pw:
        # Debian's Chromium, never a downloaded one; the flags keep it quiet and working as root.
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--mute-audio",
            "--autoplay-policy=no-user-gesture-required"])
        yield b
        b.close()


@pytest.fixture
def page(browser, api):
    context = browser.new_context(base_url=str(api.base_url), viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(20_000)
    p.console_errors = []
    p.on("console", lambda m: p.console_errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: p.console_errors.append(str(e)))
    yield p
    context.close()


@pytest.fixture
def catalogue(settings, long_speech_wav, tmp_path):
    """Two processed episodes on one topic, coffee (one with a title full of markup: they are each other's
    similar episode, as unrelated ones are not), and one still waiting to be processed."""
    from mediaflow.tts.piper import PiperSpeaker
    from test_catalogue import COFFEE

    mixed = process_episode(str(long_speech_wav), title=MIXED_TITLE, show="The Curious Hour")
    sp = PiperSpeaker()
    coffee = tmp_path / "coffee.wav"
    coffee.write_bytes(encode(sp.speak_paragraphs(COFFEE), sp.sample_rate, "wav"))
    related = process_episode(str(coffee), title="Coffee at dawn", show="Earth Weekly")
    hum = tmp_path / "hum.wav"
    hum.write_bytes(encode(tone(3.0), 16000, "wav"))
    waiting = pipeline.ingest(hum, settings, title="Not transcribed yet", show="Earth Weekly").id
    return {"mixed": mixed, "related": related, "waiting": waiting}


def _current_time(page) -> float:
    return page.eval_on_selector("#player", "a => a.currentTime")


def _wait_player(page, test: str, timeout: float = 20_000) -> None:
    """Wait until `test(currentTime)` holds. Functions, not expression strings: the page's CSP forbids eval."""
    page.wait_for_function(f"() => ({test})(document.querySelector('#player').currentTime)", timeout=timeout)


def test_the_page_and_its_files_carry_the_security_headers(api):
    r = api.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/app.js">' in r.text and "<script>" not in r.text  # no inline script
    for path in ("/", "/static/app.js", "/static/style.css", "/favicon.ico"):
        h = api.get(path).headers
        assert "default-src 'self'" in h["content-security-policy"] and "unsafe" not in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
        assert h["referrer-policy"] == "no-referrer"
    for path in ("/static/../service/app.py", "/static/%2e%2e/app.py", "/static/", "/static/nope.js"):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


def test_listen_search_seek_follow_and_hear_why_in_a_real_browser(page, api, catalogue, tmp_path):
    ids = catalogue
    out = _artifacts(tmp_path)

    # the list, a page at a time
    page.goto("/#/?limit=2")
    page.wait_for_selector("#episode-list li.episode")
    assert page.locator("#episode-list li.episode").count() == 2
    assert page.locator("#page-info").text_content() == "1–2 of 3"
    page.click("#next-page")
    page.wait_for_function("() => document.querySelectorAll('#episode-list li.episode').length === 1")
    assert page.locator("#prev-page").is_enabled() and page.locator("#next-page").is_disabled()
    assert page.locator("#page-info").text_content() == "3–3 of 3"

    # search by show; the waiting episode shows its status
    page.fill("#q", "earth weekly")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelector('#list-summary').textContent.startsWith('2 episodes')")
    badge = page.locator(f"li.episode[data-id='{ids['waiting']}'] .badge")
    assert badge.text_content() == "pending"
    page.click(f"li.episode[data-id='{ids['waiting']}'] a")
    page.wait_for_selector("#episode-status:not([hidden])")
    assert "Waiting to be processed" in page.locator("#episode-status").text_content()

    page.fill("#q", "curious")
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelector('#list-summary').textContent.startsWith('1 episode')")
    link = page.locator(f"li.episode[data-id='{ids['mixed']}'] a")
    assert link.text_content() == MIXED_TITLE  # shown as text, not parsed as markup
    assert page.locator("nav.pager").is_hidden()  # one page: no pager
    page.screenshot(path=str(out / "list.png"))
    link.click()

    # the episode page: title as text, chapters, transcript, similar episodes
    page.wait_for_selector("#transcript li.seg")
    page.wait_for_selector("#chapters button.chapter")
    page.wait_for_selector("#similar li.suggestion")
    assert page.locator("#episode-title").text_content() == MIXED_TITLE
    assert page.locator("#episode-title b").count() == 0
    assert page.title() == f"{MIXED_TITLE} – mediaflow"
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")

    chapters = api.get(f"/episodes/{ids['mixed']}/chapters").json()["chapters"]
    assert len(chapters) >= 2
    target = chapters[1]
    page.locator("#chapters button.chapter").nth(1).click()
    _wait_player(page, f"t => Math.abs(t - {target['start']}) < 2")
    page.eval_on_selector("#player", "a => a.pause()")  # hold still while the highlights are read
    assert target["start"] - 0.1 <= _current_time(page) < target["start"] + 2
    assert page.locator("#chapters button.chapter").nth(1).get_attribute("aria-current") == "true"
    assert target["title"] in page.locator("#now-chapter").text_content()

    # the transcript line at that time is lit, and the light follows as the audio plays on
    segs = api.get(f"/episodes/{ids['mixed']}/transcript").json()["segments"]
    lit = [s for s in segs if s["start"] <= _current_time(page) + 0.05][-1]
    current = page.locator("#transcript li.seg.current")
    assert current.count() == 1 and current.get_attribute("aria-current") == "true"
    assert current.locator(".text").text_content().split()[:3] == lit["text"].split()[:3]
    later = next(s for s in segs if s["start"] > _current_time(page) + 1)
    page.eval_on_selector("#player", "a => a.play()")
    _wait_player(page, f"t => t > {later['start'] + 0.2}", timeout=30_000)
    page.wait_for_function("w => document.querySelector('#transcript li.seg.current .text').textContent.startsWith(w)",
                           arg=later["text"].split()[0])
    assert page.locator("#transcript .w.now").count() <= 1

    # words are shown as Whisper wrote them: its own spaces, none added ("cold-hearted", never "cold -hearted")
    for i in (0, 2):
        shown = page.locator("#transcript li.seg").nth(i).locator(".text").evaluate(
            "el => [...el.childNodes].filter(n => !n.classList?.contains('speaker')).map(n => n.textContent).join('')")
        assert shown == "".join(w["text"] for w in segs[i]["words"]).strip()

    # a word seeks; so does a chapter from the keyboard
    page.eval_on_selector("#player", "a => a.pause()")
    word = segs[2]["words"][1]
    page.locator("#transcript li.seg").nth(2).locator(".w").nth(1).click()
    _wait_player(page, f"t => Math.abs(t - {word['start']}) < 1")
    page.eval_on_selector("#player", "a => a.pause()")
    page.locator("#chapters button.chapter").nth(0).focus()
    page.keyboard.press("Enter")
    _wait_player(page, "t => t < 1")
    page.eval_on_selector("#player", "a => a.pause()")

    # "why this?": the explanation shown, then spoken by the chosen voice
    suggestion = page.locator(f"#similar li.suggestion[data-id='{ids['related']}']")
    assert suggestion.locator("h3 a").text_content() == "Coffee at dawn"
    assert suggestion.locator(".explanation").text_content()
    from mediaflow.tts.voices import student_checkpoint

    chosen = "student" if student_checkpoint().is_file() else "hibari"  # the product's voice, once shipped
    page.select_option("#voice", chosen)
    with page.expect_response(lambda resp: "/narration" in resp.url, timeout=60_000) as said:
        suggestion.locator("button.why").click()
    resp = said.value
    assert resp.status == 200 and resp.headers["content-type"] == "audio/mpeg", resp.text()
    assert f"voice={chosen}" in resp.url and "Coffee at dawn" in unquote(resp.headers["x-explanation"])
    page.wait_for_selector("#narration:not([hidden])")
    assert suggestion.locator("#narration").count() == 1  # the player beside its button, not at the page's foot
    assert page.eval_on_selector("#narration", "a => a.src").startswith("blob:")
    page.wait_for_function("() => !document.querySelector('#similar button.why').disabled")

    page.screenshot(path=str(out / "player.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(out / "player-phone.png"), full_page=True)

    # an unknown episode says so
    page.goto("/#/episodes/nope")
    page.wait_for_function("() => document.querySelector('#episode-title').textContent === 'Episode not found'")

    # no CSP violations, no script errors (the refused 404 of the unknown episode aside)
    errors = [e for e in page.console_errors if "404" not in e]
    assert errors == []
