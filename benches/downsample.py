#!/usr/bin/env python3
"""Resolution tiers (storage.tiers): query latency and disk cost.

Writes a year of OpenMetrics history, --series series (default 200: half
counters `bench_requests_total` that reset every 9 days, half gauges
`bench_temperature`, a daily wave plus noise) at one point every
--interval seconds (default 300), and loads it into:

  (a) tiered osprey: `osprey import`, then `osprey tsdb downsample` with
      tiers raw 1y and 1h 1y (raw 1y, 5m 1y, 1h 1y below a 5-minute
      interval; raw is kept a year too, so the tiers' disk cost is
      measured on top of the same raw data);
  (b) raw-only osprey: the same import, no tiers;
  (c) Prometheus 2.42: `promtool tsdb create-blocks-from openmetrics
      --max-block-duration=744h` (31-day blocks like osprey's import),
      then `prometheus --storage.tsdb.path`.

Each server runs alone (one at a time, so they do not share the two
CPUs) and answers each query --repeat times (default 5); the median
latency is reported. Queries: a year at a 1-day step and 30 days at a
1-hour step, over several functions. The tiered answers are compared
with the raw ones (largest relative difference), and disk is measured
per tier with `du`.

Why this shape: the issue names 2,000 series at 5-minute points; this
machine (2 shared cores, limited disk) takes the same per-series shape
with fewer series by default (--series 2000 runs the full one). At a
5-minute raw interval a 1h window holds 12 points and a 1-day window 288,
so the 1-year query can read the 1h tier (24 points a day), while a
30-day query at a 1-hour step allows at most a 12-minute resolution
(step / 5), which no tier above raw offers here: that query reads raw in
every store. Pass --interval 15 to see the 5m tier in use.

Usage: python3 benches/downsample.py [--series 200] [--interval 300]
       [--days 365] [--repeat 5] [--osprey target/release/osprey]
       [--keep DIR] [--prepare-only] [--disk-only]

Results (2026-12-05, this 2-core machine shared with other builds, release
build, one run each):

  200 series x 365 days at 300 s (21.0 M samples), tiers raw + 1h:
    disk: raw 29.2 MB (1.39 B/sample), 1h tier 20.9 MB = 71.5 % of raw
          (Prometheus 2.42: 108.9 MB)
    latency, tiered / raw-only osprey / Prometheus (s, median of 5):
      1y/1d rate                 0.083 / 0.157 / 0.967   1.9x / 11.6x
      1y/1d sum(increase)        0.040 / 0.145 / 0.900   3.6x / 22.3x
      1y/1d max_over_time        0.068 / 0.153 / 0.900   2.3x / 13.3x
      1y/1d avg_over_time        0.138 / 0.199 / 1.098   1.4x /  8.0x
      1y/1d count_over_time      0.088 / 0.164 / 0.890   1.9x / 10.1x
      30d/1h rate                0.046 / 0.031 / 0.134   (raw in both)
      30d/1h max_over_time       0.025 / 0.036 / 0.108   (raw in both)
      30d/1h avg_over_time       0.026 / 0.022 / 0.120   (raw in both)
  The same after avoiding copies of window points (a second run, the
  machine busier: load average 4.6 on 2 cores), tiered / raw / Prometheus:
      1y/1d rate 0.111 / 0.286 / 0.891 (2.6x / 8.0x), sum(increase) 0.089 /
      0.279 / 0.611 (3.1x / 6.9x), max_over_time 0.111 / 0.295 / 0.537
      (2.7x / 4.8x), avg_over_time 0.201 / 0.353 / 0.660 (1.8x / 3.3x),
      count_over_time 0.095 / 0.315 / 0.749 (3.3x / 7.8x).
  After reading only the aggregate column a function needs straight into
  (t, value) pairs (commits 67cd898, ff3cb08; load average about 2 on the
  2 cores, median of 5), tiered / raw-only osprey / Prometheus (s):
      1y/1d rate                 0.0245 / 0.1422 / 0.787   5.8x / 32.1x
      1y/1d sum(increase)        0.0204 / 0.1366 / 0.752   6.7x / 36.8x
      1y/1d max_over_time        0.0275 / 0.1465 / 0.749   5.3x / 27.3x
      1y/1d avg_over_time        0.0511 / 0.1703 / 0.859   3.3x / 16.8x
      1y/1d count_over_time      0.0239 / 0.1247 / 0.743   5.2x / 31.0x
      30d/1h rate / max / avg    0.020 / 0.018 / 0.021 tiered, the same raw
  CPU time of the server per query (user+sys from /proc, 10 queries, two
  runs): tiered 20-29 ms (avg_over_time 50-53 ms: it selects twice, sums
  then counts), raw-only 142-196 ms. A 1h point now costs about what a raw
  sample does: the 1-year tiered query (1.75 M points) takes as long as
  the 30-day raw one (1.73 M samples). The bound is 12x (12 raw points per
  1h window); what keeps it at 5-7x is the cost that does not shrink with
  the points read: decoding (t, last) of each window point is half of the
  tiered query's CPU, PromQL evaluation of 73,000 steps and the JSON
  answer are most of the rest (perf, release build).
  Where the 1h tier's bytes go (200 series x 365 days at 300 s, bytes per
  window point, from the chunks of tiers/3600000; raw costs 12 x 1.39 =
  16.7 bytes per hour of one series):
      counter  bench_requests_total: t+last 1.71, sum 2.08, min 1.69,
               max 0 (implied), count 0.02, counter 0.03 = 5.5 (33 %)
      gauge    bench_temperature:    t+last 1.45, sum 6.77, min 1.40,
               max 1.40, count 0.02, counter 7.09 = 18.1 (108 %)
  A noisy gauge decreases in most windows, so its counter offsets change
  in most windows and cost more than a stored value, though a counter
  aggregate means nothing for a gauge; and the float sum of two-decimal
  values carries rounding noise, so its column falls back to xor. Without
  the gauge's counter column and with sums compressed like the other
  columns (~2 bytes) the tier would be about 6 bytes per point, ~35 % of
  raw; the 20 % goal at 12 raw points per window leaves about 3.3 bytes,
  that is two stored columns, so it needs fewer aggregates per tier
  (for example t, last and counter for counters, sum and count for
  gauges), not a better encoding of the same five.
  Largest difference from raw: 0.5 % (rate), 0.2-0.4 % (increase, avg,
  count), 6.3 % (max_over_time: a noisy gauge's extreme in the window that
  straddles the range start, as documented); 0.3 % of steps (the first
  step at the data's start) have no tiered answer.
  20 series x 30 days at 15 s (3.5 M samples), tiers raw + 5m + 1h,
  --disk-only: raw 3.6 MB (1.05 B/sample), 5m tier 50.1 %, 1h tier 4.9 %.

Chunk version 2 (per-series sets: a counter keeps last, count and
counter; a gauge count, sum rounded to its decimals, min and max) and
avg_over_time in one select (SumCount), 2026-12-05, the same data
(200 series x 365 days at 300 s), release build, the machine shared with
three other builds (load average 13 on 2 cores: latencies are slower
and noisier than above, compare the ratios), median of 5:
    disk: raw 29.2 MB (1.390 B/sample), 1h tier 5.7 MB = 19.6 % of raw
    (goal <= 20 %); bytes per window point by column (raw 16.68):
      counter: framing 0.06, t 0.02, last 1.67, count 0.01, counter 0.02
               = 1.79 (10.7 %)
      gauge:   framing 0.06, t 0.02, count 0.01, sum 1.74, min 1.39,
               max 1.39 = 4.62 (27.7 %)
    latency, tiered / raw-only osprey / Prometheus (s):
      1y/1d rate                 0.0689 / 0.4048 / 0.8845   5.9x / 12.8x
      1y/1d sum(increase)        0.0588 / 0.3993 / 0.8343   6.8x / 14.2x
      1y/1d max_over_time        0.0580 / 0.3756 / 0.8698   6.5x / 15.0x
      1y/1d avg_over_time        0.0946 / 0.4624 / 0.9665   4.9x / 10.2x
      1y/1d count_over_time      0.0421 / 0.3367 / 0.8411   8.0x / 20.0x
      30d/1h rate / max / avg    0.054 / 0.049 / 0.059 tiered, 0.062 /
                                 0.048 / 0.058 raw (raw in both)
    Largest difference from raw as before: 0.50 % (rate), 0.16-0.35 %
    (increase, avg, count), 6.28 % (max_over_time at the range's start).
  perf (release, tiered server, 40 x the 1y/1d rate): decoding the
  chunks' (t, last) Dense pairs is 43 % of the CPU, PromQL (collecting
  the samples, extrapolated_rate) about 21 %, writing the JSON answer
  17 % (the same 36,500 output points as raw-only, a fixed cost), the
  stitching of columns 9 %. A window point costs about 1.8 times what a
  raw sample costs through the same path, so the 12 x fewer points give
  5-8 x; 10 x needs a cheaper per-point decode (a bulk Dense decoder
  that does not go through the sample iterator) rather than fewer
  aggregates.
  The 30d/1h row reads raw in every store at a 300 s raw interval: a
  1h step allows resolutions up to 12 minutes, and a 5m tier (the
  issue's example tiers, raw 7d / 5m 30d / 1h 1y) would hold one point
  per raw sample here, so it cannot be cheaper than raw.

Bulk column decode, aligned windows and join-free hand-out (2026-12-05,
same data, release build, load average 3.5-6 on the 2 shared cores,
median and min of 7 and the server's CPU per query; ratios by CPU are
the steadiest on this machine). Disk unchanged: raw 29.2 MB, 1h tier
5.7 MB = 19.6 % (goal <= 20 %), counter 1.79 and gauge 4.62 bytes per
window point as above. Both shapes now read the 1h tier: 1y/1d as
before (1h <= 1d/5), 30d/1h through aligned windows (1h divides the
[1h] range and every step). raw/tier and prom/tier by CPU (by median
latency in brackets), then the largest difference from raw, and from
raw 1 ms earlier (what aligned windows promise):
    1y/1d rate               6.1x (4.5x)  17.3x (10.7x)  0.29 %  0.35 %
    1y/1d increase           6.9x (4.6x)  19.5x (10.2x)  0.29 %  0.35 %
    1y/1d sum(increase)      6.7x (4.2x)  19.6x  (7.8x)  0.09 %  0.07 %
    1y/1d resets             6.3x (4.0x)  19.4x  (9.5x)  a reset on the boundary: one step earlier
    1y/1d max_over_time      8.2x (3.6x)  22.5x  (6.8x)  6.28 %  0.00 %
    1y/1d min_over_time      8.1x (6.3x)  22.5x (18.0x) 10.72 %  0.00 %
    1y/1d count_over_time    9.0x (7.4x)  28.1x (23.1x)  0.00 %  0.00 %
    1y/1d sum_over_time      6.9x (3.0x)  20.4x  (8.7x)  0.08 %  0.00 %
    1y/1d avg_over_time      5.3x (2.8x)  13.8x  (7.3x)  0.08 %  0.00 %
    1y/1d plain selector     5.7x (2.8x)  10.9x  (5.1x)  31 % (a gauge's window mean)
    30d/1h rate              1.6x (1.0x)   4.6x  (2.4x)  5.83 %  2.85 %
    30d/1h increase          1.6x (0.7x)   4.2x  (1.6x)  5.83 %  2.85 %
    30d/1h sum(increase)     3.0x (0.9x)  10.3x  (3.2x)  2.43 %  1.44 %
    30d/1h resets            2.5x (1.1x)   7.5x  (2.9x)  as 1y/1d
    30d/1h max_over_time     2.2x (1.6x)   5.5x  (3.3x) 20.85 %  0.00 %
    30d/1h min_over_time     2.0x (1.2x)   5.5x  (2.1x) 30.90 %  0.00 %
    30d/1h count_over_time   2.4x (1.8x)   5.8x  (4.0x)  0.00 %  0.00 %
    30d/1h sum_over_time     2.3x (1.7x)   5.3x  (3.7x)  4.18 %  0.00 %
    30d/1h avg_over_time     1.6x (1.3x)   3.8x  (2.8x)  4.18 %  0.00 %
    30d/1h plain selector    1.2x (0.9x)   2.5x  (1.7x)  raw in both (1h > 1h/5)
  CPU per query: tiered 14-33 ms at 1y/1d (raw-only 114-174 ms,
  Prometheus 217-453 ms); 30d/1h tiered 4-14 ms (raw-only 13-23 ms,
  Prometheus 36-54 ms). Raw-only reads did not change (the bulk decoder
  is used for tier columns only). perf of the 1y/1d tiered
  max_over_time now: decoding 15 % (was 43 % for rate), handing the
  samples to PromQL one at a time through the boxed iterator and
  collecting them into a vector 19 %, page faults and frees of those
  per-series vectors about 20 %, the function 7 %, JSON 7 %. The 10x
  goal against raw-only is not reached: what is left is the engine's
  per-sample hand-over and per-series allocation, which a tier cannot
  shrink below its points. At 30d/1h the raw query itself costs 13-23
  ms of which the 72,000 output points (JSON, per-step evaluation) are
  most: 12 x fewer points read cannot make it 10x faster.

Samples as columns (2026-12-06, branch cols: `SampleIter` hands the
engine whole vectors, range sinks reuse one buffer, a tier block's column
is decoded when its series is read, range functions looked up once per
series, JSON timestamps and whole numbers written by hand; same data,
release builds of both binaries, the machine shared with other builds
and a fuzzer, load average 8-13 on 2 cores: latencies are noisy, the
CPU ratios are what to compare; the server's CPU is read from /proc in
10 ms ticks, so each CPU figure is +-1-2 ms). Answers unchanged: every
"diff raw" and "diff -1ms" figure equals main's to the digit.
  1y/1d only, --repeat 10, both binaries one after the other:
    raw-only / tiered by CPU (by median latency), this branch vs main:
      rate              10.9x (7.2x)   vs  7.7x (6.6x)
      increase          12.8x (9.9x)   vs  8.2x (6.6x)
      sum(increase)     12.6x (11.1x)  vs  8.1x (6.0x)
      resets            12.9x (7.4x)   vs  6.9x (6.2x)
      max_over_time     12.5x (10.6x)  vs  9.6x (5.6x)
      min_over_time     12.6x (9.4x)   vs  9.0x (6.4x)
      count_over_time   15.2x (18.0x)  vs  9.5x (5.2x)
      sum_over_time     11.4x (11.2x)  vs  8.7x (4.1x)
      avg_over_time     10.2x (14.3x)  vs  5.9x (2.5x)
      plain selector     9.8x (19.0x)  vs 10.6x (3.0x)
    tiered CPU per query 9-19 ms (main 19-39 ms); raw-only 128-193 ms
    (main 178-230 ms: raw reads gained too, from the same hand-over).
  Full run, --repeat 5, this branch with Prometheus 2.42 (main's numbers
  from a run a few minutes later without Prometheus): 1y/1d raw/tier by
  CPU 8.1-18.8x (main 6.3-9.8x), Prometheus/tier 15.7-61.3x; tiered CPU
  8-20 ms (main 16-32 ms), raw-only 130-190 ms, Prometheus 252-528 ms.
  30d/1h raw/tier by CPU 0.9-4.0x (main 1.0-3.0x), Prometheus/tier
  2.1-12.5x; tiered 4-18 ms, raw-only 12-24 ms, Prometheus 38-62 ms.
  perf of the tiered server now (40 x the 1y/1d plain selector and
  sum_over_time): tier column decoding 27 % (values 22 %, times 5 %),
  formatting the JSON values 19 % (the formatter's shortest-digits
  search; `ryu` is faster but picks other digits where two shortest
  ones read back alike, so it is not used), the chunks' CRC check 5 %,
  the engine (windows, functions, copies) under 10 %.
  (Go's strconv rounds such ties to even as ryu does, and Prometheus
  writes them so; the formatter rounded them up, a difference from
  Prometheus. Answers now take ryu's digits: tests/number_format.rs.)

2026-12-07, a fresh machine (same 2 shared cores), commit c67f97f
against main of the session before (3fb6342): ryu and itoa for the
answer's numbers, aligned windows walked forward instead of two binary
searches a step, the reset check of the anchored increase before its
adding loop, fixed-width packed integers taken off one loaded word, and
no division of whole-number mantissas by one. Server CPU per query from
/proc over 5 s of back-to-back queries, two alternations (ms):
    1y/1d rate           tiered 16.0 / 17.1 -> 11.3 / 12.9
                         raw    89.6 / 96.2 -> 71.3 / 75.6
    1y/1d max_over_time  tiered 18.2 / 18.0 -> 16.1 / 15.1
                         raw   107.8 / 98.0 -> 99.0 / 112.4
  Raw reads of counters gained as much as tier reads (the division and
  the numbers' text are costs of both), so the ratio stays where it was.
  Full run, 200 series x 365 days at 300 s, median of 7 (s), raw-only /
  tiered and Prometheus / tiered by median latency (by CPU in brackets):
      1y/1d rate               6.8x (8.0x)   35.9x (44.9x)
      1y/1d increase           6.5x (7.2x)   34.1x (39.1x)
      1y/1d sum(increase)      7.2x (7.6x)   36.0x (38.2x)
      1y/1d resets             5.1x (5.8x)   30.1x (34.0x)
      1y/1d max_over_time      6.5x (7.0x)   27.8x (30.6x)
      1y/1d min_over_time      5.8x (6.2x)   26.7x (27.8x)
      1y/1d count_over_time    8.6x (11.3x)  46.9x (63.2x)
      1y/1d sum_over_time      5.8x (6.4x)   27.8x (32.9x)
      1y/1d avg_over_time      5.2x (5.5x)   19.3x (21.4x)
      1y/1d plain selector     4.6x (4.5x)   14.1x (14.8x)
      30d/1h (all ten)         1.0-3.0x      3.8-17.0x
  tiered 11-28 ms at 1y/1d (raw-only 81-146 ms, Prometheus 256-564 ms).
  Answers as before (the "diff raw" columns unchanged to the digit).
  What a 1h tier point costs now (perf, 1y/1d max_over_time, 15 ms of
  CPU): decoding the column 37 % (of it, the exact division of each
  two-decimal mantissa by 100 about half: a multiply by the reciprocal
  would change the last bit of some values), the answer's numbers 15 %,
  the window function 13 %, copies 5 %, CRC 6 %. A tier point costs
  about twice a raw sample, so 12 x fewer points give 5-9 x.

  Why 30d/1h cannot reach 10x at a 300 s raw interval: the 1h tier holds
  one point for 12 raw samples, and both stores write the same 72,000
  output points and evaluate the same 72,000 windows. Raw-only spends
  10-20 ms on the query, and the tiered store, reading 720 points a
  series instead of 8,640, still 4-15 ms: what both pay for the windows
  and the answer is a third to two thirds of the raw query, and no tier
  can take it away. The same shape
  at the resolution the issue's tiers are meant for (raw 15 s, 5m and
  1h tiers: --interval 15 --days 30, 200 series, 34.6 M samples), run
  with --only 30d, median of 7:
    disk: raw 35.6 MB (1.031 B/sample), 5m tier 4.5 MB (12.5 %), 1h tier
          0.5 MB (1.4 %): 13.9 % on top of raw (goal <= 20 %)
    raw-only / tiered and Prometheus / tiered by median latency (CPU):
      30d/1h rate              16.2x (13.9x)  122.8x (107.1x)
      30d/1h increase          24.2x (35.3x)  129.2x (208.7x)
      30d/1h sum(increase)     47.0x (45.5x)  307.0x (303.5x)
      30d/1h resets            16.6x (24.7x)  141.7x (199.7x)
      30d/1h max_over_time     17.2x (16.3x)   81.8x  (83.0x)
      30d/1h min_over_time     15.1x (17.3x)   84.0x  (98.2x)
      30d/1h count_over_time   27.4x (42.5x)  200.9x (302.5x)
      30d/1h sum_over_time     14.4x (14.9x)   91.2x  (92.3x)
      30d/1h avg_over_time     26.9x (29.8x)  142.9x (163.8x)
      30d/1h plain selector     5.6x  (6.5x)   20.2x  (25.8x)
    tiered 2.6-18.7 ms, raw-only 98-205 ms, Prometheus 377-1087 ms;
    largest difference from raw 0.13-0.25 % (rate, increase, sums),
    9.4 / 14.2 % (max / min at the range's start, as above), 0 % one
    millisecond earlier. The plain selector reads the 5m tier (the
    coarsest at or under step / 5), 12 points a step.
  And a year at 15 s (--series 20 --interval 15 --days 365 --only 1y,
  42.0 M samples; commit 8220f1a, median of 7, nothing else running):
    disk: raw 41.9 MB (0.996 B/sample), 5m tier 12.7 %, 1h tier 1.3 %:
          14.1 % on top of raw (goal <= 20 %)
    1y/1d raw-only / tiered 145-261x by median latency (tiered 1.7-3.7
    ms, raw-only 399-530 ms), Prometheus / tiered 298-589x (Prometheus
    0.97-1.39 s); the plain selector 164x / 201x. Largest difference
    from raw 0.05 % (rate, increase), 0 % for the *_over_time functions
    (their windows are whole days of the 1h tier), 29 % for a gauge's
    plain selector (the hour's mean, as documented).

Gauges keep their last value, plain selectors read aligned tiers
(2026-12-07, commits e8ac35a and the lookback fix after it): a gauge's
tier chunk holds its window's last sample beside count, sum, min and
max, and a range query's plain selector reads the coarsest tier whose
windows end at its steps (the 1h tier at a 1h step, not twelve 5m points
a step), exactly raw one millisecond earlier. "diff -1ms" of a plain
selector also counts a step as equal where the tier gives raw's answer
at the step itself: the last step, where the data ends and the step's
own window holds one sample, at the step. Median of 7, one run each:
  Year at 15 s, 20 series (--series 20 --interval 15 --days 365):
    disk: raw 41.9 MB (0.996 B/sample), 5m tier 16.0 %, 1h tier 1.6 %:
          17.6 % on top of raw (was 14.1 %; goal <= 20 %); a gauge's 5m
          point 5.28 bytes (last 1.29 of it), a counter's 1.06
    raw-only / tiered and Prometheus / tiered by median latency:
      1y/1d  (all ten)         208-366x      405-1108x
      30d/1h rate              14.2x         117.2x
      30d/1h increase          17.4x         111.1x
      30d/1h sum(increase)     15.6x         132.5x
      30d/1h resets            13.8x         134.2x
      30d/1h max_over_time     18.4x         104.5x
      30d/1h min_over_time     16.6x         111.0x
      30d/1h count_over_time   16.3x         154.3x
      30d/1h sum_over_time     15.9x         141.7x
      30d/1h avg_over_time     20.0x         111.5x
      30d/1h plain selector    14.3x          68.7x   (was 6.7x / 24.9x)
    tiered 0.8-2.2 ms, raw-only 11-461 ms, Prometheus 55 ms-1.42 s.
    Every query at least 10x faster than both by median and by minimum
    latency. Largest difference from raw one millisecond earlier: 0 %
    for the *_over_time functions and plain selectors, 0.05-0.10 % for
    rate and increase (the anchored increase), resets one step early
    where a reset falls on a window boundary.
  Year at 300 s, 200 series (the defaults), tiers raw and 1h:
    disk: raw 28.3 MB (1.345 B/sample), 1h tier 23.9 % (goal <= 20 %:
          not met; was 19.6 % without the gauge's last, which takes
          1.39 of a gauge point's 5.81 bytes)
    1y/1d raw-only / tiered 4.7-11.5x, Prometheus / tiered 25.8-72.6x;
    30d/1h 1.9-3.8x and 7.3-22.3x; the plain selector 6.6x / 25.8x at
    1y/1d (was 4.6x / 14.1x) and 2.5x / 7.3x at 30d/1h (was raw in
    both). Its answer is raw one millisecond earlier, exactly (before:
    a gauge's window mean, 31 % off).
  The year at 15 s again on the final build (aa2fb2c: tiered selects
  keep raw histograms, older gauge means never stand for a whole step),
  --only 30d: raw-only / tiered 15.7-22.2x (plain selector 16.5x),
  Prometheus / tiered 42.4-113x; plain selector 0.00 % against raw one
  millisecond earlier.
"""

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from benchlib import free_port, stop_process, wait_ready

