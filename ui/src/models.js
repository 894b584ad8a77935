// models.js: the Models pages. /models lists every model the prediction
// API knows with its versions, traffic, latest accuracy or error, share of
// drifted features, open alerts and ground-truth delay; /models/<name>
// shows one model (feature × time drift heatmap, a feature's reference and
// current distributions with its drift figures, performance over time with
// the span whose actuals are still arriving, feature importance);
// /models/<name>/compare puts two versions side by side (A/B).
//
// Every figure is a series the model-quality engine writes
// (docs/models.md), read with PromQL, and every chart links to its query
// in the explorer; the distributions come from
// /api/v1/models/<name>/distribution. Nothing is computed here but
// differences of two shown values and shares of a sum.

import { el, api, ApiError, formatDuration, formatValue, ago, firstDataTime } from './util.js';
import { alignSeries, timeChart } from './chart.js';

/** Classification metrics (higher is better) and regression errors (lower is better). */
const CLASSIFICATION = ['accuracy', 'precision', 'recall', 'f1', 'roc_auc'];
const REGRESSION = ['rmse', 'mae', 'mape'];
const LOWER_IS_BETTER = new Set(REGRESSION);
const RANGES = ['15m', '1h', '3h', '6h', '12h', '24h', '7d'];
/** PSI levels: under 0.1 no drift, 0.1 to 0.25 moderate, above large (docs/drift.md). */
const PSI_MODERATE = 0.1;
const PSI_LARGE = 0.25;

// ---------------------------------------------------------------------------
// Helpers.

/** A PromQL string literal. */
export function quote(s) {
  return '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') + '"';
}

/** A value as a regular expression that matches only itself (RE2 syntax). */
export function regexEscape(v) {
  return String(v).replace(/[\\.^$|?*+()[\]{}]/g, '\\$&');
}

