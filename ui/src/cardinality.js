// cardinality.js: the Cardinality page (/cardinality). Which metric names,
// label names and label-value pairs hold the most series, from
// /api/v1/status/tsdb (docs/cardinality.md) with its match[], focusLabel,
// topN and date parameters; how the number of series grew, from the head
// series self-metric; and which scrape targets add the most series, from
// the per-target scrape_series_added and scrape_samples_scraped series.
// Every row links to the explorer with the selector of its series.

import { el, api, formatValue } from './util.js';
import { alignSeries, timeChart } from './chart.js';

/** A label value quoted for a PromQL selector. */
export function quoteValue(v) {
  return '"' + String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') + '"';
}

/** Whether a label or metric name needs no quoting in a selector. */
function plainName(n) {
  return /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(n);
}

/** A selector for one matcher, with `__name__="x"` written as `x` where it can be. */
function matcherText(name, value, op = '=') {
  const n = plainName(name) ? name : quoteValue(name);
  return `${n}${op}${quoteValue(value)}`;
}

/**
 * The selector of a row's series: `kind` is 'metric' (a metric name),
 * 'label' (series with that label), 'pair' (`name=value`) or 'focus'
 * (a value of the focus label `focus`).
 */
export function rowSelector(kind, name, focus) {
  switch (kind) {
    case 'metric':
      return plainName(name) ? name : `{${matcherText('__name__', name)}}`;
    case 'label':
      return `{${matcherText(name, '', '!=')}}`;
    case 'pair': {
      const i = name.indexOf('=');
      const [n, v] = i < 0 ? [name, ''] : [name.slice(0, i), name.slice(i + 1)];
      if (n === '__name__') return rowSelector('metric', v);
      return `{${matcherText(n, v)}}`;
    }
    case 'focus':
      return `{${matcherText(focus, name)}}`;
    default:
      return '';
  }
}

/** The explorer's URL for a query, as a table or (`graph`) a chart. */
export function explorerLink(expr, graph = false) {
  return '/graph?' + new URLSearchParams(graph ? { expr } : { expr, tab: 'table' });
}

/** The page's state from the URL: selectors (match[], several allowed), focus label, topN, date, range. */
function readState() {
  const q = new URLSearchParams(location.search);
  const topN = parseInt(q.get('topN') || '', 10);
  return {
    match: q.getAll('match[]').filter((s) => s.trim() !== ''),
    focus: q.get('focusLabel') || '',
    topN: Number.isFinite(topN) && topN > 0 ? topN : 10,
    date: /^\d{4}-\d{2}-\d{2}$/.test(q.get('date') || '') ? q.get('date') : '',
    range: RANGES.includes(q.get('range')) ? q.get('range') : '1d',
  };
}

/** Goes to the page of state `s` (the router renders it). */
function go(s) {
  const q = new URLSearchParams();
  for (const m of s.match) q.append('match[]', m);
  if (s.focus) q.set('focusLabel', s.focus);
  if (s.topN !== 10) q.set('topN', String(s.topN));
  if (s.date) q.set('date', s.date);
  if (s.range !== '1d') q.set('range', s.range);
  const url = location.pathname + (q.toString() ? '?' + q : '');
  window.osprey.navigate(url);
}

const RANGES = ['1h', '6h', '1d', '7d'];
const RANGE_SECONDS = { '1h': 3600, '6h': 6 * 3600, '1d': 86400, '7d': 7 * 86400 };

/** A table of `{name, value}` rows with a share of `total` and an explorer link per row. */
function topTable(id, title, rows, { kind, focus, total, valueTitle = 'Series', note }) {
  const body = rows.length
    ? el('table', { class: 'data card-table', id },
        el('thead', {}, el('tr', {}, el('th', {}, title), el('th', { class: 'num' }, valueTitle), total ? el('th', { class: 'num' }, 'Share') : null)),
        el('tbody', {}, rows.map((r) => el('tr', {},
          el('td', {}, el('a', { href: explorerLink(rowSelector(kind, r.name, focus)), class: 'card-link' }, r.name === '' ? '(empty)' : r.name)),
          el('td', { class: 'num' }, String(r.value)),
          total ? el('td', { class: 'num' }, total > 0 ? `${((r.value / total) * 100).toFixed(1)}%` : '–') : null,
        ))))
    : el('div', { class: 'nodata' }, 'None.');
  return el('section', { class: 'card-section' }, el('h2', {}, title + (note ? ` ${note}` : '')), body);
}