DAY = 86400


def write_history(path, series, interval, days, end):
    """Writes the OpenMetrics file; returns the number of samples."""
    counters = series // 2
    gauges = series - counters
    start = end - days * DAY
    rng = random.Random(7)
    rates = [rng.uniform(0.5, 20.0) for _ in range(counters)]
    phases = [rng.uniform(0, 2 * math.pi) for _ in range(gauges)]
    n = 0
    with open(path, "w") as f:
        # OpenMetrics wants each metric family's samples together.
        f.write("# TYPE bench_requests counter\n")
        for c in range(counters):
            name = f'bench_requests_total{{job="j{c % 10}",instance="i{c:04d}"}}'
            value = 0.0
            lines = []
            t = start
            while t <= end:
                if (t - start) % (9 * DAY) < interval and t != start:
                    value = 0.0
                value += rates[c] * interval * (0.8 + 0.4 * rng.random())
                lines.append(f"{name} {value:.0f} {t}\n")
                t += interval
            f.writelines(lines)
            n += len(lines)
        f.write("# TYPE bench_temperature gauge\n")
        for g in range(gauges):
            name = f'bench_temperature{{job="j{g % 10}",instance="i{g:04d}"}}'
            lines = []
            t = start
            while t <= end:
                v = 50 + 20 * math.sin(2 * math.pi * t / DAY + phases[g]) + rng.gauss(0, 2)
                lines.append(f"{name} {v:.2f} {t}\n")
                t += interval
            f.writelines(lines)
            n += len(lines)
        f.write("# EOF\n")
    return n


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def uvarint(b, i):
    """(value, next position) of the LEB128 integer at b[i]."""
    shift = value = 0
    while True:
        byte = b[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def dense(b, i):
    """A length-prefixed Dense chunk at b[i]: (timestamp bytes, value bytes,
    framing bytes, next position) (docs/format/chunks.md)."""
    length, j = uvarint(b, i)
    end = j + length
    _, k = uvarint(b, j)
    ts_len, k2 = uvarint(b, k)
    return ts_len, end - k2 - ts_len, (k2 - i), end


def column(b, i, splits, name):
    """A mode byte and, when stored (0) or sparse (2), a Dense column."""
    mode = b[i]
    splits["framing"] = splits.get("framing", 0) + 1
    if mode in (0, 2):
        ts, vs, frame, end = dense(b, i + 1)
        splits[name] = splits.get(name, 0) + vs
        splits["framing"] += ts + frame
        return end
    return i + 1


def column_split(tier_dir):
    """Bytes per column of a tier's chunks, by chunk kind (version 2:
    docs/format/downsample.md), and the number of window points of each."""
    out = {}
    for root, _, files in os.walk(tier_dir):
        if not root.endswith("chunks"):
            continue
        for name in files:
            b = open(os.path.join(root, name), "rb").read()
            i = 8
            while i < len(b):
                encoding = b[i]
                length, j = uvarint(b, i + 1)
                data = b[j:j + length]
                record_framing = (j - i) + 4
                i = j + length + 4
                if encoding != 3:
                    continue
                if data[0] != 0:
                    kind, at = "version 1", 0
                    n, at = uvarint(data, 0)
                else:
                    kind = {1: "counter", 2: "gauge (mean)", 3: "count",
                            4: "gauge"}.get(data[1], "?")
                    n, at = uvarint(data, 2)
                splits, points = out.setdefault(kind, ({}, [0]))
                points[0] += n
                splits["framing"] = splits.get("framing", 0) + record_framing + at
                if kind.startswith("gauge") or kind == "count":
                    ts, vs, frame, at = dense(data, at)
                    splits["t"] = splits.get("t", 0) + ts
                    splits["count"] = splits.get("count", 0) + vs
                    splits["framing"] += frame
                    cols = {"gauge": ("sum", "min", "max", "last"),
                            "gauge (mean)": ("sum", "min", "max")}.get(kind, ())
                    for col in cols:
                        at = column(data, at, splits, col)
                else:
                    splits["framing"] += 8
                    ts, vs, frame, at = dense(data, at + 8)
                    splits["t"] = splits.get("t", 0) + ts
                    splits["last"] = splits.get("last", 0) + vs
                    splits["framing"] += frame
                    cols = ("count", "counter") if kind == "counter" else \
                        ("count", "sum", "min", "max", "counter")
                    for col in cols:
                        at = column(data, at, splits, col)
    return out


def run(cmd, **kw):
    began = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    return time.time() - began


def query(port, q, start, end, step, extra=""):
    params = urllib.parse.urlencode({"query": q, "start": start, "end": end, "step": step})
    url = f"http://127.0.0.1:{port}/api/v1/query_range?{params}{extra}"
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        body = r.read()
    elapsed = time.perf_counter() - began
    doc = json.loads(body)
    if doc.get("status") != "success":
        raise RuntimeError(f"{q}: {doc}")
    return elapsed, doc["data"]["result"]


def answers(result):
    out = {}
    for s in result:
        key = tuple(sorted(s["metric"].items()))
        out[key] = {int(float(t)): float(v) for t, v in s["values"]}
    return out


def worst_difference(raw, tiered, or_raw=None):
    """Largest |tiered - raw| / max(|raw|, 1) over steps both answer, and
    the share of raw steps the tiered answer lacks. With `or_raw`, a step
    also counts as equal where the tiered answer is or_raw's (a plain
    selector at the step where the data ends: its window holds one sample,
    at the step, and the tier answers it, as raw at the step does)."""
    a, b = answers(raw), answers(tiered)
    c = answers(or_raw) if or_raw is not None else {}
    worst, missing, total = 0.0, 0, 0
    for key, points in a.items():
        other = b.get(key, {})
        alternative = c.get(key, {})
        for t, v in points.items():
            total += 1
            if t not in other:
                missing += 1
                continue
            if alternative.get(t) == other[t]:
                continue
            worst = max(worst, abs(other[t] - v) / max(abs(v), 1.0))
    return worst, (missing / total if total else 0.0)


def serve(cmd, port, log):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_ready(port, deadline=600)
    except Exception:
        proc.kill()
        proc.wait()
        raise
    return proc


def count_blocks(path):
    return sum(1 for e in os.listdir(path) if len(e) == 26)


def wait_blocks_settle(path, quiet=20, limit=1800):
    began = time.time()
    last, since = count_blocks(path), time.time()
    while time.time() - began < limit:
        time.sleep(5)
        now = count_blocks(path)
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            break
    return time.time() - began


def cpu_seconds(pid):
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port, queries, repeat, pid=None, extra=""):
    """Per query: (median s, min s, server CPU s per query, result)."""
    out = {}
    for name, (q, start, end, step) in queries.items():
        times = []
        result = None
        cpu0 = cpu_seconds(pid) if pid else 0.0
        for _ in range(repeat):
            elapsed, result = query(port, q, start, end, step, extra)
            times.append(elapsed)
        cpu = (cpu_seconds(pid) - cpu0) / repeat if pid else float("nan")
        out[name] = (statistics.median(times), min(times), cpu, result)
    return out


