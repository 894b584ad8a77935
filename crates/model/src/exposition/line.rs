//! Parsing of one exposition line (already cut at `\n`, and at `\r\n` in the
//! text format) into an [`Entry`].
//!
//! A [`LineParser`] is a cursor over the line's bytes. Every error names the
//! byte where the expected thing was missing, as a 1-based column.
//!
//! A sample's series (name and label set) is either parsed or, for
//! [`super::Parser::next_lazy`], only delimited by [`LineParser::skip_label_set`];
//! everything after the series is parsed by the same code in both modes.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use super::number::{self, NumberError};
use super::{Entry, Exemplar, Format, LabelPairs, LazyEntry, LazySample, MetricType, ParseError};

/// What a line amounted to, with samples as `S`.
pub(crate) enum LineOutcome<'a, S> {
    Found(Outcome<'a, S>),
    /// A comment or a blank line.
    Nothing,
    /// The OpenMetrics `# EOF` line.
    EndOfFile,
}

/// A line that means something.
pub(crate) enum Outcome<'a, S> {
    Metadata(Metadata<'a>),
    Sample(S),
}

impl<'a, S> Outcome<'a, S> {
    fn map_sample<T>(self, convert: impl FnOnce(S) -> T) -> Outcome<'a, T> {
        match self {
            Outcome::Metadata(metadata) => Outcome::Metadata(metadata),
            Outcome::Sample(sample) => Outcome::Sample(convert(sample)),
        }
    }
}

/// What a sample line is parsed into: a [`LazySample`] (series skipped)
/// or a [`FullSample`]. Each parse path has its own type so that the lazy
/// one stays small to move (moving a larger one cost a `memcpy` per
/// sample on the scrape path).
pub(crate) trait SampleForm<'a>: Sized {
    const MODE: SeriesMode;

    /// Made from a parsed line; `name` is `Some` in [`SeriesMode::Parse`].
    fn new(name: Option<Cow<'a, str>>, labels: LabelPairs<'a>, sample: LazySample<'a>) -> Self;

    fn from_full(full: FullSample<'a>) -> Self;

    /// The series text as written, where this form keeps it.
    fn series(_sample: &Self) -> Option<&'a [u8]> {
        None
    }

    /// Parses a sample line, with the cursor on its first byte.
    fn parse(parser: &mut LineParser<'a>, previous_series: &[u8]) -> Result<Self, ParseError> {
        parser.parse_sample::<Self>(previous_series)
    }
}

impl<'a> SampleForm<'a> for Entry<'a> {
    const MODE: SeriesMode = SeriesMode::Parse;

    fn new(name: Option<Cow<'a, str>>, labels: LabelPairs<'a>, sample: LazySample<'a>) -> Self {
        Entry::Sample {
            name: name.unwrap_or_default(),
            labels,
            value: sample.value,
            timestamp_ms: sample.timestamp_ms,
            exemplar: sample.exemplar.map(|exemplar| *exemplar),
        }
    }

    fn from_full(full: FullSample<'a>) -> Self {
        Entry::Sample {
            name: full.name,
            labels: full.labels,
            value: full.sample.value,
            timestamp_ms: full.sample.timestamp_ms,
            exemplar: full.sample.exemplar.map(|exemplar| *exemplar),
        }
    }

    fn parse(parser: &mut LineParser<'a>, _: &[u8]) -> Result<Self, ParseError> {
        parser.parse_entry()
    }
}

/// A sample with its series parsed: the metric name and labels.
pub(crate) struct FullSample<'a> {
    pub(crate) name: Cow<'a, str>,
    pub(crate) labels: LabelPairs<'a>,
    pub(crate) sample: LazySample<'a>,
}

impl<'a> SampleForm<'a> for FullSample<'a> {
    const MODE: SeriesMode = SeriesMode::Parse;

    fn new(name: Option<Cow<'a, str>>, labels: LabelPairs<'a>, sample: LazySample<'a>) -> Self {
        FullSample {
            name: name.unwrap_or_default(),
            labels,
            sample,
        }
    }

    fn from_full(full: FullSample<'a>) -> Self {
        full
    }
}

