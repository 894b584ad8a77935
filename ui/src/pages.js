// pages.js: the Targets, Rules, Alerts, Silences and Status pages. Each
// reads the Prometheus v1 or Alertmanager v2 API and, when an endpoint is
// not there (404), says so instead of failing.

import { el, api, ApiError, ago, formatDuration, parseDuration, formatTime, debounce, formatValue, can, PALETTE } from './util.js';

function labelChips(labels, skip = []) {
  return el(
    'div',
    { class: 'labels' },
    Object.keys(labels || {})
      .filter((k) => !skip.includes(k))
      .sort()
      .map((k) => el('span', { class: 'label' }, `${k}="${labels[k]}"`)),
  );
}

function unavailable(main, title, what, e) {
  const msg =
    e instanceof ApiError && (e.status === 404 || e.status === 405)
      ? `${what} is not available on this server yet.`
      : `Cannot load ${what}: ${e.message}`;
  main.replaceChildren(el('h1', {}, title), el('div', { class: 'unavailable', 'data-state': 'unavailable' }, msg));
}

function secondsText(s) {
  if (s === undefined || s === null) return '';
  if (s < 1) return `${(s * 1000).toFixed(1)} ms`;
  return `${s.toFixed(2)} s`;
}

// ---------------------------------------------------------------------------
// Targets.

export async function renderTargets(main) {
  const health = el('select', { 'aria-label': 'Health' }, el('option', { value: '' }, 'all'), el('option', { value: 'up' }, 'up'), el('option', { value: 'down' }, 'down'), el('option', { value: 'unknown' }, 'unknown'));
  const search = el('input', { placeholder: 'Filter by endpoint or labels', size: 40, 'aria-label': 'Filter' });
  const list = el('div', {});
  main.replaceChildren(el('h1', {}, 'Targets'), el('div', { class: 'filters' }, 'Health', health, search), list);
  let data;
  try {
    data = await api('/api/v1/targets', { params: { state: 'active' } });
  } catch (e) {
    return unavailable(main, 'Targets', 'the targets API', e);
  }
  const draw = () => {
    const want = health.value;
    const q = search.value.trim().toLowerCase();
    const pools = new Map();
    for (const t of data.activeTargets || []) {
      if (want && t.health !== want) continue;
      if (q && !(t.scrapeUrl + ' ' + JSON.stringify(t.labels)).toLowerCase().includes(q)) continue;
      if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
      pools.get(t.scrapePool).push(t);
    }
    if (!pools.size) {
      list.replaceChildren(el('div', { class: 'nodata' }, (data.activeTargets || []).length ? 'No target matches the filter.' : 'No targets are configured.'));
      return;
    }
    list.replaceChildren(
      ...[...pools.entries()].sort().map(([pool, targets]) => {
        const up = targets.filter((t) => t.health === 'up').length;
        return el(
          'details',
          { class: 'card group', open: true },
          el('summary', {}, `${pool} `, el('span', { class: 'badge ' + (up === targets.length ? 'up' : targets.some((t) => t.health === 'down') ? 'down' : 'unknown') }, `${up}/${targets.length} up`)),
          el(
            'table',
            { class: 'data' },
            el('thead', {}, el('tr', {}, ['Endpoint', 'State', 'Labels', 'Last scrape', 'Duration', 'Error'].map((h) => el('th', {}, h)))),
            el(
              'tbody',
              {},
              targets.map((t) =>
                el(
                  'tr',
                  {},
                  el('td', {}, el('a', { href: t.scrapeUrl, target: '_blank', rel: 'noreferrer' }, t.scrapeUrl)),
                  el('td', {}, el('span', { class: 'badge ' + t.health }, t.health)),
                  el('td', {}, labelChips(t.labels)),
                  el('td', {}, ago(Date.parse(t.lastScrape))),
                  el('td', { class: 'num' }, t.health === 'unknown' ? '' : secondsText(t.lastScrapeDuration)),
                  el('td', { class: 'panel-error' }, t.lastError || ''),
                ),
              ),
            ),
          ),
        );
      }),
    );
  };
  health.addEventListener('change', draw);
  search.addEventListener('input', debounce(draw, 150));
  draw();
}

// ---------------------------------------------------------------------------
// Rules.