def one_ms_earlier(q):
    """The query with `offset 1ms` on its range selector: the raw answer
    over [T - range, T), which aligned tier windows give; a plain
    selector (the whole query here) gets it too: the last sample before T."""
    i = q.find("]")
    return q + " offset 1ms" if i < 0 else q[:i + 1] + " offset 1ms" + q[i + 1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--interval", type=int, default=300)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--osprey", default="target/release/osprey")
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one); "
                    "a history and Prometheus blocks already there for the same shape are reused")
    ap.add_argument("--disk-only", action="store_true",
                    help="only import, downsample and measure disk (no Prometheus, no queries)")
    ap.add_argument("--only", help="comma-separated substrings of the query names to run")
    ap.add_argument("--skip-prometheus", action="store_true",
                    help="measure the two osprey stores only")
    ap.add_argument("--prepare-only", action="store_true",
                    help="only write the history and the Prometheus blocks (into --keep)")
    args = ap.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="osprey-downsample-")
    os.makedirs(work, exist_ok=True)
    osprey = os.path.abspath(args.osprey)
    end = (int(time.time()) // DAY) * DAY - DAY
    history = os.path.join(work, "history.om")
    shape = json.dumps({"series": args.series, "interval": args.interval, "days": args.days, "end": end})
    marker = os.path.join(work, "shape.json")
    reuse = os.path.exists(marker) and open(marker).read() == shape
    began = time.time()
    if reuse:
        samples = json.load(open(os.path.join(work, "samples.json")))
    else:
        samples = write_history(history, args.series, args.interval, args.days, end)
        with open(os.path.join(work, "samples.json"), "w") as f:
            json.dump(samples, f)
    print(f"history: {args.series} series, {samples} samples over {args.days} days "
          f"at {args.interval}s ({os.path.getsize(history) / 1e9:.2f} GB, {time.time() - began:.0f}s to write)")

    raw_dir = os.path.join(work, "osprey-raw")
    tiered_dir = os.path.join(work, "osprey-tiered")
    prom_dir = os.path.join(work, "prometheus")
    for d in (raw_dir, tiered_dir) + (() if reuse else (prom_dir,)):
        shutil.rmtree(d, ignore_errors=True)
    if not reuse and not args.disk_only:
        # 31-day blocks, as `osprey import` writes: with its default of two
        # hours promtool re-reads the input once per block (4,380 passes
        # for a year) and Prometheus then compacts thousands of blocks.
        t_prom = run([args.promtool, "tsdb", "create-blocks-from", "openmetrics", "-q",
                      "--max-block-duration=744h", history, prom_dir])
        print(f"promtool create-blocks-from openmetrics: {t_prom:.1f}s")
        with open(marker, "w") as f:
            f.write(shape)
    if args.prepare_only:
        return
    t_import = run([osprey, "import", "--data-dir", raw_dir, history])
    print(f"osprey import: {t_import:.1f}s")
    shutil.copytree(raw_dir, tiered_dir)
    config = os.path.join(work, "tiers.yml")
    with open(config, "w") as f:
        f.write("storage:\n  tiers:\n"
                "    - {resolution: raw, retention: 1y}\n"
                "    - {resolution: 1h, retention: 1y}\n"
                if args.interval >= 300 else
                "storage:\n  tiers:\n"
                "    - {resolution: raw, retention: 1y}\n"
                "    - {resolution: 5m, retention: 1y}\n"
                "    - {resolution: 1h, retention: 1y}\n")
    t_down = run([osprey, "tsdb", "downsample", "--config", config, "--data-dir", tiered_dir])
    print(f"osprey tsdb downsample: {t_down:.1f}s")
    # Disk.
    raw_bytes = sum(du(os.path.join(raw_dir, e)) for e in os.listdir(raw_dir)
                    if len(e) == 26 and os.path.isdir(os.path.join(raw_dir, e)))
    tier_root = os.path.join(tiered_dir, "tiers")
    tiers = {}
    for e in sorted(os.listdir(tier_root), key=int):
        tiers[int(e)] = du(os.path.join(tier_root, e))
    tier_bytes = sum(tiers.values())
    prom_bytes = du(prom_dir) if os.path.isdir(prom_dir) else 0
    print("\ndisk")
    print(f"  raw blocks (osprey):      {raw_bytes / 1e6:10.1f} MB ({raw_bytes / samples:.3f} bytes/sample)")
    for res, b in tiers.items():
        print(f"  tier {res // 1000:>7}s:            {b / 1e6:10.1f} MB ({100 * b / raw_bytes:.1f} % of raw)")
    print(f"  all tiers:                {tier_bytes / 1e6:10.1f} MB ({100 * tier_bytes / raw_bytes:.1f} % on top of raw; goal <= 20 %)")
    raw_per_sample = raw_bytes / samples
    for res in tiers:
        per_window = raw_per_sample * res / 1000 / args.interval
        print(f"  tier {res // 1000}s chunk bytes per window point by column "
              f"(raw: {per_window:.2f} bytes per window of one series):")
        for kind, (splits, points) in sorted(column_split(os.path.join(tier_root, str(res))).items()):
            n = max(points[0], 1)
            cols = ", ".join(f"{k} {v / n:.2f}" for k, v in splits.items())
            total = sum(splits.values()) / n
            print(f"    {kind:9} {points[0]:>9} points: {cols} = {total:.2f} "
                  f"({100 * total / per_window:.1f} % of raw)")
    print(f"  Prometheus 2.42 blocks:   {prom_bytes / 1e6:10.1f} MB as promtool wrote them")
    if args.disk_only:
        return

    functions = [
        ("rate", "rate(bench_requests_total[{w}])"),
        ("increase", "increase(bench_requests_total[{w}])"),
        ("sum(increase)", "sum by (job) (increase(bench_requests_total[{w}]))"),
        ("resets", "resets(bench_requests_total[{w}])"),
        ("max_over_time", "max_over_time(bench_temperature[{w}])"),
        ("min_over_time", "min_over_time(bench_temperature[{w}])"),
        ("count_over_time", "count_over_time(bench_temperature[{w}])"),
        ("sum_over_time", "sum_over_time(bench_temperature[{w}])"),
        ("avg_over_time", "avg_over_time(bench_temperature[{w}])"),
        ("plain selector", "bench_temperature"),
    ]
    queries = {}
    for label, days, step, w in (("1y/1d", 365, DAY, "1d"), ("30d/1h", 30, 3600, "1h")):
        for name, q in functions:
            queries[f"{label} {name}"] = (q.format(w=w), end - days * DAY, end, step)
    if args.only:
        queries = {k: v for k, v in queries.items() if any(o in k for o in args.only.split(","))}
    results = {}
    logs = open(os.path.join(work, "servers.log"), "w")
    for name, cmd_of in [
        ("tiered", lambda port: [osprey, "server", "--config", config, "--data-dir", tiered_dir,
                                 "--listen", f"127.0.0.1:{port}"]),
        ("raw", lambda port: [osprey, "server", "--data-dir", raw_dir, "--retention.time", "2y",
                              "--listen", f"127.0.0.1:{port}"]),
        ("prometheus", lambda port: [args.prometheus, "--storage.tsdb.path", prom_dir,
                                     "--storage.tsdb.retention.time", "2y",
                                     "--config.file", os.path.join(work, "prometheus.yml"),
                                     "--web.listen-address", f"127.0.0.1:{port}",
                                     "--query.max-samples", "500000000"]),
    ]:
        if name == "prometheus" and args.skip_prometheus:
            continue
        if name == "prometheus":
            with open(os.path.join(work, "prometheus.yml"), "w") as f:
                f.write("global: {}\n")
        port = free_port()
        proc = serve(cmd_of(port), port, logs)
        if name == "prometheus":
            # promtool writes 2-hour blocks; Prometheus compacts them in
            # the background after starting. Measure once that settles.
            settled = wait_blocks_settle(prom_dir)
            prom_compacted = du(prom_dir)
            print(f"Prometheus compaction settled after {settled:.0f}s "
                  f"({count_blocks(prom_dir)} blocks, {prom_compacted / 1e6:.1f} MB)")
        try:
            # One warm-up pass (page cache, mmaps), then the measured ones.
            measure(port, queries, 1)
            results[name] = measure(port, queries, args.repeat, proc.pid)
            if name == "raw":
                shifted = {k: (one_ms_earlier(q),) + tuple(rest) for k, (q, *rest) in queries.items()}
                results["raw 1ms earlier"] = measure(port, shifted, 1)
        finally:
            stop_process(proc)

    print("\nquery latency (median and min of %d, s) and server CPU per query (s)" % args.repeat)
    print(f"  {'query':24} {'tiered med/min/cpu':>22} {'raw med/min/cpu':>22} {'prom med/cpu':>15}"
          f" {'raw/tier med,min,cpu':>21} {'prom/tier med,cpu':>17} {'diff raw':>9} {'diff -1ms':>9}")
    for name in queries:
        tm, tn, tc, tr = results["tiered"][name]
        rm, rn, rc, rr = results["raw"][name]
        pm, _, pc, _ = results.get("prometheus", {}).get(name, (float("nan"),) * 3 + (None,))
        worst, missing = worst_difference(rr, tr)
        shifted, _ = worst_difference(results["raw 1ms earlier"][name][3], tr,
                                      rr if name.endswith("plain selector") else None)
        print(f"  {name:24} {tm:7.4f} {tn:7.4f} {tc:6.3f} {rm:7.4f} {rn:7.4f} {rc:6.3f} {pm:7.4f} {pc:6.3f}"
              f"   {rm / tm:5.1f}x {rn / tn:5.1f}x {rc / max(tc, 1e-9):5.1f}x   {pm / tm:5.1f}x {pc / max(tc, 1e-9):5.1f}x"
              f" {100 * worst:8.2f}% {100 * shifted:8.2f}%"
              + (f" ({100 * missing:.1f}% steps missing)" if missing else ""))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
