// Vigil's live web view: a snapshot, then deltas, over server-sent events.
// Each row is one element, updated in place, so the keyboard focus stays
// where it is while the cluster changes.
"use strict";

const rows = new Map(); // key → element
const containers = {
  node: () => document.getElementById("node-rows"),
  group: () => document.getElementById("group-rows"),
  service: () => document.getElementById("service-table"),
  watch: () => document.getElementById("watch-rows"),
};
const keepEvents = 200;
const shownEvents = new Set();

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c !== undefined && c !== null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const level = {
  up: "ok", online: "ok", running: "ok", ok: "ok", directing: "ok",
  dead: "bad", offline: "bad", failed: "bad", blocked: "bad", down: "bad", unknown: "bad", stopped: "mute",
  standby: "warn", maintenance: "warn", starting: "warn", stopping: "warn", partial: "warn", pending: "warn",
};
function tag(text, cls) {
  return el("span", { class: "tag " + (cls || level[text] || "info") }, text || "-");
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!t || t < 0) return "";
  let s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 90) return s + "s";
  if (s < 5400) return Math.round(s / 60) + "m";
  if (s < 129600) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}
function age(iso, prefix) {
  return el("span", { class: "age mute", "data-since": iso, "data-prefix": prefix || "" }, (prefix || "") + ago(iso));
}
setInterval(() => {
  for (const a of document.querySelectorAll("[data-since]")) a.textContent = a.dataset.prefix + ago(a.dataset.since);
}, 1000);

function renderHeader(h) {
  document.getElementById("cluster").textContent = h.cluster;
  document.getElementById("self").textContent = "as seen from " + h.node;
  document.getElementById("version").textContent = "Vigil " + h.version + " on " + h.node;
  document.title = "Vigil " + h.cluster + " — " + h.node;
  const r = document.getElementById("raft");
  r.replaceChildren("Raft leader: ", h.leader ? el("strong", null, h.leader) : tag("none", "bad"),
    h.term ? " · term " + h.term : "", " · lease ", tag(h.holds_lease ? "held" : "not held", h.holds_lease ? "ok" : "mute"));
  if (h.files_differ && h.files_differ.length) r.append(" · ", tag("definitions differ on " + h.files_differ.join(", "), "warn"));
}

function renderNode(n, tr) {
  const links = (n.links || []).map((l) => [tag(l.link + " " + l.state, level[l.state]), " "]);
  const heard = n.self ? tag("self", "info") : [tag(n.heard || "never heard", level[n.heard] || "mute"), " ", n.since ? age(n.since) : ""];
  const label = `Node ${n.name}: ${n.cluster || "unknown"} in the cluster, ${n.self ? "this node" : (n.heard || "never heard")}`;
  tr.replaceChildren(
    el("th", { scope: "row" }, n.name, el("div", { class: "mute" }, n.address)),
    el("td", null, n.role || "director"),
    el("td", null, tag(n.cluster || "-"), n.reason ? el("div", { class: "mute" }, n.reason) : ""),
    el("td", null, heard),
    el("td", null, links.length ? links : el("span", { class: "mute" }, "-")));
  tr.setAttribute("aria-label", label);
  tr.dataset.cluster = n.cluster || "";
}

function renderGroup(g, tr) {
  const shown = g.owner + ":" + g.state;
  if (tr.dataset.shown !== shown) {
    tr.dataset.shown = shown;
    tr.dataset.shownSince = String(Date.now()); // when the page first showed this owner and state
  }
  tr.dataset.owner = g.owner || "";
  tr.dataset.state = g.state;
  const on = (g.nodes || []).map((n) => el("div", null, n.node + ": ",
    n.state === "offline" ? [tag("offline", "bad"), " last known ", n.last_known, " ", age(n.offline_since, "for ")] : tag(n.state),
    n.unrecorded ? el("span", { class: "warn" }, " here now; no leader records it (recorded: " + n.last_known + ")") : "",
    n.last ? el("span", { class: "mute" }, " " + n.last) : "",
    n.failcount ? el("span", { class: "bad" }, " failcount " + n.failcount) : ""));
  const away = g.preferred && g.owner && g.owner !== g.preferred;
  tr.replaceChildren(
    el("th", { scope: "row" }, g.name),
    el("td", null, tag(g.state)),
    el("td", null, g.owner || tag("nowhere", "bad"), g.pinned ? el("div", { class: "mute" }, "moved by an operator") : "",
      g.reason ? el("div", { class: "mute" }, g.reason) : ""),
    el("td", null, g.preferred || "-", away ? el("div", { class: "warn" }, "not on its preferred node") : ""),
    el("td", null, on.length ? on : el("span", { class: "mute" }, "no reports")));
  tr.setAttribute("aria-label", `Group ${g.name}: ${g.state} on ${g.owner || "no node"}, preferred ${g.preferred || "none"}`);
}

