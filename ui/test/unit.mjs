// unit.mjs: tests of the UI's pure functions (no browser): durations,
// units, variables, the autocomplete context, error positions and the
// Grafana conversion, the SLO page's texts, the rule file a backtest sends and how its metric chart splits a comparison. Run with `node --test ui/test/unit.mjs`; the Rust
// test crates/osprey/tests/ui.rs runs it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseDuration, formatDuration, parseTime, formatValue, legendName, seriesName, thresholdColor, formatVariable, autoStep, alignedStart } from '../src/util.js';
import { completionContext } from '../src/complete.js';
import { errorPosition, bracketError, bandQuery, matchBands, exemplarMarkers } from '../src/explorer.js';
import { isGrafana, fromGrafana, sanitizeUid } from '../src/grafana.js';
import { percentText, exhaustionText } from '../src/slos.js';
import { groupRuleFile, splitComparison, alertingExprs, metricStep } from '../src/pages.js';
import { rowSelector, quoteValue, explorerLink } from '../src/cardinality.js';
import { formatMicros, parseTags, spanTree, graphColumns } from '../src/traces.js';

test('durations parse and print like Prometheus', () => {
  assert.equal(parseDuration('1h30m'), 5400000);
  assert.equal(parseDuration('15s'), 15000);
  assert.equal(parseDuration('90'), 90000);
  assert.equal(parseDuration('1x'), null);
  assert.equal(parseDuration(''), null);
  assert.equal(formatDuration(5400000), '1h30m');
  assert.equal(formatDuration(500), '500ms');
  assert.equal(parseTime('now-1h', 10_000_000), 10_000_000 - 3_600_000);
  assert.equal(parseTime('1700000000', 0), 1_700_000_000_000);
  assert.equal(parseTime('2024-01-01T00:00:00Z', 0), Date.parse('2024-01-01T00:00:00Z'));
  assert.equal(parseTime('yesterday', 0), null);
  assert.equal(autoStep(3600_000, 240), 15);
});

test('units format values', () => {
  assert.equal(formatValue(1536, 'bytes'), '1.5 KiB');
  assert.equal(formatValue(0.4567, 'percentunit'), '45.7%');
  assert.equal(formatValue(0.25, 's'), '250 ms');
  assert.equal(formatValue(300, 's'), '300 s');
  assert.equal(formatValue(1234567, 'short'), '1.23 M');
  assert.equal(formatValue(1234.5, 'currencyUSD'), '$1234.50');
  assert.equal(formatValue(-0.34, 'currencyUSD'), '-$0.34');
  assert.equal(formatValue(0.014167, 'currencyUSD', 5), '$0.01417');
  assert.equal(formatValue(71.5, 'celsius'), '71.5 °C');
  assert.equal(formatValue(2.5e6, 'Bps'), '2.5 MB/s');
  assert.equal(formatValue(42, 'widgets'), '42 widgets');
  assert.equal(formatValue(null, 'bytes'), '–');
  assert.equal(formatValue('NaN', 'short'), 'NaN');
  assert.equal(formatValue(1 / 3, 'none', 2), '0.33');
});

test('series names and legend templates', () => {
  assert.equal(seriesName({ __name__: 'up', job: 'a', instance: 'x' }), 'up{instance="x", job="a"}');
  assert.equal(legendName('GPU {{gpu}} on {{ instance }}', { gpu: '0', instance: 'h' }), 'GPU 0 on h');
  assert.equal(legendName('', { __name__: 'up' }), 'up');
});

test('thresholds pick the last step at or below the value', () => {
  const t = [{ value: null, color: 'green' }, { value: 80, color: 'red' }];
  assert.equal(thresholdColor(t, 10), '#37872d');
  assert.equal(thresholdColor(t, 80), '#c4162a');
  assert.equal(thresholdColor({ not: 'a list' }, 1), null);
});

test('variables expand like Grafana for Prometheus', () => {
  const v = (def, options, selected) => ({ def, options, selected });
  assert.equal(formatVariable(v({}, ['a', 'b'], ['a'])), 'a');
  assert.equal(formatVariable(v({ multi: true }, ['a.b', 'c'], ['a.b', 'c'])), '(a\\\\.b|c)');
  assert.equal(formatVariable(v({ includeAll: true }, ['a', 'b'], ['$__all'])), '.*');
  assert.equal(formatVariable(v({ includeAll: true, allValue: 'x|y' }, ['a'], ['$__all'])), 'x|y');
});

