// chart.js: time series charts on uPlot (hover values in the legend,
// click a legend entry to hide a series, drag to zoom, stacking) and a
// canvas heatmap for histogram buckets.

import { el, formatValue, formatTime, PALETTE, thresholdColor, cssColor } from './util.js';
import { classicRows, drawHeatmap } from './histogram.js';

/**
 * Aligns Prometheus matrix results on one time axis from `start` to `end`
 * (seconds) every `step`. Returns {xs, ys[]} with nulls for gaps.
 */
export function alignSeries(results, start, end, step) {
  const n = Math.max(1, Math.floor((end - start) / step) + 1);
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) xs[i] = start + i * step;
  const ys = results.map((r) => {
    const ys = new Array(n).fill(null);
    for (const [t, v] of r.values || []) {
      const i = Math.round((t - start) / step);
      if (i >= 0 && i < n) ys[i] = parseFloat(v);
    }
    return ys;
  });
  return { xs: Array.from(xs), ys };
}

/** Anomalies: values outside their anomaly band. */
const ANOMALY_COLOR = '#c4162a';

function alpha(color, a) {
  if (/^#[0-9a-f]{6}$/i.test(color)) {
    const x = Math.round(a * 255).toString(16).padStart(2, '0');
    return color + x;
  }
  return color;
}

/**
 * Draws a time series chart into `container`.
 * opts: {names[], xs, ys[], unit, decimals, stacked, fill, height, min, max,
 *        thresholds, legend (bool), onZoom(fromSec, toSec),
 *        anomalyBands: [{of: series index, lower[], upper[]}] aligned on xs,
 *        shade: {from, to (seconds), label}: a time span shaded behind the series,
 *        exemplars: [{t (seconds), v, labels, series (name)}]: markers at their
 *        time and value (see exemplarPlugin)}.
 * Returns {destroy()}.
 */
