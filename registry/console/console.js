// The registry's console: the nodes registered here, online or offline, refreshed every few seconds
// (one request per refresh, whatever the number of nodes). Values are put into the page as text only.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const REFRESH_MS = 5000;

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  for (const child of children) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function link(url) {  // only http(s) URLs become links
  return /^https?:\/\//.test(url || "") ? el("a", { href: url, rel: "noopener noreferrer" }, url) : (url || "—");
}

async function nodes() {
  const found = [];
  let after = null;
  do {
    const response = await fetch("/registry/nodes?limit=1000" + (after ? "&after=" + encodeURIComponent(after) : ""),
      { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    found.push(...body.nodes);
    after = body.next_after;
  } while (after && found.length < 5000);
  return found;
}

function render(list) {
  const online = list.filter((n) => n.status === "online").length;
  $("summary").textContent = `${list.length} nodes registered, ${online} online`;
  const rows = list.map((n) => el("tr", { "data-ledger": n.record.ledger_id, "data-status": n.status },
    el("td", {}, n.record.ledger_id), el("td", {}, n.record.name), el("td", { class: "state " + n.status }, n.status),
    el("td", {}, n.last_heartbeat ? new Date(n.last_heartbeat).toISOString().replace("T", " ").slice(0, 19) : "—"),
    el("td", {}, link(n.record.endpoints[0])), el("td", { class: "hash" }, n.record.public_key.slice(0, 16))));
  $("nodes").replaceChildren(el("thead", {}, el("tr", {}, ...["ledger", "name", "status", "last heartbeat (UTC)", "console", "key"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
  const width = 960, height = 320;
  const shapes = list.map((n, i) => {
    const angle = Math.PI + (2 * Math.PI * i) / Math.max(1, list.length);
    const x = width / 2 + 330 * Math.cos(angle), y = height / 2 + 110 * Math.sin(angle);
    return svg("g", { class: "node " + n.status, "data-ledger": n.record.ledger_id, transform: `translate(${x} ${y})` },
      svg("title", {}, `${n.record.ledger_id}: ${n.status}`), svg("circle", { r: 24 }),
      svg("text", { y: 4, class: "label" }, n.record.ledger_id), svg("text", { y: 44, class: "sub" }, n.status));
  });
  $("network").replaceChildren(...shapes);
}

async function tick() {
  try {
    render(await nodes());
    $("error").textContent = "";
  } catch (error) {
    $("error").textContent = "could not list nodes: " + error.message;
  }
  setTimeout(tick, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", tick);
