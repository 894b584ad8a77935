//! The PromQL lexer: query text to tokens, with the byte positions and the
//! error texts Prometheus 3's lexer gives.
//!
//! The lexer is independent of the parser (as Prometheus's is): it tracks
//! open parentheses, braces and brackets itself, and inside `[...]` it
//! reads the duration-expression tokens (`step`, `range`, `min_of`,
//! `max_of`, arithmetic). The whole input is lexed up front; a lexing
//! error ends the token list with an [`Kind::Error`] token, which the
//! parser reports only when it reaches it, so an error found earlier by
//! the parser still comes first.

use crate::ast::AggregateOp;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Eof,
    Error,
    Identifier,
    MetricIdentifier,
    Number,
    Duration,
    String,
    LeftParen,
    RightParen,
    LeftBrace,
    RightBrace,
    LeftBracket,
    RightBracket,
    Comma,
    Eql,
    Colon,
    // Operators.
    Add,
    Div,
    Eqlc,
    EqlRegex,
    Gte,
    Gtr,
    TrimUpper,
    TrimLower,
    Land,
    Lor,
    Lss,
    Lte,
    Lunless,
    Mod,
    Mul,
    Neq,
    NeqRegex,
    Pow,
    Sub,
    At,
    Atan2,
    // Aggregators.
    Aggregator(AggregateOp),
    // Keywords.
    Bool,
    By,
    GroupLeft,
    GroupRight,
    Fill,
    FillLeft,
    FillRight,
    Ignoring,
    Offset,
    Smoothed,
    Anchored,
    On,
    Without,
    // Preprocessors (and the duration-expression functions).
    Start,
    End,
    Step,
    Range,
    MaxOf,
    MinOf,
}

impl Kind {
    fn is_operator(self) -> bool {
        use Kind::*;
        matches!(
            self,
            Add | Div
                | Eqlc
                | EqlRegex
                | Gte
                | Gtr
                | TrimUpper
                | TrimLower
                | Land
                | Lor
                | Lss
                | Lte
                | Lunless
                | Mod
                | Mul
                | Neq
                | NeqRegex
                | Pow
                | Sub
                | At
                | Atan2
        )
    }

    fn is_keyword(self) -> bool {
        use Kind::*;
        matches!(
            self,
            Bool | By
                | GroupLeft
                | GroupRight
                | Fill
                | FillLeft
                | FillRight
                | Ignoring
                | Offset
                | Smoothed
                | Anchored
                | On
                | Without
        )
    }

    /// Whether Prometheus has a fixed spelling for this kind (its
    /// `ItemTypeStr`), which decides how an unexpected token is described.
    fn has_fixed_text(self) -> bool {
        !matches!(
            self,
            Kind::Eof
                | Kind::Error
                | Kind::Identifier
                | Kind::MetricIdentifier
                | Kind::Number
                | Kind::Duration
                | Kind::String
        )
    }
}

/// One token: its kind and where its text is in the input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    pub kind: Kind,
    pub pos: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'a>(&self, input: &'a str) -> &'a str {
        input.get(self.pos..self.end).unwrap_or("")
    }

    /// How Prometheus names this token in "unexpected …" messages (its
    /// `Item.desc`).
    pub fn describe(&self, input: &str) -> String {
        let text = self.text(input);
        if self.kind.has_fixed_text() {
            return self.show(text);
        }
        let what = match self.kind {
            Kind::Eof => return "end of input".to_string(),
            Kind::Error => "error",
            Kind::Identifier => "identifier",
            Kind::MetricIdentifier => "metric identifier",
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Duration => "duration",
            _ => "token",
        };
        format!("{what} {}", self.show(text))
    }

    /// Prometheus's `Item.String`.
    fn show(&self, text: &str) -> String {
        match self.kind {
            Kind::Eof => "EOF".to_string(),
            Kind::Identifier | Kind::MetricIdentifier => go_quote(text),
            k if k.is_keyword() => format!("<{text}>"),
            k if k.is_operator() => format!("<op:{text}>"),
            Kind::Aggregator(_) => format!("<aggr:{text}>"),
            _ if text.len() > 10 => {
                let cut: String = text.chars().take(10).collect();
                format!("{}...", go_quote(&cut))
            }
            _ => go_quote(text),
        }
    }
}

/// A lexing error: where it was found and Prometheus's text for it.
#[derive(Clone, Debug)]
pub(crate) struct LexError {
    pub pos: usize,
    pub message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Statements,
    Braces,
    DurationExpr,
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    paren_depth: i64,
    brace_open: bool,
    bracket_open: bool,
    got_colon: bool,
    got_duration: bool,
    mode: Mode,
    tokens: Vec<Token>,
}

