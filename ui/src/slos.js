// slos.js: the SLO pages. /slos lists every SLO with its objective,
// current SLI, budget remaining, burn rate and alert state; /slos/<id>
// shows one: the burn rate of each alert window against its threshold,
// the budget burn-down over the period, the alerts and the rules osprey
// generated. The SLOs come from /api/osprey/slos; every value is a series
// the generated rules record, read with PromQL.

import { el, api, ApiError, formatDuration, formatTime, formatValue } from './util.js';
import { alignSeries, timeChart } from './chart.js';

/** Percent text with enough decimals to tell the value from the objective. */
export function percentText(ratio, objectivePercent) {
  if (ratio === null || ratio === undefined || Number.isNaN(ratio)) return '–';
  const digits = Math.max(1, decimalsOf(objectivePercent) + 1);
  return (ratio * 100).toFixed(digits) + '%';
}

function decimalsOf(x) {
  const s = String(x);
  const dot = s.indexOf('.');
  return dot < 0 ? 0 : s.length - dot - 1;
}

/** How long until the budget is gone: "never" at no burn, "exhausted" at none left. */
export function exhaustionText(seconds, remaining) {
  if (remaining !== null && remaining !== undefined && remaining <= 0) return 'exhausted';
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  if (!Number.isFinite(seconds)) return 'never at this rate';
  if (seconds < 60) return 'under a minute';
  if (seconds < 2 * 86400) return formatDuration(seconds * 1000);
  return `${(seconds / 86400).toFixed(1)} days`;
}

/** A budget bar: green while over half is left, orange, then red. */
function budgetBar(remaining) {
  const share = remaining === null || remaining === undefined || Number.isNaN(remaining) ? 0 : Math.max(0, Math.min(1, remaining));
  const color = remaining === null ? '#adb5bd' : remaining <= 0 ? 'var(--red)' : remaining < 0.25 ? 'var(--orange)' : 'var(--green)';
  return el('div', { class: 'budget-track', title: remaining === null ? 'no data yet' : `${(remaining * 100).toFixed(2)}% left` }, el('div', { class: 'budget-fill', style: { width: `${(share * 100).toFixed(1)}%`, background: color } }));
}

/** The values of an instant query, by `sloth_id` (and `sloth_window` when asked). */
async function byId(expr, key = (m) => m.sloth_id) {
  const out = new Map();
  try {
    const data = await api('/api/v1/query', { params: { query: expr } });
    for (const r of data.result || []) out.set(key(r.metric), parseFloat(r.value[1]));
  } catch (e) {
    console.warn(`query ${expr}: ${e.message}`);
  }
  return out;
}

async function loadSlos() {
  return api('/api/osprey/slos');
}

function unavailable(main, e) {
  const msg = e instanceof ApiError && (e.status === 404 || e.status === 405) ? 'The SLO API is not available on this server.' : `Cannot load the SLOs: ${e.message}`;
  main.replaceChildren(el('h1', {}, 'SLOs'), el('div', { class: 'unavailable', 'data-state': 'unavailable' }, msg));
}

function alertBadges(alerts, id) {
  const mine = alerts.filter((a) => a.labels && a.labels.sloth_id === id && a.state !== 'inactive');
  if (!mine.length) return el('span', { class: 'badge ok', 'data-alert': 'none' }, 'ok');
  return mine.map((a) => el('span', { class: 'badge ' + a.state, 'data-alert': `${a.labels.sloth_severity || ''}-${a.state}`, title: a.labels.alertname }, `${a.labels.sloth_severity || a.labels.alertname} ${a.state}`));
}

// ---------------------------------------------------------------------------
// The list.

