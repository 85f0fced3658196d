// The mediaflow web player: a hash-routed episode list and episode page over the JSON API.
// Every string from the API goes into the page as text (textContent, attributes), never as HTML.

const $ = (id) => document.getElementById(id);
const PAGE = 20;
const POLL_MS = 2000;
const FOLLOW_PAUSE_MS = 4000; // after the listener scrolls the transcript, let them read
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

const audio = $("player");
const narration = $("narration");

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function apiError(r) {
  let code = "http_error";
  let message = `${r.status} ${r.statusText}`.trim();
  try {
    const body = await r.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch { /* not our JSON error body: keep the status line */ }
  if (r.status === 401) message = "This server needs an API key for reads, which the player cannot send.";
  return new ApiError(r.status, code, message);
}

async function api(path, signal) {
  const r = await fetch(path, { signal, headers: { Accept: "application/json" } });
  if (!r.ok) throw await apiError(r);
  return r.json();
}

/** An element with properties set (text via textContent) and children appended as nodes or text. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else if (k === "data") Object.assign(node.dataset, v);
    else if (k.startsWith("aria-") || k === "role") node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const enc = encodeURIComponent;

function fmt(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function spoken(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

function notice(message) {
  const n = $("notice");
  n.textContent = message || "";
  n.hidden = !message;
}

function showView(id) {
  for (const v of ["list-view", "episode-view"]) $(v).hidden = v !== id;
}

// ---------------------------------------------------------------------------------------------
// Routing: #/ and #/?q=…&offset=… list; #/episodes/{id} plays one.

let view = null; // AbortController of the view on screen: leaving it stops its fetches and polling
let firstRoute = true;

function route() {
  view?.abort();
  view = new AbortController();
  const { signal } = view;
  notice("");
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = hash.split("?");
  const m = path.match(/^\/episodes\/([^/]+)\/?$/);
  const done = m ? showEpisode(safeDecode(m[1]), signal) : showList(new URLSearchParams(query), signal);
  done.catch((e) => { if (!signal.aborted) notice(e.message); });
  // Move focus to the new heading so keyboard and screen-reader users land on the new view.
  if (!firstRoute) (m ? $("episode-title") : $("list-heading")).focus({ preventScroll: false });
  firstRoute = false;
}

function safeDecode(s) {
  try { return decodeURIComponent(s); } catch { return s; }
}

function listHash(q, offset, limit = PAGE) {
  const p = new URLSearchParams();
  if (q) p.set("q", q);
  if (offset) p.set("offset", String(offset));
  if (limit !== PAGE) p.set("limit", String(limit));
  const s = p.toString();
  return s ? `#/?${s}` : "#/";
}

function go(hash) {
  if (location.hash === hash || (!location.hash && hash === "#/")) route();
  else location.hash = hash;
}

// ---------------------------------------------------------------------------------------------
// The episode list

const list = { q: "", offset: 0, limit: PAGE, total: 0 };

async function showList(params, signal) {
  stopPlayback();
  showView("list-view");
  list.q = (params.get("q") || "").trim();
  list.offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  list.limit = Math.min(100, Math.max(1, parseInt(params.get("limit") || "", 10) || PAGE));
  $("q").value = list.q;
  $("list-heading").textContent = list.q ? `Results for “${list.q}”` : "Episodes";
  document.title = list.q ? `${list.q} – mediaflow` : "mediaflow";
  $("list-summary").textContent = "Loading…";
  const qs = new URLSearchParams({ limit: String(list.limit), offset: String(list.offset) });
  if (list.q) qs.set("q", list.q);
  const data = await api(`/episodes?${qs}`, signal);
  renderList(data);
}

function renderList(data) {
  list.total = data.total;
  const ol = $("episode-list");
  ol.replaceChildren(...data.items.map(episodeItem));
  const first = data.total ? data.offset + 1 : 0;
  const last = data.offset + data.items.length;
  $("list-summary").textContent = data.total
    ? `${data.total} episode${data.total === 1 ? "" : "s"}`
    : list.q ? "No episode matches that search." : "No episodes yet. Add one with POST /episodes.";
  $("page-info").textContent = data.total ? `${first}–${last} of ${data.total}` : "";
  $("prev-page").disabled = data.offset <= 0;
  $("next-page").disabled = last >= data.total;
  $("prev-page").closest("nav").hidden = data.total <= data.limit && data.offset === 0;
}

function episodeItem(ep) {
  const meta = [ep.show, ep.duration_s ? fmt(ep.duration_s) : null].filter(Boolean).join(" · ");
  return el("li", { class: "episode", data: { id: ep.id } },
    el("a", { href: `#/episodes/${enc(ep.id)}`, class: "title", text: ep.title }),
    meta ? el("span", { class: "muted", text: meta }) : null,
    ep.status !== "done" ? el("span", { class: `badge ${ep.status}`, text: ep.status }) : null,
  );
}

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  go(listHash($("q").value.trim(), 0, list.limit));
});
$("prev-page").addEventListener("click", () => go(listHash(list.q, Math.max(0, list.offset - list.limit), list.limit)));
$("next-page").addEventListener("click", () => go(listHash(list.q, list.offset + list.limit, list.limit)));

// ---------------------------------------------------------------------------------------------
// The episode page

const STATUS_TEXT = {
  pending: "Waiting to be processed. The transcript and chapters appear here when they are ready.",
  processing: "Transcribing and finding chapters. The transcript and chapters appear here when they are ready.",
};

let cur = null; // {id, chapters, segs, words, seg, word, chapter}

async function showEpisode(id, signal) {
  stopPlayback();
  showView("episode-view");
  cur = { id, chapters: [], segs: [], words: [], seg: -1, word: -1, chapter: -1 };
  for (const c of ["transcript", "chapters", "similar"]) $(c).replaceChildren();
  $("episode-title").textContent = "Loading…";
  $("episode-meta").textContent = "";
  $("episode-summary").textContent = "";
  $("episode-summary").hidden = true;
  $("now-chapter").textContent = "";
  $("player-area").hidden = true;
  setStatus(null);

  let ep;
  try {
    ep = await api(`/episodes/${enc(id)}`, signal);
  } catch (e) {
    if (e.status === 404) {
      $("episode-title").textContent = "Episode not found";
      document.title = "Not found – mediaflow";
      return;
    }
    throw e;
  }
  renderHeader(ep);
  // The audio plays while the rest is still being made.
  audio.src = `/episodes/${enc(id)}/audio`;
  $("player-area").hidden = false;

  while (ep.status === "pending" || ep.status === "processing") {
    setStatus(ep);
    await sleep(POLL_MS, signal);
    ep = await api(`/episodes/${enc(id)}`, signal);
  }
  setStatus(ep);
  if (ep.status === "failed") return;
  renderHeader(ep);
  await Promise.all([loadChapters(id, signal), loadTranscript(id, signal), loadSimilar(id, signal)]);
  sync();
}

function renderHeader(ep) {
  $("episode-title").textContent = ep.title;
  document.title = `${ep.title} – mediaflow`;
  const date = ep.published_at ? new Date(ep.published_at).toLocaleDateString() : null;
  $("episode-meta").textContent = [ep.show, ep.duration_s ? fmt(ep.duration_s) : null, date].filter(Boolean).join(" · ");
}

function setStatus(ep) {
  const s = $("episode-status");
  if (!ep || ep.status === "done") {
    s.hidden = true;
    s.textContent = "";
    return;
  }
  s.hidden = false;
  s.className = `status ${ep.status}`;
  s.textContent = ep.status === "failed"
    ? `Processing failed: ${ep.error || "no reason given"}`
    : STATUS_TEXT[ep.status] || ep.status;
}

/** A section's own failure shows in that section; the rest of the page still works. */
function sectionMessage(ol, message) {
  ol.replaceChildren(el("li", { class: "muted empty", text: message }));
}

async function loadChapters(id, signal) {
  const ol = $("chapters");
  try {
    const doc = await api(`/episodes/${enc(id)}/chapters`, signal);
    cur.chapters = doc.chapters || [];
    $("episode-summary").textContent = doc.summary || "";  // the episode in a sentence or two, when the model wrote it
    $("episode-summary").hidden = !doc.summary;
  } catch (e) {
    if (signal.aborted) throw e;
    return sectionMessage(ol, e.status === 404 ? "No chapters for this episode." : `Chapters: ${e.message}`);
  }
  if (!cur.chapters.length) return sectionMessage(ol, "No chapters for this episode.");
  ol.replaceChildren(...cur.chapters.map((c, i) => el("li", {},
    el("button", { type: "button", class: "chapter", data: { seek: c.start, index: i },
                   "aria-label": `Chapter ${i + 1}, ${c.title}, at ${spoken(c.start)}` },
      el("span", { class: "time", text: fmt(c.start) }),
      el("span", { class: "chapter-title", text: c.title }),
      ...(c.summary ? [el("span", { class: "chapter-summary", text: c.summary })] : [])))));
}

async function loadTranscript(id, signal) {
  const ol = $("transcript");
  let segments;
  try {
    segments = (await api(`/episodes/${enc(id)}/transcript`, signal)).segments || [];
  } catch (e) {
    if (signal.aborted) throw e;
    return sectionMessage(ol, e.status === 404 ? "No transcript for this episode." : `Transcript: ${e.message}`);
  }
  if (!segments.length) return sectionMessage(ol, "The transcript is empty: no speech was found.");
  const items = [];
  let lastSpeaker = null;
  for (const seg of segments) {
    const text = el("span", { class: "text" });
    // Who speaks, named where the speaker changes (diarized episodes carry `speaker`).
    if (seg.speaker && seg.speaker !== lastSpeaker) text.append(el("span", { class: "speaker", text: seg.speaker }));
    lastSpeaker = seg.speaker || lastSpeaker;
    const words = seg.words || [];
    if (words.length) {
      words.forEach((w, i) => {
        const span = el("span", { class: "w", text: w.text.trim(), data: { seek: w.start } });
        // Whisper's words carry their own leading space; "-hearted" after "cold" has none.
        if (i && /^\s/.test(w.text)) text.append(" ");
        text.append(span);
        cur.words.push({ start: w.start, end: w.end, el: span });
      });
    } else {
      text.append(seg.text.trim());
      text.dataset.seek = seg.start;
    }
    const li = el("li", { class: "seg" },
      el("button", { type: "button", class: "time", data: { seek: seg.start },
                     "aria-label": `Play from ${spoken(seg.start)}` , text: fmt(seg.start) }),
      text);
    cur.segs.push({ start: seg.start, end: seg.end, el: li });
    items.push(li);
  }
  ol.replaceChildren(...items);
}

async function loadSimilar(id, signal) {
  const ol = $("similar");
  let items;
  try {
    items = (await api(`/episodes/${enc(id)}/similar?k=5`, signal)).items || [];
  } catch (e) {
    if (signal.aborted) throw e;
    return sectionMessage(ol, `Similar episodes: ${e.message}`);
  }
  if (!items.length) return sectionMessage(ol, "No similar episodes yet.");
  ol.replaceChildren(...items.map((s) => {
    const explanationId = `why-${s.episode_id}`;
    return el("li", { class: "suggestion", data: { id: s.episode_id } },
      el("h3", {}, el("a", { href: `#/episodes/${enc(s.episode_id)}`, text: s.title })),
      s.show ? el("p", { class: "muted", text: s.show }) : null,
      el("p", { class: "explanation", id: explanationId, text: s.explanation }),
      el("button", { type: "button", class: "why", data: { other: s.episode_id },
                     "aria-label": `Why this? Hear why “${s.title}” is suggested` , text: "Why this?" }));
  }));
}

// ---------------------------------------------------------------------------------------------
// Playback: seeking, and the chapter, line and word that are playing

function seek(t) {
  if (!Number.isFinite(t)) return;
  audio.currentTime = t;
  audio.play().catch(() => { /* autoplay refused: the position is set, the listener presses play */ });
  sync();
}

function stopPlayback() {
  for (const a of [audio, narration]) {
    a.pause();
    a.removeAttribute("src");
    a.load();
  }
  narration.hidden = true;
  uncaption();
}

/** Index of the last item that starts at or before t (items sorted by start), or -1. */
function lastStarted(items, t) {
  let lo = 0;
  let hi = items.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].start <= t + 1e-3) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}