export async function renderRules(main) {
  main.replaceChildren(el('h1', {}, 'Rules'), el('div', { class: 'hint' }, 'Loading…'));
  let data;
  try {
    data = await api('/api/v1/rules');
  } catch (e) {
    return unavailable(main, 'Rules', 'The rules API (/api/v1/rules)', e);
  }
  const groups = data.groups || [];
  if (!groups.length) {
    main.replaceChildren(el('h1', {}, 'Rules'), el('div', { class: 'nodata' }, 'No rule groups are loaded.'));
    return;
  }
  // The backtest range: how far back from now the Backtest buttons look.
  const range = el(
    'select',
    { 'aria-label': 'Backtest range', class: 'backtest-range' },
    ['1h', '6h', '1d', '7d'].map((r) => el('option', { value: r, selected: r === '1d' }, r)),
  );
  main.replaceChildren(
    el('h1', {}, 'Rules'),
    el('div', { class: 'filters' }, 'Backtest over the last', range),
    ...groups.map((g) => {
      const results = el('div', { class: 'backtest-results' });
      // The backtest reports the alerting rules in group order; a rule's
      // button picks its own by that position (names may repeat).
      const alerting = (g.rules || []).filter((r) => r.type === 'alerting');
      const run = (rule) => backtestGroup(g, rule && { name: rule.name, index: alerting.indexOf(rule) }, parseDuration(range.value), results);
      return el(
        'details',
        { class: 'card group', open: true, 'data-group': g.name },
        el(
          'summary',
          {},
          `${g.name} `,
          el('span', { class: 'tag' }, g.file || ''),
          el('span', { class: 'tag' }, `every ${formatDuration((g.interval || 0) * 1000)}`),
          el('span', { class: 'tag' }, `last evaluated ${ago(Date.parse(g.lastEvaluation))}`),
          (g.rules || []).some((r) => r.type === 'alerting')
            ? el('button', { class: 'backtest-group', title: 'What would this group have done over the chosen range?', onclick: (e) => (e.preventDefault(), run(null)) }, 'Backtest')
            : null,
        ),
        el(
          'table',
          { class: 'data' },
          el('thead', {}, el('tr', {}, ['Rule', 'State', 'Health', 'Last evaluation', 'Evaluation time'].map((h) => el('th', {}, h)))),
          el(
            'tbody',
            {},
            (g.rules || []).map((r) =>
              el(
                'tr',
                {},
                el(
                  'td',
                  {},
                  el(
                    'div',
                    { class: 'mono' },
                    r.type === 'alerting' ? 'alert: ' : 'record: ',
                    el('strong', {}, r.name),
                    r.type === 'alerting' ? el('button', { class: 'backtest-rule', 'data-rule': r.name, onclick: () => run(r) }, 'Backtest') : null,
                  ),
                  el('div', { class: 'mono' }, 'expr: ', el('a', { href: '/graph?expr=' + encodeURIComponent(r.query) }, r.query)),
                  r.duration ? el('div', { class: 'mono' }, `for: ${formatDuration(r.duration * 1000)}`) : null,
                  Object.keys(r.labels || {}).length ? labelChips(r.labels) : null,
                  r.lastError ? el('div', { class: 'panel-error' }, r.lastError) : null,
                ),
                el('td', {}, r.type === 'alerting' ? el('span', { class: 'badge ' + r.state }, r.state) : ''),
                el('td', {}, el('span', { class: 'badge ' + (r.health === 'ok' ? 'ok' : r.health === 'err' ? 'err' : 'unknown') }, r.health)),
                el('td', {}, ago(Date.parse(r.lastEvaluation))),
                el('td', { class: 'num' }, secondsText(r.evaluationTime)),
              ),
            ),
          ),
        ),
        results,
      );
    }),
  );
}

// A duration in a rule file: whole milliseconds (`/api/v1/rules` gives
// seconds with decimals; Prometheus's durations take no fractions).
function ruleDuration(seconds) {
  return `${Math.round((seconds || 0) * 1000)}ms`;
}

/**
 * The rule file text of a group as `/api/v1/rules` shows it: JSON, which
 * is YAML, so the server's rule-file parser reads it as written.
 */
export function groupRuleFile(g, indent) {
  const rules = (g.rules || []).map((r) => {
    const labels = r.labels && Object.keys(r.labels).length ? r.labels : undefined;
    if (r.type !== 'alerting') return { record: r.name, expr: r.query, labels };
    const rule = { alert: r.name, expr: r.query, labels, annotations: r.annotations && Object.keys(r.annotations).length ? r.annotations : undefined };
    if (r.duration) rule.for = ruleDuration(r.duration);
    if (r.keepFiringFor) rule.keep_firing_for = ruleDuration(r.keepFiringFor);
    return rule;
  });
  const group = { name: g.name, interval: ruleDuration(g.interval), rules };
  if (g.limit) group.limit = g.limit;
  return JSON.stringify({ groups: [group] }, null, indent);
}

/**
 * Backtests one group over the last `rangeMs` (POST /api/v1/rules/backtest
 * with the group's text) and draws each alerting rule's pending and firing
 * intervals, or only those of `only` ({name, index among the group's
 * alerting rules}), into `into`. With `compareText` (an edited rule file),
 * that version is backtested too and drawn under each rule.
 */