export function timeChart(container, opts) {
  const { names, xs, ys } = opts;
  const unit = opts.unit;
  const decimals = opts.decimals;
  let data = ys;
  if (opts.stacked) {
    const acc = new Array(xs.length).fill(0);
    data = ys.map((y) =>
      y.map((v, i) => {
        if (v === null) return acc[i] === 0 ? null : acc[i];
        acc[i] += v;
        return acc[i];
      }),
    );
  }
  const fmt = (v) => formatValue(v, unit, decimals);
  const series = [
    {
      value: (u, t) => (t === null || t === undefined ? '' : formatTime(t * 1000)),
    },
  ];
  names.forEach((name, i) => {
    const color = PALETTE[i % PALETTE.length];
    series.push({
      label: name,
      stroke: color,
      width: 1.5,
      fill: opts.stacked ? alpha(color, 0.35) : opts.fill ? alpha(color, Math.min(opts.fill, 1)) : undefined,
      // Points where lines would not show: few steps, or a lone sample.
      points: { show: xs.length < 60 || ys[i].filter((v) => v !== null).length <= 2 },
      spanGaps: false,
      // The legend shows the series' own value, not the stacked sum.
      value: (u, v, si, idx) => (idx === null || idx === undefined ? '' : fmt(ys[si - 1][idx])),
    });
  });
  const bands = [];
  if (opts.stacked) {
    for (let i = names.length; i > 1; i--) bands.push({ series: [i, i - 1] });
  }
  // Anomaly bands (opts.anomalyBands: [{of, lower[], upper[]}]): the
  // expected range filled behind series `of`, and its values outside the
  // range marked with red points.
  const extra = [];
  for (const b of (opts.stacked ? [] : opts.anomalyBands) || []) {
    const color = PALETTE[b.of % PALETTE.length];
    const own = (values) => (u, v, si, idx) => (idx === null || idx === undefined ? '' : fmt(values[idx]));
    const upperIndex = series.length;
    series.push({ label: `${names[b.of]} upper`, stroke: alpha(color, 0.5), width: 1, dash: [4, 4], points: { show: false }, spanGaps: false, value: own(b.upper) });
    series.push({ label: `${names[b.of]} lower`, stroke: alpha(color, 0.5), width: 1, dash: [4, 4], points: { show: false }, spanGaps: false, value: own(b.lower) });
    bands.push({ series: [upperIndex, upperIndex + 1], fill: alpha(color, 0.12) });
    const y = ys[b.of];
    const outside = y.map((v, i) => (v !== null && b.lower[i] !== null && b.upper[i] !== null && (v < b.lower[i] || v > b.upper[i]) ? v : null));
    series.push({
      label: `${names[b.of]} anomalies`,
      stroke: ANOMALY_COLOR,
      width: 0,
      paths: () => null,
      points: { show: true, size: 7, stroke: ANOMALY_COLOR, fill: ANOMALY_COLOR },
      value: own(outside),
    });
    extra.push(b.upper, b.lower, outside);
  }
  const width = Math.max(container.clientWidth, 200);
  // Exemplars are drawn at their own values, which the y axis covers too.
  const exemplarValues = (opts.exemplars || []).map((e) => e.v).filter((v) => Number.isFinite(v));
  const yRange = (u, dmin, dmax) => {
    if (exemplarValues.length) {
      // A loop, not Math.min(...values): a large spread overflows the stack.
      let emin = Infinity;
      let emax = -Infinity;
      for (const v of exemplarValues) {
        if (v < emin) emin = v;
        if (v > emax) emax = v;
      }
      dmin = dmin === null ? emin : Math.min(dmin, emin);
      dmax = dmax === null ? emax : Math.max(dmax, emax);
    }
    let lo = opts.min ?? (dmin === null ? 0 : Math.min(dmin, dmin >= 0 && opts.stacked ? 0 : dmin));
    let hi = opts.max ?? (dmax === null ? 1 : dmax);
    if (lo === hi) {
      const pad = Math.abs(lo) * 0.1 || 1;
      lo = opts.min ?? lo - pad;
      hi = opts.max ?? hi + pad;
    } else if (opts.max === undefined || opts.max === null) {
      hi += (hi - lo) * 0.05;
    }
    return [lo, hi];
  };
  const thresholdLines = (opts.thresholds || []).filter((t) => t.value !== null && t.value !== undefined);
  const plugins = thresholdLines.length ? [thresholdPlugin(thresholdLines)] : [];
  if (opts.shade) plugins.push(shadePlugin(opts.shade));
  if (opts.exemplars && opts.exemplars.length) plugins.push(exemplarPlugin(opts.exemplars, fmt));
  // A table legend (dashboards): name, hovered value and the calcs.
  let legend = null;
  if (opts.legendCalcs) {
    legend = tableLegend(names, ys, opts.legendCalcs, fmt);
    plugins.push(legend.plugin);
  }
  const u = new uPlot(
    {
      width,
      height: opts.height || 300,
      series,
      bands,
      legend: { show: opts.legend !== false && !legend, live: true },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
      select: { show: true },
      scales: { x: { time: true }, y: { range: yRange } },
      axes: [
        { stroke: '#555', grid: { stroke: '#eee' }, ticks: { stroke: '#ddd' }, values: timeTicks, space: 70 },
        {
          stroke: '#555',
          grid: { stroke: '#eee' },
          ticks: { stroke: '#ddd' },
          size: (u, values) => axisWidth(values),
          values: (u, vals) => vals.map(fmt),
        },
      ],
      plugins,
      hooks: {
        // Until the pointer is over the chart, the legend shows the latest values.
        ready: [(u) => legend || opts.legend === false || !xs.length || u.setLegend({ idx: xs.length - 1 })],
        setSelect: [
          (u) => {
            if (u.select.width > 5 && opts.onZoom) {
              const from = u.posToVal(u.select.left, 'x');
              const to = u.posToVal(u.select.left + u.select.width, 'x');
              opts.onZoom(from, to);
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
      },
    },
    [xs, ...data, ...extra],
    container,
  );
  if (legend) container.append(legend.element);
  const ro = new ResizeObserver(() => {
    const w = Math.max(container.clientWidth, 200);
    if (Math.abs(w - u.width) > 2) u.setSize({ width: w, height: u.height });
  });
  ro.observe(container);
  return {
    uplot: u,
    destroy() {
      ro.disconnect();
      u.destroy();
    },
  };
}

/**
 * Exemplar markers (Prometheus UI's "Show exemplars"): one small diamond
 * per exemplar at its time and value, as DOM elements over the plot so
 * each can be hovered and followed. Hovering shows the exemplar's series,
 * value, time and labels; one with a `trace_id` label is a link to the
 * trace page, `/trace/<trace_id>`. Markers outside the plotted time
 * range are hidden; they move with every redraw (zoom, resize).
 */
function exemplarPlugin(exemplars, fmt) {
  let layer = null;
  let tip = null;
  const markers = [];
  const describe = (e) => [
    e.series,
    `value ${fmt(e.v)} at ${formatTime(e.t * 1000)}`,
    ...Object.entries(e.labels || {}).map(([k, v]) => `${k}="${v}"`),
  ];
  return {
    hooks: {
      init: [
        (u) => {
          layer = el('div', { class: 'exemplar-layer' });
          tip = el('div', { class: 'exemplar-tip' });
          tip.style.display = 'none';
          for (const e of exemplars) {
            const trace = e.labels && e.labels.trace_id;
            const attrs = { class: 'exemplar', 'data-t': e.t, 'aria-label': describe(e).join(', ') };
            if (trace) attrs.href = `/trace/${encodeURIComponent(trace)}`;
            const m = el(trace ? 'a' : 'span', attrs);
            m.addEventListener('mouseenter', () => {
              tip.replaceChildren(...describe(e).map((line, i) => el('div', { class: i === 0 ? 'exemplar-series' : '' }, line)));
              if (trace) tip.append(el('div', { class: 'exemplar-hint' }, 'click to open the trace'));
              tip.style.left = m.style.left;
              tip.style.top = m.style.top;
              tip.style.display = 'block';
            });
            m.addEventListener('mouseleave', () => (tip.style.display = 'none'));
            markers.push([m, e]);
            layer.append(m);
          }
          layer.append(tip);
          u.over.append(layer);
        },
      ],
      draw: [
        (u) => {
          const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
          for (const [m, e] of markers) {
            const visible = e.t >= xmin && e.t <= xmax && Number.isFinite(e.v);
            m.style.display = visible ? 'block' : 'none';
            if (!visible) continue;
            m.style.left = `${u.valToPos(e.t, 'x')}px`;
            m.style.top = `${u.valToPos(e.v, 'y')}px`;
          }
        },
      ],
    },
  };
}

const CALCS = {
  last: (v) => { for (let i = v.length - 1; i >= 0; i--) if (v[i] !== null) return v[i]; return null; },
  mean: (v) => { let s = 0, n = 0; for (const x of v) if (x !== null) { s += x; n++; } return n ? s / n : null; },
  max: (v) => v.reduce((m, x) => (x !== null && (m === null || x > m) ? x : m), null),
  min: (v) => v.reduce((m, x) => (x !== null && (m === null || x < m) ? x : m), null),
  sum: (v) => v.reduce((m, x) => (x !== null ? (m || 0) + x : m), null),
};

/** Reduces a series to one value: last (non-null), mean, max, min or sum. */
export function reduce(values, how) {
  return (CALCS[how] || CALCS.last)(values);
}

function tableLegend(names, ys, calcs, fmt) {
  const element = el('div', { class: 'tlegend' });
  const hoverCells = [];
  const rows = names.map((name, i) => {
    const hover = el('td', { class: 'num' }, '');
    hoverCells.push(hover);
    const row = el(
      'tr',
      { title: 'Click to hide or show' },
      el('td', { class: 'tl-name' }, el('span', { class: 'swatch', style: { background: PALETTE[i % PALETTE.length] } }), name),
      hover,
      calcs.map((c) => el('td', { class: 'num' }, fmt(reduce(ys[i], c)))),
    );
    return row;
  });
  element.append(
    el(
      'table',
      {},
      calcs.length ? el('thead', {}, el('tr', {}, el('th', {}, ''), el('th', {}, ''), calcs.map((c) => el('th', { class: 'num' }, c)))) : null,
      el('tbody', {}, rows),
    ),
  );
  const plugin = {
    hooks: {
      init: [
        (u) => {
          rows.forEach((row, i) =>
            row.addEventListener('click', () => {
              const show = !u.series[i + 1].show;
              u.setSeries(i + 1, { show });
              row.classList.toggle('off', !show);
            }),
          );
        },
      ],
      setCursor: [
        (u) => {
          const idx = u.cursor.idx;
          hoverCells.forEach((c, i) => (c.textContent = idx === null || idx === undefined ? '' : fmt(ys[i][idx])));
        },
      ],
    },
  };
  return { element, plugin };
}

/** 24-hour tick labels: seconds for short spans, dates for long ones. */
function timeTicks(u, splits) {
  const span = splits.length > 1 ? splits[splits.length - 1] - splits[0] : 0;
  const p = (n) => String(n).padStart(2, '0');
  return splits.map((t) => {
    const d = new Date(t * 1000);
    const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
    if (span <= 600) return `${hm}:${p(d.getSeconds())}`;
    if (span <= 2 * 86400) return hm;
    if (span <= 30 * 86400) return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${hm}`;
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  });
}

function axisWidth(values) {
  if (!values) return 50;
  const longest = values.reduce((m, s) => Math.max(m, String(s).length), 0);
  return Math.max(40, longest * 8 + 22);
}

/** Shades the time span `from`..`to` (seconds) behind the series, with a label. */
function shadePlugin(shade) {
  return {
    hooks: {
      drawClear: [
        (u) => {
          const { left, top, width, height } = u.bbox;
          const x0 = Math.max(left, u.valToPos(shade.from, 'x', true));
          const x1 = Math.min(left + width, u.valToPos(shade.to, 'x', true));
          if (!(x1 > x0)) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = 'rgba(120, 130, 140, 0.16)';
          ctx.fillRect(x0, top, x1 - x0, height);
          if (shade.label) {
            ctx.fillStyle = '#555';
            ctx.font = `${Math.round(11 * (window.devicePixelRatio || 1))}px system-ui, sans-serif`;
            ctx.textAlign = 'right';
            ctx.textBaseline = 'top';
            ctx.fillText(shade.label, x1 - 4, top + 4);
          }
          ctx.restore();
        },
      ],
    },
  };
}

function thresholdPlugin(lines) {
  return {
    hooks: {
      draw: [
        (u) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.setLineDash([6, 4]);
          ctx.lineWidth = 1;
          for (const t of lines) {
            const y = u.valToPos(t.value, 'y', true);
            if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
            ctx.strokeStyle = cssColor(t.color);
            ctx.beginPath();
            ctx.moveTo(u.bbox.left, y);
            ctx.lineTo(u.bbox.left + u.bbox.width, y);
            ctx.stroke();
          }
          ctx.restore();
        },
      ],
    },
  };
}

/**
 * Draws a heatmap of classic histogram buckets: `results` are series with
 * an `le` label (cumulative counts or rates per bucket, as
 * `rate(x_bucket[..])` gives). Each column is one step; each row one
 * bucket `(previous le, le]`; the colour is the bucket's own value
 * (cumulative values are differenced). Drawn by histogram.js's renderer,
 * the one native histograms use.
 */
export function heatmap(container, { results, xs, ys, unit, height, onZoom }) {
  const series = results.map((r, i) => ({ le: r.metric && r.metric.le, ys: ys[i] }));
  const { rows, cells } = classicRows(series);
  if (!rows.length) {
    container.append(el('div', { class: 'heatmap' }, el('div', { class: 'nodata' }, 'No histogram buckets (series need an "le" label)')));
    return { destroy() {} };
  }
  return drawHeatmap(container, { xs, rows, cells, scale: 'custom', unit, height, onZoom });
}

/** A small SVG line for stat panels. */
export function sparkline(values, color) {
  const pts = values.filter((v) => v !== null && isFinite(v));
  if (pts.length < 2) return null;
  const min = Math.min(...pts);
  const max = Math.max(...pts);
  const span = max - min || 1;
  const n = values.length;
  let d = '';
  values.forEach((v, i) => {
    if (v === null || !isFinite(v)) return;
    const x = (i / (n - 1)) * 100;
    const y = 30 - ((v - min) / span) * 28 - 1;
    d += (d ? 'L' : 'M') + x.toFixed(2) + ' ' + y.toFixed(2);
  });
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 100 30');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'sparkline');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', color);
  path.setAttribute('stroke-width', '1.5');
  path.setAttribute('vector-effect', 'non-scaling-stroke');
  svg.append(path);
  return svg;
}

/** An SVG gauge arc from `min` to `max` with threshold bands. */
export function gaugeSvg(value, { min = 0, max = 100, thresholds, text }) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 200 120');
  svg.setAttribute('class', 'gauge');
  const angle = (v) => Math.PI * (1 - Math.min(Math.max((v - min) / (max - min || 1), 0), 1));
  const arc = (a0, a1, r, color, width) => {
    const p = (a) => [100 + r * Math.cos(a), 105 - r * Math.sin(a)];
    const [x0, y0] = p(a0);
    const [x1, y1] = p(a1);
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', `M${x0} ${y0} A${r} ${r} 0 0 1 ${x1} ${y1}`);
    path.setAttribute('stroke', color);
    path.setAttribute('stroke-width', width);
    path.setAttribute('fill', 'none');
    svg.append(path);
  };
  arc(Math.PI, 0, 80, '#e9ecef', 18);
  const steps = (thresholds || []).filter((t) => t.value !== null && t.value !== undefined);
  const base = (thresholds || []).find((t) => t.value === null || t.value === undefined);
  let from = min;
  let color = cssColor(base ? base.color : 'green');
  for (const t of steps.concat([{ value: max, color: null }])) {
    if (t.value > from) arc(angle(from), angle(Math.min(t.value, max)), 94, color, 4);
    from = Math.max(from, t.value);
    if (t.color) color = cssColor(t.color);
  }
  if (value !== null && isFinite(value)) {
    arc(Math.PI, angle(value), 80, thresholdColor(thresholds, value) || '#37872d', 18);
  }
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', '100');
  label.setAttribute('y', '102');
  label.setAttribute('text-anchor', 'middle');
  label.setAttribute('class', 'gauge-text');
  label.textContent = text;
  svg.append(label);
  return svg;
}
