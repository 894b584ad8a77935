// util.js: DOM building, the API client, durations, times and units,
// shared by every page of osprey's UI.

/** Builds an element: el('div', {class: 'x', onclick: f}, child, 'text'). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else if (k === 'style' && typeof v === 'object') Object.assign(node.style, v);
    else if (k === 'value') node.value = v;
    else if (k === 'checked') node.checked = !!v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : String(c));
  }
}

/** An error the API answered, with its HTTP status and message. */
export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

/**
 * Who is using the UI, from `/api/osprey/whoami`: whether the server
 * authenticates anyone, the user and role, and the session's CSRF token
 * that state-changing requests carry.
 */
export const session = { authenticationEnabled: false, authenticated: false, user: null, role: null, csrfToken: null, tls: false };

const RANKS = { writer: 0, viewer: 1, editor: 2, admin: 3 };

/** Whether the user may `what`: 'edit' (silences, dashboards) or 'admin'. */
export function can(what) {
  if (!session.authenticationEnabled) return true;
  const rank = RANKS[session.role] ?? -1;
  return what === 'admin' ? rank >= 3 : what === 'edit' ? rank >= 2 : rank >= 1;
}

/** Reads the session from the server; the UI calls it before any page. */
export async function loadSession() {
  try {
    const res = await fetch('/api/osprey/whoami', { headers: { 'X-Osprey-UI': '1' } });
    const body = await res.json();
    Object.assign(session, body.data || {});
  } catch (e) {
    console.warn('reading the session failed', e);
  }
  return session;
}

/**
 * Calls the API: GET with `params` in the query string, or another method
 * with a JSON or form body. Returns the parsed JSON (the `data` field for
 * Prometheus-shaped answers when `unwrap` is not false).
 */