impl<'a> SampleForm<'a> for LazySample<'a> {
    const MODE: SeriesMode = SeriesMode::Skip;

    fn new(_: Option<Cow<'a, str>>, _: LabelPairs<'a>, sample: LazySample<'a>) -> Self {
        sample
    }

    fn series(sample: &Self) -> Option<&'a [u8]> {
        Some(sample.series())
    }

    fn from_full(full: FullSample<'a>) -> Self {
        full.sample
    }
}

/// A `# HELP`, `# TYPE` or `# UNIT` line.
pub(crate) enum Metadata<'a> {
    Help {
        metric: Cow<'a, str>,
        text: Cow<'a, str>,
    },
    Type {
        metric: Cow<'a, str>,
        kind: MetricType,
    },
    Unit {
        metric: Cow<'a, str>,
        unit: Cow<'a, str>,
    },
}

impl<'a> Metadata<'a> {
    pub(crate) fn into_entry(self) -> Entry<'a> {
        match self {
            Metadata::Help { metric, text } => Entry::Help { metric, text },
            Metadata::Type { metric, kind } => Entry::Type { metric, kind },
            Metadata::Unit { metric, unit } => Entry::Unit { metric, unit },
        }
    }

    pub(crate) fn into_lazy_entry(self) -> LazyEntry<'a> {
        match self {
            Metadata::Help { metric, text } => LazyEntry::Help { metric, text },
            Metadata::Type { metric, kind } => LazyEntry::Type { metric, kind },
            Metadata::Unit { metric, unit } => LazyEntry::Unit { metric, unit },
        }
    }
}

/// Whether a sample's series is parsed or only delimited.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeriesMode {
    Parse,
    Skip,
}

/// `previous_series` is the series text of an earlier sample line that
/// the series was delimited in (or empty): see [`LineParser::parse_sample`].
pub(crate) fn parse_line<'a, S: SampleForm<'a>>(
    line: &'a [u8],
    line_number: usize,
    format: Format,
    previous_series: &[u8],
) -> Result<LineOutcome<'a, S>, ParseError> {
    let mut parser = LineParser {
        line,
        at: 0,
        line_number,
        format,
    };
    match parser.parse::<S>(previous_series) {
        Ok(outcome) => Ok(outcome),
        // Skipping the series checks less, so an error may be reported
        // differently (or at a later byte) than a full parse reports it.
        // Errors are rare: the full parse makes the verdict and message.
        Err(_) if S::MODE == SeriesMode::Skip => Ok(
            match parse_line::<FullSample>(line, line_number, format, &[])? {
                LineOutcome::Found(outcome) => LineOutcome::Found(outcome.map_sample(S::from_full)),
                LineOutcome::Nothing => LineOutcome::Nothing,
                LineOutcome::EndOfFile => LineOutcome::EndOfFile,
            },
        ),
        Err(error) => Err(error),
    }
}

/// Parses the series of a sample line that starts at `series_start` (see
/// [`LazySample::parse_series`]).
pub(crate) fn parse_series(
    line: &[u8],
    line_number: usize,
    format: Format,
    series_start: usize,
) -> Result<(Cow<'_, str>, LabelPairs<'_>), ParseError> {
    let mut parser = LineParser {
        line,
        at: series_start,
        line_number,
        format,
    };
    let (name, labels, _) = parser.parse_series(SeriesMode::Parse)?;
    match name {
        Some(name) => Ok((name, labels)),
        None => Err(parser.error(
            series_start,
            "expected metric name before or inside the label set",
        )),
    }
}

/// Byte classes for names, looked up once per byte.
const METRIC_NAME_START: u8 = 1;
const METRIC_NAME_CONTINUE: u8 = 2;
const LABEL_NAME_START: u8 = 4;
const LABEL_NAME_CONTINUE: u8 = 8;

const BYTE_CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        let letter = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut class = 0;
        if letter || b == b':' {
            class |= METRIC_NAME_START | METRIC_NAME_CONTINUE;
        }
        if digit {
            class |= METRIC_NAME_CONTINUE | LABEL_NAME_CONTINUE;
        }
        if letter {
            class |= LABEL_NAME_START | LABEL_NAME_CONTINUE;
        }
        classes[byte] = class;
        byte += 1;
    }
    classes
};

