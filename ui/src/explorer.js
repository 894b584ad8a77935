// explorer.js: the query explorer at "/": expression editor with
// autocomplete and inline errors, graph and table views, range, end,
// resolution, stacking and refresh controls, all kept in the URL.

import { el, api, parseDuration, formatDuration, formatTime, autoStep, seriesName } from './util.js';
import { attachAutocomplete } from './complete.js';
import { timeChart, alignSeries } from './chart.js';
import { splitResults, heatmapGrid, drawHeatmap, histogramCell, histogramBars, parseHistogram, formatBound } from './histogram.js';

const RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '2d', '7d', '14d', '30d'];
const REFRESH = ['', '5s', '10s', '30s', '1m', '5m'];
/** Most series drawn in one chart; more make the browser slow and the chart unreadable. */
const MAX_SERIES = 200;
/** Most histogram series drawn as heatmaps (one heatmap each). */
const MAX_HEATMAPS = 20;
/** Most exemplar markers drawn in one chart (each is a DOM element). */
const MAX_EXEMPLARS = 5000;

/** Reads the explorer state from the URL (Prometheus's g0.* names are accepted too). */
function readState() {
  const q = new URLSearchParams(location.search);
  const g = (k) => q.get(k) ?? q.get('g0.' + k);
  return {
    expr: g('expr') || '',
    tab: g('tab') === 'table' || g('tab') === '1' ? 'table' : 'graph',
    range: g('range') || g('range_input') || '1h',
    end: g('end') || g('end_input') || '',
    step: g('step') || g('step_input') || '',
    stacked: g('stacked') === '1',
    band: g('band') === '1',
    exemplars: g('exemplars') === '1' || g('show_exemplars') === '1',
    refresh: g('refresh') || '',
  };
}

function writeState(s) {
  const q = new URLSearchParams();
  if (s.expr) q.set('expr', s.expr);
  if (s.tab !== 'graph') q.set('tab', s.tab);
  if (s.range !== '1h') q.set('range', s.range);
  if (s.end) q.set('end', s.end);
  if (s.step) q.set('step', s.step);
  if (s.stacked) q.set('stacked', '1');
  if (s.band) q.set('band', '1');
  if (s.exemplars) q.set('exemplars', '1');
  if (s.refresh) q.set('refresh', s.refresh);
  const url = location.pathname + (q.toString() ? '?' + q : '');
  if (url !== location.pathname + location.search) history.replaceState(null, '', url);
}

/** How many robust standard deviations the explorer's anomaly band spans. */
const BAND_K = 3;

/**
 * The query of the anomaly band drawn behind `expr`'s series
 * (docs/anomaly.md): `anomaly_band` over a subquery at the chart's step,
 * trailing an hour or 30 steps, whichever is longer, so that each step
 * has a baseline of at least 29 values.
 */
export function bandQuery(expr, step) {
  const window = Math.max(3600, 30 * step);
  const ms = (seconds) => `${Math.round(seconds * 1000)}ms`;
  return `anomaly_band((${expr})[${ms(window)}:${ms(step)}], ${BAND_K})`;
}

/** A series' identity for matching it with its band: labels without the name and `band`. */
function bandKey(metric) {
  return JSON.stringify(
    Object.keys(metric || {})
      .filter((k) => k !== '__name__' && k !== 'band')
      .sort()
      .map((k) => [k, metric[k]]),
  );
}

/**
 * Pairs `anomaly_band` results with the series they belong to: for each
 * series of `shown` that has both a lower and an upper band series,
 * `{of, lower, upper}` with the band's matrix results.
 */
export function matchBands(shown, bandResults) {
  const byKey = new Map();
  for (const r of bandResults || []) {
    const side = r.metric && r.metric.band;
    if (side !== 'lower' && side !== 'upper') continue;
    const key = bandKey(r.metric);
    if (!byKey.has(key)) byKey.set(key, {});
    byKey.get(key)[side] = r;
  }
  const out = [];
  shown.forEach((r, of) => {
    const b = byKey.get(bandKey(r.metric));
    if (b && b.lower && b.upper) out.push({ of, lower: b.lower, upper: b.upper });
  });
  return out;
}