test('autocomplete picks the context at the cursor', () => {
  const at = (text) => completionContext(text, text.length);
  assert.deepEqual(at('rate(node_cp'), { kind: 'name', prefix: 'node_cp', from: 5 });
  assert.equal(at('up{jo').kind, 'label');
  assert.equal(at('up{jo').metric, 'up');
  const v = at('node_cpu_seconds_total{mode="us');
  assert.equal(v.kind, 'value');
  assert.equal(v.label, 'mode');
  assert.equal(v.prefix, 'us');
  assert.equal(at('sum by (ins').kind, 'label');
  assert.equal(at('rate(x[5').kind, 'duration');
  assert.equal(at('up{job="a"} ').kind, null);
});

test('error positions come from the message or from unbalanced brackets', () => {
  assert.equal(errorPosition('1:5: parse error: unexpected', 'sum(up'), 4);
  // Unclosed brackets: the server points past the end, the opener is better.
  assert.equal(errorPosition('1:7: parse error: unclosed left parenthesis', 'sum(up'), 3);
  assert.equal(errorPosition('1:6: parse error: unclosed left bracket', 'up[5m'), 2);
  assert.equal(errorPosition('parse error at position 3', 'abcdef'), 3);
  assert.equal(bracketError('sum(rate(up[5m])'), 3);
  assert.equal(bracketError('up{job="a"'), 2);
  assert.equal(bracketError('up{job="a}'), 7);
  assert.equal(bracketError('sum(up))'), 7);
  assert.equal(bracketError('sum(rate(up[5m]))'), null);
});

test('Grafana dashboards convert into the model', () => {
  const g = JSON.parse(readFileSync(new URL('./grafana-dashboard.json', import.meta.url), 'utf8'));
  assert.ok(isGrafana(g));
  assert.ok(!isGrafana({ osprey: 1, rows: [] }));
  const d = fromGrafana(g);
  assert.equal(d.uid, 'ml-service-grafana');
  assert.deepEqual(d.rows.map((r) => [r.title, r.collapsed, r.panels.length]), [
    ['Inference API', false, 6],
    ['Training (collapsed row)', true, 1],
    ['More', false, 5],
  ]);
  const ts = d.rows[0].panels[0];
  assert.equal(ts.type, 'timeseries');
  assert.equal(ts.stacked, true);
  assert.equal(ts.unit, 'reqps');
  assert.deepEqual(ts.legend.calcs, ['mean', 'last']);
  assert.equal(ts.targets[0].legend, '{{status}}');
  assert.equal(ts.x, 0);
  assert.equal(d.rows[0].panels[1].x, 12);
  assert.equal(d.rows[0].panels[5].targets[0].instant, true);
  const more = d.rows[2].panels;
  assert.deepEqual(more.map((p) => p.type), ['heatmap', 'timeseries', 'piechart', 'text', 'stat']);
  assert.equal(more[0].targets[0].interval, '1m');
  assert.equal(more[2].originalType, 'piechart');
  assert.equal(more[4].unit, 'bytes');
  assert.deepEqual(more[4].thresholds.map((t) => t.value), [null, 8e9, 12e9]);
  assert.deepEqual(d.variables.map((v) => [v.name, v.type]), [['job', 'query'], ['quantile', 'custom'], ['interval', 'interval']]);
  assert.equal(d.variables[0].query, 'label_values(http_requests_total, job)');
  assert.deepEqual(d.variables[1].options, ['0.5', '0.9', '0.99']);
  // The old rows format flows panels (no fixed column) and converts spans.
  const old = fromGrafana({ rows: [{ title: 'R', height: '250px', panels: [{ type: 'singlestat', span: 6, targets: [{ expr: 'up' }] }] }] });
  assert.equal(old.rows[0].panels[0].width, 12);
  assert.equal(old.rows[0].panels[0].x, undefined);
  // Junk does not throw.
  assert.doesNotThrow(() => fromGrafana({ panels: [null, 3, { type: 'row' }, { type: 'graph', targets: {} }], templating: { list: {} } }));
  assert.equal(sanitizeUid('My board / v2'), 'My-board-v2');
});

test('metric names are found in queries for "no data" hints', async () => {
  const { metricsOf } = await import('../src/complete.js');
  assert.deepEqual(metricsOf('100 * (1 - sum(rate(node_cpu_seconds_total{mode="idle"}[$__rate_interval])) / count(count by (instance, cpu) (node_cpu_seconds_total)))'), ['node_cpu_seconds_total']);
  assert.deepEqual(metricsOf('histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job=~"$job"}[5m])))'), ['http_request_duration_seconds_bucket']);
  assert.deepEqual(metricsOf('count(ALERTS{alertstate="firing"}) or vector(0)'), ['ALERTS']);
  assert.deepEqual(metricsOf('a / on (x) group_left b'), ['a', 'b']);
});