async function backtestGroup(g, only, rangeMs, into, compareText) {
  const ruleName = only ? only.name : null;
  const to = Math.floor(Date.now() / 1000);
  const from = to - Math.round(rangeMs / 1000);
  into.replaceChildren(el('div', { class: 'hint' }, `Backtesting ${ruleName || g.name}…`));
  let data;
  try {
    data = await api('/api/v1/rules/backtest', {
      method: 'POST',
      form: [
        ['from', String(from)],
        ['to', String(to)],
        ['rules', groupRuleFile(g)],
        ['file', g.file || g.name],
        ...(compareText ? [['compare', compareText]] : []),
      ],
    });
  } catch (e) {
    into.replaceChildren(el('div', { class: 'error-box' }, `Backtest failed: ${e.message}`));
    return;
  }
  const pick = (list) => (list || []).map((r, i) => [r, i]).filter(([, i]) => !only || i === only.index);
  const compared = data.compare ? data.compare.rules || [] : null;
  const rules = pick(data.rules);
  const edited = el('textarea', { class: 'backtest-compare-text mono', rows: 12, cols: 100, spellcheck: 'false', 'aria-label': 'Edited rules' });
  edited.value = compareText || groupRuleFile(g, 2);
  const comparePanel = el(
    'details',
    { class: 'backtest-compare', open: !!compareText },
    el('summary', {}, 'Compare with an edited version'),
    el('div', { class: 'hint' }, 'Edit the group (a rule file; JSON is YAML), e.g. a threshold or a for, and backtest both over the same range.'),
    edited,
    el('div', {}, el('button', { class: 'primary backtest-both', onclick: () => backtestGroup(g, only, rangeMs, into, edited.value) }, 'Backtest both')),
  );
  into.replaceChildren(
    el(
      'div',
      { class: 'backtest', 'data-from': from, 'data-to': to },
      el('h3', {}, `Backtest of ${ruleName || g.name}: ${formatTime(from * 1000)} to ${formatTime(to * 1000)}`),
      (data.recordingErrors || []).map((e) => el('div', { class: 'panel-error' }, `recording rule: ${e}`)),
      rules.length
        ? rules.map(([r, i]) => [
            backtestRule(r, from, to, compared ? 'current' : null, alertingExprs(groupRuleFile(g))[i]),
            compared
              ? compared[i]
                ? backtestRule(compared[i], from, to, 'edited', alertingExprs(compareText)[i] || alertingExprs(groupRuleFile(g))[i])
                : el('div', { class: 'hint' }, 'The edited version has no alerting rule at this position.')
              : null,
          ])
        : el('div', { class: 'nodata' }, 'No alerting rule to backtest.'),
      comparePanel,
    ),
  );
}

const STATE_COLOURS = { pending: '#e0a000', firing: '#c4162a' };
/** The most alerts drawn per rule; the rest are counted. */
const MAX_TIMELINE_ROWS = 30;

/**
 * The `expr` of each alerting rule in a rule file's first group, in order,
 * when the text is JSON (as the compare panel starts); [] otherwise (YAML
 * edits: the caller falls back to the current rule's expression).
 */
export function alertingExprs(text) {
  try {
    const group = (JSON.parse(text).groups || [])[0] || {};
    return (group.rules || []).filter((r) => r && r.alert !== undefined).map((r) => String(r.expr ?? ''));
  } catch {
    return [];
  }
}

const COMPARISONS = ['==', '!=', '>=', '<=', '>', '<'];
const SET_OPERATORS = /^(and|or|unless)\b/i;

/**
 * Splits a PromQL expression at its outermost comparison (`a > b`,
 * `a >= bool 3`, ...): {left, op, right, threshold}, where `threshold` is
 * the right side as a number when it is one, else null. Null when the
 * expression has no comparison outside brackets, braces, parentheses and
 * strings, or when it has `and`, `or` or `unless` at the top (the chart
 * then shows nothing better than the expression itself). With several
 * top-level comparisons the last splits (they are left-associative).
 */
export function splitComparison(expr) {
  const text = String(expr || '');
  let depth = 0;
  let quote = null;
  let at = -1;
  let op = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0) {
      if (/[a-z]/i.test(c) && (i === 0 || /[\s)\]}]/.test(text[i - 1])) && SET_OPERATORS.test(text.slice(i))) return null;
      const found = COMPARISONS.find((o) => text.startsWith(o, i));
      // `=~` and `!~` only appear in braces; a lone `=` is not PromQL here.
      if (found) {
        at = i;
        op = found;
        i += found.length - 1;
      }
    }
  }
  if (at < 0) return null;
  const left = text.slice(0, at).trim();
  // Modifiers after the operator: `bool`, `on(...)`/`ignoring(...)` and
  // `group_left`/`group_right(...)` belong to the comparison, not to `b`.
  let right = text.slice(at + op.length).trim();
  for (;;) {
    const m = right.match(/^(bool\b|(?:on|ignoring|group_left|group_right)\s*(?:\([^)]*\))?)\s*/i);
    if (!m || !m[0]) break;
    right = right.slice(m[0].length);
  }
  if (!left || !right) return null;
  const threshold = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(right) ? Number(right) : null;
  return { left, op, right, threshold };
}

/** A range query's step (seconds): about 450 points over `from`..`to`. */
export function metricStep(from, to) {
  return Math.max(1, Math.ceil((to - from) / 450));
}

