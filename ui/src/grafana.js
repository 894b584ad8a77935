// grafana.js: converts Grafana dashboard JSON into osprey's dashboard
// model (docs/format/dashboard.md). Panels of types the model does not
// draw keep their type and are shown as placeholders.

const TYPE_MAP = {
  graph: 'timeseries',
  timeseries: 'timeseries',
  trend: 'timeseries',
  singlestat: 'stat',
  stat: 'stat',
  gauge: 'gauge',
  bargauge: 'bargauge',
  table: 'table',
  'table-old': 'table',
  heatmap: 'heatmap',
  text: 'text',
};

const REDUCERS = { lastNotNull: 'last', last: 'last', mean: 'mean', max: 'max', min: 'min', sum: 'sum', avg: 'mean', current: 'last', total: 'sum' };

/** True when `d` looks like Grafana's JSON rather than osprey's model. */
export function isGrafana(d) {
  if (!d || typeof d !== 'object') return false;
  if (d.dashboard && typeof d.dashboard === 'object' && !d.rows) return true;
  if (d.osprey) return false;
  if (Array.isArray(d.panels) || 'schemaVersion' in d || d.templating) return true;
  return Array.isArray(d.rows) && d.rows.some((r) => (r.panels || []).some((p) => 'span' in p || 'targets' in p && !('width' in p)));
}

/** Converts a Grafana dashboard (or the API's {dashboard, meta} envelope). */
export function fromGrafana(input) {
  const g = input.dashboard && typeof input.dashboard === 'object' && !input.rows ? input.dashboard : input;
  const out = {
    osprey: 1,
    uid: sanitizeUid(g.uid || g.title || 'imported'),
    title: g.title || 'Imported dashboard',
    description: g.description || undefined,
    tags: Array.isArray(g.tags) ? g.tags.map(String) : [],
    time: g.time && g.time.from ? { from: String(g.time.from), to: String(g.time.to || 'now') } : { from: 'now-1h', to: 'now' },
    refresh: typeof g.refresh === 'string' ? g.refresh : '',
    variables: convertVariables(g.templating && Array.isArray(g.templating.list) ? g.templating.list : []),
    rows: [],
  };
  if (Array.isArray(g.panels)) {
    out.rows = convertPanelList(g.panels);
  } else if (Array.isArray(g.rows)) {
    out.rows = g.rows.filter((r) => r && typeof r === 'object').map((r) => {
      const height = Math.max(4, Math.round((parseInt(r.height, 10) || 250) / 36));
      return {
        title: r.showTitle === false ? '' : r.title || '',
        collapsed: !!r.collapse,
        panels: (Array.isArray(r.panels) ? r.panels : []).filter((p) => p && typeof p === 'object').map((p) => convertPanel(p, { w: Math.round((p.span || 12) * 2), h: height })),
      };
    });
  }
  return out;
}

