// shardmatch operator console. Plain JavaScript, no dependencies: it polls this admin
// server's API every two seconds and renders the cluster, the decisions chart, the
// transactions, shards, dead letters, leases and policy. Actions (force-abort, redrive,
// resolve, leader transfer) send the operate token typed into the page; reads send the
// read token (or the operate token when no read token is given). Tokens live in
// sessionStorage only: closing the tab forgets them.
"use strict";

const POLL_MS = 2000;
const WINDOW = 150; // chart samples kept: 5 minutes at POLL_MS
const COLORS = ["#1e7b34", "#b3261e", "#a15c00", "#2457c5", "#7b1fa2", "#00838f", "#5d4037", "#c2185b", "#455a64"];

const $ = (id) => document.getElementById(id);
const tokens = {
  read: () => sessionStorage.getItem("shardmatch.read") || "",
  operate: () => sessionStorage.getItem("shardmatch.operate") || "",
};

// ApiError is a non-2xx answer: the API's typed error ({"error":{code,message,...}}).
class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || "HTTP " + status);
    this.status = status;
    this.code = e.code || "";
    this.body = e;
  }
}

// api calls the admin API on this origin and returns the decoded JSON.
async function api(method, path, body, role) {
  const headers = {};
  const tok = role === "operate" ? tokens.operate() : (tokens.read() || tokens.operate());
  if (tok) headers["Authorization"] = "Bearer " + tok;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store"});
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = {text}; }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// bannerHold is until when the banner keeps an action's result: refreshes do not
// overwrite it.
let bannerHold = 0;

// banner shows one message at the top of the page (kind: "error" or "info"), for at
// least holdMs.
function banner(msg, kind, holdMs) {
  bannerHold = holdMs ? Date.now() + holdMs : 0;
  const b = $("banner");
  b.textContent = msg || "";
  b.className = msg ? kind || "info" : "";
}

// explain turns an API error into one line for the operator.
function explain(err, what) {
  if (!(err instanceof ApiError)) return what + ": " + err.message;
  let m = what + ": " + err.message;
  if (err.code === "NOT_LEADER") {
    const url = err.body.leader_admin_url;
    m += url ? " (the leader's console: " + url + "/ui/)" : err.body.leader_id ? " (leader: " + err.body.leader_id + ")" : "";
  } else if (err.status === 401 || err.status === 403) {
    m += " (enter the token above)";
  }
  return m;
}

// el builds an element; text is set with textContent, never as HTML.
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

