// home.js: the page at `/`. A new install shows the machine at once: the
// key figures and first charts of the built-in System overview dashboard
// (read from that dashboard, so the two agree), the open alerts, and the
// models and SLOs once there are any. `/?expr=...` is still the explorer.

import { el, api, formatValue, thresholdColor, formatDuration, autoStep, legendName, formatTime, firstDataTime } from './util.js';
import { alignSeries, timeChart } from './chart.js';
import { modelsTable } from './models.js';

/**
 * The rate window the home page's queries use: four scrape intervals of
 * the embedded default (15 s), as the dashboards' `$__rate_interval` at
 * their shortest. Two scrapes in it are enough for a rate.
 */
const RATE_WINDOW = '1m';
const CHART_RANGE_S = 3600;

/** A dashboard query with its variables as "everything": `$instance` → `.*`. */
export function homeQuery(expr, stepS) {
  const rate = formatDuration(Math.max(stepS + 15, 60) * 1000);
  return String(expr)
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, stepS ? rate : RATE_WINDOW)
    .replace(/\$__interval|\$\{__interval\}/g, `${Math.max(stepS || 15, 1)}s`)
    .replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, '.*');
}

async function instant(expr) {
  const data = await api('/api/v1/query', { params: { query: expr } });
  return data.result || [];
}

