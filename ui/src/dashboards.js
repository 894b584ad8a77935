// dashboards.js: the dashboard list (with Grafana import) and the
// dashboard view: variables, time range picker, auto-refresh, rows and
// panels (time series, stat, gauge, bar gauge, table, heatmap, text).

import { el, api, can, alignedStart, parseDuration, parseTime, formatDuration, autoStep, legendName, seriesName, formatValue, thresholdColor, PALETTE, debounce, formatVariable } from './util.js';
import { timeChart, alignSeries, heatmap, sparkline, gaugeSvg, reduce } from './chart.js';
import { heatmapGrid, drawHeatmap as drawBucketHeatmap, histogramBars, parseHistogram, formatBound } from './histogram.js';
import { isGrafana, fromGrafana, sanitizeUid } from './grafana.js';
import { metricsOf } from './complete.js';
import { navigate } from './app.js';

/** The scrape interval `$__rate_interval` assumes (osprey's default). */
const SCRAPE_INTERVAL_S = 15;
const QUICK_RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '24h', '2d', '7d', '30d'];
const REFRESH = ['', '5s', '10s', '30s', '1m', '5m', '15m'];

// ---------------------------------------------------------------------------
// The list and the import.

export async function renderDashboardList(main) {
  const list = el('div', {});
  const importBox = el('div', {});
  main.replaceChildren(
    el('div', { class: 'section-head' }, el('h1', {}, 'Dashboards'), can('edit') ? el('button', { class: 'primary', id: 'import-open', onclick: () => openImport(importBox) }, 'Import') : null),
    importBox,
    list,
  );
  let items;
  try {
    items = await api('/api/osprey/dashboards');
  } catch (e) {
    list.replaceChildren(el('div', { class: 'error-box' }, `Cannot list dashboards: ${e.message}`));
    return;
  }
  list.replaceChildren(
    el(
      'table',
      { class: 'data dash-list' },
      el('thead', {}, el('tr', {}, ['Title', 'Source', 'Tags', ''].map((h) => el('th', {}, h)))),
      el(
        'tbody',
        {},
        items.map((d) =>
          el(
            'tr',
            {},
            el('td', {}, d.error ? d.title : el('a', { href: `/d/${d.uid}` }, d.title), d.description ? el('div', { class: 'stats' }, d.description) : null),
            el('td', {}, d.source, d.file ? el('div', { class: 'stats' }, d.file) : null),
            el('td', {}, (d.tags || []).map((t) => el('span', { class: 'tag' }, t))),
            el('td', { class: 'panel-error' }, d.error || ''),
          ),
        ),
      ),
    ),
  );
}

function openImport(box) {
  const text = el('textarea', { class: 'json', id: 'import-json', placeholder: 'Paste Grafana dashboard JSON (or an osprey dashboard) here', 'aria-label': 'Dashboard JSON' });
  const file = el('input', { type: 'file', accept: '.json,application/json', 'aria-label': 'Dashboard file' });
  file.addEventListener('change', async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  });
  const uid = el('input', { placeholder: 'uid (default: from the JSON)', size: 30, id: 'import-uid', 'aria-label': 'uid' });
  const err = el('div', {});
  const submit = async () => {
    let parsed;
    try {
      parsed = JSON.parse(text.value);
    } catch (e) {
      err.replaceChildren(el('div', { class: 'error-box' }, `Not valid JSON: ${e.message}`));
      return;
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      err.replaceChildren(el('div', { class: 'error-box' }, 'A dashboard is a JSON object.'));
      return;
    }
    let model;
    try {
      model = isGrafana(parsed) ? fromGrafana(parsed) : parsed;
    } catch (e) {
      err.replaceChildren(el('div', { class: 'error-box' }, `Cannot convert this Grafana dashboard: ${e.message}`));
      return;
    }
    model.osprey = 1;
    model.uid = sanitizeUid(uid.value.trim() || model.uid || model.title || 'imported');
    if (!model.title) model.title = model.uid;
    try {
      await api(`/api/osprey/dashboards/${model.uid}`, { method: 'PUT', json: model });
      navigate(`/d/${model.uid}`);
    } catch (e) {
      err.replaceChildren(el('div', { class: 'error-box' }, `Import failed: ${e.message}`));
    }
  };
  box.replaceChildren(
    el(
      'div',
      { class: 'card' },
      el('h2', {}, 'Import a dashboard'),
      el('p', { class: 'stats' }, 'Grafana dashboard JSON with Prometheus queries is converted: time series, stat, gauge, bar gauge, table, heatmap and text panels, rows and template variables. Other panel types are kept as placeholders.'),
      text,
      el('div', { class: 'filters', style: { marginTop: '8px' } }, file, uid, el('button', { class: 'primary', id: 'import-submit', onclick: submit }, 'Import'), el('button', { onclick: () => box.replaceChildren() }, 'Cancel')),
      err,
    ),
  );
  text.focus();
}

// ---------------------------------------------------------------------------
// One dashboard.

/** Reads `from`, `to`, `refresh` and `var-*` from the URL. */
function urlState() {
  const q = new URLSearchParams(location.search);
  const vars = {};
  for (const [k, v] of q) {
    if (k.startsWith('var-')) (vars[k.slice(4)] = vars[k.slice(4)] || []).push(v);
  }
  return { from: q.get('from'), to: q.get('to'), refresh: q.get('refresh'), vars };
}

