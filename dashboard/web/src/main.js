// The stratus dashboard: one page fed by the control server's event stream
// (GET /api/events). The server is the source of truth; this page only keeps what
// the stream said and draws it.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';

const $ = (id) => document.getElementById(id);

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
  '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#e6550d', '#31a354', '#756bb1', '#636363'];
const TERMINAL = new Set(['STOPPED', 'KILLED', 'DONE', 'FAILED']);

const state = {
  run: null,
  stages: new Map(), // address → StageStatus
  trials: new Map(), // key → Trial
  curves: new Map(), // key → {stage, trial, points: []}
  colours: new Map(), // key → colour
  totals: null,
  totalsAt: 0,
  log: [],
  selected: null, // key
  ended: false,
};

const keyOf = (stage, trial) => stage + '\u0000' + (trial || '');
const splitKey = (k) => { const [stage, trial] = k.split('\u0000'); return { stage, trial }; };

function colourOf(key) {
  if (!state.colours.has(key)) state.colours.set(key, PALETTE[state.colours.size % PALETTE.length]);
  return state.colours.get(key);
}

// ---------- formatting ----------

function fmtNum(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
  if (Math.abs(v) >= 1e5) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}
function fmtLoss(v) {
  if (v === null || v === undefined) return '–';
  if (v < 0) return 'NaN/∞'; // train reports a non-finite loss as -1
  return v.toFixed(4);
}
function fmtCost(v) {
  if (v === null || v === undefined) return '–';
  if (v === 0) return '$0';
  return '$' + (v < 0.01 ? v.toPrecision(3) : v.toFixed(4));
}
function fmtDuration(s) {
  if (!s && s !== 0) return '–';
  if (s < 10) return s.toFixed(1) + 's';
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}
// Axis labels: uPlot passes null for ticks it leaves unlabelled.
function axisNum(v) { return v === null || v === undefined ? '' : fmtNum(v, 3); }
function axisCost(v) {
  if (v === null || v === undefined) return '';
  if (v === 0) return '$0';
  return '$' + (Math.abs(v) < 0.001 ? v.toExponential(1) : Number(v.toPrecision(3)).toString());
}
function paramsText(p) {
  if (p === null || p === undefined) return '';
  if (typeof p !== 'object') return String(p);
  return Object.keys(p).sort().map((k) => `${k}=${typeof p[k] === 'object' ? JSON.stringify(p[k]) : p[k]}`).join(' ');
}
function curveLabel(key) {
  const { stage, trial } = splitKey(key);
  if (!trial) return stage;
  const t = state.trials.get(key);
  const p = t ? paramsText(t.params) : '';
  return p ? `${trial} ${p}` : trial;
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// ---------- the stream ----------

function applySnapshot(snap) {
  const s = snap.status;
  state.run = s.run;
  state.stages = new Map(s.stages.map((x) => [x.address, x]));
  state.trials = new Map(s.trials.map((t) => [keyOf(t.stage, t.trial), t]));
  state.curves = new Map();
  for (const c of snap.curves) {
    const k = keyOf(c.stage, c.trial);
    state.curves.set(k, { stage: c.stage, trial: c.trial || '', points: c.points });
    colourOf(k);
  }
  for (const k of state.trials.keys()) colourOf(k);
  state.totals = s.totals;
  state.totalsAt = performance.now();
  for (const r of rowCache.values()) r.tr.remove();
  rowCache.clear();
  state.log = s.log || [];
  renderAll(true);
}

function onPoint(m) {
  const k = keyOf(m.stage, m.trial);
  let c = state.curves.get(k);
  const fresh = !c;
  if (!c) {
    c = { stage: m.stage, trial: m.trial || '', points: [] };
    state.curves.set(k, c);
    colourOf(k);
  }
  c.points.push(m.point);
  scheduleCharts(fresh);
  scheduleTable();
}

function onTrial(t) {
  const k = keyOf(t.stage, t.trial);
  const fresh = !state.trials.has(k);
  state.trials.set(k, t);
  colourOf(k);
  scheduleTable();
  if (fresh) scheduleCharts(true); // labels changed
  if (state.selected === k) renderDetails();
}

function connect() {
  const es = new EventSource('/api/events');
  es.addEventListener('snapshot', (e) => { hideBanner(); applySnapshot(JSON.parse(e.data)); });
  es.addEventListener('run', (e) => { state.run = JSON.parse(e.data); renderRun(); renderDetails(); });
  es.addEventListener('stage', (e) => {
    const s = JSON.parse(e.data);
    state.stages.set(s.address, s);
    scheduleDag();
  });
  es.addEventListener('trial', (e) => onTrial(JSON.parse(e.data)));
  es.addEventListener('point', (e) => onPoint(JSON.parse(e.data)));
  es.addEventListener('log', (e) => { state.log.push(JSON.parse(e.data)); if (state.log.length > 200) state.log.shift(); renderLog(); });
  es.addEventListener('totals', (e) => { state.totals = JSON.parse(e.data); state.totalsAt = performance.now(); renderTotals(); });
  es.addEventListener('end', () => {
    es.close();
    state.ended = true;
    if (state.run) state.run.can_kill = false;
    renderRun();
    renderDetails();
    showBanner('The apply has finished and its server has stopped. This page keeps its final state; run `stratus ui` in the pipeline directory to browse it again.');
  });
  es.onerror = () => {
    if (state.ended) return;
    if (es.readyState === EventSource.CLOSED) {
      showBanner('Disconnected from the apply (is the token still valid?). Reload the page with the URL stratus printed.');
    } else {
      showBanner('Connection lost; reconnecting…');
    }
  };
}

function showBanner(text) { const b = $('banner'); b.textContent = text; b.hidden = false; }
function hideBanner() { $('banner').hidden = true; }

// ---------- rendering, batched per animation frame ----------

let pending = { charts: false, rebuild: false, table: false, dag: false };
let frameQueued = false;
function queueFrame() {
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(() => {
    frameQueued = false;
    const p = pending;
    pending = { charts: false, rebuild: false, table: false, dag: false };
    if (p.dag) renderDag();
    if (p.table) renderTable();
    if (p.charts) renderCharts(p.rebuild);
  });
}
function scheduleCharts(rebuild) { pending.charts = true; pending.rebuild = pending.rebuild || rebuild; queueFrame(); }
function scheduleTable() { pending.table = true; queueFrame(); }
function scheduleDag() { pending.dag = true; queueFrame(); }

function renderAll(rebuild) {
  renderRun();
  renderTotals();
  renderDag();
  renderTable();
  renderCharts(rebuild);
  renderLog();
  renderDetails();
}

function canKill() { return !!(state.run && state.run.can_kill && !state.ended); }

function renderRun() {
  const r = state.run;
  if (!r) return;
  const b = $('run-state');
  const label = r.mode === 'finished' ? `finished apply (${r.state})` : r.state;
  b.textContent = label;
  b.className = 'badge s-' + r.state;
  $('run-dir').textContent = r.dir || '';
  const anyRunning = [...state.trials.values()].some((t) => !TERMINAL.has(t.status));
  $('kill-all').hidden = !(canKill() && anyRunning);
}

function renderTotals() {
  const t = state.totals;
  if (!t) return;
  $('t-ups').textContent = fmtNum(t.updates_per_second, 4);
  $('t-fn').textContent = String(t.active_functions);
  $('t-cost').textContent = fmtCost(t.cost_usd);
  // Elapsed time ticks here between the server's totals.
  const live = state.run && state.run.state === 'running' && !state.ended;
  $('t-elapsed').textContent = fmtDuration(t.elapsed_seconds + (live ? (performance.now() - state.totalsAt) / 1000 : 0));
  renderTrialCounts();
  renderRun();
}

function renderTrialCounts() {
  const counts = {};
  for (const t of state.trials.values()) if (t.status) counts[t.status] = (counts[t.status] || 0) + 1;
  const parts = Object.keys(counts).sort().map((s) => `${counts[s]} ${s.toLowerCase()}`);
  $('t-trials').textContent = parts.length ? parts.join(', ') : '–';
}
setInterval(() => { if (state.totals) renderTotals(); }, 1000);

// ---------- the DAG ----------

const NODE_W = 190, NODE_H = 44, COL_GAP = 60, ROW_GAP = 14;

function renderDag() {
  const svg = $('dag');
  const stages = [...state.stages.values()];
  const depth = new Map();
  const byAddr = state.stages;
  const visiting = new Set();
  const depthOf = (a) => {
    if (depth.has(a)) return depth.get(a);
    if (visiting.has(a)) return 0;
    visiting.add(a);
    const s = byAddr.get(a);
    let d = 0;
    for (const dep of (s && s.deps) || []) if (byAddr.has(dep)) d = Math.max(d, depthOf(dep) + 1);
    visiting.delete(a);
    depth.set(a, d);
    return d;
  };
  const cols = [];
  for (const s of stages) {
    const d = depthOf(s.address);
    (cols[d] = cols[d] || []).push(s);
  }
  const pos = new Map();
  let maxRows = 0;
  cols.forEach((col, c) => {
    col.forEach((s, r) => pos.set(s.address, { x: 10 + c * (NODE_W + COL_GAP), y: 10 + r * (NODE_H + ROW_GAP) }));
    maxRows = Math.max(maxRows, col.length);
  });
  const width = 20 + cols.length * (NODE_W + COL_GAP) - COL_GAP;
  const height = 20 + maxRows * (NODE_H + ROW_GAP) - ROW_GAP;
  svg.setAttribute('width', Math.max(width, 100));
  svg.setAttribute('height', Math.max(height, 40));
  svg.setAttribute('viewBox', `0 0 ${Math.max(width, 100)} ${Math.max(height, 40)}`);
  const NS = 'http://www.w3.org/2000/svg';
  const node = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  svg.replaceChildren();
  for (const s of stages) {
    const to = pos.get(s.address);
    for (const dep of s.deps || []) {
      const from = pos.get(dep);
      if (!from) continue;
      const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2, x2 = to.x, y2 = to.y + NODE_H / 2;
      const mx = (x1 + x2) / 2;
      svg.append(node('path', { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: 'edge' }));
    }
  }
  for (const s of stages) {
    const p = pos.get(s.address);
    const g = node('g', { class: `stage s-${s.status}`, transform: `translate(${p.x},${p.y})`, 'data-stage': s.address, 'data-status': s.status });
    g.append(node('rect', { width: NODE_W, height: NODE_H, rx: 6 }));
    const name = s.address.length > 26 ? '…' + s.address.slice(-25) : s.address;
    g.append(node('text', { x: 10, y: 18, class: 'name' }, name));
    let sub = s.status;
    if (s.status === 'running' && s.active) sub += ` · ${s.active} fn`;
    if (s.workers) sub += ` · ${s.workers} worker${s.workers === 1 ? '' : 's'}`;
    if (s.cost_usd) sub += ` · ${fmtCost(s.cost_usd)}`;
    g.append(node('text', { x: 10, y: 35, class: 'sub' }, sub));
    const tip = [s.address + ' (' + s.operator + ')', 'status: ' + s.status];
    if (s.action) tip.push('plan: ' + s.action + (s.reason ? ' — ' + s.reason : ''));
    if (s.tasks) tip.push('tasks: ' + s.tasks);
    if (s.workers) tip.push('workers: ' + s.workers);
    if (s.note) tip.push(s.note);
    if (s.error) tip.push('error: ' + s.error);
    g.append(node('title', {}, tip.join('\n')));
    svg.append(g);
  }
}

// ---------- the charts ----------

const charts = { time: null, cost: null };
let chartKeys = []; // curve keys in series order
let focused = { time: null, cost: null };

// series returns one [xs, ys] table per curve, x ascending and unique.
function tables(xOf) {
  return chartKeys.map((k) => {
    const pts = state.curves.get(k).points.map((p) => [xOf(p), p.loss]).filter(([x]) => Number.isFinite(x));
    pts.sort((a, b) => a[0] - b[0]);
    const xs = [], ys = [];
    for (const [x, y] of pts) {
      const v = y !== null && y > 0 ? y : null;
      if (xs.length && xs[xs.length - 1] === x) { ys[ys.length - 1] = v; continue; }
      xs.push(x);
      ys.push(v);
    }
    return [xs, ys];
  });
}

function chartData(which) {
  const t = tables(which === 'time' ? (p) => p.t : (p) => p.cost_usd);
  if (t.length === 0) return [[]];
  return uPlot.join(t);
}

// lossRange keeps the interesting part in view: from the lowest loss to the 97th
// percentile of all losses, so the first evaluations of every trial (near 0.69 for
// logistic regression) and diverging trials do not squash the converged curves.
function lossRange(u, min, max) {
  const ys = [];
  for (let i = 1; i < u.data.length; i++) for (const y of u.data[i]) if (y !== null && y !== undefined) ys.push(y);
  if (ys.length < 2 || !Number.isFinite(min)) return [min, max];
  ys.sort((a, b) => a - b);
  const hi = Math.min(max, ys[Math.floor(0.97 * (ys.length - 1))]);
  const lo = ys[0];
  const pad = Math.max((hi - lo) * 0.05, 1e-4);
  return [lo - pad, hi + pad];
}

function chartOpts(which, el) {
  const logY = $('log-y').checked;
  return {
    width: Math.max(300, el.clientWidth || 600),
    height: 300,
    legend: { show: false },
    cursor: { focus: { prox: 24 }, drag: { x: true, y: false } },
    focus: { alpha: 0.35 },
    scales: { x: { time: false }, y: logY ? { distr: 3 } : { range: lossRange } },
    axes: [
      { label: which === 'time' ? 'seconds' : 'USD', values: (u, vals) => vals.map((v) => (which === 'time' ? axisNum(v) : axisCost(v))) },
      { label: 'test logloss', size: 56, values: (u, vals) => vals.map(axisNum) },
    ],
    series: [{}, ...chartKeys.map((k) => ({
      label: curveLabel(k),
      stroke: colourOf(k),
      width: state.selected === k ? 3 : 1.5,
      spanGaps: true,
      points: { show: false },
    }))],
    hooks: {
      setSeries: [(u, idx) => { focused[which] = idx; }],
      ready: [(u) => {
        u.over.addEventListener('click', () => {
          const i = focused[which];
          if (i !== null && i !== undefined && i > 0) select(chartKeys[i - 1]);
        });
      }],
    },
  };
}

function renderCharts(rebuild) {
  const keys = [...state.curves.keys()];
  if (rebuild || keys.length !== chartKeys.length || !charts.time) {
    chartKeys = keys;
    for (const which of ['time', 'cost']) {
      const host = $('chart-' + which);
      if (charts[which]) charts[which].destroy();
      host.replaceChildren();
      charts[which] = new uPlot(chartOpts(which, host), chartData(which), host);
    }
  } else {
    for (const which of ['time', 'cost']) charts[which].setData(chartData(which));
  }
}

// Charts follow their boxes' width.
const resizer = new ResizeObserver(() => {
  for (const which of ['time', 'cost']) {
    const c = charts[which];
    const w = Math.max(300, Math.floor($('chart-' + which).clientWidth));
    if (c && c.width !== w) c.setSize({ width: w, height: 300 });
  }
});
resizer.observe($('chart-time'));
resizer.observe($('chart-cost'));

// ---------- the trials table ----------

function rowKeys() {
  // Trials first, in the order they appeared, then plain curves (train stages).
  const keys = [...state.trials.keys()];
  for (const k of state.curves.keys()) if (!state.trials.has(k)) keys.push(k);
  return keys;
}

// Rows are kept per key and updated in place, so a row under the pointer is never
// replaced while events stream in.
const rowCache = new Map(); // key → {tr, cells}
const COLUMNS = 11;

function setText(node, text) { if (node.textContent !== text) node.textContent = text; }

function renderTable() {
  const body = $('trials').tBodies[0];
  const keys = rowKeys();
  $('no-trials').hidden = keys.length > 0;
  const live = new Set(keys);
  for (const [k, r] of rowCache) {
    if (!live.has(k)) { r.tr.remove(); rowCache.delete(k); }
  }
  keys.forEach((k, i) => {
    const { stage, trial } = splitKey(k);
    let r = rowCache.get(k);
    if (!r) {
      const cells = [];
      for (let c = 0; c < COLUMNS; c++) cells.push(el('td'));
      cells[0].append(el('span', { class: 'swatch' }));
      cells[3].append(el('span', { class: 'badge' }));
      cells[1].className = cells[2].className = 'mono';
      cells[4].className = 'mono params';
      for (const c of [5, 6, 7, 8, 9]) cells[c].className = 'num';
      cells[10].className = 'reason';
      const tr = el('tr', { 'data-key': k, 'data-trial': trial, 'data-stage': stage }, ...cells);
      tr.addEventListener('click', () => select(k));
      r = { tr, cells };
      rowCache.set(k, r);
    }
    const t = state.trials.get(k);
    const m = (t && t.metrics) || {};
    const c = state.curves.get(k);
    const last = c && c.points.length ? c.points[c.points.length - 1] : null;
    const status = t ? t.status : ((state.stages.get(stage) || {}).status || '');
    const loss = m.test_logloss !== undefined ? m.test_logloss : last ? last.loss : null;
    const iterations = m.iterations !== undefined ? m.iterations : last ? last.updates : null;
    const cost = m.cost_usd !== undefined ? m.cost_usd : last ? last.cost_usd : null;
    const { tr, cells } = r;
    tr.className = state.selected === k ? 'selected' : '';
    tr.dataset.status = status;
    cells[0].firstChild.style.background = colourOf(k);
    setText(cells[1], trial || '(stage)');
    setText(cells[2], stage);
    const badge = cells[3].firstChild;
    badge.className = 'badge s-' + status;
    setText(badge, status || '–');
    setText(cells[4], t ? paramsText(t.params) : '');
    setText(cells[5], fmtNum(iterations, 6));
    setText(cells[6], fmtLoss(loss));
    setText(cells[7], fmtLoss(m.best_logloss));
    setText(cells[8], fmtNum(m.updates_per_second, 4));
    setText(cells[9], fmtCost(cost));
    setText(cells[10], (t && t.reason) || '');
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
  });
  renderTrialCounts();
  renderRun();
}

// ---------- details and kills ----------

function select(key) {
  state.selected = state.selected === key ? null : key;
  renderDetails();
  renderTable();
  renderCharts(true);
}

function renderDetails() {
  const d = $('details');
  const k = state.selected;
  if (!k) { d.hidden = true; return; }
  const { stage, trial } = splitKey(k);
  const t = state.trials.get(k);
  d.hidden = false;
  d.setAttribute('data-key', k);
  $('d-title').textContent = trial || stage;
  $('d-title').style.color = colourOf(k);
  const status = t ? t.status : ((state.stages.get(stage) || {}).status || '');
  $('d-status').textContent = status;
  $('d-status').className = 'badge s-' + status;
  $('d-stage').textContent = stage;
  $('d-reason').textContent = t && t.reason ? 'reason: ' + t.reason : '';
  $('d-params').textContent = t && t.params ? JSON.stringify(t.params, null, 2) : '(a training stage: no trial parameters)';
  const m = (t && t.metrics) || {};
  $('d-metrics').tBodies[0].replaceChildren(...Object.keys(m).sort().map((name) =>
    el('tr', {}, el('th', {}, name), el('td', { class: 'num' }, name.includes('cost') ? fmtCost(m[name]) : fmtNum(m[name], 6)))));
  $('d-model').textContent = t && t.model ? 'model: ' + t.model : '';
  const kill = $('d-kill');
  kill.hidden = !(canKill() && t && !TERMINAL.has(t.status));
  if (kill.dataset.key !== k) disarm(kill, 'Kill this trial');
  kill.dataset.key = k;
}

// Kill buttons ask for a second click within 4 s rather than a dialog.
function armed(button, label, confirmLabel, action) {
  button.addEventListener('click', async () => {
    if (button.dataset.armed !== '1') {
      button.dataset.armed = '1';
      button.textContent = confirmLabel();
      button.classList.add('armed');
      clearTimeout(button._timer);
      button._timer = setTimeout(() => disarm(button, label), 4000);
      return;
    }
    disarm(button, label);
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
}
function disarm(button, label) {
  clearTimeout(button._timer);
  button.dataset.armed = '';
  button.textContent = label;
  button.classList.remove('armed');
}

async function post(path, body) {
  const resp = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), credentials: 'same-origin' });
  let data = {};
  try { data = await resp.json(); } catch { /* not JSON */ }
  return { ok: resp.ok, data };
}