function backtestRule(r, from, to, version, expr) {
  const alerts = r.alerts || [];
  const notifications = r.notifications
    ? `${r.notifications.total} notification${r.notifications.total === 1 ? '' : 's'}` +
      (Object.keys(r.notifications.byReceiver || {}).length
        ? ' (' + Object.entries(r.notifications.byReceiver).map(([k, v]) => `${k}: ${v}`).join(', ') + ')'
        : '')
    : 'notifications not simulated (no alert manager)';
  const flapping = r.flapping ? `flapping ${formatValue(r.flapping.score)}` : '';
  const firingStarts = alerts.flatMap((a) => (a.intervals || []).filter((i) => i.state === 'firing').map((i) => i.start));
  return el(
    'div',
    {
      class: 'backtest-rule-result' + (version === 'edited' ? ' edited' : ''),
      'data-rule': r.name,
      'data-version': version,
      'data-alerts': alerts.length,
      'data-firing-intervals': firingStarts.length,
      'data-first-firing': firingStarts.length ? Math.min(...firingStarts) : null,
    },
    el(
      'div',
      {},
      version ? el('span', { class: 'tag' }, version) : null,
      el('strong', { class: 'mono' }, r.name),
      ' ',
      el('span', { class: 'tag' }, `${alerts.length} alert${alerts.length === 1 ? '' : 's'}`),
      el('span', { class: 'tag' }, `firing ${formatDuration((r.firingSeconds || 0) * 1000)} in ${r.firingEpisodes || 0} episode${r.firingEpisodes === 1 ? '' : 's'}`),
      el('span', { class: 'tag' }, notifications),
      flapping ? el('span', { class: 'tag' }, flapping) : null,
    ),
    r.error ? el('div', { class: 'panel-error' }, `${r.failedEvaluations || ''} failed evaluations: ${r.error}`) : null,
    expr ? metricChart(expr, alerts, from, to) : null,
    alerts.length ? timeline(alerts.slice(0, MAX_TIMELINE_ROWS), from, to) : el('div', { class: 'hint' }, 'Never pending or firing over the range.'),
    alerts.length > MAX_TIMELINE_ROWS ? el('div', { class: 'hint' }, `and ${alerts.length - MAX_TIMELINE_ROWS} more alerts`) : null,
    el('div', { class: 'legend' }, el('span', { class: 'swatch', style: { background: STATE_COLOURS.pending } }), 'pending ', el('span', { class: 'swatch', style: { background: STATE_COLOURS.firing } }), 'firing'),
  );
}

/**
 * The geometry the metric chart and the alert rows share, so that one
 * time reads at one x in both: a label column, then the plot.
 */
const TIMELINE = { width: 960, labelWidth: 260, right: 8 };

function timeX(from, to) {
  const plot = TIMELINE.width - TIMELINE.labelWidth - TIMELINE.right;
  return (t) => TIMELINE.labelWidth + Math.max(0, Math.min(1, (t - from) / Math.max(1, to - from))) * plot;
}

/** The most series the metric chart draws; the rest are counted. */
const MAX_METRIC_SERIES = 30;

/**
 * The rule's expression over the backtest range (`/api/v1/query_range`,
 * about 450 points), its alerts' pending and firing intervals shaded
 * behind the lines, on the alert rows' time axis. When the expression
 * returns nothing (a comparison false throughout) and is a comparison,
 * its left side is drawn instead, with the right side as a dashed
 * threshold line when it is a number. The canvas is drawn when the query
 * answers; `data-state` says when (`done`, `empty` or `error`).
 */
function metricChart(expr, alerts, from, to) {
  const height = 120;
  const ratio = window.devicePixelRatio || 1;
  const step = metricStep(from, to);
  const canvas = el('canvas', {
    class: 'backtest-metric-chart',
    width: TIMELINE.width * ratio,
    height: height * ratio,
    'data-from': from,
    'data-to': to,
    'data-step': step,
    'data-state': 'loading',
    style: { width: `${TIMELINE.width}px`, height: `${height}px` },
  });
  const caption = el('div', { class: 'hint mono' }, `expr: ${expr}`);
  const box = el('div', { class: 'backtest-metric' }, canvas, caption);
  const query = (q) => api('/api/v1/query_range', { params: { query: q, start: from, end: to, step } });
  (async () => {
    let results = [];
    let threshold = null;
    try {
      results = ((await query(expr)).result || []).filter((s) => (s.values || []).length);
      const sides = results.length ? null : splitComparison(expr);
      if (sides) {
        results = ((await query(sides.left)).result || []).filter((s) => (s.values || []).length);
        threshold = sides.threshold;
        caption.textContent = `the expression returned nothing over the range; its left side: ${sides.left}` + (threshold !== null ? `, threshold ${sides.op} ${sides.right} (dashed)` : '');
        canvas.dataset.source = 'left';
      } else canvas.dataset.source = 'expr';
    } catch (e) {
      caption.textContent = `cannot chart ${expr}: ${e.message}`;
      canvas.dataset.state = 'error';
      return;
    }
    drawMetric(canvas, results.slice(0, MAX_METRIC_SERIES), threshold, alerts, from, to, ratio, height);
    if (results.length > MAX_METRIC_SERIES) caption.textContent += ` (${MAX_METRIC_SERIES} of ${results.length} series drawn)`;
    const times = results.flatMap((s) => [s.values[0][0], s.values[s.values.length - 1][0]]);
    canvas.dataset.series = results.length;
    canvas.dataset.first = times.length ? Math.min(...times) : '';
    canvas.dataset.last = times.length ? Math.max(...times) : '';
    canvas.dataset.state = results.length ? 'done' : 'empty';
  })();
  return box;
}

