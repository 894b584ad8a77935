//! Parsers for the Prometheus text exposition format (version 0.0.4) and
//! OpenMetrics 1.0 text, both zero-copy over a byte slice.
//!
//! [`Parser`] is an iterator of [`Entry`] values: metadata (`# HELP`,
//! `# TYPE`, `# UNIT`) and samples, in input order. Comments and blank lines
//! produce nothing. Names, label values and help text borrow from the input
//! (`Cow::Borrowed`) unless an escape sequence had to be decoded; the only
//! allocation per sample is its label vector.
//!
//! [`Parser::next_lazy`] is the scrape loop's entry point: it returns each
//! sample as a [`LazySample`] whose series text (name and label set, as
//! written) is delimited but not parsed, so a caller that caches series by
//! that text parses labels only for texts it has not seen. Its entries and
//! errors are those of the iterator once each series is parsed.
//!
//! The two formats differ where it matters to callers:
//!
//! | | [`Format::Text`] | [`Format::OpenMetrics`] |
//! |---|---|---|
//! | sample timestamp | integer milliseconds | decimal seconds, converted exactly to ms |
//! | end of input | anywhere | a `# EOF` line, then nothing |
//! | comments, blank lines | skipped | an error |
//! | `\r\n` line ends | tolerated | an error |
//! | exemplars | an error | parsed into [`Exemplar`] |
//! | `\"` in `# HELP` text | kept verbatim | decoded |
//!
//! The parser is syntactic: it does not check that samples match their
//! family's `# TYPE` or that families are contiguous. Errors carry a 1-based
//! line and byte column and stop the iteration. `docs/format/exposition.md`
//! describes the accepted language in full.

mod line;
mod number;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use crate::labels::{Labels, METRIC_NAME};

/// Which exposition format a body is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4 (with Prometheus 3's quoted
    /// UTF-8 names).
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// The metric type declared by a `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `unknown` (OpenMetrics) or `untyped` (text format).
    Unknown,
}

impl MetricType {
    /// The OpenMetrics spelling of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// Parses the keyword of a `# TYPE` line. Both formats accept every
    /// keyword of either format (`untyped` and `unknown` alike).
    fn from_keyword(keyword: &[u8]) -> Option<MetricType> {
        Some(match keyword {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"gaugehistogram" => MetricType::GaugeHistogram,
            b"summary" => MetricType::Summary,
            b"info" => MetricType::Info,
            b"stateset" => MetricType::StateSet,
            b"unknown" | b"untyped" => MetricType::Unknown,
            _ => return None,
        })
    }
}

/// An OpenMetrics exemplar attached to a sample (`# {trace_id="abc"} 1.0 1234.5`).
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar<'a> {
    pub labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    pub value: f64,
    /// Converted from seconds to milliseconds as Prometheus converts an
    /// exemplar's: through an `f64`, truncated toward zero (a sample's
    /// time is exact and rounded instead).
    pub timestamp_ms: Option<i64>,
}

/// One meaningful line of an exposition.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text`, with the text unescaped.
    Help {
        metric: Cow<'a, str>,
        text: Cow<'a, str>,
    },
    /// `# TYPE name kind`.
    Type {
        metric: Cow<'a, str>,
        kind: MetricType,
    },
    /// `# UNIT name unit` (OpenMetrics only; a comment in the text format).
    Unit {
        metric: Cow<'a, str>,
        unit: Cow<'a, str>,
    },
    /// One sample. `labels` are in input order, without `__name__`, and
    /// never contain a name twice. `timestamp_ms` is in milliseconds in both
    /// formats. OpenMetrics `_created` series arrive as ordinary samples.
    Sample {
        name: Cow<'a, str>,
        labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
        value: f64,
        timestamp_ms: Option<i64>,
        exemplar: Option<Exemplar<'a>>,
    },
}

/// A sample's labels in input order, as [`Entry::Sample`] has them.
pub type LabelPairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// One meaningful line of an exposition as [`Parser::next_lazy`] returns
/// it: metadata as in [`Entry`], samples with their series unparsed.
#[derive(Clone, Debug, PartialEq)]
pub enum LazyEntry<'a> {
    /// `# HELP name text`, as [`Entry::Help`].
    Help {
        metric: Cow<'a, str>,
        text: Cow<'a, str>,
    },
    /// `# TYPE name kind`, as [`Entry::Type`].
    Type {
        metric: Cow<'a, str>,
        kind: MetricType,
    },
    /// `# UNIT name unit`, as [`Entry::Unit`].
    Unit {
        metric: Cow<'a, str>,
        unit: Cow<'a, str>,
    },
    Sample(LazySample<'a>),
}

