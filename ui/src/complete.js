// complete.js: the PromQL expression editor's autocomplete: metric names,
// label names and values, functions, keywords and range durations, picked
// by the context at the cursor.

import { el, api } from './util.js';

/** PromQL functions with a one-line signature. */
export const FUNCTIONS = {
  abs: 'abs(v instant-vector)',
  absent: 'absent(v instant-vector)',
  absent_over_time: 'absent_over_time(v range-vector)',
  acos: 'acos(v)', acosh: 'acosh(v)', asin: 'asin(v)', asinh: 'asinh(v)', atan: 'atan(v)', atanh: 'atanh(v)',
  avg_over_time: 'avg_over_time(v range-vector)',
  ceil: 'ceil(v instant-vector)',
  changes: 'changes(v range-vector)',
  clamp: 'clamp(v instant-vector, min scalar, max scalar)',
  clamp_max: 'clamp_max(v instant-vector, max scalar)',
  clamp_min: 'clamp_min(v instant-vector, min scalar)',
  cos: 'cos(v)', cosh: 'cosh(v)',
  count_over_time: 'count_over_time(v range-vector)',
  day_of_month: 'day_of_month(v=vector(time()))',
  day_of_week: 'day_of_week(v=vector(time()))',
  day_of_year: 'day_of_year(v=vector(time()))',
  days_in_month: 'days_in_month(v=vector(time()))',
  deg: 'deg(v)',
  delta: 'delta(v range-vector)',
  deriv: 'deriv(v range-vector)',
  double_exponential_smoothing: 'double_exponential_smoothing(v range-vector, sf scalar, tf scalar)',
  drift_hellinger: 'drift_hellinger(current instant-vector, reference instant-vector) (histogram buckets)',
  drift_js: 'drift_js(current instant-vector, reference instant-vector) (histogram buckets)',
  drift_kl: 'drift_kl(current instant-vector, reference instant-vector) (histogram buckets)',
  drift_ks: 'drift_ks(current instant-vector, reference instant-vector) (histogram buckets)',
  drift_psi: 'drift_psi(current instant-vector, reference instant-vector) (histogram buckets)',
  drift_wasserstein: 'drift_wasserstein(current instant-vector, reference instant-vector) (histogram buckets)',
  exp: 'exp(v instant-vector)',
  floor: 'floor(v instant-vector)',
  histogram_avg: 'histogram_avg(v instant-vector)',
  histogram_count: 'histogram_count(v instant-vector)',
  histogram_fraction: 'histogram_fraction(lower scalar, upper scalar, v instant-vector)',
  histogram_quantile: 'histogram_quantile(φ scalar, b instant-vector)',
  histogram_stddev: 'histogram_stddev(v instant-vector)',
  histogram_stdvar: 'histogram_stdvar(v instant-vector)',
  histogram_sum: 'histogram_sum(v instant-vector)',
  hour: 'hour(v=vector(time()))',
  idelta: 'idelta(v range-vector)',
  increase: 'increase(v range-vector)',
  irate: 'irate(v range-vector)',
  label_join: 'label_join(v, dst, separator, src_1, ...)',
  label_replace: 'label_replace(v, dst, replacement, src, regex)',
  last_over_time: 'last_over_time(v range-vector)',
  ln: 'ln(v)', log10: 'log10(v)', log2: 'log2(v)',
  mad_over_time: 'mad_over_time(v range-vector)',
  max_over_time: 'max_over_time(v range-vector)',
  min_over_time: 'min_over_time(v range-vector)',
  minute: 'minute(v=vector(time()))',
  month: 'month(v=vector(time()))',
  pi: 'pi()',
  predict_linear: 'predict_linear(v range-vector, t scalar)',
  present_over_time: 'present_over_time(v range-vector)',
  quantile_over_time: 'quantile_over_time(φ scalar, v range-vector)',
  rad: 'rad(v)',
  rate: 'rate(v range-vector)',
  resets: 'resets(v range-vector)',
  round: 'round(v instant-vector, to_nearest=1 scalar)',
  scalar: 'scalar(v instant-vector)',
  sgn: 'sgn(v)', sin: 'sin(v)', sinh: 'sinh(v)',
  sort: 'sort(v instant-vector)',
  sort_desc: 'sort_desc(v instant-vector)',
  sort_by_label: 'sort_by_label(v, label, ...)',
  sort_by_label_desc: 'sort_by_label_desc(v, label, ...)',
  sqrt: 'sqrt(v instant-vector)',
  stddev_over_time: 'stddev_over_time(v range-vector)',
  stdvar_over_time: 'stdvar_over_time(v range-vector)',
  sum_over_time: 'sum_over_time(v range-vector)',
  tan: 'tan(v)', tanh: 'tanh(v)',
  time: 'time()',
  timestamp: 'timestamp(v instant-vector)',
  vector: 'vector(s scalar)',
  year: 'year(v=vector(time()))',
};