function drawMetric(canvas, results, threshold, alerts, from, to, ratio, height) {
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  ctx.font = '11px sans-serif';
  ctx.textBaseline = 'middle';
  const x = timeX(from, to);
  const left = TIMELINE.labelWidth;
  const plot = TIMELINE.width - left - TIMELINE.right;
  const top = 6;
  const bottom = height - 6;
  ctx.fillStyle = '#fafbfc';
  ctx.fillRect(left, top, plot, bottom - top);
  // The intervals behind the lines: pending, then firing over it.
  for (const state of ['pending', 'firing']) {
    ctx.fillStyle = STATE_COLOURS[state] + '33';
    for (const a of alerts) {
      for (const iv of a.intervals || []) {
        if (iv.state !== state) continue;
        const start = x(iv.start);
        const end = x(iv.end === null || iv.end === undefined ? to : iv.end);
        ctx.fillRect(start, top, Math.max(2, end - start), bottom - top);
      }
    }
  }
  const values = results.flatMap((s) => s.values.map(([, v]) => parseFloat(v)).filter(Number.isFinite));
  if (threshold !== null) values.push(threshold);
  if (!values.length) {
    ctx.fillStyle = '#66707a';
    ctx.fillText('no data over the range', left + 8, (top + bottom) / 2);
    return;
  }
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (hi === lo) {
    hi += Math.abs(hi) * 0.1 || 1;
    lo -= Math.abs(lo) * 0.1 || 1;
  }
  const y = (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top);
  // The value scale in the label column, right-aligned against the plot.
  ctx.fillStyle = '#66707a';
  ctx.textAlign = 'right';
  ctx.fillText(formatValue(hi), left - 6, top + 4);
  ctx.fillText(formatValue(lo), left - 6, bottom - 4);
  ctx.textAlign = 'left';
  ctx.fillText(`${results.length} series`, 4, (top + bottom) / 2);
  ctx.lineWidth = 1.5;
  results.forEach((s, i) => {
    ctx.strokeStyle = PALETTE[i % PALETTE.length];
    ctx.beginPath();
    let last = null;
    for (const [t, v] of s.values) {
      const value = parseFloat(v);
      if (!Number.isFinite(value)) {
        last = null;
        continue;
      }
      // A gap of over two steps breaks the line, as the explorer does.
      const px = x(t);
      const py = y(value);
      if (last === null || t - last > 2 * Number(canvas.dataset.step)) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
      last = t;
    }
    ctx.stroke();
  });
  if (threshold !== null) {
    ctx.strokeStyle = STATE_COLOURS.firing;
    ctx.setLineDash([5, 4]);
    ctx.beginPath();
    ctx.moveTo(left, y(threshold));
    ctx.lineTo(left + plot, y(threshold));
    ctx.stroke();
    ctx.setLineDash([]);
  }
}

/** One row per alert: its labels, then its intervals on a shared time axis. */
function timeline(alerts, from, to) {
  const rowHeight = 16;
  const { labelWidth, width } = TIMELINE;
  const axisHeight = 18;
  const height = alerts.length * rowHeight + axisHeight;
  const ratio = window.devicePixelRatio || 1;
  const canvas = el('canvas', { class: 'backtest-timeline', width: width * ratio, height: height * ratio, style: { width: `${width}px`, height: `${height}px` } });
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  ctx.font = '11px sans-serif';
  ctx.textBaseline = 'middle';
  const plot = width - labelWidth - TIMELINE.right;
  const x = timeX(from, to);
  alerts.forEach((a, i) => {
    const y = i * rowHeight;
    const labels = Object.entries(a.labels || {})
      .filter(([k]) => k !== 'alertname')
      .map(([k, v]) => `${k}="${v}"`)
      .join(', ');
    ctx.fillStyle = '#66707a';
    ctx.fillText(labels.length > 42 ? labels.slice(0, 41) + '…' : labels || '{}', 4, y + rowHeight / 2, labelWidth - 8);
    ctx.fillStyle = '#eef0f3';
    ctx.fillRect(labelWidth, y + 2, plot, rowHeight - 4);
    for (const iv of a.intervals || []) {
      const start = x(iv.start);
      const end = x(iv.end === null || iv.end === undefined ? to : iv.end);
      ctx.fillStyle = STATE_COLOURS[iv.state] || '#888';
      ctx.fillRect(start, y + 2, Math.max(2, end - start), rowHeight - 4);
    }
  });
  // The time axis: five ticks.
  ctx.fillStyle = '#66707a';
  ctx.strokeStyle = '#dde1e6';
  const y = alerts.length * rowHeight;
  for (let k = 0; k <= 4; k++) {
    const t = from + ((to - from) * k) / 4;
    const px = x(t);
    ctx.beginPath();
    ctx.moveTo(px, 0);
    ctx.lineTo(px, y);
    ctx.stroke();
    ctx.textAlign = k === 0 ? 'left' : k === 4 ? 'right' : 'center';
    ctx.fillText(formatTime(t * 1000).slice(5, 16), px, y + axisHeight / 2);
  }
  return canvas;
}

// ---------------------------------------------------------------------------
// Alerts.

