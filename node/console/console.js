// The ledger node's console: login, live views over the node's API, the network as a picture.
// The credential stays in this tab (sessionStorage) and goes out only as an Authorization header.
// Every value from the network is put into the page as text (never as HTML).
"use strict";

const TOKEN_KEY = "ledger-console-token";
const SVG_NS = "http://www.w3.org/2000/svg";
const state = { token: null, scopes: [], snapshot: null, selected: null, stream: null, refreshTimer: null,
  candidates: undefined, proposed: undefined, samples: {} };

// --- small helpers ------------------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function short(hash) { return hash ? hash.slice(0, 12) : "—"; }
function has(scope) { return state.scopes.includes(scope) || state.scopes.includes("admin"); }
function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
function duration(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${h} h ${m} min` : m ? `${m} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;
}
function table(target, headers, rows) {
  const t = $(target);
  t.replaceChildren(el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : [el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "none"))]));
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${state.token}`, ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method: options.method || "GET", headers, cache: "no-store",
    body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : `HTTP ${response.status}`;
    if (response.status === 401 && options.logoutOn401 !== false) logout("The node refused the credential: " + detail);
    throw new ApiError(response.status, detail);
  }
  return body;
}

// --- login --------------------------------------------------------------------------------------

async function login(token) {
  state.token = token;
  let me;
  try {
    me = await api("/console/whoami", { logoutOn401: false });
  } catch (error) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $("login-error").textContent = error.status === 401 ? "Credential refused: " + error.message
      : error.status === 403 ? "This credential may not read this node: " + error.message
      : "Could not log in: " + error.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.scopes = me.scopes;
  $("login-error").textContent = "";
  $("token").value = "";
  $("whoami").textContent = `${me.name} (${me.id}) · ${me.scopes.join(", ")}`;
  $("title-node").textContent = me.ledger_id;
  document.title = `Ledger console · ${me.ledger_id}`;
  $("login-view").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  $("append-form").classList.toggle("disabled", !has("append"));
  connect();
  refresh();
}

function logout(message) {
  state.token = null;
  state.scopes = [];
  sessionStorage.removeItem(TOKEN_KEY);
  if (state.stream) state.stream.abort();
  state.stream = null;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login-view").hidden = false;
  $("whoami").textContent = "";
  $("login-error").textContent = message || "";
  setLive(false, "not connected");
}

// --- the live feed: server-sent events read with fetch (an EventSource cannot send the header) ---

function setLive(on, text) {
  const badge = $("live");
  badge.textContent = text;
  badge.className = "badge " + (on ? "on" : "off");
}

async function connect() {
  const controller = new AbortController();
  state.stream = controller;
  let delay = 1000;
  while (state.stream === controller) {
    try {
      const response = await fetch("/console/events", { headers: { Authorization: `Bearer ${state.token}` },
        signal: controller.signal, cache: "no-store" });
      if (response.status === 401) { logout("The node refused the credential."); return; }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      setLive(true, "live");
      delay = 1000;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    if (state.stream !== controller) return;
    setLive(false, "reconnecting…");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 15000);
  }
}

function handleEvent(block) {
  let kind = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) kind = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (!data) return;
  const payload = JSON.parse(data);
  if (kind === "snapshot") {
    state.snapshot = payload;
    renderSnapshot();
    const proposed = (payload.candidates || []).join(",");  // the admin list is re-read only when it moved
    if (has("admin") && proposed !== state.proposed) { state.proposed = proposed; refreshCandidates(); }
  } else if (kind === "head") {
    noteHead(payload);
    scheduleRefresh();
  }
}

function sample(ledgerId, seq) {  // (time, seq) of the last 30 s per ledger, for entries per second
  const now = Date.now();
  const list = (state.samples[ledgerId] ||= []);
  if (!list.length || list[list.length - 1][1] !== seq) list.push([now, seq]);
  while (list.length > 2 && now - list[0][0] > 30000) list.shift();
}

function rate(ledgerId) {
  const list = state.samples[ledgerId] || [];
  if (list.length < 2) return 0;
  const [t0, s0] = list[0], [t1, s1] = list[list.length - 1];
  const span = Math.max(Date.now(), t1) - t0;
  return span > 0 ? ((s1 - s0) * 1000) / span : 0;
}

function noteHead(head) {
  sample(head.ledger_id, head.seq);
  const snap = state.snapshot;
  if (!snap) return;
  const row = snap.ledgers.find((l) => l.ledger_id === head.ledger_id);
  if (row) { row.head_seq = head.seq; row.head_hash = head.hash; }
  else snap.ledgers.push({ ledger_id: head.ledger_id, head_seq: head.seq, head_hash: head.hash, local: false });
  renderLedgers();
}

function scheduleRefresh() {  // a burst of heads becomes one refresh
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(() => { state.refreshTimer = null; refresh(); }, 250);
}

// --- views --------------------------------------------------------------------------------------

function renderSnapshot() {
  const snap = state.snapshot;
  const me = snap.node;
  const v = me.verification;
  $("node-facts").replaceChildren(
    ...[["ledger id", me.ledger_id], ["key fingerprint", me.key_fingerprint], ["version", `${me.version} (protocol ${me.protocol})`],
      ["uptime", duration(me.uptime_s)], ["store size", bytes(me.store_bytes)],
      ["index lag", `${me.index_lag_entries} entries`],
      ["verification", `${v.state}: ${v.detail}${v.at_ms ? ` (${ago(v.at_ms)})` : ""}`],
      ["registry", snap.registry.url ? `${snap.registry.url}${snap.registry.error ? " — " + snap.registry.error : ""}` : "none configured"],
    ].flatMap(([k, val]) => [el("dt", {}, k), el("dd", { "data-fact": k }, val)]));
  for (const l of snap.ledgers) sample(l.ledger_id, l.head_seq);
  const line = $("in-sync");
  const sync = snap.in_sync;
  const running = snap.sync.peers.filter((p) => p.state === "syncing").map((p) => p.ledger_id);
  line.className = "sync-line " + (sync.in_sync ? "ok" : "behind");
  line.textContent = (sync.nodes.length < 2 ? "No other node reached: nothing to compare."
    : sync.in_sync ? `In sync: ${sync.nodes.join(", ")} hold the same heads.`
    : `Not in sync (${sync.nodes.join(", ")} reached): ${sync.differences.join("; ")}`)
    + (running.length ? ` Syncing now with ${running.join(", ")}.` : "");
  renderLedgers();
  renderPeers();
  renderActivities();
  renderNetwork();
  if (!has("admin")) renderConflicts(snap.conflicts || [], false);
}

function renderActivities() {  // syncs and verifications running now, with their progress
  const running = state.snapshot.activities || [];
  if (!running.length) {
    $("activities").replaceChildren(el("caption", { class: "muted" }, "Nothing running: no sync or verification in progress."));
    return;
  }
  table("activities", ["kind", "what", "progress", "entries", "since"], running.map((a) =>
    el("tr", { "data-activity": a.kind },
      el("td", {}, a.kind), el("td", {}, a.target),
      el("td", {}, a.progress === null ? "—" : el("progress", { max: 1, value: a.progress }, `${Math.round(a.progress * 100)}%`)),
      el("td", { class: "num" }, a.total ? `${a.done} of ${a.total}` : `${a.done}`), el("td", {}, ago(a.started_ms)))));
}

function renderConflicts(rows, actions) {
  const box = $("conflicts");
  box.className = "";
  if (!rows.length) { box.replaceChildren(el("p", { class: "muted" }, "No open conflicts.")); return; }
  box.replaceChildren(el("ul", { class: "list" }, rows.map((c) => {
    const heads = Array.isArray(c.evidence) ? c.evidence.filter((h) => typeof h === "string") : [];
    const choice = actions && heads.length ? el("select", { "aria-label": "winner" }, heads.map((h) => el("option", { value: h }, short(h)))) : null;
    return el("li", { "data-conflict": c.id },
      el("span", {}, `#${c.id} ${c.kind} conflict in ${c.ledger_id}${c.key ? " on key " + c.key : ""}${c.seq ? " at seq " + c.seq : ""}`),
      el("details", {}, el("summary", {}, "evidence"), el("pre", {}, JSON.stringify(c.evidence, null, 1))),
      !actions ? el("span", { class: "muted" }, " (an admin credential resolves it)")
        : c.kind === "key" ? el("span", {}, choice, el("button", { type: "button", onclick: async (event) => {
          await act(event.target, () => api(`/admin/conflicts/${c.id}/resolve`, { method: "POST",
            body: choice ? { winner: choice.value } : {} }), "resolved");
          refreshConflicts();
        } }, "Resolve")) : el("span", { class: "muted" }, " (a fork quarantines the ledger; see docs/sync.md)"));
  })));
}