/**
 * The markers of a `/api/v1/query_exemplars` answer (a list of
 * `{seriesLabels, exemplars}`; null when the expression has no selectors):
 * `{t, v, labels, series}` per exemplar, values as numbers.
 */
export function exemplarMarkers(data) {
  if (!Array.isArray(data)) return [];
  const out = [];
  for (const s of data) {
    const series = seriesName(s.seriesLabels || {});
    for (const e of s.exemplars || []) out.push({ t: +e.timestamp, v: parseFloat(e.value), labels: e.labels || {}, series });
  }
  return out;
}

/** Finds a position in an error message ("1:5:", "position 4", "at char 7"); returns a 0-based offset. */
export function errorPosition(message, expr) {
  // Prometheus reports an unclosed bracket or string where the input ends;
  // the opening one is the more useful place to point at.
  if (/unclosed left|unterminated quoted string|end of input inside/.test(message)) {
    const opener = bracketError(expr);
    if (opener !== null) return opener;
  }
  let m = /(?:^|\D)(\d+):(\d+)(?::|\b)/.exec(message);
  if (m) {
    const line = parseInt(m[1], 10);
    const col = parseInt(m[2], 10);
    const lines = expr.split('\n');
    if (line >= 1 && line <= lines.length) {
      let off = 0;
      for (let i = 0; i < line - 1; i++) off += lines[i].length + 1;
      return Math.min(off + Math.max(col - 1, 0), expr.length);
    }
  }
  m = /(?:position|pos|char|offset|column|col)\s*:?\s*(\d+)/i.exec(message);
  if (m) return Math.min(parseInt(m[1], 10), expr.length);
  return bracketError(expr);
}

/**
 * The offset of the first unbalanced bracket or unterminated string in
 * `expr`, or null. Used to point at the problem when the server's parse
 * error names no position.
 */
export function bracketError(expr) {
  const stack = [];
  const pairs = { ')': '(', ']': '[', '}': '{' };
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === '`') {
      const start = i;
      for (i++; i < expr.length && expr[i] !== c; i++) if (expr[i] === '\\' && c !== '`') i++;
      if (i >= expr.length) return start;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (c === '(' || c === '[' || c === '{') {
      stack.push(i);
    } else if (pairs[c]) {
      if (!stack.length || expr[stack[stack.length - 1]] !== pairs[c]) return i;
      stack.pop();
    }
  }
  return stack.length ? stack[stack.length - 1] : null;
}