export async function renderAlerts(main) {
  const stateSel = el('select', { 'aria-label': 'State' }, el('option', { value: '' }, 'pending and firing'), el('option', { value: 'firing' }, 'firing'), el('option', { value: 'pending' }, 'pending'));
  const search = el('input', { placeholder: 'Filter by labels', size: 40, 'aria-label': 'Filter' });
  const list = el('div', {});
  main.replaceChildren(el('h1', {}, 'Alerts'), el('div', { class: 'filters' }, 'State', stateSel, search), list);
  let alerts;
  try {
    alerts = (await api('/api/v1/alerts')).alerts || [];
  } catch (e) {
    return unavailable(main, 'Alerts', 'The alerts API (/api/v1/alerts)', e);
  }
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = alerts.filter((a) => (!stateSel.value || a.state === stateSel.value) && (!q || JSON.stringify(a.labels).toLowerCase().includes(q)));
    if (!shown.length) {
      list.replaceChildren(el('div', { class: 'nodata', 'data-state': 'empty' }, alerts.length ? 'No alert matches the filter.' : 'No alerts are pending or firing.'));
      return;
    }
    const byName = new Map();
    for (const a of shown) {
      const n = (a.labels && a.labels.alertname) || '(no alertname)';
      if (!byName.has(n)) byName.set(n, []);
      byName.get(n).push(a);
    }
    list.replaceChildren(
      ...[...byName.entries()].sort().map(([name, group]) => {
        const firing = group.filter((a) => a.state === 'firing').length;
        return el(
          'details',
          { class: 'card group', open: true },
          el('summary', {}, `${name} `, firing ? el('span', { class: 'badge firing' }, `${firing} firing`) : null, ' ', group.length - firing ? el('span', { class: 'badge pending' }, `${group.length - firing} pending`) : null),
          el(
            'table',
            { class: 'data' },
            el('thead', {}, el('tr', {}, ['State', 'Labels', 'Annotations', 'Active since', 'Value', ''].map((h) => el('th', {}, h)))),
            el(
              'tbody',
              {},
              group.map((a) =>
                el(
                  'tr',
                  { class: 'alert-row' },
                  el('td', {}, el('span', { class: 'badge ' + a.state }, a.state)),
                  el('td', {}, labelChips(a.labels, ['alertname'])),
                  el('td', {}, Object.entries(a.annotations || {}).map(([k, v]) => el('div', {}, el('span', { class: 'tag' }, k), v))),
                  el('td', { title: a.activeAt ? formatTime(Date.parse(a.activeAt)) : '' }, ago(Date.parse(a.activeAt))),
                  el('td', { class: 'num', title: a.value ?? '' }, isNaN(parseFloat(a.value)) ? a.value ?? '' : formatValue(parseFloat(a.value), 'none')),
                  el('td', {}, el('a', { href: silenceLink(a.labels), class: 'silence-link' }, 'Silence')),
                ),
              ),
            ),
          ),
        );
      }),
    );
  };
  stateSel.addEventListener('change', draw);
  search.addEventListener('input', debounce(draw, 150));
  draw();
}

/** The Silences page URL with a new silence prefilled from alert labels. */
export function silenceLink(labels) {
  const q = new URLSearchParams({ new: '1' });
  for (const k of Object.keys(labels || {}).sort()) q.append('m', `${k}=${labels[k]}`);
  return '/silences?' + q;
}

// ---------------------------------------------------------------------------
// Silences.

