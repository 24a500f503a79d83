// SPDX-License-Identifier: MIT
// The web view of a disagg cluster (docs/webview.md). Plain JavaScript, no
// library: it reads the orchestrator's API (docs/api.md) with the people
// token, follows GET /v1/events as a long poll, and refreshes its views on
// every event and every few seconds. Actions go to the endpoints the CLI
// uses and show the server's error as the CLI does.
'use strict';

const TOKEN_KEY = 'disagg.token';
const REFRESH_MS = 5000;     // nodes, slots, sections: also without events
const PAGER_MS = 2000;       // the selected slot's pager counters
const PAGER_KEEP = 150;      // samples kept: 5 minutes
const CONSOLE_MS = 5000;
const EVENTS_KEEP = 200;

const st = {
  token: null,
  nodes: [], slots: [], details: {}, sections: [],
  selected: null, pager: [], resizeFor: null, deleting: new Set(),
  since: 0, polling: false, refreshTimer: null, refreshing: false, again: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}

// Re-render box with render(), keeping the keyboard focus on the element
// with the same data-key (rows and cells are rebuilt on every refresh).
function keepFocus(box, render) {
  const a = document.activeElement;
  const key = a && box.contains(a) ? a.dataset.key : null;
  render();
  if (key) {
    const n = [...box.querySelectorAll('[data-key]')].find((x) => x.dataset.key === key);
    if (n) n.focus({ preventScroll: true });
  }
}

// ---- API ------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    // The CLI's words (src/cli/client.c cli_server_error).
    super(code ? `error: ${message} (${status} ${code})` : message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: 'Bearer ' + st.token }, cache: 'no-store' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, null, 'error: cannot reach the orchestrator: ' + e.message);
  }
  const text = await r.text();
  let j = null;
  try { j = text ? JSON.parse(text) : null; } catch (e) { j = null; }
  if (!r.ok) {
    if (r.status === 401) logout('the orchestrator refused the token');
    const e = j && j.error;
    if (e) throw new ApiError(r.status, e.code || 'error', e.message || '');
    throw new ApiError(r.status, null,
      `error: the orchestrator answered ${r.status}` + (text ? ': ' + text.slice(0, 200) : ''));
  }
  return j === null ? text : j;
}

// ---- formatting -------------------------------------------------------------

function size(b) {
  if (b === null || b === undefined) return '–';
  const u = ['B', 'K', 'M', 'G', 'T'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1 && b % 1024 === 0) { b /= 1024; i++; }
  return b + u[i];
}

function ago(iso) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}