// fillTable replaces a table's body with rows (arrays of cells: strings or elements).
function fillTable(table, rows, empty) {
  const tb = table.tBodies[0];
  // Re-render only what changed, so a refresh does not take a button from under the
  // pointer.
  const sig = JSON.stringify([empty, rows.map((r) => r.map(cellSig))]);
  if (tb.dataset.sig === sig) return;
  tb.dataset.sig = sig;
  tb.replaceChildren();
  if (rows.length === 0) {
    const td = el("td", empty, "empty");
    td.colSpan = table.tHead.rows[0].cells.length;
    tb.appendChild(el("tr")).appendChild(td);
    return;
  }
  for (const r of rows) {
    const tr = el("tr");
    for (const c of r) {
      const td = el("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === undefined || c === null ? "" : String(c);
      tr.appendChild(td);
    }
    tb.appendChild(tr);
  }
}

// cellSig is what a table cell shows, for fillTable's comparison: a cell of action
// buttons is named by the actions, so arming one does not count as a change.
function cellSig(c) {
  if (!(c instanceof Node)) return c;
  const buttons = c.matches("button") ? [c] : [...c.querySelectorAll("button")];
  if (buttons.length) return "actions:" + buttons.map((b) => b.dataset.key).join(",");
  return c.className + ":" + c.textContent;
}

// summary fills a <dl> with label/value pairs.
function summary(dl, pairs) {
  dl.replaceChildren();
  for (const [k, v, cls] of pairs) {
    const d = el("div");
    d.appendChild(el("dt", k));
    d.appendChild(el("dd", v, cls));
    dl.appendChild(d);
  }
}

// armed maps an action's key to when its confirmation lapses. It lives outside the
// buttons because every refresh re-renders the tables: an armed button stays armed.
const armed = new Map();

// actionButton is a button for an operator action: the first click arms it, a second
// within five seconds runs fn. The result or error goes to the banner, then the page
// refreshes.
function actionButton(label, fn, what) {
  const b = el("button", label, "operate");
  const key = what;
  b.dataset.key = key;
  const show = () => {
    const on = (armed.get(key) || 0) > Date.now();
    b.textContent = on ? "Confirm " + label.toLowerCase() : label;
    b.classList.toggle("confirm", on);
  };
  show();
  b.addEventListener("click", async () => {
    if ((armed.get(key) || 0) <= Date.now()) {
      armed.set(key, Date.now() + 5000);
      show();
      setTimeout(show, 5100);
      return;
    }
    armed.delete(key);
    b.disabled = true;
    try {
      await fn();
      banner(what + ": done", "info", 10000);
    } catch (err) {
      banner(explain(err, what), "error", 10000);
    }
    b.disabled = false;
    show();
    refresh();
  });
  return b;
}

const short = (s) => (s || "").replace(/^(TXN_STATE_|REASON_|OUTCOME_|SHARD_STATE_|LEASE_STATE_)/, "");
const enc = encodeURIComponent;

// --- cluster -------------------------------------------------------------------------

let status = null;

function renderStatus(st) {
  status = st;
  const role = st.role === "leader" ? (st.leading ? "leader" : "leader (taking over)") : st.role;
  summary($("node-summary"), [
    ["This node", st.node_id],
    ["Role", role, st.role === "leader" ? "state-ok" : ""],
    ["Leader", st.leader_id || "none known", st.leader_id ? "" : "state-bad"],
    ["Term", st.term],
    ["Commit index", st.commit_index],
    ["Applied index", st.applied_index],
    ["Lag", st.lag, st.lag > 64 ? "state-warn" : ""],
    ["Ready", st.ready ? "yes" : "no: " + (st.not_ready || ""), st.ready ? "state-ok" : "state-bad"],
    ["Txns", st.counts.txns], ["Preparing", st.counts.preparing], ["Undelivered", st.counts.undelivered],
    ["Leases", st.counts.leases],
  ]);
  $("leader-id").textContent = st.leader_id || "";
  fillTable($("peers"), (st.peers || []).map((p) => {
    const act = el("span");
    if (!p.leader && p.suffrage === "voter" && st.role === "leader") {
      act.appendChild(actionButton("Make leader", () => api("POST", "/v1/leader/transfer", {id: p.id, addr: p.addr}, "operate"),
        "leader transfer to " + p.id));
    }
    return [el("span", p.id + (p.self ? " (this node)" : ""), "mono"), p.addr, p.suffrage,
      el("span", p.leader ? "leader" : "follower", p.leader ? "state-ok" : ""), act];
  }), "no configuration");
}

// --- decisions chart -----------------------------------------------------------------

// samples holds {t, commits, aborts: {reason: n}} cumulative counters, oldest first.
const samples = [];

// decisionTotals reads the cumulative counters: /v1/stats, or the Prometheus exposition
// of /metrics on a server without it.
async function decisionTotals() {
  try {
    const s = await api("GET", "/v1/stats");
    return {commits: s.commits || 0, aborts: s.aborts || {}, inDoubt: s.in_doubt || null, stats: s};
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  const resp = await fetch("/metrics", {cache: "no-store"});
  const text = await resp.text();
  const out = {commits: 0, aborts: {}, inDoubt: null, stats: null};
  const re = /^shardmatch_decisions_total\{([^}]*)\} ([0-9.e+]+)$/gm;
  for (const m of text.matchAll(re)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const v = Number(m[2]);
    if (labels.outcome === "committed") out.commits += v;
    else out.aborts[(labels.reason || "unknown").toUpperCase()] = (out.aborts[(labels.reason || "unknown").toUpperCase()] || 0) + v;
  }
  return out;
}

function renderDecisions(tot) {
  samples.push({t: Date.now(), commits: tot.commits, aborts: tot.aborts});
  while (samples.length > WINDOW + 1) samples.shift();
  const pairs = [["Commits", tot.commits, "state-ok"]];
  let aborts = 0;
  for (const [r, n] of Object.entries(tot.aborts).sort()) {
    aborts += n;
    if (n > 0) pairs.push(["Aborted: " + short(r), n, "state-bad"]);
  }
  if (aborts === 0) pairs.push(["Aborts", 0]);
  if (tot.stats) pairs.push(["Policy evaluations", tot.stats.policy_evaluations], ["Policy denials", tot.stats.policy_denials]);
  summary($("totals"), pairs);
  drawChart();
}

// drawChart plots per-second rates between consecutive samples: one line for commits
// and one per abort reason.
function drawChart() {
  const c = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const w = c.clientWidth || 900, h = c.clientHeight || 220;
  c.width = w * ratio; c.height = h * ratio;
  const g = c.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const reasons = new Set();
  // A reason is plotted once it has counted something; the others stay off the legend.
  for (const s of samples) for (const [r, n] of Object.entries(s.aborts)) if (n > 0) reasons.add(r);
  const series = [{name: "COMMITTED", get: (s) => s.commits}];
  for (const r of [...reasons].sort()) series.push({name: r, get: (s) => s.aborts[r] || 0});
  const pad = {l: 44, r: 8, t: 8, b: 20};
  const rates = series.map((se) => {
    const pts = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = (samples[i].t - samples[i - 1].t) / 1000;
      pts.push({t: samples[i].t, v: dt > 0 ? Math.max(0, se.get(samples[i]) - se.get(samples[i - 1])) / dt : 0});
    }
    return pts;
  });
  let max = 1;
  for (const pts of rates) for (const p of pts) max = Math.max(max, p.v);
  const now = Date.now(), span = WINDOW * POLL_MS;
  const x = (t) => pad.l + (w - pad.l - pad.r) * (1 - (now - t) / span);
  const y = (v) => h - pad.b - (h - pad.t - pad.b) * (v / max);
  g.strokeStyle = "#d8dce3"; g.fillStyle = "#6a7383"; g.font = "11px sans-serif"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    g.beginPath(); g.moveTo(pad.l, y(v)); g.lineTo(w - pad.r, y(v)); g.stroke();
    g.fillText(v.toFixed(v < 10 ? 1 : 0) + "/s", 2, y(v) + 4);
  }
  g.fillText("-5m", pad.l, h - 4); g.fillText("now", w - pad.r - 20, h - 4);
  const legend = $("legend");
  legend.replaceChildren();
  series.forEach((se, i) => {
    const color = COLORS[i % COLORS.length];
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    rates[i].forEach((p, j) => (j === 0 ? g.moveTo(x(p.t), y(p.v)) : g.lineTo(x(p.t), y(p.v))));
    g.stroke();
    const item = el("span", short(se.name));
    const sw = el("i");
    sw.style.background = color;
    item.prepend(sw);
    legend.appendChild(item);
  });
}

