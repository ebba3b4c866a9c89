// The order system's dashboard: plain JavaScript, no framework and no build step. It talks to
// the web front's `/api` routes only; each page is a function that fills `#view` and returns
// what to stop when the page is left (timers, event streams).
'use strict';

// ---------------------------------------------------------------------------------------
// Small helpers.

/** An element: `h('td', {class: 'num'}, 'text', child, ...)`. Text is never parsed as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** Where the admin token the user entered is kept (this tab only, never sent elsewhere). */
const ADMIN_TOKEN_KEY = 'saga-admin-token';

/**
 * Calls the HTTP API: `{status, ok, data}`, `data` the JSON body (a problem document on errors).
 * An admin action answered 401 (the system runs with `--admin-token`) asks for the token once,
 * keeps it for this tab and sends the request again with `Authorization: Bearer <token>`.
 */
async function api(method, path, body, retried) {
  const init = { method, headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const token = sessionStorage.getItem(ADMIN_TOKEN_KEY);
  if (token) init.headers.authorization = 'Bearer ' + token;
  let response;
  try {
    response = await fetch('/api' + path, init);
  } catch (e) {
    return { status: 0, ok: false, data: { detail: 'the web front did not answer: ' + e.message } };
  }
  let data = null;
  const type = response.headers.get('content-type') || '';
  if (type.includes('json')) {
    try { data = await response.json(); } catch (_) { data = null; }
  }
  if (response.status === 401 && !retried) {
    const entered = window.prompt('This action needs the admin token the system was started with (--admin-token):');
    if (entered && entered.trim()) {
      sessionStorage.setItem(ADMIN_TOKEN_KEY, entered.trim());
      return api(method, path, body, true);
    }
  }
  if (response.status === 401) sessionStorage.removeItem(ADMIN_TOKEN_KEY);
  return { status: response.status, ok: response.ok, data };
}

/** Whether an answer says the route does not exist (yet) in this build. */
function routeMissing(r) {
  if (r.status === 405 || r.status === 501) return true;
  return r.status === 404 && !!r.data && typeof r.data.detail === 'string' && r.data.detail.startsWith('route ');
}

function problemText(r) {
  if (r.data && r.data.detail) {
    const fields = (r.data.errors || []).map((e) => `${e.field}: ${e.message}`);
    return fields.length > 1 ? `${r.data.detail} (${fields.join('; ')})` : r.data.detail;
  }
  return `HTTP ${r.status}`;
}

function newUuid() {
  if (window.crypto && crypto.randomUUID && window.isSecureContext) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const money = (n) => '$' + Number(n || 0).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const cents = (n) => Math.round(Number(n) * 100);
const pct = (x) => (x === null || x === undefined ? '–' : (x * 100).toFixed(1) + ' %');
/** An id made short: UUIDs v7 of one moment share their first digits, so both ends show. */
const shortId = (id) => { const t = String(id); return t.length > 16 ? `${t.slice(0, 8)}…${t.slice(-6)}` : t; };
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '–');
const clock = (iso) => {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
};
function elapsed(ms) {
  if (ms < 1000) return `+${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60000) return `+${(ms / 1000).toFixed(2)} s`;
  return `+${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}
const label = (text) => String(text).replace(/_/g, ' ');
function badge(status, text) {
  return h('span', { class: `badge ${status}` }, text || label(status));
}

let toastTimer = null;
function toast(text) {
  document.querySelectorAll('.toast').forEach((t) => t.remove());
  const t = h('div', { class: 'toast', role: 'status' }, text);
  document.body.append(t);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.remove(), 4000);
}

/** Asks before doing something that cannot be undone; resolves to true on "Confirm". */
function confirmDialog(title, text, action) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = action;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

/** What a page started: stopped when the page is left. */
class Scope {
  constructor() { this.stops = []; this.closed = false; }
  every(fn, ms) { fn(); const t = setInterval(fn, ms); this.stops.push(() => clearInterval(t)); }
  later(fn, ms) { const t = setTimeout(fn, ms); this.stops.push(() => clearTimeout(t)); }
  on(stop) { this.stops.push(stop); }
  close() { this.closed = true; this.stops.forEach((f) => f()); this.stops = []; }
}

let catalog = null;
/** The products, fetched once a page needs them. */
async function products() {
  if (!catalog) {
    const r = await api('GET', '/products');
    if (!r.ok) throw new Error(problemText(r));
    catalog = r.data;
  }
  return catalog;
}
const productName = (id) => (catalog && (catalog.find((p) => p.id === id) || {}).name) || id;

function customerId() {
  let id = localStorage.getItem('customer_id');
  if (!id || !UUID_RE.test(id)) {
    id = newUuid();
    localStorage.setItem('customer_id', id);
  }
  return id;
}

/** A generic view of a JSON document (for routes whose shape the dashboard does not know). */
function jsonView(value, depth = 0) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '–');
  if (typeof value !== 'object') return String(value);
  if (depth > 2) return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
  if (Array.isArray(value)) {
    if (value.length === 0) return h('span', { class: 'muted' }, 'none');
    const keys = [...new Set(value.flatMap((v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v) : [])))];
    if (keys.length > 0 && keys.length <= 8 && value.every((v) => v && typeof v === 'object' && !Array.isArray(v))) {
      return h('table', {},
        h('thead', {}, h('tr', {}, keys.map((k) => h('th', {}, label(k))))),
        h('tbody', {}, value.slice(0, 50).map((v) => h('tr', {}, keys.map((k) => h('td', {}, jsonView(v[k], depth + 1)))))));
    }
    return h('ul', {}, value.slice(0, 50).map((v) => h('li', {}, jsonView(v, depth + 1))));
  }
  return h('dl', { class: 'facts' }, Object.entries(value).map(([k, v]) => [h('dt', {}, label(k)), h('dd', {}, jsonView(v, depth + 1))]));
}

// ---------------------------------------------------------------------------------------
// Charts: inline SVG.