function hue(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function slotColor(name) { return `hsl(${hue(name)} 65% 55%)`; }

function nodeName(id) {
  const n = st.nodes.find((x) => x.node_id === id);
  return n ? `${n.name} (${id})` : String(id);
}

function flash(msg, ok) {
  const f = $('flash');
  f.textContent = msg;
  f.className = ok ? 'flash ok' : 'flash error';
  f.hidden = false;
}

function setConn(text, good) {
  $('conn').textContent = text;
  $('conn').className = good ? 'conn good' : 'conn bad';
}

// ---- cluster view ---------------------------------------------------------

function bar(label, used, total) {
  const pct = total > 0 ? Math.min(100, Math.round(100 * used / total)) : 0;
  const fill = el('span', { class: 'fill' });
  fill.style.width = pct + '%';
  return el('div', { class: 'barrow' },
    el('span', { class: 'barlabel', text: label }),
    el('span', { class: 'bar', role: 'meter', 'aria-valuenow': used, 'aria-valuemin': 0,
      'aria-valuemax': total, 'aria-label': label }, fill),
    el('span', { class: 'barval', text: `${used} / ${total}` }));
}

function renderNodes() {
  for (const kind of ['compute', 'memnode', 'devnode']) {
    const box = $('nodes-' + kind);
    const nodes = st.nodes.filter((n) => n.kind === kind);
    box.replaceChildren();
    if (!nodes.length) box.append(el('p', { class: 'muted', text: 'none' }));
    for (const n of nodes) {
      const state = n.state === 'up' && n.drained ? 'drained' : n.state;
      const card = el('article', { class: 'node', 'data-node': n.node_id, 'data-kind': kind },
        el('header', {},
          el('strong', { text: n.name }), ' ',
          el('span', { class: 'muted', text: '#' + n.node_id }), ' ',
          el('span', { class: 'state s-' + state, text: state })));
      if (kind === 'compute') {
        card.append(bar('vCPUs', n.vcpus_used || 0, n.vcpus || 0));
        const slots = st.slots.filter((s) => s.compute === n.node_id).map((s) => s.name);
        card.append(el('div', { class: 'small', text: 'slots: ' + (slots.join(', ') || 'none') }));
      } else if (kind === 'memnode') {
        const tot = n.sections_total || 0;
        card.append(bar('sections', tot - (n.sections_free || 0), tot));
        card.append(el('div', { class: 'small',
          text: `${size(tot * (n.section_size || 0))} in ${size(n.section_size || 0)} sections` }));
      } else {
        card.append(el('div', { class: 'small',
          text: `volumes: ${n.volumes ?? n.catalog_volumes ?? 0}, ` +
            `${size(n.volume_bytes_allocated ?? n.catalog_bytes ?? 0)} allocated` }));
      }
      card.append(el('div', { class: 'small muted', text: 'last seen ' + ago(n.last_heartbeat),
        title: n.last_heartbeat || '' }));
      box.append(card);
    }
  }
}

// ---- memory map -------------------------------------------------------------

function cell(label, slot, info, extra) {
  const b = el('button', Object.assign({ type: 'button', class: 'cell' + (slot ? '' : ' free'),
    title: info, 'aria-label': info, text: label }, extra || {}));
  if (slot) b.style.backgroundColor = slotColor(slot);
  const show = () => { $('cellinfo').textContent = info; };
  b.addEventListener('mouseenter', show);
  b.addEventListener('focus', show);
  b.addEventListener('click', () => { show(); if (slot && st.details[slot]) select(slot); });
  return b;
}

function renderMap() {
  keepFocus($('memmap'), drawMap);
}

function drawMap() {
  const mm = $('map-memnodes');
  mm.replaceChildren();
  const by = new Map();
  for (const s of st.sections) by.set(`${s.memnode}/${s.section}`, s);
  for (const n of st.nodes.filter((x) => x.kind === 'memnode')) {
    const row = el('div', { class: 'maprow', 'data-memnode': n.node_id },
      el('span', { class: 'maplabel', text: n.name }));
    const cells = el('div', { class: 'cells' });
    for (let i = 0; i < (n.sections_total || 0); i++) {
      const s = by.get(`${n.node_id}/${i}`);
      let info = `${n.name} section ${i}: free`;
      if (s) {
        const owner = s.slot ? `slot ${s.slot}` : `region ${s.region}`;
        info = `${n.name} section ${i}: ${owner}, its section ${s.index}` +
          (s.replica ? ` (replica ${s.replica})` : '');
      }
      cells.append(cell(s ? String(s.index) : '', s ? (s.slot || s.region) : null, info,
        { 'data-section': i, 'data-slot': s ? (s.slot || '') : null,
          'data-key': `m/${n.node_id}/${i}` }));
    }
    row.append(cells);
    mm.append(row);
  }
  if (!mm.children.length) mm.append(el('p', { class: 'muted', text: 'no memory nodes' }));

  const ms = $('map-slots');
  ms.replaceChildren();
  for (const s of st.slots) {
    const d = st.details[s.name];
    const row = el('div', { class: 'maprow', 'data-slot': s.name },
      el('span', { class: 'maplabel', text: s.name }));
    const cells = el('div', { class: 'cells' });
    for (const x of (d && d.sections) || []) {
      const where = x.kind === 'remote' ? `${nodeName(x.memnode)} section ${x.section}`
        : `local on ${nodeName(d.compute)}`;
      const b = cell(x.kind === 'remote' ? 'R' : 'L', s.name,
        `slot ${s.name} section ${x.index}: ${where}`,
        { 'data-index': x.index, 'data-kind': x.kind, 'data-memnode': x.memnode ?? null,
          'data-key': `s/${s.name}/${x.index}` });
      if (x.kind !== 'remote') b.classList.add('local');
      cells.append(b);
    }
    row.append(cells);
    ms.append(row);
  }
  if (!ms.children.length) ms.append(el('p', { class: 'muted', text: 'no slots' }));
}

// ---- slots --------------------------------------------------------------------

function renderSlots() {
  keepFocus($('slot-table'), drawSlots);
  $('no-slots').hidden = st.slots.length > 0;
  renderDetail();
}

function drawSlots() {
  const tb = $('slot-table').tBodies[0];
  tb.replaceChildren();
  for (const s of st.slots) {
    const d = st.details[s.name] || s;
    const tr = el('tr', { 'data-slot': s.name, 'data-compute': d.compute, tabindex: 0,
      'data-key': s.name,
      class: st.selected === s.name ? 'sel' : null, 'aria-selected': st.selected === s.name },
      el('td', {}, el('span', { class: 'swatch' }), s.name),
      el('td', { class: 'state-cell' }, el('span', { class: 'state s-' + d.state, text: d.state })),
      el('td', { text: String(d.vcpus) }),
      el('td', { text: size(d.memory) }),
      el('td', { text: d.remote_percent === undefined ? '–' : d.remote_percent + '%' }),
      el('td', { text: d.cache ? size(d.cache) : 'no limit' }),
      el('td', { class: 'compute', text: nodeName(d.compute) }));
    tr.querySelector('.swatch').style.backgroundColor = slotColor(s.name);
    tr.addEventListener('click', () => select(s.name));
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(s.name); } });
    tb.append(tr);
  }
}