/// A sample whose value, timestamp and exemplar are parsed and checked but
/// whose series (metric name and label set) is only delimited.
///
/// This is for callers that cache per series, as a scrape loop does:
/// targets write the same series text scrape after scrape, so the caller
/// looks [`LazySample::series`] up in its cache and calls
/// [`LazySample::parse_series`] only on a miss. That is sound because
/// whether a series text is valid, and what it parses to, depends on its
/// bytes alone (not on the rest of the line, the line's position or the
/// format: both formats share the series syntax). So a text byte-identical
/// to one that `parse_series` once accepted needs no parsing again.
#[derive(Clone, Debug, PartialEq)]
pub struct LazySample<'a> {
    line: &'a [u8],
    line_number: usize,
    format: Format,
    /// The series text is `line[series_start..series_end]`.
    series_start: usize,
    series_end: usize,
    pub value: f64,
    /// In milliseconds in both formats, as [`Entry::Sample`]'s.
    pub timestamp_ms: Option<i64>,
    /// Boxed: exemplars are rare, and a small sample moves cheaply (the
    /// move was a `memcpy` per sample on the scrape path).
    pub exemplar: Option<Box<Exemplar<'a>>>,
}

impl<'a> LazySample<'a> {
    /// The series as written: from the first byte of the metric name (or
    /// of the label set's `{` when the name is inside it) to the label
    /// set's closing `}`, or to the end of the name when there is no label
    /// set. Whitespace between name and label set is part of it.
    pub fn series(&self) -> &'a [u8] {
        let line: &'a [u8] = self.line;
        line.get(self.series_start..self.series_end)
            .unwrap_or_default()
    }

    /// Parses the series into the metric name and the labels, as
    /// [`Entry::Sample`] has them, with every check [`Parser`]'s `next`
    /// makes. Its error is the one `next` gives for this line.
    pub fn parse_series(&self) -> Result<(Cow<'a, str>, LabelPairs<'a>), ParseError> {
        line::parse_series(self.line, self.line_number, self.format, self.series_start)
    }
}

/// A syntax error at a 1-based line and 1-based byte column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Iterates over the entries of an exposition body. After the first error
/// it returns `None`.
pub struct Parser<'a> {
    input: &'a [u8],
    format: Format,
    /// Offset of the start of the next line.
    position: usize,
    /// 1-based number of the next line.
    next_line_number: usize,
    finished: bool,
    /// More input follows this slice (see [`Parser::fragment`]).
    more_follows: bool,
    /// See [`Parser::reuse_series`].
    reuse_series: bool,
    /// The series text of the last sample returned by `next_lazy`.
    previous_series: &'a [u8],
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8], format: Format) -> Parser<'a> {
        Parser {
            input,
            format,
            position: 0,
            next_line_number: 1,
            finished: false,
            more_follows: false,
            reuse_series: false,
            previous_series: &[],
        }
    }

    /// Makes [`Parser::next_lazy`] check first whether a line starts with
    /// the previous sample's series text, and take it as the series
    /// without scanning it when it does: for inputs that write the samples
    /// of one series line after line (backfill files). The entries and
    /// errors are the same either way; on inputs whose series change every
    /// line (scrapes) the check costs a failed `memcmp` per line.
    pub fn reuse_series(mut self) -> Parser<'a> {
        self.reuse_series = true;
        self
    }

    /// A parser of one piece of a larger input, for parsing the pieces of
    /// a big file on several threads. `input` must start at the start of a
    /// line and, unless it is the final piece (`more_follows` false), end
    /// just after a `\n`. Line numbers count from 1 at the piece's first
    /// line: the caller adds the lines of the pieces before it. A piece
    /// that more input follows does not need OpenMetrics' `# EOF`, and a
    /// `# EOF` in it is the error "unexpected content after" it, as in the
    /// whole input. The entries and errors of the pieces, in order and up
    /// to the first error, are those of the whole input.
    pub fn fragment(input: &'a [u8], format: Format, more_follows: bool) -> Parser<'a> {
        Parser {
            more_follows,
            ..Parser::new(input, format)
        }
    }

    /// 1-based number of the line the last returned entry came from.
    pub fn line(&self) -> usize {
        self.next_line_number.saturating_sub(1).max(1)
    }

    /// Byte offset of the next line to parse, for progress reporting.
    pub fn offset(&self) -> usize {
        self.position
    }

    fn fail<T>(&mut self, error: ParseError) -> Option<Result<T, ParseError>> {
        self.finished = true;
        Some(Err(error))
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.next_outcome::<Entry<'a>>()? {
            Ok(line::Outcome::Metadata(metadata)) => Ok(metadata.into_entry()),
            Ok(line::Outcome::Sample(entry)) => Ok(entry),
            Err(error) => Err(error),
        })
    }
}