export async function renderDashboard(main, uid) {
  main.replaceChildren(el('div', { class: 'hint' }, 'Loading dashboard…'));
  let resp;
  try {
    resp = await api(`/api/osprey/dashboards/${encodeURIComponent(uid)}`);
  } catch (e) {
    main.replaceChildren(el('div', { class: 'error-box' }, `Cannot load dashboard "${uid}": ${e.message}`), el('a', { href: '/dashboards' }, 'All dashboards'));
    return;
  }
  const meta = resp.meta || {};
  let model;
  try {
    model = isGrafana(resp.dashboard) ? fromGrafana(resp.dashboard) : resp.dashboard;
  } catch (e) {
    main.replaceChildren(el('div', { class: 'error-box' }, `Cannot convert dashboard "${uid}" from Grafana's format: ${e.message}`));
    return;
  }
  model.uid = uid;
  const view = new DashboardView(main, model, meta);
  await view.start();
  return () => view.stop();
}

class DashboardView {
  constructor(main, model, meta) {
    this.main = main;
    this.model = model;
    this.meta = meta;
    const s = urlState();
    this.from = s.from || (model.time && model.time.from) || 'now-1h';
    this.to = s.to || (model.time && model.time.to) || 'now';
    this.refresh = s.refresh ?? model.refresh ?? '';
    this.urlVars = s.vars;
    this.vars = {}; // name -> {def, options[], selected[]}
    this.panels = []; // {def, box, body, cleanup, row}
    this.timer = null;
    this.controller = new AbortController();
    this.firstChart = false;
  }

  async start() {
    const m = this.model;
    const rangeSel = el('select', { 'aria-label': 'Time range', class: 'range-picker' }, QUICK_RANGES.map((r) => el('option', { value: `now-${r}` }, `Last ${r}`)), el('option', { value: 'custom' }, 'Custom'));
    const fromIn = el('input', { size: 18, value: this.from, 'aria-label': 'From', title: 'From: now-6h, an ISO time or epoch ms' });
    const toIn = el('input', { size: 18, value: this.to, 'aria-label': 'To', title: 'To: now, an ISO time or epoch ms' });
    const custom = el('span', { class: 'custom-range' }, fromIn, ' to ', toIn, el('button', { onclick: () => this.setRange(fromIn.value.trim(), toIn.value.trim()) }, 'Apply'));
    const syncPicker = () => {
      const quick = this.to === 'now' && QUICK_RANGES.includes(this.from.replace(/^now-/, ''));
      rangeSel.value = quick ? this.from : 'custom';
      custom.style.display = quick ? 'none' : 'inline';
      fromIn.value = this.from;
      toIn.value = this.to;
    };
    this.syncPicker = syncPicker;
    rangeSel.addEventListener('change', () => {
      if (rangeSel.value === 'custom') {
        custom.style.display = 'inline';
        return;
      }
      this.setRange(rangeSel.value, 'now');
    });
    const refreshSel = el('select', { 'aria-label': 'Auto refresh' }, REFRESH.map((r) => el('option', { value: r }, r ? `every ${r}` : 'no refresh')));
    refreshSel.value = REFRESH.includes(this.refresh) ? this.refresh : '';
    refreshSel.addEventListener('change', () => {
      this.refresh = refreshSel.value;
      this.writeUrl();
      this.schedule();
    });
    const actions = [el('button', { onclick: () => this.refreshAll(), title: 'Run the queries again' }, 'Refresh'), can('edit') ? el('button', { id: 'save-open', onclick: () => this.saveAs() }, 'Save as') : null, el('button', { onclick: () => this.editJson() }, 'JSON')];
    if (this.meta.source === 'saved' && can('edit')) actions.push(el('button', { class: 'danger', id: 'delete-open', onclick: () => this.remove() }, 'Delete'));
    this.varBar = el('div', { class: 'variables' });
    this.notice = el('div', {});
    this.rowsBox = el('div', { class: 'rows' });
    this.main.replaceChildren(
      el('div', { class: 'dash-head' }, el('h1', {}, m.title || m.uid), el('span', { class: 'spacer' }), rangeSel, custom, refreshSel, ...actions),
      m.description ? el('div', { class: 'stats dash-desc' }, String(m.description)) : '',
      this.notice,
      this.varBar,
      this.rowsBox,
    );
    syncPicker();
    await this.loadVariables();
    this.layout();
    this.refreshAll();
    this.schedule();
  }

  stop() {
    clearInterval(this.timer);
    this.controller.abort();
    for (const p of this.panels) if (p.cleanup) p.cleanup();
  }

  schedule() {
    clearInterval(this.timer);
    const ms = parseDuration(this.refresh);
    if (ms) this.timer = setInterval(() => this.refreshAll(true), Math.max(ms, 1000));
  }

  setRange(from, to) {
    if (parseTime(from) === null || parseTime(to) === null) {
      this.notice.replaceChildren(el('div', { class: 'error-box' }, `Invalid time range "${from}" to "${to}".`));
      return;
    }
    this.notice.replaceChildren();
    this.from = from;
    this.to = to;
    this.syncPicker();
    this.writeUrl();
    this.refreshAll();
  }