/** Aggregation operators. */
export const AGGREGATIONS = {
  sum: 'sum by (labels) (v)', avg: 'avg by (labels) (v)', min: 'min by (labels) (v)', max: 'max by (labels) (v)',
  count: 'count by (labels) (v)', count_values: 'count_values("label", v)', group: 'group by (labels) (v)',
  stddev: 'stddev(v)', stdvar: 'stdvar(v)', topk: 'topk(k, v)', bottomk: 'bottomk(k, v)',
  quantile: 'quantile(φ, v)', limitk: 'limitk(k, v)', limit_ratio: 'limit_ratio(r, v)',
};

const KEYWORDS = ['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless'];
const DURATIONS = ['1m', '5m', '10m', '15m', '30m', '1h', '6h', '12h', '1d', '$__rate_interval', '$__interval'];

/**
 * What to complete at `pos` in `text`: {kind, prefix, from, metric, label}.
 * kind is 'name' (metrics, functions), 'label', 'value', 'duration' or null.
 */
export function completionContext(text, pos) {
  const before = text.slice(0, pos);
  let inBraces = -1;
  let inString = null;
  let inBracket = -1;
  let parenLabels = false;
  for (let i = 0; i < before.length; i++) {
    const c = before[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === inString) inString = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') inString = c;
    else if (c === '{') inBraces = i;
    else if (c === '}') inBraces = -1;
    else if (c === '[') inBracket = i;
    else if (c === ']') inBracket = -1;
    else if (c === '(') parenLabels = /\b(by|without|on|ignoring|group_left|group_right)\s*$/.test(before.slice(0, i));
    else if (c === ')') parenLabels = false;
  }
  const word = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(before);
  const prefix = word ? word[0] : '';
  const from = pos - prefix.length;
  if (inBraces >= 0) {
    const metric = (/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*$/.exec(before.slice(0, inBraces)) || [])[1] || '';
    if (inString) {
      const m = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*["'`]([^"'`]*)$/.exec(before);
      if (!m) return { kind: null };
      return { kind: 'value', prefix: m[3], from: pos - m[3].length, metric, label: m[1] };
    }
    const afterOp = /(=~|!~|!=|=)\s*$/.test(before);
    if (afterOp) return { kind: null };
    return { kind: 'label', prefix, from, metric };
  }
  if (inString) return { kind: null };
  if (inBracket >= 0) {
    const d = /[0-9a-z$_]*$/.exec(before)[0];
    return { kind: 'duration', prefix: d, from: pos - d.length };
  }
  if (parenLabels) return { kind: 'label', prefix, from, metric: '' };
  if (!prefix) return { kind: null };
  return { kind: 'name', prefix, from };
}

/** The metric names a query reads (identifiers that are not functions or keywords). */
export function metricsOf(expr) {
  const words = new Set();
  const skip = new Set([...Object.keys(FUNCTIONS), ...Object.keys(AGGREGATIONS), 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan']);
  // Label matchers, strings and durations are not metric names.
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""').replace(/\{[^}]*\}/g, '{}').replace(/\[[^\]]*\]/g, '[]').replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  for (const m of bare.matchAll(/(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)) {
    if (!skip.has(m[1].toLowerCase()) && !/^\d/.test(m[1])) words.add(m[1]);
  }
  return [...words];
}

/** Cached lookups against the API. */
class Source {
  constructor() {
    this.cache = new Map();
  }

  async get(key, load) {
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < 60000) return hit.value;
    const value = await load().catch(() => []);
    this.cache.set(key, { at: Date.now(), value });
    return value;
  }

  metricNames() {
    return this.get('names', () => api('/api/v1/label/__name__/values'));
  }

  metadata() {
    return this.get('meta', () => api('/api/v1/metadata').then((m) => m || {}));
  }

  labelNames(metric) {
    return this.get('labels:' + metric, () =>
      api('/api/v1/labels', { params: metric ? { 'match[]': metric } : {} }).then((l) => l.filter((x) => x !== '__name__')),
    );
  }

  labelValues(metric, label) {
    return this.get(`values:${metric}:${label}`, () =>
      api(`/api/v1/label/${encodeURIComponent(label)}/values`, { params: metric ? { 'match[]': metric } : {} }),
    );
  }
}

function rank(items, prefix) {
  const p = prefix.toLowerCase();
  const starts = [];
  const contains = [];
  for (const it of items) {
    const t = it.text.toLowerCase();
    if (!p || t.startsWith(p)) starts.push(it);
    else if (t.includes(p)) contains.push(it);
  }
  return starts.concat(contains).slice(0, 60);
}

/**
 * Attaches autocomplete to a textarea. `onAccept` runs after a pick.
 * Returns {close()}.
 */
export function attachAutocomplete(textarea, { onAccept } = {}) {
  const source = new Source();
  const box = el('ul', { class: 'complete', role: 'listbox' });
  box.style.display = 'none';
  textarea.parentElement.append(box);
  let items = [];
  let active = 0;
  let ctx = null;
  let seq = 0;

  const close = () => {
    box.style.display = 'none';
    items = [];
  };

  const render = () => {
    box.replaceChildren(
      ...items.map((it, i) =>
        el(
          'li',
          {
            class: i === active ? 'active' : '',
            role: 'option',
            onmousedown: (e) => {
              e.preventDefault();
              active = i;
              accept();
            },
          },
          el('span', { class: 'c-kind c-' + it.kind }, it.kind[0]),
          el('span', { class: 'c-text' }, it.text),
          it.detail ? el('span', { class: 'c-detail' }, it.detail) : null,
        ),
      ),
    );
    box.style.display = items.length ? 'block' : 'none';
    const a = box.children[active];
    if (a) a.scrollIntoView({ block: 'nearest' });
  };

  const update = async () => {
    const mySeq = ++seq;
    ctx = completionContext(textarea.value, textarea.selectionStart);
    if (!ctx.kind) return close();
    let candidates = [];
    if (ctx.kind === 'name') {
      const [names, meta] = await Promise.all([source.metricNames(), source.metadata()]);
      candidates = names.map((n) => {
        const m = meta[n] && meta[n][0];
        return { text: n, kind: 'metric', detail: m ? `${m.type} ${m.help || ''}`.slice(0, 80) : '' };
      });
      for (const [f, sig] of Object.entries(FUNCTIONS)) candidates.push({ text: f, kind: 'function', detail: sig, call: true });
      for (const [f, sig] of Object.entries(AGGREGATIONS)) candidates.push({ text: f, kind: 'aggregation', detail: sig });
      for (const k of KEYWORDS) candidates.push({ text: k, kind: 'keyword' });
    } else if (ctx.kind === 'label') {
      candidates = (await source.labelNames(ctx.metric)).map((n) => ({ text: n, kind: 'label' }));
    } else if (ctx.kind === 'value') {
      candidates = (await source.labelValues(ctx.metric, ctx.label)).map((v) => ({ text: v, kind: 'value' }));
    } else if (ctx.kind === 'duration') {
      candidates = DURATIONS.map((d) => ({ text: d, kind: 'duration' }));
    }
    if (mySeq !== seq) return;
    items = rank(candidates, ctx.prefix);
    if (items.length === 1 && items[0].text === ctx.prefix) items = [];
    active = 0;
    render();
  };

  const accept = () => {
    const it = items[active];
    if (!it || !ctx) return;
    const v = textarea.value;
    const end = textarea.selectionStart;
    let insert = it.text;
    if (it.kind === 'value') insert = it.text.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
    let caret = ctx.from + insert.length;
    if (it.call && v[end] !== '(') {
      insert += '()';
      caret = ctx.from + insert.length - 1;
    }
    textarea.value = v.slice(0, ctx.from) + insert + v.slice(end);
    textarea.setSelectionRange(caret, caret);
    close();
    textarea.dispatchEvent(new Event('input', { bubbles: true }));
    if (onAccept) onAccept();
  };

  textarea.addEventListener('input', () => update());
  textarea.addEventListener('click', () => close());
  textarea.addEventListener('blur', () => setTimeout(close, 100));
  textarea.addEventListener('keydown', (e) => {
    if (e.key === ' ' && e.ctrlKey) {
      e.preventDefault();
      update();
      return;
    }
    if (box.style.display === 'none' || !items.length) return;
    if (e.key === 'ArrowDown') {
      active = (active + 1) % items.length;
      render();
    } else if (e.key === 'ArrowUp') {
      active = (active - 1 + items.length) % items.length;
      render();
    } else if (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey)) {
      accept();
    } else if (e.key === 'Escape') {
      close();
    } else {
      return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  });
  return { close, isOpen: () => box.style.display !== 'none' && items.length > 0 };
}
