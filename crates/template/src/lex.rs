//! The lexer: splits template text into text runs and action tokens, handling
//! `{{- ` / ` -}}` trim markers and `{{/* comments */}}` as Go's
//! `text/template/parse` lexer does.

/// One token. `pos` is the byte offset of its start in the source text.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub kind: Kind,
    pub pos: usize,
    /// For `Str`/`RawStr`: the decoded value; for names: the name; for
    /// numbers: the literal text.
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Left,
    Right,
    Space,
    /// `.Name` (text holds `Name`).
    Field,
    /// `$name` or `$` (text holds the whole `$name`).
    Variable,
    Dot,
    Ident,
    Str,
    Char,
    Number,
    Bool,
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Eof,
    /// A printable ASCII character with no meaning in an action; the
    /// parser reports it as unexpected, as Go's does.
    Other,
    /// A lexing error (text holds the message); always the last token.
    Error,
}

/// A lexing error at a byte offset.
#[derive(Debug)]
pub struct LexError {
    pub pos: usize,
    pub message: String,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes the whole text. A lexing error becomes a final `Error` token, so
/// the parser reports whichever problem comes first in the text, as Go's
/// concurrent lexer and parser do.
pub fn lex(input: &str) -> Vec<Item> {
    let mut lexer = Lexer {
        input,
        pos: 0,
        items: Vec::new(),
        paren_depth: 0,
    };
    if let Err(e) = lexer.run() {
        lexer.push(Kind::Error, e.pos, e.message);
    }
    lexer.items
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    items: Vec<Item>,
    paren_depth: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        self.input.get(self.pos..).unwrap_or("")
    }

    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            message: message.into(),
        })
    }

    fn push(&mut self, kind: Kind, pos: usize, text: impl Into<String>) {
        self.items.push(Item {
            kind,
            pos,
            text: text.into(),
        });
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn run(&mut self) -> Result<(), LexError> {
        // Whether the previous action ended with ` -}}`.
        let mut trim_next = false;
        loop {
            let start = self.pos;
            let Some(offset) = self.rest().find(LEFT) else {
                let mut text = self.rest();
                if trim_next {
                    text = text.trim_start_matches([' ', '\t', '\r', '\n']);
                }
                if !text.is_empty() {
                    let text = text.to_string();
                    self.push(Kind::Text, start, text);
                }
                self.push(Kind::Eof, self.input.len(), "");
                return Ok(());
            };
            let left_pos = start + offset;
            let after = self.input.get(left_pos + LEFT.len()..).unwrap_or("");
            let left_trim =
                after.len() >= 2 && after.as_bytes()[0] == b'-' && is_space(after.as_bytes()[1]);
            let mut text = self.input.get(start..left_pos).unwrap_or("");
            if trim_next {
                text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            }
            if left_trim {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            }
            if !text.is_empty() {
                let text = text.to_string();
                self.push(Kind::Text, start, text);
            }
            self.pos = left_pos + LEFT.len();
            if left_trim {
                self.pos += 2;
            }
            // A comment must follow the delimiter (and trim marker) directly.
            if self.rest().starts_with("/*") {
                let comment_start = self.pos;
                let Some(end) = self.rest().find("*/") else {
                    return self.err(comment_start, "unclosed comment");
                };
                self.pos += end + 2;
                let rest = self.rest();
                if rest.starts_with(RIGHT) {
                    self.pos += RIGHT.len();
                    trim_next = false;
                } else if rest.len() >= 2 + RIGHT.len()
                    && is_space(rest.as_bytes()[0])
                    && rest.as_bytes()[1] == b'-'
                    && rest[2..].starts_with(RIGHT)
                {
                    self.pos += 2 + RIGHT.len();
                    trim_next = true;
                } else {
                    return self.err(comment_start, "comment ends before closing delimiter");
                }
                continue;
            }
            self.push(Kind::Left, left_pos, LEFT);
            trim_next = self.lex_action()?;
        }
    }

    /// Lexes inside an action up to and including its closing delimiter.
    /// Returns whether the action closed with a right trim marker.
    fn lex_action(&mut self) -> Result<bool, LexError> {
        self.paren_depth = 0;
        loop {
            let rest = self.rest();
            let bytes = rest.as_bytes();
            if bytes.len() >= 2
                && is_space(bytes[0])
                && bytes[1] == b'-'
                && rest[2..].starts_with(RIGHT)
            {
                if self.paren_depth > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                self.push(Kind::Right, self.pos + 2, RIGHT);
                self.pos += 2 + RIGHT.len();
                return Ok(true);
            }
            if rest.starts_with(RIGHT) {
                if self.paren_depth > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                self.push(Kind::Right, self.pos, RIGHT);
                self.pos += RIGHT.len();
                return Ok(false);
            }
            let start = self.pos;
            let Some(c) = self.peek_char() else {
                return self.err(start, "unclosed action");
            };
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    let mut n = bytes.iter().take_while(|&&b| is_space(b)).count();
                    // Leave the last space to the loop top when it starts
                    // a ` -}}` trim marker.
                    if n > 1 && rest[n..].starts_with('-') && rest[n + 1..].starts_with(RIGHT) {
                        n -= 1;
                    }
                    self.pos += n;
                    self.push(Kind::Space, start, " ");
                }
                '=' => {
                    self.pos += 1;
                    self.push(Kind::Assign, start, "=");
                }
                ':' => {
                    if !rest.starts_with(":=") {
                        return self.err(start, "expected :=");
                    }
                    self.pos += 2;
                    self.push(Kind::Declare, start, ":=");
                }
                '|' => {
                    self.pos += 1;
                    self.push(Kind::Pipe, start, "|");
                }
                ',' => {
                    self.pos += 1;
                    self.push(Kind::Comma, start, ",");
                }
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.push(Kind::LParen, start, "(");
                }
                ')' => {
                    self.pos += 1;
                    // An unmatched paren is the parser's to report.
                    self.paren_depth = self.paren_depth.saturating_sub(1);
                    self.push(Kind::RParen, start, ")");
                }
                '"' => self.lex_quote()?,
                '`' => {
                    let Some(end) = rest[1..].find('`') else {
                        return self.err(start, "unterminated raw quoted string");
                    };
                    let value = rest[1..1 + end].replace('\r', "");
                    self.pos += end + 2;
                    self.push(Kind::Str, start, value);
                }
                '\'' => self.lex_char()?,
                '$' => {
                    let n = 1 + rest[1..]
                        .chars()
                        .take_while(|&c| is_alnum(c))
                        .map(char::len_utf8)
                        .sum::<usize>();
                    let name = rest[..n].to_string();
                    self.pos += n;
                    self.push(Kind::Variable, start, name);
                }
                '.' => {
                    let next = rest[1..].chars().next();
                    match next {
                        Some(d) if d.is_ascii_digit() => self.lex_number()?,
                        Some(a) if is_alnum(a) => {
                            let n = rest[1..]
                                .chars()
                                .take_while(|&c| is_alnum(c))
                                .map(char::len_utf8)
                                .sum::<usize>();
                            let name = rest[1..1 + n].to_string();
                            self.pos += 1 + n;
                            self.push(Kind::Field, start, name);
                        }
                        _ => {
                            self.pos += 1;
                            self.push(Kind::Dot, start, ".");
                        }
                    }
                }
                '+' | '-' | '0'..='9' => self.lex_number()?,
                c if is_alnum(c) => {
                    let n = rest
                        .chars()
                        .take_while(|&c| is_alnum(c))
                        .map(char::len_utf8)
                        .sum::<usize>();
                    let word = rest[..n].to_string();
                    self.pos += n;
                    let kind = match word.as_str() {
                        "true" | "false" => Kind::Bool,
                        "nil" => Kind::Nil,
                        _ => Kind::Ident,
                    };
                    self.push(kind, start, word);
                }
                c if c.is_ascii_graphic() => {
                    self.pos += 1;
                    self.push(Kind::Other, start, c.to_string());
                }
                c => {
                    return self.err(
                        start,
                        format!("unrecognized character in action: {}", go_rune_repr(c)),
                    );
                }
            }
        }
    }

    fn lex_quote(&mut self) -> Result<(), LexError> {
        let start = self.pos;
        let rest = self.rest();
        let mut chars = rest.char_indices().skip(1);
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if chars.next().is_none_or(|(_, c)| c == '\n') => {
                    return self.err(start, "unterminated quoted string");
                }
                '\n' => return self.err(start, "unterminated quoted string"),
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return self.err(start, "unterminated quoted string");
        };
        let body = &rest[1..end];
        let value = unquote(body, '"').map_err(|message| LexError {
            pos: start,
            message,
        })?;
        self.pos += end + 1;
        self.push(Kind::Str, start, value);
        Ok(())
    }

    fn lex_char(&mut self) -> Result<(), LexError> {
        let start = self.pos;
        let rest = self.rest();
        let mut chars = rest.char_indices().skip(1);
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if chars.next().is_none_or(|(_, c)| c == '\n') => {
                    return self.err(start, "unterminated character constant");
                }
                '\n' => return self.err(start, "unterminated character constant"),
                '\'' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            return self.err(start, "unterminated character constant");
        };
        let value = unquote(&rest[1..end], '\'').map_err(|message| LexError {
            pos: start,
            message,
        })?;
        let mut it = value.chars();
        let (Some(c), None) = (it.next(), it.next()) else {
            return self.err(
                start,
                format!("malformed character constant: {}", &rest[..end + 1]),
            );
        };
        self.pos += end + 1;
        self.push(Kind::Char, start, (c as u32).to_string());
        Ok(())
    }

    fn lex_number(&mut self) -> Result<(), LexError> {
        let start = self.pos;
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let mut i = 0;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let mut digits: &[u8] = b"0123456789_";
        let mut exp: &[u8] = b"eE";
        if bytes.len() > i + 1 && bytes[i] == b'0' {
            match bytes[i + 1] {
                b'x' | b'X' => {
                    i += 2;
                    digits = b"0123456789abcdefABCDEF_";
                    exp = b"pP";
                }
                b'o' | b'O' => {
                    i += 2;
                    digits = b"01234567_";
                    exp = b"";
                }
                b'b' | b'B' => {
                    i += 2;
                    digits = b"01_";
                    exp = b"";
                }
                _ => {}
            }
        }
        while i < bytes.len() && digits.contains(&bytes[i]) {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            while i < bytes.len() && digits.contains(&bytes[i]) {
                i += 1;
            }
        }
        if !exp.is_empty() && i < bytes.len() && exp.contains(&bytes[i]) {
            i += 1;
            if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
                i += 1;
            }
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        let next = rest[i..].chars().next();
        if next.is_some_and(is_alnum) {
            let end = i + rest[i..]
                .chars()
                .take_while(|&c| is_alnum(c) || c == '.')
                .map(char::len_utf8)
                .sum::<usize>();
            return self.err(start, format!("bad number syntax: {:?}", &rest[..end]));
        }
        let text = rest[..i].to_string();
        self.pos += i;
        self.push(Kind::Number, start, text);
        Ok(())
    }
}

/// Go's representation of a rune in lexer errors: `U+0023 '#'`.
fn go_rune_repr(c: char) -> String {
    format!("U+{:04X} '{}'", c as u32, c)
}

/// Decodes Go escape sequences in a quoted literal body.
pub fn unquote(body: &str, quote: char) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    let bad = || "invalid syntax".to_string();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            return Err(bad());
        };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' if quote == '"' => out.push('"'),
            '\'' if quote == '\'' => out.push('\''),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.by_ref().take(n).collect();
                if hex.len() != n {
                    return Err(bad());
                }
                let v = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
                if e == 'x' {
                    // A byte escape: only ASCII bytes form valid UTF-8 alone.
                    if v < 0x80 {
                        out.push(v as u8 as char);
                    } else {
                        out.push('\u{fffd}');
                    }
                } else {
                    out.push(char::from_u32(v).ok_or_else(bad)?);
                }
            }
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                if rest.len() != 2 {
                    return Err(bad());
                }
                let v = u32::from_str_radix(&format!("{e}{rest}"), 8).map_err(|_| bad())?;
                if v > 255 {
                    return Err(bad());
                }
                out.push(if v < 0x80 {
                    v as u8 as char
                } else {
                    '\u{fffd}'
                });
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}
