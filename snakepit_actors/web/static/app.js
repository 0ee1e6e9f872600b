// The live page of a snakepit node: follows /api/events (server-sent events) and draws each
// pool's supervision tree, workers, queue, members and the event feed. No framework, no build.
// Events: "snapshot" (everything, first), "update" (pools that changed, whole), "feed" (lines).
"use strict";

const view = { node: {}, pools: {}, demo: false, run: null, feedSeen: 0,
               flashUntil: new Map(), restartsSeen: new Map() };
let source = null;
let retryTimer = null;

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const dash = (v) => (v === null || v === undefined ? "-" : v);
const badge = (state) => h("span", { class: `badge s-${state}`, "data-state": state }, state);

function fmtSeconds(s) {
  if (s === null || s === undefined) return "-";
  s = Math.max(0, Math.round(s));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function uptime(seconds) {
  return h("span", { class: "uptime", "data-base": seconds ?? "", "data-at": Date.now() },
           fmtSeconds(seconds));
}

function tickUptimes() {
  for (const el of document.querySelectorAll(".uptime")) {
    if (el.dataset.base === "") continue;
    const s = Number(el.dataset.base) + (Date.now() - Number(el.dataset.at)) / 1000;
    el.textContent = fmtSeconds(s);
  }
}

function setLive(live, text) {
  document.body.dataset.live = String(live);
  document.getElementById("live-text").textContent = text || (live ? "live" : "reconnecting");
}

function notice(text, isError) {
  const el = document.getElementById("notice");
  el.textContent = text;
  el.className = isError ? "notice error" : "notice";
  el.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

async function demoKill(what, pool, workerId) {
  try {
    const reply = await fetch("api/demo/kill", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ what, pool, worker_id: workerId || "" }),
    });
    const body = await reply.json();
    if (reply.ok) notice(`killed ${body.what} (pid ${body.killed}): watch the tree restart it`);
    else notice(`not killed: ${body.error ? body.error.message : reply.status}`, true);
  } catch (err) {
    notice(`not killed: ${err}`, true);
  }
}

function renderHeader() {
  const n = view.node;
  document.getElementById("node-name").textContent = n.node || "node";
  const meta = document.getElementById("node-meta");
  meta.replaceChildren(`pid ${dash(n.node_pid)} · admin port ${dash(n.admin_port)} · up `,
                       uptime(n.uptime_s));
  document.title = `${n.node || "node"}: supervision tree`;
}

function treeNode(node) {
  const flash = (view.flashUntil.get(node.key) || 0) > Date.now();
  const proc = node.process;
  const line = h("span", { class: flash ? "tnode flash" : "tnode" },
    h("span", { class: "actor" }, node.actor),
    node.id ? h("span", { class: "muted" }, node.id) : null,
    h("span", { class: "pid" }, `pid ${dash(node.pid)}`),
    badge(node.state),
    h("span", { class: "restarts" }, `restarts ${node.restarts}`),
    proc ? h("span", { class: "proc" },
             `→ process ${dash(proc.pid)} (${proc.state})` +
             (proc.node && proc.node !== "local" ? ` on ${proc.node}` : "")) : null);
  const kids = node.children && node.children.length
    ? h("ul", {}, node.children.map(treeNode)) : null;
  return h("li", { "data-key": node.key, "data-actor": node.actor, "data-id": node.id,
                   "data-pid": node.pid, "data-restarts": node.restarts }, line, kids);
}

function stat(label, value, cls) {
  return h("div", { class: "stat", "data-stat": cls }, h("b", {}, dash(value)),
           h("span", {}, label));
}

function ms(v) { return v === null || v === undefined ? null : `${Number(v).toFixed(2)} ms`; }

function workerRow(pool, w) {
  const key = `${pool.name}/${w.worker_id}`;
  const before = view.restartsSeen.get(key);
  view.restartsSeen.set(key, w.restarts);
  if (before !== undefined && w.restarts > before) view.flashUntil.set(key, Date.now() + 2500);
  const flash = (view.flashUntil.get(key) || 0) > Date.now();
  const actions = view.demo ? h("td", {}, h("div", { class: "actions" },
    h("button", { type: "button", "data-kill": "process", title: "SIGKILL the worker's process",
                  onclick: () => demoKill("process", pool.name, w.worker_id) }, "kill process"),
    h("button", { type: "button", "data-kill": "worker_actor",
                  title: "SIGKILL the Worker actor that owns the process",
                  onclick: () => demoKill("worker_actor", pool.name, w.worker_id) },
      "kill actor"))) : null;
  return h("tr", { "data-worker": w.worker_id, class: flash ? "flash" : null },
    h("td", {}, w.worker_id), h("td", {}, w.node),
    h("td", { class: "num pid" }, dash(w.pid)),
    h("td", { class: "state" }, badge(w.state),
      w.reason ? h("small", { class: "muted reason" }, ` ${w.reason}`) : null),
    h("td", { class: "num requests" }, w.requests),
    h("td", { class: "num restarts" }, w.restarts),
    h("td", { class: "num rss" }, dash(w.rss_mb)),
    h("td", { class: "num" }, uptime(w.uptime_s)), actions);
}