test('SLO texts: SLIs with enough digits, budgets that last or are gone', () => {
  assert.equal(percentText(0.99874, 99.9), '99.87%');
  assert.equal(percentText(0.984, 98), '98.4%');
  assert.equal(percentText(null, 99.9), '–');
  assert.equal(exhaustionText(Infinity, 0.5), 'never at this rate');
  assert.equal(exhaustionText(100, -0.2), 'exhausted');
  assert.equal(exhaustionText(3 * 86400, 0.5), '3.0 days');
  assert.equal(exhaustionText(5400, 0.5), '1h30m');
  assert.equal(exhaustionText(NaN, null), '–');
});

test('a backtest sends the group as /api/v1/rules shows it, as a rule file', () => {
  const text = groupRuleFile({
    name: 'g',
    interval: 15,
    limit: 0,
    rules: [
      { type: 'recording', name: 'job:up:sum', query: 'sum by (job) (up)', labels: {} },
      { type: 'alerting', name: 'Down', query: 'up == 0', duration: 300, keepFiringFor: 0.5, labels: { severity: 'page' }, annotations: { summary: '{{ $labels.job }} is "down"' } },
    ],
  });
  assert.deepEqual(JSON.parse(text), {
    groups: [
      {
        name: 'g',
        interval: '15000ms',
        rules: [
          { record: 'job:up:sum', expr: 'sum by (job) (up)' },
          { alert: 'Down', expr: 'up == 0', for: '300000ms', keep_firing_for: '500ms', labels: { severity: 'page' }, annotations: { summary: '{{ $labels.job }} is "down"' } },
        ],
      },
    ],
  });
});

test('the explorer pairs each series with its anomaly band', () => {
  assert.equal(bandQuery('rate(x[5m])', 15), 'anomaly_band((rate(x[5m]))[3600000ms:15000ms], 3)');
  assert.equal(bandQuery('x', 300), 'anomaly_band((x)[9000000ms:300000ms], 3)');
  assert.equal(bandQuery('x', 0.5), 'anomaly_band((x)[3600000ms:500ms], 3)');
  const shown = [{ metric: { __name__: 'x', gpu: '0' } }, { metric: { __name__: 'x', gpu: '1' } }, { metric: { __name__: 'x', gpu: '2' } }];
  const band = (gpu, side) => ({ metric: { gpu, band: side }, values: [] });
  const bands = [band('1', 'lower'), band('1', 'upper'), band('1', 'center'), band('0', 'upper'), band('0', 'lower'), band('2', 'lower')];
  const matched = matchBands(shown, bands);
  assert.deepEqual(matched.map((m) => [m.of, m.lower.metric.gpu, m.upper.metric.band]), [[0, '0', 'upper'], [1, '1', 'upper']]);
  assert.deepEqual(matchBands(shown, []), []);
});

test('a backtest charts the left side of a comparison that returned nothing', () => {
  assert.deepEqual(splitComparison('DCGM_FI_DEV_GPU_TEMP > 40'), { left: 'DCGM_FI_DEV_GPU_TEMP', op: '>', right: '40', threshold: 40 });
  assert.deepEqual(splitComparison('rate(errors{code=~"5.."}[5m]) / rate(requests[5m]) >= bool 0.05'), {
    left: 'rate(errors{code=~"5.."}[5m]) / rate(requests[5m])',
    op: '>=',
    right: '0.05',
    threshold: 0.05,
  });
  // A right side that is not a number: no threshold line.
  assert.deepEqual(splitComparison('a != on(job) group_left b'), { left: 'a', op: '!=', right: 'b', threshold: null });
  assert.equal(splitComparison('x < -1e3').threshold, -1000);
  // Comparisons inside parentheses, braces or strings do not split.
  assert.equal(splitComparison('sum(x > 1)'), null);
  assert.equal(splitComparison('x{a="b>c"}'), null);
  assert.equal(splitComparison('up'), null);
  // Set operators at the top: no single left side.
  assert.equal(splitComparison('a > 1 and b < 2'), null);
  assert.equal(splitComparison('order_total > 1').left, 'order_total');
  // The last of several top-level comparisons (left-associative).
  assert.equal(splitComparison('a > b > 3').left, 'a > b');
  // Expressions of a rule file's alerting rules, in order; none from YAML.
  assert.deepEqual(alertingExprs(JSON.stringify({ groups: [{ rules: [{ record: 'r', expr: 'x' }, { alert: 'A', expr: 'x > 1' }, { alert: 'B', expr: 'y' }] }] })), ['x > 1', 'y']);
  assert.deepEqual(alertingExprs('groups:\n- name: g'), []);
  // About 450 points over any range.
  assert.equal(metricStep(0, 3600), 8);
  assert.equal(Math.round(86400 / metricStep(0, 86400)), 450);
});

