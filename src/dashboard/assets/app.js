// chaoslab dashboard: hash-routed pages over the /ui/api reads and the /api actions.
// Server data always goes into the page as text; only the server's own SVG documents (the pipeline
// diagram and the timeline charts) are inserted as markup.
'use strict';

const PAGES = ['pipeline', 'faults', 'experiments', 'timeline', 'incidents', 'data', 'runs'];

const app = {
  session: null,
  live: true,      // live run (SSE, actions possible) or replay of a finished one
  actions: false,  // may this page change state?
  at: null,        // replay: the virtual time shown (ms); live: null (now)
  nowMs: 0,        // latest virtual time seen
  state: null,     // latest /ui/api/state answer
  page: 'pipeline',
  polling: null,
};

// ---------------------------------------------------------------- helpers

const $ = (id) => document.getElementById(id);
const PROPS = new Set(['value', 'checked', 'disabled', 'selected', 'open', 'hidden']);

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h('button', {class: 'small', onclick: fn}, 'text', child, [more children])
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (PROPS.has(k)) el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  return append(el, children);
}

function fill(el, ...children) {
  el.textContent = '';
  return append(el, children);
}

// One request: JSON in (or a raw body with its content type), JSON or text out. A non-2xx answer
// throws an Error carrying the server's `error` text, the status and the decoded answer.
async function api(method, path, body, contentType) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    const raw = typeof body === 'string' && contentType;
    opts.body = raw ? body : JSON.stringify(body);
    opts.headers['content-type'] = raw ? contentType : 'application/json';
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    throw Object.assign(new Error(`cannot reach the server (${e.message})`), { status: 0, data: null });
  }
  const text = await res.text();
  let data = text;
  if ((res.headers.get('content-type') || '').includes('json') && text) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (res.ok) return data;
  let msg = data && typeof data === 'object' && data.error;
  if (!msg) msg = `${res.status} ${res.statusText}${typeof data === 'string' && data && data.length < 200 ? `: ${data}` : ''}`;
  throw Object.assign(new Error(msg), { status: res.status, data });
}

// A GET of a /ui read, with `at` in replay.
function read(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v != null && v !== '' && !Number.isNaN(v)) q.set(k, String(v));
  }
  if (app.at != null) q.set('at', String(app.at));
  const s = q.toString();
  return api('GET', s ? `${path}?${s}` : path);
}

const showError = (msg) => { $('error-text').textContent = msg; $('error-banner').hidden = false; };
const clearError = () => { $('error-banner').hidden = true; };

// Runs fn (sync or async) and shows any failure in the banner: nothing is ever thrown uncaught.
function run(fn, ...args) {
  return Promise.resolve().then(() => fn(...args)).catch((e) => showError(e && e.message ? e.message : String(e)));
}
const safe = (fn) => (...args) => { run(fn, ...args); };

function debounce(fn, ms) {
  let t = null;
  return (...args) => { clearTimeout(t); t = setTimeout(() => run(fn, ...args), ms); };
}

async function busy(btn, fn) {
  const was = btn.disabled;
  btn.disabled = true;
  try { return await fn(); } finally { btn.disabled = was; }
}

function fmtMs(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return '—';
  const total = Math.floor(Math.abs(Number(ms)) / 1000);
  const hh = Math.floor(total / 3600), mm = Math.floor((total % 3600) / 60), ss = total % 60;
  const p = (n) => String(n).padStart(2, '0');
  return (ms < 0 ? '-' : '') + (hh ? `${hh}:${p(mm)}:${p(ss)}` : `${p(mm)}:${p(ss)}`);
}

const secs = (ms) => (ms == null ? '…' : `${Math.round(ms / 1000)} s`);

// ISO date → ms since the run started (null when unknown); a date without a zone is UTC (journals).
function isoToMs(iso) {
  if (!iso || !app.session || !app.session.start_time) return null;
  const utc = (d) => (/T.*([zZ]|[+-]\d\d:?\d\d)$/.test(d) || !String(d).includes('T') ? d : `${d}Z`);
  const ms = Date.parse(utc(iso)) - Date.parse(utc(app.session.start_time));
  return Number.isFinite(ms) ? ms : null;
}

// A time field that may be ms since start or an ISO date.
function when(v) {
  if (v == null || v === '') return '—';
  if (typeof v === 'number') return fmtMs(v);
  const ms = isoToMs(v);
  return ms != null && ms >= 0 ? fmtMs(ms) : String(v).replace('T', ' ').replace(/\.\d+/, '');
}