function renderLedgers() {
  const snap = state.snapshot;
  const lags = {};
  for (const peer of snap.sync.peers) for (const l of peer.ledgers) (lags[l.ledger_id] ||= []).push(`${peer.ledger_id}: ${l.lag}`);
  table("ledgers", ["ledger", "head seq", "head hash", "entries/s", "lag per peer", "quarantined"], snap.ledgers.map((l) =>
    el("tr", { "data-ledger": l.ledger_id, class: l.quarantined ? "marked" : null },
      el("td", { class: "id" }, l.ledger_id + (l.local ? " (own)" : "")), el("td", { class: "num" }, l.head_seq),
      el("td", { class: "hash", title: l.head_hash || "" }, short(l.head_hash)),
      el("td", { class: "num" }, rate(l.ledger_id).toFixed(1)),
      el("td", {}, (lags[l.ledger_id] || []).join(", ") || "—"), el("td", {}, l.quarantined ? "yes" : "no"))));
}

function renderPeers() {
  table("peers", ["peer", "state", "last success", "last error", "retries (total)", "failures"], state.snapshot.sync.peers.map((p) =>
    el("tr", { "data-peer": p.ledger_id },
      el("td", { class: "id", title: p.url }, p.ledger_id), el("td", { class: "state " + p.state }, p.state),
      el("td", {}, ago(p.last_success_ms)), el("td", { class: p.last_error ? "error" : "" }, p.last_error || "—"),
      el("td", { class: "num" }, p.retries), el("td", { class: "num" }, p.failures))));
}