export async function api(path, { params, method = 'GET', json, form, unwrap = true, signal } = {}) {
  let url = path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
      else if (v !== undefined && v !== null && v !== '') q.append(k, v);
    }
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  // Marks the request as the UI's: a 401 then comes without a basic-auth
  // challenge, so the browser shows the login page, not its own prompt.
  const init = { method, signal, headers: { 'X-Osprey-UI': '1' } };
  // A browser session's changes carry its CSRF token; a page of another
  // site cannot read it.
  if (method !== 'GET' && method !== 'HEAD' && session.csrfToken) init.headers['X-CSRF-Token'] = session.csrfToken;
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  } else if (form) {
    init.body = new URLSearchParams(form);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the server: ${e.message}`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (res.status === 401 && session.authenticationEnabled && !path.startsWith('/api/osprey/login')) {
    // Signed out (or never signed in): off to the login page, back here after.
    const next = location.pathname + location.search;
    if (location.pathname !== '/login') window.osprey?.navigate(`/login?next=${encodeURIComponent(next)}`);
  }
  if (!res.ok || (body && body.status === 'error')) {
    const msg = (body && (body.error || body.message)) || text.trim() || res.statusText;
    throw new ApiError(res.status, msg, body && body.errorType);
  }
  if (unwrap && body && typeof body === 'object' && 'status' in body && 'data' in body) return body.data;
  return body;
}

// ---------------------------------------------------------------------------
// Durations and times.

const UNIT_MS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000, y: 31536000000 };

/** Parses a Prometheus duration ("1h30m", "15s") into milliseconds, or null. */
export function parseDuration(text) {
  if (typeof text !== 'string') return null;
  const s = text.trim();
  if (!s) return null;
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(parseFloat(s) * 1000);
  const re = /(\d+)(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let m;
  let used = 0;
  while ((m = re.exec(s)) !== null) {
    total += parseInt(m[1], 10) * UNIT_MS[m[2]];
    used = re.lastIndex;
  }
  return used === s.length && used > 0 ? total : null;
}

/** Formats milliseconds as a short Prometheus duration ("1h30m"). */
export function formatDuration(ms) {
  if (!isFinite(ms) || ms <= 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [u, n] of [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]]) {
    if (rest >= n) {
      out += Math.floor(rest / n) + u;
      rest %= n;
    }
  }
  if (rest > 0) out += rest + 'ms';
  return out;
}

/**
 * Resolves a time expression to epoch milliseconds: "now", "now-1h",
 * "now-7d/d" is not supported, epoch ms, epoch seconds, or an ISO date.
 */
export function parseTime(text, now = Date.now()) {
  if (text === undefined || text === null || text === '') return now;
  const s = String(text).trim();
  if (s === 'now') return now;
  const rel = /^now\s*([-+])\s*(\S+)$/.exec(s);
  if (rel) {
    const d = parseDuration(rel[2]);
    if (d === null) return null;
    return rel[1] === '-' ? now - d : now + d;
  }
  if (/^\d+(\.\d+)?$/.test(s)) {
    const n = parseFloat(s);
    return n > 1e11 ? n : n * 1000;
  }
  const t = Date.parse(s);
  return isNaN(t) ? null : t;
}

/** A local date-time string for display. */
export function formatTime(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "3m ago", "in 2h" style relative time. */
export function ago(ms, now = Date.now()) {
  if (!isFinite(ms) || ms <= 0) return 'never';
  const d = now - ms;
  if (Math.abs(d) < 1000) return 'just now';
  const s = formatDuration(Math.abs(d) >= 1000 ? Math.round(Math.abs(d) / 1000) * 1000 : Math.abs(d));
  return d >= 0 ? `${s} ago` : `in ${s}`;
}

/** A step (seconds) of about `points` points over `rangeMs`, rounded to a nice value. */
export function autoStep(rangeMs, points) {
  const raw = Math.max(rangeMs / 1000 / Math.max(points, 1), 1);
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  for (const n of nice) if (n >= raw) return n;
  return Math.ceil(raw / 86400) * 86400;
}

// ---------------------------------------------------------------------------
// Units.

const SI = ['', 'k', 'M', 'G', 'T', 'P', 'E'];
const IEC = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];

function scaled(v, base, prefixes, suffix, decimals) {
  let i = 0;
  let x = Math.abs(v);
  while (x >= base && i < prefixes.length - 1) {
    x /= base;
    i++;
  }
  const sign = v < 0 ? '-' : '';
  return sign + fixed(x, decimals) + (suffix || prefixes[i] ? ' ' : '') + prefixes[i] + suffix;
}

/** Rounds to `decimals`, or to about three significant digits when undefined. */
export function fixed(x, decimals) {
  if (decimals !== undefined && decimals !== null) return x.toFixed(decimals);
  const a = Math.abs(x);
  if (a === 0) return '0';
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return trimZeros(x.toFixed(1));
  if (a >= 1) return trimZeros(x.toFixed(2));
  if (a >= 0.001) return trimZeros(x.toPrecision(3));
  return x.toExponential(2);
}

function trimZeros(s) {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

function duration(v, unitSeconds, decimals) {
  let s = v * unitSeconds;
  const a = Math.abs(s);
  if (a === 0) return '0 s';
  if (a < 1e-6) return fixed(s * 1e9, decimals) + ' ns';
  if (a < 1e-3) return fixed(s * 1e6, decimals) + ' µs';
  if (a < 1) return fixed(s * 1e3, decimals) + ' ms';
  // Seconds up to ten minutes and minutes up to ten hours keep axis ticks
  // round (300 s rather than 5 min next to 3.33 min).
  if (a < 600) return fixed(s, decimals) + ' s';
  if (a < 36000) return fixed(s / 60, decimals) + ' min';
  if (a < 864000) return fixed(s / 3600, decimals) + ' hour';
  return fixed(s / 86400, decimals) + ' day';
}

/** Formats a value in one of Grafana's unit ids (see docs/format/dashboard.md). */
export function formatValue(v, unit, decimals) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') v = parseFloat(v);
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  switch (unit || 'short') {
    case 'none':
      return fixed(v, decimals);
    case 'short':
      return scaled(v, 1000, SI, '', decimals).trim();
    case 'percent':
      return fixed(v, decimals) + '%';
    case 'percentunit':
      return fixed(v * 100, decimals) + '%';
    case 'bytes':
    case 'bits': {
      const s = unit === 'bytes' ? 'B' : 'b';
      return scaled(v, 1024, IEC, s, decimals);
    }
    case 'decbytes':
      return scaled(v, 1000, SI, 'B', decimals);
    case 'Bps':
      return scaled(v, 1000, SI, 'B/s', decimals);
    case 'binBps':
      return scaled(v, 1024, IEC, 'B/s', decimals);
    case 'bps':
      return scaled(v, 1000, SI, 'b/s', decimals);
    case 's':
      return duration(v, 1, decimals);
    case 'ms':
      return duration(v, 1e-3, decimals);
    case 'µs':
    case 'us':
      return duration(v, 1e-6, decimals);
    case 'ns':
      return duration(v, 1e-9, decimals);
    case 'reqps':
      return scaled(v, 1000, SI, 'req/s', decimals);
    case 'ops':
      return scaled(v, 1000, SI, 'ops/s', decimals);
    case 'celsius':
      return fixed(v, decimals) + ' °C';
    case 'watt':
      return scaled(v, 1000, SI, 'W', decimals);
    case 'joule':
      return scaled(v, 1000, SI, 'J', decimals);
    case 'hertz':
      return scaled(v, 1000, SI, 'Hz', decimals);
    case 'currencyUSD':
      return (v < 0 ? '-$' : '$') + fixed(Math.abs(v), decimals ?? 2);
    default:
      return fixed(v, decimals) + ' ' + unit;
  }
}

// ---------------------------------------------------------------------------
// Series helpers.

/** `{a="b", c="d"}` label text for a metric object, name first. */
export function seriesName(metric) {
  const m = metric || {};
  const name = m.__name__ || '';
  const rest = Object.keys(m)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}=${JSON.stringify(m[k])}`);
  if (!rest.length) return name || '{}';
  return `${name}{${rest.join(', ')}}`;
}