fn is_whitespace(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Longest piece of a bad token quoted back in an error message.
const MAX_QUOTED_TOKEN: usize = 64;

/// Renders a token for an error message, lossily and shortened.
fn quote_token(token: &[u8]) -> String {
    let shown = &token[..token.len().min(MAX_QUOTED_TOKEN)];
    let mut text = format!("{:?}", String::from_utf8_lossy(shown));
    if shown.len() < token.len() {
        text.push_str("...");
    }
    text
}

/// Which escapes a piece of text decodes. Label values and quoted names
/// decode `\\`, `\"` and `\n`; text-format help text only `\\` and `\n`.
/// Any other backslash sequence is kept verbatim, as Prometheus does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escapes {
    WithQuote,
    WithoutQuote,
}

fn unescape(raw: &str, escapes: Escapes) -> String {
    let mut decoded = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            decoded.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => {
                decoded.push('\\');
                chars.next();
            }
            Some('n') => {
                decoded.push('\n');
                chars.next();
            }
            Some('"') if escapes == Escapes::WithQuote => {
                decoded.push('"');
                chars.next();
            }
            _ => decoded.push('\\'),
        }
    }
    decoded
}

/// Label sets up to this size are checked for duplicate names by a linear
/// scan, which beats hashing for the handful of labels real series carry.
/// Beyond it, a hash set keeps a hostile line with many labels from costing
/// quadratic time.
const LINEAR_DUPLICATE_CHECK_LIMIT: usize = 16;

/// Finds repeated label names within one label set.
#[derive(Default)]
struct DuplicateCheck {
    /// Hashes of the names seen so far, built once the set grows past
    /// [`LINEAR_DUPLICATE_CHECK_LIMIT`].
    hashes: Option<(RandomState, HashSet<u64>)>,
}

impl DuplicateCheck {
    /// Whether `name` is already in `labels`; otherwise remembers it (the
    /// caller pushes it next).
    fn is_duplicate(&mut self, labels: &LabelPairs<'_>, name: &str) -> bool {
        let linear_scan =
            |labels: &LabelPairs<'_>| labels.iter().any(|(existing, _)| existing == name);
        if labels.len() < LINEAR_DUPLICATE_CHECK_LIMIT {
            return linear_scan(labels);
        }
        let (state, hashes) = self.hashes.get_or_insert_with(|| {
            let state = RandomState::new();
            let hashes = labels
                .iter()
                .map(|(existing, _)| state.hash_one(existing.as_ref()))
                .collect();
            (state, hashes)
        });
        // A hash hit is confirmed by a scan; hits are rare with random keys.
        let hash = state.hash_one(name);
        if hashes.contains(&hash) && linear_scan(labels) {
            return true;
        }
        hashes.insert(hash);
        false
    }
}

pub(crate) struct LineParser<'a> {
    line: &'a [u8],
    at: usize,
    line_number: usize,
    format: Format,
}