function renderPool(pool) {
  const q = pool.queue || {};
  const lat = pool.latency || {};
  const head = h("h2", {}, `pool ${pool.name}`, badge(pool.state),
    h("span", { class: "muted" }, `${pool.pool_size} workers · ${pool.adapter}`),
    view.demo ? h("button", { type: "button", "data-kill": "pool",
                              onclick: () => demoKill("pool", pool.name) }, "kill Pool actor")
      : null);
  const stats = h("div", { class: "stats" },
    stat("queued", q.queued, "queued"),
    stat("busy / workers", q.workers === null || q.workers === undefined ? null
         : `${q.busy}/${q.workers}`, "busy"),
    stat("requests", q.requests, "requests"), stat("errors", q.errors, "errors"),
    stat("p50 latency", ms(lat.p50_ms), "p50"), stat("p99 latency", ms(lat.p99_ms), "p99"),
    stat("worker restarts", q.restarts, "restarts"), stat("recycled", q.recycled, "recycled"));
  const workers = h("div", { class: "scroll" }, h("table", { class: "workers" },
    h("thead", {}, h("tr", {}, ["worker", "node", "pid", "state", "requests", "restarts",
      "RSS MB", "uptime"].map((t, i) => h("th", { class: i >= 4 || i === 2 ? "num" : null }, t)),
      view.demo ? h("th", {}, "demo") : null)),
    h("tbody", {}, pool.workers.map((w) => workerRow(pool, w)))));
  const members = pool.members && pool.members.length ? [
    h("h3", {}, "Member nodes"),
    h("div", { class: "scroll" }, h("table", { class: "members" },
      h("thead", {}, h("tr", {}, ["node", "state", "workers", "last answer", "capabilities"]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, pool.members.map((m) => h("tr", { "data-member": m.node },
        h("td", {}, m.node), h("td", {}, badge(m.state), m.reason ? ` ${m.reason}` : ""),
        h("td", { class: "num" }, dash(m.workers)),
        h("td", {}, m.silent_s === null || m.silent_s === undefined ? "-" : `${m.silent_s} s ago`),
        h("td", {}, Object.entries(m.capabilities || {}).map(([k, v]) => `${k}=${v}`)
          .join(" "))))))),
  ] : [];
  return h("section", { class: "card pool", "data-pool": pool.name }, head, stats,
    h("h3", {}, "Supervision tree"),
    h("div", { class: "scroll" }, h("ul", { class: "tree" }, treeNode(pool.tree))),
    h("h3", {}, "Workers"), workers, ...members);
}

function renderPools() {
  const box = document.getElementById("pools");
  const names = Object.keys(view.pools);
  box.replaceChildren(...names.map((n) => renderPool(view.pools[n])));
  if (!names.length) box.replaceChildren(h("p", { class: "card" }, "no pool yet"));
}

function addFeed(items) {
  const list = document.getElementById("feed");
  for (const item of items) {
    if (item.seq <= view.feedSeen) continue;
    view.feedSeen = item.seq;
    const at = new Date(item.at_unix_s * 1000).toLocaleTimeString();
    list.prepend(h("li", { "data-event": item.event, "data-seq": item.seq },
      h("time", {}, at), h("span", { class: `badge k-${item.kind}` }, item.kind),
      h("span", { class: "text" }, item.pool ? `${item.pool}: ${item.text}` : item.text)));
  }
  while (list.children.length > 200) list.lastElementChild.remove();
}

function onSnapshot(event) {
  const data = JSON.parse(event.data);
  if (data.run !== view.run) {  // another life of the node: its feed numbers start again
    view.run = data.run;
    view.feedSeen = 0;
    document.getElementById("feed").replaceChildren();
  }
  view.demo = Boolean(data.demo_controls);
  view.node = data.state.node;
  view.pools = data.state.pools;
  renderHeader();
  renderPools();
  addFeed(data.feed);
  setLive(true);
}

function onUpdate(event) {
  const u = JSON.parse(event.data);
  for (const [key, until] of view.flashUntil) if (until < Date.now()) view.flashUntil.delete(key);
  view.node = u.node;
  for (const name of u.removed) delete view.pools[name];
  Object.assign(view.pools, u.pools);
  for (const key of u.restarted) view.flashUntil.set(key, Date.now() + 2500);
  renderHeader();
  renderPools();
}

function connect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = new EventSource("api/events");
  source.addEventListener("snapshot", onSnapshot);
  source.addEventListener("update", onUpdate);
  source.addEventListener("feed", (e) => addFeed([JSON.parse(e.data)]));
  source.addEventListener("open", () => setLive(true));
  source.addEventListener("error", () => {
    setLive(false);
    // The browser retries a dropped stream by itself; a refused one (node restarted, new
    // token) is closed for good: try again, and say so.
    if (source.readyState === EventSource.CLOSED) {
      setLive(false, "disconnected: retrying");
      retryTimer = setTimeout(connect, 2000);
    }
  });
}

setInterval(tickUptimes, 1000);
connect();