test('a panel\'s last point is at the end of its range', () => {
  // One hour at a 60 s step ending at 1000030: the last point is the end,
  // not 1000020 (the multiple of the step before it).
  const start = alignedStart(1000030 - 3600, 1000030, 60);
  assert.equal(start, 1000030 - 3600);
  assert.equal((1000030 - start) % 60, 0);
  // A range shorter than a step still evaluates at the end.
  assert.equal(alignedStart(1000010, 1000030, 60), 1000030);
});

test('models: selectors, explorer links, verdicts and p-values', async () => {
  const { selector, exploreHref, verdict, pText, psiColor } = await import('../src/models.js');
  assert.equal(selector({ model: 'churn', version: 'v"1', feature: undefined }), '{model="churn", version="v\\"1"}');
  assert.equal(exploreHref('up', '1h'), '/graph?expr=up&range=1h');
  // Accuracy: higher is better; B − A = −0.3 with a tiny p: A wins.
  const a = verdict('accuracy', -0.3, 1e-10, 'v1', 'v2');
  assert.equal(a.better, 'v1');
  assert.match(a.text, /v1 is better than v2 on accuracy \(0\.300 higher\), p = 1\.0e-10: over 99\.99% confidence/);
  // RMSE: lower is better; B − A = −0.5 at p 0.01: B wins with 99% confidence.
  const r = verdict('rmse', -0.5, 0.01, 'v1', 'v2');
  assert.equal(r.better, 'v2');
  assert.match(r.text, /v2 is better than v1 on rmse \(0\.500 lower\), p = 0\.0100: 99\.00% confidence/);
  // Not significant: no winner.
  assert.equal(verdict('accuracy', 0.01, 0.4, 'v1', 'v2').better, null);
  assert.equal(pText(0), '< 1e-300');
  assert.equal(pText(0.04321), '0.0432');
  assert.notEqual(psiColor(0.05), psiColor(0.3));
});

test('home: dashboard queries run with every variable as everything', async () => {
  const { homeQuery } = await import('../src/home.js');
  assert.equal(homeQuery('rate(x{instance=~"$instance"}[$__rate_interval])', 0), 'rate(x{instance=~".*"}[1m])');
  // With a step, the window is $__rate_interval's: max(step + 15 s, 60 s).
  assert.equal(homeQuery('rate(x[$__rate_interval])', 120), 'rate(x[2m15s])');
});

test('models: since when a feature drifts', async () => {
  const { driftingSince } = await import('../src/models.js');
  const xs = [10, 20, 30, 40, 50];
  assert.deepEqual(driftingSince(xs, [0.01, 0.2, 0.05, 0.3, 0.4], 0.1), { t: 40, before: false });
  assert.equal(driftingSince(xs, [0.2, 0.2, 0.3, 0.3, 0.05], 0.1), null);
  // Above the threshold over the whole chart: it began before the first point.
  assert.deepEqual(driftingSince(xs, [0.2, 0.2, 0.3, 0.3, 0.4], 0.1), { t: 10, before: true });
  // A gap ends a run; trailing gaps are skipped.
  assert.deepEqual(driftingSince(xs, [0.2, null, 0.3, 0.3, null], 0.1), { t: 30, before: false });
});

test('models: versions in a regex matcher are escaped', async () => {
  const { regexEscape, quote } = await import('../src/models.js');
  assert.equal(regexEscape('v1.2+rc'), 'v1\\.2\\+rc');
  // Inside a PromQL string the backslash is doubled.
  assert.equal(quote(regexEscape('1.0')), '"1\\\\.0"');
});