const compact = (v) => (v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
const list = (a) => (Array.isArray(a) ? a.join(', ') : compact(a));
const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function params(p) {
  const entries = Object.entries(p || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${compact(v)}`).join(' ') : '—';
}

function table(el, headers, rows, empty) {
  fill(el,
    h('thead', null, h('tr', null, headers.map((t) => h('th', null, t)))),
    h('tbody', null, rows.length ? rows
      : h('tr', { class: 'empty' }, h('td', { colspan: headers.length }, empty || 'none'))));
}

const row = (...cells) => h('tr', null, cells.map((c) => h('td', null, c)));

const empty = (text) => h('li', { class: 'muted' }, text);

const readOnlyReason = () => (app.live ? 'read-only: open the link with ?token= printed at start-up'
  : 'replay: a finished run cannot be changed');

// Disables an action button (with the reason) when this page may not change state.
function guard(btn) {
  if (!app.actions) Object.assign(btn, { disabled: true, title: readOnlyReason() });
  return btn;
}

// A small guarded button that runs an action, reports a failure in `out`, then runs `after`.
function actionButton(label, call, out, after) {
  const b = guard(h('button', { type: 'button', class: 'small' }, label));
  b.addEventListener('click', safe(async () => {
    try { await busy(b, call); } catch (e) { message(out, 'error', `${label}: ${e.message}`); }
    await after();
  }));
  return b;
}

const notice = (id, text) => Object.assign($(id), { hidden: false, textContent: text });

function message(el, kind, ...children) {
  el.className = `message ${kind}`;
  el.hidden = false;
  fill(el, ...children);
}

async function copyText(text, btn) {
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (_) { // no clipboard API or no permission: the old way
    const ta = h('textarea', { class: 'offscreen', readonly: true }, text);
    document.body.append(ta);
    ta.select();
    try { ok = document.execCommand('copy'); } catch (_e) { ok = false; }
    ta.remove();
  }
  btn.dataset.label = btn.dataset.label || btn.textContent;
  btn.textContent = ok ? 'Copied' : 'Copy failed';
  setTimeout(() => { btn.textContent = btn.dataset.label; }, 1500);
}

const copyButton = (text) => h('button', {
  type: 'button', class: 'small', title: 'copy',
  onclick: (ev) => { ev.stopPropagation(); run(copyText, text, ev.currentTarget); },
}, 'Copy');

// ---------------------------------------------------------------- header, clock, live and replay

function setClock(ms) {
  if (ms != null) $('clock').textContent = fmtMs((app.nowMs = ms));
}

function renderHeader() {
  const s = app.session;
  $('mode').textContent = s.mode;
  $('mode').className = `badge ${s.mode}`;
  $('auth').textContent = s.mode === 'replay' ? 'read-only replay: reproduce the run with the command on the right'
    : s.authenticated ? 'token ok' : 'read-only — open the link with ?token= printed at start-up';
  $('auth').className = `auth ${s.authenticated ? 'ok' : 'ro'}`;
  $('command').textContent = (s.run && s.run.command) || '';
}

function setupReplay() {
  const s = app.session, slider = $('replay-slider');
  const end = s.end_ms != null ? s.end_ms : s.now_ms || 0;
  Object.assign(slider, { min: String(s.start_ms || 0), max: String(end), step: '1000', value: String(end) });
  $('replay-bar').hidden = false;
  let timer = null;
  const label = () => {
    app.at = Number(slider.value);
    setClock(app.at);
    $('replay-time').textContent = `${fmtMs(app.at)} / ${fmtMs(end)}`;
  };
  const apply = () => { clearTimeout(timer); label(); showPage(); };
  slider.addEventListener('input', () => { label(); clearTimeout(timer); timer = setTimeout(apply, 250); });
  slider.addEventListener('change', apply);
  label();
  app.at = end; // the slider snaps to whole seconds; the first view is the run's very end
}

function onState(s) {
  if (!s || typeof s !== 'object') return;
  app.state = s;
  setClock(s.at_ms);
  const p = pages[app.page];
  if (p.ready && p.onState) run(p.onState, s);
}

function startPolling() {
  if (app.polling) return;
  let inFlight = false;
  app.polling = setInterval(() => {
    if (inFlight) return;
    inFlight = true;
    run(async () => onState(await api('GET', '/ui/api/state'))).finally(() => { inFlight = false; });
  }, 2000);
}

function startLive() {
  if (typeof EventSource === 'function') {
    const es = new EventSource('/ui/api/stream');
    es.addEventListener('state', (ev) => {
      let s = null;
      try { s = JSON.parse(ev.data); } catch (_) { return; }
      onState(s);
    });
    es.onerror = () => { es.close(); startPolling(); }; // silently: polling takes over
  } else {
    startPolling();
  }
  setInterval(() => { // the current page's other data
    const p = pages[app.page];
    if (!p.ready || p.busy || document.hidden) return;
    p.busy = true;
    run(p.refresh || p.render).finally(() => { p.busy = false; });
  }, 5000);
}

// ---------------------------------------------------------------- routing

function route() {
  const name = location.hash.replace(/^#/, '');
  app.page = PAGES.includes(name) ? name : 'pipeline';
  for (const p of PAGES) {
    $(`page-${p}`).hidden = p !== app.page;
    $(`tab-${p}`).classList.toggle('active', p === app.page);
    if (p === app.page) $(`tab-${p}`).setAttribute('aria-current', 'page');
    else $(`tab-${p}`).removeAttribute('aria-current');
  }
  showPage();
}

function showPage() {
  const p = pages[app.page];
  if (!p.ready) {
    p.ready = true;
    if (p.setup) p.setup();
  }
  return run(p.render);
}

// ---------------------------------------------------------------- 1. pipeline

const pipe = { selected: null, lastSvg: 0, svgBusy: false, svgTimer: null };

function setupPipeline() {
  $('diagram').addEventListener('click', (ev) => {
    const node = ev.target.closest && ev.target.closest('g.node');
    if (node) run(openComponent, node.getAttribute('data-name'));
  });
  $('component-close').addEventListener('click', () => {
    pipe.selected = null;
    $('component-panel').hidden = true;
    markSelected();
  });
  for (const id of ['btn-stop', 'btn-start', 'btn-crash', 'btn-restart']) {
    const b = guard($(id));
    b.addEventListener('click', safe(() => componentAction(b, () => api('POST', '/api/chaos/call',
      { module: 'chaoslab.actions', func: b.dataset.func, arguments: { name: pipe.selected } }))));
  }
  const pause = guard($('btn-pause'));
  pause.addEventListener('click', safe(() => componentAction(pause, () => api('POST', '/api/faults',
    { kind: 'process-pause', target: pipe.selected, duration: '30s' }))));
}

async function renderPipeline() {
  await Promise.all([loadDiagram(), loadState()]);
  if (pipe.selected) await renderComponent();
}

async function loadState() {
  const s = await read('/ui/api/state');
  app.state = s;
  if (app.live) setClock(s.at_ms);
  renderLinks(s.links || []);
}

function onPipelineState(s) {
  renderLinks(s.links || []);
  scheduleDiagram();
}

async function loadDiagram() {
  pipe.svgBusy = true;
  pipe.lastSvg = Date.now();
  try {
    const svg = String(await read('/ui/pipeline.svg'));
    $('diagram').innerHTML = svg.replace(/<\?xml[^>]*\?>/, '').replace(/<!DOCTYPE[^>]*>/i, ''); // trusted server SVG
    markSelected();
  } catch (e) {
    fill($('diagram'), h('p', { class: 'error' }, `cannot load the diagram: ${e.message}`));
  } finally {
    pipe.svgBusy = false;
  }
}

// At most one diagram fetch a second, one at a time.
function scheduleDiagram() {
  if (pipe.svgTimer) return;
  pipe.svgTimer = setTimeout(() => {
    pipe.svgTimer = null;
    if (app.page !== 'pipeline') return;
    if (pipe.svgBusy) scheduleDiagram();
    else run(loadDiagram);
  }, Math.max(100, 1000 - (Date.now() - pipe.lastSvg)));
}

function markSelected() {
  for (const n of $('diagram').querySelectorAll('g.node')) {
    n.classList.toggle('selected', n.getAttribute('data-name') === pipe.selected);
  }
}

function renderLinks(links) {
  table($('links-table'), ['link', 'rate (msgs/s)', 'delivered', 'dropped', 'faulty'], links.map((l) => {
    const tr = row(l.name, Number(l.rate || 0).toFixed(1), l.delivered, l.dropped, l.faulty ? 'yes' : 'no');
    if (l.faulty) tr.className = 'faulty';
    return tr;
  }), 'no links');
}

async function openComponent(name) {
  if (!name) return;
  pipe.selected = name;
  $('component-panel').hidden = false;
  $('component-name').textContent = name;
  $('component-message').hidden = true;
  fill($('component-body'), h('p', { class: 'muted' }, 'Loading…'));
  markSelected();
  await renderComponent();
}

const prop = (k, v) => [h('dt', null, k), h('dd', null, v == null || v === '' ? '—' : v)];

async function renderComponent() {
  const name = pipe.selected;
  let c;
  try {
    c = await read(`/ui/api/component/${encodeURIComponent(name)}`);
  } catch (e) {
    if (name === pipe.selected) fill($('component-body'), h('p', { class: 'error' }, e.message));
    return;
  }
  if (name !== pipe.selected) return;
  const labels = Object.entries(c.labels || {}).map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`));
  const logs = (c.logs || []).map((l) => h('div', { class: `log ${l.level || ''}` },
    h('span', { class: 'muted' }, fmtMs(l.t_ms)), ' ', h('b', null, l.level || ''), ' ', l.message));
  const faults = (c.faults || []).map((f) => h('li', null,
    `${f.id} ${f.kind} since ${fmtMs(f.applied_ms)} ${params(f.parameters)}`));
  const metrics = h('table', { class: 'data compact' });
  table(metrics, ['metric', 'labels', 'value'],
    (c.metrics || []).map((m) => row(m.name, params(m.labels), compact(m.value))), 'no metrics');
  fill($('component-body'),
    h('dl', { class: 'props' },
      prop('kind', c.kind), prop('namespace', c.namespace), prop('labels', labels.length ? labels : null),
      prop('state', h('span', { class: `health ${c.health || ''}` }, c.state)),
      prop('ready', c.ready ? 'yes' : 'no'), prop('paused', c.paused ? 'yes' : 'no'),
      prop('restarts', String(c.restarts ?? 0)), prop('detail', c.detail)),
    h('h3', null, 'Active faults'),
    faults.length ? h('ul', { class: 'plain' }, faults) : h('p', { class: 'muted' }, 'none'),
    h('h3', null, 'Metrics'), metrics,
    h('h3', null, 'Recent logs'),
    h('div', { class: 'logs' }, logs.length ? logs : h('p', { class: 'muted' }, 'no logs')));
}