/** `{model="m", version="v", ...}` from pairs, empty values left out. */
export function selector(pairs) {
  const parts = Object.entries(pairs)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${k}=${quote(v)}`);
  return `{${parts.join(', ')}}`;
}

/** The explorer showing `expr` over `range` (text like "1h"). */
export function exploreHref(expr, range) {
  const q = new URLSearchParams({ expr });
  if (range) q.set('range', range);
  return '/graph?' + q;
}

function queryLink(expr, range, text = 'Query') {
  return el('a', { class: 'query-link', href: exploreHref(expr, range), title: expr, 'data-query': expr }, `${text} ↗`);
}

/** Which version is better on `metric` given B − A and its p-value. */
export function verdict(metric, diff, p, a, b, alpha = 0.05) {
  if (diff === null || diff === undefined || Number.isNaN(diff)) return { better: null, text: `No ${metric} for both versions yet.` };
  if (p === null || p === undefined || Number.isNaN(p)) return { better: null, text: `${metric}: no test between ${a} and ${b}.` };
  const confidence = p < 1e-4 ? 'over 99.99%' : `${((1 - p) * 100).toFixed(2)}%`;
  if (p >= alpha || diff === 0) {
    return { better: null, confidence: 1 - p, text: `No significant difference on ${metric} (p = ${pText(p)}): neither version is better at the ${((1 - alpha) * 100).toFixed(0)}% level.` };
  }
  const bBetter = LOWER_IS_BETTER.has(metric) ? diff < 0 : diff > 0;
  const [win, lose] = bBetter ? [b, a] : [a, b];
  return { better: win, confidence: 1 - p, text: `${win} is better than ${lose} on ${metric} (${metricText(metric, Math.abs(diff))} ${LOWER_IS_BETTER.has(metric) ? 'lower' : 'higher'}), p = ${pText(p)}: ${confidence} confidence.` };
}

export function pText(p) {
  if (p === null || p === undefined || Number.isNaN(p)) return '–';
  // A double holds nothing smaller: the test's p-value underflowed.
  if (p === 0) return '< 1e-300';
  if (p < 1e-4) return p.toExponential(1);
  return p.toFixed(4);
}

function metricText(metric, v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (CLASSIFICATION.includes(metric)) return v.toFixed(3);
  return formatValue(v, 'none', 3);
}

/** The instant vector of `expr`: [{metric, value}], empty on error. */
async function vector(expr) {
  try {
    const data = await api('/api/v1/query', { params: { query: expr } });
    return (data.result || []).map((r) => ({ metric: r.metric, value: parseFloat(r.value[1]) }));
  } catch (e) {
    console.warn(`query ${expr}: ${e.message}`);
    return [];
  }
}

/** The open (firing or pending) alerts of `model`, or of every model. */
async function modelAlerts(model) {
  try {
    const data = await api('/api/v1/alerts');
    return (data.alerts || []).filter((a) => a.labels && a.labels.model && a.state !== 'inactive' && (!model || a.labels.model === model) && (a.labels.category === 'model-quality' || /^Model/.test(a.labels.alertname || '')));
  } catch {
    return [];
  }
}

function alertBadges(alerts) {
  if (!alerts.length) return el('span', { class: 'badge ok', 'data-alerts': '0' }, 'none');
  const byName = new Map();
  for (const a of alerts) {
    const k = `${a.labels.alertname} ${a.state}`;
    byName.set(k, (byName.get(k) || 0) + 1);
  }
  return el('span', { 'data-alerts': String(alerts.length) }, [...byName].map(([k, n]) => el('span', { class: 'badge ' + k.split(' ')[1], title: k }, n > 1 ? `${k} ×${n}` : k)));
}

const svgNs = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** The colour of a PSI value: green, amber from 0.1, red from 0.25. */
export function psiColor(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '#f1f3f5';
  if (v < PSI_MODERATE) return `hsl(140, 45%, ${92 - (v / PSI_MODERATE) * 22}%)`;
  if (v < PSI_LARGE) return `hsl(${45 - ((v - PSI_MODERATE) / (PSI_LARGE - PSI_MODERATE)) * 15}, 90%, 62%)`;
  return `hsl(355, 75%, ${Math.max(38, 55 - Math.min(v - PSI_LARGE, 1) * 17)}%)`;
}

/**
 * Since when a series has been at or above `threshold`: the first point
 * of its last unbroken run of such values up to its latest value (gaps
 * end a run). `before` when the run starts at the first value charted:
 * it may have begun earlier.
 * Null when the latest value is below the threshold or missing.
 */
export function driftingSince(xs, values, threshold) {
  let i = values.length - 1;
  while (i >= 0 && values[i] === null) i--;
  if (i < 0 || values[i] < threshold) return null;
  while (i > 0 && values[i - 1] !== null && values[i - 1] >= threshold) i--;
  const first = values.findIndex((v) => v !== null);
  return { t: xs[i], before: i === first };
}

/** Range text ("1h") from the URL, kept to the offered ranges. */
function rangeParam(params) {
  const r = params.get('range');
  return RANGES.includes(r) ? r : '1h';
}

/**
 * The time span to chart: the last `range`, or from the model's first
 * series sample when that is later (a young model fills the chart).
 */
async function span(model, range) {
  const end = Math.floor(Date.now() / 1000);
  const want = end - Math.round(formatMs(range) / 1000);
  let first = end;
  try {
    const t = await firstDataTime(`osprey_model_records${selector({ model })}`, end - want, end);
    if (t !== null) first = t;
  } catch (e) {
    console.warn(e.message);
  }
  const start = Math.max(want, Math.floor(first) - 1);
  const step = Math.max(1, Math.ceil((end - start) / 120));
  return { start: end - Math.ceil((end - start) / step) * step, end, step };
}

function formatMs(range) {
  const m = /^(\d+)([mhd])$/.exec(range);
  return m ? +m[1] * { m: 60e3, h: 3600e3, d: 86400e3 }[m[2]] : 3600e3;
}

async function rangeQuery(expr, s) {
  const data = await api('/api/v1/query_range', { params: { query: expr, start: s.start, end: s.end, step: s.step } });
  return data.result || [];
}

function versionsOf(records, model) {
  return records
    .filter((r) => r.metric.model === model && r.metric.version !== undefined)
    .sort((a, b) => b.value - a.value || a.metric.version.localeCompare(b.metric.version))
    .map((r) => ({ version: r.metric.version, records: r.value }));
}

function unavailable(main, title, e) {
  const msg = e instanceof ApiError && (e.status === 404 || e.status === 405) ? 'The model API is not available on this server.' : `Cannot load the models: ${e.message}`;
  main.replaceChildren(el('h1', {}, title), el('div', { class: 'unavailable', 'data-state': 'unavailable' }, msg));
}

// ---------------------------------------------------------------------------
// The list.

/** The models table (also on the home page); null when there are no models. */
export async function modelsTable(names) {
  if (!names.length) return null;
  const [records, accuracy, rmse, share, drifted, delay, pending, alerts] = await Promise.all([
    vector('osprey_model_records'),
    vector('osprey_model_accuracy'),
    vector('osprey_model_rmse'),
    vector('osprey_model_drift_share'),
    vector('osprey_model_drifted_features'),
    vector('osprey_model_actuals_delay_seconds'),
    vector('osprey_model_pending_actuals'),
    modelAlerts(null),
  ]);
  const of = (list, model, version) => {
    const r = list.find((x) => x.metric.model === model && (version === undefined || x.metric.version === version));
    return r ? r.value : null;
  };
  const rows = names.map((name) => {
    const versions = versionsOf(records, name);
    const total = versions.reduce((s, v) => s + v.records, 0);
    const perf = versions.map((v) => {
      const a = of(accuracy, name, v.version);
      if (a !== null) return { v: v.version, text: `accuracy ${metricText('accuracy', a)}` };
      const e = of(rmse, name, v.version);
      return { v: v.version, text: e === null ? 'no actuals yet' : `RMSE ${metricText('rmse', e)}` };
    });
    const shares = versions.map((v) => ({ v: v.version, share: of(share, name, v.version), n: of(drifted, name, v.version) }));
    const worst = shares.reduce((m, s) => (s.share !== null && (m === null || s.share > m.share) ? s : m), null);
    const delays = versions.map((v) => of(delay, name, v.version)).filter((d) => d !== null);
    const meanDelay = delays.length ? Math.max(...delays) : null;
    const waiting = of(pending, name);
    const mine = alerts.filter((a) => a.labels.model === name);
    return el(
      'tr',
      { 'data-model': name },
      el('td', {}, el('a', { href: `/models/${encodeURIComponent(name)}`, class: 'model-link' }, el('strong', {}, name))),
      el('td', { 'data-field': 'versions' }, versions.length ? versions.map((v) => el('span', { class: 'tag', title: `${v.records} records in the window` }, `${v.version} ${total ? ((100 * v.records) / total).toFixed(0) : 0}%`)) : el('span', { class: 'muted' }, 'none in the window')),
      el('td', { class: 'num', 'data-field': 'traffic' }, total ? `${formatValue(total, 'short')} in the window` : '–'),
      el('td', { 'data-field': 'performance' }, perf.length ? perf.map((p, i) => el('div', { class: i ? 'muted small' : '' }, `${p.v}: ${p.text}`)) : '–'),
      el(
        'td',
        { 'data-field': 'drift' },
        worst ? el('span', { class: 'drift-pill', style: { background: worst.share >= 0.5 ? '#f8c4ca' : worst.share > 0 ? '#ffe8b3' : '#d3f0da' } }, `${(worst.share * 100).toFixed(0)}%`) : el('span', { class: 'muted' }, 'no reference yet'),
        worst && shares.length > 1 ? el('div', { class: 'muted small' }, shares.filter((s) => s.share !== null).map((s) => `${s.v} ${(s.share * 100).toFixed(0)}%`).join(' · ')) : null,
      ),
      el('td', { 'data-field': 'alerts' }, alertBadges(mine)),
      el('td', { 'data-field': 'delay' }, meanDelay === null ? el('span', { class: 'muted' }, 'no actuals yet') : formatDuration(meanDelay * 1000), waiting ? el('div', { class: 'muted small' }, `${formatValue(waiting, 'short')} waiting`) : null),
    );
  });
  return el(
    'table',
    { class: 'data model-table' },
    el('thead', {}, el('tr', {}, ['Model', 'Versions (traffic)', 'Traffic', 'Latest accuracy or error', 'Drifted features', 'Open alerts', 'Ground-truth delay'].map((h) => el('th', {}, h)))),
    el('tbody', {}, rows),
  );
}

export async function renderModelList(main) {
  main.replaceChildren(el('h1', {}, 'Models'), el('div', { class: 'hint' }, 'Loading…'));
  let names;
  try {
    names = await api('/api/v1/models');
  } catch (e) {
    return unavailable(main, 'Models', e);
  }
  const head = el('div', { class: 'section-head' }, el('h1', {}, 'Models'), el('a', { href: '/d/model-quality' }, 'Model quality dashboard'));
  const table = await modelsTable(names || []);
  if (!table) {
    main.replaceChildren(head, el('div', { class: 'nodata', 'data-state': 'empty' }, 'No models yet. Post predictions to /api/v1/models/<model>/predictions (see docs/models.md); a model appears with its first record.'));
    return;
  }
  main.replaceChildren(head, el('div', { class: 'muted small model-note' }, 'Over each model\'s window (1h unless configured). Drifted features: the share the default method of each feature calls drifted, for the version that drifts most.'), table);
}

// ---------------------------------------------------------------------------
// One model.

export async function renderModel(main, name) {
  name = decodeURIComponent(name);
  main.replaceChildren(el('div', { class: 'hint' }, 'Loading…'));
  let names;
  try {
    names = await api('/api/v1/models');
  } catch (e) {
    return unavailable(main, name, e);
  }
  if (!(names || []).includes(name)) {
    main.replaceChildren(el('h1', {}, name), el('div', { class: 'error-box' }, `No model "${name}": it appears with its first prediction.`), el('a', { href: '/models' }, 'All models'));
    return;
  }
  const params = new URLSearchParams(location.search);
  const range = rangeParam(params);
  const m = { model: name };
  const [records, alerts, accuracy] = await Promise.all([vector(`osprey_model_records${selector(m)}`), modelAlerts(name), vector(`osprey_model_accuracy${selector(m)}`)]);
  const versions = versionsOf(records, name);
  const version = versions.some((v) => v.version === params.get('version')) ? params.get('version') : versions[0] && versions[0].version;
  const classification = accuracy.length > 0 || !(await vector(`osprey_model_rmse${selector(m)}`)).length;
  const setParam = (k, v) => {
    const q = new URLSearchParams(location.search);
    q.set(k, v);
    window.osprey.navigate(`${location.pathname}?${q}`);
  };
  const head = el(
    'div',
    { class: 'section-head' },
    el('h1', {}, `Model ${name}`),
    el('span', { class: 'spacer' }),
    el('label', { class: 'ctl' }, 'Version ', el('select', { id: 'model-version', onchange: (e) => setParam('version', e.target.value) }, versions.map((v) => el('option', { value: v.version, selected: v.version === version ? true : undefined }, v.version)))),
    el('label', { class: 'ctl' }, 'Range ', el('select', { id: 'model-range', onchange: (e) => setParam('range', e.target.value) }, RANGES.map((r) => el('option', { value: r, selected: r === range ? true : undefined }, r)))),
    el('a', { href: `/models/${encodeURIComponent(name)}/compare`, id: 'compare-link' }, 'Compare versions (A/B)'),
    el('a', { href: `/d/model-quality?var-model=${encodeURIComponent(name)}` }, 'Dashboard'),
    el('a', { href: '/models' }, 'All models'),
  );
  if (!version) {
    main.replaceChildren(head, el('div', { class: 'nodata', 'data-state': 'empty' }, 'No records in the model\'s window: its figures come back with the next predictions.'));
    return;
  }
  const mv = { model: name, version };
  const sel = selector(mv);
  const perfMetric = classification ? 'accuracy' : 'rmse';
  const [perfNow, share, driftedN, pending, delay, lastPrediction] = await Promise.all([
    vector(`osprey_model_${perfMetric}${sel}`),
    vector(`osprey_model_drift_share${sel}`),
    vector(`osprey_model_drifted_features${sel}`),
    vector(`osprey_model_pending_actuals${selector(m)}`),
    vector(`osprey_model_actuals_delay_seconds${sel}`),
    vector(`osprey_model_last_prediction_timestamp_seconds${selector(m)}`),
  ]);
  const first = (v) => (v.length ? v[0].value : null);
  const delaySeconds = first(delay);
  const stat = (label, value, field, sub) => el('div', { class: 'slo-stat' }, el('div', { class: 'stat-name' }, label), el('div', { class: 'slo-stat-value', 'data-field': field }, value), sub ? el('div', { class: 'muted small' }, sub) : null);
  const v0 = versions.find((v) => v.version === version);
  const total = versions.reduce((s, v) => s + v.records, 0);
  const stats = el(
    'div',
    { class: 'slo-stats' },
    stat('Records in the window', formatValue(v0.records, 'short'), 'records', `${total ? ((100 * v0.records) / total).toFixed(0) : 0}% of the model's traffic`),
    stat(classification ? 'Accuracy' : 'RMSE', first(perfNow) === null ? '–' : metricText(perfMetric, first(perfNow)), 'performance', first(perfNow) === null ? 'no actuals joined yet' : 'over the actuals joined in the window'),
    stat('Drifted features', first(share) === null ? '–' : `${(first(share) * 100).toFixed(0)}%`, 'drift-share', first(share) === null ? 'no reference in effect yet' : `${first(driftedN)} feature(s) by their default method`),
    stat('Ground-truth delay', delaySeconds === null ? '–' : formatDuration(delaySeconds * 1000), 'delay', `${formatValue(first(pending) || 0, 'short')} predictions waiting for their actual`),
    stat('Last prediction', first(lastPrediction) === null ? '–' : ago(first(lastPrediction) * 1000), 'last-prediction'),
    el('div', { class: 'slo-stat' }, el('div', { class: 'stat-name' }, 'Open alerts'), el('div', { class: 'model-alerts' }, alertBadges(alerts))),
  );

  const heatCard = el('div', { class: 'card', id: 'drift-heatmap' }, el('div', { class: 'hint' }, 'Loading the drift heatmap…'));
  const distCard = el('div', { class: 'card', id: 'distribution' }, el('div', { class: 'hint' }, 'Loading…'));
  const perfCard = el('div', { class: 'card', id: 'performance' }, el('div', { class: 'hint' }, 'Loading…'));
  const impCard = el('div', { class: 'card', id: 'importance' }, el('div', { class: 'hint' }, 'Loading…'));
  main.replaceChildren(head, el('div', { class: 'card' }, stats), heatCard, el('div', { class: 'model-grid' }, distCard, impCard), perfCard);

  const s = await span(name, range);
  const cleanups = [];
  const [features] = await Promise.all([
    drawHeatmap(heatCard, mv, s, range, params.get('feature')),
    drawPerformance(perfCard, name, [version], perfMetric, s, range, delaySeconds, cleanups),
    drawImportance(impCard, mv, range),
  ]);
  const feature = features.includes(params.get('feature')) ? params.get('feature') : features[0];
  if (feature) await drawDistribution(distCard, mv, feature, range);
  else distCard.replaceChildren(el('h2', {}, 'Distributions'), el('div', { class: 'nodata' }, 'No drift figures yet: a reference must be in effect (upload one, or wait for the first complete window).'));
  return () => cleanups.forEach((c) => c());
}