function renderNetwork() {
  const snap = state.snapshot;
  const picture = $("network");
  const nodes = snap.nodes;
  const others = nodes.filter((n) => !n.self);
  const width = 960, height = 340, cx = width / 2, cy = height / 2 - 30;  // the ring hangs below this node
  const place = {};
  for (const n of nodes) if (n.self) place[n.ledger_id] = [cx, cy];
  others.forEach((n, i) => {
    // N + 1 slots round an ellipse, the top one left empty: no two others face each other through
    // this node, so a link between them never hides behind this node's own links
    const angle = -Math.PI / 2 + (2 * Math.PI * (i + 1)) / (others.length + 1);
    place[n.ledger_id] = [cx + 300 * Math.cos(angle), cy + 120 * Math.sin(angle)];
  });
  const layer = [svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 32, refY: 5, markerWidth: 7,
    markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" })))];
  for (const peer of snap.sync.peers) {  // sync links: solid, from this node to each peer
    const [a, b] = [place[snap.node.ledger_id], place[peer.ledger_id]];
    if (a && b) layer.push(svg("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: `link sync ${peer.state}`,
      "data-link": `sync:${peer.ledger_id}` }));
  }
  for (const link of snap.peer_links || []) {  // peerings between other nodes, from their peer exchange
    const [a, b] = [place[link.a], place[link.b]];
    if (a && b) layer.push(svg("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: "link remote",
      "data-link": `peers:${link.a}:${link.b}` }, svg("title", {}, `${link.a} and ${link.b} are peers of each other`)));
  }
  for (const edge of snap.trust_edges) {  // trust edges: dashed arrows, bent so both directions show
    const [a, b] = [place[edge.from], place[edge.to]];
    if (!a || !b) continue;
    const mx = (a[0] + b[0]) / 2 + (b[1] - a[1]) * 0.15, my = (a[1] + b[1]) / 2 - (b[0] - a[0]) * 0.15;
    layer.push(svg("path", { d: `M ${a[0]} ${a[1]} Q ${mx} ${my} ${b[0]} ${b[1]}`, "marker-end": "url(#arrow)",
      class: "link trust" + (edge.level === 0 ? " revoked" : ""), "data-link": `trust:${edge.from}:${edge.to}` },
      svg("title", {}, `${edge.from} trusts ${edge.to}: ${edge.level} (${edge.type})`)));
  }
  const labels = [];  // drawn last, over every link and node, on a halo: no line crosses their text
  for (const n of nodes) {
    const [x, y] = place[n.ledger_id];
    const classes = ["node", n.status, n.self ? "self" : "", n.peer ? "peer" : "", ...n.marks.map((m) => "mark-" + m),
      n.marks.length ? "marked" : "", state.selected === n.ledger_id ? "selected" : ""].filter(Boolean).join(" ");
    layer.push(svg("g", { class: classes, "data-ledger": n.ledger_id, "data-status": n.status,
      "data-marks": n.marks.join(" "), transform: `translate(${x} ${y})`, tabindex: 0,
      onclick: () => { state.selected = n.ledger_id; renderNetwork(); } },
    svg("title", {}, `${n.ledger_id}: ${n.status}${n.marks.length ? " — " + n.marks.join(", ") : ""}`),
    svg("circle", { r: 28 }),
    ...(n.marks.length ? [svg("circle", { r: 34, class: "ring" })] : []),
    svg("text", { y: 4, class: "label" }, n.ledger_id)));
    labels.push(svg("text", { x, y: y + 50, class: n.marks.length ? "sub marked" : "sub", "data-label": n.ledger_id }, [n.status, ...n.marks].join(" · ")));
  }
  picture.replaceChildren(...layer, svg("g", { class: "labels" }, ...labels));
  renderDetail();
}

