//! The parser: turns lexer tokens into a tree of nodes per template, with
//! `{{define}}` and `{{block}}` bodies split out as their own templates, and
//! checks at parse time what Go checks (undefined variables and functions,
//! `break` outside `range`, non-executable pipeline stages).

use crate::lex::{self, Item, Kind};
use std::collections::HashSet;

/// A list of nodes.
pub type List = Vec<Node>;

#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    Range(Control),
    With(Control),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

/// The shared shape of `if`, `range` and `with`.
#[derive(Debug)]
pub struct Control {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: List,
    pub else_list: Option<List>,
}

#[derive(Debug)]
pub struct Pipe {
    pub pos: usize,
    /// Declared or assigned variables (`$x :=`, `$i, $v :=`, `$x =`).
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug)]
pub struct Command {
    pub pos: usize,
    /// The command's source text, for error context.
    pub text: String,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub enum Arg {
    /// `.A.B`: a field chain on dot, with its position (Go's: where the
    /// chained part starts when there is one).
    Field(usize, Vec<String>),
    Dot,
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// `$x.A.B`, with its position.
    Var(usize, String, Vec<String>),
    /// A function name.
    Ident(String),
    /// `(pipeline)`
    Pipe(Box<Pipe>),
    /// `(pipeline).A.B`
    Chain(Box<Arg>, Vec<String>),
}

/// A parse error at a byte offset.
#[derive(Debug)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

/// One parsed template body.
#[derive(Debug)]
pub struct Parsed {
    pub name: String,
    pub list: List,
}

/// Nesting depth allowed for parentheses and control structures, so deep
/// input cannot overflow the stack. Kept below the executor's depth limit
/// (`exec::MAX_DEPTH`) so that anything that parses can also run.
const MAX_NESTING: usize = 100;

/// Parses `text`; the first result is the template `name` itself, followed
/// by every `{{define}}`/`{{block}}` inside it.
pub fn parse(
    name: &str,
    text: &str,
    is_func: &dyn Fn(&str) -> bool,
) -> Result<Vec<Parsed>, ParseError> {
    let items = lex::lex(text);
    let mut parser = Parser {
        items,
        index: 0,
        text,
        is_func,
        vars: vec!["$".to_string()],
        range_depth: 0,
        nesting: 0,
        defined: Vec::new(),
        seen_names: HashSet::new(),
    };
    let list = parser.parse_top()?;
    let mut out = vec![Parsed {
        name: name.to_string(),
        list,
    }];
    out.append(&mut parser.defined);
    Ok(out)
}

struct Parser<'a> {
    items: Vec<Item>,
    index: usize,
    text: &'a str,
    is_func: &'a dyn Fn(&str) -> bool,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    range_depth: usize,
    nesting: usize,
    defined: Vec<Parsed>,
    seen_names: HashSet<String>,
}

/// How an item list ended.
enum ListEnd {
    Eof,
    End(usize),
    Else(usize),
}