/** Renders the explorer into `main`; returns a cleanup function. */
export function renderExplorer(main) {
  const state = readState();
  let chart = null;
  let timer = null;
  let controller = null;

  const input = el('textarea', {
    class: 'expr',
    rows: 1,
    spellcheck: 'false',
    autocomplete: 'off',
    placeholder: 'Expression (press Enter to run, Shift+Enter for a new line, Ctrl+Space to complete)',
    'aria-label': 'PromQL expression',
  });
  input.value = state.expr;
  const runBtn = el('button', { class: 'primary', onclick: () => run() }, 'Execute');
  const errorBox = el('div', { class: 'error-box', role: 'alert' });
  errorBox.style.display = 'none';
  const editor = el('div', { class: 'editor' }, input);

  const tabGraph = el('button', { class: 'tab', onclick: () => setTab('graph') }, 'Graph');
  const tabTable = el('button', { class: 'tab', onclick: () => setTab('table') }, 'Table');

  const rangeInput = el('input', { class: 'range-input', value: state.range, size: 5, title: 'Range, e.g. 1h, 30m, 7d', 'aria-label': 'Range' });
  const stepRange = (dir) => {
    const cur = parseDuration(rangeInput.value) || 3600000;
    const ms = RANGES.map(parseDuration);
    let i = ms.findIndex((x) => x >= cur);
    if (i < 0) i = ms.length - 1;
    if (dir < 0) i = ms[i] === cur ? Math.max(i - 1, 0) : Math.max(i - 1, 0);
    else i = ms[i] === cur ? Math.min(i + 1, ms.length - 1) : i;
    rangeInput.value = RANGES[i];
    run();
  };
  const endInput = el('input', { type: 'datetime-local', step: 1, class: 'end-input', title: 'End time (empty: now)', 'aria-label': 'End time' });
  if (state.end) {
    const t = Date.parse(state.end);
    if (!isNaN(t)) endInput.value = localInputValue(t);
  }
  const stepInput = el('input', { class: 'step-input', value: state.step, size: 6, placeholder: 'auto', title: 'Resolution (step), e.g. 15s; empty picks one from the width', 'aria-label': 'Resolution' });
  const stacked = el('input', { type: 'checkbox', checked: state.stacked, onchange: () => run() });
  const band = el('input', { type: 'checkbox', class: 'band-toggle', checked: state.band, onchange: () => run() });
  const showExemplars = el('input', { type: 'checkbox', class: 'exemplar-toggle', checked: state.exemplars, onchange: () => run() });
  const refreshSel = el(
    'select',
    { title: 'Auto refresh', 'aria-label': 'Auto refresh', onchange: () => { setRefresh(); run(); } },
    REFRESH.map((r) => el('option', { value: r }, r ? `every ${r}` : 'no refresh')),
  );
  refreshSel.value = REFRESH.includes(state.refresh) ? state.refresh : '';

  const graphControls = el(
    'span',
    { class: 'graph-controls' },
    el('button', { onclick: () => stepRange(-1), title: 'Shorter range' }, '−'),
    rangeInput,
    el('button', { onclick: () => stepRange(1), title: 'Longer range' }, '+'),
    el('label', { class: 'ctl' }, 'until ', endInput),
    el('button', { onclick: () => { endInput.value = ''; run(); }, title: 'End at now' }, 'now'),
    el('label', { class: 'ctl' }, 'step ', stepInput),
    el('label', { class: 'ctl' }, stacked, ' stacked'),
    el('label', { class: 'ctl', title: `The range anomaly_score measures against (median ± ${BAND_K} robust σ of the trailing hour); points outside it are marked` }, band, ' anomaly band'),
    el('label', { class: 'ctl', title: 'Exemplars of the selected series (/api/v1/query_exemplars) as markers; one with a trace_id links to its trace' }, showExemplars, ' Show exemplars'),
  );
  const toolbar = el('div', { class: 'toolbar' }, tabGraph, tabTable, graphControls, el('span', { class: 'spacer' }), refreshSel);
  const output = el('div', { class: 'output' });
  const stats = el('div', { class: 'stats' });

  main.replaceChildren(
    el('div', { class: 'explorer' }, el('div', { class: 'query-row' }, editor, runBtn), errorBox, toolbar, output, stats),
  );

  attachAutocomplete(input, {});
  const grow = () => {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight + 2, 300) + 'px';
  };
  input.addEventListener('input', () => {
    grow();
    clearError();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      run();
    }
  });
  for (const i of [rangeInput, stepInput]) i.addEventListener('keydown', (e) => e.key === 'Enter' && run());
  endInput.addEventListener('change', () => run());
  requestAnimationFrame(grow);

  function setTab(t) {
    state.tab = t;
    run();
  }

  function setRefresh() {
    clearInterval(timer);
    timer = null;
    const ms = parseDuration(refreshSel.value);
    if (ms) timer = setInterval(() => run({ quiet: true }), ms);
  }

  function clearError() {
    errorBox.style.display = 'none';
    editor.classList.remove('has-error');
    const mark = editor.querySelector('.error-mark');
    if (mark) mark.remove();
  }

  function showError(message, expr) {
    errorBox.replaceChildren();
    const pos = expr === undefined ? null : errorPosition(message, expr);
    errorBox.append(el('strong', {}, 'Error: '), message);
    if (pos !== null) {
      editor.classList.add('has-error');
      errorBox.append(
        el(
          'pre',
          { class: 'error-context' },
          expr.slice(0, pos),
          el('span', { class: 'error-at' }, expr.slice(pos, pos + 1) || ' '),
          expr.slice(pos + 1),
          '\n' + ' '.repeat(expr.slice(0, pos).split('\n').pop().length) + '^',
        ),
      );
    }
    errorBox.style.display = 'block';
  }

  async function run(opts = {}) {
    state.expr = input.value.trim();
    state.range = rangeInput.value.trim() || '1h';
    state.step = stepInput.value.trim();
    state.stacked = stacked.checked;
    state.band = band.checked;
    state.exemplars = showExemplars.checked;
    state.refresh = refreshSel.value;
    state.end = endInput.value ? new Date(endInput.value).toISOString() : '';
    tabGraph.classList.toggle('active', state.tab === 'graph');
    tabTable.classList.toggle('active', state.tab === 'table');
    graphControls.style.visibility = state.tab === 'graph' ? 'visible' : 'hidden';
    writeState(state);
    if (!state.expr) {
      output.replaceChildren(
        el('div', { class: 'hint' }, 'Type an expression above, e.g. ', exampleLink('up'), ', ', exampleLink('rate(osprey_http_request_duration_seconds_count[5m])'), ' or ', exampleLink('sum by (job) (scrape_duration_seconds)'), '.'),
        el(
          'div',
          { class: 'start-cards' },
          [
            ['/d/system', 'System overview', 'CPU, memory, disk and network'],
            ['/d/gpu', 'GPU', 'Utilisation, memory, temperature, power'],
            ['/d/serving', 'Model serving', 'Request rate, latency, errors'],
            ['/d/training', 'Training', 'Loss, accuracy, throughput'],
            ['/d/alerts', 'Alerts overview', 'What is firing and pending'],
          ].map(([href, title, text]) => el('a', { class: 'start-card', href }, el('strong', {}, title), el('span', {}, text))),
        ),
      );
      stats.textContent = '';
      return;
    }
    const rangeMs = parseDuration(state.range);
    if (!rangeMs) return showError(`invalid range "${state.range}": use a duration such as 1h or 30m`);
    const endMs = state.end ? Date.parse(state.end) : Date.now();
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    if (!opts.quiet) output.classList.add('loading');
    const t0 = performance.now();
    try {
      if (state.tab === 'graph') {
        let step = state.step ? parseDuration(state.step) / 1000 : autoStep(rangeMs, Math.max(output.clientWidth, 400) / 2);
        if (!step || step <= 0) return showError(`invalid step "${state.step}": use a duration such as 15s`);
        const end = Math.floor(endMs / 1000);
        const start = end - Math.floor(rangeMs / 1000);
        // The band is a second query; when it fails (the expression is
        // not an instant vector, say) the graph is drawn without it.
        const bandData = state.band && !state.stacked
          ? api('/api/v1/query_range', { params: { query: bandQuery(state.expr, step), start, end, step }, signal }).catch((e) => (e.name === 'AbortError' ? Promise.reject(e) : { error: e.message }))
          : Promise.resolve(null);
        // Exemplars too: their failure only leaves them out.
        const exemplarData = state.exemplars
          ? api('/api/v1/query_exemplars', { params: { query: state.expr, start, end }, signal }).catch((e) => (e.name === 'AbortError' ? Promise.reject(e) : { error: e.message }))
          : Promise.resolve(null);
        const [data, bands, exemplars] = await Promise.all([api('/api/v1/query_range', { params: { query: state.expr, start, end, step }, signal }), bandData, exemplarData]);
        clearError();
        drawGraph(data, start, end, step, performance.now() - t0, bands, exemplars);
      } else {
        const data = await api('/api/v1/query', { params: { query: state.expr, time: endMs / 1000 }, signal });
        clearError();
        drawTable(data, performance.now() - t0);
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
      showError(e.message, state.expr);
    } finally {
      output.classList.remove('loading');
    }
  }

  function exampleLink(expr) {
    return el('a', { href: '#', onclick: (e) => { e.preventDefault(); input.value = expr; grow(); run(); } }, el('code', {}, expr));
  }

  function destroyChart() {
    if (chart) chart.destroy();
    chart = null;
  }

  /** Zooms to `from`..`to` (seconds): a drag on a chart or a heatmap. */
  function zoomTo(from, to) {
    const span = Math.max(Math.round(to - from), 1);
    rangeInput.value = formatDuration(span * 1000);
    endInput.value = localInputValue(to * 1000);
    stepInput.value = '';
    run();
  }

  function drawGraph(data, start, end, step, ms, bands, exemplarData) {
    destroyChart();
    if (data.resultType !== 'matrix') {
      output.replaceChildren(el('div', { class: 'nodata' }, `The expression gives a ${data.resultType}; only instant vectors can be graphed. Use the Table tab.`));
      return;
    }
    const all = data.result || [];
    if (!all.length) {
      output.replaceChildren(el('div', { class: 'nodata' }, 'No data for this range.'));
      stats.textContent = `0 series · ${Math.round(ms)} ms`;
      return;
    }
    // Float series are drawn as lines, histogram series as heatmaps
    // (docs/native-histograms.md, "UI"); a mixed result gets both.
    const { floats, histograms } = splitResults(all);
    const shown = floats.slice(0, MAX_SERIES);
    const { xs, ys } = alignSeries(shown, start, end, step);
    const anomalyBands = [];
    if (bands && !bands.error) {
      for (const b of matchBands(shown, bands.result)) {
        const { ys: aligned } = alignSeries([b.lower, b.upper], start, end, step);
        anomalyBands.push({ of: b.of, lower: aligned[0], upper: aligned[1] });
      }
    }
    const allExemplars = exemplarMarkers(exemplarData);
    // Each marker is an element; past a few thousand the page slows down.
    const exemplars = allExemplars.slice(0, MAX_EXEMPLARS);
    const box = el('div', {
      class: 'chart',
      'data-bands': bands ? anomalyBands.length : null,
      'data-exemplars': exemplarData && !exemplarData.error ? exemplars.length : null,
    });
    output.replaceChildren();
    if (shown.length) output.append(box);
    if (exemplarData && exemplarData.error) output.prepend(el('div', { class: 'warning' }, `No exemplars: ${exemplarData.error}`));
    if (allExemplars.length > exemplars.length) output.prepend(el('div', { class: 'warning' }, `Showing the first ${MAX_EXEMPLARS} of ${allExemplars.length} exemplars.`));
    if (floats.length > shown.length) output.prepend(el('div', { class: 'warning' }, `Showing the first ${MAX_SERIES} of ${floats.length} float series.`));
    if (bands && bands.error) output.prepend(el('div', { class: 'warning' }, `No anomaly band: ${bands.error}`));
    if (shown.length) {
      chart = timeChart(box, {
        names: shown.map((r) => seriesName(r.metric)),
        xs,
        ys,
        stacked: state.stacked,
        anomalyBands,
        exemplars,
        height: histograms.length ? 260 : 360,
        onZoom: zoomTo,
      });
    }
    if (histograms.length) {
      const maps = el('div', { class: 'heatmaps', 'data-series': Math.min(histograms.length, MAX_HEATMAPS) });
      output.append(maps);
      if (histograms.length > MAX_HEATMAPS) maps.append(el('div', { class: 'warning' }, `Showing heatmaps of the first ${MAX_HEATMAPS} of ${histograms.length} histogram series.`));
      for (const r of histograms.slice(0, MAX_HEATMAPS)) {
        const item = el('div', { class: 'heatmap-series' });
        maps.append(item);
        const grid = heatmapGrid(r.histograms, start, end, step);
        drawHeatmap(item, {
          ...grid,
          title: seriesName(r.metric),
          height: histograms.length > 1 ? 200 : 300,
          onPick: (i) => showColumn(i),
          onZoom: (from, to) => zoomTo(from, to),
        });
        // Below it, the distribution at one step as a bar chart: the last
        // step with a sample until a column is clicked.
        const dist = el('div', { class: 'hist-distribution' });
        item.append(dist);
        const byColumn = new Map();
        for (const p of r.histograms) byColumn.set(Math.round((Number(p[0]) - start) / step), p);
        const showColumn = (i) => {
          const p = byColumn.get(i);
          if (!p) return;
          const h = parseHistogram(p[1]);
          dist.dataset.column = i;
          dist.replaceChildren(
            el('div', { class: 'hist-key' }, `Buckets at ${formatTime(Number(p[0]) * 1000)} (count ${formatBound(h.count)}, sum ${formatBound(h.sum)}); click a column of the heatmap for another time`),
            histogramBars(h.buckets, { width: Math.max(Math.min(item.clientWidth - 20, 900), 240), height: 120 }),
          );
        };
        const last = Math.max(-1, ...byColumn.keys());
        if (last >= 0) showColumn(last);
      }
    }
    const points = all.reduce((n, r) => n + (r.values ? r.values.length : 0) + (r.histograms ? r.histograms.length : 0), 0);
    const anomalies = anomalyBands.reduce((n, b) => n + ys[b.of].filter((v, i) => v !== null && b.lower[i] !== null && b.upper[i] !== null && (v < b.lower[i] || v > b.upper[i])).length, 0);
    const bandText = bands && !bands.error ? ` · anomaly band on ${anomalyBands.length} series, ${anomalies} point${anomalies === 1 ? '' : 's'} outside` : '';
    const exemplarText = exemplarData && !exemplarData.error ? ` · ${exemplars.length} exemplar${exemplars.length === 1 ? '' : 's'}` : '';
    const histText = histograms.length ? ` · ${histograms.length} histogram series as heatmap${histograms.length === 1 ? '' : 's'}` : '';
    box.dataset.anomalies = anomalies;
    stats.textContent = `${all.length} series · ${points} points${histText}${bandText}${exemplarText} · step ${formatDuration(step * 1000)} · ${Math.round(ms)} ms · drag to zoom${shown.length ? ', click a legend entry to hide it' : ''}${histograms.length ? ', click a heatmap column for its buckets' : ''}`;
  }

  function drawTable(data, ms) {
    destroyChart();
    const rows = [];
    const t = data.resultType;
    if (t === 'vector') {
      for (const r of data.result) {
        if (r.histogram) rows.push([seriesName(r.metric), histogramCell(r.histogram[1]), true]);
        else rows.push([seriesName(r.metric), r.value ? r.value[1] : '']);
      }
    } else if (t === 'matrix') {
      for (const r of data.result) {
        if (Array.isArray(r.histograms) && r.histograms.length) {
          // Floats and histograms of one series, in time order.
          const samples = [...(r.values || []).map(([ts, v]) => [Number(ts), `${v} @${ts}`]), ...r.histograms.map(([ts, h]) => [Number(ts), histogramCell(h, { time: ts, chart: false })])];
          samples.sort((a, b) => a[0] - b[0]);
          rows.push([seriesName(r.metric), el('div', { class: 'hist-samples' }, samples.map(([, v]) => (typeof v === 'string' ? el('div', { class: 'pre' }, v) : v))), true]);
        } else {
          rows.push([seriesName(r.metric), (r.values || []).map(([ts, v]) => `${v} @${ts}`).join('\n')]);
        }
      }
    } else if (t === 'scalar' || t === 'string') {
      rows.push([t, data.result[1]]);
    }
    if (!rows.length) {
      output.replaceChildren(el('div', { class: 'nodata' }, 'Empty query result.'));
    } else {
      output.replaceChildren(
        el(
          'table',
          { class: 'data result-table' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Series'), el('th', { class: 'num' }, 'Value'))),
          el('tbody', {}, rows.slice(0, 10000).map(([k, v, hist]) => el('tr', {}, el('td', { class: 'series' }, k), el('td', { class: hist ? 'hist' : 'num pre' }, v)))),
        ),
      );
    }
    stats.textContent = `${rows.length} result${rows.length === 1 ? '' : 's'} · ${formatTime(Date.now())} · ${Math.round(ms)} ms`;
  }

  setRefresh();
  run();
  return () => {
    clearInterval(timer);
    if (controller) controller.abort();
    destroyChart();
  };
}

/** The `datetime-local` input value for epoch milliseconds (local time). */
function localInputValue(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