function note(level, text) {
  state.log.push({ time: new Date().toISOString(), level, text });
  renderLog();
}

armed($('d-kill'), 'Kill this trial', () => `Click again to kill ${splitKey(state.selected || '').trial}`, async () => {
  const { stage, trial } = splitKey(state.selected || '');
  if (!trial) return;
  const r = await post('/api/trials/kill', { stage, trial });
  if (r.ok) note('info', `asked ${stage} to kill ${trial}`);
  else note('error', `kill ${trial}: ${r.data.error || 'failed'}`);
});
armed($('kill-all'), 'Kill all trials', () => 'Click again to kill every trial', async () => {
  const r = await post('/api/trials/kill-all', {});
  for (const res of (r.data.results || [])) {
    note(res.error ? 'error' : 'info', res.error ? `kill-all in ${res.stage}: ${res.error}` : `asked ${res.stage} to kill all its trials`);
  }
  if (!r.ok && !(r.data.results || []).length) note('error', `kill all: ${r.data.error || 'failed'}`);
});
$('d-close').addEventListener('click', () => select(state.selected));
$('log-y').addEventListener('change', () => renderCharts(true));

// ---------- log ----------

function renderLog() {
  const items = state.log.slice(-100).reverse().map((l) => el('li', { class: 'l-' + l.level },
    el('time', {}, new Date(l.time).toLocaleTimeString()), ' ',
    l.stage ? el('span', { class: 'mono' }, l.stage + (l.trial ? '/' + l.trial : '') + ': ') : null,
    l.text));
  $('log').replaceChildren(...items);
}

// A small window for tests and curious users: what the charts hold.
window.stratusDashboard = {
  chartSeries() {
    const u = charts.time;
    if (!u) return [];
    return chartKeys.map((k, i) => {
      const { stage, trial } = splitKey(k);
      const ys = u.data[i + 1] || [];
      return { stage, trial, label: curveLabel(k), points: ys.filter((y) => y !== null && y !== undefined).length };
    });
  },
  select(stage, trial) { select(keyOf(stage, trial)); },
};

connect();
