"""Nobody let in: the API key where documented (compared in constant time), no way out of the data dir,
uploads capped while they stream, SSRF-guarded downloads, bounded speech input, no leaks in errors."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import tracemalloc
from urllib.parse import urlsplit

import pytest

from flows.episodes import process_episode
from mediaflow import config, feeds
from mediaflow.errors import InvalidInput
from service import deps

KEY = "s3cret-key-0123456789"
ERROR_KEYS = {"code", "message"}


def error_of(r) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    return body["error"]


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_API_KEY", KEY)
    config.get_settings.cache_clear()
    return {"Authorization": f"Bearer {KEY}"}


# -- the API key ---------------------------------------------------------------------------------
WRITES = [  # every endpoint documented as needing the key, with a body that is otherwise harmless
    ("POST", "/episodes", {"data": {"path": "inbox/nothing.wav"}}),
    ("DELETE", "/episodes/0123456789abcdef", {}),
    ("POST", "/episodes/0123456789abcdef/reprocess", {}),
    ("POST", "/tts", {"json": {"text": ""}}),
    ("POST", "/v1/audio/speech", {"json": {"input": ""}}),
]
WRONG = [None, "Bearer", "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", f"{KEY}",
         f"Bearer  {KEY[:8]}"]


def test_writes_need_the_key_and_reads_do_not(api, keyed):
    for method, path, kw in WRITES:
        for auth in WRONG:
            r = api.request(method, path, headers={"Authorization": auth} if auth else {}, **kw)
            assert r.status_code == 401, (method, path, auth, r.text)
            assert error_of(r)["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
        r = api.request(method, path, headers=keyed, **kw)
        assert r.status_code not in (401, 403, 500), (method, path, r.text)  # in: a 400/404/422 of its own
    for path in ("/health", "/episodes", "/tts/voices", "/v1/audio/voices", "/openapi.json"):
        assert api.get(path).status_code == 200, path


def test_reads_need_the_key_when_configured(api, keyed, monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_READ_REQUIRES_KEY", "true")
    config.get_settings.cache_clear()
    for path in ("/episodes", "/episodes/x", "/episodes/x/transcript", "/tts/voices"):
        assert api.get(path).status_code == 401, path
        assert api.get(path, headers=keyed).status_code != 401, path
    assert api.get("/health").status_code == 200 and api.get("/").status_code == 200


def test_the_key_is_compared_in_constant_time(api, keyed, monkeypatch):
    """Every check goes through `hmac.compare_digest`, for wrong keys and the right one alike."""
    import hmac

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(deps.hmac, "compare_digest", spy)
    assert api.delete("/episodes/0123456789abcdef", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.delete("/episodes/0123456789abcdef", headers=keyed).status_code == 404
    assert api.post("/episodes", headers={"Authorization": "Bearer nope"}, data={"path": "x"}).status_code == 401
    assert calls == [(b"nope", KEY.encode()), (KEY.encode(), KEY.encode()), (b"nope", KEY.encode())]


def test_an_upload_without_the_key_is_refused_before_its_body_is_read(api, keyed):
    status, sent = raw_post(api, "/episodes", 100 << 20, headers={})
    assert status == 401 and sent <= 8 << 20  # the answer came while the 100 MiB were still on their way


# -- uploads: streamed, capped while they arrive ----------------------------------------------------
def raw_post(api, path: str, total: int, headers: dict, chunked: bool = False, chunk: int = 1 << 16):
    """POST a multipart upload of `total` zero bytes by hand, stopping at the first byte of an answer.

    Returns (status, bytes sent). The body is made as it is sent, so the client holds 64 KiB at a time.
    """
    url = urlsplit(str(api.base_url))
    head = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.mp3"\r\n'
            b"Content-Type: audio/mpeg\r\n\r\n")
    tail = b"\r\n--b0undary--\r\n"
    lines = [f"POST {path} HTTP/1.1", f"Host: {url.hostname}", "Content-Type: multipart/form-data; boundary=b0undary",
             "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(head) + total + len(tail)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    sent = 0
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

        def send(data: bytes) -> None:
            s.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)

        try:
            send(head)
            block = b"\0" * chunk
            while sent < total:
                send(block)
                sent += len(block)
                s.setblocking(False)
                try:
                    answer = s.recv(64)
                except BlockingIOError:
                    answer = b""
                finally:
                    s.setblocking(True)
                if answer:
                    return int(answer.split()[1]), sent
            send(tail)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: read its answer
        s.settimeout(30)
        return int(s.recv(64).split()[1]), sent


def test_an_upload_declaring_more_than_the_cap_is_refused_before_its_body(api, settings, monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_MAX_UPLOAD_MB", "4")
    config.get_settings.cache_clear()
    status, sent = raw_post(api, "/episodes", 200 << 20, headers={})
    assert status == 413 and sent <= 8 << 20  # of 200 MiB: what the socket buffers took before the answer
    assert not (settings.data_path / "incoming").exists() or not any((settings.data_path / "incoming").iterdir())


def test_a_chunked_upload_is_cut_off_at_the_cap(api, settings, monkeypatch):
    monkeypatch.setenv("MEDIAFLOW_MAX_UPLOAD_MB", "4")
    config.get_settings.cache_clear()
    status, sent = raw_post(api, "/episodes", 200 << 20, headers={}, chunked=True)
    assert status == 413 and sent <= 16 << 20  # the cap (4 MiB + 1 MiB of form) and the socket buffers
    assert api.get("/health").status_code == 200
    assert not (settings.data_path / "incoming").exists() or not any((settings.data_path / "incoming").iterdir())


def test_an_upload_is_streamed_to_disk_not_held_in_memory(api, settings, monkeypatch):
    """60 MiB under a 64 MiB cap: the server (in this process) never holds more than a few MiB of it.

    Counted by tracemalloc, Python's own allocations (the request body is Python bytes), not by RSS,
    which depends on the allocator and the machine."""
    monkeypatch.setenv("MEDIAFLOW_MAX_UPLOAD_MB", "64")
    config.get_settings.cache_clear()
    tracemalloc.start()
    try:
        status, sent = raw_post(api, "/episodes", 60 << 20, headers={}, chunk=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 422 and sent == 60 << 20  # all of it taken, then refused: zeros have no readable duration
    print(f"\nat most {peak / 2**20:.1f} MiB allocated while a 60 MiB upload was received")
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB allocated for a 60 MiB upload: it is being held in memory"
    assert not any((settings.data_path / "incoming").iterdir())


def synthesised(api) -> float:
    """Seconds of speech made so far, all voices, as /metrics counts them (this process's registry)."""
    return sum(float(line.split(" ")[1]) for line in api.get("/metrics").text.splitlines()
               if line.startswith("mediaflow_synthesised_audio_seconds_total{"))


def test_speech_input_is_bounded(api):
    before = synthesised(api)
    for path, field in (("/tts", "text"), ("/v1/audio/speech", "input")):
        r = api.post(path, json={field: "word " * 1001})  # 5005 characters: over the 5000 limit
        assert r.status_code == 413 and error_of(r)["code"] == "input_too_large", r.text
        assert synthesised(api) == before  # refused before any synthesis
        r = api.post(path, content=b'{"%s": "%s"}' % (field.encode(), b"a" * (2 << 20)),
                     headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "1 MiB" in error_of(r)["message"]
    r = api.post("/recommendations", json={"history": [], "exclude": ["x" * 1000] * 1100})
    assert r.status_code in (413, 422) and error_of(r)


# -- nothing outside the data dir ------------------------------------------------------------------
def test_no_parameter_reaches_outside_the_data_dir(api, settings, tmp_path, speech_wav):
    secret = tmp_path / "secret.wav"
    secret.write_bytes(speech_wav.read_bytes())
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    inbox = settings.data_path / "inbox"
    inbox.mkdir(parents=True)
    os.symlink(secret, inbox / "link.wav")
    os.symlink(tmp_path, inbox / "dirlink")
    for path in ("../secret.wav", str(secret), "inbox/../../secret.wav", "inbox/link.wav", "inbox/dirlink/secret.wav",
                 "%2e%2e/secret.wav", "..%2fsecret.wav", "inbox/\x00.wav", "a" * 300, "/etc/passwd", "~/secret.wav",
                 "inbox/..\\..\\secret.wav", ".."):
        r = api.post("/episodes", data={"path": path})
        assert r.status_code == 400, (path, r.text)
        assert error_of(r)["code"] == "invalid_input" and str(tmp_path) not in r.text
    # url-encoded in the form body itself: decoded by the parser, then refused the same way
    r = api.post("/episodes", content=b"path=%2e%2e%2f%2e%2e%2fsecret.wav",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_input"

    # an upload's file name is only a name: nothing is written where it points
    for name in ("../../escaped.mp3", "/tmp/escaped.mp3", "..", "a/../../../escaped.mp3", "..\\..\\escaped.mp3"):
        r = api.post("/episodes", files={"file": (name, b"not audio " * 100, "audio/mpeg")})
        assert r.status_code == 415, (name, r.text)
        assert not r.json()["error"]["message"].startswith("..")
    assert not list(settings.data_path.parent.glob("*escaped*")) and not list(tmp_path.glob("*escaped*"))
    assert not os.path.exists("/tmp/escaped.mp3")

    # ids and file paths in URLs: every spelling of ../ is a 404 (or 400/422), never a file
    raw = ["/episodes/..%2F..%2Fpasswd", "/episodes/%2e%2e%2f%2e%2e%2fpasswd/audio", "/episodes/..%252F..%252Fpasswd",
           "/episodes/%2e%2e/transcript", "/episodes/x/similar/..%2F..%2Fpasswd/narration",
           "/static/..%2F..%2Fmediaflow%2Fconfig.py", "/static/%2e%2e/%2e%2e/mediaflow/config.py",
           "/static/....//....//mediaflow/config.py", "/episodes/x/chapters.mp3?format=../../passwd"]
    for url in raw:
        r = api.send(api.build_request("GET", url))
        assert r.status_code in (400, 404, 405, 422), (url, r.status_code)
        assert "root:x:0:0" not in r.text and "get_settings" not in r.text and error_of(r)
    for voice in ("../../passwd", "/etc/passwd", "..%2f..%2fpasswd"):
        r = api.post("/tts", json={"text": "Hello.", "voice": voice})
        assert r.status_code == 400 and error_of(r)["code"] == "invalid_input" and "root:x" not in r.text
    assert api.get("/episodes").json()["total"] == 0  # nothing was registered along the way


# -- no leaks in errors ----------------------------------------------------------------------------
def test_an_internal_error_leaks_no_path_or_trace(api, settings, monkeypatch):
    from mediaflow.store import Store

    def broken(self, *a, **k):
        raise RuntimeError(f"boom reading {settings.data_path}/mediaflow.db\nTraceback (most recent call last):")

    monkeypatch.setattr(Store, "list_episodes", broken)
    r = api.get("/episodes")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal_error", "message": "internal error; see the server log"}}
    assert str(settings.data_path) not in r.text and "Traceback" not in r.text
    r = api.get("/health")  # a fresh connection: the failed one was closed
    assert r.status_code == 200
    for method, url, status in (("GET", "/no/such/route", 404), ("PUT", "/episodes", 405)):
        r = api.request(method, url)
        assert r.status_code == status and error_of(r)


def test_decode_errors_name_the_file_not_its_path(settings, tmp_path, speech_mp3):
    from mediaflow.audio import stream_pcm
    from mediaflow.errors import AudioDecodeError

    deep = tmp_path / "deep" / "inside"
    deep.mkdir(parents=True)
    noise = deep / "episode.mp3"
    noise.write_bytes(os.urandom(20_000))
    state = process_episode(str(noise), return_state=True)
    assert state.is_failed() and "episode.mp3" in state.message and str(deep) not in state.message
    # past the probe, ffmpeg's own message names the input by its full path; ours must not
    data = speech_mp3.read_bytes()
    first_frames = data.find(b"\xff\xfb", data.find(b"\xff\xfb", 10) + 4)
    broken = deep / "broken.mp3"
    broken.write_bytes(data[:first_frames] + os.urandom(30_000))
    with pytest.raises(AudioDecodeError) as info:
        list(stream_pcm(broken))
    assert str(info.value).startswith("broken.mp3: could not decode") and str(deep) not in str(info.value)


# -- the player page's headers ----------------------------------------------------------------------
def test_the_player_page_has_security_headers(api):
    r = api.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    h = r.headers
    csp = h["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'",
                      "base-uri 'none'"):
        assert directive in csp, directive
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "no-referrer" and h["cross-origin-opener-policy"] == "same-origin"
    assert "camera=()" in h["permissions-policy"] and "microphone=()" in h["permissions-policy"]


# -- SSRF: feeds and downloads ----------------------------------------------------------------------
def test_the_url_guard_refuses_every_spelling_of_local(monkeypatch):
    for url in ("file:///etc/passwd", "ftp://example.org/a.mp3", "gopher://127.0.0.1:70/", "dict://127.0.0.1:11211/",
                "javascript:alert(1)", "//127.0.0.1/a.mp3", "data:audio/mpeg;base64,AAAA"):
        with pytest.raises(InvalidInput, match="http"):
            feeds.check_url(url)
    for url in ("http://0.0.0.0/", "http://127.1/", "http://2130706433/", "http://0x7f000001/", "http://017700000001/",
                "http://[::ffff:127.0.0.1]/", "http://[::1]/", "http://[::]/", "http://[fe80::1]/", "http://[fc00::1]/",
                "http://100.64.0.1/", "http://172.16.0.1/", "http://192.0.2.1/", "http://224.0.0.1/",
                "http://169.254.169.254/latest/meta-data/", "https://localhost:8443/", "http://user@127.0.0.1/"):
        with pytest.raises(InvalidInput, match="private or local"):
            feeds.check_url(url)


class Redirector(http.server.BaseHTTPRequestHandler):
    """Answers every path with a redirect to `targets[path]`."""

    targets: dict[str, str] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(302)
        self.send_header("Location", self.targets[self.path])
        self.send_header("Content-Length", "0")
        self.end_headers()


class Trap(http.server.BaseHTTPRequestHandler):
    """A "private" server: any request reaching it means the guard failed."""

    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Trap.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"\xff\xfb\x90\x00")


def test_redirects_into_the_local_network_are_refused_hop_by_hop(monkeypatch, tmp_path):
    trap = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Trap)  # loopback, standing in for 10.x or metadata
    front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    for srv in (trap, front):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{front.server_address[1]}"
    trap_url = f"http://127.0.0.2:{trap.server_address[1]}"
    Redirector.targets = {"/private": f"{trap_url}/a.mp3", "/file": "file:///etc/passwd",
                          "/v6": f"http://[::1]:{trap.server_address[1]}/a.mp3", "/hop": f"{origin}/private"}
    Trap.hits = []
    real = feeds.check_url

    def origin_is_public(url, allow_private=False):  # the first server stands in for a public host
        if url.startswith(origin):
            return None
        return real(url, allow_private)

    monkeypatch.setattr(feeds, "check_url", origin_is_public)
    try:
        for path, match in (("/private", "private or local"), ("/file", "only http"), ("/v6", "private or local"),
                            ("/hop", "private or local")):
            with pytest.raises(InvalidInput, match=match):
                feeds.download(f"{origin}{path}", tmp_path / "dl" / "x.mp3", max_bytes=1 << 20)
            with pytest.raises(InvalidInput, match=match):
                feeds.parse_feed(f"{origin}{path}")
        assert Trap.hits == [], "a redirect reached the private server"
        assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())
        # allowed by config, the same redirect is followed
        feeds.download(f"{origin}/private", tmp_path / "dl" / "x.mp3", max_bytes=1 << 20, allow_private=True)
        assert Trap.hits == ["/a.mp3"]
    finally:
        trap.shutdown()
        front.shutdown()