impl Parser<'_> {
    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            pos,
            message: message.into(),
        })
    }

    fn peek(&self) -> &Item {
        static EOF: Item = Item {
            kind: Kind::Eof,
            pos: 0,
            text: String::new(),
        };
        self.items.get(self.index).unwrap_or(&EOF)
    }

    fn next(&mut self) -> Item {
        let item = self.peek().clone();
        if self.index < self.items.len() {
            self.index += 1;
        }
        item
    }

    /// The next item that is not a space.
    fn next_non_space(&mut self) -> Item {
        loop {
            let item = self.next();
            if item.kind != Kind::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> &Item {
        while self.peek().kind == Kind::Space {
            self.index += 1;
        }
        self.peek()
    }

    fn unexpected<T>(&self, item: &Item, context: &str) -> Result<T, ParseError> {
        if item.kind == Kind::Error {
            return self.err(item.pos, item.text.clone());
        }
        let what = describe(item);
        self.err(item.pos, format!("unexpected {what} in {context}"))
    }

    fn expect_right(&mut self, context: &str) -> Result<(), ParseError> {
        let item = self.next_non_space();
        if item.kind != Kind::Right {
            return self.unexpected(&item, context);
        }
        Ok(())
    }

    fn parse_top(&mut self) -> Result<List, ParseError> {
        let mut list = Vec::new();
        loop {
            let item = self.next();
            match item.kind {
                Kind::Eof => return Ok(list),
                Kind::Text => list.push(Node::Text(item.text)),
                Kind::Left => {
                    let save = self.index;
                    let word = self.next_non_space();
                    if word.kind == Kind::Ident && word.text == "define" {
                        self.parse_define(word.pos)?;
                        continue;
                    }
                    self.index = save;
                    match self.parse_action()? {
                        Ok(node) => list.push(node),
                        Err(ListEnd::End(pos)) => return self.err(pos, "unexpected {{end}}"),
                        Err(ListEnd::Else(pos)) => return self.err(pos, "unexpected {{else}}"),
                        Err(ListEnd::Eof) => return Ok(list),
                    }
                }
                _ => return self.unexpected(&item, "input"),
            }
        }
    }

    fn parse_define(&mut self, pos: usize) -> Result<(), ParseError> {
        let name = self.next_non_space();
        if name.kind != Kind::Str {
            return self.unexpected(&name, "define clause");
        }
        self.expect_right("define clause")?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let saved_range = std::mem::take(&mut self.range_depth);
        let (list, end) = self.parse_list()?;
        self.vars = saved_vars;
        self.range_depth = saved_range;
        match end {
            ListEnd::End(_) => {}
            ListEnd::Else(p) => return self.err(p, "unexpected {{else}} in define clause"),
            ListEnd::Eof => return self.err(pos, "unexpected EOF"),
        }
        self.add_defined(pos, name.text, list)
    }

    fn add_defined(&mut self, pos: usize, name: String, list: List) -> Result<(), ParseError> {
        if !self.seen_names.insert(name.clone()) && !is_empty(&list) {
            // Go rejects two non-empty definitions in one parse.
            if let Some(old) = self.defined.iter().find(|p| p.name == name)
                && !is_empty(&old.list)
            {
                return self.err(
                    pos,
                    format!("template: multiple definition of template {name:?}"),
                );
            }
        }
        self.defined.retain(|p| p.name != name || !is_empty(&list));
        if self.defined.iter().all(|p| p.name != name) {
            self.defined.push(Parsed { name, list });
        }
        Ok(())
    }

    /// Parses items until `{{end}}`, `{{else}}` or end of input.
    fn parse_list(&mut self) -> Result<(List, ListEnd), ParseError> {
        let mut list = Vec::new();
        loop {
            let item = self.next();
            match item.kind {
                Kind::Eof => return Ok((list, ListEnd::Eof)),
                Kind::Text => list.push(Node::Text(item.text)),
                Kind::Left => {
                    let save = self.index;
                    let word = self.next_non_space();
                    if word.kind == Kind::Ident && word.text == "define" {
                        return self.err(word.pos, "unexpected <define> in command");
                    }
                    self.index = save;
                    match self.parse_action()? {
                        Ok(node) => list.push(node),
                        Err(end) => return Ok((list, end)),
                    }
                }
                _ => return self.unexpected(&item, "input"),
            }
        }
    }

    /// Parses one action after `{{`: a node, or the end of a list.
    fn parse_action(&mut self) -> Result<Result<Node, ListEnd>, ParseError> {
        let item = self.peek_non_space().clone();
        if item.kind == Kind::Ident {
            match item.text.as_str() {
                "end" => {
                    self.next();
                    self.expect_right("end")?;
                    return Ok(Err(ListEnd::End(item.pos)));
                }
                "else" => {
                    self.next();
                    return Ok(Err(ListEnd::Else(item.pos)));
                }
                "if" | "range" | "with" => {
                    self.next();
                    return Ok(Ok(self.parse_control(&item.text, item.pos)?));
                }
                "template" => {
                    self.next();
                    return Ok(Ok(self.parse_template()?));
                }
                "block" => {
                    self.next();
                    return Ok(Ok(self.parse_block(item.pos)?));
                }
                "break" | "continue" => {
                    self.next();
                    if self.range_depth == 0 {
                        return self.err(
                            item.pos,
                            format!("{{{{{}}}}} outside {{{{range}}}}", item.text),
                        );
                    }
                    self.expect_right(&item.text)?;
                    return Ok(Ok(if item.text == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    }));
                }
                _ => {}
            }
        }
        let pipe = self.parse_pipeline("command", Kind::Right, false)?;
        Ok(Ok(Node::Action(pipe)))
    }

    /// The source text of a token (numbers and names as written).
    fn source_of(&self, item: &Item) -> String {
        let len = item_len(item, self.text);
        self.text
            .get(item.pos..item.pos + len)
            .unwrap_or(&item.text)
            .to_string()
    }

    fn enter(&mut self, pos: usize) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return self.err(pos, format!("nesting deeper than {MAX_NESTING}"));
        }
        Ok(())
    }

    fn parse_control(&mut self, kind: &str, pos: usize) -> Result<Node, ParseError> {
        self.enter(pos)?;
        let vars_mark = self.vars.len();
        let pipe = self.parse_pipeline(kind, Kind::Right, kind == "range")?;
        if kind == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.parse_list()?;
        if kind == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            ListEnd::Eof => return self.err(pos, "unexpected EOF"),
            ListEnd::End(_) => None,
            ListEnd::Else(else_pos) => {
                let next = self.peek_non_space().clone();
                if next.kind == Kind::Ident && (kind == "if" || kind == "with") && next.text == kind
                {
                    // `{{else if ...}}` is `{{else}}{{if ...}}...{{end}}{{end}}`
                    // sharing one `{{end}}`.
                    self.next();
                    let nested = self.parse_control(kind, next.pos)?;
                    Some(vec![nested])
                } else {
                    self.expect_right("else")?;
                    let (else_list, end) = self.parse_list()?;
                    match end {
                        ListEnd::End(_) => {}
                        ListEnd::Else(p) => {
                            return self.err(p, "expected end; found {{else}}");
                        }
                        ListEnd::Eof => {
                            return self.err(else_pos, "unexpected EOF");
                        }
                    }
                    Some(else_list)
                }
            }
        };
        self.vars.truncate(vars_mark);
        self.nesting -= 1;
        let control = Control {
            pos,
            pipe,
            list,
            else_list,
        };
        Ok(match kind {
            "if" => Node::If(control),
            "range" => Node::Range(control),
            _ => Node::With(control),
        })
    }

    fn parse_template(&mut self) -> Result<Node, ParseError> {
        let name = self.next_non_space();
        if name.kind != Kind::Str {
            return self.unexpected(&name, "template clause");
        }
        let pipe = if self.peek_non_space().kind == Kind::Right {
            self.next();
            None
        } else {
            Some(self.parse_pipeline("template clause", Kind::Right, false)?)
        };
        Ok(Node::Template {
            pos: name.pos,
            name: name.text,
            pipe,
        })
    }

    fn parse_block(&mut self, pos: usize) -> Result<Node, ParseError> {
        let name = self.next_non_space();
        if name.kind != Kind::Str {
            return self.unexpected(&name, "block clause");
        }
        let pipe = if self.peek_non_space().kind == Kind::Right {
            self.next();
            None
        } else {
            Some(self.parse_pipeline("block clause", Kind::Right, false)?)
        };
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let saved_range = std::mem::take(&mut self.range_depth);
        let (list, end) = self.parse_list()?;
        self.vars = saved_vars;
        self.range_depth = saved_range;
        match end {
            ListEnd::End(_) => {}
            ListEnd::Else(p) => return self.err(p, "unexpected {{else}} in block clause"),
            ListEnd::Eof => return self.err(pos, "unexpected EOF"),
        }
        self.add_defined(pos, name.text.clone(), list)?;
        Ok(Node::Template {
            pos,
            name: name.text,
            pipe,
        })
    }

    /// Parses `[decl] cmd | cmd ...` up to `end` (a right delimiter or paren).
    fn parse_pipeline(
        &mut self,
        context: &str,
        end: Kind,
        is_range: bool,
    ) -> Result<Pipe, ParseError> {
        let pos = self.peek_non_space().pos;
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $v :=` (range only).
        let save = self.index;
        if self.peek_non_space().kind == Kind::Variable {
            let var = self.next();
            let after = self.peek_non_space().clone();
            match after.kind {
                Kind::Declare | Kind::Assign => {
                    self.next();
                    is_assign = after.kind == Kind::Assign;
                    decl.push(var.text);
                }
                Kind::Comma if is_range => {
                    self.next();
                    let second = self.next_non_space();
                    if second.kind != Kind::Variable {
                        return self.err(
                            second.pos,
                            format!(
                                "range can only initialize variables, found {}",
                                describe(&second)
                            ),
                        );
                    }
                    let op = self.next_non_space();
                    if op.kind == Kind::Comma {
                        return self.err(op.pos, format!("too many declarations in {context}"));
                    }
                    if op.kind != Kind::Declare && op.kind != Kind::Assign {
                        return self.unexpected(&op, context);
                    }
                    is_assign = op.kind == Kind::Assign;
                    decl.push(var.text);
                    decl.push(second.text);
                }
                Kind::Comma => {
                    return self.err(after.pos, format!("too many declarations in {context}"));
                }
                _ => self.index = save,
            }
        }
        // Assigning to an undeclared variable is an execution error in Go.
        let mut cmds = Vec::new();
        loop {
            let item = self.peek_non_space().clone();
            if item.kind == end {
                self.next();
                break;
            }
            match item.kind {
                Kind::Eof
                | Kind::Right
                | Kind::RParen
                | Kind::Pipe
                | Kind::Other
                | Kind::Declare
                | Kind::Assign
                | Kind::Comma
                | Kind::Error => {
                    return self.unexpected(&item, context);
                }
                _ => {}
            }
            let cmd = self.parse_command(end)?;
            cmds.push(cmd);
        }
        if cmds.is_empty() {
            return self.err(pos, format!("missing value for {context}"));
        }
        for (i, cmd) in cmds.iter().enumerate().skip(1) {
            if let Some(first) = cmd.args.first()
                && matches!(
                    first,
                    Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Int(_) | Arg::Float(_) | Arg::Str(_)
                )
            {
                return self.err(
                    cmd.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        // Declared names become visible after the pipeline.
        if !is_assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe {
            pos,
            decl,
            is_assign,
            cmds,
        })
    }

    fn parse_command(&mut self, end: Kind) -> Result<Command, ParseError> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        let mut last_end = pos;
        loop {
            let item = self.peek_non_space().clone();
            if item.kind == end
                || item.kind == Kind::Right
                || item.kind == Kind::RParen
                || item.kind == Kind::Eof
            {
                break;
            }
            if item.kind == Kind::Pipe {
                self.next();
                if args.is_empty() {
                    return self.err(item.pos, "missing command");
                }
                break;
            }
            let arg = self.parse_operand()?;
            last_end = self
                .items
                .get(self.index.saturating_sub(1))
                .map_or(pos, |i| i.pos + item_len(i, self.text));
            args.push(arg);
            // Operands must be separated by spaces.
            let next = self.peek().clone();
            if !matches!(
                next.kind,
                Kind::Space | Kind::Right | Kind::RParen | Kind::Pipe | Kind::Eof
            ) && next.kind != end
            {
                return self.unexpected(&next, "operand");
            }
        }
        if args.is_empty() {
            let item = self.peek().clone();
            return self.err(item.pos, "empty command");
        }
        let text = self
            .text
            .get(pos..last_end.max(pos))
            .unwrap_or("")
            .trim()
            .to_string();
        Ok(Command { pos, text, args })
    }

    /// A term followed by an optional adjacent field chain.
    fn parse_operand(&mut self) -> Result<Arg, ParseError> {
        let term_item = self.peek_non_space().clone();
        let term = self.parse_term()?;
        let mut chain = Vec::new();
        let chain_pos = self.peek().pos;
        while self.peek().kind == Kind::Field {
            chain.push(self.next().text);
        }
        if chain.is_empty() {
            return Ok(term);
        }
        Ok(match term {
            Arg::Field(_, mut fields) => {
                fields.extend(chain);
                Arg::Field(chain_pos, fields)
            }
            Arg::Var(_, name, mut fields) => {
                fields.extend(chain);
                Arg::Var(chain_pos, name, fields)
            }
            Arg::Dot
            | Arg::Nil
            | Arg::Bool(_)
            | Arg::Int(_)
            | Arg::Float(_)
            | Arg::Str(_)
            | Arg::Ident(_) => {
                let shown = match term_item.kind {
                    Kind::Str => format!("{:?}", term_item.text),
                    _ => self.source_of(&term_item),
                };
                return self.err(chain_pos, format!("unexpected . after term {shown:?}"));
            }
            other => Arg::Chain(Box::new(other), chain),
        })
    }

    fn parse_term(&mut self) -> Result<Arg, ParseError> {
        let item = self.next_non_space();
        Ok(match item.kind {
            Kind::Ident => {
                if !(self.is_func)(&item.text) {
                    return self.err(item.pos, format!("function {:?} not defined", item.text));
                }
                Arg::Ident(item.text)
            }
            Kind::Dot => Arg::Dot,
            Kind::Nil => Arg::Nil,
            Kind::Variable => {
                if !self.vars.contains(&item.text) {
                    return self.err(item.pos, format!("undefined variable {:?}", item.text));
                }
                Arg::Var(item.pos, item.text, Vec::new())
            }
            Kind::Field => Arg::Field(item.pos, vec![item.text]),
            Kind::Bool => Arg::Bool(item.text == "true"),
            Kind::Char => Arg::Int(item.text.parse().unwrap_or(0)),
            Kind::Number => parse_number(&item.text).ok_or_else(|| ParseError {
                pos: item.pos,
                message: format!("illegal number syntax: {:?}", item.text),
            })?,
            Kind::Str => Arg::Str(item.text),
            Kind::LParen => {
                self.enter(item.pos)?;
                let pipe = self.parse_pipeline("parenthesized pipeline", Kind::RParen, false)?;
                self.nesting -= 1;
                Arg::Pipe(Box::new(pipe))
            }
            _ => return self.unexpected(&item, "operand"),
        })
    }
}

/// The source length of an item, to find where a command ends.
fn item_len(item: &Item, text: &str) -> usize {
    match item.kind {
        Kind::Str | Kind::Char => {
            // Quoted forms: scan the source for the closing quote.
            let src = text.get(item.pos..).unwrap_or("");
            let quote = src.chars().next().unwrap_or('"');
            let mut escaped = false;
            for (i, c) in src.char_indices().skip(1) {
                if escaped {
                    escaped = false;
                } else if c == '\\' && quote != '`' {
                    escaped = true;
                } else if c == quote {
                    return i + 1;
                }
            }
            src.len()
        }
        Kind::Field => item.text.len() + 1,
        _ => item.text.len(),
    }
}