async function componentAction(btn, call) {
  const out = $('component-message');
  try {
    const ans = await busy(btn, call);
    const obj = ans && typeof ans === 'object' ? ans : {};
    const what = clip(obj.id ? `fault ${obj.id}` : compact('output' in obj ? obj.output : ans), 200);
    message(out, 'ok', `${btn.textContent}: done${what ? ` — ${what}` : ''}`);
  } catch (e) {
    message(out, 'error', `${btn.textContent}: ${e.message}`);
  }
  await Promise.all([renderComponent(), loadDiagram()]);
}

// ---------------------------------------------------------------- 2. faults

const flt = { kinds: [], sig: '', previewSeq: 0 };

function setupFaults() {
  $('fault-form').addEventListener('submit', (ev) => { ev.preventDefault(); run(applyFault); });
  $('fault-kind').addEventListener('change', () => selectKind());
  $('fault-target').addEventListener('input', debounce(previewTarget, 250));
  $('fault-add-param').addEventListener('click', () => $('fault-params').append(paramRow('', '', '')));
  for (const id of ['fault-apply', 'fault-add-param', 'halt']) guard($(id));
  setupHalt();
  if (app.actions) {
    run(loadKinds);
  } else {
    notice('faults-notice', app.live
      ? 'Read-only: open the link with the token printed at start-up to apply or remove faults.'
      : 'Replay: faults cannot be applied to a finished run; the tables show the faults at the chosen time.');
    $('fault-kind').disabled = true;
    run(previewTarget);
  }
}

async function loadKinds() {
  try {
    flt.kinds = (await api('GET', '/api/faults/kinds')).kinds || [];
  } catch (e) {
    notice('faults-notice', `${e.message} — open the link with the token printed at start-up.`);
    return;
  }
  fill($('fault-kind'), flt.kinds.map((k) => h('option', { value: k.name }, `${k.name} (${k.category})`)));
  selectKind();
}

function paramRow(name, hint, full) {
  return h('div', { class: 'param-row' },
    h('input', { class: 'param-name', type: 'text', value: name, placeholder: 'name', size: 14 }),
    h('input', { class: 'param-value', type: 'text', placeholder: hint || 'value', title: full || null, size: 28 }),
    h('button', { type: 'button', class: 'small', title: 'remove this parameter',
      onclick: (ev) => ev.currentTarget.closest('.param-row').remove() }, '×'));
}