/** A round step for about four grid lines up to `v`: 1, 2 or 5 times a power of ten. */
function niceStep(v) {
  if (!(v > 0)) return 1;
  const raw = v / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/**
 * A chart of per-minute series: `labels` on x, each series `{name, values, color, kind}` with
 * kind `bar` or `line`; values may be null (no point).
 */
function chart({ labels, series, yFormat = (v) => String(v), yMax, integer = false, height = 190 }) {
  const W = 600, H = height, L = 52, R = 10, T = 10, B = 26;
  const all = series.flatMap((x) => x.values).filter((v) => v !== null && v !== undefined);
  const step = yMax ? yMax / 4 : Math.max(integer ? 1 : 0, niceStep(Math.max(0, ...all)));
  const max = yMax || step * Math.max(1, Math.ceil(Math.max(0, ...all) / step));
  const n = Math.max(1, labels.length);
  const slot = (W - L - R) / n;
  const x = (i) => L + slot * (i + 0.5);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img' });
  for (let k = 0; k * step <= max + step / 1000; k++) {
    const v = k * step;
    svg.append(s('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    svg.append(s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, yFormat(v)));
  }
  svg.append(s('line', { class: 'axis', x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  const every = Math.max(1, Math.ceil(n / 8));
  labels.forEach((l, i) => {
    if ((n - 1 - i) % every === 0) svg.append(s('text', { x: x(i), y: H - 8, 'text-anchor': 'middle' }, l));
  });
  const bars = series.filter((x) => x.kind === 'bar');
  const bw = Math.max(1, (slot * 0.8) / Math.max(1, bars.length));
  bars.forEach((sr, j) => {
    sr.values.forEach((v, i) => {
      if (!v) return;
      const left = x(i) - (bw * bars.length) / 2 + j * bw;
      svg.append(s('rect', { x: left, y: y(v), width: bw, height: y(0) - y(v), fill: sr.color, rx: 1 },
        s('title', {}, `${labels[i]} ${sr.name}: ${yFormat(v)}`)));
    });
  });
  for (const sr of series.filter((x) => x.kind === 'line')) {
    let path = [];
    const flush = () => {
      if (path.length > 1) svg.append(s('polyline', { points: path.join(' '), fill: 'none', stroke: sr.color, 'stroke-width': 2 }));
      path = [];
    };
    sr.values.forEach((v, i) => {
      if (v === null || v === undefined) { flush(); return; }
      path.push(`${x(i)},${y(v)}`);
      svg.append(s('circle', { cx: x(i), cy: y(v), r: 2.6, fill: sr.color }, s('title', {}, `${labels[i]} ${sr.name}: ${yFormat(v)}`)));
    });
    flush();
  }
  const legend = h('div', { class: 'legend' }, series.map((sr) => h('span', { style: `--c: ${sr.color}` }, sr.name)));
  return h('div', {}, svg, legend);
}

// ---------------------------------------------------------------------------------------
// Page: new order.

function newOrderPage(view, _params, scope) {
  const message = h('div', { id: 'order-error' });
  const risk = h('div', { id: 'risk' });
  const rows = h('tbody');
  const total = h('strong', { id: 'order-total' }, money(0));
  const field = (id, text, value, attrs) => h('label', {}, text, h('input', Object.assign({ id, value }, attrs || {})));
  const customer = field('customer-id', 'Customer id', customerId(), { size: 38, pattern: UUID_RE.source });
  const form = h('form', { id: 'new-order', class: 'panel', onsubmit: (e) => { e.preventDefault(); place(); } },
    h('h2', {}, 'Products'),
    h('table', { id: 'products' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Product'), h('th', { class: 'num' }, 'Price'), h('th', { class: 'num' }, 'In stock'), h('th', { class: 'num' }, 'Reserved'), h('th', { class: 'num' }, 'Quantity'))),
      rows),
    h('p', {}, 'Total: ', total),
    h('h2', {}, 'Customer and shipping'),
    h('div', { class: 'row' },
      customer,
      h('button', { type: 'button', onclick: () => { localStorage.removeItem('customer_id'); customer.querySelector('input').value = customerId(); } }, 'New customer')),
    h('div', { class: 'row', style: 'margin-top: .75rem' },
      field('street', 'Street', '123 Main St', { size: 22 }),
      field('city', 'City', 'San Francisco', { size: 16 }),
      field('state', 'State', 'CA', { size: 6 }),
      field('zip', 'Zip', '94102', { size: 8 }),
      h('label', {}, 'Payment method', h('select', { id: 'payment-method' },
        ['credit_card', 'debit_card', 'paypal', 'bank_transfer', 'wallet'].map((m) => h('option', { value: m }, label(m)))))),
    h('p', { class: 'muted small' },
      'Scenarios of the seed: zip 00000 makes shipping fail after the payment (the saga refunds and releases: compensated); ',
      'the Limited Edition Vinyl has 5 in stock, so 6 fail at the reservation; the payment gateway declines a share of charges.'),
    h('div', { class: 'row' },
      h('button', { type: 'submit', id: 'place-order', class: 'primary' }, 'Place order'),
      h('button', { type: 'button', id: 'check-risk', onclick: checkRisk }, 'Check fraud risk first')),
    message, risk);
  view.append(h('h1', {}, 'New order'), form);

  function body() {
    const items = [];
    for (const tr of rows.querySelectorAll('tr[data-product-id]')) {
      const q = Number(tr.querySelector('input').value);
      if (q > 0) items.push({ product_id: tr.dataset.productId, quantity: q, price: Number(tr.dataset.price) });
    }
    const v = (id) => document.getElementById(id).value.trim();
    return {
      customer_id: v('customer-id'),
      items,
      shipping_address: { street: v('street'), city: v('city'), state: v('state'), zip: v('zip') },
      payment_method: { type: v('payment-method') },
    };
  }

  function updateTotal() {
    const c = body().items.reduce((sum, i) => sum + cents(i.price) * i.quantity, 0);
    total.textContent = money(c / 100);
  }

  /** The form's order, or null (and a word in `into`) when no product is picked. */
  function chosen(into) {
    const b = body();
    into.replaceChildren();
    if (b.items.length > 0) return b;
    into.append(h('p', { class: 'notice error' }, 'Pick at least one product.'));
    return null;
  }

  async function place() {
    const b = chosen(message);
    if (!b) return;
    const button = document.getElementById('place-order');
    button.disabled = true;
    const r = await api('POST', '/orders', b);
    button.disabled = false;
    if (r.status === 201) {
      localStorage.setItem('customer_id', b.customer_id);
      location.hash = `#/orders/${r.data.id}`;
      return;
    }
    message.append(h('div', { class: 'notice error' }, h('strong', {}, (r.data && r.data.title) || 'Not placed'), ': ', problemText(r),
      r.data && r.data.errors && r.data.errors.length > 1 ? h('ul', {}, r.data.errors.map((e) => h('li', {}, `${e.field}: ${e.message}`))) : null));
  }

  async function checkRisk() {
    const b = chosen(risk);
    if (!b) return;
    const r = await api('POST', '/fraud/check', b);
    if (routeMissing(r)) risk.append(h('p', { class: 'unavailable' }, 'Fraud screening is not available in this build.'));
    else if (!r.ok) risk.append(h('p', { class: 'notice error' }, problemText(r)));
    else risk.append(h('div', { class: 'panel' }, h('h3', {}, 'Fraud screening (nothing placed)'), assessmentView(r.data)));
  }

  products().then((list) => {
    if (scope.closed) return;
    for (const p of list) {
      const qty = h('input', { type: 'number', min: 0, max: 10000, value: 0, name: 'quantity', 'aria-label': `Quantity of ${p.name}`, oninput: updateTotal });
      rows.append(h('tr', { dataset: { productId: p.id, productName: p.name, price: p.price } },
        h('td', {}, h('strong', {}, p.name), h('div', { class: 'muted small' }, p.description)),
        h('td', { class: 'num' }, money(p.price)),
        h('td', { class: 'num' }, p.available_quantity),
        h('td', { class: 'num' }, p.reserved_quantity),
        h('td', { class: 'num' }, qty)));
    }
  }).catch((e) => message.append(h('p', { class: 'notice error' }, 'The catalog did not load: ' + e.message)));
}

// ---------------------------------------------------------------------------------------
// Page: one order, its saga live.

const STEPS = [
  ['fraud_screening', 'Fraud screening'],
  ['reserve_inventory', 'Reserve inventory'],
  ['process_payment', 'Process payment'],
  ['schedule_shipping', 'Schedule shipping'],
];

/** Lines of one instant in the order a reader expects. */
const STATUS_RANK = { placed: 0, started: 1, completed: 2, failed: 2, compensating: 3, compensated: 4, confirmed: 5, cancelled: 5, dispatched: 6, delivered: 7 };

const OUTCOMES = {
  completed: ['✓', 'Completed', 'Every step succeeded: the order is paid and its shipping scheduled.'],
  compensated: ['↺', 'Compensated', 'A step failed after others had succeeded; their effects were undone (refund, stock released). The order is cancelled.'],
  compensating: ['↺', 'Compensating', 'A step failed; the steps done before it are being undone.'],
  failed: ['✗', 'Failed', 'The order was rejected before anything was taken (or what was taken could not be given back).'],
  running: ['●', 'Running', 'The saga is under way: its steps appear below as they happen.'],
};

function orderPage(view, [id], scope) {
  const outcome = h('div', { id: 'outcome', class: 'outcome running', dataset: { state: 'running' } });
  const steps = h('div', { class: 'steps', id: 'steps' });
  const timeline = h('ol', { class: 'timeline', id: 'timeline' });
  const streamState = h('span', { id: 'stream-state', class: 'muted small' }, 'connecting…');
  const facts = h('div');
  const panels = {
    reservation: h('div', { id: 'panel-reservation' }, '…'),
    payment: h('div', { id: 'panel-payment' }, '…'),
    shipment: h('div', { id: 'panel-shipment' }, '…'),
    notifications: h('div', { id: 'panel-notifications' }, '…'),
    analysis: h('div', { id: 'panel-analysis' }, '…'),
  };
  view.append(
    h('h1', {}, 'Order ', h('span', { class: 'mono' }, id)),
    outcome,
    h('div', { class: 'grid order' },
      h('div', {},
        h('div', { class: 'panel' }, h('h2', {}, 'Saga ', streamState), steps, timeline)),
      h('div', {},
        h('div', { class: 'panel' }, h('h3', {}, 'Order'), facts),
        h('div', { class: 'panel' }, h('h3', {}, 'AI analysis'), panels.analysis),
        h('div', { class: 'panel' }, h('h3', {}, 'Reservation'), panels.reservation),
        h('div', { class: 'panel' }, h('h3', {}, 'Payment'), panels.payment),
        h('div', { class: 'panel' }, h('h3', {}, 'Shipment'), panels.shipment),
        h('div', { class: 'panel' }, h('h3', {}, 'Notifications'), panels.notifications))));

  const lines = new Map();
  let order = null;
  let ended = null;

  function sorted() {
    return [...lines.values()].sort((a, b) => (a.at - b.at) || ((STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9)));
  }

  function startOf() {
    const placed = [...lines.values()].find((l) => l.event_type === 'order.placed');
    if (placed) return placed.at;
    return order ? new Date(order.created_at).getTime() : 0;
  }

  function renderTimeline() {
    const t0 = startOf();
    timeline.replaceChildren(...sorted().map((l) => {
      const li = h('li', { class: `${l.status}${l.fresh ? ' fresh' : ''}`, dataset: { eventType: l.event_type, status: l.status, step: l.step } },
        h('span', { class: 'when', title: clock(l.created_at) }, elapsed(l.at - t0)),
        h('span', { class: 'step-name' }, label(l.step)),
        h('span', { class: 'status' }, l.status),
        h('span', { class: 'event' }, h('code', {}, l.event_type), l.details ? h('div', { class: 'details' }, l.details) : null));
      l.fresh = false;
      return li;
    }));
  }

  function stepState(step) {
    const mine = sorted().filter((l) => l.step === step);
    if (mine.length === 0) return { state: ended && ended.terminal ? 'skipped' : 'waiting', took: null };
    const last = mine[mine.length - 1];
    const start = mine.find((l) => l.status === 'started');
    const done = mine.find((l) => l.status === 'completed' || l.status === 'failed');
    return { state: last.status, took: start && done ? done.at - start.at : null };
  }

  function renderSteps() {
    steps.replaceChildren(...STEPS.map(([step, name]) => {
      const { state, took } = stepState(step);
      return h('div', { class: `step ${state}`, dataset: { step, state } },
        h('div', { class: 'name' }, name),
        h('div', { class: 'state' }, label(state), took !== null ? ` · ${Math.round(took)} ms` : ''));
    }));
  }

  function currentState() {
    if (ended && ended.terminal) {
      // A saga undone without anything to undo (fraud, no stock) is an order that failed.
      if (ended.saga_status === 'completed') return 'completed';
      if (ended.saga_status === 'compensated' && ended.order.status === 'cancelled') return 'compensated';
      return 'failed';
    }
    if ([...lines.values()].some((l) => l.status === 'compensating')) return 'compensating';
    return 'running';
  }

  function renderOutcome() {
    const state = currentState();
    const [mark, name, text] = OUTCOMES[state];
    const reason = sorted().filter((l) => l.status === 'failed' && l.details).map((l) => l.details.replace(/^(detail|reason): /, ''))[0];
    outcome.className = `outcome ${state}`;
    outcome.dataset.state = state;
    outcome.replaceChildren(
      h('span', { class: 'mark', 'aria-hidden': 'true' }, mark),
      h('div', {}, h('div', { class: 'label', id: 'outcome-label' }, name, order ? ' · order ' : '', order ? badge(order.status) : null),
        h('div', {}, text, reason && state !== 'completed' ? ` Why: ${reason}.` : '')));
  }

  function renderFacts() {
    if (!order) return;
    facts.replaceChildren(h('dl', { class: 'facts' },
      h('dt', {}, 'Status'), h('dd', { id: 'order-status' }, badge(order.status)),
      h('dt', {}, 'Total'), h('dd', {}, money(order.total_amount)),
      h('dt', {}, 'Customer'), h('dd', { class: 'mono' }, h('a', { href: `#/orders?q=${order.customer_id}` }, order.customer_id)),
      h('dt', {}, 'Placed'), h('dd', {}, when(order.created_at)),
      h('dt', {}, 'Ship to'), h('dd', {}, `${order.shipping_address.street}, ${order.shipping_address.city}, ${order.shipping_address.state} ${order.shipping_address.zip}`),
      h('dt', {}, 'Items'), h('dd', {}, h('ul', { class: 'reasons' }, order.items.map((i) => h('li', {}, `${i.quantity} × ${productName(i.product_id)} at ${money(i.price)}`))))));
  }

  function render() {
    renderTimeline();
    renderSteps();
    renderOutcome();
  }

  function add(line, fresh) {
    if (lines.has(line.id)) return false;
    lines.set(line.id, Object.assign(line, { at: new Date(line.created_at).getTime(), fresh }));
    return true;
  }

  let panelTimer = null;
  function refreshPanelsSoon() {
    clearTimeout(panelTimer);
    panelTimer = setTimeout(refreshPanels, 250);
  }
  scope.on(() => clearTimeout(panelTimer));

  async function refreshPanels() {
    const show = async (el, path, none, fn) => {
      const r = await api('GET', path);
      if (scope.closed) return;
      if (r.status === 404 && !routeMissing(r)) el.replaceChildren(h('span', { class: 'muted' }, none));
      else if (routeMissing(r)) el.replaceChildren(h('span', { class: 'unavailable' }, 'not available'));
      else if (!r.ok) el.replaceChildren(h('span', { class: 'notice error' }, problemText(r)));
      else el.replaceChildren(fn(r.data));
    };
    await Promise.all([
      show(panels.reservation, `/reservations/${id}`, 'No reservation yet.', (d) => h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, badge(d.status)),
        h('dt', {}, 'Items'), h('dd', {}, d.items.map((i) => `${i.quantity} × ${productName(i.product_id)}`).join(', ') || '–'),
        d.reason ? [h('dt', {}, 'Reason'), h('dd', {}, d.reason)] : null,
        h('dt', {}, 'Updated'), h('dd', {}, when(d.updated_at)))),
      show(panels.payment, `/transactions/${id}`, 'No charge: the order did not reach the payment.', (d) => h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, badge(d.status)),
        h('dt', {}, 'Amount'), h('dd', {}, money(d.amount)),
        h('dt', {}, 'Method'), h('dd', {}, label(d.payment_method)),
        d.gateway_reference ? [h('dt', {}, 'Gateway ref.'), h('dd', { class: 'mono' }, d.gateway_reference)] : null,
        d.failure_reason ? [h('dt', {}, 'Declined'), h('dd', {}, d.failure_reason)] : null,
        d.refund_id ? [h('dt', {}, 'Refund'), h('dd', { class: 'mono' }, d.refund_id)] : null)),
      show(panels.shipment, `/shipments/${id}`, 'No shipment.', (d) => h('dl', { class: 'facts' },
        h('dt', {}, 'Status'), h('dd', {}, badge(d.status)),
        h('dt', {}, 'Tracking'), h('dd', { class: 'mono' }, d.tracking_number),
        h('dt', {}, 'Carrier'), h('dd', {}, d.carrier))),
      show(panels.notifications, `/notifications/${id}`, 'None.', (list) => (list.length === 0 ? h('span', { class: 'muted' }, 'None yet.')
        : h('ul', { class: 'reasons' }, list.map((n) => h('li', {}, h('strong', {}, n.channel), ` to ${n.recipient}: ${n.message}`))))),
      show(panels.analysis, `/analysis/${id}`, 'Not screened yet.', (d) => assessmentView(d)),
    ]);
  }

  // After a completed saga the carrier's events still come (dispatched, delivered).
  function followDelivery() {
    let polls = 0;
    const poll = async () => {
      if (polls++ > 20 || [...lines.values()].some((l) => l.status === 'delivered')) return;
      const r = await api('GET', `/orders/${id}/saga-logs`);
      if (scope.closed || !r.ok) return;
      let changed = false;
      for (const l of r.data) changed = add(l, true) || changed;
      if (changed) { render(); refreshPanelsSoon(); }
      scope.later(poll, 1500);
    };
    scope.later(poll, 1500);
  }

  function open() {
    const source = new EventSource(`/api/orders/${encodeURIComponent(id)}/events`);
    scope.on(() => source.close());
    source.onopen = () => { streamState.textContent = 'live'; };
    source.addEventListener('log', (e) => {
      if (add(JSON.parse(e.data), true)) {
        render();
        refreshPanelsSoon();
      }
    });
    source.addEventListener('end', (e) => {
      source.close();
      ended = JSON.parse(e.data);
      order = ended.order;
      renderFacts();
      render();
      refreshPanels();
      if (ended.terminal) {
        streamState.textContent = `ended ${ended.saga_status}`;
        if (ended.saga_status === 'completed') followDelivery();
      } else {
        streamState.textContent = 'reconnecting…';
        scope.later(open, 1000);
      }
    });
    source.onerror = () => {
      if (!ended) streamState.textContent = source.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…';
    };
  }

  (async () => {
    if (!UUID_RE.test(id)) {
      view.replaceChildren(h('p', { class: 'notice error' }, `“${id}” is not an order id.`));
      return;
    }
    await products().catch(() => null);
    const r = await api('GET', `/orders/${id}`);
    if (scope.closed) return;
    if (!r.ok) {
      view.replaceChildren(h('h1', {}, 'Order'), h('p', { class: 'notice error', id: 'order-missing' }, problemText(r)));
      return;
    }
    order = r.data;
    renderFacts();
    render();
    refreshPanels();
    open();
  })();
}

const RISK_BADGE = { low: 'completed', medium: 'pending', high: 'compensating', critical: 'failed' };

/** A fraud screening: score, level, reasons, payment-success estimate. */
function assessmentView(d) {
  const score = Number(d.fraud_score);
  const color = score >= 0.8 ? 'var(--bad)' : score >= 0.5 ? 'var(--warn)' : 'var(--ok)';
  return h('div', { class: 'assessment' },
    h('div', { class: 'row' }, h('strong', { class: 'fraud-score' }, `Fraud score ${(score * 100).toFixed(1)} %`),
      badge(RISK_BADGE[d.risk_level] || 'pending', `${d.risk_level} risk`),
      d.decision ? badge(d.decision === 'pass' ? 'confirmed' : 'failed', d.decision === 'pass' ? 'passed' : d.decision) : null),
    h('div', { class: 'gauge', style: 'margin: .4rem 0' }, h('div', { style: `width: ${Math.min(100, score * 100)}%; background: ${color}` })),
    d.reasons && d.reasons.length ? h('ul', { class: 'reasons' }, d.reasons.map((r) => h('li', {}, r))) : h('p', { class: 'muted small' }, 'Nothing raised the score.'),
    h('p', { class: 'small' }, `Payment success estimate: ${pct(d.payment_success_probability)}`),
    h('p', { class: 'muted small' }, d.model));
}

// ---------------------------------------------------------------------------------------
// Page: orders.

const ORDER_STATUSES = ['pending', 'inventory_reserved', 'payment_processing', 'confirmed', 'cancelled', 'failed'];

function ordersPage(view, _params, scope, query) {
  const status = h('select', { id: 'status-filter' }, h('option', { value: '' }, 'any status'), ORDER_STATUSES.map((st) => h('option', { value: st }, label(st))));
  status.value = query.get('status') || '';
  const search = h('input', { id: 'search', type: 'search', size: 40, placeholder: 'order id, customer id, or a part of an id', value: query.get('q') || '' });
  const limit = h('select', { id: 'limit' }, [50, 100, 200, 500].map((n) => h('option', { value: n }, `${n} newest`)));
  limit.value = query.get('limit') || '50';
  const body = h('tbody');
  const note = h('p', { class: 'muted small', id: 'orders-note' });
  const apply = () => {
    const q = new URLSearchParams();
    if (status.value) q.set('status', status.value);
    if (search.value.trim()) q.set('q', search.value.trim());
    if (limit.value !== '50') q.set('limit', limit.value);
    const hash = '#/orders' + (q.toString() ? '?' + q : '');
    if (location.hash !== hash) history.replaceState(null, '', hash);
    load();
  };
  status.onchange = apply;
  limit.onchange = apply;
  search.addEventListener('input', () => { clearTimeout(search.timer); search.timer = setTimeout(apply, 300); });
  view.append(h('h1', {}, 'Orders'),
    h('div', { class: 'panel' },
      h('div', { class: 'row' }, h('label', {}, 'Status', status), h('label', {}, 'Search', search), h('label', {}, 'Show', limit)),
      note,
      h('table', { id: 'orders-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Order'), h('th', {}, 'Status'), h('th', { class: 'num' }, 'Total'), h('th', {}, 'Items'), h('th', {}, 'Customer'), h('th', {}, 'Placed'))),
        body)));

  let loading = false;
  async function load() {
    if (loading) return;
    loading = true;
    try {
      const term = search.value.trim().toLowerCase();
      const params = new URLSearchParams({ limit: limit.value });
      if (status.value) params.set('status', status.value);
      let list = [];
      if (UUID_RE.test(term)) {
        // A whole id: the order of that id, or the orders of that customer.
        const [one, theirs] = await Promise.all([api('GET', `/orders/${term}`), api('GET', `/orders?${params}&customer_id=${term}`)]);
        if (one.ok && (!status.value || one.data.status === status.value)) list.push(one.data);
        if (theirs.ok) list.push(...theirs.data.filter((o) => o.id !== term));
        note.textContent = `Orders with id or customer ${term}.`;
      } else {
        const r = await api('GET', `/orders?${params}`);
        if (!r.ok) { note.textContent = problemText(r); return; }
        list = term ? r.data.filter((o) => o.id.includes(term) || o.customer_id.includes(term)) : r.data;
        note.textContent = term ? `Of the ${r.data.length} newest, those whose id or customer contains “${term}”.` : `The ${r.data.length} newest orders${status.value ? ' of status ' + label(status.value) : ''}.`;
      }
      if (scope.closed) return;
      body.replaceChildren(...list.map((o) => h('tr', { dataset: { orderId: o.id, status: o.status } },
        h('td', {}, h('a', { href: `#/orders/${o.id}`, class: 'mono' }, shortId(o.id))),
        h('td', {}, badge(o.status)),
        h('td', { class: 'num' }, money(o.total_amount)),
        h('td', {}, o.items.map((i) => `${i.quantity} × ${productName(i.product_id)}`).join(', ')),
        h('td', { class: 'mono small' }, h('a', { href: `#/orders?q=${o.customer_id}` }, shortId(o.customer_id))),
        h('td', {}, when(o.created_at)))));
      if (list.length === 0) body.append(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No orders.')));
    } finally {
      loading = false;
    }
  }
  products().catch(() => null).then(() => scope.every(load, 5000));
}

// ---------------------------------------------------------------------------------------
// Page: the system's health and figures.

function systemPage(view, _params, scope, query) {
  const services = h('div', { class: 'services', id: 'services' });
  const kpis = h('div', { class: 'kpis', id: 'kpis' });
  const charts = h('div', { class: 'grid two', id: 'charts' });
  const events = h('div', { id: 'event-stats' });
  const minutes = h('select', { id: 'minutes' }, [15, 30, 60, 180, 720].map((n) => h('option', { value: n }, `last ${n} min`)));
  minutes.value = query.get('minutes') || '30';
  minutes.onchange = () => { history.replaceState(null, '', `#/system?minutes=${minutes.value}`); refresh(); };
  view.append(h('h1', {}, 'System'),
    h('div', { class: 'panel' }, h('h2', {}, 'Services'), services),
    h('div', { class: 'row', style: 'justify-content: space-between; margin-bottom: .75rem' }, h('h2', { style: 'margin: 0' }, 'Business'), minutes),
    kpis, charts,
    h('div', { class: 'panel' }, h('h2', {}, 'Events'), events));

  async function refresh() {
    const [health, figures, series, stats] = await Promise.all([
      api('GET', '/health'), api('GET', '/metrics'), api('GET', `/metrics/timeseries?minutes=${minutes.value}`), api('GET', '/events/stats'),
    ]);
    if (scope.closed) return;
    if (health.ok) {
      services.replaceChildren(...Object.entries(health.data.services).map(([name, st]) => h('div', { class: `service${st === 'healthy' ? '' : ' down'}`, dataset: { service: name, status: st } },
        h('div', { class: 'name' }, name), h('div', { class: 'small' }, st === 'healthy' ? badge('healthy') : badge('unhealthy', st)))));
    }
    if (figures.ok) {
      const f = figures.data;
      const kpi = (name, value, id) => h('div', { class: 'kpi', id }, h('div', { class: 'value' }, value), h('div', { class: 'name' }, name));
      const ended = f.confirmed_orders + f.failed_orders;
      kpis.replaceChildren(
        kpi('Orders placed', f.total_orders, 'kpi-orders'),
        kpi('Confirmed', f.confirmed_orders, 'kpi-confirmed'),
        kpi('Failed or cancelled', f.failed_orders, 'kpi-failed'),
        kpi('Success rate', ended ? pct(f.confirmed_orders / ended) : '–', 'kpi-success'),
        kpi('Revenue', money(f.total_revenue), 'kpi-revenue'),
        kpi('Average order', money(f.average_order_value), 'kpi-average'),
        kpi('Payments accepted', pct(f.payment_success_rate), 'kpi-payments'));
    }
    if (series.ok) {
      const b = series.data.buckets;
      const labels = b.map((x) => new Date(x.minute).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false }));
      const col = (k) => b.map((x) => x[k]);
      const box = (title, c) => h('div', { class: 'panel' }, h('h3', {}, title), c);
      charts.replaceChildren(
        box('Orders and sagas per minute', chart({ labels, integer: true, series: [
          { name: 'placed', values: col('orders_placed'), color: '#8aa7e6', kind: 'bar' },
          { name: 'sagas completed', values: col('sagas_completed'), color: '#1a7f37', kind: 'bar' },
          { name: 'failed or cancelled', values: col('orders_failed'), color: '#c0262d', kind: 'bar' },
        ] })),
        box('Success rate of the sagas that ended', chart({ labels, yMax: 1, yFormat: (v) => `${Math.round(v * 100)} %`, series: [
          { name: 'completed / ended', values: col('success_rate'), color: '#1a7f37', kind: 'line' },
        ] })),
        box('Revenue per minute', chart({ labels, yFormat: (v) => money(v).replace('.00', ''), series: [
          { name: 'revenue of confirmed orders', values: b.map((x) => Number(x.revenue)), color: '#2456c7', kind: 'bar' },
        ] })),
        box('Saga duration, 95th percentile', chart({ labels, yFormat: (v) => (v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`), series: [
          { name: 'p95 from placed to end', values: col('p95_saga_ms'), color: '#a85a00', kind: 'line' },
        ] })));
    } else {
      charts.replaceChildren(h('p', { class: 'notice error' }, 'The time series did not load: ' + problemText(series)));
    }
    if (stats.ok) {
      const entries = Object.entries(stats.data.events_by_type).sort((a, b) => b[1] - a[1]);
      const max = Math.max(1, ...entries.map((e) => e[1]));
      events.replaceChildren(h('p', { class: 'muted small' }, `${stats.data.total_events} events recorded.`),
        h('div', { class: 'bars' }, entries.map(([type, n]) => [h('code', {}, type), h('div', { class: 'bar', style: `width: ${(100 * n) / max}%` }), h('span', { class: 'num' }, n)])));
    }
  }
  scope.every(refresh, 5000);
}

// ---------------------------------------------------------------------------------------
// Page: dead letters.

function deadLettersPage(view, _params, scope, query) {
  const status = h('select', { id: 'dead-letter-status' }, ['pending', 'replayed', 'discarded', 'all'].map((st) => h('option', { value: st }, st)));
  status.value = query.get('status') || 'pending';
  status.onchange = () => { history.replaceState(null, '', `#/dead-letters?status=${status.value}`); load(); };
  const body = h('tbody');
  const note = h('p', { class: 'muted small' });
  view.append(h('h1', {}, 'Dead letters'),
    h('div', { class: 'panel' },
      h('p', { class: 'muted' }, 'Messages a consumer gave up on. Replay delivers one again to its own subscription; discard drops it, so that the later messages of its key flow on.'),
      h('div', { class: 'row' }, h('label', {}, 'Status', status)),
      note,
      h('table', { id: 'dead-letters-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Subscription'), h('th', {}, 'Event'), h('th', {}, 'Reason'), h('th', { class: 'num' }, 'Attempts'), h('th', {}, 'Last error'), h('th', {}, 'Status'), h('th', {}, ''))),
        body)));

  async function act(letter, action) {
    const verb = action === 'replay' ? 'Replay' : 'Discard';
    const text = action === 'replay'
      ? `Deliver ${letter.event_type} (${shortId(letter.id)}) again to the subscription “${letter.subscription}”? If it fails again, it comes back as a new dead letter.`
      : `Drop ${letter.event_type} (${shortId(letter.id)}) of “${letter.subscription}” for good? It will not be delivered again.`;
    if (!(await confirmDialog(`${verb} this dead letter?`, text, verb))) return;
    const r = await api('POST', `/dead-letters/${letter.id}/${action}`);
    toast(r.ok ? `Dead letter ${shortId(letter.id)} ${r.data.status}.` : problemText(r));
    load();
    updateBadges();
  }

  async function load() {
    const r = await api('GET', `/dead-letters?status=${status.value}&limit=500`);
    if (scope.closed) return;
    if (!r.ok) { note.textContent = problemText(r); return; }
    note.textContent = `${r.data.length} ${status.value === 'all' ? '' : status.value + ' '}dead letter(s), oldest first.`;
    body.replaceChildren(...r.data.map((d) => h('tr', { dataset: { id: d.id, status: d.status } },
      h('td', { class: 'small' }, when(d.dead_lettered_at)),
      h('td', {}, h('code', {}, d.subscription)),
      h('td', {}, h('code', {}, d.event_type), h('div', { class: 'small muted' }, 'key ',
        UUID_RE.test(d.aggregate_id) ? h('a', { href: `#/orders/${d.aggregate_id}` }, shortId(d.aggregate_id)) : d.aggregate_id),
        h('details', {}, h('summary', {}, 'payload'), h('pre', { class: 'json' }, JSON.stringify(d.payload, null, 2)))),
      h('td', { class: 'small' }, d.reason),
      h('td', { class: 'num' }, d.attempts),
      h('td', { class: 'small' }, d.last_error || '–'),
      h('td', {}, badge(d.status === 'pending' ? 'pending-letter' : d.status, d.status)),
      h('td', {}, d.status === 'pending' ? h('div', { class: 'actions' },
        h('button', { class: 'primary', dataset: { action: 'replay' }, onclick: () => act(d, 'replay') }, 'Replay'),
        h('button', { class: 'danger', dataset: { action: 'discard' }, onclick: () => act(d, 'discard') }, 'Discard')) : null))));
    if (r.data.length === 0) body.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'None.')));
  }
  scope.every(load, 5000);
}

// ---------------------------------------------------------------------------------------
// Page: AI.

function aiPage(view, _params, scope) {
  const orderSelect = h('select', { id: 'ai-order' }, h('option', { value: '' }, 'pick a recent order'));
  const orderInput = h('input', { id: 'ai-order-id', size: 38, placeholder: 'or an order id' });
  const analysis = h('div', { id: 'ai-analysis' });
  const section = (title, id, ...content) => h('div', { class: 'panel', id }, h('h2', {}, title), ...content);
  const productSelect = h('select', { id: 'ai-product' });
  const forecast = h('div', { id: 'ai-forecast-result' });
  const customer = h('input', { id: 'ai-customer', size: 38, value: customerId() });
  const recommendations = h('div', { id: 'ai-recommendations-result' });
  const anomalies = h('div', { id: 'ai-anomalies-result' }, '…');
  const models = h('div', { id: 'ai-models-result' }, '…');
  const healing = h('div', { id: 'ai-healing-result' }, '…');
  const chat = chatBox();

  const shown = async (el, r, render) => {
    if (scope.closed) return;
    if (routeMissing(r)) el.replaceChildren(h('p', { class: 'unavailable' }, 'Not available in this build.'));
    else if (!r.ok) el.replaceChildren(h('p', { class: 'notice error' }, problemText(r)));
    else el.replaceChildren(render ? render(r.data) : jsonView(r.data));
  };
  const analyse = async (id) => {
    if (!UUID_RE.test(id)) { analysis.replaceChildren(h('p', { class: 'notice error' }, 'Not an order id.')); return; }
    const r = await api('GET', `/analysis/${id}`);
    shown(analysis, r, (d) => h('div', {}, h('p', {}, 'Order ', h('a', { href: `#/orders/${id}`, class: 'mono' }, id)), assessmentView(d)));
  };
  orderSelect.onchange = () => orderSelect.value && analyse(orderSelect.value);
  orderInput.onchange = () => analyse(orderInput.value.trim());

  view.append(h('h1', {}, 'AI'),
    h('div', { class: 'grid two' },
      section('Assistant', 'ai-assistant', chat),
      section('Fraud screening of an order', 'ai-screening', h('div', { class: 'row' }, orderSelect, orderInput), analysis),
      section('Demand forecast', 'ai-forecast', h('div', { class: 'row' }, productSelect,
        h('button', { onclick: async () => shown(forecast, await api('GET', `/forecast/${encodeURIComponent(productSelect.value)}`)) }, 'Forecast')), forecast),
      section('Recommendations', 'ai-recommendations', h('div', { class: 'row' }, customer,
        h('button', { onclick: async () => shown(recommendations, await api('GET', `/recommendations/${encodeURIComponent(customer.value.trim())}`)) }, 'Recommend')), recommendations),
      section('Saga anomalies', 'ai-anomalies', anomalies),
      section('Models', 'ai-models', models)),
    section('Self-healing', 'ai-healing', healing));
  scope.every(async () => shown(healing, await api('GET', '/self-healing/actions?limit=30'), healingView), 5000);

  (async () => {
    const [recent, list] = await Promise.all([api('GET', '/orders?limit=20'), products().catch(() => [])]);
    if (scope.closed) return;
    if (recent.ok) for (const o of recent.data) orderSelect.append(h('option', { value: o.id }, `${shortId(o.id)} · ${label(o.status)} · ${money(o.total_amount)}`));
    for (const p of list) productSelect.append(h('option', { value: p.id }, p.name));
    // Asked at once, so that a route this build lacks says so without a click.
    const first = list[0] ? api('GET', `/forecast/${encodeURIComponent(list[0].id)}`) : null;
    const [a, m, f, rec] = await Promise.all([api('GET', '/anomalies'), api('GET', '/models'), first,
      api('GET', `/recommendations/${encodeURIComponent(customer.value.trim())}`)]);
    shown(anomalies, a, anomaliesView);
    shown(models, m);
    if (f) shown(forecast, f);
    shown(recommendations, rec);
  })();
}

/** The assistant's chat: questions and answers of one conversation, "yes" confirms. */
function chatBox() {
  let conversation = null;
  const log = h('ol', { id: 'chat-log', class: 'chat-log' });
  const question = h('textarea', { id: 'ai-question', rows: 2, placeholder: 'e.g. what is the status of order 0190…? how many orders today?' });
  const button = h('button', { id: 'ai-ask', class: 'primary' }, 'Ask');
  const ask = async () => {
    const text = question.value.trim();
    if (!text || button.disabled) return;
    question.value = '';
    button.disabled = true;
    log.append(h('li', { class: 'chat-user' }, text));
    const waiting = h('li', { class: 'chat-answer waiting' }, '…');
    log.append(waiting);
    const body = conversation ? { message: text, conversation_id: conversation } : { message: text };
    const r = await api('POST', '/chat', body);
    button.disabled = false;
    if (!r.ok) {
      waiting.replaceWith(h('li', { class: 'chat-answer error' }, problemText(r)));
      return;
    }
    const d = r.data;
    conversation = d.conversation_id;
    const intent = (d.intent && d.intent.intent) || '';
    waiting.replaceWith(h('li', { class: `chat-answer${d.error ? ' error' : ''}`, dataset: { intent, via: d.via } },
      h('div', { class: 'chat-text' }, d.text),
      h('div', { class: 'small muted' }, `${label(intent)} · ${Math.round((d.confidence || 0) * 100)} % · ${d.via === 'llm' ? 'language model' : 'offline parser'}`,
        d.pending ? ' · waiting for “yes”' : ''),
      d.data ? h('details', {}, h('summary', { class: 'small' }, 'data'), jsonView(d.data)) : null));
    log.scrollTop = log.scrollHeight;
  };
  button.onclick = ask;
  question.addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); ask(); } });
  return h('div', {}, log, question, h('div', { class: 'row', style: 'margin-top: .5rem' }, button));
}