impl<'a> LineParser<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line_number,
            column: at + 1,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.line.get(self.at).copied()
    }

    fn at_end(&self) -> bool {
        self.at >= self.line.len()
    }

    /// Skips spaces and tabs; returns whether there were any.
    fn skip_whitespace(&mut self) -> bool {
        let start = self.at;
        while self.at < self.line.len() && is_whitespace(self.line[self.at]) {
            self.at += 1;
        }
        self.at > start
    }

    /// Takes bytes up to the next space, tab or end of line.
    fn take_token(&mut self) -> &'a [u8] {
        let line: &'a [u8] = self.line;
        let start = self.at;
        while self.at < line.len() && !is_whitespace(line[self.at]) {
            self.at += 1;
        }
        &line[start..self.at]
    }

    /// The rest of the line as UTF-8.
    fn rest_as_str(&mut self) -> Result<&'a str, ParseError> {
        let line: &'a [u8] = self.line;
        let rest = &line[self.at..];
        let text = std::str::from_utf8(rest)
            .map_err(|error| self.error(self.at + error.valid_up_to(), "invalid UTF-8"))?;
        self.at = line.len();
        Ok(text)
    }

    fn parse<S: SampleForm<'a>>(
        &mut self,
        previous_series: &[u8],
    ) -> Result<LineOutcome<'a, S>, ParseError> {
        if self.format == Format::Text {
            self.skip_whitespace();
            if self.at_end() {
                return Ok(LineOutcome::Nothing);
            }
        } else if self.line.is_empty() {
            return Err(self.error(0, "unexpected empty line in OpenMetrics input"));
        }
        if self.peek() == Some(b'#') {
            return self.parse_hash_line();
        }
        S::parse(self, previous_series).map(|sample| LineOutcome::Found(Outcome::Sample(sample)))
    }

    /// A line starting with `#`: metadata, a comment, or `# EOF`.
    fn parse_hash_line<S>(&mut self) -> Result<LineOutcome<'a, S>, ParseError> {
        if self.format == Format::OpenMetrics {
            if self.line == b"# EOF" {
                return Ok(LineOutcome::EndOfFile);
            }
            if self.line.starts_with(b"# EOF") {
                return Err(self.error(5, "unexpected text after \"# EOF\""));
            }
        }
        self.at += 1;
        if !self.skip_whitespace() {
            return match self.format {
                Format::Text => Ok(LineOutcome::Nothing),
                Format::OpenMetrics => Err(self.error(self.at, "expected a space after '#'")),
            };
        }
        let keyword_start = self.at;
        let keyword = self.take_token();
        let keyword_ends_line = self.at_end();
        match (keyword, self.format) {
            (b"HELP", _) => self.parse_help(keyword_ends_line),
            (b"TYPE", _) => self.parse_type(keyword_ends_line),
            (b"UNIT", Format::OpenMetrics) => self.parse_unit(keyword_ends_line),
            (_, Format::Text) => Ok(LineOutcome::Nothing),
            (_, Format::OpenMetrics) => Err(self.error(
                keyword_start,
                "expected HELP, TYPE, UNIT or EOF after '#' (OpenMetrics has no comments)",
            )),
        }
    }

    /// The metric name of a metadata line, after its keyword.
    fn parse_metadata_name(&mut self, keyword: &str) -> Result<Cow<'a, str>, ParseError> {
        self.skip_whitespace();
        let name_start = self.at;
        let name = match self.peek() {
            Some(b'"') => {
                let name = self.parse_quoted(Escapes::WithQuote)?;
                if name.is_empty() {
                    return Err(self.error(name_start, "metric name must not be empty"));
                }
                name
            }
            Some(byte) if BYTE_CLASSES[usize::from(byte)] & METRIC_NAME_START != 0 => {
                Cow::Borrowed(self.parse_plain_name(METRIC_NAME_CONTINUE))
            }
            _ => {
                return Err(self.error(name_start, format!("expected metric name after {keyword}")));
            }
        };
        if !self.at_end() && !self.skip_whitespace() {
            return Err(self.error(
                self.at,
                format!("expected a space after metric name {name:?}"),
            ));
        }
        Ok(name)
    }

    fn parse_help<S>(&mut self, keyword_ends_line: bool) -> Result<LineOutcome<'a, S>, ParseError> {
        if keyword_ends_line {
            return Err(self.error(self.at, "expected metric name after HELP"));
        }
        let metric = self.parse_metadata_name("HELP")?;
        let raw = self.rest_as_str()?;
        let escapes = match self.format {
            Format::Text => Escapes::WithoutQuote,
            Format::OpenMetrics => Escapes::WithQuote,
        };
        let text = if raw.contains('\\') {
            Cow::Owned(unescape(raw, escapes))
        } else {
            Cow::Borrowed(raw)
        };
        Ok(LineOutcome::Found(Outcome::Metadata(Metadata::Help {
            metric,
            text,
        })))
    }

    fn parse_type<S>(&mut self, keyword_ends_line: bool) -> Result<LineOutcome<'a, S>, ParseError> {
        if keyword_ends_line {
            return Err(self.error(self.at, "expected metric name after TYPE"));
        }
        let metric = self.parse_metadata_name("TYPE")?;
        let kind_start = self.at;
        let keyword = self.take_token();
        if keyword.is_empty() {
            return Err(self.error(
                kind_start,
                format!("expected metric type after metric name {metric:?}"),
            ));
        }
        let kind = MetricType::from_keyword(keyword).ok_or_else(|| {
            self.error(
                kind_start,
                format!("unknown metric type {}", quote_token(keyword)),
            )
        })?;
        self.skip_whitespace();
        if !self.at_end() {
            return Err(self.error(self.at, "unexpected text after metric type"));
        }
        Ok(LineOutcome::Found(Outcome::Metadata(Metadata::Type {
            metric,
            kind,
        })))
    }

    fn parse_unit<S>(&mut self, keyword_ends_line: bool) -> Result<LineOutcome<'a, S>, ParseError> {
        if keyword_ends_line {
            return Err(self.error(self.at, "expected metric name after UNIT"));
        }
        let metric = self.parse_metadata_name("UNIT")?;
        let unit_start = self.at;
        let unit = self.take_token();
        let unit = std::str::from_utf8(unit)
            .map_err(|error| self.error(unit_start + error.valid_up_to(), "invalid UTF-8"))?;
        self.skip_whitespace();
        if !self.at_end() {
            return Err(self.error(self.at, "unexpected text after unit"));
        }
        Ok(LineOutcome::Found(Outcome::Metadata(Metadata::Unit {
            metric,
            unit: Cow::Borrowed(unit),
        })))
    }

    /// Scans `[start][continue]*` where the first byte is already known to
    /// be a valid start byte. Names are ASCII, so the slice is valid UTF-8.
    fn parse_plain_name(&mut self, continue_class: u8) -> &'a str {
        let line: &'a [u8] = self.line;
        let start = self.at;
        self.at += 1;
        while self.at < line.len() && BYTE_CLASSES[usize::from(line[self.at])] & continue_class != 0
        {
            self.at += 1;
        }
        // Only ASCII name bytes were taken, so this never fails; the empty
        // fallback keeps the input path free of panics regardless.
        std::str::from_utf8(&line[start..self.at]).unwrap_or_default()
    }

    /// A double-quoted string starting at the cursor, unescaped. Borrowed
    /// when it holds no backslash.
    fn parse_quoted(&mut self, escapes: Escapes) -> Result<Cow<'a, str>, ParseError> {
        let line: &'a [u8] = self.line;
        let start = self.at + 1;
        let mut index = start;
        let mut has_backslash = false;
        loop {
            match line.get(index) {
                None => {
                    return Err(self.error(line.len(), "expected '\"' to close the quoted string"));
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    has_backslash = true;
                    index += 2;
                }
                Some(_) => index += 1,
            }
        }
        let raw = std::str::from_utf8(&line[start..index])
            .map_err(|error| self.error(start + error.valid_up_to(), "invalid UTF-8"))?;
        self.at = index + 1;
        Ok(if has_backslash {
            Cow::Owned(unescape(raw, escapes))
        } else {
            Cow::Borrowed(raw)
        })
    }

    /// The metric name and label set of a sample, with the cursor on its
    /// first byte; leaves the cursor after the series and any whitespace
    /// that follows. Returns the name (`None` when neither written before
    /// the label set nor inside it, or when the label set was skipped), the
    /// labels (empty when skipped) and where the series text ends.
    ///
    /// Every decision here looks only at bytes of the series text, and at
    /// whether the byte after a bare name is whitespace or the line's end
    /// (which the caller's value parse requires anyway), so a series text
    /// parses the same wherever it appears.
    #[inline]
    fn parse_series(
        &mut self,
        mode: SeriesMode,
    ) -> Result<(Option<Cow<'a, str>>, LabelPairs<'a>, usize), ParseError> {
        let name_start = self.at;
        let mut name: Option<Cow<'a, str>> = None;
        match self.peek() {
            Some(byte) if BYTE_CLASSES[usize::from(byte)] & METRIC_NAME_START != 0 => {
                name = Some(Cow::Borrowed(self.parse_plain_name(METRIC_NAME_CONTINUE)));
            }
            Some(b'{') => {}
            Some(b'"') => {
                return Err(self.error(
                    name_start,
                    "expected metric name (a quoted metric name goes inside the braces: {\"name\"})",
                ));
            }
            _ => return Err(self.error(name_start, "expected metric name")),
        }
        let name_end = self.at;
        let mut labels = Vec::new();
        // Whitespace may separate the name from its label set, as Go's
        // text parser allows; a value never starts with '{'.
        let space_after_name = self.skip_whitespace();
        if self.peek() == Some(b'{') {
            match mode {
                SeriesMode::Parse => self.parse_label_set(&mut labels, Some(&mut name))?,
                SeriesMode::Skip => self.skip_label_set()?,
            }
            let series_end = self.at;
            self.skip_whitespace();
            return Ok((name, labels, series_end));
        }
        if !space_after_name && !self.at_end() {
            return Err(self.error(
                self.at,
                format!(
                    "expected '{{' or a space after metric name {:?}",
                    name.as_deref().unwrap_or_default()
                ),
            ));
        }
        Ok((name, labels, name_end))
    }

    /// Moves the cursor from a label set's `{` to after its closing `}`,
    /// stepping over quoted strings (and the backslash escapes in them).
    /// For a valid label set this ends where [`LineParser::parse_label_set`]
    /// ends, because outside quotes a valid label set holds only names,
    /// `=`, `,` and whitespace. Checks nothing else: an invalid label set
    /// is found when the series is parsed.
    fn skip_label_set(&mut self) -> Result<(), ParseError> {
        let line = self.line;
        let mut index = self.at + 1;
        let mut quoted = false;
        while let Some(&byte) = line.get(index) {
            index += 1;
            match (quoted, byte) {
                (false, b'}') => {
                    self.at = index;
                    return Ok(());
                }
                (false, b'"') | (true, b'"') => quoted = !quoted,
                (true, b'\\') => index += 1,
                _ => {}
            }
        }
        Err(self.error(line.len(), "unterminated label set"))
    }

    /// A sample line from the cursor on. When the series is only
    /// delimited (not parsed) and the line starts with `previous_series`,
    /// the series text of an earlier line, the series is that text if the
    /// delimiting would end it there: always when it ends with the label
    /// set's `}` (delimiting reads the same bytes the same way), and for a
    /// bare name when whitespace and no `{` follow it. That replaces a scan
    /// with quote tracking by a `memcmp` for files that write one series'
    /// samples line after line.
    fn parse_sample<S: SampleForm<'a>>(&mut self, previous_series: &[u8]) -> Result<S, ParseError> {
        let series_start = self.at;
        if S::MODE == SeriesMode::Skip
            && !previous_series.is_empty()
            && self.line[series_start..].starts_with(previous_series)
        {
            let end = series_start + previous_series.len();
            let after = &self.line[end..];
            let same = previous_series.last() == Some(&b'}')
                || match after.iter().position(|&b| !is_whitespace(b)) {
                    // Only whitespace (or nothing) follows: the value is
                    // missing, which the parse below reports.
                    None => true,
                    Some(0) => false,
                    Some(k) => after[k] != b'{',
                };
            if same {
                self.at = end;
                self.skip_whitespace();
                return self.parse_sample_rest::<S>(series_start, None, Vec::new(), end);
            }
        }
        let (name, labels, series_end) = self.parse_series(S::MODE)?;
        let name = match (S::MODE, name) {
            (SeriesMode::Skip, _) => None,
            (SeriesMode::Parse, Some(name)) => Some(name),
            (SeriesMode::Parse, None) => {
                return Err(self.error(
                    series_start,
                    "expected metric name before or inside the label set",
                ));
            }
        };
        self.parse_sample_rest::<S>(series_start, name, labels, series_end)
    }

    /// The value, timestamp and exemplar of a sample line, with the cursor
    /// after the series and the whitespace that follows it.
    fn parse_sample_rest<S: SampleForm<'a>>(
        &mut self,
        series_start: usize,
        name: Option<Cow<'a, str>>,
        labels: LabelPairs<'a>,
        series_end: usize,
    ) -> Result<S, ParseError> {
        if self.at_end() {
            return Err(self.error(self.at, "expected value"));
        }
        let value = self.parse_value()?;
        self.skip_whitespace();

        let mut timestamp_ms = None;
        let mut exemplar = None;
        if !self.at_end() && self.peek() != Some(b'#') {
            timestamp_ms = Some(self.parse_timestamp()?);
            self.skip_whitespace();
        }
        if self.peek() == Some(b'#') {
            if self.format == Format::Text {
                return Err(self.error(
                    self.at,
                    "exemplars are only allowed in OpenMetrics (found '#' after the value)",
                ));
            }
            exemplar = Some(Box::new(self.parse_exemplar()?));
        }
        if !self.at_end() {
            return Err(self.error(self.at, "expected end of line after timestamp"));
        }
        let sample = LazySample {
            line: self.line,
            line_number: self.line_number,
            format: self.format,
            series_start,
            series_end,
            value,
            timestamp_ms,
            exemplar,
        };
        Ok(S::new(name, labels, sample))
    }

    /// A sample with its series parsed, as [`Entry::Sample`]: the full
    /// path on its own (the lazy path's shared code, returning through
    /// [`LazySample`], measured about 20% slower here). The tests check
    /// that both paths agree.
    fn parse_entry(&mut self) -> Result<Entry<'a>, ParseError> {
        let name_start = self.at;
        let mut name: Option<Cow<'a, str>> = None;
        match self.peek() {
            Some(byte) if BYTE_CLASSES[usize::from(byte)] & METRIC_NAME_START != 0 => {
                name = Some(Cow::Borrowed(self.parse_plain_name(METRIC_NAME_CONTINUE)));
            }
            Some(b'{') => {}
            Some(b'"') => {
                return Err(self.error(
                    name_start,
                    "expected metric name (a quoted metric name goes inside the braces: {\"name\"})",
                ));
            }
            _ => return Err(self.error(name_start, "expected metric name")),
        }
        let mut labels = Vec::new();
        // Whitespace may separate the name from its label set, as Go's
        // text parser allows; a value never starts with '{'.
        let space_after_name = self.skip_whitespace();
        if self.peek() == Some(b'{') {
            self.parse_label_set(&mut labels, Some(&mut name))?;
            self.skip_whitespace();
        } else if !space_after_name && !self.at_end() {
            return Err(self.error(
                self.at,
                format!(
                    "expected '{{' or a space after metric name {:?}",
                    name.as_deref().unwrap_or_default()
                ),
            ));
        }
        let Some(name) = name else {
            return Err(self.error(
                name_start,
                "expected metric name before or inside the label set",
            ));
        };
        if self.at_end() {
            return Err(self.error(self.at, "expected value"));
        }
        let value = self.parse_value()?;
        self.skip_whitespace();

        let mut timestamp_ms = None;
        let mut exemplar = None;
        if !self.at_end() && self.peek() != Some(b'#') {
            timestamp_ms = Some(self.parse_timestamp()?);
            self.skip_whitespace();
        }
        if self.peek() == Some(b'#') {
            if self.format == Format::Text {
                return Err(self.error(
                    self.at,
                    "exemplars are only allowed in OpenMetrics (found '#' after the value)",
                ));
            }
            exemplar = Some(self.parse_exemplar()?);
        }
        if !self.at_end() {
            return Err(self.error(self.at, "expected end of line after timestamp"));
        }
        Ok(Entry::Sample {
            name,
            labels,
            value,
            timestamp_ms,
            exemplar,
        })
    }

    fn parse_value(&mut self) -> Result<f64, ParseError> {
        let start = self.at;
        let token = self.take_token();
        number::parse_value(token).map_err(|error| {
            let message = match error {
                NumberError::OutOfRange => format!("value {} is out of range", quote_token(token)),
                NumberError::Hexadecimal => {
                    format!("hexadecimal value {} is not supported", quote_token(token))
                }
                NumberError::Syntax | NumberError::NotFinite => {
                    format!("invalid value {}", quote_token(token))
                }
            };
            self.error(start, message)
        })
    }

    /// A timestamp token: integer milliseconds in the text format, decimal
    /// seconds in OpenMetrics (also for exemplars).
    fn parse_timestamp(&mut self) -> Result<i64, ParseError> {
        let start = self.at;
        let token = self.take_token();
        let parsed = match self.format {
            Format::Text => number::parse_integer_milliseconds(token),
            Format::OpenMetrics => number::parse_seconds_as_milliseconds(token),
        };
        parsed.map_err(|error| {
            let message = match (error, self.format) {
                (NumberError::OutOfRange, _) => {
                    format!("timestamp {} is out of range", quote_token(token))
                }
                (NumberError::NotFinite, _) => {
                    format!("timestamp {} is not finite", quote_token(token))
                }
                (_, Format::Text) => format!(
                    "invalid timestamp {} (expected integer milliseconds)",
                    quote_token(token)
                ),
                (_, Format::OpenMetrics) => format!(
                    "invalid timestamp {} (expected decimal seconds)",
                    quote_token(token)
                ),
            };
            self.error(start, message)
        })
    }

    /// ` # {labels} value [timestamp]`, with the cursor on the `#`.
    fn parse_exemplar(&mut self) -> Result<Exemplar<'a>, ParseError> {
        self.at += 1;
        if !self.skip_whitespace() {
            return Err(self.error(self.at, "expected a space after '#' of the exemplar"));
        }
        if self.peek() != Some(b'{') {
            return Err(self.error(self.at, "expected '{' to start the exemplar's label set"));
        }
        let mut labels = Vec::new();
        self.parse_label_set(&mut labels, None)?;
        self.skip_whitespace();
        if self.at_end() {
            return Err(self.error(self.at, "expected exemplar value"));
        }
        let value = self.parse_value()?;
        self.skip_whitespace();
        let mut timestamp_ms = None;
        if !self.at_end() {
            let line: &'a [u8] = self.line;
            let start = self.at;
            let exact = self.parse_timestamp()?;
            // Prometheus reads an exemplar's time as a float of seconds and
            // truncates its product with 1000 (`int64(ts * 1000)`), unlike
            // a sample's; stored exemplars must have its times, so this
            // does too (`1.2949998` is 1294 ms, not 1295).
            let token = line.get(start..self.at).unwrap_or_default();
            timestamp_ms = Some(match number::parse_value(token) {
                Ok(seconds) if (seconds * 1000.0).abs() < 9.2e18 => (seconds * 1000.0) as i64,
                _ => exact,
            });
            self.skip_whitespace();
            if !self.at_end() {
                return Err(self.error(self.at, "expected end of line after exemplar"));
            }
        }
        Ok(Exemplar {
            labels,
            value,
            timestamp_ms,
        })
    }

    /// `{name="value",...}` with the cursor on `{`. When `metric_name` is
    /// given, a lone quoted string is the metric name (Prometheus 3 UTF-8
    /// names: `{"my.metric", "label.name"="v"}`).
    fn parse_label_set(
        &mut self,
        labels: &mut LabelPairs<'a>,
        mut metric_name: Option<&mut Option<Cow<'a, str>>>,
    ) -> Result<(), ParseError> {
        self.at += 1;
        let mut duplicate_check = DuplicateCheck::default();
        loop {
            self.skip_whitespace();
            let label_start = self.at;
            let (label_name, quoted) = match self.peek() {
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'"') => (self.parse_quoted(Escapes::WithQuote)?, true),
                Some(byte) if BYTE_CLASSES[usize::from(byte)] & LABEL_NAME_START != 0 => (
                    Cow::Borrowed(self.parse_plain_name(LABEL_NAME_CONTINUE)),
                    false,
                ),
                Some(_) => return Err(self.error(label_start, "expected label name or '}'")),
                None => {
                    return Err(self.error(
                        label_start,
                        "expected label name or '}' (unterminated label set)",
                    ));
                }
            };
            self.skip_whitespace();
            let is_metric_name =
                quoted && metric_name.is_some() && matches!(self.peek(), Some(b',' | b'}'));
            if is_metric_name {
                if label_name.is_empty() {
                    return Err(self.error(label_start, "metric name must not be empty"));
                }
                if let Some(slot) = metric_name.as_deref_mut() {
                    if slot.is_some() {
                        return Err(self.error(label_start, "metric name given twice"));
                    }
                    *slot = Some(label_name);
                }
            } else {
                if label_name.is_empty() {
                    return Err(self.error(label_start, "label name must not be empty"));
                }
                if self.peek() != Some(b'=') {
                    return Err(self.error(
                        self.at,
                        format!("expected '=' after label name {label_name:?}"),
                    ));
                }
                self.at += 1;
                self.skip_whitespace();
                if self.peek() != Some(b'"') {
                    return Err(self.error(
                        self.at,
                        format!("expected '\"' to start the value of label {label_name:?}"),
                    ));
                }
                let value = self.parse_quoted(Escapes::WithQuote)?;
                if duplicate_check.is_duplicate(labels, &label_name) {
                    return Err(
                        self.error(label_start, format!("duplicate label name {label_name:?}"))
                    );
                }
                labels.push((label_name, value));
            }
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => {
                    return Err(self.error(self.at, "expected ',' or '}' after label"));
                }
            }
        }
    }
}