/// Go's parse-time reading of a number literal: ints stay ints, anything
/// with a point or exponent becomes a float.
fn parse_number(text: &str) -> Option<Arg> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, body) = match clean.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(hex) = lower.strip_prefix("0x") {
        if hex.contains(['.', 'p']) {
            return parse_hex_float(hex).map(|f| Arg::Float(if negative { -f } else { f }));
        }
        i128::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = lower.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()
    } else if let Some(bin) = lower.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()
    } else if lower.contains(['.', 'e']) {
        let f: f64 = lower.parse().ok()?;
        return Some(Arg::Float(if negative { -f } else { f }));
    } else if lower.len() > 1 && lower.starts_with('0') {
        i128::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i128>().ok()
    };
    match int {
        Some(i) => {
            let i = if negative { -i } else { i };
            match i64::try_from(i) {
                Ok(i) => Some(Arg::Int(i)),
                // Too big for int: Go keeps it as a float constant.
                Err(_) => Some(Arg::Float(i as f64)),
            }
        }
        None => {
            let f: f64 = lower.parse().ok()?;
            Some(Arg::Float(if negative { -f } else { f }))
        }
    }
}

/// Parses the part after `0x` of a hex float such as `1.8p3`.
fn parse_hex_float(hex: &str) -> Option<f64> {
    let (mantissa, exp) = hex.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut value = 0f64;
    for c in int_part.chars() {
        value = value * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        value += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    Some(value * 2f64.powi(exp))
}

/// True when a template body is only whitespace text, like Go's `IsEmptyTree`.
pub fn is_empty(list: &List) -> bool {
    list.iter()
        .all(|node| matches!(node, Node::Text(t) if t.trim().is_empty()))
}

/// Go's wording for an unexpected token.
fn describe(item: &Item) -> String {
    match item.kind {
        Kind::Eof => "EOF".to_string(),
        Kind::Right => "\"}}\"".to_string(),
        Kind::RParen => "\")\"".to_string(),
        Kind::Left => "\"{{\"".to_string(),
        Kind::Space => "space".to_string(),
        Kind::Ident => format!("<{}>", item.text),
        Kind::Str => format!("{:?}", item.text),
        Kind::Field => format!("<.{}>", item.text),
        _ => format!("{:?}", item.text),
    }
}