/** `GET /anomalies`: the flagged sagas and each step's durations against its baseline. */
function anomaliesView(d) {
  const drift = d.drift || { enabled: false, steps: [] };
  return h('div', {},
    h('p', { class: 'small muted' }, `${d.anomalies.length} of the latest ${d.sagas_scored} sagas look abnormal.`),
    d.anomalies.length ? h('ul', { class: 'reasons' }, d.anomalies.slice(0, 8).map((a) => h('li', {},
      h('a', { href: `#/orders/${a.order_id}`, class: 'mono' }, shortId(a.order_id)), ` score ${Number(a.score).toFixed(1)}`,
      a.findings && a.findings[0] ? h('div', { class: 'small muted' }, a.findings[0].explanation) : null))) : null,
    h('h3', {}, 'Step durations ', drift.enabled ? '' : h('span', { class: 'badge discarded' }, 'drift policy off')),
    drift.steps.length ? h('table', { id: 'drift-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Step'), h('th', { class: 'num' }, 'Baseline'), h('th', { class: 'num' }, 'Recent'), h('th', { class: 'num' }, 'Threshold'), h('th', {}, ''))),
      h('tbody', {}, drift.steps.map((st) => h('tr', { dataset: { step: st.step, flagged: st.flagged } },
        h('td', {}, label(st.step)),
        h('td', { class: 'num' }, `${Math.round(st.baseline_median_ms)} ms`),
        h('td', { class: 'num' }, `${Math.round(st.recent_median_ms)} ms`),
        h('td', { class: 'num' }, `${Math.round(st.threshold_ms)} ms`),
        h('td', {}, st.flagged ? badge('failed', 'drifting') : badge('completed', 'normal'))))))
      : h('p', { class: 'small muted' }, 'Not enough finished steps yet to judge their durations.'),
    h('details', {}, h('summary', { class: 'small' }, 'detector'), jsonView(d.detector)));
}

