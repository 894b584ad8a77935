// histogram.js: native histograms in the UI (docs/native-histograms.md,
// "UI"): reading the query API's `histogram`/`histograms` JSON, bucket
// labels with boundary brackets, the table view's count/sum/bucket list,
// a bar chart of one sample's buckets, and the heatmap drawn for a series
// over time (also used for classic `le` buckets, see chart.js).

import { el, formatValue, formatTime } from './util.js';

/**
 * Reads one histogram sample of the query API (`{"count", "sum",
 * "buckets": [[rule, lower, upper, count], ...]}`, numbers as strings)
 * into numbers. Malformed entries are skipped, never thrown on.
 */
export function parseHistogram(h) {
  const out = { count: NaN, sum: NaN, buckets: [] };
  if (!h || typeof h !== 'object') return out;
  out.count = parseNumber(h.count);
  out.sum = parseNumber(h.sum);
  for (const b of Array.isArray(h.buckets) ? h.buckets : []) {
    if (!Array.isArray(b) || b.length < 4) continue;
    const rule = Number(b[0]);
    const lower = parseNumber(b[1]);
    const upper = parseNumber(b[2]);
    const count = parseNumber(b[3]);
    if (![0, 1, 2, 3].includes(rule) || Number.isNaN(lower) || Number.isNaN(upper) || Number.isNaN(count)) continue;
    out.buckets.push({ rule, lower, upper, count });
  }
  return out;
}

/** A number of the query API's JSON: Go's text, with `+Inf`, `-Inf` and `NaN`. */
export function parseNumber(s) {
  if (typeof s === 'number') return s;
  if (typeof s !== 'string') return NaN;
  const t = s.trim();
  if (t === '+Inf' || t === 'Inf') return Infinity;
  if (t === '-Inf') return -Infinity;
  if (t === '' || t === 'NaN') return NaN;
  const v = Number(t);
  return v;
}

/** The zero bucket: closed on both sides and symmetric around zero. */
export function isZeroBucket(b) {
  return b.rule === 3 && b.lower <= 0 && b.upper >= 0 && b.lower === -b.upper;
}

/** A bound as Prometheus writes it (`+Inf`, `-Inf`), else formatted with `unit` when given. */
export function formatBound(v, unit) {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (unit) return formatValue(v, unit);
  if (v === 0) return '0';
  const a = Math.abs(v);
  // Enough digits to tell neighbouring exponential bounds apart (schema 8 steps by 0.27 %).
  if (a >= 1e-4 && a < 1e9) return String(parseFloat(v.toPrecision(6)));
  return v.toExponential(4).replace(/\.?0+e/, 'e');
}

/**
 * A bucket's interval with its boundary brackets, as Prometheus's UI
 * writes it: rule 0 `(lower, upper]`, 1 `[lower, upper)`, 2 `(lower,
 * upper)`, 3 `[lower, upper]`.
 */
export function bucketLabel(b, unit) {
  const open = b.rule === 1 || b.rule === 3 ? '[' : '(';
  const close = b.rule === 0 || b.rule === 3 ? ']' : ')';
  return `${open}${formatBound(b.lower, unit)}, ${formatBound(b.upper, unit)}${close}`;
}

/**
 * How the heatmap's y axis lays out the buckets of a series' samples:
 * `exponential` (a logarithmic axis, negative buckets mirrored below the
 * zero bucket) when every bucket is an exponential schema's bucket (the
 * zero bucket aside); else `custom` (custom bounds, schema −53, and
 * classic `le` buckets: one row per bucket, labelled with its bounds).
 */
export function histogramScale(buckets) {
  for (const b of buckets) {
    if (isZeroBucket(b)) continue;
    if (!Number.isFinite(b.lower) || !Number.isFinite(b.upper)) return 'custom';
    const [lo, hi] = b.lower > 0 ? [b.lower, b.upper] : [-b.upper, -b.lower];
    if (!(lo > 0) || !(hi > lo)) return 'custom';
    // An exponential bucket spans a factor 2^(2^-schema), schema −4…8.
    const schema = -Math.log2(Math.log2(hi / lo));
    if (!Number.isFinite(schema) || Math.abs(schema - Math.round(schema)) > 1e-6 || schema < -4.5 || schema > 8.5) return 'custom';
  }
  return 'exponential';
}