/** Applies a legend template: "{{label}}" is the label's value. */
export function legendName(template, metric) {
  if (!template) return seriesName(metric);
  return template.replace(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g, (_, k) => (metric && metric[k]) || '');
}

/** A colour palette that reads on white and is distinct for neighbours. */
export const PALETTE = [
  '#1f77b4', '#e8590c', '#2b8a3e', '#c92a2a', '#7048e8', '#8c564b',
  '#d6336c', '#495057', '#9c9c00', '#0c8599', '#f08c00', '#5c940d',
];

/** Grafana colour names to CSS colours. */
export function cssColor(c) {
  const names = {
    green: '#37872d', red: '#c4162a', orange: '#fa6400', yellow: '#e0b400',
    blue: '#1f60c4', purple: '#8f3bb8', 'dark-red': '#ad0317', 'dark-green': '#19730e',
    'light-red': '#ff7383', 'light-green': '#73bf69', 'semi-dark-red': '#e02f44',
    'semi-dark-green': '#56a64b', 'semi-dark-orange': '#ff780a', 'semi-dark-yellow': '#f2cc0c',
    text: '#222', transparent: 'transparent',
  };
  return names[c] || c || '#37872d';
}

/** The threshold colour for `v`: the last step whose value is <= v. */
export function thresholdColor(thresholds, v) {
  let color = null;
  if (!Array.isArray(thresholds)) return null;
  for (const t of thresholds) {
    if (!t || typeof t !== 'object') continue;
    if (t.value === null || t.value === undefined || v >= t.value) color = t.color;
  }
  return color ? cssColor(color) : null;
}

/** Debounces `f` by `ms`. */
export function debounce(f, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => f(...args), ms);
  };
}

/**
 * A dashboard variable's value as text in a query. `v` is {def, options, selected}; several values become `(a|b)` with
 * regex metacharacters escaped for a PromQL string.
 */
export function formatVariable(v, fmt) {
  const def = v.def;
  const isAll = v.selected.includes('$__all');
  const values = isAll ? v.options : v.selected;
  if (fmt === 'raw') return values.join(',');
  if (isAll && def.allValue) return def.allValue;
  if (isAll && !def.allValue && (def.multi || def.includeAll)) return '.*';
  if (def.multi || def.includeAll) {
    const esc = values.map((x) => x.replace(/[\\^$.|?*+()[\]{}]/g, '\\\\$&'));
    return esc.length === 1 ? esc[0] : `(${esc.join('|')})`;
  }
  return values[0] ?? '';
}

/**
 * Where a panel's range query starts: whole steps back from `end`, so
 * that its last point is at `end` itself (a stat shows that point).
 * Started on a multiple of the step instead, the last point could lie up
 * to a step (a minute on an hour's stat) before now, and a new install's
 * panels would read "No data" although two scrapes, enough for a rate,
 * are already there.
 */
export function alignedStart(startS, endS, step) {
  return endS - Math.max(0, Math.floor((endS - startS) / step)) * step;
}

/**
 * When `expr` first has a value in the last `rangeS` seconds (seconds
 * since the epoch; its first sample lies at most one step, `rangeS /
 * 240`, after the time returned), or null: a range query
 * of its count at 240 steps, so a young install's charts can start at
 * its first data rather than an hour of nothing, without reading every
 * raw sample.
 */
export async function firstDataTime(expr, rangeS, endS = Math.floor(Date.now() / 1000)) {
  const step = Math.max(1, Math.ceil(rangeS / 240));
  const data = await api('/api/v1/query_range', { params: { query: `count(${expr})`, start: endS - Math.floor(rangeS / step) * step, end: endS, step } });
  let first = null;
  for (const r of data.result || []) for (const [t] of r.values || []) if (first === null || t < first) first = t;
  // The first step with a value is the first at or after the first sample.
  return first === null ? null : first - step;
}