function renderDetail() {
  const box = $("node-detail");
  const n = state.snapshot && state.snapshot.nodes.find((x) => x.ledger_id === state.selected);
  if (!n) { box.className = "detail muted"; box.replaceChildren("Click a node for its detail."); return; }
  const peer = state.snapshot.sync.peers.find((p) => p.ledger_id === n.ledger_id);
  const facts = [["ledger id", n.ledger_id], ["name", n.name], ["url", n.url || "—"], ["status", n.status], ["known from", n.sources.join(", ") || "—"],
    ["registry says", n.registry_status || "—"], ["its head", n.head ? `${n.head.seq} ${short(n.head.hash)}` : "—"],
    ["held here", n.held ? `${n.held.seq} ${short(n.held.hash)}` : "not held"],
    ["marks", n.marks.join(", ") || "none"], ["trust score", n.trust_score === undefined ? "—" : n.trust_score],
    ["sync", peer ? `${peer.state}, last success ${ago(peer.last_success_ms)}` : "not a peer"],
    ["problem", n.probe_error || n.discovery_detail || "—"]];
  box.className = "detail";
  box.replaceChildren(el("h3", {}, n.ledger_id), el("dl", { class: "facts" },
    facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
}

async function refresh() {
  await Promise.all([refreshEntries(), refreshConflicts(), refreshCandidates()]);
}

async function refreshEntries() {
  try {
    const page = await api("/ledger/entries?order=desc&limit=15");
    table("entries", ["ledger", "seq", "stream", "type", "subject", "payload", "hash"], page.entries.map((e) =>
      el("tr", { "data-entry": `${e.ledger_id}:${e.seq}` }, el("td", { class: "id" }, e.ledger_id), el("td", { class: "num" }, e.seq),
        el("td", {}, e.stream), el("td", {}, e.type), el("td", {}, e.subject_oid || "—"),
        el("td", { class: "payload" }, JSON.stringify(e.payload)), el("td", { class: "hash", title: e.hash }, short(e.hash)))));
  } catch (error) {
    $("entries").replaceChildren(el("caption", { class: "error" }, "entries: " + error.message));
  }
}

async function refreshConflicts() {
  if (!has("admin")) { if (state.snapshot) renderConflicts(state.snapshot.conflicts || [], false); return; }
  try {
    renderConflicts(await api("/admin/conflicts?status=open"), true);
  } catch (error) {
    $("conflicts").replaceChildren(el("p", { class: "error" }, "conflicts: " + error.message));
  }
}

async function refreshCandidates() {
  const box = $("candidates");
  if (!has("admin")) { box.className = "muted"; box.replaceChildren("Proposed peers are shown to an admin credential."); return; }
  if (state.candidates === undefined) {  // does this node have the candidate list? (asked once, without a 404)
    try { state.candidates = "/admin/candidates" in (await api("/openapi.json")).paths; } catch { state.candidates = false; }
  }
  if (!state.candidates) {
    box.className = "muted";
    box.replaceChildren("Not available: this node has no candidate list (GET /admin/candidates).");
    return;
  }
  try {
    const body = await api("/admin/candidates");
    const rows = Array.isArray(body) ? body : (body && body.candidates) || [];
    const pending = rows.filter((c) => !c.status || c.status === "candidate");
    const refused = rows.filter((c) => c.status === "refused");
    box.className = "";
    const claims = {};  // ledger id -> how many keys claim it
    rows.forEach((c) => { claims[c.ledger_id] = (claims[c.ledger_id] || 0) + 1; });
    const done = () => { refreshCandidates(); };
    const claimed = (c) => {  // a claim's id, its key (the fingerprint shown, the full key in a title) and the calls on it
      const id = c.ledger_id || (c.record && c.record.ledger_id);
      const key = (c.record && c.record.public_key) || "";
      const path = `/admin/candidates/${encodeURIComponent(id)}`, which = `?public_key=${encodeURIComponent(key)}`;
      const shown = el("span", { class: "hash", title: `public key ${key}` }, c.key_fingerprint || key);
      const admit = el("button", { type: "button", onclick: (e) => act(e.target, () => api(`${path}/admit${which}`,
        { method: "POST" }), "admitted").then(done) }, "Admit");
      return { id, key, path, which, shown, admit };
    };
    const note = refused.length ? [el("p", { class: "muted" }, "Refused (Admit undoes a refusal):"),
      el("ul", { class: "list" }, refused.map((c) => {
        const { id, shown, admit } = claimed(c);
        return el("li", { "data-refused": id }, el("span", { class: "id" }, id), el("span", {}, "key"), shown, admit);
      }))] : [];
    if (!pending.length) { box.replaceChildren(el("p", { class: "muted" }, "No proposed peers."), ...note); return; }
    box.replaceChildren(el("ul", { class: "list" }, pending.map((c) => {
      const { id, path, which, shown, admit } = claimed(c);
      const url = (c.record && c.record.endpoints && c.record.endpoints[0]) || c.url || "";
      return el("li", { "data-candidate": id },
        el("span", { class: "id" }, id), el("span", {}, `${url} key`), shown,
        el("span", {}, `(proposed by ${(c.sources || []).join(", ") || "?"})`),
        claims[id] > 1 ? el("span", { class: "error" }, ` contested: ${claims[id]} keys claim ${id}`) : "",
        admit,
        el("button", { type: "button", class: "secondary", onclick: (e) => act(e.target, () => api(`${path}${which}`,
          { method: "DELETE" }), "refused").then(done) }, "Refuse"));
    })), ...note);
  } catch (error) {
    box.replaceChildren(el("p", { class: "muted" }, error.status === 404 || error.status === 405
      ? "Not available: this node has no candidate list (GET /admin/candidates)." : "candidates: " + error.message));
  }
}

async function act(button, call, done) {
  button.disabled = true;
  try { await call(); button.textContent = done; }
  catch (error) { button.textContent = "failed: " + error.message; }
  finally { button.disabled = false; }
}

// --- query and append ---------------------------------------------------------------------------

async function runQuery(event) {
  event.preventDefault();
  const params = new URLSearchParams({ limit: "50" });
  for (const [field, id] of [["stream", "q-stream"], ["type", "q-type"], ["subject_oid", "q-subject"]]) {
    const value = $(id).value.trim();
    if (value) params.set(field, value);
  }
  const network = $("q-scope").value === "network";
  const out = $("query-result");
  out.replaceChildren(el("p", { class: "muted" }, "asking…"));
  try {
    const body = await api((network ? "/network/query?" : "/ledger/entries?order=desc&") + params.toString());
    const parts = [];
    if (network) {
      const statuses = Object.entries(body.ledgers || {}).map(([lid, s]) => `${lid}: ${s}`);
      const peers = Object.entries(body.peers || {}).map(([lid, p]) => `${lid}: ${p.status}${p.detail ? " (" + p.detail + ")" : ""}${p.ms !== undefined ? " " + p.ms + " ms" : ""}`);
      parts.push(el("p", { class: "muted" }, `per ledger: ${statuses.join(", ") || "—"}; peers asked: ${peers.join(", ") || "none"}`));
    }
    const rows = body.entries.map((e) => el("tr", {}, el("td", { class: "id" }, e.ledger_id), el("td", { class: "num" }, e.seq),
      el("td", {}, `${e.stream}/${e.type}`), el("td", { class: "payload" }, JSON.stringify(e.payload)),
      el("td", { class: "hash", title: `signed by ${e.ledger_id}; hash ${e.hash}` }, short(e.hash))));
    const t = el("table", {}, el("thead", {}, el("tr", {}, ["provenance (ledger)", "seq", "stream/type", "payload", "hash"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no entries"))]));
    out.replaceChildren(...parts, t);
  } catch (error) {
    out.replaceChildren(el("p", { class: "error" }, error.status === 403 ? "This credential lacks the query scope." : error.message));
  }
}

async function runAppend(event) {
  event.preventDefault();
  const out = $("append-result");
  if (!has("append")) { out.className = "error"; out.textContent = "This credential may not append (needs append or admin)."; return; }
  let payload;
  try { payload = JSON.parse($("a-payload").value); } catch (error) {
    out.className = "error"; out.textContent = "payload: not JSON (" + error.message + ")"; return;
  }
  const draft = { stream: $("a-stream").value.trim(), type: $("a-type").value.trim(), payload };
  const subject = $("a-subject").value.trim();
  if (subject) draft.subject_oid = subject;
  try {
    const entry = await api("/ledger/entries", { method: "POST", body: draft });
    out.className = "ok";
    out.textContent = `appended ${entry.ledger_id} seq ${entry.seq} (${short(entry.hash)})`;
  } catch (error) {
    out.className = "error";
    out.textContent = "refused: " + error.message;
  }
}

// --- start --------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => { event.preventDefault(); login($("token").value.trim()); });
  $("logout").addEventListener("click", () => logout("Logged out."));
  $("query-form").addEventListener("submit", runQuery);
  $("append-form").addEventListener("submit", runAppend);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) login(saved);
});