/** The buckets' total count (what the bar chart and the heatmap's colours compare against). */
function maxCount(buckets) {
  let m = 0;
  for (const b of buckets) if (b.count > m) m = b.count;
  return m;
}

/**
 * One histogram sample for a table cell: count and sum, a bar chart of
 * its buckets, and the bucket list (folded) with boundary brackets.
 */
export function histogramCell(raw, opts = {}) {
  const h = parseHistogram(raw);
  const wrap = el('div', { class: 'hist-cell', 'data-count': h.count, 'data-sum': h.sum, 'data-buckets': h.buckets.length });
  wrap.append(
    el(
      'div',
      { class: 'hist-summary' },
      el('span', { class: 'hist-count' }, el('span', { class: 'hist-key' }, 'count: '), fmtNum(h.count)),
      el('span', { class: 'hist-sum' }, el('span', { class: 'hist-key' }, 'sum: '), fmtNum(h.sum)),
      opts.time !== undefined ? el('span', { class: 'hist-time' }, `@${opts.time}`) : null,
    ),
  );
  if (opts.chart !== false && h.buckets.length) wrap.append(histogramBars(h.buckets, { width: 420, height: 110 }));
  if (h.buckets.length) {
    wrap.append(
      el(
        'details',
        { class: 'hist-buckets', open: opts.open ? true : undefined },
        el('summary', {}, `${h.buckets.length} bucket${h.buckets.length === 1 ? '' : 's'}`),
        el(
          'table',
          { class: 'data hist-bucket-table' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Bucket'), el('th', { class: 'num' }, 'Count'))),
          el(
            'tbody',
            {},
            h.buckets.map((b) =>
              el('tr', { class: isZeroBucket(b) ? 'zero-bucket' : '' }, el('td', { class: 'bucket', title: `${b.lower} … ${b.upper}` }, bucketLabel(b), isZeroBucket(b) ? el('span', { class: 'hist-key' }, ' zero bucket') : null), el('td', { class: 'num', title: String(b.count) }, fmtNum(b.count))),
            ),
          ),
        ),
      ),
    );
  } else {
    wrap.append(el('div', { class: 'hist-key' }, 'no buckets with observations'));
  }
  return wrap;
}

function fmtNum(v) {
  if (Number.isNaN(v)) return 'NaN';
  return formatBound(v);
}

const SVG = 'http://www.w3.org/2000/svg';

function svgEl(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

/**
 * A bar chart of one sample's buckets (Prometheus 3's histogram chart):
 * one bar per bucket in bucket order, all of one width (for exponential
 * schemas that is a logarithmic x axis), height the bucket's count, the
 * zero bucket in a colour of its own. Hovering a bar names its bucket and
 * count. Returns an SVG element.
 */
export function histogramBars(buckets, { width = 420, height = 120, unit } = {}) {
  const svg = svgEl('svg', { class: 'hist-bars', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'data-bars': buckets.length });
  const max = maxCount(buckets) || 1;
  const left = 4;
  const bottom = 16;
  const plotW = width - 8;
  const plotH = height - bottom - 4;
  const bw = plotW / Math.max(buckets.length, 1);
  svg.append(svgEl('line', { x1: left, x2: left + plotW, y1: 4 + plotH + 0.5, y2: 4 + plotH + 0.5, stroke: '#999' }));
  buckets.forEach((b, i) => {
    const h = Math.max((b.count / max) * plotH, b.count > 0 ? 1 : 0);
    const rect = svgEl('rect', { class: 'hist-bar', x: left + i * bw + (bw > 4 ? 1 : 0), y: 4 + plotH - h, width: Math.max(bw - (bw > 4 ? 2 : 0), 0.5), height: h, fill: isZeroBucket(b) ? '#8f3bb8' : '#3274d9' });
    const title = svgEl('title');
    title.textContent = `${bucketLabel(b, unit)}: ${fmtNum(b.count)}`;
    rect.append(title);
    svg.append(rect);
  });
  // Bound labels at the first, middle and last bucket.
  const marks = buckets.length > 2 ? [0, Math.floor(buckets.length / 2), buckets.length - 1] : buckets.map((_, i) => i);
  for (const i of [...new Set(marks)]) {
    const b = buckets[i];
    const anchor = i === 0 ? 'start' : i === buckets.length - 1 ? 'end' : 'middle';
    const x = i === 0 ? left : i === buckets.length - 1 ? left + plotW : left + (i + 0.5) * bw;
    const t = svgEl('text', { x, y: height - 3, 'text-anchor': anchor, class: 'hist-axis' });
    t.textContent = bucketLabel(b, unit);
    svg.append(t);
  }
  return svg;
}

/**
 * The grid of a heatmap: `points` are `[t, histogram JSON]` of one series
 * (or `[t, parsed]` with `parsed: true`), placed on `start`..`end` every
 * `step` seconds. Returns `{xs, rows, cells, scale}`: `rows` the distinct
 * buckets in ascending order, `cells[row][column]` the count or null.
 */
export function heatmapGrid(points, start, end, step, { parsed = false, scale } = {}) {
  const n = Math.max(1, Math.floor((end - start) / step) + 1);
  const xs = [];
  for (let i = 0; i < n; i++) xs.push(start + i * step);
  const columns = new Array(n).fill(null);
  for (const p of points || []) {
    if (!Array.isArray(p) || p.length < 2) continue;
    const i = Math.round((Number(p[0]) - start) / step);
    if (i < 0 || i >= n) continue;
    columns[i] = parsed ? p[1] : parseHistogram(p[1]).buckets;
  }
  const byKey = new Map();
  for (const col of columns) for (const b of col || []) {
    const key = `${b.rule}|${b.lower}|${b.upper}`;
    if (!byKey.has(key)) byKey.set(key, { rule: b.rule, lower: b.lower, upper: b.upper });
  }
  const rows = [...byKey.values()].sort((a, b) => a.lower - b.lower || a.upper - b.upper);
  const index = new Map(rows.map((r, i) => [`${r.rule}|${r.lower}|${r.upper}`, i]));
  const cells = rows.map(() => new Array(n).fill(null));
  columns.forEach((col, i) => {
    for (const b of col || []) cells[index.get(`${b.rule}|${b.lower}|${b.upper}`)][i] = b.count;
  });
  return { xs, rows, cells, scale: scale || histogramScale(rows) };
}

/**
 * Where each row of a heatmap lies on the y axis, in axis units from 0
 * (bottom) to `total`: `exponential` is logarithmic (log2 of the bound),
 * negative buckets mirrored below a band for the zero bucket; `custom`
 * gives every row the same height.
 */
export function rowLayout(rows, scale) {
  if (scale !== 'exponential') {
    return { total: rows.length, spans: rows.map((_, i) => [i, i + 1]) };
  }
  const pos = rows.filter((r) => !isZeroBucket(r) && r.lower >= 0);
  const neg = rows.filter((r) => !isZeroBucket(r) && r.upper <= 0);
  const zero = rows.some(isZeroBucket);
  const l2 = Math.log2;
  const posMin = pos.length ? Math.min(...pos.map((r) => l2(r.lower))) : 0;
  const posMax = pos.length ? Math.max(...pos.map((r) => l2(r.upper))) : 0;
  const negMin = neg.length ? Math.min(...neg.map((r) => l2(-r.upper))) : 0;
  const negMax = neg.length ? Math.max(...neg.map((r) => l2(-r.lower))) : 0;
  const widths = rows.filter((r) => !isZeroBucket(r)).map((r) => Math.abs(l2(Math.abs(r.upper)) - l2(Math.abs(r.lower))));
  const typical = widths.length ? Math.min(...widths) : 1;
  const negH = negMax - negMin;
  const posH = posMax - posMin;
  // The zero bucket gets a band as tall as the narrowest bucket (at least 4 % of the axis).
  const zeroH = zero || (pos.length && neg.length) ? Math.max(typical, (negH + posH) * 0.04) : 0;
  const zeroLo = negH;
  const posBase = negH + zeroH;
  const total = negH + zeroH + posH || 1;
  const y = (v) => (v > 0 ? posBase + (l2(v) - posMin) : v < 0 ? zeroLo - (l2(-v) - negMin) : zeroLo);
  const spans = rows.map((r) => {
    if (isZeroBucket(r)) return [zeroLo, zeroLo + zeroH];
    return r.lower >= 0 ? [y(r.lower), y(r.upper)] : [y(r.lower), y(r.upper)];
  });
  return { total, spans };
}

/** The colour of a share 0…1 of the largest value: light blue to dark red. */
export function heatColor(t) {
  const x = Math.min(Math.max(t, 0), 1);
  return `hsl(${220 - 200 * x}, 80%, ${92 - 47 * x}%)`;
}

/**
 * Draws a heatmap into `container`: x time (columns `xs`), y the buckets
 * (`rows` with `cells[row][column]`, laid out by `rowLayout`), colour the
 * bucket's value (its count, or the per-second count when the query was a
 * rate) on a linear scale from 0 to the largest value in view, with a
 * colour scale beneath. Hovering names the time, bucket and value.
 * `title` heads it (several series draw one heatmap each). The wrapper
 * carries `data-steps`, `data-rows`, `data-cells` (cells with a value
 * above zero), `data-max` and `data-plot` (the cells' area on the canvas)
 * for tests. `onPick(column)` is called on a click, `onZoom(fromSec,
 * toSec)` when a drag selects columns.
 * Returns {element, columnAt(clientX), destroy()}.
 */
export function drawHeatmap(container, { xs, rows, cells, scale, unit, height, title, valueUnit, onPick, onZoom }) {
  const { total, spans } = rowLayout(rows, scale);
  const style = getComputedStyle(container);
  const inner = container.clientWidth - parseFloat(style.paddingLeft || 0) - parseFloat(style.paddingRight || 0);
  const w = Math.max(Math.floor(inner), 240);
  const h = Math.max(height || 240, 60);
  let max = 0;
  let nonEmpty = 0;
  for (const row of cells) for (const v of row) {
    if (v === null) continue;
    if (v > max) max = v;
    if (v > 0) nonEmpty++;
  }
  const wrap = el('div', {
    class: 'heatmap',
    'data-scale': scale,
    'data-steps': xs.length,
    'data-rows': rows.length,
    'data-cells': nonEmpty,
    'data-max': max,
  });
  if (title) wrap.append(el('div', { class: 'heatmap-title' }, title));
  // Sharp on high-density screens: the backing store in device pixels.
  const dpr = Math.min(Math.max(window.devicePixelRatio || 1, 1), 3);
  const canvas = el('canvas', {
    width: Math.round(w * dpr),
    height: Math.round(h * dpr),
    style: { width: `${w}px`, height: `${h}px` },
    role: 'img',
    'aria-label': `Heatmap${title ? ` of ${title}` : ''}: ${rows.length} buckets over ${xs.length} steps, largest bucket value ${formatBound(max)}`,
  });
  const tip = el('div', { class: 'heatmap-tip' });
  wrap.append(canvas, tip);
  container.append(wrap);
  if (!rows.length) {
    canvas.remove();
    wrap.append(el('div', { class: 'nodata' }, 'No buckets with observations in this range.'));
    return { element: wrap, destroy() {} };
  }
  const ctx = canvas.getContext('2d');
  ctx.scale(dpr, dpr);
  ctx.font = '11px system-ui, sans-serif';
  const labelOf = (r) => (scale === 'custom' ? bucketLabel(r, unit) : formatBound(r.upper, unit));
  const left = Math.min(Math.max(...rows.map((r) => ctx.measureText(labelOf(r)).width)) + 10, Math.floor(w / 3));
  const top = 6;
  const bottom = 20;
  const plotW = w - left - 8;
  const plotH = h - bottom - top;
  const cw = plotW / xs.length;
  const yPx = (u) => top + plotH - (u / total) * plotH;
  // Where the cells lie on the canvas (left, top, width, height), for tests.
  wrap.dataset.plot = [left, top, plotW, plotH].map((v) => Math.round(v * 100) / 100).join(',');
  ctx.fillStyle = '#f6f7f9';
  ctx.fillRect(left, top, plotW, plotH);
  rows.forEach((r, ri) => {
    const [u0, u1] = spans[ri];
    const y0 = yPx(u1);
    const rh = Math.max(yPx(u0) - y0, 1);
    cells[ri].forEach((v, i) => {
      if (v === null || max === 0) return;
      ctx.fillStyle = heatColor(v / max);
      ctx.fillRect(left + i * cw, y0, Math.max(cw, 1) + 0.5, rh + 0.5);
    });
  });
  // Y labels: for rows, each row's bucket at its middle; for a log axis,
  // bucket bounds at their height; both skip labels that would overlap.
  ctx.fillStyle = '#555';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  let lastY = Infinity;
  const order = rows.map((r, i) => i);
  for (const ri of order) {
    const r = rows[ri];
    const [u0, u1] = spans[ri];
    const y = scale === 'custom' || isZeroBucket(r) ? (yPx(u0) + yPx(u1)) / 2 : yPx(u1);
    if (lastY - y < 14) continue;
    const text = isZeroBucket(r) && scale !== 'custom' ? (r.upper === 0 ? '0' : `±${formatBound(r.upper, unit)}`) : labelOf(r);
    ctx.fillText(text, left - 4, Math.max(y, top + 5));
    lastY = y;
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const labels = Math.max(2, Math.min(xs.length, Math.floor(plotW / 120)));
  for (let k = 0; k < labels; k++) {
    const i = Math.round((k * (xs.length - 1)) / Math.max(labels - 1, 1));
    const d = new Date(xs[i] * 1000);
    const s = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
    const x = Math.min(Math.max(left + i * cw + cw / 2, left + 16), w - 20);
    ctx.fillText(s, x, top + plotH + 4);
  }
  // The colour scale.
  const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => `${heatColor(t)} ${t * 100}%`).join(', ');
  wrap.append(
    el(
      'div',
      { class: 'heatmap-legend' },
      el('span', {}, '0'),
      el('span', { class: 'heatmap-scale', style: { background: `linear-gradient(to right, ${stops})` } }),
      el('span', { class: 'heatmap-max' }, formatValue(max, valueUnit || 'short')),
      el('span', { class: 'hist-key', title: "Colour: the bucket's value as the query returns it (a count; per second after rate()), linear from 0 to the largest in view" }, ` bucket count${scale === 'exponential' ? ', log2 y axis' : ''}`),
    ),
  );
  const onMove = (e) => {
    const rect = canvas.getBoundingClientRect();
    const x = e.clientX - rect.left;
    const y = e.clientY - rect.top;
    const i = Math.floor((x - left) / cw);
    const u = ((top + plotH - y) / plotH) * total;
    let hit = -1;
    if (i >= 0 && i < xs.length) {
      for (let ri = 0; ri < rows.length; ri++) {
        const [u0, u1] = spans[ri];
        if (u >= u0 && u <= u1 && (hit < 0 || cells[ri][i] !== null)) hit = ri;
      }
    }
    if (hit < 0) {
      tip.style.display = 'none';
      return;
    }
    const v = cells[hit][i];
    tip.textContent = `${formatTime(xs[i] * 1000)}  ${bucketLabel(rows[hit], unit)}: ${v === null ? '–' : fmtNum(v)}`;
    tip.dataset.row = hit;
    tip.dataset.column = i;
    tip.style.display = 'block';
    tip.style.left = `${x + 12}px`;
    tip.style.top = `${canvas.offsetTop + y + 12}px`;
  };
  canvas.addEventListener('mousemove', onMove);
  canvas.addEventListener('mouseleave', () => (tip.style.display = 'none'));
  const columnAt = (clientX) => {
    const i = Math.floor((clientX - canvas.getBoundingClientRect().left - left) / cw);
    return Math.min(Math.max(i, 0), xs.length - 1);
  };
  // A click picks a column (onPick); a drag across columns zooms (onZoom), as on the line charts.
  if (onPick || onZoom) {
    const band = el('div', { class: 'heatmap-select' });
    band.style.display = 'none';
    wrap.append(band);
    let downX = null;
    canvas.addEventListener('mousedown', (e) => {
      downX = e.clientX;
      e.preventDefault();
    });
    canvas.addEventListener('mousemove', (e) => {
      if (downX === null || !onZoom) return;
      const r = canvas.getBoundingClientRect();
      const a = Math.max(Math.min(downX, e.clientX) - r.left, left);
      const b = Math.min(Math.max(downX, e.clientX) - r.left, left + plotW);
      Object.assign(band.style, { display: 'block', left: `${a}px`, width: `${Math.max(b - a, 0)}px`, top: `${canvas.offsetTop + top}px`, height: `${plotH}px` });
    });
    window.addEventListener('mouseup', function up(e) {
      if (!wrap.isConnected) return window.removeEventListener('mouseup', up);
      if (downX === null) return;
      const from = downX;
      downX = null;
      band.style.display = 'none';
      if (Math.abs(e.clientX - from) > 5 && onZoom) {
        const [i, j] = [columnAt(from), columnAt(e.clientX)].sort((x, y) => x - y);
        if (j > i) onZoom(xs[i], xs[j]);
      } else if (onPick && e.target === canvas) {
        onPick(columnAt(e.clientX));
      }
    });
  }
  return { element: wrap, columnAt, destroy() {} };
}

/**
 * Splits query results (matrix) into float series and histogram series:
 * `{floats: [{metric, values}], histograms: [{metric, histograms}]}`; a
 * series with both kinds of sample is in both.
 */
export function splitResults(results) {
  const floats = [];
  const histograms = [];
  for (const r of results || []) {
    if (Array.isArray(r.values) && r.values.length) floats.push(r);
    if (Array.isArray(r.histograms) && r.histograms.length) histograms.push(r);
  }
  return { floats, histograms };
}

/**
 * Classic `le` buckets (cumulative, one series per bound) as heatmap rows:
 * each row `(previous bound, le]`, each cell the difference of neighbouring
 * cumulative values (never below 0). `series[i] = {le, ys}` with ys aligned.
 */
export function classicRows(series) {
  const buckets = series
    .map((s) => ({ le: parseLe(s.le), ys: s.ys }))
    .filter((b) => !Number.isNaN(b.le))
    .sort((a, b) => a.le - b.le);
  const rows = [];
  const cells = [];
  buckets.forEach((b, bi) => {
    const lower = bi > 0 ? buckets[bi - 1].le : b.le > 0 ? 0 : -Infinity;
    rows.push({ rule: 0, lower, upper: b.le });
    cells.push(
      b.ys.map((v, i) => {
        if (v === null || v === undefined) return null;
        const below = bi > 0 ? buckets[bi - 1].ys[i] : 0;
        return Math.max(0, v - (below || 0));
      }),
    );
  });
  return { rows, cells };
}

function parseLe(le) {
  if (le === '+Inf' || le === 'Inf' || le === '+inf' || le === 'inf') return Infinity;
  if (typeof le !== 'string' || le.trim() === '') return NaN;
  return Number(le);
}