/** The feature × time heatmap of PSI; returns the features, most drifted first. */
async function drawHeatmap(card, mv, s, range, chosen) {
  const expr = `osprey_model_feature_drift${selector({ ...mv, method: 'psi' })}`;
  const [results, drifted] = await Promise.all([rangeQuery(expr, s).catch(() => []), vector(`osprey_model_feature_drifted${selector(mv)}`)]);
  const header = el('div', { class: 'section-head' }, el('h2', {}, 'Drift by feature over time (PSI)'), queryLink(expr, range));
  if (!results.length) {
    card.replaceChildren(header, el('div', { class: 'nodata' }, 'No drift figures yet: a reference must be in effect (upload one, or wait for the first complete window).'));
    return [];
  }
  const { xs, ys } = alignSeries(results, s.start, s.end, s.step);
  const rows = results.map((r, i) => {
    const values = ys[i];
    let last = null;
    for (let k = values.length - 1; k >= 0; k--) if (values[k] !== null) { last = values[k]; break; }
    const flag = drifted.find((d) => d.metric.feature === r.metric.feature);
    return { feature: r.metric.feature, values, last, since: driftingSince(xs, values, PSI_MODERATE), drifting: flag ? flag.value === 1 : false, method: flag ? flag.metric.method : '' };
  });
  rows.sort((a, b) => (b.last ?? -1) - (a.last ?? -1) || a.feature.localeCompare(b.feature));
  const labelW = 150;
  const width = Math.max(card.clientWidth - 40, 400);
  const cellW = (width - labelW - 190) / xs.length;
  const cellH = 22;
  const height = rows.length * cellH + 24;
  const g = svg('svg', { width, height, class: 'drift-heat', 'data-features': rows.length, 'data-steps': xs.length, role: 'img', 'aria-label': 'PSI per feature over time' });
  rows.forEach((row, ri) => {
    const y = ri * cellH;
    const label = svg('text', { x: labelW - 6, y: y + cellH / 2 + 4, 'text-anchor': 'end', class: 'heat-label' + (row.feature === chosen ? ' chosen' : ''), 'data-feature': row.feature }, row.feature);
    g.append(label);
    row.values.forEach((v, i) => {
      if (v === null) return;
      g.append(svg('rect', { x: labelW + i * cellW, y: y + 1, width: Math.max(cellW, 1) + 0.5, height: cellH - 2, fill: psiColor(v) }, svg('title', {}, `${row.feature} at ${new Date(xs[i] * 1000).toLocaleTimeString()}: PSI ${v.toFixed(3)}`)));
    });
    g.append(svg('text', { x: labelW + xs.length * cellW + 6, y: y + cellH / 2 + 4, class: 'heat-last' + (row.drifting ? ' drifting' : '') }, row.last === null ? '' : row.last.toFixed(2)));
    if (row.since) {
      const t = new Date(row.since.t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
      g.append(svg('text', { x: labelW + xs.length * cellW + 44, y: y + cellH / 2 + 4, class: 'heat-since', 'data-since': String(row.since.t) }, row.since.before ? `PSI ≥ 0.1 before ${t}` : `PSI ≥ 0.1 since ${t}`));
    }
    // The whole row selects the feature.
    const hit = svg('rect', { x: 0, y, width, height: cellH, fill: 'transparent', class: 'heat-row', 'data-feature': row.feature });
    hit.addEventListener('click', () => {
      const q = new URLSearchParams(location.search);
      q.set('feature', row.feature);
      window.osprey.navigate(`${location.pathname}?${q}`);
    });
    g.append(hit);
  });
  const ticks = Math.min(xs.length, Math.max(2, Math.floor((width - labelW) / 140)));
  const p2 = (n) => String(n).padStart(2, '0');
  const seconds = xs[xs.length - 1] - xs[0] < 600;
  for (let k = 0; k < ticks; k++) {
    const i = ticks > 1 ? Math.round((k * (xs.length - 1)) / (ticks - 1)) : 0;
    const d = new Date(xs[i] * 1000);
    g.append(svg('text', { x: labelW + i * cellW + cellW / 2, y: height - 6, 'text-anchor': 'middle', class: 'heat-tick' }, `${p2(d.getHours())}:${p2(d.getMinutes())}${seconds ? ':' + p2(d.getSeconds()) : ''}`));
  }
  const legend = el(
    'div',
    { class: 'heat-legend muted small' },
    ['0', '0.05', '0.1', '0.2', '0.3'].map((t) => el('span', {}, el('i', { style: { background: psiColor(+t) } }), t)),
    ' PSI: under 0.1 stable, 0.1–0.25 moderate, above 0.25 large. Bold: drifting now by the feature\'s default method. Click a feature for its distributions.',
  );
  card.replaceChildren(header, g, legend);
  return rows.map((r) => r.feature);
}

/** The reference and current distributions of one feature, with its drift figures. */
async function drawDistribution(card, mv, feature, range) {
  const fsel = selector({ ...mv, feature });
  const figuresExpr = `osprey_model_feature_drift${fsel}`;
  const dataUrl = `/api/v1/models/${encodeURIComponent(mv.model)}/distribution?${new URLSearchParams({ feature, version: mv.version })}`;
  const [d, figures, drifted, missing, outOfRange, newCategory] = await Promise.all([
    api(dataUrl).catch((e) => ({ error: e.message })),
    vector(figuresExpr),
    vector(`osprey_model_feature_drifted${fsel}`),
    vector(`osprey_model_feature_missing_ratio${fsel}`),
    vector(`osprey_model_feature_out_of_range_ratio${fsel}`),
    vector(`osprey_model_feature_new_category_ratio${fsel}`),
  ]);
  const header = el('div', { class: 'section-head' }, el('h2', {}, `Distribution of ${feature}`), queryLink(figuresExpr, range, 'Drift figures'), el('a', { class: 'query-link', href: dataUrl }, 'Data ↗'));
  if (d.error) {
    card.replaceChildren(header, el('div', { class: 'nodata' }, d.error));
    return;
  }
  const chart = d.kind === 'numeric' ? histogramSvg(d) : categorySvg(d);
  const flag = drifted[0];
  const verdictBox = flag
    ? el('div', { class: 'drift-verdict ' + (flag.value === 1 ? 'drifting' : 'stable'), 'data-drifting': String(flag.value === 1) }, flag.value === 1 ? `Drifting: ${flag.metric.method} says the current distribution differs from the reference.` : `Stable by ${flag.metric.method}.`)
    : null;
  const order = ['psi', 'kl', 'js', 'ks', 'ks_pvalue', 'wasserstein', 'chi2_pvalue', 'z_pvalue'];
  const rows = figures
    .sort((a, b) => order.indexOf(a.metric.method) - order.indexOf(b.metric.method))
    .map((f) => el('tr', { class: flag && flag.metric.method === f.metric.method ? 'default-method' : '' }, el('td', {}, f.metric.method + (flag && flag.metric.method === f.metric.method ? ' (default)' : '')), el('td', { class: 'num' }, f.metric.method.endsWith('pvalue') ? pText(f.value) : f.value.toFixed(4))));
  const extra = [
    ['missing', missing],
    ['out of the reference\'s range', outOfRange],
    ['new categories', newCategory],
  ]
    .filter(([, v]) => v.length)
    .map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', { class: 'num' }, `${(v[0].value * 100).toFixed(1)}%`)));
  card.replaceChildren(
    header,
    el('div', { class: 'muted small' }, `${d.kind}: reference ${formatValue(d.reference_count, 'short')} values, version ${d.version} ${formatValue(d.current_count, 'short')} in the window${d.sketched ? ' (partly summarised: shares within the KS error bound)' : ''}.`),
    el('div', { class: 'dist-wrap' }, chart, el('div', { class: 'dist-figures' }, verdictBox, el('table', { class: 'data drift-figures' }, el('thead', {}, el('tr', {}, el('th', {}, 'Figure'), el('th', {}, 'Value'))), el('tbody', {}, rows, extra)))),
  );
}

function legendSvg(x, y) {
  return [
    svg('rect', { x, y, width: 12, height: 12, fill: 'rgba(120,130,140,0.45)' }),
    svg('text', { x: x + 16, y: y + 10, class: 'dist-legend' }, 'reference'),
    svg('rect', { x: x + 90, y, width: 12, height: 12, fill: 'rgba(31,96,196,0.55)' }),
    svg('text', { x: x + 106, y: y + 10, class: 'dist-legend' }, 'current'),
  ];
}

/** Numeric: the two histograms overlaid (shares of equal-width bins). */
function histogramSvg(d) {
  const h = d.histogram;
  const W = 520;
  const H = 240;
  const left = 44;
  const bottom = 36;
  const top = 20;
  const n = h.reference.length;
  const max = Math.max(...h.reference, ...h.current, 1e-9);
  const bw = (W - left - 8) / n;
  const y = (v) => top + (H - top - bottom) * (1 - v / max);
  const g = svg('svg', { width: W, height: H, class: 'dist-chart', 'data-kind': 'numeric', 'data-bins': n });
  g.append(...legendSvg(left, 2));
  for (let i = 0; i < n; i++) {
    const x = left + i * bw;
    const tip = (side, v) => svg('title', {}, `[${formatValue(h.edges[i], 'none', 3)}, ${formatValue(h.edges[i + 1], 'none', 3)}${i === n - 1 ? ']' : ')'}: ${side} ${(v * 100).toFixed(1)}%`);
    g.append(svg('rect', { x: x + 1, y: y(h.reference[i]), width: bw - 2, height: H - bottom - y(h.reference[i]), fill: 'rgba(120,130,140,0.45)', class: 'bar-reference' }, tip('reference', h.reference[i])));
    g.append(svg('rect', { x: x + 1, y: y(h.current[i]), width: bw - 2, height: H - bottom - y(h.current[i]), fill: 'rgba(31,96,196,0.55)', class: 'bar-current' }, tip('current', h.current[i])));
  }
  g.append(svg('line', { x1: left, x2: W - 8, y1: H - bottom, y2: H - bottom, stroke: '#999' }));
  for (const k of [0, Math.floor(n / 2), n]) {
    g.append(svg('text', { x: left + k * bw, y: H - bottom + 14, 'text-anchor': 'middle', class: 'heat-tick' }, formatValue(h.edges[k], 'none', 2)));
  }
  g.append(svg('text', { x: left - 4, y: top + 8, 'text-anchor': 'end', class: 'heat-tick' }, `${(max * 100).toFixed(0)}%`));
  g.append(svg('text', { x: left - 4, y: H - bottom, 'text-anchor': 'end', class: 'heat-tick' }, '0'));
  g.append(svg('text', { x: (W + left) / 2, y: H - 6, 'text-anchor': 'middle', class: 'muted-text' }, 'share of values per bin (20 equal-width bins)'));
  return g;
}

/** Categorical: reference and current share side by side per category. */
function categorySvg(d) {
  const cats = d.categories || [];
  const W = 560;
  const rowH = 26;
  const left = 120;
  const top = 22;
  const H = top + cats.length * rowH + 8;
  const max = Math.max(...cats.map((c) => Math.max(c.reference, c.current)), 1e-9);
  const x = (v) => ((W - left - 90) * v) / max;
  const g = svg('svg', { width: W, height: H, class: 'dist-chart', 'data-kind': 'categorical', 'data-bins': cats.length });
  g.append(...legendSvg(left, 2));
  cats.forEach((c, i) => {
    const y = top + i * rowH;
    g.append(svg('text', { x: left - 6, y: y + 16, 'text-anchor': 'end', class: 'heat-label' }, c.value === '' ? '(empty)' : c.value));
    g.append(svg('rect', { x: left, y: y + 2, width: x(c.reference), height: 10, fill: 'rgba(120,130,140,0.55)', class: 'bar-reference' }, svg('title', {}, `reference ${(c.reference * 100).toFixed(1)}%`)));
    g.append(svg('rect', { x: left, y: y + 13, width: x(c.current), height: 10, fill: 'rgba(31,96,196,0.65)', class: 'bar-current' }, svg('title', {}, `current ${(c.current * 100).toFixed(1)}%`)));
    g.append(svg('text', { x: left + Math.max(x(c.reference), x(c.current)) + 4, y: y + 16, class: 'heat-tick' }, `${(c.reference * 100).toFixed(0)}% → ${(c.current * 100).toFixed(0)}%`));
  });
  return g;
}

/** Performance over time per version, the span whose actuals are still arriving shaded. */
async function drawPerformance(card, model, versions, metric, s, range, delaySeconds, cleanups) {
  const expr = `osprey_model_${metric}${selector({ model, version: versions.length === 1 ? versions[0] : undefined })}`;
  const ratioExpr = `osprey_model_actuals_ratio${selector({ model, version: versions.length === 1 ? versions[0] : undefined })}`;
  const [results, ratios] = await Promise.all([rangeQuery(expr, s).catch(() => []), rangeQuery(ratioExpr, s).catch(() => [])]);
  const mine = (rs) => rs.filter((r) => versions.includes(r.metric.version)).sort((a, b) => versions.indexOf(a.metric.version) - versions.indexOf(b.metric.version));
  const series = [...mine(results).map((r) => ({ r, name: `${metric} ${r.metric.version}` })), ...mine(ratios).map((r) => ({ r, name: `actuals joined ${r.metric.version}` }))];
  const header = el('div', { class: 'section-head' }, el('h2', {}, `Performance over time (${metric})`), queryLink(expr, range), queryLink(ratioExpr, range, 'Actuals joined'));
  if (!mine(results).length) {
    card.replaceChildren(header, el('div', { class: 'nodata' }, `No ${metric} yet: it needs actuals joined to predictions in the window.`));
    return;
  }
  const { xs, ys } = alignSeries(series.map((x) => x.r), s.start, s.end, s.step);
  const box = el('div', { class: 'chart perf-chart' });
  const note = delaySeconds
    ? `Shaded: the last ${formatDuration(delaySeconds * 1000)} (the mean ground-truth delay). Predictions made then mostly have no actual yet, so how well the model does on them is not known: each point is the ${metric} over the actuals joined by its time.`
    : 'No ground-truth delay measured yet: no actual has been joined.';
  card.replaceChildren(header, el('div', { class: 'muted small', 'data-field': 'missing-actuals' }, note), box);
  const shade = delaySeconds ? { from: s.end - delaySeconds, to: s.end, label: 'actuals still arriving' } : null;
  const chart = timeChart(box, { names: series.map((x) => x.name), xs, ys, unit: LOWER_IS_BETTER.has(metric) ? 'none' : 'percentunit', height: 240, shade, min: LOWER_IS_BETTER.has(metric) ? undefined : 0, max: LOWER_IS_BETTER.has(metric) ? undefined : 1 });
  box.dataset.shaded = shade ? '1' : '0';
  cleanups.push(() => chart.destroy());
}

/** Feature importance (mean |SHAP|) and its rank change against the reference. */
async function drawImportance(card, mv, range) {
  const expr = `osprey_model_feature_importance${selector(mv)}`;
  const rankExpr = `osprey_model_feature_importance_rank_change${selector(mv)}`;
  const [imp, rank] = await Promise.all([vector(expr), vector(rankExpr)]);
  const header = el('div', { class: 'section-head' }, el('h2', {}, 'Feature importance (mean |SHAP|)'), queryLink(expr, range), queryLink(rankExpr, range, 'Rank change'));
  if (!imp.length) {
    card.replaceChildren(header, el('div', { class: 'nodata' }, 'No importance: the predictions carry no shap values.'));
    return;
  }
  imp.sort((a, b) => b.value - a.value || a.metric.feature.localeCompare(b.metric.feature));
  const max = Math.max(...imp.map((i) => i.value), 1e-12);
  const W = 460;
  const left = 120;
  const rowH = 24;
  const g = svg('svg', { width: W, height: imp.length * rowH + 4, class: 'importance-chart', 'data-features': imp.length });
  imp.forEach((f, i) => {
    const y = i * rowH;
    const r = rank.find((x) => x.metric.feature === f.metric.feature);
    const change = r ? r.value : null;
    const changeText = change === null ? '' : change > 0 ? `▲${change}` : change < 0 ? `▼${-change}` : '=';
    g.append(svg('text', { x: left - 6, y: y + 16, 'text-anchor': 'end', class: 'heat-label' }, f.metric.feature));
    g.append(svg('rect', { x: left, y: y + 4, width: ((W - left - 110) * f.value) / max, height: 16, fill: '#5794f2' }, svg('title', {}, `mean |SHAP| ${f.value.toFixed(4)}`)));
    g.append(svg('text', { x: left + ((W - left - 110) * f.value) / max + 4, y: y + 16, class: 'heat-tick' }, f.value.toFixed(3)));
    g.append(svg('text', { x: W - 4, y: y + 16, 'text-anchor': 'end', class: 'rank-change ' + (change > 0 ? 'up' : change < 0 ? 'down' : ''), 'data-rank-change': change === null ? '' : String(change) }, changeText));
  });
  card.replaceChildren(header, g, el('div', { class: 'muted small' }, '▲n: n places higher than on the reference; ▼n: lower.'));
}

// ---------------------------------------------------------------------------
// Versions side by side.

export async function renderCompare(main, name) {
  name = decodeURIComponent(name);
  main.replaceChildren(el('div', { class: 'hint' }, 'Loading…'));
  const params = new URLSearchParams(location.search);
  const range = rangeParam(params);
  const m = { model: name };
  const [records, comparisons, pvalues, accuracy] = await Promise.all([
    vector(`osprey_model_records${selector(m)}`),
    vector(`osprey_model_version_comparison${selector(m)}`),
    vector(`osprey_model_version_comparison_pvalue${selector(m)}`),
    vector(`osprey_model_accuracy${selector(m)}`),
  ]);
  const versions = versionsOf(records, name);
  const back = el('a', { href: `/models/${encodeURIComponent(name)}` }, `Model ${name}`);
  if (versions.length < 2) {
    main.replaceChildren(el('div', { class: 'section-head' }, el('h1', {}, `${name}: versions side by side`), back), el('div', { class: 'nodata', 'data-state': 'empty' }, 'Only one version has records in the window: nothing to compare.'));
    return;
  }
  const baseline = comparisons.length ? comparisons[0].metric.baseline : versions[0].version;
  const has = (v) => versions.some((x) => x.version === v);
  const a = has(params.get('a')) ? params.get('a') : baseline;
  const b = has(params.get('b')) && params.get('b') !== a ? params.get('b') : versions.find((v) => v.version !== a).version;
  const classification = accuracy.length > 0;
  const metrics = classification ? CLASSIFICATION : REGRESSION;
  const names = [...metrics.map((x) => `osprey_model_${x}`), 'osprey_model_drift_share', 'osprey_model_actuals_delay_seconds', 'osprey_model_actuals_ratio'];
  const values = await Promise.all(names.map((n) => vector(`${n}${selector(m)}`)));
  const psiPred = await vector(`osprey_model_prediction_drift${selector({ ...m, method: 'psi' })}`);
  const valueOf = (list, v) => {
    const r = list.find((x) => x.metric.version === v);
    return r ? r.value : null;
  };
  // The tests between A and B, for any pair (the series test each version
  // against the baseline only; they are the fallback).
  const pair = await api(`/api/v1/models/${encodeURIComponent(name)}/compare`, { params: { a, b } }).catch((e) => {
    console.warn(e.message);
    return null;
  });
  /** The test of B against A. */
  const test = (metric) => {
    const f = pair && (pair.figures || []).find((x) => x.metric === metric && x.p_value !== null && x.p_value !== undefined);
    if (f) return { p: f.p_value, diff: f.difference, test: f.test };
    const direct = (list) => list.find((x) => x.metric.version === b && x.metric.baseline === a && x.metric.metric === metric);
    const reverse = (list) => list.find((x) => x.metric.version === a && x.metric.baseline === b && x.metric.metric === metric);
    if (direct(pvalues)) return { p: direct(pvalues).value, diff: direct(comparisons) ? direct(comparisons).value : null };
    if (reverse(pvalues)) return { p: reverse(pvalues).value, diff: reverse(comparisons) ? -reverse(comparisons).value : null };
    return null;
  };
  const total = versions.reduce((s, v) => s + v.records, 0);
  const ra = versions.find((v) => v.version === a).records;
  const rb = versions.find((v) => v.version === b).records;
  const split = el(
    'div',
    { class: 'traffic-split', 'data-a': String(ra), 'data-b': String(rb) },
    el('div', { class: 'split-a', style: { width: `${(100 * ra) / (ra + rb)}%` } }, `${a} ${((100 * ra) / (ra + rb)).toFixed(1)}%`),
    el('div', { class: 'split-b', style: { width: `${(100 * rb) / (ra + rb)}%` } }, `${b} ${((100 * rb) / (ra + rb)).toFixed(1)}%`),
  );
  const fmtFigure = (n, v) => {
    if (v === null) return '–';
    if (n === 'osprey_model_actuals_delay_seconds') return formatDuration(v * 1000);
    if (n === 'osprey_model_drift_share' || n === 'osprey_model_actuals_ratio') return `${(v * 100).toFixed(1)}%`;
    return metricText(n.replace('osprey_model_', ''), v);
  };
  const labelOf = { osprey_model_drift_share: 'drifted features', osprey_model_actuals_delay_seconds: 'ground-truth delay', osprey_model_actuals_ratio: 'actuals joined' };
  const rows = [
    el('tr', { 'data-figure': 'records' }, el('td', {}, 'records in the window'), el('td', { class: 'num' }, formatValue(ra, 'short')), el('td', { class: 'num' }, formatValue(rb, 'short')), el('td', { class: 'num' }, formatValue(rb - ra, 'short')), el('td', { class: 'num muted' }, '')),
    ...names.map((n, i) => {
      const va = valueOf(values[i], a);
      const vb = valueOf(values[i], b);
      if (va === null && vb === null) return null;
      const metric = n.replace('osprey_model_', '');
      const t = metrics.includes(metric) ? test(metric) : null;
      const diff = va !== null && vb !== null ? vb - va : null;
      const diffText = diff === null ? '–' : (diff > 0 ? '+' : '') + (n === 'osprey_model_actuals_delay_seconds' ? formatDuration(Math.abs(diff) * 1000).replace(/^/, diff < 0 ? '−' : '') : fmtFigure(n, diff));
      return el('tr', { 'data-figure': metric }, el('td', {}, labelOf[n] || metric), el('td', { class: 'num' }, fmtFigure(n, va)), el('td', { class: 'num' }, fmtFigure(n, vb)), el('td', { class: 'num' }, diffText), el('td', { class: 'num', 'data-field': 'pvalue' }, t ? pText(t.p) : el('span', { class: 'muted' }, 'no test')));
    }),
    (() => {
      const va = valueOf(psiPred, a);
      const vb = valueOf(psiPred, b);
      if (va === null && vb === null) return null;
      return el('tr', { 'data-figure': 'prediction_drift' }, el('td', {}, 'prediction drift (PSI)'), el('td', { class: 'num' }, va === null ? '–' : va.toFixed(3)), el('td', { class: 'num' }, vb === null ? '–' : vb.toFixed(3)), el('td', { class: 'num' }, va !== null && vb !== null ? ((vb - va > 0 ? '+' : '') + (vb - va).toFixed(3)) : '–'), el('td', { class: 'num muted' }, 'no test'));
    })(),
  ];
  const tested = classification ? ['accuracy'] : ['rmse', 'mae'];
  const verdicts = tested.map((metric) => {
    const t = test(metric);
    const v = t ? verdict(metric, t.diff, t.p, a, b) : { better: null, text: `${metric}: no test yet (both versions need actuals joined in the window).` };
    return el('div', { class: 'ab-verdict' + (v.better ? ' decided' : ''), 'data-better': v.better || '', 'data-metric': metric }, v.text);
  });
  const pick = (key, current) =>
    el('select', {
      id: `compare-${key}`,
      onchange: (e) => {
        const q = new URLSearchParams(location.search);
        q.set(key, e.target.value);
        window.osprey.navigate(`${location.pathname}?${q}`);
      },
    }, versions.map((v) => el('option', { value: v.version, selected: v.version === current ? true : undefined }, v.version)));
  const perfCard = el('div', { class: 'card', id: 'compare-performance' });
  const driftCard = el('div', { class: 'card', id: 'compare-drift' });
  const cmpExpr = `osprey_model_version_comparison_pvalue${selector(m)}`;
  main.replaceChildren(
    el('div', { class: 'section-head' }, el('h1', {}, `${name}: versions side by side`), el('span', { class: 'spacer' }), el('label', { class: 'ctl' }, 'A ', pick('a', a)), el('label', { class: 'ctl' }, 'B ', pick('b', b)), back, el('a', { href: '/models' }, 'All models')),
    el('div', { class: 'card', id: 'ab-summary' }, el('h2', {}, 'Which version is better'), verdicts, el('div', { class: 'muted small' }, `Tests: ${classification ? 'accuracy by a two-proportion z-test' : 'squared and absolute errors by Welch\'s t-test'} of B against A over the actuals joined in the window; confidence is 1 − p. The alerts test each version against the baseline version (${baseline}): `, queryLink(cmpExpr, range, 'those tests'), ' ', el('a', { class: 'query-link', href: `/api/v1/models/${encodeURIComponent(name)}/compare?${new URLSearchParams({ a, b })}` }, 'Data ↗'))),
    el('div', { class: 'card' }, el('h2', {}, 'Traffic split'), split, el('div', { class: 'muted small' }, `${a} and ${b} hold ${((100 * (ra + rb)) / total).toFixed(0)}% of the model's ${formatValue(total, 'short')} records in the window. `, queryLink(`osprey_model_records${selector(m)}`, range))),
    el('div', { class: 'card' }, el('div', { class: 'section-head' }, el('h2', {}, 'Figures'), queryLink(`{__name__=~"osprey_model_(${metrics.join('|')}|drift_share|actuals_delay_seconds|actuals_ratio|records)", model=${quote(name)}, version=~${quote([a, b].map(regexEscape).join('|'))}}`, range)), el('table', { class: 'data ab-table' }, el('thead', {}, el('tr', {}, ['Figure', `A: ${a}`, `B: ${b}`, 'B − A', 'p-value'].map((h) => el('th', {}, h)))), el('tbody', {}, rows))),
    perfCard,
    driftCard,
  );
  const s = await span(name, range);
  const delay = await vector(`osprey_model_actuals_delay_seconds${selector(m)}`);
  const delaySeconds = delay.length ? Math.max(...delay.map((d) => d.value)) : null;
  const cleanups = [];
  await drawPerformance(perfCard, name, [a, b], classification ? 'accuracy' : 'rmse', s, range, delaySeconds, cleanups);
  // Drift per feature side by side.
  const psiExpr = `osprey_model_feature_drift${selector({ ...m, method: 'psi' })}`;
  const psi = await vector(psiExpr);
  const features = [...new Set(psi.map((x) => x.metric.feature))].sort();
  const psiOf = (f, v) => {
    const r = psi.find((x) => x.metric.feature === f && x.metric.version === v);
    return r ? r.value : null;
  };
  driftCard.replaceChildren(
    el('div', { class: 'section-head' }, el('h2', {}, 'Drift per feature (PSI against the reference)'), queryLink(psiExpr, range)),
    features.length
      ? el('table', { class: 'data ab-drift' }, el('thead', {}, el('tr', {}, ['Feature', a, b, 'B − A'].map((h) => el('th', {}, h)))), el('tbody', {}, features.map((f) => {
          const [x, y] = [psiOf(f, a), psiOf(f, b)];
          const cell = (v) => el('td', { class: 'num', style: { background: psiColor(v), color: v !== null && v >= PSI_LARGE ? '#fff' : '' } }, v === null ? '–' : v.toFixed(3));
          return el('tr', {}, el('td', {}, f), cell(x), cell(y), el('td', { class: 'num' }, x !== null && y !== null ? ((y - x > 0 ? '+' : '') + (y - x).toFixed(3)) : '–'));
        })))
      : el('div', { class: 'nodata' }, 'No drift figures yet.'),
  );
  return () => cleanups.forEach((c) => c());
}