export async function renderSilences(main) {
  const params = new URLSearchParams(location.search);
  const list = el('div', {});
  const formBox = el('div', {});
  const stateSel = el('select', { 'aria-label': 'State' }, ['active', 'pending', 'expired', 'all'].map((s) => el('option', { value: s }, s)));
  // The role decides what is shown: viewers see silences, editors change them.
  const newBtn = can('edit') ? el('button', { class: 'primary', onclick: () => openForm({}) }, 'New silence') : null;
  main.replaceChildren(el('div', { class: 'section-head' }, el('h1', {}, 'Silences'), newBtn), formBox, el('div', { class: 'filters' }, 'Show', stateSel), list);

  let silences = [];
  const load = async () => {
    try {
      silences = (await api('/api/v2/silences', { unwrap: false })) || [];
    } catch (e) {
      unavailable(main, 'Silences', 'The Alertmanager silences API (/api/v2/silences)', e);
      return false;
    }
    draw();
    return true;
  };

  const draw = () => {
    const want = stateSel.value;
    const shown = silences
      .filter((s) => want === 'all' || (s.status && s.status.state) === want)
      .sort((a, b) => Date.parse(b.updatedAt || b.startsAt) - Date.parse(a.updatedAt || a.startsAt));
    if (!shown.length) {
      list.replaceChildren(el('div', { class: 'nodata' }, `No ${want === 'all' ? '' : want + ' '}silences.`));
      return;
    }
    list.replaceChildren(
      el(
        'table',
        { class: 'data silences' },
        el('thead', {}, el('tr', {}, ['State', 'Matchers', 'Starts', 'Ends', 'Created by', 'Comment', ''].map((h) => el('th', {}, h)))),
        el(
          'tbody',
          {},
          shown.map((s) => {
            const st = (s.status && s.status.state) || 'unknown';
            return el(
              'tr',
              { 'data-id': s.id },
              el('td', {}, el('span', { class: 'badge ' + (st === 'active' ? 'active-silence' : st === 'pending' ? 'pending-silence' : st) }, st)),
              el('td', {}, el('div', { class: 'labels' }, (s.matchers || []).map((m) => el('span', { class: 'label' }, matcherText(m))))),
              el('td', { title: formatTime(Date.parse(s.startsAt)) }, ago(Date.parse(s.startsAt))),
              el('td', { title: formatTime(Date.parse(s.endsAt)) }, ago(Date.parse(s.endsAt))),
              el('td', {}, s.createdBy || ''),
              el('td', {}, s.comment || ''),
              el(
                'td',
                {},
                can('edit') ? el('button', { onclick: () => openForm(s) }, st === 'expired' ? 'Recreate' : 'Edit') : null,
                ' ',
                can('edit') && st !== 'expired' ? el('button', { class: 'danger', onclick: () => expire(s) }, 'Expire') : null,
              ),
            );
          }),
        ),
      ),
    );
  };

  const expire = async (s) => {
    try {
      await api(`/api/v2/silence/${encodeURIComponent(s.id)}`, { method: 'DELETE', unwrap: false });
      await load();
    } catch (e) {
      formBox.replaceChildren(el('div', { class: 'error-box' }, `Expiring the silence failed: ${e.message}`));
    }
  };

  function openForm(s) {
    const editing = !!s.id && s.status && s.status.state !== 'expired';
    const now = Date.now();
    const starts = editing ? Date.parse(s.startsAt) : now;
    const ends = editing ? Date.parse(s.endsAt) : now + 2 * 3600000;
    const rows = el('div', {});
    const addMatcher = (m = { name: '', value: '', isRegex: false, isEqual: true }) => {
      const op = el('select', { 'aria-label': 'Operator' }, ['=', '!=', '=~', '!~'].map((o) => el('option', { value: o }, o)));
      op.value = (m.isEqual === false ? '!' : '=') + (m.isRegex ? '~' : '');
      if (op.value === '==') op.value = '=';
      if (op.value === '!') op.value = '!=';
      const row = el(
        'div',
        { class: 'matcher-row' },
        el('input', { class: 'name', value: m.name, placeholder: 'label', 'aria-label': 'Matcher label' }),
        op,
        el('input', { class: 'value', value: m.value, placeholder: 'value', 'aria-label': 'Matcher value' }),
        el('button', { onclick: () => row.remove(), title: 'Remove matcher' }, '×'),
      );
      rows.append(row);
    };
    (s.matchers && s.matchers.length ? s.matchers : [undefined]).forEach((m) => addMatcher(m));
    const duration = el('input', { value: formatDuration(ends - starts), size: 8, 'aria-label': 'Duration' });
    const startsIn = el('input', { value: new Date(starts).toISOString(), size: 26, 'aria-label': 'Starts at' });
    const endsIn = el('input', { value: new Date(ends).toISOString(), size: 26, 'aria-label': 'Ends at' });
    duration.addEventListener('input', () => {
      const d = parseDuration(duration.value);
      const st = Date.parse(startsIn.value);
      if (d && !isNaN(st)) endsIn.value = new Date(st + d).toISOString();
    });
    const createdBy = el('input', { value: s.createdBy || localStorage.getItem('osprey.silence.author') || '', size: 30, 'aria-label': 'Created by' });
    const comment = el('textarea', { rows: 2, cols: 60, 'aria-label': 'Comment' });
    comment.value = s.comment || '';
    const err = el('div', {});
    const submit = async () => {
      const matchers = [...rows.querySelectorAll('.matcher-row')]
        .map((r) => {
          const [name, value] = r.querySelectorAll('input');
          const o = r.querySelector('select').value;
          return { name: name.value.trim(), value: value.value, isRegex: o.endsWith('~'), isEqual: !o.startsWith('!') };
        })
        .filter((m) => m.name);
      const body = { matchers, startsAt: startsIn.value.trim(), endsAt: endsIn.value.trim(), createdBy: createdBy.value.trim(), comment: comment.value.trim() };
      if (editing) body.id = s.id;
      const problems = [];
      if (!matchers.length) problems.push('add at least one matcher');
      if (isNaN(Date.parse(body.startsAt)) || isNaN(Date.parse(body.endsAt))) problems.push('start and end must be RFC 3339 times');
      else if (Date.parse(body.endsAt) <= Date.parse(body.startsAt)) problems.push('the end must be after the start');
      if (!body.createdBy) problems.push('say who creates it');
      if (!body.comment) problems.push('add a comment');
      if (problems.length) {
        err.replaceChildren(el('div', { class: 'error-box' }, 'Please ' + problems.join('; ') + '.'));
        return;
      }
      localStorage.setItem('osprey.silence.author', body.createdBy);
      try {
        await api('/api/v2/silences', { method: 'POST', json: body, unwrap: false });
        formBox.replaceChildren();
        history.replaceState(null, '', '/silences');
        stateSel.value = Date.parse(body.startsAt) > Date.now() ? 'pending' : 'active';
        await load();
      } catch (e) {
        err.replaceChildren(el('div', { class: 'error-box' }, `Saving the silence failed: ${e.message}`));
      }
    };
    formBox.replaceChildren(
      el(
        'div',
        { class: 'card silence-form' },
        el('h2', {}, editing ? 'Edit silence' : 'New silence'),
        el(
          'div',
          { class: 'form-grid' },
          el('div', {}, 'Matchers'),
          el('div', {}, rows, el('button', { onclick: () => addMatcher() }, '+ matcher')),
          el('div', {}, 'Duration'),
          el('div', {}, duration),
          el('div', {}, 'Starts at'),
          el('div', {}, startsIn),
          el('div', {}, 'Ends at'),
          el('div', {}, endsIn),
          el('div', {}, 'Created by'),
          el('div', {}, createdBy),
          el('div', {}, 'Comment'),
          el('div', {}, comment),
        ),
        err,
        el('div', { class: 'filters', style: { marginTop: '10px' } }, el('button', { class: 'primary', onclick: submit }, editing ? 'Save' : 'Create'), el('button', { onclick: () => formBox.replaceChildren() }, 'Cancel')),
      ),
    );
  }

  stateSel.addEventListener('change', draw);
  const ok = await load();
  if (ok && params.has('new')) {
    const matchers = params.getAll('m').map((m) => {
      const i = m.indexOf('=');
      return { name: i < 0 ? m : m.slice(0, i), value: i < 0 ? '' : m.slice(i + 1), isRegex: false, isEqual: true };
    });
    openForm({ matchers, comment: '' });
  }
}

