// mqnode dashboard: the fleet table, the alert list and one chart per quantity per node.
// State from /api/state and /api/series (the history), then live from /events (SSE).
// Node names and payloads come from the network: they are only ever set as textContent.
"use strict";

const HOURS = Math.min(744, Number(new URLSearchParams(location.search).get("hours")) || 6);
const MAX_POINTS = 5000;          // per chart; the oldest go first
const MAX_ALERTS = 100;

const nodes = new Map();          // id -> state (monitor.Node.as_dict())
const rows = new Map();           // id -> <tr>
const charts = new Map();         // id -> Map(quantity -> {plot, t, v})
const sections = new Map();       // id -> {box, charts element}
let alerts = [];                  // newest first: {time, node, kind, details}
window.mqnode = {nodes, charts};  // for tests and curious people

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, Date.now() / 1000 - t);
  if (s < 120) return s.toFixed(0) + " s ago";
  if (s < 7200) return (s / 60).toFixed(1) + " min ago";
  return (s / 3600).toFixed(1) + " h ago";
}

function clock(t) {
  return new Date(t * 1000).toLocaleTimeString();
}

function describe(a) {
  const d = Object.assign({}, a.details || {});
  delete d.kind;
  const kind = a.kind === "error" ? "malformed telemetry" : (a.details && a.details.kind) || a.kind;
  return clock(a.time) + "  " + a.node + ": " + kind + " " + JSON.stringify(d);
}

// ---- the fleet table ----

function renderRow(n) {
  let tr = rows.get(n.id);
  if (!tr) {
    tr = el("tr");
    for (let i = 0; i < 6; i++) tr.appendChild(el("td"));
    tr.dataset.node = n.id;
    rows.set(n.id, tr);
    const body = document.querySelector("#fleet tbody");
    const after = [...rows.keys()].sort().indexOf(n.id);
    body.insertBefore(tr, body.children[after] || null);
  }
  const c = tr.children;
  c[0].textContent = n.id;
  c[1].textContent = n.state + (n.silent ? " (silent)" : "");
  c[1].className = "state state-" + n.state;
  c[2].textContent = ago(n.last_seen);
  c[2].className = "seen";
  c[3].textContent = n.reading || "-";
  c[4].textContent = String(n.alerts || 0);
  const errs = [];
  if (n.error) errs.push(clock(n.error.time) + " malformed telemetry: " + n.error.error +
                        ": " + JSON.stringify(n.error.payload));
  for (const [k, v] of Object.entries(n.sensor_errors || {})) errs.push(k + ": " + v);
  c[5].textContent = errs.join("; ") || "-";
  c[5].className = "errors" + (errs.length ? " err" : "");
}

function renderAlerts() {
  const ul = document.getElementById("alerts");
  ul.replaceChildren();
  if (!alerts.length) ul.appendChild(el("li", "none", "none"));
  for (const a of alerts) ul.appendChild(el("li", a.kind === "error" ? "err" : "", describe(a)));
}

// ---- charts ----

function section(id) {
  let s = sections.get(id);
  if (!s) {
    const box = el("section", "node");
    box.dataset.node = id;
    box.appendChild(el("h2", "", id));
    const list = el("div", "charts");
    box.appendChild(list);
    document.getElementById("nodes").appendChild(box);
    s = {box, list};
    sections.set(id, s);
  }
  return s;
}

function chart(id, quantity, unit) {
  if (!charts.has(id)) charts.set(id, new Map());
  const per = charts.get(id);
  let c = per.get(quantity);
  if (!c) {
    const box = el("div", "chart");
    box.dataset.quantity = quantity;
    box.appendChild(el("h3", "", quantity + (unit ? " (" + unit + ")" : "")));
    section(id).list.appendChild(box);
    const opts = {width: 380, height: 170, legend: {show: false},
                  scales: {x: {time: true}}, axes: [{}, {size: 80}],
                  series: [{}, {label: quantity, stroke: "#1f77b4", width: 1.5,
                                points: {size: 4}}]};
    c = {t: [], v: [], plot: null};
    c.plot = new uPlot(opts, [c.t, c.v], box);
    per.set(quantity, c);
  }
  return c;
}

function addPoints(c, ts, vs) {
  for (let i = 0; i < ts.length; i++) { c.t.push(ts[i]); c.v.push(vs[i]); }
  if (c.t.length > MAX_POINTS) { c.t.splice(0, c.t.length - MAX_POINTS); c.v.splice(0, c.v.length - MAX_POINTS); }
  c.plot.setData([c.t, c.v]);
}

function reading(v) {   // the node's [value, unit], or a bare number
  if (Array.isArray(v) && v.length === 2 && typeof v[1] === "string") return v;
  return [v, ""];
}

async function loadSeries(id) {
  const r = await fetch("/api/series?hours=" + HOURS + "&node=" + encodeURIComponent(id));
  if (!r.ok) return;
  const series = await r.json();
  for (const q of Object.keys(series).sort()) {
    const c = chart(id, q, series[q].unit);
    c.t.length = 0; c.v.length = 0;
    addPoints(c, series[q].t, series[q].v);
  }
}

// ---- state and events ----

async function load() {
  const r = await fetch("/api/state");
  const s = await r.json();
  document.getElementById("prefix").textContent = s.prefix + "/+";
  document.getElementById("hours").textContent = HOURS;
  for (const n of s.nodes) { nodes.set(n.id, n); renderRow(n); }
  alerts = s.alerts.slice(0, MAX_ALERTS);
  renderAlerts();
  for (const n of s.nodes) {
    if (s.history) await loadSeries(n.id);
    else section(n.id);
  }
}

function onEvent(e) {
  const m = JSON.parse(e.data);
  if (m.state) { nodes.set(m.node, m.state); renderRow(m.state); }
  if (m.event === "telemetry" && m.node) {
    section(m.node);
    for (const [q, raw] of Object.entries(m.details.readings || {})) {
      const [v, unit] = reading(raw);
      if (typeof v === "number") addPoints(chart(m.node, q, unit), [m.time], [v]);
    }
  } else if (m.event === "alert" || m.event === "bad_telemetry") {
    alerts.unshift({time: m.time, node: m.node,
                    kind: m.event === "alert" ? "alert" : "error", details: m.details});
    alerts.length = Math.min(alerts.length, MAX_ALERTS);
    renderAlerts();
  }
}

function connect() {
  const conn = document.getElementById("conn");
  const es = new EventSource("/events");
  // (Re)load the state once the stream is open: nothing falls between the two. A point
  // both in the history and on the stream is replaced by the history's copy.
  es.onopen = () => {
    conn.textContent = "live";
    conn.className = "up";
    load().catch((err) => { conn.textContent = "cannot load the state: " + err; });
  };
  es.onerror = () => { conn.textContent = "reconnecting..."; conn.className = "down"; };
  es.onmessage = onEvent;
}

setInterval(() => {
  for (const [id, tr] of rows) tr.children[2].textContent = ago(nodes.get(id).last_seen);
}, 1000);

connect();
