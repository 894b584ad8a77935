// traces.js: the trace pages, over the Jaeger API (docs/traces.md).
// /traces searches (service, operation, tags, durations, lookback, limit;
// the form's state lives in the URL), /trace/{id} draws one trace as a
// waterfall whose rows open the span's attributes, resource and events,
// and /service-graph draws which services call which
// (/api/dependencies), left to right from the callers.

import { el, api, PALETTE, formatTime } from './util.js';

/** Microseconds as text: 850µs, 12.3ms, 1.25s. */
export function formatMicros(us) {
  if (!Number.isFinite(us)) return '';
  if (us < 1000) return `${Math.round(us)}µs`;
  if (us < 1e6) return `${+(us / 1000).toPrecision(3)}ms`;
  return `${+(us / 1e6).toPrecision(3)}s`;
}

/** `key=value key2="a b"` as an object, for the API's `tags` parameter. */
export function parseTags(text) {
  const tags = {};
  const re = /([^\s=]+)=("([^"]*)"|\S*)/g;
  let m;
  let consumed = '';
  while ((m = re.exec(text)) !== null) {
    tags[m[1]] = m[3] !== undefined ? m[3] : m[2];
    consumed += m[0];
  }
  if (consumed.replace(/\s/g, '').length !== text.replace(/\s/g, '').length) {
    throw new Error(`tags must be key=value pairs separated by spaces: ${text}`);
  }
  return tags;
}