function mark(node, on) {
  if (!node) return;
  node.classList.toggle("current", on);
  if (on) node.setAttribute("aria-current", "true");
  else node.removeAttribute("aria-current");
}

let userScrolledAt = 0;

function follow(li) {
  if (!$("follow").checked || Date.now() - userScrolledAt < FOLLOW_PAUSE_MS) return;
  const box = $("transcript");
  // Scroll the transcript box only, never the page: the line sits a third of the way down.
  const top = li.offsetTop - box.clientHeight / 3;
  box.scrollTo({ top: Math.max(0, top), behavior: reducedMotion.matches ? "auto" : "smooth" });
}

function sync() {
  if (!cur) return;
  const t = audio.currentTime;

  const ci = lastStarted(cur.chapters, t);
  if (ci !== cur.chapter) {
    const buttons = $("chapters").querySelectorAll("button.chapter");
    mark(buttons[cur.chapter], false);
    mark(buttons[ci], true);
    cur.chapter = ci;
    $("now-chapter").textContent = ci >= 0 ? `Chapter ${ci + 1} of ${cur.chapters.length}: ${cur.chapters[ci].title}` : "";
  }

  const si = lastStarted(cur.segs, t);
  if (si !== cur.seg) {
    mark(cur.segs[cur.seg]?.el, false);
    mark(cur.segs[si]?.el, true);
    cur.seg = si;
    if (si >= 0) follow(cur.segs[si].el);
  }

  let wi = lastStarted(cur.words, t);
  if (wi >= 0 && t > cur.words[wi].end + 0.3) wi = -1; // in a pause: no word lit
  if (wi !== cur.word) {
    cur.words[cur.word]?.el.classList.remove("now");
    cur.words[wi]?.el.classList.add("now");
    cur.word = wi;
  }
}