/// Lexes the whole input. Comments are dropped. The last token is `Eof`,
/// or `Error` with the error beside it.
pub(crate) fn lex(input: &str) -> (Vec<Token>, Option<LexError>) {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        paren_depth: 0,
        brace_open: false,
        bracket_open: false,
        got_colon: false,
        got_duration: false,
        mode: Mode::Statements,
        tokens: Vec::new(),
    };
    let error = loop {
        let step = match l.mode {
            Mode::Statements => l.statements(),
            Mode::Braces => l.inside_braces(),
            Mode::DurationExpr => l.duration_expr(),
        };
        match step {
            Ok(true) => {}
            Ok(false) => break None,
            Err(message) => {
                break Some(LexError {
                    pos: l.start,
                    message,
                });
            }
        }
    };
    let mut tokens = l.tokens;
    match &error {
        Some(e) => tokens.push(Token {
            kind: Kind::Error,
            pos: e.pos,
            end: e.pos,
        }),
        None => tokens.push(Token {
            kind: Kind::Eof,
            pos: input.len(),
            end: input.len(),
        }),
    }
    (tokens, error)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_alpha(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_alnum(c: char) -> bool {
    is_alpha(c) || c.is_ascii_digit()
}

type Step = Result<bool, String>;

impl Lexer<'_> {
    fn next(&mut self) -> Option<char> {
        let c = self.input.get(self.pos..)?.chars().next()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn peek(&self) -> Option<char> {
        self.input.get(self.pos..)?.chars().next()
    }

    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
        }
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn is(&self, valid: &str) -> bool {
        self.peek().is_some_and(|c| valid.contains(c))
    }

    fn emit(&mut self, kind: Kind) {
        self.tokens.push(Token {
            kind,
            pos: self.start,
            end: self.pos,
        });
        self.start = self.pos;
    }

    /// Prometheus's lexer overwrites a token it has just emitted when it
    /// finds an error in the same step (a `)` past the open ones): the
    /// error, positioned after that token, takes its place.
    fn error_after_emit(&mut self, message: &str) -> Step {
        self.tokens.pop();
        Err(message.to_string())
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.pos += 1;
        }
        self.ignore();
    }

    fn line_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            self.pos += c.len_utf8();
        }
        // Comments are skipped by the parser; drop them here.
        self.ignore();
    }

    fn statements(&mut self) -> Step {
        if self.brace_open {
            self.mode = Mode::Braces;
            return Ok(true);
        }
        if self.input[self.pos..].starts_with('#') {
            self.line_comment();
            return Ok(true);
        }
        let Some(r) = self.next() else {
            if self.paren_depth != 0 {
                return Err("unclosed left parenthesis".into());
            }
            if self.bracket_open {
                return Err("unclosed left bracket".into());
            }
            return Ok(false);
        };
        match r {
            ',' => self.emit(Kind::Comma),
            c if is_space(c) => self.skip_spaces(),
            '*' => self.emit(Kind::Mul),
            '/' => self.emit(Kind::Div),
            '%' => self.emit(Kind::Mod),
            '+' => self.emit(Kind::Add),
            '-' => self.emit(Kind::Sub),
            '^' => self.emit(Kind::Pow),
            '=' => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Kind::Eqlc);
                }
                Some('~') => return Err("unexpected character after '=': '~'".into()),
                _ => self.emit(Kind::Eql),
            },
            '!' => {
                let t = self.next();
                if t != Some('=') {
                    return Err(format!(
                        "unexpected character after '!': {}",
                        go_quote_rune(t)
                    ));
                }
                self.emit(Kind::Neq);
            }
            '<' => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Kind::Lte);
                }
                Some('/') => {
                    self.next();
                    self.emit(Kind::TrimUpper);
                }
                _ => self.emit(Kind::Lss),
            },
            '>' => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Kind::Gte);
                }
                Some('/') => {
                    self.next();
                    self.emit(Kind::TrimLower);
                }
                _ => self.emit(Kind::Gtr),
            },
            c if c.is_ascii_digit()
                || (c == '.' && self.peek().is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.pos = self.start;
                return self.number_or_duration();
            }
            '"' | '\'' => return self.string(r),
            '`' => return self.raw_string(),
            c if is_alpha(c) || c == ':' => {
                if !self.bracket_open {
                    self.pos = self.start;
                    return self.keyword_or_identifier();
                }
                if c == ':' {
                    if self.got_colon {
                        return Err("unexpected colon ':'".into());
                    }
                    self.emit(Kind::Colon);
                    self.got_colon = true;
                    return Ok(true);
                }
                if is_duration_keyword_start(c) && self.duration_keyword() {
                    return Ok(true);
                }
                return Err(format!(
                    "unexpected character: {}, expected ':'",
                    go_quote_rune(Some(c))
                ));
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Kind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.error_after_emit("unexpected right parenthesis ')'");
                }
            }
            '{' => {
                self.emit(Kind::LeftBrace);
                self.brace_open = true;
                self.mode = Mode::Braces;
            }
            '[' => {
                if self.bracket_open {
                    return Err("unexpected left bracket '['".into());
                }
                self.got_colon = false;
                self.emit(Kind::LeftBracket);
                self.skip_spaces();
                self.bracket_open = true;
                self.mode = Mode::DurationExpr;
            }
            ']' => {
                if !self.bracket_open {
                    return Err("unexpected right bracket ']'".into());
                }
                self.emit(Kind::RightBracket);
                self.bracket_open = false;
            }
            '@' => self.emit(Kind::At),
            c => {
                return Err(format!("unexpected character: {}", go_quote_rune(Some(c))));
            }
        }
        Ok(true)
    }

    fn inside_braces(&mut self) -> Step {
        if self.input[self.pos..].starts_with('#') {
            self.line_comment();
            return Ok(true);
        }
        let Some(r) = self.next() else {
            return Err("unexpected end of input inside braces".into());
        };
        match r {
            c if is_space(c) => self.skip_spaces(),
            c if is_alpha(c) => {
                while self.peek().is_some_and(is_alnum) {
                    self.pos += 1;
                }
                self.emit(Kind::Identifier);
            }
            ',' => self.emit(Kind::Comma),
            '"' | '\'' => return self.string(r),
            '`' => return self.raw_string(),
            '=' => {
                if self.peek() == Some('~') {
                    self.next();
                    self.emit(Kind::EqlRegex);
                } else {
                    self.emit(Kind::Eql);
                }
            }
            '!' => match self.next() {
                Some('~') => self.emit(Kind::NeqRegex),
                Some('=') => self.emit(Kind::Neq),
                other => {
                    return Err(format!(
                        "unexpected character after '!' inside braces: {}",
                        go_quote_rune(other)
                    ));
                }
            },
            '{' => return Err("unexpected left brace '{'".into()),
            '}' => {
                self.emit(Kind::RightBrace);
                self.brace_open = false;
                self.mode = Mode::Statements;
            }
            c => {
                return Err(format!(
                    "unexpected character inside braces: {}",
                    go_quote_rune(Some(c))
                ));
            }
        }
        Ok(true)
    }

    fn duration_expr(&mut self) -> Step {
        let Some(r) = self.next() else {
            return Err("unexpected end of input in duration expression".into());
        };
        match r {
            ']' => {
                self.emit(Kind::RightBracket);
                self.bracket_open = false;
                self.got_colon = false;
                self.mode = Mode::Statements;
            }
            ':' => {
                self.emit(Kind::Colon);
                if !self.got_duration {
                    return self.error_after_emit(
                        "unexpected colon before duration in duration expression",
                    );
                }
                if self.got_colon {
                    return self
                        .error_after_emit("unexpected repeated colon in duration expression");
                }
                self.got_colon = true;
            }
            '(' => {
                self.emit(Kind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(Kind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    return self.error_after_emit("unexpected right parenthesis ')'");
                }
            }
            c if is_space(c) => self.skip_spaces(),
            '+' => self.emit(Kind::Add),
            '-' => self.emit(Kind::Sub),
            '*' => self.emit(Kind::Mul),
            '/' => self.emit(Kind::Div),
            '%' => self.emit(Kind::Mod),
            '^' => self.emit(Kind::Pow),
            ',' => self.emit(Kind::Comma),
            c if is_duration_keyword_start(c) => {
                if !self.duration_keyword() {
                    return Err(format!(
                        "unexpected character in duration expression: {}",
                        go_quote_rune(Some(c))
                    ));
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && self.peek().is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.pos = self.start;
                self.got_duration = true;
                self.mode = Mode::Statements;
                return self.number_or_duration();
            }
            c => {
                return Err(format!(
                    "unexpected character in duration expression: {}",
                    go_quote_rune(Some(c))
                ));
            }
        }
        Ok(true)
    }

    /// `step`, `range`, `max_of`, `min_of` inside brackets.
    fn duration_keyword(&mut self) -> bool {
        while self.peek().is_some_and(is_alpha) {
            self.pos += 1;
        }
        let kind = match self.input[self.start..self.pos]
            .to_ascii_lowercase()
            .as_str()
        {
            "step" => Kind::Step,
            "range" => Kind::Range,
            "max_of" => Kind::MaxOf,
            "min_of" => Kind::MinOf,
            _ => return false,
        };
        self.emit(kind);
        true
    }

    fn number_or_duration(&mut self) -> Step {
        if self.scan_number() {
            self.emit(Kind::Number);
            return Ok(true);
        }
        if self.accept_remaining_duration() {
            self.emit(Kind::Duration);
            return Ok(true);
        }
        Err(format!(
            "bad number or duration syntax: {}",
            go_quote(&self.input[self.start..self.pos])
        ))
    }

    /// Prometheus's `acceptRemainingDuration`; on success the position is
    /// just past the duration.
    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        self.accept("s");
        while self.accept("0123456789") {
            while self.accept("0123456789") {}
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        match self.next() {
            Some(c) if is_alnum(c) => false,
            other => {
                self.backup(other);
                true
            }
        }
    }

    /// Prometheus's `scanNumber`: decimal, hex, octal or float, with `_`
    /// between digits. The scanned text is not necessarily a valid number;
    /// the parser reports that.
    fn scan_number(&mut self) -> bool {
        let initial = self.pos;
        let mut digits = "0123456789";
        if self.accept("0") && self.accept("xX") {
            self.accept("_");
            digits = "0123456789abcdefABCDEF";
        }
        self.accept(".");
        self.accept(digits);
        let mut dot = false;
        let mut exponent = false;
        while self
            .peek()
            .is_some_and(|c| digits.contains(c) || matches!(c, '.' | '_' | 'e' | 'E'))
        {
            if self.is(".") && dot {
                self.accept(".");
                return false;
            }
            if self.is("eE") && exponent {
                self.accept("eE");
                return false;
            }
            if self.accept(".") {
                dot = true;
                if self.accept("_.") || digits.len() > 10 {
                    return false;
                }
                continue;
            }
            if self.accept("eE") {
                exponent = true;
                self.accept("+-");
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            if self.accept("_") {
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            while self.accept(digits) {}
        }
        if self.pos == initial {
            return false;
        }
        !self.peek().is_some_and(is_alnum)
    }

    fn keyword_or_identifier(&mut self) -> Step {
        while self.peek().is_some_and(|c| is_alnum(c) || c == ':') {
            self.pos += 1;
        }
        let word = &self.input[self.start..self.pos];
        let kind = match keyword(&word.to_ascii_lowercase()) {
            Some(k @ (Kind::Fill | Kind::FillLeft | Kind::FillRight)) => {
                let rest = self.input[self.pos..].trim_start_matches(is_space);
                if rest.starts_with('(') {
                    k
                } else {
                    Kind::Identifier
                }
            }
            Some(k) => k,
            None if word.contains(':') => Kind::MetricIdentifier,
            None => Kind::Identifier,
        };
        self.emit(kind);
        Ok(true)
    }

    fn string(&mut self, quote: char) -> Step {
        loop {
            match self.next() {
                Some('\\') => self.escape(quote)?,
                Some('\u{FFFD}') => return Err("invalid UTF-8 rune".into()),
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::String);
        Ok(true)
    }

    fn raw_string(&mut self) -> Step {
        loop {
            match self.next() {
                Some('\u{FFFD}') => return Err("invalid UTF-8 rune".into()),
                None => return Err("unterminated raw string".into()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::String);
        Ok(true)
    }

    /// Checks one escape sequence (the backslash has been read).
    fn escape(&mut self, quote: char) -> Result<(), String> {
        let first = self.next();
        let (mut n, base, max): (u32, u32, u32) = match first {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\') => return Ok(()),
            Some(c) if c == quote => return Ok(()),
            Some('0'..='7') => (3, 8, 255),
            Some('x') => (2, 16, 255),
            Some('u') => (4, 16, 0x10FFFF),
            Some('U') => (8, 16, 0x10FFFF),
            None => return Err("escape sequence not terminated".into()),
            Some(c) => return Err(format!("unknown escape sequence {}", go_unicode(c))),
        };
        let mut ch = if matches!(first, Some('0'..='7')) {
            first
        } else {
            self.next()
        };
        let mut x: u32 = 0;
        while n > 0 {
            let d = ch.and_then(|c| c.to_digit(16)).unwrap_or(16);
            if d >= base {
                return Err(match ch {
                    None => "escape sequence not terminated".into(),
                    Some(c) => format!("illegal character {} in escape sequence", go_unicode(c)),
                });
            }
            x = x.wrapping_mul(base).wrapping_add(d);
            n -= 1;
            if n > 0 {
                ch = self.next();
            }
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            return Err("escape sequence is an invalid Unicode code point".into());
        }
        Ok(())
    }
}

fn is_duration_keyword_start(c: char) -> bool {
    matches!(c.to_ascii_lowercase(), 's' | 'r' | 'm')
}

/// Prometheus's keyword table (lower-cased words).
fn keyword(word: &str) -> Option<Kind> {
    use Kind::*;
    Some(match word {
        "and" => Land,
        "or" => Lor,
        "unless" => Lunless,
        "atan2" => Atan2,
        "offset" => Offset,
        "smoothed" => Smoothed,
        "anchored" => Anchored,
        "by" => By,
        "without" => Without,
        "on" => On,
        "ignoring" => Ignoring,
        "group_left" => GroupLeft,
        "group_right" => GroupRight,
        "fill" => Fill,
        "fill_left" => FillLeft,
        "fill_right" => FillRight,
        "bool" => Bool,
        "start" => Start,
        "end" => End,
        "step" => Step,
        "range" => Range,
        "max_of" => MaxOf,
        "min_of" => MinOf,
        "inf" | "nan" => Number,
        other => Aggregator(AggregateOp::from_name(other)?),
    })
}

/// Go's `%q` of a string.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_go_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// Go's `%q` of a rune (`None` is Go's end of input, -1).
pub(crate) fn go_quote_rune(c: Option<char>) -> String {
    let mut out = String::from("'");
    push_go_escaped(&mut out, c.unwrap_or('\u{FFFD}'), '\'');
    out.push('\'');
    out
}

/// Go's `%#U`: `U+0071 'q'`.
fn go_unicode(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

fn push_go_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if c.is_control() => {
            if (c as u32) < 0x10000 {
                out.push_str(&format!("\\u{:04x}", c as u32));
            } else {
                out.push_str(&format!("\\U{:08x}", c as u32));
            }
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<Kind> {
        lex(input).0.iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens() {
        use Kind::*;
        assert_eq!(
            kinds("sum by (a) (rate(x{y=~\"z\"}[5m:1m])) offset 1h"),
            vec![
                Aggregator(AggregateOp::Sum),
                By,
                LeftParen,
                Identifier,
                RightParen,
                LeftParen,
                Identifier,
                LeftParen,
                Identifier,
                LeftBrace,
                Identifier,
                EqlRegex,
                String,
                RightBrace,
                LeftBracket,
                Duration,
                Colon,
                Duration,
                RightBracket,
                RightParen,
                RightParen,
                Offset,
                Duration,
                Eof
            ]
        );
        assert_eq!(
            kinds("a:b 0x1F 1e3 .5 Inf"),
            vec![MetricIdentifier, Number, Number, Number, Number, Eof]
        );
        assert_eq!(
            kinds("x[step()+5m]"),
            vec![
                Identifier,
                LeftBracket,
                Step,
                LeftParen,
                RightParen,
                Add,
                Duration,
                RightBracket,
                Eof
            ]
        );
        assert_eq!(
            kinds("fill + fill(1)"),
            vec![Identifier, Add, Fill, LeftParen, Number, RightParen, Eof]
        );
    }

    #[test]
    fn errors() {
        for (input, pos, message) in [
            ("sum(up", 6, "unclosed left parenthesis"),
            ("up)", 3, "unexpected right parenthesis ')'"),
            ("foo{", 4, "unexpected end of input inside braces"),
            ("\"abc", 0, "unterminated quoted string"),
            ("a[5m", 4, "unclosed left bracket"),
            ("a[", 2, "unexpected end of input in duration expression"),
            ("1..2", 0, "bad number or duration syntax: \"1..\""),
            ("\"\\q\"", 0, "unknown escape sequence U+0071 'q'"),
            ("a != b !", 7, "unexpected character after '!': '\u{FFFD}'"),
            ("a ~ b", 2, "unexpected character: '~'"),
        ] {
            let (_, e) = lex(input);
            let e = e.unwrap_or_else(|| panic!("{input}: no error"));
            assert_eq!((e.pos, e.message.as_str()), (pos, message), "{input}");
        }
    }
}