  writeUrl() {
    const q = new URLSearchParams();
    if (this.from !== ((this.model.time && this.model.time.from) || 'now-1h')) q.set('from', this.from);
    if (this.to !== ((this.model.time && this.model.time.to) || 'now')) q.set('to', this.to);
    if (this.refresh !== (this.model.refresh || '')) q.set('refresh', this.refresh);
    for (const [name, v] of Object.entries(this.vars)) for (const s of v.selected) q.append(`var-${name}`, s);
    history.replaceState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
  }

  /** The time range in epoch ms. */
  range() {
    const now = Date.now();
    const end = parseTime(this.to, now) ?? now;
    let start = parseTime(this.from, now) ?? end - 3600000;
    if (start >= end) start = end - 60000;
    return { start, end };
  }

  // Variables --------------------------------------------------------------

  async loadVariables() {
    // A query variable set to "All" expands without its options, so its
    // options load alongside the panels' queries instead of before them.
    const later = [];
    for (const def of list(this.model.variables)) {
      if (!def || typeof def !== 'object' || !def.name) continue;
      const v = { def, options: [], selected: [] };
      this.vars[def.name] = v;
      const fromUrl = this.urlVars[def.name];
      const wanted = fromUrl || (def.current === undefined ? [] : [].concat(def.current).map(String));
      const load = this.variableOptions(def).then(
        (options) => (v.options = options),
        (e) => (v.error = e.message),
      );
      if (def.type === 'query' && def.includeAll && wanted.length === 1 && wanted[0] === '$__all') {
        v.selected = ['$__all'];
        later.push(load);
        continue;
      }
      await load;
      v.selected = wanted.filter((x) => x === '$__all' || v.options.includes(x) || def.type === 'textbox' || def.type === 'constant');
      if (!v.selected.length) v.selected = def.includeAll ? ['$__all'] : v.options.length ? [v.options[0]] : def.type === 'textbox' ? [def.query || ''] : [];
    }
    this.drawVariables();
    if (later.length) Promise.all(later).then(() => this.drawVariables());
  }