impl<'a> Parser<'a> {
    /// Like [`Iterator::next`], but a sample's series (its name and label
    /// set) is only delimited, not parsed: see [`LazySample`]. The value,
    /// timestamp and exemplar are parsed and checked as by `next`, and the
    /// entries and errors are the same as `next` gives once every sample's
    /// [`LazySample::parse_series`] has been called.
    pub fn next_lazy(&mut self) -> Option<Result<LazyEntry<'a>, ParseError>> {
        Some(match self.next_outcome::<LazySample>()? {
            Ok(line::Outcome::Metadata(metadata)) => Ok(metadata.into_lazy_entry()),
            Ok(line::Outcome::Sample(sample)) => Ok(LazyEntry::Sample(sample)),
            Err(error) => Err(error),
        })
    }

    /// The next line that is metadata or a sample, or the first error.
    fn next_outcome<S: line::SampleForm<'a>>(
        &mut self,
    ) -> Option<Result<line::Outcome<'a, S>, ParseError>> {
        loop {
            if self.finished {
                return None;
            }
            let input = self.input;
            if self.position >= input.len() {
                self.finished = true;
                if self.format == Format::OpenMetrics && !self.more_follows {
                    return self.fail(ParseError {
                        line: self.next_line_number,
                        column: 1,
                        message: "expected \"# EOF\" at the end of OpenMetrics input".to_string(),
                    });
                }
                return None;
            }
            let line_start = self.position;
            let (line_end, next_position) = match find_newline(&input[line_start..]) {
                Some(offset) => (line_start + offset, line_start + offset + 1),
                None => (input.len(), input.len()),
            };
            let mut line = &input[line_start..line_end];
            if self.format == Format::Text
                && let Some((&b'\r', rest)) = line.split_last()
            {
                line = rest;
            }
            let line_number = self.next_line_number;
            self.next_line_number += 1;
            self.position = next_position;

            let previous_series = if self.reuse_series {
                self.previous_series
            } else {
                &[]
            };
            match line::parse_line::<S>(line, line_number, self.format, previous_series) {
                Ok(line::LineOutcome::Found(outcome)) => {
                    if self.reuse_series
                        && let line::Outcome::Sample(sample) = &outcome
                        && let Some(series) = S::series(sample)
                    {
                        self.previous_series = series;
                    }
                    return Some(Ok(outcome));
                }
                Ok(line::LineOutcome::Nothing) => continue,
                Ok(line::LineOutcome::EndOfFile) => {
                    self.finished = true;
                    if next_position < input.len() || self.more_follows {
                        return self.fail(ParseError {
                            line: line_number + 1,
                            column: 1,
                            message: "unexpected content after \"# EOF\"".to_string(),
                        });
                    }
                    return None;
                }
                Err(error) => return self.fail(error),
            }
        }
    }
}

/// Cuts `input` into at most `count` pieces of about equal size for
/// [`Parser::fragment`]: each piece but the last ends just after a `\n`,
/// and together they cover `input` in order. Fewer pieces come back when
/// the input has too few lines.
pub fn split_at_lines(input: &[u8], count: usize) -> Vec<std::ops::Range<usize>> {
    let count = count.max(1);
    let mut pieces = Vec::with_capacity(count);
    let mut start = 0;
    for k in 1..count {
        let target = (input.len() / count * k).max(start);
        let Some(newline) = find_newline(&input[target..]) else {
            break;
        };
        let end = target + newline + 1;
        if end >= input.len() {
            break;
        }
        if end > start {
            pieces.push(start..end);
            start = end;
        }
    }
    pieces.push(start..input.len());
    pieces
}

/// Finds the first `\n`, eight bytes at a time. This scan touches every input
/// byte, so it is worth a few lines over `iter().position`.
fn find_newline(haystack: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word_bytes = [0u8; 8];
        word_bytes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word_bytes) ^ NEWLINES;
        // A zero byte in `word` is a newline in the chunk; this is the
        // classic exact has-zero-byte test.
        let zero_bytes = word.wrapping_sub(ONES) & !word & HIGHS;
        if zero_bytes != 0 {
            return Some(offset + (zero_bytes.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| byte == b'\n')
        .map(|position| offset + position)
}

/// Builds the series labels of a sample for importers: the sample's labels
/// plus `__name__`. Labels with empty values are dropped (an empty value
/// means "absent"); a literal `__name__` label is overridden by `name`.
pub fn sample_labels(name: &str, labels: &[(Cow<'_, str>, Cow<'_, str>)]) -> Labels {
    Labels::from_pairs(
        labels
            .iter()
            .map(|(label_name, value)| (label_name.as_ref(), value.as_ref()))
            .chain(std::iter::once((METRIC_NAME, name))),
    )
}

/// Picks the format for an HTTP `Content-Type`: any
/// `application/openmetrics-text` media type (whatever its version) is
/// OpenMetrics; everything else, including a missing or malformed header,
/// is the text format.
pub fn content_type_format(content_type: &str) -> Format {
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// A number as a sample value is read (Go's `ParseFloat`: `+Inf`, `NaN`,
/// hex, underscores between digits), e.g. an `le` or `quantile` label
/// value; `None` when it is not one.
pub fn parse_float(text: &str) -> Option<f64> {
    number::parse_value(text.as_bytes()).ok()
}