function renderService(s, tbody) {
  const reals = s.reals && s.reals.length ? s.reals : [{ addr: "-", forward: "", weight: "", health: "" }];
  const label = `${s.key} ${s.scheduler}`;
  tbody.replaceChildren(...reals.map((r, i) => {
    const tr = el("tr", { tabindex: "0", "aria-label": `${label}: real server ${r.addr} ${r.health}, weight ${r.weight}` },
      i === 0 ? el("th", { scope: "rowgroup", rowspan: reals.length }, s.key, " ", s.scheduler, s.flags ? " " + s.flags : "",
        el("div", { class: "mute" }, s.instance + " · " + s.backend + " · ", tag(s.directing ? "directing" : "standby", s.directing ? "ok" : "mute"))) : null,
      el("td", null, r.addr), el("td", null, r.forward), el("td", null, r.weight < 0 ? "out" : r.weight),
      el("td", null, r.active ?? ""), el("td", null, r.inactive ?? ""),
      el("td", null, r.health ? tag(r.health) : "", r.result ? el("div", { class: "mute" }, r.result) : ""));
    return tr;
  }));
}

function renderWatch(w, tr) {
  tr.replaceChildren(
    el("th", { scope: "row" }, w.service, el("div", { class: "mute" }, w.instance + " every " + w.interval)),
    el("td", null, tag(w.ok ? "ok" : "failing", w.ok ? "ok" : "bad"), w.failing_since ? [" ", age(w.failing_since, "for ")] : "",
      w.summary ? el("div", { class: "mute" }, w.summary) : ""),
    el("td", null, el("code", null, w.monitor)),
    el("td", null, (w.hosts || []).join(" ")),
    el("td", null, w.alerts));
  tr.setAttribute("aria-label", `mon ${w.instance} ${w.service}: ${w.ok ? "ok" : "failing"}`);
}

const renderers = { node: renderNode, group: renderGroup, service: renderService, watch: renderWatch };

function upsert(it) {
  if (it.kind === "header") return renderHeader(it.data);
  const render = renderers[it.kind];
  if (!render) return;
  let e = rows.get(it.key);
  if (!e) {
    e = el(it.kind === "service" ? "tbody" : "tr", { "data-key": it.key, "data-order": it.order });
    if (it.kind !== "service") e.tabIndex = 0;
    const box = containers[it.kind]();
    const after = [...box.children].find((c) => c.dataset.key && Number(c.dataset.order) > it.order);
    box.insertBefore(e, after || null);
    rows.set(it.key, e);
  }
  render(it.data, e);
  e.dataset.order = it.order;
}

function remove(key) {
  const e = rows.get(key);
  if (e) {
    e.remove();
    rows.delete(key);
  }
}

function addEvents(evs, flash) {
  const ol = document.getElementById("events");
  for (const ev of evs) {
    if (shownEvents.has(ev.id)) continue;
    shownEvents.add(ev.id);
    const t = new Date(ev.time);
    const li = el("li", { "data-id": ev.id, class: flash ? "new" : null, "data-kind": ev.kind },
      el("time", { datetime: ev.time }, t.toLocaleTimeString([], { hour12: false }) + "." + String(t.getMilliseconds()).padStart(3, "0")),
      el("span", { class: "kind " + ev.level }, ev.kind), el("span", null, ev.text));
    // Newest first.
    const after = [...ol.children].find((c) => c.querySelector("time").getAttribute("datetime") < ev.time);
    ol.insertBefore(li, after || null);
  }
  while (ol.children.length > keepEvents) {
    shownEvents.delete(ol.lastElementChild.dataset.id);
    ol.lastElementChild.remove();
  }
}

function empties() {
  document.getElementById("ipvs-empty").hidden = document.querySelector("#service-table tbody[data-key]") !== null;
  document.getElementById("watch-empty").hidden = document.querySelector("#watch-rows tr") !== null;
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("events");
  es.addEventListener("snapshot", (m) => {
    const s = JSON.parse(m.data);
    const keep = new Set();
    s.items.forEach((it) => { upsert(it); keep.add(it.key); });
    for (const k of [...rows.keys()]) if (!keep.has(k)) remove(k);
    document.getElementById("events").replaceChildren();
    shownEvents.clear();
    addEvents(s.events || [], false);
    empties();
    conn.textContent = "live";
    conn.className = "conn ok";
  });
  es.addEventListener("delta", (m) => {
    const d = JSON.parse(m.data);
    (d.upsert || []).forEach(upsert);
    (d.remove || []).forEach(remove);
    addEvents(d.events || [], true);
    empties();
  });
  es.onerror = () => {
    conn.textContent = "disconnected: reconnecting…";
    conn.className = "conn bad";
  };
}

connect();