export function sanitizeUid(s) {
  const u = String(s)
    .replace(/[^A-Za-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return u || 'imported';
}

function convertPanelList(panels) {
  const sorted = panels.filter((p) => p && typeof p === 'object').sort((a, b) => pos(a).y - pos(b).y || pos(a).x - pos(b).x);
  const rows = [];
  let current = null;
  for (const p of sorted) {
    if (p.type === 'row') {
      current = { title: p.title || '', collapsed: !!p.collapsed, panels: [] };
      rows.push(current);
      // A collapsed row keeps its panels inside itself.
      for (const inner of (Array.isArray(p.panels) ? p.panels : []).filter((x) => x && typeof x === 'object').sort((a, b) => pos(a).y - pos(b).y || pos(a).x - pos(b).x)) {
        current.panels.push(convertPanel(inner, pos(inner)));
      }
      continue;
    }
    if (!current) {
      current = { title: '', collapsed: false, panels: [] };
      rows.push(current);
    }
    current.panels.push(convertPanel(p, pos(p)));
  }
  return rows.filter((r) => r.panels.length || r.title);
}

function pos(p) {
  const g = p.gridPos || {};
  return { x: g.x || 0, y: g.y || 0, w: g.w || 12, h: g.h || 8 };
}

function convertPanel(p, gp) {
  const type = TYPE_MAP[p.type] || p.type || 'unknown';
  const d = (p.fieldConfig && p.fieldConfig.defaults) || {};
  const custom = d.custom || {};
  const opts = p.options || {};
  const out = {
    type,
    title: p.title || '',
    description: p.description || undefined,
    width: clamp(gp.w, 1, 24),
    height: clamp(gp.h, 2, 60),
  };
  // Grafana places panels by gridPos; old `rows` panels flow instead.
  if (p.gridPos && typeof p.gridPos.x === 'number') out.x = clamp(p.gridPos.x, 0, 23);
  if (!TYPE_MAP[p.type]) out.originalType = p.type;
  const targets = (Array.isArray(p.targets) ? p.targets : [])
    .filter((t) => !t.hide && typeof t.expr === 'string' && t.expr.trim())
    .filter((t) => !(t.datasource && typeof t.datasource === 'object' && t.datasource.type && !/prometheus|osprey/i.test(t.datasource.type)))
    .map((t) => {
      const target = { expr: t.expr };
      if (t.legendFormat && t.legendFormat !== '__auto') target.legend = t.legendFormat;
      const interval = t.interval || p.interval;
      if (interval) target.interval = interval;
      // Grafana's `format: heatmap` (classic `le` buckets to de-accumulate) is what osprey's heatmap does anyway.
      if (t.format === 'heatmap') target.format = 'heatmap';
      if (t.instant || (type === 'table' && t.format === 'table' && t.instant !== false && t.range !== true)) target.instant = true;
      return target;
    });
  if (targets.length) out.targets = targets;
  // Units, bounds, decimals and thresholds: the field config, else the old panel fields.
  const yaxis = Array.isArray(p.yaxes) ? p.yaxes[0] || {} : {};
  // Heatmaps keep the bucket bounds' unit in their y axis options.
  const heatUnit = type === 'heatmap' ? (opts.yAxis && opts.yAxis.unit) || (p.yAxis && p.yAxis.format) : undefined;
  const unit = heatUnit || d.unit || yaxis.format || p.format;
  if (unit) out.unit = unit;
  const decimals = d.decimals ?? p.decimals ?? yaxis.decimals;
  if (typeof decimals === 'number') out.decimals = decimals;
  const min = num(d.min ?? yaxis.min ?? (p.gauge && p.gauge.minValue));
  const max = num(d.max ?? yaxis.max ?? (p.gauge && p.gauge.maxValue));
  if (min !== undefined) out.min = min;
  if (max !== undefined) out.max = max;
  const steps = d.thresholds && Array.isArray(d.thresholds.steps) ? d.thresholds.steps : null;
  if (steps && steps.length) {
    out.thresholds = steps.map((s) => ({ value: s.value === null || s.value === undefined ? null : Number(s.value), color: s.color || 'green' }));
  } else if (typeof p.thresholds === 'string' && p.thresholds.trim()) {
    // singlestat: "50,80" with three colours.
    const values = p.thresholds.split(',').map((x) => parseFloat(x)).filter((x) => !isNaN(x));
    const colors = Array.isArray(p.colors) && p.colors.length ? p.colors : ['green', 'orange', 'red'];
    out.thresholds = [{ value: null, color: colors[0] }, ...values.map((v, i) => ({ value: v, color: colors[Math.min(i + 1, colors.length - 1)] }))];
  }
  if (type === 'timeseries') {
    const stackMode = custom.stacking && custom.stacking.mode;
    if ((stackMode && stackMode !== 'none') || p.stack === true) out.stacked = true;
    if (typeof custom.fillOpacity === 'number') out.fill = custom.fillOpacity / 100;
    else if (typeof p.fill === 'number') out.fill = p.fill / 10;
    const lg = opts.legend || p.legend || {};
    const show = lg.showLegend !== undefined ? lg.showLegend : lg.show !== undefined ? lg.show : lg.displayMode !== 'hidden';
    const calcs = Array.isArray(lg.calcs) ? lg.calcs.map((c) => REDUCERS[c]).filter(Boolean) : ['avg', 'max', 'min', 'current'].filter((k) => lg[k]).map((k) => REDUCERS[k]);
    out.legend = { show: show !== false, calcs: [...new Set(calcs)] };
  }
  if (type === 'stat' || type === 'gauge' || type === 'bargauge') {
    const calc = (opts.reduceOptions && opts.reduceOptions.calcs && opts.reduceOptions.calcs[0]) || p.valueName;
    if (calc && REDUCERS[calc]) out.reduce = REDUCERS[calc];
  }
  if (type === 'text') out.content = (opts.content ?? p.content ?? '').toString();
  return out;
}

function convertVariables(list) {
  const out = [];
  for (const v of list) {
    if (!v || !v.name) continue;
    const base = { name: v.name, label: v.label || undefined };
    const current = v.current && v.current.value !== undefined ? v.current.value : undefined;
    if (v.type === 'query') {
      const q = typeof v.query === 'object' && v.query ? v.query.query : v.query;
      if (!q) continue;
      out.push({ ...base, type: 'query', query: String(q), regex: v.regex || undefined, multi: !!v.multi, includeAll: !!v.includeAll, allValue: v.allValue || undefined, current: currentValue(current) });
    } else if (v.type === 'custom') {
      const options = Array.isArray(v.options) && v.options.length
        ? v.options.map((o) => String(o.value)).filter((x) => x !== '$__all')
        : String(v.query || '').split(',').map((s) => s.split(' : ').pop().trim()).filter(Boolean);
      out.push({ ...base, type: 'custom', options, multi: !!v.multi, includeAll: !!v.includeAll, allValue: v.allValue || undefined, current: currentValue(current) });
    } else if (v.type === 'interval') {
      const options = String(v.query || '1m,5m,10m,30m,1h').split(',').map((s) => s.trim()).filter(Boolean);
      out.push({ ...base, type: 'interval', options, current: currentValue(current) });
    } else if (v.type === 'constant' || v.type === 'textbox') {
      out.push({ ...base, type: v.type, query: String(v.query || ''), current: currentValue(current) ?? String(v.query || '') });
    }
    // Data source and ad hoc filter variables have no meaning here.
  }
  return out;
}

function currentValue(v) {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v)) return v.map(String);
  return String(v);
}

function num(v) {
  if (v === undefined || v === null || v === '') return undefined;
  const n = Number(v);
  return isNaN(n) ? undefined : n;
}

function clamp(v, lo, hi) {
  return Math.min(Math.max(Math.round(Number(v) || lo), lo), hi);
}