test('cardinality rows select their own series', () => {
  assert.equal(rowSelector('metric', 'up'), 'up');
  assert.equal(rowSelector('metric', 'my.dotted'), '{__name__="my.dotted"}');
  assert.equal(rowSelector('label', 'user'), '{user!=""}');
  assert.equal(rowSelector('pair', 'job=api'), '{job="api"}');
  assert.equal(rowSelector('pair', '__name__=up'), 'up');
  assert.equal(rowSelector('pair', 'path=/a=b'), '{path="/a=b"}');
  assert.equal(rowSelector('pair', 'http.status=200'), '{"http.status"="200"}');
  assert.equal(rowSelector('focus', 'say "hi"\\', 'msg'), '{msg="say \\"hi\\"\\\\"}');
  assert.equal(quoteValue('a\nb'), '"a\\nb"');
  assert.equal(explorerLink('up{job="a"}'), '/graph?expr=up%7Bjob%3D%22a%22%7D&tab=table');
  assert.equal(explorerLink('up', true), '/graph?expr=up');
});

test('query_exemplars answers become one marker per exemplar', () => {
  const data = [
    {
      seriesLabels: { __name__: 'rpc_seconds_bucket', le: '0.5' },
      exemplars: [
        { labels: { trace_id: 'abc' }, value: '0.37', timestamp: 1700000000.123 },
        { labels: {}, value: 'NaN', timestamp: 1700000001 },
      ],
    },
    { seriesLabels: { __name__: 'jobs_total' }, exemplars: [{ labels: { user: 'ada' }, value: '3', timestamp: 1700000002 }] },
  ];
  const markers = exemplarMarkers(data);
  assert.equal(markers.length, 3);
  assert.deepEqual(markers[0], { t: 1700000000.123, v: 0.37, labels: { trace_id: 'abc' }, series: 'rpc_seconds_bucket{le="0.5"}' });
  assert.ok(Number.isNaN(markers[1].v));
  assert.equal(markers[2].series, 'jobs_total');
  // No selectors (a 204, read as null) and errors draw nothing.
  assert.deepEqual(exemplarMarkers(null), []);
  assert.deepEqual(exemplarMarkers({ error: 'x' }), []);
});

test('traces: durations, tags, the waterfall order and the service graph columns', () => {
  assert.equal(formatMicros(850), '850µs');
  assert.equal(formatMicros(12345), '12.3ms');
  assert.equal(formatMicros(1250000), '1.25s');
  assert.deepEqual(parseTags('http.status_code=500 error=true'), { 'http.status_code': '500', error: 'true' });
  assert.deepEqual(parseTags('msg="a b" x=1'), { msg: 'a b', x: '1' });
  assert.deepEqual(parseTags(''), {});
  assert.throws(() => parseTags('justakey'));
  const ref = (id) => [{ refType: 'CHILD_OF', traceID: 't', spanID: id }];
  const trace = {
    spans: [
      { spanID: 'c2', references: ref('r'), startTime: 30 },
      { spanID: 'g1', references: ref('c1'), startTime: 15 },
      { spanID: 'r', references: [], startTime: 0 },
      { spanID: 'c1', references: ref('r'), startTime: 10 },
      { spanID: 'orphan', references: ref('gone'), startTime: 5 },
    ],
  };
  assert.deepEqual(spanTree(trace).map((x) => `${x.spanID || x.span.spanID}@${x.depth}`), ['r@0', 'c1@1', 'g1@2', 'c2@1', 'orphan@0']);
  const { nodes, column } = graphColumns([
    { parent: 'gateway', child: 'trainer', callCount: 3 },
    { parent: 'trainer', child: 'model', callCount: 9 },
    { parent: 'gateway', child: 'model', callCount: 1 },
    { parent: 'model', child: 'trainer', callCount: 1 },
  ]);
  assert.deepEqual(nodes, ['gateway', 'model', 'trainer']);
  assert.equal(column.get('gateway'), 0);
  assert.ok(column.get('model') > column.get('gateway'));
  assert.ok(column.get('trainer') < 3, 'a cycle stops within the number of services');
});