/** A stable colour per service. */
function serviceColor(service, services) {
  const i = services.indexOf(service);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

/** The value of a Jaeger tag as text. */
function tagText(t) {
  return typeof t.value === 'string' ? t.value : JSON.stringify(t.value);
}

function hasError(span) {
  return span.tags.some((t) => t.key === 'error' && (t.value === true || t.value === 'true'));
}

/**
 * A trace's spans in waterfall order (depth first from the roots, children
 * by start time), each with its depth. A span whose parent is missing is a
 * root.
 */
export function spanTree(trace) {
  const byId = new Map(trace.spans.map((s) => [s.spanID, s]));
  const children = new Map();
  const roots = [];
  for (const s of trace.spans) {
    const parent = (s.references || []).find((r) => r.refType === 'CHILD_OF' && byId.has(r.spanID));
    if (parent) {
      if (!children.has(parent.spanID)) children.set(parent.spanID, []);
      children.get(parent.spanID).push(s);
    } else {
      roots.push(s);
    }
  }
  const byStart = (a, b) => a.startTime - b.startTime;
  const out = [];
  const seen = new Set();
  const walk = (s, depth) => {
    if (seen.has(s.spanID)) return;
    seen.add(s.spanID);
    out.push({ span: s, depth });
    for (const c of (children.get(s.spanID) || []).sort(byStart)) walk(c, depth + 1);
  };
  roots.sort(byStart).forEach((r) => walk(r, 0));
  return out;
}

/** Start, end and services of a trace. */
function traceSummary(trace) {
  const start = Math.min(...trace.spans.map((s) => s.startTime));
  const end = Math.max(...trace.spans.map((s) => s.startTime + s.duration));
  const services = [...new Set(trace.spans.map((s) => trace.processes[s.processID]?.serviceName || '?'))];
  const tree = spanTree(trace);
  const root = tree.length ? tree[0].span : trace.spans[0];
  return { start, end, services, root, errors: trace.spans.filter(hasError).length };
}

const LOOKBACKS = ['15m', '1h', '6h', '24h', '7d'];
const LOOKBACK_US = { '15m': 9e8, '1h': 3.6e9, '6h': 2.16e10, '24h': 8.64e10, '7d': 6.048e11 };

/** /traces: the search form and the traces found. */
export async function renderTraceSearch(main) {
  const q = new URLSearchParams(location.search);
  const service = el('select', { id: 'trace-service' });
  const operation = el('select', { id: 'trace-operation' });
  const tags = el('input', { id: 'trace-tags', placeholder: 'http.status_code=500 error=true', value: q.get('tags') || '', size: 36 });
  const minDuration = el('input', { id: 'trace-min', placeholder: '100ms', value: q.get('minDuration') || '', size: 7 });
  const maxDuration = el('input', { id: 'trace-max', placeholder: '5s', value: q.get('maxDuration') || '', size: 7 });
  const lookback = el('select', { id: 'trace-lookback' }, LOOKBACKS.map((l) => el('option', { value: l }, `last ${l}`)));
  lookback.value = LOOKBACKS.includes(q.get('lookback')) ? q.get('lookback') : '1h';
  const limit = el('input', { id: 'trace-limit', type: 'number', min: 1, max: 1000, value: q.get('limit') || '20', style: { width: '70px' } });
  const results = el('div', { id: 'trace-results-box' });
  const loadOperations = async () => {
    operation.replaceChildren(el('option', { value: '' }, 'all operations'));
    if (!service.value) return;
    const ops = (await api(`/api/services/${encodeURIComponent(service.value)}/operations`)).data || [];
    operation.append(...ops.map((o) => el('option', { value: o }, o)));
  };
  const search = async (push) => {
    const params = { service: service.value, operation: operation.value, tags: tags.value.trim(), minDuration: minDuration.value.trim(), maxDuration: maxDuration.value.trim(), lookback: lookback.value, limit: limit.value };
    if (push) {
      const u = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
      history.replaceState(null, '', `/traces?${u}`);
    }
    results.replaceChildren(el('div', { class: 'hint' }, 'Searching…'));
    try {
      if (!params.service) throw new Error('choose a service');
      const end = Date.now() * 1000;
      const body = await api('/api/traces', {
        params: {
          service: params.service, operation: params.operation, limit: params.limit,
          minDuration: params.minDuration, maxDuration: params.maxDuration,
          start: Math.floor(end - LOOKBACK_US[params.lookback]), end,
          tags: params.tags ? JSON.stringify(parseTags(params.tags)) : '',
        },
      });
      results.replaceChildren(traceTable(body.data || []));
    } catch (e) {
      results.replaceChildren(el('div', { class: 'error-box', id: 'trace-error' }, e.message));
    }
  };
  main.replaceChildren(
    el('div', { class: 'card traces' },
      el('h1', {}, 'Traces'),
      el('form', { class: 'toolbar', id: 'trace-form', onsubmit: (e) => { e.preventDefault(); search(true); } },
        el('label', { class: 'ctl' }, 'Service ', service),
        el('label', { class: 'ctl' }, 'Operation ', operation),
        el('label', { class: 'ctl' }, 'Tags ', tags),
        el('label', { class: 'ctl' }, 'Min ', minDuration),
        el('label', { class: 'ctl' }, 'Max ', maxDuration),
        lookback,
        el('label', { class: 'ctl' }, 'Limit ', limit),
        el('button', { class: 'primary', type: 'submit', id: 'trace-search' }, 'Find traces'),
        el('span', { class: 'spacer' }),
        el('a', { href: '/service-graph' }, 'Service graph')),
      results),
  );
  let services = [];
  try {
    services = (await api('/api/services')).data || [];
  } catch (e) {
    results.replaceChildren(el('div', { class: 'error-box', id: 'trace-error' }, e.message));
    return;
  }
  if (!services.length) {
    results.replaceChildren(el('div', { class: 'nodata', id: 'trace-none' }, 'No traces yet. Send spans over OTLP to /v1/traces, or to port 4317 (gRPC) / 4318 (HTTP).'));
    return;
  }
  service.append(...services.map((s) => el('option', { value: s }, s)));
  service.value = services.includes(q.get('service')) ? q.get('service') : services[0];
  service.addEventListener('change', () => loadOperations().catch((e) => console.warn(e)));
  await loadOperations();
  if (q.get('operation')) operation.value = q.get('operation');
  await search(false);
}

function traceTable(traces) {
  if (!traces.length) return el('div', { class: 'nodata', id: 'trace-none' }, 'No trace matches.');
  const all = [...new Set(traces.flatMap((t) => Object.values(t.processes).map((p) => p.serviceName)))].sort();
  return el('table', { class: 'data', id: 'trace-results' },
    el('thead', {}, el('tr', {},
      el('th', {}, 'Trace'), el('th', {}, 'Services'), el('th', { class: 'num' }, 'Spans'),
      el('th', { class: 'num' }, 'Errors'), el('th', { class: 'num' }, 'Duration'), el('th', {}, 'Started'))),
    el('tbody', {}, traces.map((t) => {
      const s = traceSummary(t);
      const rootService = t.processes[s.root.processID]?.serviceName || '?';
      return el('tr', { 'data-trace': t.traceID },
        el('td', {}, el('a', { href: `/trace/${t.traceID}` }, `${rootService}: ${s.root.operationName}`),
          el('div', { class: 'muted mono' }, t.traceID)),
        el('td', {}, s.services.map((name) => el('span', { class: 'svc-chip', style: { borderColor: serviceColor(name, all) } }, name))),
        el('td', { class: 'num' }, String(t.spans.length)),
        el('td', { class: 'num' + (s.errors ? ' err' : '') }, String(s.errors)),
        el('td', { class: 'num' }, formatMicros(s.end - s.start)),
        el('td', {}, formatTime(s.start / 1000)));
    })));
}

function kvTable(rows, id) {
  if (!rows.length) return el('div', { class: 'muted' }, 'none');
  return el('table', { class: 'data kv', id },
    el('tbody', {}, rows.map(([k, v]) => el('tr', {}, el('td', { class: 'mono' }, k), el('td', { class: 'mono' }, v)))));
}

/** The detail row of one span: attributes, resource and events. */
function spanDetail(span, trace, t0) {
  const process = trace.processes[span.processID] || { serviceName: '?', tags: [] };
  const parent = (span.references || []).find((r) => r.refType === 'CHILD_OF');
  return el('div', { class: 'span-detail', 'data-span': span.spanID },
    el('div', { class: 'muted' },
      `span ${span.spanID}`, parent ? ` · child of ${parent.spanID}` : ' · root',
      ` · starts at +${formatMicros(span.startTime - t0)} · ${formatMicros(span.duration)}`),
    el('h3', {}, 'Attributes'),
    kvTable(span.tags.map((t) => [t.key, tagText(t)]), 'span-attributes'),
    el('h3', {}, `Resource (${process.serviceName})`),
    kvTable([['service.name', process.serviceName], ...process.tags.map((t) => [t.key, tagText(t)])], 'span-resource'),
    el('h3', {}, 'Events'),
    span.logs && span.logs.length
      ? el('table', { class: 'data kv', id: 'span-events' }, el('tbody', {}, span.logs.map((l) => el('tr', {},
        el('td', { class: 'mono' }, `+${formatMicros(l.timestamp - t0)}`),
        el('td', { class: 'mono' }, l.fields.map((f) => `${f.key}=${tagText(f)}`).join(' '))))))
      : el('div', { class: 'muted' }, 'none'));
}

/**
 * Where a bar's duration label goes: after the bar, or before it when the
 * bar reaches the right edge, or inside it when it spans the whole track.
 */
function durationLabelStyle(left, width) {
  if (left + width <= 85) return { left: `${left + width}%` };
  if (left >= 12) return { right: `${100 - left}%`, marginRight: '6px' };
  return { left: `${left}%`, color: '#fff', fontWeight: '600' };
}

/** /trace/{id}: the waterfall of one trace. */
export async function renderTrace(main, id) {
  main.replaceChildren(el('div', { class: 'hint' }, 'Loading…'));
  let trace;
  try {
    trace = ((await api(`/api/traces/${encodeURIComponent(id)}`)).data || [])[0];
  } catch (e) {
    main.replaceChildren(el('div', { class: 'error-box', id: 'trace-error' }, e.status === 404 ? `No trace ${id}.` : e.message));
    return;
  }
  const s = traceSummary(trace);
  const total = Math.max(s.end - s.start, 1);
  const services = [...s.services].sort();
  const rows = [];
  for (const { span, depth } of spanTree(trace)) {
    const service = trace.processes[span.processID]?.serviceName || '?';
    const left = ((span.startTime - s.start) / total) * 100;
    const width = Math.max((span.duration / total) * 100, 0.3);
    const error = hasError(span);
    const detail = el('div', { class: 'span-detail-row', hidden: true });
    const row = el('div', { class: 'span-row' + (error ? ' error' : ''), 'data-span': span.spanID, 'data-depth': depth },
      el('div', { class: 'span-label', style: { paddingLeft: `${8 + depth * 16}px` }, title: `${service}: ${span.operationName}` },
        el('span', { class: 'svc-dot', style: { background: serviceColor(service, services) } }),
        el('span', { class: 'span-service' }, service), ' ',
        el('span', { class: 'span-name' }, span.operationName)),
      el('div', { class: 'span-track' },
        el('div', { class: 'span-bar', style: { left: `${left}%`, width: `${width}%`, background: error ? '#c92a2a' : serviceColor(service, services) } }),
        el('span', { class: 'span-dur', style: durationLabelStyle(left, width) }, formatMicros(span.duration))));
    row.addEventListener('click', () => {
      if (detail.hidden && !detail.firstChild) detail.append(spanDetail(span, trace, s.start));
      detail.hidden = !detail.hidden;
      row.classList.toggle('open', !detail.hidden);
    });
    rows.push(row, detail);
  }
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => el('span', { class: 'tick', style: { left: `${f * 100}%` } }, formatMicros(f * total)));
  const rootService = trace.processes[s.root.processID]?.serviceName || '?';
  main.replaceChildren(
    el('div', { class: 'card trace' },
      el('h1', {}, `${rootService}: ${s.root.operationName}`),
      el('div', { class: 'trace-meta', id: 'trace-meta' },
        el('span', { class: 'mono' }, trace.traceID),
        ` · started ${formatTime(s.start / 1000)} · ${formatMicros(total)} · ${trace.spans.length} spans · ${services.length} services`,
        s.errors ? el('span', { class: 'err' }, ` · ${s.errors} ${s.errors === 1 ? 'error' : 'errors'}`) : null),
      el('div', { class: 'waterfall', id: 'trace-waterfall' },
        el('div', { class: 'span-row axis' }, el('div', { class: 'span-label' }, 'Service: operation'), el('div', { class: 'span-track' }, ticks)),
        rows)),
  );
}