  async variableOptions(def) {
    const { start, end } = this.range();
    const time = { start: Math.floor(start / 1000), end: Math.floor(end / 1000) };
    let values = [];
    if (def.type === 'custom' || def.type === 'interval') values = (def.options || []).map(String);
    else if (def.type === 'constant' || def.type === 'textbox') values = [String(def.query ?? def.current ?? '')];
    else if (def.type === 'query') {
      const q = this.interpolate(String(def.query || '').trim(), { skipMissing: true });
      let m;
      if ((m = /^label_values\(\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(q))) {
        values = await api(`/api/v1/label/${encodeURIComponent(m[1])}/values`, { params: time });
      } else if ((m = /^label_values\(\s*(.+)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/s.exec(q))) {
        values = await api(`/api/v1/label/${encodeURIComponent(m[2])}/values`, { params: { ...time, 'match[]': m[1] } });
      } else if (/^label_names\(\s*\)$/.test(q)) {
        values = await api('/api/v1/labels', { params: time });
      } else if ((m = /^metrics\((.*)\)$/s.exec(q))) {
        const re = new RegExp(m[1].trim() || '.*');
        values = (await api('/api/v1/label/__name__/values', { params: time })).filter((n) => re.test(n));
      } else if ((m = /^query_result\((.*)\)$/s.exec(q))) {
        const data = await api('/api/v1/query', { params: { query: m[1], time: time.end } });
        values = (data.result || []).map((r) => `${seriesName(r.metric)} ${r.value ? r.value[1] : ''} ${r.value ? r.value[0] * 1000 : ''}`);
      } else {
        throw new Error(`unsupported variable query: ${q}`);
      }
    }
    if (def.regex) {
      const body = def.regex.replace(/^\/(.*)\/[a-z]*$/s, '$1');
      let re;
      try {
        re = new RegExp(body);
      } catch {
        re = null;
      }
      if (re) {
        values = values
          .map((x) => {
            const m = re.exec(x);
            return m ? (m.length > 1 && m[1] !== undefined ? m[1] : x) : null;
          })
          .filter((x) => x !== null);
      }
    }
    return [...new Set(values.map(String))];
  }

  drawVariables() {
    const items = Object.values(this.vars).filter((v) => v.def.type !== 'constant' && !v.def.hide);
    this.varBar.replaceChildren(...items.map((v) => this.variablePicker(v)));
    this.varBar.style.display = items.length ? 'flex' : 'none';
  }

  variablePicker(v) {
    const def = v.def;
    const label = def.label || def.name;
    const changed = () => {
      this.writeUrl();
      this.refreshAll();
    };
    if (def.type === 'textbox') {
      const input = el('input', { value: v.selected[0] || '', size: 14 });
      input.addEventListener('change', () => {
        v.selected = [input.value];
        changed();
      });
      return el('label', {}, label, input);
    }
    if (v.error) return el('label', { title: v.error }, label, el('span', { class: 'panel-error' }, 'error: ' + v.error));
    const options = (def.includeAll ? ['$__all'] : []).concat(v.options);
    const text = (x) => (x === '$__all' ? 'All' : x);
    if (!def.multi) {
      const sel = el('select', { 'data-var': def.name }, options.map((o) => el('option', { value: o }, text(o))));
      sel.value = v.selected[0] ?? '';
      sel.addEventListener('change', () => {
        v.selected = [sel.value];
        changed();
      });
      return el('label', {}, label, sel);
    }
    // Several values: a button that opens a list of check boxes.
    const button = el('button', { class: 'multi', 'data-var': def.name });
    const caption = () => (button.textContent = v.selected.map(text).join(' + ') || 'None');
    caption();
    const pop = el('div', { class: 'multi-pop' });
    pop.style.display = 'none';
    const boxes = options.map((o) => {
      const cb = el('input', { type: 'checkbox', checked: v.selected.includes(o) });
      cb.addEventListener('change', () => {
        if (o === '$__all' && cb.checked) v.selected = ['$__all'];
        else {
          v.selected = boxes.filter(([b]) => b.checked).map(([, x]) => x).filter((x) => x !== '$__all');
          if (!v.selected.length && def.includeAll) v.selected = ['$__all'];
        }
        boxes.forEach(([b, x]) => (b.checked = v.selected.includes(x)));
        caption();
        debouncedChange();
      });
      pop.append(el('label', {}, cb, text(o)));
      return [cb, o];
    });
    const debouncedChange = debounce(changed, 400);
    button.addEventListener('click', (e) => {
      e.stopPropagation();
      pop.style.display = pop.style.display === 'none' ? 'block' : 'none';
    });
    document.addEventListener('click', (e) => {
      if (!pop.contains(e.target)) pop.style.display = 'none';
    });
    return el('label', { class: 'multi-wrap' }, label, el('span', { style: { position: 'relative' } }, button, pop));
  }

  /** Replaces $var, ${var}, ${var:fmt} and [[var]] plus the built-in variables. */
  interpolate(text, { builtins = {}, skipMissing = false } = {}) {
    return text.replace(/\$\{([A-Za-z0-9_]+)(?::([a-z]+))?\}|\[\[([A-Za-z0-9_]+)\]\]|\$([A-Za-z0-9_]+)/g, (whole, a, fmt, b, c) => {
      const name = a || b || c;
      if (name in builtins) return builtins[name];
      const v = this.vars[name];
      if (!v) return whole;
      if (skipMissing && !v.selected.length) return whole;
      return formatVariable(v, fmt);
    });
  }

  // Layout and panels ------------------------------------------------------

  layout() {
    for (const p of this.panels) if (p.cleanup) p.cleanup();
    this.panels = [];
    const rows = list(this.model.rows).filter((r) => r && typeof r === 'object');
    if (!rows.length) {
      this.rowsBox.replaceChildren(el('div', { class: 'nodata' }, 'This dashboard has no panels.'));
      return;
    }
    this.rowsBox.replaceChildren();
    for (const row of rows) {
      const grid = el('div', { class: 'grid' });
      const state = { collapsed: !!row.collapsed };
      const panels = [];
      if (row.title) {
        const chev = el('span', { class: 'chev' }, state.collapsed ? '▸' : '▾');
        const head = el('div', { class: 'row-head' }, chev, String(row.title), el('span', { class: 'stats' }, `${list(row.panels).length} panels`));
        head.addEventListener('click', () => {
          state.collapsed = !state.collapsed;
          chev.textContent = state.collapsed ? '▸' : '▾';
          grid.style.display = state.collapsed ? 'none' : 'grid';
          if (!state.collapsed) for (const p of panels) if (!p.loaded) this.runPanel(p);
        });
        this.rowsBox.append(head);
      }
      grid.style.display = state.collapsed ? 'none' : 'grid';
      for (const def of list(row.panels).filter((d) => d && typeof d === 'object')) {
        const w = Math.min(Math.max(Math.round(def.width || 12), 1), 24);
        const h = Math.min(Math.max(Math.round(def.height || 8), 2), 60);
        const body = el('div', { class: 'panel-body' });
        const explore = el('a', { class: 'explore-link', title: 'Open the query in the explorer', href: '/' }, '↗');
        explore.style.visibility = 'hidden';
        const box = el(
          'div',
          { class: 'panel', 'data-type': def.type || '', 'data-state': state.collapsed ? 'collapsed' : 'loading', style: { gridColumn: columnPlacement(def.x, w), gridRow: `span ${h}` } },
          el('div', { class: 'panel-title', title: String(def.description || def.title || '') }, el('span', { class: 'panel-title-text' }, String(def.title || '\u00a0')), explore),
          body,
        );
        grid.append(box);
        const p = { def, box, body, explore, cleanup: null, row: state, loaded: false, seq: 0 };
        panels.push(p);
        this.panels.push(p);
      }
      this.rowsBox.append(grid);
    }
  }

  refreshAll(quiet) {
    for (const p of this.panels) {
      if (p.row.collapsed) {
        p.loaded = false;
        continue;
      }
      this.runPanel(p, quiet);
    }
  }

  /** The built-in variables for a panel of `widthPx` pixels. */
  builtins(def, target, widthPx) {
    const { start, end } = this.range();
    const rangeMs = end - start;
    const minInterval = parseDuration(this.interpolate((target && target.interval) || def.interval || '')) || 0;
    const maxPoints = Math.max(Math.floor(widthPx / 2), 50);
    const stepS = Math.max(autoStep(rangeMs, maxPoints), Math.ceil(minInterval / 1000));
    const rate = Math.max(stepS + SCRAPE_INTERVAL_S, 4 * SCRAPE_INTERVAL_S);
    return {
      stepS,
      start,
      end,
      vars: {
        __interval: formatDuration(stepS * 1000),
        __interval_ms: String(stepS * 1000),
        __rate_interval: formatDuration(rate * 1000),
        __range: `${Math.round(rangeMs / 1000)}s`,
        __range_s: String(Math.round(rangeMs / 1000)),
        __range_ms: String(Math.round(rangeMs)),
      },
    };
  }

  async runPanel(p, quiet) {
    p.loaded = true;
    const mine = ++p.seq;
    const def = p.def;
    const type = def.type || 'timeseries';
    const renderers = { timeseries: drawTimeseries, stat: drawStat, gauge: drawGauge, bargauge: drawBarGauge, table: drawTable, heatmap: drawHeatmap };
    if (type === 'text') {
      p.body.replaceChildren(el('div', { class: 'text-panel' }, String(def.content || '')));
      return this.panelDone(p, 'done');
    }
    if (!renderers[type]) {
      p.body.replaceChildren(el('div', { class: 'placeholder' }, `Panel type "${def.originalType || type}" is not supported by osprey; its queries are not run.`));
      return this.panelDone(p, 'unsupported');
    }
    const targets = list(def.targets).filter((t) => t && typeof t.expr === 'string' && t.expr.trim());
    if (!targets.length) {
      p.body.replaceChildren(el('div', { class: 'nodata' }, 'No queries'));
      return this.panelDone(p, 'nodata');
    }
    if (!quiet) p.box.classList.add('loading');
    const widthPx = p.body.clientWidth || 400;
    {
      // The title's arrow opens the first query, variables filled in, in the explorer.
      const b = this.builtins(def, targets[0], widthPx);
      const q = new URLSearchParams({ expr: this.interpolate(targets[0].expr, { builtins: b.vars }), range: formatDuration(b.end - b.start) });
      if (this.to !== 'now') q.set('end', new Date(b.end).toISOString());
      p.explore.href = '/graph?' + q;
      p.explore.style.visibility = 'visible';
    }
    const instantOnly = type === 'table';
    try {
      const results = await Promise.all(
        targets.map(async (t, ti) => {
          const b = this.builtins(def, t, widthPx);
          const query = this.interpolate(t.expr, { builtins: b.vars });
          t = { ...t, legend: t.legend && this.interpolate(t.legend, { builtins: b.vars }) };
          if (t.instant || instantOnly) {
            const data = await api('/api/v1/query', { params: { query, time: b.end / 1000 }, signal: this.controller.signal });
            return { target: t, ti, b, data, instant: true };
          }
          // Stats and gauges need only a few points for their sparklines.
          const single = type === 'stat' || type === 'gauge' || type === 'bargauge';
          const step = single ? Math.max(b.stepS, autoStep(b.end - b.start, 60)) : b.stepS;
          const end = Math.floor(b.end / 1000);
          const start = alignedStart(b.start / 1000, end, step);
          const data = await api('/api/v1/query_range', { params: { query, start, end, step }, signal: this.controller.signal });
          return { target: t, ti, b, data, start, end, step };
        }),
      );
      if (mine !== p.seq) return;
      if (p.cleanup) p.cleanup();
      p.cleanup = null;
      p.body.replaceChildren();
      const state = renderers[type](p, results, this);
      this.panelDone(p, state || 'done');
    } catch (e) {
      if (e.name === 'AbortError' || mine !== p.seq) return;
      p.body.replaceChildren(el('div', { class: 'panel-error' }, e.message));
      this.panelDone(p, 'error');
    } finally {
      p.box.classList.remove('loading');
    }
  }

  panelDone(p, state) {
    p.box.dataset.state = state;
    if (!this.firstChart && p.body.querySelector('canvas, svg, table, .stat-value')) {
      this.firstChart = true;
      performance.mark('osprey:first-panel');
    }
  }

  zoom(fromS, toS) {
    this.setRange(new Date(fromS * 1000).toISOString(), new Date(toS * 1000).toISOString());
  }

  saveAs() {
    const title = el('input', { size: 40, value: `${this.model.title || this.model.uid} (copy)`, 'aria-label': 'Title of the copy', id: 'save-title' });
    const uid = el('input', { size: 30, placeholder: 'from the title', 'aria-label': 'uid of the copy', id: 'save-uid' });
    const err = el('div', {});
    const save = async () => {
      const name = title.value.trim();
      if (!name) {
        err.replaceChildren(el('div', { class: 'error-box' }, 'Give the copy a title.'));
        return;
      }
      const newUid = sanitizeUid(uid.value.trim() || name.toLowerCase());
      const copy = JSON.parse(JSON.stringify(this.model));
      Object.assign(copy, { osprey: 1, uid: newUid, title: name, time: { from: this.from, to: this.to }, refresh: this.refresh });
      for (const v of list(copy.variables)) {
        const cur = v && this.vars[v.name];
        if (cur) v.current = cur.def.multi ? cur.selected : cur.selected[0];
      }
      try {
        await api(`/api/osprey/dashboards/${newUid}`, { method: 'PUT', json: copy });
        navigate(`/d/${newUid}`);
      } catch (e) {
        err.replaceChildren(el('div', { class: 'error-box' }, `Saving failed: ${e.message}`));
      }
    };
    title.addEventListener('keydown', (e) => e.key === 'Enter' && save());
    this.notice.replaceChildren(
      el(
        'div',
        { class: 'card save-as' },
        el('h2', {}, 'Save a copy'),
        el('p', { class: 'stats' }, 'The copy keeps the current time range and variable values and is stored in the data directory, where you can edit and delete it.'),
        el('div', { class: 'filters' }, 'Title', title, 'uid', uid, el('button', { class: 'primary', id: 'save-submit', onclick: save }, 'Save'), el('button', { onclick: () => this.notice.replaceChildren() }, 'Cancel')),
        err,
      ),
    );
    title.focus();
  }

  editJson() {
    const text = el('textarea', { class: 'json' });
    text.value = JSON.stringify(this.model, null, 2);
    const readOnly = this.meta.readOnly;
    const save = async () => {
      let model;
      try {
        model = JSON.parse(text.value);
      } catch (e) {
        this.notice.append(el('div', { class: 'error-box' }, `Not valid JSON: ${e.message}`));
        return;
      }
      try {
        await api(`/api/osprey/dashboards/${this.model.uid}`, { method: 'PUT', json: model });
        location.reload();
      } catch (e) {
        this.notice.append(el('div', { class: 'error-box' }, `Saving failed: ${e.message}`));
      }
    };
    this.notice.replaceChildren(
      el(
        'div',
        { class: 'card' },
        el('h2', {}, 'Dashboard JSON'),
        readOnly ? el('p', { class: 'stats' }, `This dashboard is ${this.meta.source} and read-only here; use "Save as" to make an editable copy.`) : null,
        text,
        el('div', { class: 'filters', style: { marginTop: '8px' } }, readOnly ? null : el('button', { class: 'primary', onclick: save }, 'Save'), el('button', { onclick: () => this.notice.replaceChildren() }, 'Close')),
      ),
    );
  }

  remove() {
    const really = async () => {
      try {
        await api(`/api/osprey/dashboards/${this.model.uid}`, { method: 'DELETE' });
        navigate('/dashboards');
      } catch (e) {
        this.notice.replaceChildren(el('div', { class: 'error-box' }, `Deleting failed: ${e.message}`));
      }
    };
    this.notice.replaceChildren(
      el(
        'div',
        { class: 'card' },
        `Delete the dashboard "${this.model.title || this.model.uid}"? This cannot be undone. `,
        el('button', { class: 'danger', id: 'delete-confirm', onclick: really }, 'Delete'),
        ' ',
        el('button', { onclick: () => this.notice.replaceChildren() }, 'Cancel'),
      ),
    );
  }
}

/** `x` when it is an array, else an empty one: models are user input. */
function list(x) {
  return Array.isArray(x) ? x : [];
}

/** The CSS grid column of a panel: at column `x` when it fits, else wherever it fits. */
function columnPlacement(x, w) {
  if (Number.isInteger(x) && x >= 0 && x + w <= 24) return `${x + 1} / span ${w}`;
  return `span ${w}`;
}

// ---------------------------------------------------------------------------
// Panel renderers. Each gets the panel and its query results and returns
// the panel's final state ("done" or "nodata").

/** Every series of every range result, with its display name. */
function rangeSeries(results) {
  const out = [];
  for (const r of results) {
    if (r.data.resultType !== 'matrix') continue;
    for (const s of r.data.result || []) out.push({ name: legendName(r.target.legend, s.metric), metric: s.metric, values: s.values || [], histograms: s.histograms || [], r });
  }
  return out;
}

function noData(p) {
  const metrics = [...new Set(list(p.def.targets).flatMap((t) => (t && typeof t.expr === 'string' ? metricsOf(t.expr) : [])))];
  p.body.replaceChildren(
    el('div', { class: 'nodata' }, 'No data', metrics.length ? el('div', { class: 'nodata-hint' }, 'Reads ', metrics.slice(0, 3).join(', '), metrics.length > 3 ? ', …' : '') : null),
  );
  return 'nodata';
}

function drawTimeseries(p, results, view) {
  const all = rangeSeries(results);
  if (!all.length) return drawInstantHistograms(p, results) || noData(p);
  // Native histogram series are drawn as heatmaps below the lines of the
  // float series (docs/native-histograms.md, "UI").
  const series = all.filter((s) => s.values.length).slice(0, 100);
  const hists = all.filter((s) => s.histograms.length);
  if (!series.length && !hists.length) return noData(p);
  const r0 = results.find((r) => !r.instant);
  const start = Math.min(...results.filter((r) => !r.instant).map((r) => r.start));
  const step = Math.min(...results.filter((r) => !r.instant).map((r) => r.step));
  const end = r0.end;
  const def = p.def;
  const bodyH = p.body.clientHeight || def.height * 38 - 30;
  const mapsH = hists.length ? (series.length ? Math.floor(bodyH / 2) : bodyH) : 0;
  if (hists.length) drawNativeHeatmaps(p, hists, start, end, step, mapsH, view);
  if (!series.length) return 'done';
  const { xs, ys } = alignSeries(series, start, end, step);
  const legend = def.legend || {};
  const showLegend = legend.show !== false;
  const legendRows = showLegend ? Math.min(series.length, 4) + ((legend.calcs || []).length ? 1 : 0) : 0;
  const chartBox = el('div', { class: 'chart' });
  p.body.prepend(chartBox);
  const chart = timeChart(chartBox, {
    names: series.map((s) => s.name),
    xs,
    ys,
    unit: def.unit,
    decimals: def.decimals,
    stacked: !!def.stacked,
    // A light area under one series; several overlapping areas turn muddy.
    fill: def.fill ?? (series.length === 1 ? 0.12 : 0),
    min: def.min,
    max: def.max,
    thresholds: def.thresholds,
    height: Math.max(bodyH - mapsH - legendRows * 17 - 8, 60),
    legend: showLegend,
    legendCalcs: showLegend ? legend.calcs || [] : undefined,
    onZoom: (a, b) => view.zoom(a, b),
  });
  p.cleanup = () => chart.destroy();
  return 'done';
}

/**
 * Instant queries (`instant: true` targets) over native histograms: each
 * series' buckets as a bar chart. Returns 'done', or null when the
 * results hold no histogram.
 */
function drawInstantHistograms(p, results) {
  const hs = [];
  for (const r of results) {
    if (r.data.resultType !== 'vector') continue;
    for (const s of r.data.result || []) if (s.histogram) hs.push({ name: legendName(r.target.legend, s.metric), h: parseHistogram(s.histogram[1]) });
  }
  if (!hs.length) return null;
  const box = el('div', { class: 'heatmaps panel-histograms', 'data-series': hs.length });
  p.body.append(box);
  p.body.classList.add('scroll');
  const width = Math.max((p.body.clientWidth || 400) - 20, 200);
  for (const { name, h } of hs.slice(0, 12)) {
    box.append(el('div', { class: 'heatmap-title' }, `${name} · count ${formatBound(h.count)} · sum ${formatBound(h.sum)}`), histogramBars(h.buckets, { width, height: 110, unit: p.def.unit && p.def.unit !== 'short' && p.def.unit !== 'none' ? p.def.unit : undefined }));
  }
  return 'done';
}

/** Native histogram series as heatmaps, one per series, sharing `height` px (the panel scrolls past four). */
function drawNativeHeatmaps(p, hists, start, end, step, height, view) {
  const shown = hists.slice(0, 12);
  const box = el('div', { class: 'heatmaps panel-heatmaps', 'data-series': shown.length });
  p.body.append(box);
  p.body.classList.add('scroll');
  const titled = shown.length > 1;
  const each = Math.max(Math.floor(height / Math.min(shown.length, 4)) - (titled ? 44 : 26), 80);
  for (const s of shown) {
    const grid = heatmapGrid(s.histograms, start, end, step);
    // Bucket bounds are in the panel's unit; the colours are plain counts.
    drawBucketHeatmap(box, { ...grid, unit: p.def.unit && p.def.unit !== 'short' && p.def.unit !== 'none' ? p.def.unit : undefined, height: each, title: titled ? s.name : undefined, onZoom: view ? (a, b) => view.zoom(a, b) : undefined });
  }
}

/** One value per series, reduced as the panel says. */
function reducedValues(p, results) {
  const out = [];
  for (const r of results) {
    if (r.data.resultType === 'vector') {
      for (const s of r.data.result || []) out.push({ name: legendName(r.target.legend, s.metric), value: s.value ? parseFloat(s.value[1]) : null, spark: [] });
    } else if (r.data.resultType === 'matrix') {
      for (const s of r.data.result || []) {
        const vals = (s.values || []).map(([, v]) => parseFloat(v));
        out.push({ name: legendName(r.target.legend, s.metric), value: reduce(vals, p.def.reduce || 'last'), spark: vals });
      }
    } else if (r.data.resultType === 'scalar') {
      out.push({ name: '', value: parseFloat(r.data.result[1]), spark: [] });
    }
  }
  return out;
}

function shortName(name, count) {
  return count > 1 ? name : '';
}

function drawStat(p, results) {
  const values = reducedValues(p, results).slice(0, 12);
  if (!values.length) return noData(p);
  const def = p.def;
  const box = el('div', { class: 'stat' });
  const texts = values.map((v) => formatValue(v.value, def.unit, def.decimals));
  // As large as the panel's height allows, but never wider than the panel.
  const longest = Math.max(...texts.map((t) => t.length), 1);
  const perRow = Math.min(values.length, 4);
  const byWidth = ((p.body.clientWidth || 200) - 16) / perRow / (0.62 * longest);
  const byHeight = (p.body.clientHeight || 120) / (values.length > 3 ? 3.5 : 2.4);
  const size = Math.max(12, Math.min(40, byHeight, byWidth));
  const line = el('div', { class: 'stat-values' });
  for (const [i, v] of values.entries()) {
    const color = thresholdColor(def.thresholds, v.value) || '#1d232b';
    line.append(el('div', {}, el('div', { class: 'stat-value', style: { color, fontSize: `${size}px` } }, texts[i]), v.name && values.length > 1 ? el('div', { class: 'stat-name' }, v.name) : null));
  }
  box.append(line);
  if (values.length === 1) {
    const color = thresholdColor(def.thresholds, values[0].value) || PALETTE[0];
    const svg = sparkline(values[0].spark, color);
    if (svg) {
      box.append(svg);
      box.classList.add('with-spark');
    }
  }
  p.body.append(box);
  return 'done';
}

function drawGauge(p, results) {
  const values = reducedValues(p, results).slice(0, 8);
  if (!values.length) return noData(p);
  const def = p.def;
  const max = def.max ?? (def.unit === 'percent' ? 100 : def.unit === 'percentunit' ? 1 : Math.max(...values.map((v) => v.value || 0)) * 1.2 || 1);
  const min = def.min ?? 0;
  const box = el('div', { class: 'gauges' });
  for (const v of values) {
    box.append(el('div', { class: 'gauge-item' }, gaugeSvg(v.value, { min, max, thresholds: def.thresholds, text: formatValue(v.value, def.unit, def.decimals) }), shortName(v.name, values.length) ? el('div', { class: 'stat-name' }, v.name) : null));
  }
  p.body.append(box);
  return 'done';
}

function drawBarGauge(p, results) {
  const values = reducedValues(p, results).slice(0, 50);
  if (!values.length) return noData(p);
  const def = p.def;
  const max = def.max ?? (def.unit === 'percent' ? 100 : def.unit === 'percentunit' ? 1 : Math.max(...values.map((v) => v.value || 0)) || 1);
  const min = def.min ?? 0;
  const box = el('div', { class: 'bars' });
  for (const v of values) {
    const frac = v.value === null ? 0 : Math.min(Math.max((v.value - min) / (max - min || 1), 0), 1);
    const color = thresholdColor(def.thresholds, v.value) || PALETTE[0];
    box.append(
      el(
        'div',
        { class: 'bar-row' },
        el('span', { class: 'bar-name', title: v.name }, v.name || ' '),
        el('div', { class: 'bar-track' }, el('div', { class: 'bar-fill', style: { width: `${(frac * 100).toFixed(1)}%`, background: color } })),
        el('span', { class: 'bar-value', style: { color } }, formatValue(v.value, def.unit, def.decimals)),
      ),
    );
  }
  p.body.append(box);
  return 'done';
}

function drawTable(p, results) {
  // One row per label set, one value column per query.
  const rows = new Map();
  const labelNames = new Set();
  const columns = results.map((r, i) => (results.length > 1 ? `Value #${String.fromCharCode(65 + i)}` : 'Value'));
  for (const r of results) {
    const list = r.data.resultType === 'vector' ? r.data.result : r.data.resultType === 'scalar' ? [{ metric: {}, value: r.data.result }] : [];
    for (const s of list || []) {
      const metric = s.metric || {};
      Object.keys(metric).forEach((k) => labelNames.add(k));
      const key = JSON.stringify(Object.entries(metric).sort());
      if (!rows.has(key)) rows.set(key, { metric, values: [] });
      rows.get(key).values[r.ti] = s.value ? parseFloat(s.value[1]) : null;
    }
  }
  if (!rows.size) return noData(p);
  // A metric name shared by every row says nothing; the title does that.
  const names = new Set([...rows.values()].map((r) => r.metric.__name__));
  if (names.size === 1) labelNames.delete('__name__');
  const labels = [...labelNames].sort((a, b) => (a === '__name__' ? -1 : b === '__name__' ? 1 : a.localeCompare(b)));
  const def = p.def;
  p.body.append(
    el(
      'div',
      { class: 'panel-table' },
      el(
        'table',
        { class: 'data' },
        el('thead', {}, el('tr', {}, labels.map((l) => el('th', {}, l)), columns.map((c) => el('th', { class: 'num' }, c)))),
        el(
          'tbody',
          {},
          [...rows.values()].slice(0, 1000).map((row) =>
            el(
              'tr',
              {},
              labels.map((l) => el('td', {}, row.metric[l] ?? '')),
              columns.map((_, i) => {
                const v = row.values[i];
                const color = v === undefined ? null : thresholdColor(def.thresholds, v);
                return el('td', { class: 'num', style: color && def.thresholds && def.thresholds.length > 1 ? { color } : undefined }, v === undefined ? '' : formatValue(v, def.unit, def.decimals));
              }),
            ),
          ),
        ),
      ),
    ),
  );
  return 'done';
}

function drawHeatmap(p, results, view) {
  const series = rangeSeries(results);
  if (!series.length) return drawInstantHistograms(p, results) || noData(p);
  const r0 = results.find((r) => !r.instant);
  const hists = series.filter((s) => s.histograms.length);
  if (hists.length) {
    // Native histograms: their own buckets.
    drawNativeHeatmaps(p, hists, r0.start, r0.end, r0.step, Math.max((p.body.clientHeight || 200) - 8, 80), view);
    return 'done';
  }
  // Classic buckets (Grafana's `format: heatmap`): one heatmap per label
  // set without `le`, its rows the `le` bounds, counts de-accumulated.
  const groups = new Map();
  for (const s of series) {
    const { le, ...rest } = s.metric || {};
    if (le === undefined) continue;
    const key = seriesName(rest);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(s);
  }
  const shown = [...groups.entries()].slice(0, 12);
  if (!shown.length) {
    p.body.append(el('div', { class: 'nodata' }, 'No histogram buckets: the series need an "le" label, or must be native histograms'));
    return 'nodata';
  }
  if (shown.length > 1) p.body.classList.add('scroll');
  const total = Math.max((p.body.clientHeight || 200) - 8, 80);
  const each = shown.length > 1 ? Math.max(Math.floor(total / Math.min(shown.length, 3)) - 44, 80) : total - 26;
  for (const [key, group] of shown) {
    const { xs, ys } = alignSeries(group, r0.start, r0.end, r0.step);
    if (shown.length > 1) p.body.append(el('div', { class: 'heatmap-title' }, key || group[0].name));
    heatmap(p.body, { results: group, xs, ys, unit: p.def.unit || 's', height: each, onZoom: (a, b) => view.zoom(a, b) });
  }
  return 'done';
}