/** Renders the page into `main`; returns its cleanup. */
export async function renderCardinality(main) {
  const state = readState();
  let chart = null;
  const matchBox = el('input', { id: 'card-match', class: 'card-match', placeholder: 'match[]: a selector, e.g. {job="api"}; several separated by ;', value: state.match.join('; ') });
  const focusPick = el('select', { id: 'card-focus' }, el('option', { value: '' }, '(no focus label)'));
  const topBox = el('input', { id: 'card-topn', type: 'number', min: '1', max: '1000', value: String(state.topN), style: { width: '5em' } });
  const dateBox = el('input', { id: 'card-date', type: 'date', value: state.date, title: 'Series with samples that UTC day; empty: the head (recent data in memory)' });
  const rangePick = el('select', { id: 'card-range', title: 'Range of the growth chart and of the series added per target' },
    RANGES.map((r) => el('option', { value: r, selected: r === state.range }, r)));
  const apply = (e) => {
    if (e) e.preventDefault();
    const topN = parseInt(topBox.value, 10);
    go({
      match: matchBox.value.split(';').map((s) => s.trim()).filter(Boolean),
      focus: focusPick.value,
      topN: Number.isFinite(topN) && topN > 0 ? topN : 10,
      date: dateBox.value,
      range: rangePick.value,
    });
  };
  const form = el('form', { class: 'card-form', id: 'card-form', onsubmit: apply },
    matchBox,
    el('label', {}, 'Focus label ', focusPick),
    el('label', {}, 'Top ', topBox),
    el('label', {}, 'Day ', dateBox),
    el('label', {}, 'Range ', rangePick),
    el('button', { class: 'primary', type: 'submit', id: 'card-apply' }, 'Apply'));
  const summary = el('div', { id: 'card-summary', class: 'card-summary' }, 'Loading…');
  const tables = el('div', { id: 'card-tables', class: 'card-grid' });
  const growth = el('div', { id: 'card-growth' });
  const targets = el('div', { id: 'card-targets' });
  const limits = el('div', { id: 'card-limits' });
  main.replaceChildren(
    el('h1', {}, 'Cardinality'),
    form,
    summary,
    el('section', { class: 'card-section' }, el('h2', {}, 'Series limits'), limits),
    tables,
    el('section', { class: 'card-section' }, el('h2', {}, 'Series in the head over time'), growth),
    el('section', { class: 'card-section' }, el('h2', {}, 'Targets adding the most series'), targets),
  );

  // The focus label picker: every label name, the chosen one selected.
  api('/api/v1/labels').then((names) => {
    const list = Array.isArray(names) ? names : [];
    if (state.focus && !list.includes(state.focus)) list.push(state.focus);
    for (const n of list) focusPick.append(el('option', { value: n, selected: n === state.focus }, n));
  }).catch((e) => console.warn(`labels: ${e.message}`));

  const params = { topN: state.topN, 'match[]': state.match, focusLabel: state.focus, date: state.date };
  try {
    const d = await api('/api/v1/status/tsdb', { params });
    const total = d.totalSeries ?? 0;
    summary.replaceChildren(...[
      el('span', {}, el('b', { id: 'card-total' }, String(total)), state.match.length || state.date ? ' series selected' : ' series'),
      el('span', {}, el('b', {}, String(d.totalLabelValuePairs ?? 0)), ' label-value pairs over them'),
      d.headStats ? el('span', {}, el('b', {}, String(d.headStats.numSeries)), ' series in the head') : null,
      state.date ? el('span', {}, `series with samples on ${state.date} (UTC)`) : null,
    ].filter(Boolean));
    tables.replaceChildren(...[
      topTable('card-metrics', 'Metric names', d.seriesCountByMetricName || [], { kind: 'metric', total }),
      topTable('card-label-series', 'Label names', d.seriesCountByLabelName || [], { kind: 'label', total }),
      topTable('card-label-values', 'Label names by distinct values', d.labelValueCountByLabelName || [], { kind: 'label', valueTitle: 'Values' }),
      topTable('card-pairs', 'Label-value pairs', d.seriesCountByLabelValuePair || [], { kind: 'pair', total }),
      state.focus ? topTable('card-focus-values', `Values of ${state.focus}`, d.seriesCountByFocusLabelValue || [], { kind: 'focus', focus: state.focus, total }) : null,
    ].filter(Boolean));
    limits.replaceChildren(...limitsView(d.seriesLimits));
  } catch (e) {
    summary.replaceChildren(el('div', { class: 'error-box', id: 'card-error' }, `Cannot load the statistics: ${e.message}`));
  }

  const end = Math.floor(Date.now() / 1000);
  const span = RANGE_SECONDS[state.range];
  const start = end - span;
  const step = Math.max(15, Math.ceil(span / 240));
  try {
    // Prometheus's self-metric where one is scraped, osprey's own otherwise.
    let found = null;
    for (const name of ['prometheus_tsdb_head_series', 'osprey_tsdb_head_series']) {
      const r = await api('/api/v1/query_range', { params: { query: `sum by (job, instance) (${name})`, start, end, step } });
      if ((r.result || []).length) {
        found = { name, result: r.result };
        break;
      }
    }
    if (!found) {
      growth.replaceChildren(el('div', { class: 'nodata', id: 'card-growth-none' },
        'No head-series self-metric (prometheus_tsdb_head_series or osprey_tsdb_head_series) in this range: scrape osprey\'s or Prometheus\'s /metrics to see growth.'));
    } else {
      const { xs, ys } = alignSeries(found.result, start, end, step);
      const names = found.result.map((r) => `${found.name}{job=${quoteValue(r.metric.job ?? '')},instance=${quoteValue(r.metric.instance ?? '')}}`);
      const box = el('div', { class: 'card-chart' });
      growth.replaceChildren(box, el('a', { href: explorerLink(`sum by (job, instance) (${found.name})`, true) }, 'Open in the explorer'));
      chart = timeChart(box, { names, xs, ys, height: 220 });
    }
  } catch (e) {
    growth.replaceChildren(el('div', { class: 'error-box' }, `Cannot load the growth: ${e.message}`));
  }

  try {
    const window = `${span}s`;
    const added = await api('/api/v1/query', { params: { query: `topk(${state.topN}, sum by (job, instance) (sum_over_time(scrape_series_added[${window}])))`, time: end } });
    const scraped = await api('/api/v1/query', { params: { query: 'sum by (job, instance) (scrape_samples_scraped)', time: end } });
    const key = (m) => `${m.job ?? ''}\u0000${m.instance ?? ''}`;
    const samples = new Map((scraped.result || []).map((r) => [key(r.metric), parseFloat(r.value[1])]));
    const rows = (added.result || [])
      .map((r) => ({ job: r.metric.job ?? '', instance: r.metric.instance ?? '', added: parseFloat(r.value[1]), samples: samples.get(key(r.metric)) }))
      .sort((a, b) => b.added - a.added || a.job.localeCompare(b.job) || a.instance.localeCompare(b.instance));
    if (!rows.length) {
      targets.replaceChildren(el('div', { class: 'nodata', id: 'card-targets-none' }, `No scrape target reported scrape_series_added in the last ${state.range}.`));
    } else {
      targets.replaceChildren(el('table', { class: 'data card-table', id: 'card-target-table' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Job'), el('th', {}, 'Instance'), el('th', { class: 'num' }, `Series added (${state.range})`), el('th', { class: 'num' }, 'Samples per scrape'))),
        el('tbody', {}, rows.map((r) => el('tr', {},
          el('td', {}, r.job),
          el('td', {}, el('a', { href: explorerLink(`scrape_series_added{${matcherText('job', r.job)},${matcherText('instance', r.instance)}}`, true) }, r.instance)),
          el('td', { class: 'num' }, formatValue(r.added)),
          el('td', { class: 'num' }, r.samples === undefined ? '–' : formatValue(r.samples)),
        )))));
    }
  } catch (e) {
    targets.replaceChildren(el('div', { class: 'error-box' }, `Cannot load the targets: ${e.message}`));
  }

  return () => {
    if (chart) chart.destroy();
  };
}

// The series limits in force and what they refused (seriesLimits of
// /api/v1/status/tsdb, docs/limits.md).
function limitsView(sl) {
  if (!sl) return [el('div', { class: 'nodata' }, 'This store reports no series limits.')];
  const who = (r) => (r.kind ? `${r.kind} ${r.name === '' ? '(unnamed)' : r.name}` : 'global');
  const out = [];
  const limitsList = sl.limits || [];
  if (!limitsList.length) {
    out.push(el('div', { class: 'nodata', id: 'card-limits-none' }, 'No series limits are configured (limits: in the config file).'));
  } else {
    const own = new Map((sl.writerHeadSeries || []).map((w) => [`${w.kind}\u0000${w.name}`, w.headSeries]));
    out.push(el('table', { class: 'data card-table', id: 'card-limits-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Applies to'), el('th', {}, 'Limit'), el('th', { class: 'num' }, 'Value'), el('th', { class: 'num' }, 'Now'))),
      el('tbody', {}, limitsList.map((l) => {
        let now = '–';
        if (l.limit === 'max_head_series') now = String(l.kind ? (own.get(`${l.kind}\u0000${l.name}`) ?? 0) : sl.headSeries);
        return el('tr', {}, el('td', {}, who(l)), el('td', {}, l.limit), el('td', { class: 'num' }, l.value === 0 ? 'none' : String(l.value)), el('td', { class: 'num' }, now));
      }))));
  }
  const rej = sl.rejections || [];
  if (!rej.length) {
    out.push(el('div', { class: 'nodata', id: 'card-rejections-none' }, 'No new series have been refused.'));
  } else {
    out.push(el('table', { class: 'data card-table', id: 'card-rejections-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Writer'), el('th', {}, 'Limit'), el('th', { class: 'num' }, 'Samples refused'))),
      el('tbody', {}, rej.map((r) => el('tr', {}, el('td', {}, r.kind ? who(r) : 'other writers'), el('td', {}, r.limit), el('td', { class: 'num' }, String(r.count)))))));
  }
  return out;
}