// --- transactions --------------------------------------------------------------------

function txnActions(t) {
  const box = el("span");
  if (t.state === "TXN_STATE_PREPARING") {
    box.appendChild(actionButton("Force-abort", () => api("POST", "/v1/txns/" + enc(t.txid) + "/abort", undefined, "operate"),
      "force-abort " + t.txid));
  } else if (t.state === "TXN_STATE_COMMITTED" || t.state === "TXN_STATE_ABORTED") {
    box.appendChild(actionButton("Redrive", () => api("POST", "/v1/txns/" + enc(t.txid) + "/redrive", undefined, "operate"),
      "redrive " + t.txid));
  }
  return box;
}

function txnRows(list) {
  return list.map((t) => [
    el("span", t.txid, "mono"), (t.proposal && t.proposal.proposal_id) || "",
    el("span", short(t.state), t.state === "TXN_STATE_PREPARING" ? "state-warn" : ""),
    short(t.decision && t.decision.reason), (t.shards || []).join(", "), (t.acked || []).join(", "), txnActions(t),
  ]);
}

let txns = [];

async function refreshTxns() {
  const all = await api("GET", "/v1/txns?limit=200");
  txns = all.txns || [];
  $("txn-count").textContent = all.total + (all.truncated ? " (first " + txns.length + " shown)" : "");
  fillTable($("inflight"), txnRows(txns), "nothing in flight");
  try {
    const stuck = await api("GET", "/v1/txns?state=stuck&limit=200&older_than=" + enc($("stuck-age").value || "30s"));
    fillTable($("stuck"), txnRows(stuck.txns || []), "nothing stuck");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    fillTable($("stuck"), [], "this server cannot list stuck transactions (" + err.message + ")");
  }
}

// --- shards and dead letters ---------------------------------------------------------

async function refreshShards(inDoubt) {
  const data = await api("GET", "/v1/shards");
  // Without /v1/stats, count in-doubt decisions from the txns in flight: decided, not
  // acked by the shard.
  const doubt = inDoubt || {};
  if (!inDoubt) {
    for (const t of txns) {
      if (t.state !== "TXN_STATE_COMMITTED" && t.state !== "TXN_STATE_ABORTED") continue;
      for (const s of t.shards || []) if (!(t.acked || []).includes(s)) doubt[s] = (doubt[s] || 0) + 1;
    }
  }
  fillTable($("shard-table"), (data.shards || []).map((s) => {
    const st = short(s.state) || "ACTIVE";
    const n = doubt[s.shard_id] || 0;
    return [el("span", s.shard_id, "mono"), s.region || "", el("span", st, st === "ACTIVE" ? "state-ok" : "state-warn"),
      s.capacity || "", el("span", n, n > 0 ? "state-warn" : "")];
  }), "no shard registered");
}