/**
 * Columns for the service graph: each service one column right of the
 * furthest caller that reaches it (cycles cut after as many passes as
 * there are services).
 */
export function graphColumns(edges) {
  const nodes = [...new Set(edges.flatMap((e) => [e.parent, e.child]))].sort();
  const column = new Map(nodes.map((n) => [n, 0]));
  for (let pass = 0; pass < nodes.length; pass++) {
    let changed = false;
    for (const e of edges) {
      if (e.parent === e.child) continue;
      const want = column.get(e.parent) + 1;
      if (want > column.get(e.child) && want < nodes.length) {
        column.set(e.child, want);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return { nodes, column };
}

/** /service-graph: which services call which, with call counts. */
export async function renderServiceGraph(main) {
  const q = new URLSearchParams(location.search);
  const lookback = el('select', { id: 'graph-lookback' }, LOOKBACKS.map((l) => el('option', { value: l }, `last ${l}`)));
  lookback.value = LOOKBACKS.includes(q.get('lookback')) ? q.get('lookback') : '24h';
  const box = el('div', { id: 'service-graph-box' });
  const draw = async () => {
    box.replaceChildren(el('div', { class: 'hint' }, 'Loading…'));
    let edges;
    try {
      edges = (await api('/api/dependencies', { params: { endTs: Date.now(), lookback: Math.round(LOOKBACK_US[lookback.value] / 1000) } })).data || [];
    } catch (e) {
      box.replaceChildren(el('div', { class: 'error-box', id: 'graph-error' }, e.message));
      return;
    }
    if (!edges.length) {
      box.replaceChildren(el('div', { class: 'nodata', id: 'graph-none' }, 'No calls between services in this time range.'));
      return;
    }
    box.replaceChildren(graphSvg(edges), edgeTable(edges));
  };
  lookback.addEventListener('change', () => {
    history.replaceState(null, '', `/service-graph?lookback=${lookback.value}`);
    draw();
  });
  main.replaceChildren(el('div', { class: 'card' },
    el('h1', {}, 'Service graph'),
    el('div', { class: 'toolbar' }, lookback, el('span', { class: 'spacer' }), el('a', { href: '/traces' }, 'Search traces')),
    box));
  await draw();
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  for (const c of children) if (c) n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return n;
}

function graphSvg(edges) {
  const { nodes, column } = graphColumns(edges);
  const W = 170;
  const H = 36;
  const GX = 90;
  const GY = 30;
  const rows = new Map();
  const pos = new Map();
  for (const n of nodes) {
    const c = column.get(n);
    const r = rows.get(c) || 0;
    rows.set(c, r + 1);
    pos.set(n, { x: 20 + c * (W + GX), y: 20 + r * (H + GY) });
  }
  const width = 40 + (Math.max(...column.values()) + 1) * (W + GX);
  const height = 40 + Math.max(...rows.values()) * (H + GY);
  const max = Math.max(...edges.map((e) => e.callCount));
  const root = svg('svg', { id: 'service-graph', width, height, viewBox: `0 0 ${width} ${height}` },
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse' },
      svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#868e96' }))));
  for (const e of edges) {
    const a = pos.get(e.parent);
    const b = pos.get(e.child);
    const x1 = a.x + W;
    const y1 = a.y + H / 2;
    const x2 = b.x;
    const y2 = b.y + H / 2;
    const back = x2 <= x1;
    const d = back
      ? `M ${a.x + W / 2} ${a.y + H} C ${a.x + W / 2} ${a.y + H + 40}, ${b.x + W / 2} ${b.y + H + 40}, ${b.x + W / 2} ${b.y + H}`
      : `M ${x1} ${y1} C ${x1 + GX / 2} ${y1}, ${x2 - GX / 2} ${y2}, ${x2} ${y2}`;
    root.append(svg('g', { class: 'edge', 'data-parent': e.parent, 'data-child': e.child },
      svg('path', { d, fill: 'none', stroke: '#868e96', 'stroke-width': 1 + (3 * e.callCount) / max, 'marker-end': 'url(#arrow)' }),
      svg('text', { x: back ? (a.x + b.x + W) / 2 : (x1 + x2) / 2, y: back ? Math.max(a.y, b.y) + H + 34 : (y1 + y2) / 2 - 6, 'text-anchor': 'middle', class: 'edge-label' }, String(e.callCount))));
  }
  for (const n of nodes) {
    const p = pos.get(n);
    root.append(svg('g', { class: 'node', 'data-service': n },
      svg('a', { href: `/traces?service=${encodeURIComponent(n)}` },
        svg('rect', { x: p.x, y: p.y, width: W, height: H, rx: 6, fill: '#fff', stroke: serviceColor(n, nodes), 'stroke-width': 2 }),
        svg('text', { x: p.x + W / 2, y: p.y + H / 2 + 4, 'text-anchor': 'middle' }, n.length > 22 ? n.slice(0, 21) + '…' : n))));
  }
  return el('div', { class: 'graph-scroll' }, root);
}

function edgeTable(edges) {
  return el('table', { class: 'data', id: 'service-graph-table' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Caller'), el('th', {}, 'Callee'), el('th', { class: 'num' }, 'Calls'))),
    el('tbody', {}, [...edges].sort((a, b) => b.callCount - a.callCount).map((e) => el('tr', {},
      el('td', {}, e.parent), el('td', {}, e.child), el('td', { class: 'num' }, String(e.callCount))))));
}