function matcherText(m) {
  const op = (m.isEqual === false ? '!' : '=') + (m.isRegex ? '~' : '');
  return `${m.name}${op === '=' ? '=' : op === '!' ? '!=' : op}"${m.value}"`;
}

// ---------------------------------------------------------------------------
// Status.

export async function renderStatus(main) {
  main.replaceChildren(el('h1', {}, 'Status'));
  const section = (title, id) => {
    const body = el('div', { class: 'card', id }, el('div', { class: 'hint' }, 'Loading…'));
    main.append(el('h2', {}, title), body);
    return body;
  };
  const build = section('Build information', 'status-build');
  const tsdb = section('TSDB', 'status-tsdb');
  // Flags and the configuration are for admins.
  const flags = can('admin') ? section('Command-line flags', 'status-flags') : null;
  const config = can('admin') ? section('Configuration', 'status-config') : null;
  const fail = (box, e) => box.replaceChildren(el('div', { class: 'unavailable' }, e instanceof ApiError && e.status === 404 ? 'Not available on this server.' : `Cannot load: ${e.message}`));
  const kv = (obj) => el('div', { class: 'kv' }, Object.entries(obj).flatMap(([k, v]) => [el('div', {}, k), el('div', { class: 'mono' }, String(v))]));
  await Promise.all([
    api('/api/v1/status/buildinfo').then((d) => build.replaceChildren(kv(d)), (e) => fail(build, e)),
    flags && api('/api/v1/status/flags').then((d) => flags.replaceChildren(kv(d)), (e) => fail(flags, e)),
    config && api('/api/v1/status/config').then((d) => config.replaceChildren(el('pre', { class: 'config' }, d.yaml || '')), (e) => fail(config, e)),
    api('/api/v1/status/tsdb', { params: { limit: 10 } }).then((d) => {
      const head = d.headStats || {};
      const top = (title, rows, col) =>
        el(
          'div',
          {},
          el('h2', {}, title),
          el('table', { class: 'data' }, el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', { class: 'num' }, col))), el('tbody', {}, (rows || []).map((r) => el('tr', {}, el('td', { class: 'series' }, r.name), el('td', { class: 'num' }, r.value.toLocaleString()))))),
        );
      tsdb.replaceChildren(
        kv({
          'Head series': (head.numSeries ?? 0).toLocaleString(),
          'Head chunks': (head.chunkCount ?? 0).toLocaleString(),
          'Label pairs': (head.numLabelPairs ?? 0).toLocaleString(),
          'Head from': head.minTime ? formatTime(head.minTime) : '–',
          'Head until': head.maxTime ? formatTime(head.maxTime) : '–',
        }),
        top('Top metrics by series count', d.seriesCountByMetricName, 'Series'),
        top('Top labels by value count', d.labelValueCountByLabelName, 'Values'),
        top('Top labels by memory', d.memoryInBytesByLabelName, 'Bytes'),
        top('Top label pairs by series count', d.seriesCountByLabelValuePair, 'Series'),
        el('p', {}, el('a', { href: '/cardinality', id: 'status-cardinality' }, 'Explore cardinality: filters, focus label, growth and targets →')),
      );
    }, (e) => fail(tsdb, e)),
  ]);
  // Prometheus's /config, /flags and /tsdb-status land on their section.
  const target = { '/config': config, '/flags': flags, '/tsdb-status': tsdb }[location.pathname];
  if (target) target.scrollIntoView();
}

// ---------------------------------------------------------------------------
// Audit log (admins).

export async function renderAudit(main) {
  main.replaceChildren(el('h1', {}, 'Audit log'));
  let records;
  try {
    records = await api('/api/osprey/audit', { params: { limit: 1000 } });
  } catch (e) {
    main.append(el('div', { class: 'unavailable' }, `Cannot load: ${e.message}`));
    return;
  }
  if (!records.length) {
    main.append(el('div', { class: 'nodata' }, 'Nothing recorded yet.'));
    return;
  }
  main.append(
    el(
      'table',
      { class: 'data', id: 'audit-table' },
      el('thead', {}, el('tr', {}, ['Time', 'User', 'Role', 'Source', 'Action', 'Target', 'Outcome'].map((h) => el('th', {}, h)))),
      el('tbody', {}, records.slice().reverse().map((r) => el('tr', {}, [r.time, r.user, r.role || '', r.source, r.action, r.target, r.outcome].map((v) => el('td', {}, v ?? ''))))),
    ),
  );
}