// timeupdate comes about four times a second; words need a frame-by-frame check while playing.
let frame = 0;
function tick() {
  sync();
  frame = audio.paused ? 0 : requestAnimationFrame(tick);
}
audio.addEventListener("play", () => { if (!frame) frame = requestAnimationFrame(tick); });
audio.addEventListener("timeupdate", sync);
audio.addEventListener("seeked", sync);
audio.addEventListener("error", () => {
  if (audio.getAttribute("src")) notice("The audio could not be loaded.");
});

for (const id of ["chapters", "transcript"]) {
  $(id).addEventListener("click", (e) => {
    const target = e.target.closest("[data-seek]");
    if (target) seek(parseFloat(target.dataset.seek));
  });
}
for (const ev of ["wheel", "touchmove"]) {
  $("transcript").addEventListener(ev, () => { userScrolledAt = Date.now(); }, { passive: true });
}
$("follow").addEventListener("change", () => {
  userScrolledAt = 0;
  if ($("follow").checked && cur?.segs[cur.seg]) follow(cur.segs[cur.seg].el);
});

// ---------------------------------------------------------------------------------------------
// "Why this?": the explanation spoken by a voice of the server's

let narrationUrl = null;
let resumeAfterNarration = false;

async function why(button) {
  const other = button.dataset.other;
  const voice = $("voice").value;
  const url = `/episodes/${enc(cur.id)}/similar/${enc(other)}/narration${voice ? `?voice=${enc(voice)}` : ""}`;
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = "Preparing…";
  try {
    // Fetched, not streamed into <audio>: a refusal (unknown voice, no TTS) has a message to show.
    const r = await fetch(url, { signal: view.signal });
    if (!r.ok) throw await apiError(r);
    const blob = await r.blob();
    if (narrationUrl) URL.revokeObjectURL(narrationUrl);
    narrationUrl = URL.createObjectURL(blob);
    narration.src = narrationUrl;
    button.after(narration);  // the player appears beside the button that asked for it
    narration.hidden = false;
    narration.dataset.for = other;
    resumeAfterNarration = !audio.paused;
    audio.pause();
    const spoken = r.headers.get("X-Explanation");
    const said = spoken ? decodeURIComponent(spoken) : null;
    const para = $(`why-${other}`);
    // the page shows what is said: the model's sentence may have been written since the list came
    if (said && para && para.textContent !== said) { uncaption(); para.textContent = said; }
    await narration.play().catch(() => { /* autoplay refused: its controls are showing */ });
    if (said) caption(para, said, voice, view.signal);
  } catch (e) {
    if (e?.name !== "AbortError") notice(`Could not speak the explanation: ${e.message}`);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}

// While the explanation plays, its words light up one by one: the times come from the voice itself
// (POST /tts/captioned, the durations it chose for the same sentence; the same voice says it the same
// way). A voice without durations, or a server that wants a key for synthesis, leaves the text as it is.
let captions = null; // { words: [{start, end, el}], word, frame }

async function caption(p, text, voice, signal) {
  uncaption();
  let words;
  try {
    const r = await fetch("/tts/captioned", {
      method: "POST", signal, headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ text, format: "flac", ...(voice ? { voice } : {}) }),
    });
    if (!r.ok) return;
    words = (await r.json()).words || [];
  } catch { return; }
  if (!p || !words.length || narration.dataset.for !== p.id.slice(4)) return;
  // the paragraph's own words as spans; each spoken word lights the written word it matches, looking a few
  // ahead ("2024" is said as "twenty twenty-four": those light the word they stand for)
  const tokens = p.textContent.split(/(\s+)/);
  const spans = [];
  p.replaceChildren(...tokens.map((t) => {
    if (!t.trim()) return t;
    const span = el("span", { class: "w", text: t });
    spans.push(span);
    return span;
  }));
  const norm = (w) => w.toLowerCase().replace(/[^\p{L}\p{N}']/gu, "");
  let at = 0;
  captions = { word: -1, frame: 0, words: words.map((w) => {
    const j = spans.slice(at, at + 4).findIndex((s) => norm(s.textContent) === norm(w.word));
    const target = spans[Math.min(j >= 0 ? at + j : at, spans.length - 1)];
    if (j >= 0) at += j + 1;
    return { start: w.start, end: w.end, el: target };
  }) };
  captionTick();
}

function captionSync() {
  if (!captions) return;
  const t = narration.currentTime;
  let wi = lastStarted(captions.words, t);
  if (wi >= 0 && t > captions.words[wi].end + 0.3) wi = -1; // in a pause: no word lit
  if (wi !== captions.word) {
    captions.words[captions.word]?.el.classList.remove("now");
    captions.words[wi]?.el.classList.add("now");
    captions.word = wi;
  }
}

function captionTick() {
  captionSync();
  if (captions) captions.frame = narration.paused ? 0 : requestAnimationFrame(captionTick);
}

function uncaption() {
  if (!captions) return;
  cancelAnimationFrame(captions.frame);
  captions.words[captions.word]?.el.classList.remove("now");
  captions = null;
}

narration.addEventListener("play", () => { if (captions && !captions.frame) captions.frame = requestAnimationFrame(captionTick); });
narration.addEventListener("timeupdate", captionSync);

$("similar").addEventListener("click", (e) => {
  const button = e.target.closest("button.why");
  if (button) why(button);
});
narration.addEventListener("ended", () => {
  captionSync();
  if (resumeAfterNarration) audio.play().catch(() => {});
  resumeAfterNarration = false;
});

async function loadVoices() {
  const select = $("voice");
  const saved = localStorage.getItem("mediaflow.voice") || "";
  try {
    const data = await api("/tts/voices");
    for (const v of data.voices.filter((x) => x.available)) {
      select.append(el("option", { value: v.id, text: v.id === data.default ? `${v.id} (default)` : v.id }));
    }
  } catch { /* the default voice still works */ }
  if ([...select.options].some((o) => o.value === saved)) select.value = saved;
}
$("voice").addEventListener("change", () => localStorage.setItem("mediaflow.voice", $("voice").value));

window.addEventListener("hashchange", route);
loadVoices();
route();