async function refreshDeadLetters() {
  const q = "/v1/deadletters?older_than=" + enc($("dl-age").value || "1m");
  let data;
  try {
    data = await api("GET", q);
  } catch (err) {
    if (err instanceof ApiError && err.code === "NOT_LEADER") data = await api("GET", q + "&stale=true");
    else if (err instanceof ApiError && err.status === 404 && err.code === "NOT_FOUND") {
      fillTable($("dl-table"), [], "this server has no dead-letter list");
      return;
    } else throw err;
  }
  fillTable($("dl-table"), (data.deadletters || []).map((d) => {
    const box = el("span");
    box.appendChild(actionButton("Redrive", () => api("POST", "/v1/txns/" + enc(d.txid) + "/redrive", undefined, "operate"),
      "redrive " + d.txid));
    if (d.shard_state === "SHARD_STATE_DISABLED" || d.shard_state === "disabled") {
      box.appendChild(document.createTextNode(" "));
      box.appendChild(actionButton("Resolve", () => api("POST", "/v1/txns/" + enc(d.txid) + "/resolve", {shard: d.shard}, "operate"),
        "resolve " + d.txid + " for " + d.shard));
    }
    return [el("span", d.txid, "mono"), d.shard, short(d.outcome), d.decided_at || "",
      d.age_seconds !== undefined ? Math.round(d.age_seconds) + "s" : "", d.attempts < 0 ? "(leader only)" : d.attempts,
      short(d.shard_state), box];
  }), "no dead letters");
}

// --- policy and leases ---------------------------------------------------------------

async function refreshPolicy() {
  let p;
  try {
    p = await api("GET", "/v1/policy");
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      summary($("policy-summary"), [["Revision", "not reported by this server"]]);
      fillTable($("denials"), [], "no denials reported");
      return;
    }
    throw err;
  }
  summary($("policy-summary"), [["Revision", p.revision || "none"], ["Loaded", p.loaded_at || ""]]);
  fillTable($("denials"), (p.recent_denials || []).slice().reverse().map((d) => [
    d.at || "", el("span", d.txid, "mono"), d.rule || "", d.message || ""]), "no recent denials");
}

async function lookupLease(ev) {
  ev.preventDefault();
  const player = $("lease-player").value.trim();
  if (!player) return;
  try {
    const l = await api("GET", "/v1/leases/" + enc(player));
    summary($("lease-result"), [["Player", l.player_id], ["State", short(l.state)], ["Txid", l.txid],
      ["Fencing token", l.token], ["TTL", (l.ttl_ms || 0) / 1000 + "s"], ["Renewals", l.renew_seq || 0]]);
  } catch (err) {
    summary($("lease-result"), [["Player", player], ["Lease", err.status === 404 ? "none" : explain(err, "lookup"), "state-bad"]]);
  }
}

// --- refresh loop --------------------------------------------------------------------

let running = false, again = false;

// refresh reloads every panel; a failing panel reports in the banner and leaves the
// others updated. A call while one runs (new tokens, an action's result) runs once more
// after it.
async function refresh() {
  if (running) {
    again = true;
    return;
  }
  running = true;
  const errors = [];
  const step = async (what, fn) => {
    try { return await fn(); } catch (err) { errors.push(explain(err, what)); return null; }
  };
  await step("status", async () => renderStatus(await api("GET", "/v1/status")));
  const tot = await step("decisions", decisionTotals);
  if (tot) renderDecisions(tot);
  await step("transactions", refreshTxns);
  await step("shards", () => refreshShards(tot && tot.inDoubt));
  await step("dead letters", refreshDeadLetters);
  await step("policy", refreshPolicy);
  $("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
  if (Date.now() >= bannerHold) {
    if (errors.length) banner(errors.join(" · "), "error");
    else if ($("banner").className === "error") banner("");
  }
  running = false;
  if (again) {
    again = false;
    refresh();
  }
}

function init() {
  $("read-token").value = tokens.read();
  $("operate-token").value = tokens.operate();
  $("tokens").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("shardmatch.read", $("read-token").value.trim());
    sessionStorage.setItem("shardmatch.operate", $("operate-token").value.trim());
    banner("tokens saved for this tab", "info");
    refresh();
  });
  $("clear-tokens").addEventListener("click", () => {
    sessionStorage.removeItem("shardmatch.read");
    sessionStorage.removeItem("shardmatch.operate");
    $("read-token").value = "";
    $("operate-token").value = "";
    banner("tokens forgotten", "info");
  });
  $("lease-form").addEventListener("submit", lookupLease);
  const transfer = actionButton("Transfer leadership", () => api("POST", "/v1/leader/transfer", undefined, "operate"),
    "leader transfer");
  transfer.id = "leader-transfer";
  $("leader-transfer").replaceWith(transfer);
  refresh();
  setInterval(refresh, POLL_MS);
}

document.addEventListener("DOMContentLoaded", init);