/** `GET /self-healing/actions`: which policies run, and their latest decisions. */
function healingView(d) {
  return h('div', {},
    h('div', { class: 'row small' }, d.policies.map((p) => badge(p.enabled ? 'completed' : 'discarded', `${label(p.name)}: ${p.enabled ? 'on' : 'off'}`))),
    d.actions.length === 0 ? h('p', { class: 'small muted' }, 'No decision yet.') :
      h('table', { id: 'healing-table' },
        h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Policy'), h('th', {}, 'About'), h('th', {}, 'Saw'), h('th', {}, 'Did'), h('th', {}, 'Outcome'))),
        h('tbody', {}, d.actions.map((a) => h('tr', { dataset: { policy: a.policy, kind: a.kind } },
          h('td', { class: 'small' }, when(a.at)),
          h('td', {}, badge(a.kind === 'open_circuit' || a.kind === 'flag_drift' || a.kind === 'dead_letter' || a.kind === 'compensate' ? 'failed' : 'running', label(a.policy)), h('div', { class: 'small muted' }, `${a.service} · ${label(a.kind)}`)),
          h('td', { class: 'small' }, a.policy === 'stuck_saga' && UUID_RE.test(a.subject) ? h('a', { href: `#/orders/${a.subject}`, class: 'mono' }, shortId(a.subject)) : h('code', {}, a.subject)),
          h('td', { class: 'small' }, a.observed),
          h('td', { class: 'small' }, a.action),
          h('td', { class: 'small' }, a.outcome || '–'))))));
}