export async function renderSloList(main) {
  main.replaceChildren(el('h1', {}, 'SLOs'), el('div', { class: 'hint' }, 'Loading…'));
  let data;
  try {
    data = await loadSlos();
  } catch (e) {
    return unavailable(main, e);
  }
  const slos = data.slos || [];
  const head = el('div', { class: 'section-head' }, el('h1', {}, 'SLOs'), el('a', { href: '/d/slos' }, 'SLOs dashboard'));
  if (!slos.length) {
    main.replaceChildren(head, el('div', { class: 'nodata', 'data-state': 'empty' }, 'No SLOs are configured. List Sloth or OpenSLO spec files under slos: in the configuration (see docs/slos.md).'));
    return;
  }
  const [time, events, burn, periodBurn, exhaustion, alertsData] = await Promise.all([
    byId('slo:period_error_budget_remaining:ratio'),
    byId('osprey_slo:period_error_budget_remaining_events:ratio'),
    byId('slo:current_burn_rate:ratio'),
    byId('slo:period_burn_rate:ratio'),
    byId('osprey_slo:time_to_exhaustion:seconds'),
    api('/api/v1/alerts').catch(() => ({ alerts: [] })),
  ]);
  const alerts = alertsData.alerts || [];
  const rows = slos.map((s) => {
    const remaining = (s.budgetMethod === 'events' ? events : time).get(s.id) ?? null;
    const budget = 1 - s.objectiveRatio;
    const pb = periodBurn.get(s.id);
    const sli = pb === undefined ? null : 1 - pb * budget;
    const b = burn.get(s.id);
    return el(
      'tr',
      { 'data-slo': s.id },
      el('td', {}, el('a', { href: `/slos/${encodeURIComponent(s.id)}`, class: 'slo-link' }, el('strong', {}, s.name)), el('div', { class: 'muted small' }, s.description || s.indicator)),
      el('td', {}, s.service),
      el('td', { class: 'num' }, `${s.objective}%`),
      el('td', { class: 'num', 'data-field': 'sli' }, percentText(sli, s.objective)),
      el('td', { class: 'budget-cell' }, budgetBar(remaining), el('span', { class: 'num', 'data-field': 'budget' }, remaining === null ? '–' : `${(remaining * 100).toFixed(1)}%`)),
      el('td', { class: 'num', 'data-field': 'burn' }, b === undefined ? '–' : `${formatValue(b, 'none')}×`),
      el('td', { 'data-field': 'exhaustion' }, exhaustionText(exhaustion.get(s.id), remaining)),
      el('td', {}, el('span', { class: 'tag' }, s.period), el('span', { class: 'tag' }, `budget: ${s.budgetMethod}`)),
      el('td', {}, alertBadges(alerts, s.id)),
    );
  });
  main.replaceChildren(
    head,
    ...(data.warnings || []).map((w) => el('div', { class: 'warning' }, w)),
    el(
      'table',
      { class: 'data slo-table' },
      el('thead', {}, el('tr', {}, ['SLO', 'Service', 'Objective', 'SLI (period)', 'Budget remaining', 'Burn rate (5m)', 'Budget lasts', 'Period', 'Alerts'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows),
    ),
  );
}

// ---------------------------------------------------------------------------
// One SLO.

export async function renderSlo(main, id) {
  id = decodeURIComponent(id);
  main.replaceChildren(el('div', { class: 'hint' }, 'Loading…'));
  let data;
  try {
    data = await loadSlos();
  } catch (e) {
    return unavailable(main, e);
  }
  const s = (data.slos || []).find((x) => x.id === id);
  if (!s) {
    main.replaceChildren(el('h1', {}, 'SLOs'), el('div', { class: 'error-box' }, `No SLO "${id}" is configured.`), el('a', { href: '/slos' }, 'All SLOs'));
    return;
  }
  const sel = `sloth_id="${id.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const budget = 1 - s.objectiveRatio;
  const [windows, time, events, periodBurn, exhaustion, alertsData, rulesData] = await Promise.all([
    byId(`{__name__=~"slo:sli_error:ratio_rate.+", ${sel}}`, (m) => m.sloth_window),
    byId(`slo:period_error_budget_remaining:ratio{${sel}}`),
    byId(`osprey_slo:period_error_budget_remaining_events:ratio{${sel}}`),
    byId(`slo:period_burn_rate:ratio{${sel}}`),
    byId(`osprey_slo:time_to_exhaustion:seconds{${sel}}`),
    api('/api/v1/alerts').catch(() => ({ alerts: [] })),
    api('/api/v1/rules', { params: { type: 'alert', 'group_name[]': s.groups.filter((g) => g.startsWith('sloth-slo-alerts-')) } }).catch(() => ({ groups: [] })),
  ]);
  const remainingTime = time.get(id) ?? null;
  const remainingEvents = events.get(id) ?? null;
  const remaining = s.budgetMethod === 'events' ? remainingEvents : remainingTime;
  const pb = periodBurn.get(id);
  const sliPeriod = pb === undefined ? null : 1 - pb * budget;
  const ratio5m = windows.get('5m');
  const sli5m = ratio5m === undefined ? null : 1 - ratio5m;

  const stat = (name, value, field, sub) => el('div', { class: 'slo-stat' }, el('div', { class: 'stat-name' }, name), el('div', { class: 'slo-stat-value', 'data-field': field }, value), sub ? el('div', { class: 'muted small' }, sub) : null);
  const other = s.budgetMethod === 'events' ? ['time-averaged', remainingTime] : ['event-weighted', remainingEvents];
  const stats = el(
    'div',
    { class: 'slo-stats' },
    stat('Objective', `${s.objective}%`, 'objective', `over ${s.calendar ? 'the calendar ' + s.period : s.period}`),
    stat('SLI, period so far', percentText(sliPeriod, s.objective), 'sli'),
    stat('SLI, last 5m', percentText(sli5m, s.objective), 'sli5m'),
    el('div', { class: 'slo-stat' }, el('div', { class: 'stat-name' }, `Budget remaining (${s.budgetMethod === 'events' ? 'event-weighted' : 'time-averaged'})`), el('div', { class: 'slo-stat-value', 'data-field': 'budget' }, remaining === null ? '–' : `${(remaining * 100).toFixed(1)}%`), budgetBar(remaining), el('div', { class: 'muted small' }, other[1] === null ? (s.hasEvents ? '' : 'no event counts: time-averaged only') : `${other[0]}: ${(other[1] * 100).toFixed(1)}%`)),
    stat('Budget lasts', exhaustionText(exhaustion.get(id), remaining), 'exhaustion', 'at the current (5m) burn rate'),
  );

  // Burn rate per alert window against the pair's threshold.
  const windowRows = (s.windows || []).map((w) => {
    const short = windows.get(w.short);
    const long = windows.get(w.long);
    const burnShort = short === undefined ? null : short / budget;
    const burnLong = long === undefined ? null : long / budget;
    const over = (b) => b !== null && b > w.factor;
    const firing = over(burnShort) && over(burnLong);
    const cell = (b) => el('td', { class: 'num' + (over(b) ? ' over' : '') }, b === null ? '–' : `${formatValue(b, 'none')}×`);
    return el(
      'tr',
      { 'data-window': `${w.short}/${w.long}` },
      el('td', {}, el('span', { class: 'tag' }, w.severity)),
      el('td', {}, `${w.short} and ${w.long}`),
      el('td', { class: 'num' }, `${formatValue(w.factor, 'none')}×`),
      el('td', { class: 'num' }, `${w.budgetPercent}% of the budget in ${w.long}`),
      cell(burnShort),
      cell(burnLong),
      el('td', {}, firing ? el('span', { class: 'badge firing' }, 'over') : el('span', { class: 'badge ok' }, 'under')),
    );
  });

  // Alert rules and their alerts.
  const alerts = (alertsData.alerts || []).filter((a) => a.labels && a.labels.sloth_id === id);
  const ruleRows = [];
  for (const g of rulesData.groups || []) {
    for (const r of g.rules || []) {
      ruleRows.push(el('tr', {}, el('td', {}, el('strong', {}, r.name)), el('td', {}, el('span', { class: 'tag' }, (r.labels && r.labels.sloth_severity) || '')), el('td', {}, el('span', { class: 'badge ' + r.state, 'data-rule-state': r.state }, r.state))));
    }
  }

  const chartBox = el('div', { class: 'chart slo-chart' });
  const warnings = (data.warnings || []).filter((w) => w.includes(`SLO ${id}:`));
  main.replaceChildren(
    el('div', { class: 'section-head' }, el('h1', {}, `${s.service} / ${s.name}`), el('a', { href: '/slos' }, 'All SLOs')),
    s.description ? el('div', { class: 'muted dash-desc' }, s.description) : null,
    ...warnings.map((w) => el('div', { class: 'warning' }, w)),
    el('div', { class: 'card' }, stats),
    el(
      'div',
      { class: 'card' },
      el('h2', {}, 'Budget burn-down'),
      el('div', { class: 'muted small' }, s.calendar ? `Since the start of the ${s.period} (UTC).` : `Over the last ${s.period}.`),
      chartBox,
    ),
    el(
      'div',
      { class: 'card' },
      el('h2', {}, 'Burn rate per window'),
      el('div', { class: 'muted small' }, 'An alert fires when both windows of a pair burn faster than its factor (multi-window, multi-burn-rate alerting).'),
      el('table', { class: 'data slo-windows' }, el('thead', {}, el('tr', {}, ['Alert', 'Windows', 'Factor', 'Meaning', 'Burn, short', 'Burn, long', 'Now'].map((h) => el('th', {}, h)))), el('tbody', {}, windowRows)),
    ),
    el(
      'div',
      { class: 'card' },
      el('h2', {}, 'Alerts'),
      ruleRows.length ? el('table', { class: 'data' }, el('thead', {}, el('tr', {}, ['Alert rule', 'Severity', 'State'].map((h) => el('th', {}, h)))), el('tbody', {}, ruleRows)) : el('div', { class: 'muted' }, 'Alerts are disabled for this SLO.'),
      alerts.length ? el('div', { class: 'slo-alerts' }, alerts.map((a) => el('div', {}, el('span', { class: 'badge ' + a.state }, a.state), ' ', a.labels.alertname, ' ', el('span', { class: 'tag' }, a.labels.sloth_severity || ''), ` since ${formatTime(Date.parse(a.activeAt))}`))) : null,
    ),
    el(
      'div',
      { class: 'card' },
      el('h2', {}, 'Definition'),
      el(
        'div',
        { class: 'kv' },
        el('div', {}, 'SLI'), el('div', {}, s.indicator),
        el('div', {}, 'Spec'), el('div', {}, `${s.spec}, ${s.file}:${s.line}`),
        el('div', {}, 'Period'), el('div', {}, s.calendar ? `calendar ${s.period} (UTC)` : `rolling ${s.period}`),
        el('div', {}, 'Budget method'), el('div', {}, s.budgetMethod === 'events' ? 'event-weighted (errors over events in the period)' : 'time-averaged (the mean of the 5m error ratio over the period, as Sloth computes it)'),
        el('div', {}, 'Low-traffic protection'), el('div', {}, s.minEvents ? `no alert while a window holds fewer than ${s.minEvents} events` : 'off'),
        ...(Object.keys(s.labels || {}).length ? [el('div', {}, 'Labels'), el('div', {}, el('div', { class: 'labels' }, Object.entries(s.labels).map(([k, v]) => el('span', { class: 'label' }, `${k}="${v}"`))))] : []),
      ),
      el('details', { class: 'slo-rules' }, el('summary', {}, `Generated rules (${s.groups.length} groups)`), el('pre', { class: 'config' }, s.rules)),
    ),
  );

  // The burn-down: the budget remaining over the period (or the part of
  // it the data covers), both methods when the SLI counts events.
  const end = Math.floor(Date.now() / 1000);
  const start = end - Math.max(3600, s.periodSeconds);
  const names = [`budget remaining (${s.budgetMethod === 'events' ? 'event-weighted' : 'time-averaged'})`];
  const exprs = [s.budgetMethod === 'events' ? `osprey_slo:period_error_budget_remaining_events:ratio{${sel}}` : `slo:period_error_budget_remaining:ratio{${sel}}`];
  if (s.hasEvents) {
    names.push(s.budgetMethod === 'events' ? 'time-averaged' : 'event-weighted');
    exprs.push(s.budgetMethod === 'events' ? `slo:period_error_budget_remaining:ratio{${sel}}` : `osprey_slo:period_error_budget_remaining_events:ratio{${sel}}`);
  }
  const range = async (from, step) => {
    const results = await Promise.all(exprs.map((q) => api('/api/v1/query_range', { params: { query: q, start: from, end, step } })));
    return results.map((r) => (r.result || [])[0] || { values: [] });
  };
  let chart = null;
  try {
    // A young SLO (rules recording for less than an hour) is drawn over
    // the time it has data, read from its raw samples; an older one over
    // the whole period, the last step at now.
    let first = end;
    try {
      const raw = await api('/api/v1/query', { params: { query: `${exprs[0]}[1h]`, time: end } });
      for (const r of raw.result || []) for (const [t] of r.values || []) first = Math.min(first, t);
    } catch (e) {
      console.warn(e.message);
    }
    let step;
    let from;
    if (first > end - 3600 + 60) {
      step = Math.max(1, Math.ceil((end - first) / 300));
      from = end - Math.ceil((end - first) / step) * step;
    } else {
      step = Math.max(15, Math.ceil((end - start) / 400));
      from = end - Math.floor((end - start) / step) * step;
    }
    const series = await range(from, step);
    const { xs, ys } = alignSeries(series, from, end, step);
    if (ys.every((y) => y.every((v) => v === null))) {
      chartBox.replaceChildren(el('div', { class: 'nodata' }, 'No budget recorded yet: the rules record it from their first evaluation on.'));
    } else {
      // From 100 % down to 0 (or below, once overspent): a flat budget
      // reads flat rather than magnifying the last digits of the float.
      let lowest = 0;
      for (const y of ys) for (const v of y) if (v !== null && v < lowest) lowest = v;
      chart = timeChart(chartBox, { names, xs, ys, unit: 'percentunit', height: 260, fill: 0.15, min: lowest, max: 1, thresholds: [{ value: 0, color: 'red' }] });
    }
  } catch (e) {
    chartBox.replaceChildren(el('div', { class: 'panel-error' }, e.message));
  }
  return () => chart && chart.destroy();
}