test('native histograms: parsing, bucket labels, axis scale, heatmap grid', async () => {
  const { parseHistogram, bucketLabel, isZeroBucket, histogramScale, heatmapGrid, rowLayout, classicRows, splitResults } = await import('../src/histogram.js');
  // Prometheus's JSON: rule 0 (lower, upper], 1 [lower, upper), 2 (lower, upper), 3 [lower, upper].
  const h = parseHistogram({ count: '12', sum: '18.4', buckets: [[1, '-1.414213562373095', '-1', '1'], [3, '-0.001', '0.001', '2'], [0, '0.7071067811865475', '1', '3'], [0, '1', '1.414213562373095', '6'], ['x'], [0, 'a', '1', '1']] });
  assert.equal(h.count, 12);
  assert.equal(h.sum, 18.4);
  assert.equal(h.buckets.length, 4, 'malformed buckets are skipped');
  assert.deepEqual(h.buckets.map((b) => bucketLabel(b)), ['[-1.41421, -1)', '[-0.001, 0.001]', '(0.707107, 1]', '(1, 1.41421]']);
  assert.deepEqual(h.buckets.map(isZeroBucket), [false, true, false, false]);
  assert.equal(bucketLabel({ rule: 2, lower: 0.5, upper: 1 }), '(0.5, 1)');
  assert.equal(bucketLabel({ rule: 0, lower: 10, upper: Infinity }), '(10, +Inf]');
  assert.equal(histogramScale(h.buckets), 'exponential');
  // Custom bounds (schema −53): -Inf/+Inf ends and arbitrary bounds.
  const custom = parseHistogram({ count: '3', sum: '1', buckets: [[0, '-Inf', '0.1', '1'], [0, '0.1', '0.25', '1'], [0, '0.25', '+Inf', '1']] });
  assert.equal(histogramScale(custom.buckets), 'custom');
  assert.equal(bucketLabel(custom.buckets[0]), '(-Inf, 0.1]');
  assert.equal(histogramScale(parseHistogram({ buckets: [[0, '0.1', '0.25', '1']] }).buckets), 'custom');
  assert.equal(parseHistogram(null).buckets.length, 0);
  // Two steps with different buckets: rows are the union, cells per step.
  const grid = heatmapGrid(
    [
      [100, { count: '3', sum: '1', buckets: [[0, '1', '2', '1'], [0, '2', '4', '2']] }],
      [130, { count: '4', sum: '1', buckets: [[3, '0', '0', '1'], [0, '2', '4', '3']] }],
      [999, { count: '1', sum: '1', buckets: [[0, '1', '2', '1']] }],
    ],
    100, 130, 15,
  );
  assert.deepEqual(grid.xs, [100, 115, 130]);
  assert.deepEqual(grid.rows.map((r) => bucketLabel(r)), ['[0, 0]', '(1, 2]', '(2, 4]']);
  assert.deepEqual(grid.cells, [[null, null, 1], [1, null, null], [2, null, 3]]);
  assert.equal(grid.scale, 'exponential');
  // The log axis: (1,2] and (2,4] are as tall as each other, the zero band below them.
  const { total, spans } = rowLayout(grid.rows, 'exponential');
  assert.ok(spans[0][1] <= spans[1][0] + 1e-9);
  assert.ok(Math.abs(spans[1][1] - spans[1][0] - (spans[2][1] - spans[2][0])) < 1e-9);
  assert.ok(Math.abs(spans[2][1] - total) < 1e-9);
  // Negative buckets lie below the zero bucket, mirrored.
  const neg = rowLayout(h.buckets, 'exponential');
  assert.ok(neg.spans[0][1] <= neg.spans[1][0] + 1e-9 && neg.spans[1][1] <= neg.spans[2][0] + 1e-9);
  // Classic buckets: cumulative counts de-accumulated.
  const classic = classicRows([{ le: '+Inf', ys: [10, 12] }, { le: '0.5', ys: [4, 4] }, { le: '1', ys: [9, null] }]);
  assert.deepEqual(classic.rows.map((r) => bucketLabel(r)), ['(0, 0.5]', '(0.5, 1]', '(1, +Inf]']);
  assert.deepEqual(classic.cells, [[4, 4], [5, null], [1, 12]]);
  // Mixed results: a series with both kinds is in both lists.
  const split = splitResults([{ metric: {}, values: [[1, '1']] }, { metric: {}, histograms: [[1, {}]] }, { metric: {}, values: [[1, '1']], histograms: [[2, {}]] }]);
  assert.deepEqual([split.floats.length, split.histograms.length], [2, 2]);
});

test('Grafana heatmap panels: format heatmap targets and the y axis unit come through', () => {
  const d = fromGrafana(JSON.parse(readFileSync(new URL('./grafana-heatmaps.json', import.meta.url), 'utf8')));
  const panels = d.rows.flatMap((r) => r.panels);
  assert.deepEqual(panels.map((p) => p.type), ['heatmap', 'heatmap', 'timeseries', 'timeseries', 'timeseries']);
  assert.equal(panels[4].targets[0].instant, true);
  assert.equal(panels[0].targets[0].format, 'heatmap');
  assert.equal(panels[0].unit, 's');
  assert.equal(panels[2].targets[0].format, undefined);
});