// ---------------------------------------------------------------------------------------
// Navigation.

const PAGES = [
  [/^\/?$/, newOrderPage, 'new'],
  [/^\/new$/, newOrderPage, 'new'],
  [/^\/orders$/, ordersPage, 'orders'],
  [/^\/orders\/([^/]+)$/, orderPage, 'orders'],
  [/^\/system$/, systemPage, 'system'],
  [/^\/dead-letters$/, deadLettersPage, 'dead-letters'],
  [/^\/ai$/, aiPage, 'ai'],
];

let current = null;
function route() {
  if (current) current.close();
  document.querySelectorAll('.toast').forEach((t) => t.remove());
  current = new Scope();
  const [path, search] = location.hash.replace(/^#/, '').split('?');
  const view = document.getElementById('view');
  view.replaceChildren();
  const found = PAGES.find(([re]) => re.test(path));
  document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', !!found && a.dataset.nav === found[2]));
  if (!found) {
    view.append(h('p', { class: 'notice error' }, 'No such page. '), h('a', { href: '#/new' }, 'Place an order'));
    return;
  }
  const params = path.match(found[0]).slice(1).map(decodeURIComponent);
  found[1](view, params, current, new URLSearchParams(search || ''));
}

/** The header's health summary and the count of pending dead letters, on every page. */
async function updateBadges() {
  const [health, letters] = await Promise.all([api('GET', '/health'), api('GET', '/dead-letters?limit=1000')]);
  const summary = document.getElementById('health-summary');
  if (health.ok) {
    const all = Object.values(health.data.services);
    const up = all.filter((x) => x === 'healthy').length;
    summary.className = `health-summary ${health.data.status}`;
    summary.textContent = `${up}/${all.length} services healthy`;
  } else {
    summary.className = 'health-summary degraded';
    summary.textContent = 'web front unreachable';
  }
  const count = document.getElementById('dead-letter-count');
  count.hidden = !(letters.ok && letters.data.length > 0);
  if (letters.ok) count.textContent = letters.data.length;
}

window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', () => {
  route();
  updateBadges();
  setInterval(updateBadges, 10000);
});