function options(sel, nodes, keep) {
  const old = sel.value;
  sel.replaceChildren(...nodes.map((n) => el('option', { value: n.node_id, text: nodeName(n.node_id) })));
  if (keep && nodes.some((n) => String(n.node_id) === old)) sel.value = old;
}

function renderDetail() {
  const d = st.selected && st.details[st.selected];
  $('slot-detail').hidden = !d;
  if (!d) return;
  $('sd-title').textContent = 'Slot ' + d.name;
  const remote = (d.sections || []).filter((x) => x.kind === 'remote').length;
  const facts = [
    ['State', d.state + (d.reason ? ` (${d.reason})` : '')],
    ['vCPUs', d.vcpus], ['Memory', size(d.memory)],
    ['Remote share', `${d.remote_percent}% (${remote} of ${(d.sections || []).length} sections)`],
    ['Cache budget', d.cache ? size(d.cache) : 'no limit'],
    ['Compute node', nodeName(d.compute)],
  ];
  if (d.migration) facts.push(['Migration', `${d.migration.kind} ${d.migration.from ?? ''} → ${d.migration.to ?? ''}`]);
  $('sd-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v), 'data-fact': k })]));
  const computes = st.nodes.filter((n) => n.kind === 'compute' && n.node_id !== d.compute);
  options($('sd-migrate'), computes, true);
  const used = [...new Set((d.sections || []).filter((x) => x.kind === 'remote').map((x) => x.memnode))];
  options($('sd-mm-from'), st.nodes.filter((n) => used.includes(n.node_id)), true);
  options($('sd-mm-to'), st.nodes.filter((n) => n.kind === 'memnode'), true);
  if ($('sd-mm-to').value === $('sd-mm-from').value) {
    const other = st.nodes.find((n) => n.kind === 'memnode' && String(n.node_id) !== $('sd-mm-from').value);
    if (other) $('sd-mm-to').value = String(other.node_id);
  }
  // The size box follows the slot's memory when it changes, never while it is being edited.
  if (st.resizeFor !== d.name + '/' + d.memory && document.activeElement !== $('sd-resize')) {
    $('sd-resize').value = size(d.memory);
    st.resizeFor = d.name + '/' + d.memory;
  }
}

function select(name) {
  if (st.selected !== name) {
    st.selected = name;
    st.pager = [];
    $('console').textContent = '';
    renderCharts();
  }
  renderSlots();
  pollPager();
  pollConsole();
  $('slot-detail').scrollIntoView({ block: 'nearest' });
}

// ---- pager charts and console ----------------------------------------------------

const CHARTS = [
  ['faults/s', (a, b, dt) => (b.faults - a.faults) / dt],
  ['fetched pages/s', (a, b, dt) => (b.pages_fetched - a.pages_fetched) / dt],
  ['written-back pages/s', (a, b, dt) => (b.pages_written_back - a.pages_written_back) / dt],
  ['resident pages', (a, b) => b.resident_pages],
  ['dirty pages', (a, b) => b.dirty_pages],
];

function series(f) {
  const out = [];
  for (let i = 1; i < st.pager.length; i++) {
    const a = st.pager[i - 1], b = st.pager[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0 || b.compute !== a.compute) continue;   // counters start anew on a move
    const v = f(a.p, b.p, dt);
    if (Number.isFinite(v) && v >= 0) out.push([b.t, v]);
  }
  return out;
}

function chart(title, pts) {
  const W = 200, H = 48, NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  const last = pts.length ? pts[pts.length - 1][1] : null;
  svg.setAttribute('aria-label', `${title}: ${last === null ? 'no data' : Math.round(last)}`);
  const max = Math.max(1, ...pts.map((p) => p[1]));
  if (pts.length > 1) {
    const t1 = pts[pts.length - 1][0], t0 = Math.min(pts[0][0], t1 - 60000);
    const line = document.createElementNS(NS, 'polyline');
    line.setAttribute('points', pts.map(([t, v]) =>
      `${((t - t0) / (t1 - t0) * W).toFixed(1)},${(H - 2 - v / max * (H - 4)).toFixed(1)}`).join(' '));
    line.setAttribute('class', 'line');
    svg.append(line);
  }
  return el('figure', { class: 'chart' }, svg,
    el('figcaption', {}, el('span', { text: title }), ' ',
      el('span', {}, el('strong', { text: last === null ? '–' : String(Math.round(last)) }),
        el('span', { class: 'muted', text: pts.length ? ` (max ${Math.round(max)})` : '' }))));
}

function renderCharts() {
  $('charts').replaceChildren(...CHARTS.map(([t, f]) => chart(t, series(f))));
}

function live(d) { return d && (d.state === 'running' || d.state === 'degraded'); }

// A slot being deleted from this page: its pager and console stop answering (503) while
// its VM stops, so they are not polled (a failed request is an error in the console).
function going(name) { return st.deleting.has(name); }

async function pollPager() {
  const name = st.selected, d = name && st.details[name];
  if (going(name)) { $('pager-note').textContent = '(slot being deleted)'; return; }
  if (!live(d)) { $('pager-note').textContent = d ? `(slot ${d.state})` : ''; return; }
  try {
    const r = await api('GET', `/v1/slots/${encodeURIComponent(name)}/pager`);
    if (st.selected !== name) return;
    if (!r.pager) { $('pager-note').textContent = '(no pager: all memory local)'; return; }
    $('pager-note').textContent = `(on ${nodeName(r.compute)}, ${r.pager.mode})`;
    st.pager.push({ t: r.time_ms, compute: r.compute, p: r.pager });
    if (st.pager.length > PAGER_KEEP) st.pager.shift();
    renderCharts();
  } catch (e) {
    $('pager-note').textContent = '(' + e.message + ')';
  }
}

async function pollConsole() {
  const name = st.selected, d = name && st.details[name];
  if (!live(d) || going(name)) return;
  try {
    const text = await api('GET', `/v1/slots/${encodeURIComponent(name)}/console`);
    if (st.selected !== name) return;
    const lines = String(text).replace(/\r/g, '').split('\n');
    const c = $('console');
    const atEnd = c.scrollTop + c.clientHeight >= c.scrollHeight - 4;
    c.textContent = lines.slice(-40).join('\n');
    if (atEnd) c.scrollTop = c.scrollHeight;
  } catch (e) {
    $('console').textContent = e.message;
  }
}

// ---- refresh and events ---------------------------------------------------------

async function refresh() {
  if (st.refreshing) { st.again = true; return; }
  st.refreshing = true;
  try {
    const [nodes, slots, secs] = await Promise.all([
      api('GET', '/v1/nodes'), api('GET', '/v1/slots'), api('GET', '/v1/sections')]);
    st.nodes = nodes.nodes || [];
    st.slots = (slots.slots || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    st.sections = secs.sections || [];
    const details = {};
    await Promise.all(st.slots.map(async (s) => {
      try {
        details[s.name] = await api('GET', '/v1/slots/' + encodeURIComponent(s.name));
      } catch (e) {
        details[s.name] = s;
      }
    }));
    st.details = details;
    if (st.selected && !details[st.selected]) st.selected = null;
    renderNodes();
    renderMap();
    renderSlots();
    setConn('connected', true);
  } catch (e) {
    setConn(e.message, false);
  } finally {
    st.refreshing = false;
    if (st.again) { st.again = false; refresh(); }
  }
}

function scheduleRefresh() {
  clearTimeout(st.refreshTimer);
  st.refreshTimer = setTimeout(refresh, 50);
}

function addEvent(ev) {
  const list = $('event-list');
  const li = el('li', { 'data-seq': ev.seq, 'data-kind': ev.kind, 'data-slot': ev.slot || null,
    'data-received': Date.now() },
    el('time', { datetime: ev.time, text: ev.time.replace('T', ' ').replace('Z', '') }), ' ',
    el('span', { class: 'kind', text: ev.kind }), ' ',
    el('span', { text: ev.message }));
  list.prepend(li);
  while (list.children.length > EVENTS_KEEP) list.lastChild.remove();
}

async function pollEvents() {
  if (st.polling) return;
  st.polling = true;
  // The newest events first: the list starts with the last page of the log.
  let first = true;
  while (st.token) {
    try {
      const wait = first ? 0 : 25;
      const r = await api('GET', `/v1/events?since=${st.since}&limit=1000&wait=${wait}`);
      const evs = r.events || [];
      if (first && evs.length === 1000) { st.since = evs[evs.length - 1].seq; continue; }
      for (const ev of evs) {
        addEvent(ev);
        st.since = Math.max(st.since, ev.seq);
      }
      if (evs.length && !first) scheduleRefresh();
      first = false;
    } catch (e) {
      if (!st.token) break;
      setConn(e.message, false);
      await new Promise((res) => setTimeout(res, 2000));
    }
  }
  st.polling = false;
}

// ---- actions ------------------------------------------------------------------------

function confirmAction(text) {
  return new Promise((resolve) => {
    const dlg = $('confirm');
    $('confirm-text').textContent = text;
    const done = (v) => {
      $('confirm-ok').onclick = $('confirm-cancel').onclick = dlg.oncancel = null;
      if (dlg.open) dlg.close();
      resolve(v);
    };
    $('confirm-ok').onclick = () => done(true);
    $('confirm-cancel').onclick = () => done(false);
    dlg.oncancel = (e) => { e.preventDefault(); done(false); };
    dlg.showModal();
    $('confirm-ok').focus();
  });
}

async function act(text, method, path, body, okText, onConfirmed) {
  if (!(await confirmAction(text))) return false;
  if (onConfirmed) onConfirmed();
  flash(text.replace(/\?$/, '') + ' …', true);
  try {
    await api(method, path, body);
    flash(okText, true);
    return true;
  } catch (e) {
    flash(e.message, false);
    return false;
  } finally {
    refresh();
  }
}

function wireActions() {
  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { name: $('c-name').value.trim(), vcpus: Number($('c-vcpus').value),
      memory: $('c-memory').value.trim() };
    if ($('c-remote').value !== '') body.remote_percent = Number($('c-remote').value);
    if ($('c-cache').value.trim()) body.cache = $('c-cache').value.trim();
    if (await act(`Create slot ${body.name} (${body.vcpus} vCPU, ${body.memory})?`, 'POST',
      '/v1/slots', body, `slot ${body.name} created`)) select(body.name);
  });
  $('resize-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = st.selected, m = $('sd-resize').value.trim();
    await act(`Resize slot ${n} to ${m}?`, 'POST', `/v1/slots/${encodeURIComponent(n)}/resize`,
      { memory: m }, `slot ${n} resized to ${m}`);
  });
  $('migrate-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = st.selected, to = Number($('sd-migrate').value);
    await act(`Migrate slot ${n} to compute node ${nodeName(to)}?`, 'POST',
      `/v1/slots/${encodeURIComponent(n)}/migrate`, { to, prefetch: true },
      `slot ${n} moved to ${nodeName(to)}`);
  });
  $('migmem-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = st.selected, from = Number($('sd-mm-from').value), to = Number($('sd-mm-to').value);
    await act(`Migrate the memory of slot ${n} from ${nodeName(from)} to ${nodeName(to)}?`, 'POST',
      `/v1/slots/${encodeURIComponent(n)}/migrate-memory`, { from, to },
      `memory of slot ${n} moved from ${nodeName(from)} to ${nodeName(to)}`);
  });
  $('sd-delete').addEventListener('click', async () => {
    const n = st.selected;
    const ok = await act(`Delete slot ${n}? Its VM stops and its memory is freed.`, 'DELETE',
      `/v1/slots/${encodeURIComponent(n)}`, undefined, `slot ${n} deleted`,
      () => st.deleting.add(n));
    st.deleting.delete(n);
    if (ok) st.selected = null;
  });
}

// ---- log in --------------------------------------------------------------------------

function logout(why) {
  st.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = why || '';
  setConn('not connected', false);
  $('token').focus();
}

function start(token) {
  st.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  refresh();
  pollEvents();
}

// A token in the address's fragment (never sent to the server): taken, and
// removed from the address bar.
function tokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return null;
  history.replaceState(null, '', location.pathname + location.search);
  return decodeURIComponent(m[1]);
}

function init() {
  const fromUrl = tokenFromFragment();
  if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
  window.addEventListener('hashchange', () => {
    const t = tokenFromFragment();
    if (t) start(t);
  });
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    $('token').value = '';
    if (t) start(t);
  });
  $('logout').addEventListener('click', () => logout(''));
  wireActions();
  setInterval(() => { if (st.token) refresh(); }, REFRESH_MS);
  setInterval(() => { if (st.token) pollPager(); }, PAGER_MS);
  setInterval(() => { if (st.token) pollConsole(); }, CONSOLE_MS);
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) start(saved); else logout('');
}

document.addEventListener('DOMContentLoaded', init);