// A catalogue parameter "latency (e.g. 200ms)": the name is the word before the first space or
// parenthesis, the rest (without its parentheses) is the hint.
function selectKind() {
  const k = flt.kinds.find((x) => x.name === $('fault-kind').value);
  if (!k) return;
  const ps = k.parameters || [];
  fill($('fault-kind-info'), k.description, h('br'),
    `acts on: ${k.target}${k.instant ? ' · instant (no duration)' : ''}`, h('br'),
    `parameters: ${ps.length ? ps.join('; ') : 'none'}`);
  const target = $('fault-target');
  target.value = k.default_target || '';
  target.placeholder = k.target === 'link' ? 'a link or glob, e.g. *->KAFKA' : 'a name, a glob or kind:<kind>';
  fill($('fault-params'), ps.map((p) => {
    const name = p.split(/[\s(]/)[0];
    return paramRow(name, p.slice(name.length).trim().replace(/^\((.*)\)$/, '$1'), p);
  }));
  $('fault-duration').disabled = !!k.instant;
  run(previewTarget);
}

async function previewTarget() {
  const sel = $('fault-target').value.trim(), out = $('fault-preview'), seq = ++flt.previewSeq;
  let ans = { error: null, matches: null };
  if (sel) {
    try { ans = await read('/ui/api/targets', { selector: sel }); } catch (e) { ans = { error: e.message }; }
  }
  if (seq !== flt.previewSeq) return;
  const matches = ans.matches || [];
  if (!sel) [out.className, out.textContent] = ['preview muted', 'no target: the kind’s default (if it has one) is used'];
  else if (ans.error) [out.className, out.textContent] = ['preview error', ans.error];
  else if (!matches.length) [out.className, out.textContent] = ['preview warn', 'matches nothing'];
  else [out.className, out.textContent] = ['preview ok', `matches ${matches.length}: ${matches.join(', ')}`];
}

async function applyFault() {
  const k = flt.kinds.find((x) => x.name === $('fault-kind').value), out = $('fault-result');
  if (!k) { message(out, 'error', 'choose a kind first'); return; }
  const parameters = {};
  for (const r of $('fault-params').querySelectorAll('.param-row')) {
    const name = r.querySelector('.param-name').value.trim(), value = r.querySelector('.param-value').value.trim();
    if (!name || !value) continue;
    parameters[name] = value;
    if (/^[[{]/.test(value)) { // a list or an object
      try { parameters[name] = JSON.parse(value); } catch (_) { /* plain text */ }
    }
  }
  const body = { kind: k.name, parameters };
  const target = $('fault-target').value.trim(), duration = $('fault-duration').value.trim();
  if (target) body.target = target;
  if (duration && !k.instant) body.duration = duration;
  try {
    const rec = await busy($('fault-apply'), () => api('POST', '/api/faults', body));
    message(out, 'ok', 'Applied ', h('b', null, rec.id), ` (${rec.kind}) to ${list(rec.targets) || '—'}`,
      rec.status ? ` — ${rec.status}` : '');
  } catch (e) {
    const problems = (e.data && e.data.problems) || [];
    message(out, 'error', e.message, problems.length ? h('ul', null, problems.map((p) => h('li', null, compact(p)))) : null);
  }
  await renderFaults();
}

// Two clicks within 5 s (no confirm(): nothing may open a dialog).
function setupHalt() {
  const b = $('halt'), label = b.textContent;
  let armed = null;
  const reset = () => { clearTimeout(armed); armed = null; b.textContent = label; b.classList.remove('armed'); };
  b.addEventListener('click', safe(async () => {
    if (!armed) {
      b.textContent = 'Click again to halt';
      b.classList.add('armed');
      armed = setTimeout(reset, 5000);
      return;
    }
    reset();
    try {
      const ans = await busy(b, () => api('DELETE', '/api/faults'));
      const n = Array.isArray(ans && ans.removed) ? ans.removed.length : 0;
      message($('fault-result'), 'ok', `Halted: ${n} fault${n === 1 ? '' : 's'} removed.`);
    } catch (e) {
      message($('fault-result'), 'error', `Halt failed: ${e.message}`);
    }
    await renderFaults();
  }));
}

// Records of /api/faults and fault views of the state, in one shape.
function normFault(r) {
  const end = r.ended_ms != null ? r.ended_ms : isoToMs(r.ended_at);
  const expires = r.duration_ms != null ? r.applied_ms + r.duration_ms : isoToMs(r.expires_at);
  return { ...r, end_ms: end, expires_ms: expires };
}

const faultSig = (fs) => (fs || []).map((f) => `${f.id}:${f.ended_ms ?? ''}`).join(',');

function splitFaults(faults) {
  flt.sig = faultSig(faults);
  const all = (faults || []).map(normFault);
  return { active: all.filter((f) => f.ended_ms == null), ended: all.filter((f) => f.ended_ms != null) };
}

// With the token: the control plane's records (they know when a fault expires); without: the state.
async function renderFaults() {
  if (!app.actions) {
    app.state = await read('/ui/api/state');
    renderFaultTables(splitFaults(app.state.faults));
    return;
  }
  const ans = await api('GET', '/api/faults');
  if (app.state) flt.sig = faultSig(app.state.faults);
  renderFaultTables({ active: (ans.active || []).map(normFault), ended: (ans.ended || []).map(normFault) });
}

function onFaultsState(s) {
  if (faultSig(s.faults) === flt.sig) return null;
  if (app.actions) return renderFaults();
  return renderFaultTables(splitFaults(s.faults));
}

function renderFaultTables({ active, ended }) {
  table($('faults-active'), ['id', 'kind', 'targets', 'parameters', 'since', 'expires', ''], active.map((f) => {
    const remove = actionButton('Remove', () => api('DELETE', `/api/faults/${encodeURIComponent(f.id)}`),
      $('fault-result'), renderFaults);
    return row(f.id, f.kind, list(f.targets), params(f.parameters), fmtMs(f.applied_ms),
      f.expires_ms != null ? fmtMs(f.expires_ms) : 'until removed', remove);
  }), 'no active fault');
  table($('faults-ended'), ['id', 'kind', 'targets', 'parameters', 'applied', 'ended', 'status'],
    ended.slice().reverse().map((f) => row(f.id, f.kind, list(f.targets), params(f.parameters),
      fmtMs(f.applied_ms), f.end_ms != null ? fmtMs(f.end_ms) : when(f.ended_at),
      f.reason && f.reason !== f.status ? `${f.status} (${f.reason})` : f.status)), 'no ended fault');
}

// ---------------------------------------------------------------- 3. experiments

const exp = { manual: false };
const guessFormat = (text) => (/apiVersion:\s*["']?chaos-mesh\.org/.test(text) ? 'mesh' : 'ctk');

function setupExperiments() {
  const ta = $('experiment-text'), fmt = $('experiment-format');
  ta.addEventListener('input', debounce(() => {
    if (!exp.manual) fmt.value = guessFormat(ta.value);
    $('experiment-preview').hidden = true;
  }, 200));
  fmt.addEventListener('change', () => { exp.manual = true; });
  $('experiment-file').addEventListener('change', safe(async (ev) => {
    const file = ev.target.files && ev.target.files[0];
    if (!file) return;
    ta.value = await file.text();
    exp.manual = false;
    fmt.value = guessFormat(ta.value);
    fill($('experiment-problems'));
    $('experiment-preview').hidden = true;
  }));
  const validate = $('experiment-validate'), start = guard($('experiment-run')); // validating is a read
  validate.addEventListener('click', safe(() => busy(validate, validateExperiment)));
  start.addEventListener('click', safe(() => busy(start, runExperiment)));
  if (!app.actions) notice('mesh-notice', `${readOnlyReason()} (validation still works).`);
}

// "request:12:spec.duration: message" (Chaos Mesh answers) → {line, key, message}
function parseProblem(p) {
  if (p && typeof p === 'object') return p;
  const m = /^(?:warning: )?[^:\s]*?(?::(\d+))?(?::([^\s:]+))?: (.*)$/s.exec(String(p));
  return m ? { line: m[1] ? Number(m[1]) : null, key: m[2] || '', message: m[3] } : { message: String(p) };
}

// The problems as a list, and the text with a line-number gutter, lines with problems in red.
function showProblems(problems) {
  const ps = problems.map(parseProblem), bad = new Map();
  fill($('experiment-problems'), ps.length
    ? ps.map((p) => h('li', { class: 'error' },
      [p.line != null ? `line ${p.line}` : null, p.key, p.message].filter((x) => x).join(': ')))
    : h('li', { class: 'ok' }, 'No problems found.'));
  for (const p of ps) if (p.line != null) bad.set(p.line, [bad.get(p.line), p.message].filter((x) => x).join('\n'));
  const lines = $('experiment-text').value.split('\n'), w = String(lines.length).length;
  fill($('experiment-preview'), lines.map((text, i) => h('span',
    { class: bad.has(i + 1) ? 'line bad' : 'line', title: bad.get(i + 1) || null },
    h('span', { class: 'ln' }, String(i + 1).padStart(w)), ` ${text}`)));
  $('experiment-preview').hidden = !ps.length;
}

async function validateExperiment() {
  const body = { format: $('experiment-format').value, text: $('experiment-text').value };
  showProblems((await api('POST', '/ui/api/validate', body)).problems || []);
}

async function runExperiment() {
  const out = $('experiment-result'), text = $('experiment-text').value;
  message(out, 'muted', 'Running…');
  if ($('experiment-format').value === 'mesh') {
    try {
      const ans = await api('POST', '/api/experiments', text, 'application/yaml');
      message(out, 'ok', 'Created:', h('ul', null, (ans.created || []).map((o) =>
        h('li', null, `${o.kind} ${o.namespace}/${o.name} (uid ${o.uid})`))));
      fill($('experiment-problems'));
    } catch (e) {
      message(out, 'error', e.message);
      if (e.data && Array.isArray(e.data.problems)) showProblems(e.data.problems);
    }
    await renderExperiments();
    return;
  }
  let ans, ok = true;
  try {
    ans = await api('POST', '/ui/api/experiments/run', { text });
  } catch (e) { // an invalid experiment answers 400 with the usual {status, info}
    if (!(e.data && typeof e.data === 'object' && e.data.status)) { message(out, 'error', e.message); return; }
    [ans, ok] = [e.data, false];
  }
  const info = Array.isArray(ans.info) ? h('ul', null, ans.info.map((i) => h('li', null, compact(i))))
    : h('p', null, compact(ans.info));
  message(out, ok ? 'ok' : 'error', h('p', null, h('b', null, ans.title || 'experiment'), ` — ${ans.status || ''}`,
    ans.status_code ? ` (${ans.status_code})` : ''), info, journalDetails(ans.journal));
}

// The journal itself, or its location (`/experiments/ID`, fetched at once).
function journalDetails(journal) {
  if (journal == null) return null;
  const pre = h('pre', { class: 'json' }, typeof journal === 'object' ? JSON.stringify(journal, null, 2) : String(journal));
  if (typeof journal === 'string' && journal.startsWith('/')) {
    api('GET', journal).then((j) => { pre.textContent = JSON.stringify(j, null, 2); },
      (e) => { pre.textContent = `${journal}: ${e.message}`; });
  }
  return h('details', null, h('summary', null, 'Journal'), pre);
}

// Each workflow's graph (its nodes coloured by state) and its newest events.
async function renderWorkflowGraphs() {
  const ans = (await read('/ui/api/workflows')) || {};
  const list = ans.workflows || [];
  fill($('workflow-graphs'), list.map((w) => {
    const box = h('div', { class: 'svgbox workflow-graph', 'data-key': w.key });
    box.innerHTML = w.svg || '';
    const events = (w.events || []).slice(-12).map((e) => h('li', null, `${fmtMs(e.elapsed_ms)} `,
      h('b', null, e.reason), ` ${e.message}`));
    return h('div', null, h('h4', null, `${w.key} — ${w.phase}`), box,
      h('details', null, h('summary', null, `events (${(w.events || []).length})`), h('ul', { class: 'plain' }, events)));
  }));
}

async function renderExperiments() {
  await renderWorkflowGraphs();
  await Promise.all(['experiments', 'schedules', 'workflows'].map(async (what) => {
    const el = $(`mesh-${what}`), headers = ['kind', 'name', 'status', 'created', 'uid', ''];
    if (!app.actions) { table(el, headers, [], 'read-only: the list needs the token'); return; }
    let items;
    try {
      items = await api('GET', `/api/${what}`);
    } catch (e) {
      table(el, headers, [], e.status === 401 || e.status === 403 ? `read-only: ${e.message}` : e.message);
      return;
    }
    table(el, headers, (Array.isArray(items) ? items : []).map((o) => {
      const del = actionButton('Delete', () => api('DELETE', `/api/experiments/${encodeURIComponent(o.uid)}`),
        $('experiment-result'), renderExperiments);
      return row(o.kind, `${o.namespace}/${o.name}`, o.status, when(o.created_at), o.uid, del);
    }), `no ${what.slice(0, -1)}`);
  }));
}

// ---------------------------------------------------------------- 4. timeline

// range: null (the server's default), {all}, {last: ms} or {from, to}; view: what chart 0 shows.
const tl = { presets: [], charts: [], range: null, view: null, drag: null };

function setupTimeline() {
  $('timeline-preset').addEventListener('change', () => {
    const name = $('timeline-preset').value, p = tl.presets.find((x) => x.name === name);
    if (p) $('timeline-query').value = p.query || '';
    setChart(tl.charts[0], { preset: name });
  });
  const query = () => {
    const q = $('timeline-query').value.trim();
    if (q) setChart(tl.charts[0], { query: q });
  };
  $('timeline-query-run').addEventListener('click', query);
  $('timeline-query').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') query(); });
  $('timeline-add').addEventListener('click', () => {
    const used = new Set(tl.charts.map((c) => c.spec.preset));
    const p = tl.presets.find((x) => !used.has(x.name)) || tl.presets[0];
    if (p) setChart(addChart({ preset: p.name }), { preset: p.name });
  });
  for (const b of document.querySelectorAll('#page-timeline [data-range]')) {
    b.addEventListener('click', () => {
      const r = b.getAttribute('data-range');
      tl.range = r === 'all' ? { all: true } : { last: Number(r) };
      run(renderTimeline);
    });
  }
  $('timeline-zoom-in').addEventListener('click', () => moveView(0.5, 0));
  $('timeline-zoom-out').addEventListener('click', () => moveView(2, 0));
  $('timeline-pan-left').addEventListener('click', () => moveView(1, -0.25));
  $('timeline-pan-right').addEventListener('click', () => moveView(1, 0.25));
  window.addEventListener('mousemove', (ev) => {
    if (!tl.drag) return;
    tl.drag.x1 = Math.min(Math.max(ev.clientX, tl.drag.rect.left), tl.drag.rect.right);
    drawSelection(tl.drag);
  });
  window.addEventListener('mouseup', () => {
    const d = tl.drag;
    if (!d) return;
    tl.drag = null;
    d.c.sel.hidden = true;
    const a = timeAt(d, Math.min(d.x0, d.x1)), b = timeAt(d, Math.max(d.x0, d.x1));
    if (Math.abs(d.x1 - d.x0) >= 5 && b - a >= 1000) {
      tl.range = { from: a, to: b };
      run(renderTimeline);
    }
  });
}

function setChart(c, spec) {
  if (!c) return;
  c.spec = spec;
  run(async () => {
    await renderChart(c, timeRange());
    renderTimelineLists();
  });
}

function addChart(spec) {
  const first = !tl.charts.length;
  const c = {
    spec, ans: null,
    title: h('span', { class: 'chart-title' }),
    body: h('div', { class: 'chart-body' }),
    sel: h('div', { class: 'chart-sel', hidden: true }),
    legend: h('div', { class: 'chart-legend muted' }),
  };
  const head = h('div', { class: 'chart-head' }, c.title);
  if (!first) {
    const select = h('select', { class: 'chart-preset', onchange: () => setChart(c, { preset: select.value }) },
      tl.presets.map((p) => h('option', { value: p.name, selected: p.name === spec.preset }, p.title || p.name)));
    const remove = () => { tl.charts = tl.charts.filter((x) => x !== c); c.el.remove(); };
    head.append(select, h('button', { type: 'button', class: 'small', title: 'remove this chart', onclick: remove }, '×'));
  }
  c.el = h('div', { class: 'chart', id: first ? 'chart-0' : null }, head, c.body, c.legend);
  c.body.addEventListener('mousedown', (ev) => startDrag(c, ev));
  tl.charts.push(c);
  $('charts').append(c.el);
  return c;
}

async function loadPresets() {
  tl.presets = (await read('/ui/api/presets')) || [];
  fill($('timeline-preset'), tl.presets.map((p) => h('option', { value: p.name }, p.title || p.name)));
  const first = tl.presets[0];
  if (first) $('timeline-query').value = first.query || '';
  addChart(first ? { preset: first.name } : { query: 'up' });
}

const timeNow = () => (app.at != null ? app.at : app.nowMs);

function timeRange() {
  const r = tl.range, now = timeNow();
  if (!r) return {};
  if (r.all) return { from: 0, to: now };
  if (r.last) return { from: Math.max(0, now - r.last), to: now };
  return { from: r.from, to: r.to };
}

// Zoom (span × factor around the middle) and pan (by shift × span), kept within [0, now].
function moveView(factor, shift) {
  const v = tl.view;
  if (!v) return;
  const now = timeNow(), span = Math.max(10000, (v.to - v.from) * factor);
  let from = (v.from + v.to) / 2 - span / 2 + shift * (v.to - v.from), to = from + span;
  if (now > 0 && to > now) [from, to] = [from - (to - now), now];
  if (from < 0) [from, to] = [0, now > 0 ? Math.min(now, to - from) : to - from];
  tl.range = { from: Math.round(from), to: Math.round(Math.max(to, from + 1000)) };
  run(renderTimeline);
}

async function renderTimeline() {
  if (!tl.charts.length) await loadPresets();
  const r = timeRange();
  await Promise.all(tl.charts.map((c) => renderChart(c, r)));
  renderTimelineLists();
}

async function renderChart(c, r) {
  const width = Math.max(320, Math.round(c.body.clientWidth || 960));
  let ans;
  try {
    ans = await read('/ui/api/timeline', { ...c.spec, from: r.from, to: r.to, width, height: 240 });
  } catch (e) {
    ans = { error: e.message };
  }
  c.ans = ans;
  const preset = tl.presets.find((p) => p.name === c.spec.preset);
  c.title.textContent = preset ? preset.title || preset.name : c.spec.query;
  if (ans.error) {
    fill(c.body, h('div', { class: 'chart-error' }, ans.error));
    c.legend.textContent = '';
    return;
  }
  c.body.innerHTML = ans.svg || ''; // trusted server SVG
  c.body.append(c.sel);
  c.legend.textContent = (ans.series || []).length ? `series: ${ans.series.join(', ')}` : 'no series in this range';
}

function renderTimelineLists() {
  for (const b of document.querySelectorAll('#page-timeline [data-range]')) {
    const r = b.getAttribute('data-range'), cur = tl.range;
    b.classList.toggle('active', !!cur && (r === 'all' ? !!cur.all : cur.last === Number(r)));
  }
  const a = (tl.charts.find((c) => c.ans && !c.ans.error) || {}).ans;
  if (!a) return;
  tl.view = { from: a.from_ms, to: a.to_ms };
  $('timeline-range').textContent = `${fmtMs(a.from_ms)} – ${fmtMs(a.to_ms)}`;
  const ws = a.windows || [], is = a.incidents || [];
  fill($('timeline-windows'), ws.length ? ws.map((w) => h('li', null, h('b', null, w.id), ` ${w.kind} `,
    h('span', { class: 'muted' }, list(w.targets)), ` ${secs(w.from_ms)} – ${secs(w.to_ms)}`))
    : empty('no fault in this range'));
  fill($('timeline-incidents'), is.length ? is.map((i) => h('li', null, `${secs(i.t_ms)} `, h('b', null, i.name)))
    : empty('no incident in this range'));
  const es = a.experiments || [];
  fill($('timeline-experiments'), es.length ? es.map((e) => {
    const missed = (e.verdicts || []).filter((v) => !v.met).map((v) => v.name);
    return h('li', null, h('b', null, e.title || e.id), ` ${e.status} — `,
      (e.phases || []).map((p) => `${p.name} ${secs(p.from_ms)}–${secs(p.to_ms)}`).join(', '),
      missed.length ? h('span', { class: 'bad' }, ` · missed: ${missed.join(', ')}`) : '');
  }) : empty('no experiment run against this pipeline yet'));
}

function startDrag(c, ev) {
  const a = c.ans, svg = c.body.querySelector('svg');
  if (ev.button !== 0 || !a || a.error || !a.plot || !svg) return;
  ev.preventDefault();
  tl.drag = { c, rect: svg.getBoundingClientRect(), x0: ev.clientX, x1: ev.clientX };
  drawSelection(tl.drag);
}

function drawSelection(d) {
  const left = Math.min(d.x0, d.x1) - d.c.body.getBoundingClientRect().left;
  Object.assign(d.c.sel.style, { left: `${left}px`, width: `${Math.abs(d.x1 - d.x0)}px` });
  d.c.sel.hidden = false;
}

// client x → ms, through the SVG's own pixel space (the element on screen may be scaled).
function timeAt(d, clientX) {
  const a = d.c.ans, scale = d.rect.width / (a.width || d.rect.width || 1);
  const x = (clientX - d.rect.left) / scale;
  const f = Math.min(1, Math.max(0, (x - a.plot.left) / (a.plot.right - a.plot.left || 1)));
  return Math.round(a.from_ms + f * (a.to_ms - a.from_ms));
}

// ---------------------------------------------------------------- 5. incidents

const incidentTime = (i) => (i.t_ms != null ? fmtMs(i.t_ms) : when(i.date_time || i.at));
const components = (i) => i.component || list(i.components) || '—';

async function renderIncidents() {
  const ans = await read('/ui/api/incidents');
  const gt = ans.ground_truth || {};
  table($('incidents-table'), ['time', 'name', 'component', 'explained by'], (ans.incidents || []).map((i) => {
    const by = i.faults || [];
    const tr = row(incidentTime(i), i.name, components(i), by.length ? list(by) : 'unexplained');
    if (!by.length) tr.className = 'warn';
    return tr;
  }), 'no incident');
  table($('truth-table'), ['fault', 'kind', 'targets', 'applied', 'detections (time to detect)'],
    (gt.faults || []).map((f) => {
      const ds = (f.detections || []).map((d) => {
        const s = d.time_to_detect_ms != null ? d.time_to_detect_ms / 1000 : d.time_to_detect_secs;
        return h('div', null, `${d.incident} after ${s != null ? `${Number(s).toFixed(1)} s` : '?'}`);
      });
      const tr = row(f.fault, f.kind, list(f.targets), f.applied_ms != null ? fmtMs(f.applied_ms) : when(f.applied_at),
        ds.length ? ds : 'undetected');
      if (!ds.length) tr.className = 'warn';
      return tr;
    }), 'no fault applied');
  const un = gt.unexplained || ans.unexplained || [];
  fill($('unexplained'), un.length
    ? un.map((i) => h('li', null, `${incidentTime(i)} `, h('b', null, i.name), ` — ${components(i)}`))
    : empty('none: every incident is explained by a fault'));
  await renderGraph();
}

// The knowledge graph: drawn by the server; edited through the graph API (needs the token).
const graphState = { view: null };
const nodesOf = (label) => ((graphState.view && graphState.view.nodes) || []).filter((n) => n.label === label);
const options = (select, items, keep) => {
  const current = keep ? select.value : '';
  fill(select, items.map(([value, text]) => h('option', { value, selected: value === current }, text)));
};

function setupGraph() {
  const out = $('graph-result');
  const submit = (form, fn) => $(form).addEventListener('submit', safe(async (ev) => {
    ev.preventDefault();
    try {
      await fn();
      message(out, 'ok', 'saved; the reasoner uses it from the next signal on');
    } catch (e) { message(out, 'error', e.message); }
    await renderGraph();
  }));
  const num = (id) => ($(id).value === '' ? undefined : Number($(id).value));
  submit('graph-signal-form', async () => {
    const component = $('graph-component').value, name = $('graph-signal').value.trim();
    const body = { name, component, threshold: num('graph-threshold'), coolDownSec: num('graph-cooldown') };
    const exists = nodesOf('Signal').some((n) => n.name === name && n.component === component);
    if (exists) await api('PUT', `/api/graph/signals/${encodeURIComponent(component)}/${encodeURIComponent(name)}`, body);
    else await api('POST', '/api/graph/signals', body);
  });
  submit('graph-link-form', async () => {
    const [signal, component] = $('graph-link-signal').value.split('#');
    await api('POST', '/api/graph/links', { type: 'PART_OF', signal, component, composite: $('graph-link-composite').value });
  });
  submit('graph-composite-form', async () => {
    const name = $('graph-composite').value;
    const body = { name, activationThreshold: num('graph-activation'), coolDownSec: num('graph-composite-cooldown') };
    await api('PUT', `/api/graph/composite-signals/${encodeURIComponent(name)}`, body);
  });
  $('graph').addEventListener('click', (ev) => {
    const g = ev.target.closest && ev.target.closest('g.gnode');
    if (!g) return;
    const node = ((graphState.view && graphState.view.nodes) || []).find((n) => n.id === g.getAttribute('data-id'));
    if (!node) return;
    if (node.label === 'Signal') {
      Object.assign($('graph-component'), { value: node.component });
      $('graph-signal').value = node.name;
      $('graph-threshold').value = node.threshold;
      $('graph-cooldown').value = node.coolDownSec;
      $('graph-link-signal').value = `${node.name}#${node.component}`;
    } else if (node.label === 'CompositeSignal') {
      $('graph-composite').value = node.name;
      $('graph-link-composite').value = node.name;
      $('graph-activation').value = node.activationThreshold;
      $('graph-composite-cooldown').value = node.coolDownSec;
    } else if (node.label === 'DataPipeline') {
      $('graph-component').value = node.name;
    }
  });
}

async function renderGraph() {
  const ans = (await read('/ui/api/graph')) || {};
  graphState.view = ans.graph || null;
  $('graph-editor').hidden = !graphState.view;
  if (!graphState.view) {
    fill($('graph'), h('p', { class: 'muted' }, ans.error || 'no knowledge graph'));
    table($('signals-table'), ['signal'], [], 'no knowledge graph in this run');
    return;
  }
  $('graph').innerHTML = ans.svg || '';
  table($('signals-table'), ['signal', 'component', 'threshold', 'cool-down s', 'last seen', 'summary'],
    nodesOf('Signal').map((n) => {
      const tr = row(n.name, n.component, n.threshold < 0 ? 'simple' : n.threshold,
        n.coolDownSec < 0 ? '—' : n.coolDownSec, n.lastSignalTime ? when(n.lastSignalTime) : 'never', n.summary || '—');
      if (n.lastSignalTime) tr.className = 'warn';
      return tr;
    }), 'no signal in the graph');
  options($('graph-component'), nodesOf('DataPipeline').map((n) => [n.name, n.name]), true);
  options($('graph-link-signal'), nodesOf('Signal').map((n) => [`${n.name}#${n.component}`, `${n.name} (${n.component})`]), true);
  const composites = nodesOf('CompositeSignal').map((n) => [n.name, n.name]);
  options($('graph-link-composite'), composites, true);
  options($('graph-composite'), composites, true);
  for (const b of ['graph-save-signal', 'graph-link', 'graph-save-composite']) guard($(b));
}

// ---------------------------------------------------------------- 6. data

const dat = { from: 0, size: 50 };

function setupData() {
  setupOrders();
  const again = () => { dat.from = 0; run(searchData); };
  $('data-form').addEventListener('submit', (ev) => { ev.preventDefault(); again(); });
  $('data-index').addEventListener('change', again);
  $('data-prev').addEventListener('click', () => { dat.from = Math.max(0, dat.from - dat.size); run(searchData); });
  $('data-next').addEventListener('click', () => { dat.from += dat.size; run(searchData); });
}

// The order store (the reference's poke_orders table) and the heuristics miner's model.
const ord = { from: 0, size: 50 };

function setupOrders() {
  $('orders-state').addEventListener('change', () => { ord.from = 0; run(renderOrders); });
  $('orders-prev').addEventListener('click', () => { ord.from = Math.max(0, ord.from - ord.size); run(renderOrders); });
  $('orders-next').addEventListener('click', () => { ord.from += ord.size; run(renderOrders); });
}

async function renderOrders() {
  const ans = (await read('/ui/api/orders', { state: $('orders-state').value, from: ord.from, size: ord.size })) || {};
  const orders = ans.orders || [];
  table($('orders-table'), ['id', 'user', 'pokemon', 'country', 'price', 'state', 'timestamp'],
    orders.map((o) => row(o.id, o.user_id, o.pokemon, o.country, o.price, o.state, o.timestamp)),
    ans.error || 'no order');
  $('orders-note').textContent = orders.length ? `${ord.from + 1}–${ord.from + orders.length}` : '';
  $('orders-prev').disabled = ord.from <= 0;
  $('orders-next').disabled = orders.length < ord.size;
}

async function renderModel() {
  const ans = (await read('/ui/api/model')) || {};
  if (!ans.model) {
    $('model-note').textContent = ans.error || 'no process model';
    fill($('model'));
    return;
  }
  const q = ans.quality;
  $('model-note').textContent = `${(ans.model.activities || []).length} activities, ${(ans.model.edges || []).length} dependencies`
    + (q ? ` · fitness ${Number(q.fitness).toFixed(3)}, precision ${Number(q.precision).toFixed(3)}` : '');
  $('model').innerHTML = ans.svg || '';
}

async function renderData() {
  await Promise.all([renderOrders(), renderModel()]);
  const indices = (await read('/ui/api/indices')) || [], select = $('data-index'), current = select.value;
  fill(select, indices.map((i) => h('option', { value: i.name, selected: i.name === current }, `${i.name} (${i.docs})`)));
  if (indices.length) return searchData();
  table($('data-table'), ['documents'], [], 'no index in this run');
  $('data-total').textContent = '';
  return null;
}

async function searchData() {
  const index = $('data-index').value;
  if (!index) return;
  const ms = (id) => { const v = $(id).value.trim(); return v === '' ? null : Math.round(Number(v) * 1000); };
  const q = $('data-query').value.trim(), bad = q.split(/\s+/).find((t) => t && !/^[^:]+:/.test(t));
  if (bad) { // checked here as the server would, without a failing request
    table($('data-table'), ['documents'], [], `term "${bad}" is not field:value`);
    return;
  }
  const ans = await read('/ui/api/search', {
    index, q, since_ms: ms('data-since'), until_ms: ms('data-until'),
    from: dat.from, size: dat.size,
  });
  const docs = ans.docs || [], total = ans.total || 0, cols = [];
  for (const d of docs) {
    for (const k of Object.keys(d || {})) if (!cols.includes(k) && cols.length < 12) cols.push(k);
  }
  table($('data-table'), cols.length ? cols : ['documents'], docs.map((d) => h('tr', null, cols.map((k) => {
    const text = compact(d[k]);
    return h('td', { title: text.length > 80 ? text : null }, clip(text, 120));
  }))), 'no matching document');
  $('data-total').textContent = docs.length ? `${dat.from + 1}–${dat.from + docs.length} of ${total}` : `0 of ${total}`;
  $('data-prev').disabled = dat.from <= 0;
  $('data-next').disabled = dat.from + docs.length >= total;
}

// ---------------------------------------------------------------- 7. runs

const runsOpen = new Set();
const RUN_FIELDS = ['id', 'kind', 'title', 'source', 'status', 'passed', 'resilience', 'started', 'command'];
const plainDate = (v) => (v ? String(v).replace('T', ' ').replace(/\.\d+/, '') : '—');

// A run's details: the store's whole record (journal included) when it has an id there, else what the list said.
async function runDetails(r, cell) {
  let detail = Object.fromEntries(Object.entries(r).filter(([k]) => !RUN_FIELDS.includes(k)));
  if (typeof r.id === 'number') detail = (await read(`/ui/api/runs/${r.id}`)) || detail;
  fill(cell, Object.keys(detail).length
    ? h('pre', { class: 'json' }, JSON.stringify(detail, null, 2)) : h('span', { class: 'muted' }, 'no further details'));
}

async function renderRuns() {
  const runs = (await read('/ui/api/runs')) || [], rows = [];
  for (const r of runs) {
    const cell = h('td', { colspan: RUN_FIELDS.length }, h('span', { class: 'muted' }, 'loading…'));
    const details = h('tr', { class: 'details', hidden: !runsOpen.has(r.id) }, cell);
    if (runsOpen.has(r.id)) runDetails(r, cell);
    const passed = r.passed == null ? '—' : r.passed ? 'yes' : 'no';
    const resilience = r.resilience == null ? '—' : `${Math.round(r.resilience)} %`;
    const tr = row(r.id, r.kind || 'experiment', r.title || '—', r.source, r.status, passed, resilience,
      plainDate(r.started), r.command ? [h('code', null, r.command), ' ', copyButton(r.command)] : '—');
    tr.className = `clickable ${r.passed === false ? 'failed' : ''}`;
    tr.addEventListener('click', () => {
      details.hidden = !details.hidden;
      if (details.hidden) runsOpen.delete(r.id);
      else { runsOpen.add(r.id); runDetails(r, cell); }
    });
    rows.push(tr, details);
  }
  table($('runs-table'), RUN_FIELDS, rows,
    'No run yet: Chaos Toolkit experiments, Chaos Mesh runs and campaign runs — from the CLI or over HTTP — are kept in the execution store and listed here.');
}

// ---------------------------------------------------------------- start

// setup: once, on first show; render: on every show (and time change); refresh: live, every 5 s
// (render when absent); onState: each live state.
const pages = {
  pipeline: {
    setup: setupPipeline, render: renderPipeline, onState: onPipelineState,
    refresh: () => (pipe.selected ? renderComponent() : null),
  },
  faults: { setup: setupFaults, render: renderFaults, onState: onFaultsState },
  experiments: { setup: setupExperiments, render: renderExperiments, refresh: renderWorkflowGraphs },
  timeline: { setup: setupTimeline, render: renderTimeline },
  incidents: { setup: setupGraph, render: renderIncidents },
  data: { setup: setupData, render: renderData, refresh: () => ($('data-index').value ? searchData() : renderData()) },
  runs: { render: renderRuns },
};

async function main() {
  $('error-close').addEventListener('click', clearError);
  $('command-copy').addEventListener('click', (ev) => run(copyText, $('command').textContent, ev.currentTarget));
  window.addEventListener('hashchange', () => { clearError(); route(); });
  try {
    app.session = await api('GET', '/ui/api/session');
  } catch (e) {
    showError(`cannot load the session: ${e.message}`);
    app.session = { mode: 'live', authenticated: false, actions: false, run: { command: '' }, start_ms: 0, end_ms: null, now_ms: 0 };
  }
  app.live = app.session.mode !== 'replay';
  app.actions = !!app.session.actions;
  renderHeader();
  if (app.live) {
    setClock(app.session.now_ms || 0);
    startLive();
  } else {
    setupReplay();
  }
  route();
}

run(main);