export async function renderHome(main) {
  main.replaceChildren(el('div', { class: 'hint' }, 'Loading…'));
  const [system, names, alertsData, slosData] = await Promise.all([
    api('/api/osprey/dashboards/system').catch(() => null),
    api('/api/v1/models').catch(() => []),
    api('/api/v1/alerts').catch(() => ({ alerts: [] })),
    api('/api/osprey/slos').catch(() => ({ slos: [] })),
  ]);
  const rows = (system && system.dashboard && system.dashboard.rows) || [];
  const statDefs = (rows[0] ? rows[0].panels || [] : []).filter((p) => ['stat', 'gauge'].includes(p.type) && p.targets && p.targets[0]);
  const chartDefs = rows.slice(1).flatMap((r) => r.panels || []).filter((p) => (p.type || 'timeseries') === 'timeseries' && p.targets && p.targets[0]).slice(0, 4);

  // Key figures: one instant query each, at now.
  const stats = el('div', { class: 'home-stats', id: 'home-stats' });
  const up = el('div', { class: 'home-stat', 'data-stat': 'Targets up' }, el('div', { class: 'stat-name' }, 'Targets up'), el('div', { class: 'stat-value' }, '…'));
  stats.append(up);
  const statBoxes = statDefs.map((def) => {
    const value = el('div', { class: 'stat-value' }, '…');
    const box = el('div', { class: 'home-stat', 'data-stat': def.title }, el('div', { class: 'stat-name' }, def.title), value);
    stats.append(box);
    return { def, value, box };
  });

  const alerts = (alertsData.alerts || []).filter((a) => a.state === 'firing' || a.state === 'pending');
  const alertList = alerts.length
    ? el(
        'table',
        { class: 'data home-alerts' },
        el('thead', {}, el('tr', {}, ['Alert', 'State', 'Labels', 'Since'].map((h) => el('th', {}, h)))),
        el(
          'tbody',
          {},
          alerts.slice(0, 10).map((a) =>
            el(
              'tr',
              { 'data-alert': a.labels.alertname },
              el('td', {}, el('strong', {}, a.labels.alertname), a.annotations && a.annotations.summary ? el('div', { class: 'muted small' }, a.annotations.summary) : null),
              el('td', {}, el('span', { class: 'badge ' + a.state }, a.state)),
              el('td', {}, el('div', { class: 'labels' }, Object.entries(a.labels).filter(([k]) => k !== 'alertname').slice(0, 5).map(([k, v]) => el('span', { class: 'label' }, `${k}="${v}"`)))),
              el('td', {}, a.activeAt ? formatTime(Date.parse(a.activeAt)) : '–'),
            ),
          ),
        ),
      )
    : el('div', { class: 'muted', 'data-state': 'no-alerts' }, 'No alert is firing or pending.');

  const chartBoxes = chartDefs.map((def) => ({ def, box: el('div', { class: 'chart' }), card: null }));
  const models = await modelsTable(names || []);
  const slos = (slosData && slosData.slos) || [];
  let sloTable = null;
  if (slos.length) {
    const budget = new Map();
    try {
      for (const r of await instant('slo:period_error_budget_remaining:ratio')) budget.set(r.metric.sloth_id, parseFloat(r.value[1]));
    } catch (e) {
      console.warn(e.message);
    }
    sloTable = el(
      'table',
      { class: 'data home-slos' },
      el('thead', {}, el('tr', {}, ['SLO', 'Objective', 'Budget remaining'].map((h) => el('th', {}, h)))),
      el('tbody', {}, slos.map((s) => el('tr', { 'data-slo': s.id }, el('td', {}, el('a', { href: `/slos/${encodeURIComponent(s.id)}` }, `${s.service} / ${s.name}`)), el('td', { class: 'num' }, `${s.objective}%`), el('td', { class: 'num' }, budget.has(s.id) ? `${(budget.get(s.id) * 100).toFixed(1)}%` : '–')))),
    );
  }

  const sections = [
    el('div', { class: 'section-head' }, el('h1', {}, 'This machine'), el('span', { class: 'spacer' }), el('a', { href: '/d/system' }, 'System overview dashboard'), el('a', { href: '/graph' }, 'Explore'), el('a', { href: '/dashboards' }, 'All dashboards')),
    stats,
    el('div', { class: 'home-charts' }, chartBoxes.map((c) => (c.card = el('div', { class: 'card', 'data-chart': c.def.title }, el('div', { class: 'section-head' }, el('h2', {}, c.def.title)), c.box)))),
    el('div', { class: 'card', id: 'home-alerts' }, el('div', { class: 'section-head' }, el('h2', {}, `Open alerts (${alerts.length})`), el('a', { href: '/alerts' }, 'All alerts')), alertList),
    models ? el('div', { class: 'card', id: 'home-models' }, el('div', { class: 'section-head' }, el('h2', {}, 'Models'), el('a', { href: '/models' }, 'Models page')), models) : null,
    sloTable ? el('div', { class: 'card', id: 'home-slos' }, el('div', { class: 'section-head' }, el('h2', {}, 'SLOs'), el('a', { href: '/slos' }, 'SLOs page')), sloTable) : null,
  ];
  main.replaceChildren(...sections.filter(Boolean));

  // Values come in as their queries answer.
  const fill = async ({ def, value, box }) => {
    const expr = homeQuery(def.targets[0].expr, 0);
    try {
      const r = await instant(expr);
      const v = r.length ? parseFloat(r[0].value[1]) : null;
      value.textContent = v === null ? 'no data yet' : formatValue(v, def.unit, def.decimals);
      if (v !== null) value.style.color = thresholdColor(def.thresholds, v) || '';
      box.dataset.state = v === null ? 'nodata' : 'done';
    } catch (e) {
      value.textContent = 'error';
      box.title = e.message;
      box.dataset.state = 'error';
    }
  };
  const upFill = (async () => {
    try {
      const [ok, all] = await Promise.all([instant('count(up == 1)'), instant('count(up)')]);
      const n = ok.length ? +ok[0].value[1] : 0;
      const total = all.length ? +all[0].value[1] : 0;
      up.lastChild.textContent = total ? `${n} of ${total}` : 'no scrape yet';
      up.lastChild.style.color = total && n < total ? 'var(--red)' : '';
      up.dataset.state = total ? 'done' : 'nodata';
    } catch (e) {
      up.lastChild.textContent = 'error';
      up.dataset.state = 'error';
    }
  })();
  const charts = [];
  // A new install's charts span the time it has data (from its first
  // scrape, at most an hour), so the first minutes fill the chart.
  const end = Math.floor(Date.now() / 1000);
  let first = end - CHART_RANGE_S;
  try {
    const oldest = await firstDataTime('up', CHART_RANGE_S, end);
    if (oldest !== null) first = Math.max(first, Math.floor(oldest) - 1);
  } catch (e) {
    console.warn(e.message);
  }
  const span = Math.max(end - first, 60);
  const drawChart = async (c) => {
    const width = c.box.clientWidth || 600;
    const step = autoStep(span * 1000, Math.max(Math.floor(width / 3), 60));
    const start = end - Math.floor(span / step) * step;
    const expr = homeQuery(c.def.targets[0].expr, step);
    c.card.querySelector('.section-head').append(el('a', { class: 'query-link', href: `/graph?${new URLSearchParams({ expr })}` }, 'Query ↗'));
    try {
      const data = await api('/api/v1/query_range', { params: { query: expr, start, end, step } });
      const results = data.result || [];
      if (!results.length) {
        c.box.replaceChildren(el('div', { class: 'nodata' }, 'no data yet'));
        c.card.dataset.state = 'nodata';
        return;
      }
      const { xs, ys } = alignSeries(results, start, end, step);
      charts.push(timeChart(c.box, { names: results.map((r) => legendName(c.def.targets[0].legend, r.metric)), xs, ys, unit: c.def.unit, stacked: !!c.def.stacked, min: c.def.min, max: c.def.max, height: 200, fill: results.length === 1 ? 0.12 : 0 }));
      c.card.dataset.state = 'done';
    } catch (e) {
      c.box.replaceChildren(el('div', { class: 'panel-error' }, e.message));
      c.card.dataset.state = 'error';
    }
  };
  await Promise.all([...statBoxes.map(fill), upFill, ...chartBoxes.map(drawChart)]);
  return () => charts.forEach((c) => c.destroy());
}
