//! osprey's PromQL parser: query text to [`crate::ast`], with Prometheus
//! 3's grammar and its error texts and positions.
//!
//! [`crate::lexer`] turns the text into tokens; this module is a
//! recursive-descent parser over them, with precedence climbing for the
//! binary operators (`or` < `and`/`unless` < comparisons < `+ -` <
//! `* / % atan2` < `^`, right-associative; a unary sign binds like `*`;
//! `[…]`, `offset`, `@`, `anchored` and `smoothed` bind tightest).
//!
//! Errors follow Prometheus's generated parser: every message is
//! `line:col: parse error: <text>`, the column counted in bytes from 1.
//! Like Prometheus, the parser keeps going after a semantic error found
//! while parsing (an unknown function, an offset on the wrong kind of
//! expression) and reports the first one; a syntax error ends parsing.
//! A syntax error that no specific rule words is "unexpected <token>",
//! with " in aggregation" inside an aggregation, as Prometheus's error
//! recovery gives it. When parsing succeeds, a type check (Prometheus's
//! `checkAST`, same order, same texts) runs over the tree.
//!
//! Experimental syntax is refused unless its [`ParseOptions`] flag is on,
//! with Prometheus's "… is not enabled" texts.

use crate::QueryError;
use crate::ast::{
    Aggregate, AggregateOp, At, Binary, BinaryOp, Call, Cardinality, DurationExpr, Expr, Grouping,
    Matching, MatrixSelector, Subquery, ValueType, VectorSelector,
};
use crate::lexer::{Kind, LexError, Token, go_quote, lex};
use model::{MatchOp, Matcher};

/// Which experimental parts of the language are accepted; the names are
/// Prometheus's `--enable-feature` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParseOptions {
    /// `promql-experimental-functions`: `limitk`, `limit_ratio` and the
    /// functions Prometheus marks experimental.
    pub experimental_functions: bool,
    /// `promql-duration-expr`: arithmetic, `step()`, `range()`,
    /// `min_of`/`max_of` in ranges, steps and offsets.
    pub duration_expressions: bool,
    /// `promql-extended-range-selectors`: `anchored` and `smoothed`.
    pub extended_range_selectors: bool,
    /// `promql-binop-fill-modifiers`: `fill`, `fill_left`, `fill_right`.
    pub fill_modifiers: bool,
}

impl ParseOptions {
    /// What [`parse`] accepts: the stable language plus the experimental
    /// functions (which osprey has always accepted and evaluates).
    pub const OSPREY: ParseOptions = ParseOptions {
        experimental_functions: true,
        duration_expressions: false,
        extended_range_selectors: false,
        fill_modifiers: false,
    };

    /// Every experimental part on, as Prometheus's test scripts run.
    pub const ALL: ParseOptions = ParseOptions {
        experimental_functions: true,
        duration_expressions: true,
        extended_range_selectors: true,
        fill_modifiers: true,
    };

    /// Applies one `--enable-feature` name; returns whether it is one of
    /// the PromQL features.
    pub fn enable_feature(&mut self, name: &str) -> bool {
        match name {
            "promql-experimental-functions" => self.experimental_functions = true,
            "promql-duration-expr" => self.duration_expressions = true,
            "promql-extended-range-selectors" => self.extended_range_selectors = true,
            "promql-binop-fill-modifiers" => self.fill_modifiers = true,
            _ => return false,
        }
        true
    }

    fn key(self) -> u8 {
        self.experimental_functions as u8
            | (self.duration_expressions as u8) << 1
            | (self.extended_range_selectors as u8) << 2
            | (self.fill_modifiers as u8) << 3
    }
}

/// Parses a PromQL expression into our AST and type-checks it, with
/// [`ParseOptions::OSPREY`].
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    parse_with(query, ParseOptions::OSPREY)
}

/// Parses with the given experimental features.
pub fn parse_with(query: &str, options: ParseOptions) -> Result<Expr, QueryError> {
    if let Some(expr) = cached(query, options) {
        return Ok(expr);
    }
    let expr = parse_uncached(query, options).map_err(QueryError::bad_data)?;
    remember(query, options, &expr);
    Ok(expr)
}

type CacheKey = (u8, String);

/// Parsed queries by text. Dashboards and rules send the same queries
/// again and again, and parsing compiles every regex matcher.
static PARSE_CACHE: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<CacheKey, Expr>>,
> = std::sync::LazyLock::new(Default::default);

/// Most cached queries; past this the cache is emptied and refills.
const PARSE_CACHE_CAPACITY: usize = 2048;

/// Queries longer than this are not cached (they are rarely repeated
/// verbatim, and would let a client fill memory with big keys).
const PARSE_CACHE_MAX_QUERY_BYTES: usize = 4096;

fn cached(query: &str, options: ParseOptions) -> Option<Expr> {
    if query.len() > PARSE_CACHE_MAX_QUERY_BYTES {
        return None;
    }
    let cache = PARSE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.get(&(options.key(), query.to_string())).cloned()
}

fn remember(query: &str, options: ParseOptions, expr: &Expr) {
    if query.len() > PARSE_CACHE_MAX_QUERY_BYTES {
        return;
    }
    let mut cache = PARSE_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= PARSE_CACHE_CAPACITY {
        cache.clear();
    }
    cache.insert((options.key(), query.to_string()), expr.clone());
}

/// Parses a series selector such as `up{job="x"}` into matchers.
pub fn parse_series_selector(s: &str) -> Result<Vec<Matcher>, QueryError> {
    match parse(s)? {
        Expr::VectorSelector(vs) if vs.offset_ms == 0 && vs.at.is_none() => Ok(vs.matchers),
        _ => Err(QueryError::bad_data(format!(
            "invalid series selector {s:?}: expected a vector selector"
        ))),
    }
}

/// The value type name as Prometheus prints it in type errors.
pub(crate) fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

/// Prometheus's `ValueType.String`, used by a few messages.
fn short_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "vector",
        ValueType::Matrix => "matrix",
    }
}

/// Nesting deeper than this is refused, so a hostile query cannot overflow
/// the stack of the parser or the evaluator.
const MAX_DEPTH: usize = 200;

/// Durations beyond this many seconds overflow Go's nanosecond
/// `time.Duration`; Prometheus refuses them ("duration out of range").
const MAX_DURATION_SECONDS: f64 = 9_223_372_036.854_775;

fn parse_uncached(query: &str, options: ParseOptions) -> Result<Expr, String> {
    let (tokens, lex_error) = lex(query);
    let mut p = Parser {
        input: query,
        tokens,
        lex_error,
        next: 0,
        errors: Vec::new(),
        contexts: Vec::new(),
        options,
        depth: 0,
    };
    let result = p.parse_start();
    let first_soft = p.errors.first().cloned();
    let node = match (result, first_soft) {
        (_, Some(e)) => return Err(p.render(&e)),
        (Err(e), None) => return Err(p.render(&e)),
        (Ok(node), None) => node,
    };
    if let Err(e) = check(&node.0, &node.1, query) {
        return Err(p.render(&e));
    }
    Ok(node.0)
}

/// An error and the byte offset it is reported at.
#[derive(Clone, Debug)]
struct ParseError {
    pos: usize,
    message: String,
}

/// Positions of an expression and its sub-expressions, in the same shape
/// as the [`Expr`] (see [`children`]), for the type check's messages.
#[derive(Clone, Debug)]
struct Span {
    start: usize,
    end: usize,
    kids: Vec<Span>,
}

impl Span {
    fn leaf(start: usize, end: usize) -> Span {
        Span {
            start,
            end,
            kids: Vec::new(),
        }
    }
}

type Node = (Expr, Span);
type PResult<T> = Result<T, ParseError>;

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    lex_error: Option<LexError>,
    next: usize,
    /// Semantic errors found while parsing, in the order found.
    errors: Vec<ParseError>,
    /// The error-recovery contexts open around the current token
    /// (Prometheus's grammar rules that end in `error`), innermost last:
    /// (context, expected).
    contexts: Vec<(&'static str, &'static str)>,
    options: ParseOptions,
    depth: usize,
}

/// A duration expression (in `[…]` or after `offset`) as parsed.
struct DurNode {
    dur: DurationExpr,
    start: usize,
    /// Whether the node is a plain number or duration literal.
    literal: bool,
}

impl Parser<'_> {
    fn render(&self, e: &ParseError) -> String {
        let (line, col) = line_col(self.input, e.pos);
        if self.input.is_empty() {
            return format!("unknown position: parse error: {}", e.message);
        }
        format!("{line}:{col}: parse error: {}", e.message)
    }

    fn peek(&self) -> Token {
        self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn peek_kind(&self) -> Kind {
        self.peek().kind
    }

    fn peek2_kind(&self) -> Kind {
        self.tokens[(self.next + 1).min(self.tokens.len() - 1)].kind
    }

    fn advance(&mut self) -> Token {
        let t = self.peek();
        if self.next < self.tokens.len() - 1 {
            self.next += 1;
        }
        t
    }

    fn text(&self, t: Token) -> &str {
        t.text(self.input)
    }

    fn soft(&mut self, pos: usize, message: impl Into<String>) {
        self.errors.push(ParseError {
            pos,
            message: message.into(),
        });
    }

    /// Prometheus's `unexpected(context, expected)` about the current
    /// token; a lexing error there is reported as itself.
    fn unexpected(&self, context: &str, expected: &str) -> ParseError {
        let t = self.peek();
        if t.kind == Kind::Error
            && let Some(e) = &self.lex_error
        {
            return ParseError {
                pos: e.pos,
                message: e.message.clone(),
            };
        }
        let mut message = format!("unexpected {}", t.describe(self.input));
        if !context.is_empty() {
            message.push_str(" in ");
            message.push_str(context);
        }
        if !expected.is_empty() {
            message.push_str(", expected ");
            message.push_str(expected);
        }
        ParseError {
            pos: t.pos,
            message,
        }
    }

    /// A syntax error no specific rule words: the innermost open context.
    fn fail(&self) -> ParseError {
        let (context, expected) = self.contexts.last().copied().unwrap_or(("", ""));
        self.unexpected(context, expected)
    }

    fn expect(&mut self, kind: Kind) -> PResult<Token> {
        if self.peek_kind() == kind {
            Ok(self.advance())
        } else {
            Err(self.fail())
        }
    }

    fn with_context<T>(
        &mut self,
        context: (&'static str, &'static str),
        f: impl FnOnce(&mut Self) -> PResult<T>,
    ) -> PResult<T> {
        self.contexts.push(context);
        let out = f(self);
        self.contexts.pop();
        out
    }

    fn parse_start(&mut self) -> PResult<Node> {
        if self.peek_kind() == Kind::Eof {
            return Err(ParseError {
                pos: 0,
                message: "no expression found in input".into(),
            });
        }
        let node = self.parse_expr(0)?;
        if self.peek_kind() != Kind::Eof {
            return Err(self.fail());
        }
        Ok(node)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                pos: self.peek().pos,
                message: "expression nested too deeply".into(),
            });
        }
        Ok(())
    }

    /// Precedence climbing over the binary operators.
    fn parse_expr(&mut self, min_prec: u8) -> PResult<Node> {
        self.enter()?;
        let out = self.parse_expr_inner(min_prec);
        self.depth -= 1;
        out
    }

    fn parse_expr_inner(&mut self, min_prec: u8) -> PResult<Node> {
        let mut lhs = self.parse_unary()?;
        loop {
            let op_token = self.peek();
            let Some((prec, right_assoc)) = binary_precedence(op_token.kind) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.advance();
            let modifiers = self.parse_bin_modifiers()?;
            let next_min = if right_assoc { prec } else { prec + 1 };
            let rhs = self.parse_expr(next_min)?;
            lhs = self.binary(lhs, op_token, modifiers, rhs)?;
        }
        Ok(lhs)
    }

    fn parse_unary(&mut self) -> PResult<Node> {
        let t = self.peek();
        if matches!(t.kind, Kind::Add | Kind::Sub) {
            self.advance();
            // The sign binds like `*`: only `^` binds tighter.
            let (expr, span) = self.parse_expr(PREC_POW)?;
            let negate = t.kind == Kind::Sub;
            let end = span.end;
            return Ok(match expr {
                Expr::Number(v) => (
                    Expr::Number(if negate { -v } else { v }),
                    Span::leaf(t.pos, end),
                ),
                other => (
                    Expr::Unary {
                        negate,
                        expr: Box::new(other),
                    },
                    Span {
                        start: t.pos,
                        end,
                        kids: vec![span],
                    },
                ),
            });
        }
        let primary = self.parse_primary()?;
        self.parse_postfix(primary)
    }

    fn parse_primary(&mut self) -> PResult<Node> {
        let t = self.peek();
        match t.kind {
            Kind::Number => {
                self.advance();
                let v = self.number(t);
                Ok((Expr::Number(v), Span::leaf(t.pos, t.end)))
            }
            Kind::Duration => {
                self.advance();
                let v = self.duration_seconds(t);
                Ok((Expr::Number(v), Span::leaf(t.pos, t.end)))
            }
            Kind::String => {
                self.advance();
                let s = self.unquote(t);
                Ok((Expr::String(s), Span::leaf(t.pos, t.end)))
            }
            Kind::LeftParen => {
                self.advance();
                let inner = self.parse_expr(0)?;
                let close = self.expect(Kind::RightParen)?;
                Ok((
                    Expr::Paren(Box::new(inner.0)),
                    Span {
                        start: t.pos,
                        end: close.end,
                        kids: vec![inner.1],
                    },
                ))
            }
            Kind::LeftBrace => self.parse_vector_selector(None),
            Kind::Aggregator(op)
                if matches!(
                    self.peek2_kind(),
                    Kind::LeftParen | Kind::By | Kind::Without
                ) =>
            {
                self.advance();
                self.parse_aggregate(op, t)
            }
            Kind::Identifier
            | Kind::Start
            | Kind::End
            | Kind::Step
            | Kind::Range
            | Kind::MaxOf
            | Kind::MinOf
                if self.peek2_kind() == Kind::LeftParen =>
            {
                self.advance();
                self.parse_call(t)
            }
            k if is_metric_identifier(k) => {
                self.advance();
                self.parse_vector_selector(Some(t))
            }
            _ => Err(self.fail()),
        }
    }

    fn parse_postfix(&mut self, mut node: Node) -> PResult<Node> {
        loop {
            match self.peek_kind() {
                Kind::LeftBracket => node = self.parse_range_or_subquery(node)?,
                Kind::Offset => {
                    self.advance();
                    node = self.parse_offset(node)?;
                }
                Kind::At => {
                    self.advance();
                    node = self.parse_at(node)?;
                }
                Kind::Anchored | Kind::Smoothed => {
                    let t = self.advance();
                    self.set_anchored_smoothed(&mut node, t.kind);
                }
                _ => return Ok(node),
            }
        }
    }

    fn parse_vector_selector(&mut self, name: Option<Token>) -> PResult<Node> {
        let start = name.map_or(self.peek().pos, |t| t.pos);
        let mut end = name.map_or(start, |t| t.end);
        let mut matchers = Vec::new();
        let name_text = name.map(|t| self.text(t).to_string());
        if let Some(n) = &name_text {
            matchers.push(Matcher::equal(model::METRIC_NAME, n.clone()));
        }
        if self.peek_kind() == Kind::LeftBrace {
            self.advance();
            let close = self.parse_label_matchers(&mut matchers)?;
            end = close.end;
        }
        Ok((
            Expr::VectorSelector(VectorSelector {
                name: name_text,
                matchers,
                offset_ms: 0,
                offset_expr: None,
                at: None,
                anchored: false,
                smoothed: false,
            }),
            Span::leaf(start, end),
        ))
    }

    /// After `{`: the matchers up to and including `}`.
    fn parse_label_matchers(&mut self, out: &mut Vec<Matcher>) -> PResult<Token> {
        const CONTEXT: &str = "label matching";
        loop {
            let t = self.peek();
            match t.kind {
                Kind::RightBrace => return Ok(self.advance()),
                Kind::Identifier | Kind::String => {
                    self.advance();
                    let name = if t.kind == Kind::String {
                        self.unquote(t)
                    } else {
                        self.text(t).to_string()
                    };
                    let op = match self.peek_kind() {
                        Kind::Eql => Some(MatchOp::Equal),
                        Kind::Neq => Some(MatchOp::NotEqual),
                        Kind::EqlRegex => Some(MatchOp::RegexMatch),
                        Kind::NeqRegex => Some(MatchOp::RegexNoMatch),
                        _ => None,
                    };
                    match op {
                        Some(op) => {
                            self.advance();
                            let value = self.peek();
                            if value.kind != Kind::String {
                                return Err(self.unexpected(CONTEXT, "string"));
                            }
                            self.advance();
                            let v = self.unquote(value);
                            match Matcher::new(op, name, v.clone()) {
                                Ok(m) => out.push(m),
                                Err(e) => self.soft(t.pos, regex_error(&v, &e.to_string())),
                            }
                        }
                        None if t.kind == Kind::String => {
                            out.push(Matcher::equal(model::METRIC_NAME, name));
                        }
                        None => {
                            return Err(self.unexpected(CONTEXT, "label matching operator"));
                        }
                    }
                }
                _ => return Err(self.unexpected(CONTEXT, "identifier or \"}\"")),
            }
            match self.peek_kind() {
                Kind::Comma => {
                    self.advance();
                }
                Kind::RightBrace => return Ok(self.advance()),
                _ => return Err(self.unexpected(CONTEXT, "\",\" or \"}\"")),
            }
        }
    }

    /// `(` args `)` of a call or an aggregation; returns the arguments and
    /// the closing parenthesis.
    fn parse_call_body(&mut self) -> PResult<(Vec<Node>, Token)> {
        self.expect(Kind::LeftParen)?;
        let mut args = Vec::new();
        if self.peek_kind() == Kind::RightParen {
            return Ok((args, self.advance()));
        }
        loop {
            args.push(self.parse_expr(0)?);
            match self.peek_kind() {
                Kind::Comma => {
                    let comma = self.advance();
                    if self.peek_kind() == Kind::RightParen {
                        self.soft(
                            comma.pos,
                            "trailing commas not allowed in function call args",
                        );
                        return Ok((args, self.advance()));
                    }
                }
                Kind::RightParen => return Ok((args, self.advance())),
                _ => return Err(self.fail()),
            }
        }
    }

    fn parse_call(&mut self, name: Token) -> PResult<Node> {
        let (args, close) = self.parse_call_body()?;
        let func = self.text(name).to_string();
        match crate::functions::signature(&func) {
            None if !is_prometheus_function(&func) => {
                self.soft(
                    name.pos,
                    format!("unknown function with name {}", go_quote(&func)),
                );
            }
            None => self.soft(
                name.pos,
                format!(
                    "function {} is not supported by osprey yet",
                    go_quote(&func)
                ),
            ),
            Some(_) => {
                if is_experimental_function(&func) && !self.options.experimental_functions {
                    self.soft(
                        name.pos,
                        format!("function {} is not enabled", go_quote(&func)),
                    );
                }
            }
        }
        let (exprs, spans): (Vec<Expr>, Vec<Span>) = args.into_iter().unzip();
        Ok((
            Expr::Call(Call { func, args: exprs }),
            Span {
                start: name.pos,
                end: close.end,
                kids: spans,
            },
        ))
    }

    fn parse_aggregate(&mut self, op: AggregateOp, op_token: Token) -> PResult<Node> {
        self.with_context(("aggregation", ""), |p| {
            let mut grouping = None;
            if matches!(p.peek_kind(), Kind::By | Kind::Without) {
                grouping = Some(p.parse_aggregate_modifier()?);
            }
            let (args, close) = p.parse_call_body()?;
            if grouping.is_none() && matches!(p.peek_kind(), Kind::By | Kind::Without) {
                grouping = Some(p.parse_aggregate_modifier()?);
            }
            let span_start = op_token.pos;
            let with_param = matches!(
                op,
                AggregateOp::Topk
                    | AggregateOp::Bottomk
                    | AggregateOp::CountValues
                    | AggregateOp::Quantile
                    | AggregateOp::Limitk
                    | AggregateOp::LimitRatio
            );
            let placeholder = || (Expr::Number(0.0), Span::leaf(span_start, span_start));
            if args.is_empty() {
                p.soft(span_start, "no arguments for aggregate expression provided");
            } else if with_param
                && matches!(op, AggregateOp::Limitk | AggregateOp::LimitRatio)
                && !p.options.experimental_functions
            {
                p.soft(
                    span_start,
                    format!(
                        "{}() is experimental and must be enabled with --enable-feature=promql-experimental-functions",
                        op.as_str()
                    ),
                );
            } else {
                let desired = if with_param { 2 } else { 1 };
                if args.len() != desired {
                    p.soft(
                        span_start,
                        format!(
                            "wrong number of arguments for aggregate expression provided, expected {desired}, got {}",
                            args.len()
                        ),
                    );
                }
            }
            let mut args = args.into_iter();
            let (param, expr) = if with_param {
                let param = args.next();
                (param, args.next().unwrap_or_else(placeholder))
            } else {
                (None, args.next().unwrap_or_else(placeholder))
            };
            let mut kids = vec![expr.1];
            if let Some(p) = &param {
                kids.push(p.1.clone());
            }
            Ok((
                Expr::Aggregate(Aggregate {
                    op,
                    expr: Box::new(expr.0),
                    param: param.map(|p| Box::new(p.0)),
                    grouping,
                }),
                Span {
                    start: span_start,
                    end: close.end,
                    kids,
                },
            ))
        })
    }

    fn parse_aggregate_modifier(&mut self) -> PResult<Grouping> {
        let t = self.advance();
        let labels = self.parse_grouping_labels()?;
        Ok(if t.kind == Kind::By {
            Grouping::By(labels)
        } else {
            Grouping::Without(labels)
        })
    }

    /// `(label, …)` after `by`, `without`, `on`, `ignoring`, `group_x`.
    fn parse_grouping_labels(&mut self) -> PResult<Vec<String>> {
        const CONTEXT: &str = "grouping opts";
        if self.peek_kind() != Kind::LeftParen {
            return Err(self.unexpected(CONTEXT, "\"(\""));
        }
        self.advance();
        let mut labels = Vec::new();
        if self.peek_kind() == Kind::RightParen {
            self.advance();
            return Ok(labels);
        }
        loop {
            let t = self.peek();
            let label = if t.kind == Kind::String {
                self.advance();
                self.unquote(t)
            } else if is_label_token(t.kind) {
                self.advance();
                self.text(t).to_string()
            } else {
                return Err(self.unexpected(CONTEXT, "label"));
            };
            if label.is_empty() || has_invalid_bytes(&label) {
                self.soft(
                    t.pos,
                    format!(
                        "invalid label name for grouping: {}",
                        go_quote_bytes(&label)
                    ),
                );
            }
            labels.push(label);
            match self.peek_kind() {
                Kind::Comma => {
                    self.advance();
                    if self.peek_kind() == Kind::RightParen {
                        self.advance();
                        return Ok(labels);
                    }
                }
                Kind::RightParen => {
                    self.advance();
                    return Ok(labels);
                }
                _ => return Err(self.unexpected(CONTEXT, "\",\" or \")\"")),
            }
        }
    }

    fn parse_bin_modifiers(&mut self) -> PResult<BinModifiers> {
        let mut m = BinModifiers::default();
        if self.peek_kind() == Kind::Bool {
            self.advance();
            m.return_bool = true;
        }
        match self.peek_kind() {
            Kind::On | Kind::Ignoring => {
                let t = self.advance();
                let labels = self.parse_grouping_labels()?;
                m.matching = Some(if t.kind == Kind::On {
                    Matching::On(labels)
                } else {
                    Matching::Ignoring(labels)
                });
                if matches!(self.peek_kind(), Kind::GroupLeft | Kind::GroupRight) {
                    let g = self.advance();
                    let labels = if self.peek_kind() == Kind::LeftParen {
                        self.parse_grouping_labels()?
                    } else {
                        Vec::new()
                    };
                    m.cardinality = Some(if g.kind == Kind::GroupLeft {
                        Cardinality::ManyToOne(labels)
                    } else {
                        Cardinality::OneToMany(labels)
                    });
                }
            }
            _ => {}
        }
        // fill(v), fill_left(v), fill_right(v), and the two sided pairs.
        match self.peek_kind() {
            Kind::Fill => {
                self.advance();
                let v = self.parse_fill_value()?;
                m.fill = (Some(v), Some(v));
            }
            Kind::FillLeft | Kind::FillRight => {
                let first = self.advance();
                let v = self.parse_fill_value()?;
                let other = if first.kind == Kind::FillLeft {
                    Kind::FillRight
                } else {
                    Kind::FillLeft
                };
                let mut second = None;
                if self.peek_kind() == other {
                    self.advance();
                    second = Some(self.parse_fill_value()?);
                }
                m.fill = if first.kind == Kind::FillLeft {
                    (Some(v), second)
                } else {
                    (second, Some(v))
                };
            }
            _ => {}
        }
        Ok(m)
    }

    fn parse_fill_value(&mut self) -> PResult<f64> {
        self.expect(Kind::LeftParen)?;
        let mut sign = 1.0;
        if matches!(self.peek_kind(), Kind::Add | Kind::Sub) && self.advance().kind == Kind::Sub {
            sign = -1.0;
        }
        let t = self.peek();
        let v = match t.kind {
            Kind::Number => {
                self.advance();
                self.number(t)
            }
            Kind::Duration => {
                self.advance();
                self.duration_seconds(t)
            }
            _ => return Err(self.fail()),
        };
        self.expect(Kind::RightParen)?;
        Ok(sign * v)
    }

    fn binary(&mut self, lhs: Node, op: Token, m: BinModifiers, rhs: Node) -> PResult<Node> {
        let start = lhs.1.start;
        let end = rhs.1.end;
        if (m.fill.0.is_some() || m.fill.1.is_some()) && !self.options.fill_modifiers {
            self.soft(
                start,
                "binop fill modifiers are experimental and not enabled",
            );
        }
        let op = match op.kind {
            Kind::Add => BinaryOp::Add,
            Kind::Sub => BinaryOp::Sub,
            Kind::Mul => BinaryOp::Mul,
            Kind::Div => BinaryOp::Div,
            Kind::Mod => BinaryOp::Mod,
            Kind::Pow => BinaryOp::Pow,
            Kind::Atan2 => BinaryOp::Atan2,
            Kind::Eqlc => BinaryOp::Eq,
            Kind::Neq => BinaryOp::Ne,
            Kind::Gtr => BinaryOp::Gt,
            Kind::Lss => BinaryOp::Lt,
            Kind::Gte => BinaryOp::Ge,
            Kind::Lte => BinaryOp::Le,
            Kind::Land => BinaryOp::And,
            Kind::Lor => BinaryOp::Or,
            Kind::Lunless => BinaryOp::Unless,
            Kind::TrimUpper => BinaryOp::TrimUpper,
            Kind::TrimLower => BinaryOp::TrimLower,
            _ => {
                self.soft(
                    op.pos,
                    format!("unexpected binary operator {}", go_quote(self.text(op))),
                );
                BinaryOp::Add
            }
        };
        let cardinality = match m.cardinality {
            Some(c) => c,
            None if op.is_set() => Cardinality::ManyToMany,
            None => Cardinality::OneToOne,
        };
        // `ignoring ()` without `group_x` is the default matching; keep one
        // form of it so that printing and parsing again give the same tree.
        let matching = match m.matching {
            Some(Matching::Ignoring(l))
                if l.is_empty()
                    && matches!(cardinality, Cardinality::OneToOne | Cardinality::ManyToMany) =>
            {
                None
            }
            other => other,
        };
        Ok((
            Expr::Binary(Binary {
                op,
                lhs: Box::new(lhs.0),
                rhs: Box::new(rhs.0),
                matching,
                cardinality,
                return_bool: m.return_bool,
                fill_lhs: m.fill.0,
                fill_rhs: m.fill.1,
            }),
            Span {
                start,
                end,
                kids: vec![lhs.1, rhs.1],
            },
        ))
    }

    fn parse_range_or_subquery(&mut self, node: Node) -> PResult<Node> {
        let open = self.advance();
        let range = self.with_context(
            (
                "subquery or range selector",
                "number, duration, step(), or range()",
            ),
            |p| p.parse_duration(0),
        )?;
        let (range_ms, range_expr) = self.positive_duration(range);
        match self.peek_kind() {
            Kind::RightBracket => {
                let close = self.advance();
                let (expr, span) = node;
                let message = match &expr {
                    Expr::VectorSelector(vs) if vs.offset_ms != 0 || vs.offset_expr.is_some() => {
                        Some("no offset modifiers allowed before range")
                    }
                    Expr::VectorSelector(vs) if vs.at.is_some() => {
                        Some("no @ modifiers allowed before range")
                    }
                    Expr::VectorSelector(_) => None,
                    _ => Some("ranges only allowed for vector selectors"),
                };
                if let Some(message) = message {
                    self.soft(open.pos, message);
                    return Ok((expr, span));
                }
                let Expr::VectorSelector(vs) = expr else {
                    return Ok((expr, span));
                };
                Ok((
                    Expr::MatrixSelector(MatrixSelector {
                        selector: vs,
                        range_ms,
                        range_expr,
                    }),
                    Span::leaf(span.start, close.end),
                ))
            }
            Kind::Colon => {
                self.advance();
                let mut step_ms = None;
                let mut step_expr = None;
                if self.peek_kind() != Kind::RightBracket {
                    let step = self.with_context(
                        (
                            "subquery selector",
                            "number, duration, step(), range(), or \"]\"",
                        ),
                        |p| p.parse_duration(0),
                    )?;
                    let (ms, expr) = self.positive_duration(step);
                    step_ms = Some(ms);
                    step_expr = expr;
                    if self.peek_kind() != Kind::RightBracket {
                        return Err(self.unexpected("subquery selector", "\"]\""));
                    }
                }
                let close = self.advance();
                let (expr, span) = node;
                let start = span.start;
                Ok((
                    Expr::Subquery(Subquery {
                        expr: Box::new(expr),
                        range_ms,
                        step_ms,
                        offset_ms: 0,
                        range_expr,
                        step_expr,
                        offset_expr: None,
                        at: None,
                    }),
                    Span {
                        start,
                        end: close.end,
                        kids: vec![span],
                    },
                ))
            }
            _ => Err(self.unexpected("subquery or range", "\":\" or \"]\"")),
        }
    }

    /// A duration expression (Prometheus's `duration_expr`), precedence
    /// climbing over `+ -`, `* / %`, `^`.
    fn parse_duration(&mut self, min_prec: u8) -> PResult<DurNode> {
        self.enter()?;
        let out = self.parse_duration_inner(min_prec);
        self.depth -= 1;
        out
    }

    fn parse_duration_inner(&mut self, min_prec: u8) -> PResult<DurNode> {
        let mut lhs = self.parse_duration_unary()?;
        loop {
            let op = self.peek();
            let (prec, right) = match op.kind {
                Kind::Add | Kind::Sub => (1, false),
                Kind::Mul | Kind::Div | Kind::Mod => (2, false),
                Kind::Pow => (3, true),
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            self.advance();
            let rhs = self.parse_duration(if right { prec } else { prec + 1 })?;
            self.experimental_duration(lhs.start);
            if rhs.literal && matches!(rhs.dur, DurationExpr::Number(v) if v == 0.0) {
                match op.kind {
                    Kind::Div => self.soft(op.pos, "division by zero"),
                    Kind::Mod => self.soft(op.pos, "modulo by zero"),
                    _ => {}
                }
            }
            lhs = DurNode {
                start: lhs.start,
                dur: DurationExpr::Binary {
                    op: match op.kind {
                        Kind::Add => BinaryOp::Add,
                        Kind::Sub => BinaryOp::Sub,
                        Kind::Mul => BinaryOp::Mul,
                        Kind::Div => BinaryOp::Div,
                        Kind::Mod => BinaryOp::Mod,
                        _ => BinaryOp::Pow,
                    },
                    lhs: Box::new(lhs.dur),
                    rhs: Box::new(rhs.dur),
                },
                literal: false,
            };
        }
        Ok(lhs)
    }

    fn parse_duration_unary(&mut self) -> PResult<DurNode> {
        let t = self.peek();
        if matches!(t.kind, Kind::Add | Kind::Sub) {
            self.advance();
            // The sign binds like `*`: only `^` binds tighter.
            let inner = self.parse_duration(3)?;
            return Ok(self.apply_duration_sign(t, inner));
        }
        self.parse_duration_primary()
    }

    fn apply_duration_sign(&mut self, sign: Token, inner: DurNode) -> DurNode {
        let negate = sign.kind == Kind::Sub;
        match inner.dur {
            DurationExpr::Number(v) if inner.literal => {
                let v = if negate { -v } else { v };
                if v.abs() > MAX_DURATION_SECONDS {
                    self.soft(sign.pos, "duration out of range");
                }
                DurNode {
                    dur: DurationExpr::Number(v),
                    start: sign.pos,
                    literal: true,
                }
            }
            other if negate => DurNode {
                dur: DurationExpr::Neg(Box::new(other)),
                start: sign.pos,
                literal: false,
            },
            other => DurNode {
                dur: other,
                start: inner.start,
                literal: false,
            },
        }
    }

    fn parse_duration_primary(&mut self) -> PResult<DurNode> {
        let t = self.peek();
        match t.kind {
            Kind::Number | Kind::Duration => {
                self.advance();
                let v = if t.kind == Kind::Number {
                    self.number(t)
                } else {
                    self.duration_seconds(t)
                };
                if v.abs() > MAX_DURATION_SECONDS || v.is_nan() {
                    self.soft(t.pos, "duration out of range");
                }
                Ok(DurNode {
                    dur: DurationExpr::Number(v),
                    start: t.pos,
                    literal: true,
                })
            }
            Kind::Step | Kind::Range => {
                self.advance();
                self.expect(Kind::LeftParen)?;
                self.expect(Kind::RightParen)?;
                self.experimental_duration(t.pos);
                Ok(DurNode {
                    dur: if t.kind == Kind::Step {
                        DurationExpr::Step
                    } else {
                        DurationExpr::Range
                    },
                    start: t.pos,
                    literal: false,
                })
            }
            Kind::MaxOf | Kind::MinOf => {
                self.advance();
                self.expect(Kind::LeftParen)?;
                let a = self.parse_duration(0)?;
                self.expect(Kind::Comma)?;
                let b = self.parse_duration(0)?;
                self.expect(Kind::RightParen)?;
                self.experimental_duration(t.pos);
                let (a, b) = (Box::new(a.dur), Box::new(b.dur));
                Ok(DurNode {
                    dur: if t.kind == Kind::MaxOf {
                        DurationExpr::MaxOf(a, b)
                    } else {
                        DurationExpr::MinOf(a, b)
                    },
                    start: t.pos,
                    literal: false,
                })
            }
            Kind::LeftParen => {
                self.advance();
                let inner = self.parse_duration(0)?;
                self.expect(Kind::RightParen)?;
                self.experimental_duration(inner.start);
                Ok(DurNode {
                    dur: DurationExpr::Paren(Box::new(inner.dur)),
                    start: t.pos,
                    literal: false,
                })
            }
            _ => Err(self.fail()),
        }
    }

    fn experimental_duration(&mut self, pos: usize) {
        if !self.options.duration_expressions {
            self.soft(pos, "experimental duration expression is not enabled");
        }
    }

    /// A range or step: milliseconds of a literal, which must be
    /// positive, or the expression the engine computes when the query runs
    /// (and checks then, as Prometheus does).
    fn positive_duration(&mut self, d: DurNode) -> (i64, Option<DurationExpr>) {
        match d.dur {
            DurationExpr::Number(seconds) if d.literal => {
                if seconds <= 0.0 {
                    self.soft(d.start, "duration must be greater than 0");
                    return (0, None);
                }
                (seconds_to_ms(seconds), None)
            }
            other => (0, Some(other)),
        }
    }

    fn parse_offset(&mut self, node: Node) -> PResult<Node> {
        let d = self.with_context(("offset", "number, duration, step(), or range()"), |p| {
            p.parse_offset_duration()
        })?;
        let (ms, offset_expr) = match d.dur {
            DurationExpr::Number(seconds) if d.literal => (seconds_to_ms(seconds), None),
            other => (0, Some(other)),
        };
        let (mut expr, span) = node;
        let slot = match &mut expr {
            Expr::VectorSelector(vs) => Some((&mut vs.offset_ms, &mut vs.offset_expr)),
            Expr::MatrixSelector(ms) => {
                Some((&mut ms.selector.offset_ms, &mut ms.selector.offset_expr))
            }
            Expr::Subquery(sq) => Some((&mut sq.offset_ms, &mut sq.offset_expr)),
            _ => None,
        };
        match slot {
            None => self.soft(
                span.start,
                "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
            ),
            Some((slot, slot_expr)) if *slot != 0 || slot_expr.is_some() => {
                self.soft(span.start, "offset may not be set multiple times");
            }
            Some((slot, slot_expr)) => {
                *slot = ms;
                *slot_expr = offset_expr;
            }
        }
        let end = self.tokens[self.next.saturating_sub(1)].end;
        Ok((expr, Span { end, ..span }))
    }

    /// What may follow `offset`: a signed literal, `step()`, `range()`,
    /// `min_of`/`max_of`, or a parenthesised duration expression; a
    /// binary operator after it belongs to the enclosing expression
    /// (`foo offset 5s - 8` is `(foo offset 5s) - 8`).
    fn parse_offset_duration(&mut self) -> PResult<DurNode> {
        let t = self.peek();
        if matches!(t.kind, Kind::Add | Kind::Sub) {
            self.advance();
            let wrapped = self.peek_kind() == Kind::LeftParen;
            let inner = if wrapped {
                self.advance();
                let inner = self.parse_duration(0)?;
                self.expect(Kind::RightParen)?;
                DurNode {
                    dur: DurationExpr::Paren(Box::new(inner.dur)),
                    start: inner.start,
                    literal: false,
                }
            } else {
                self.parse_duration_primary()?
            };
            return Ok(self.apply_duration_sign(t, inner));
        }
        self.parse_duration_primary()
    }

    fn parse_at(&mut self, node: Node) -> PResult<Node> {
        let at = self.with_context(("@", "timestamp"), |p| {
            let t = p.peek();
            match t.kind {
                Kind::Start | Kind::End => {
                    p.advance();
                    p.expect(Kind::LeftParen)?;
                    p.expect(Kind::RightParen)?;
                    Ok(if t.kind == Kind::Start {
                        At::Start
                    } else {
                        At::End
                    })
                }
                _ => {
                    let mut sign = 1.0;
                    if matches!(t.kind, Kind::Add | Kind::Sub) {
                        p.advance();
                        if t.kind == Kind::Sub {
                            sign = -1.0;
                        }
                    }
                    let n = p.peek();
                    let v = match n.kind {
                        Kind::Number => p.number(n),
                        Kind::Duration => p.duration_seconds(n),
                        _ => return Err(p.fail()),
                    };
                    p.advance();
                    let ts = sign * v;
                    // Prometheus refuses what does not fit an int64 of
                    // seconds; osprey also what does not fit its
                    // milliseconds with room for arithmetic.
                    if !ts.is_finite() || ts.abs() >= 9.2e15 {
                        p.soft(
                            node.1.start,
                            format!("timestamp out of bounds for @ modifier: {}", go_float_f(ts)),
                        );
                        return Ok(At::Time(0));
                    }
                    Ok(At::Time((ts * 1000.0).round() as i64))
                }
            }
        })?;
        let (mut expr, span) = node;
        let slot = match &mut expr {
            Expr::VectorSelector(vs) => Some(&mut vs.at),
            Expr::MatrixSelector(ms) => Some(&mut ms.selector.at),
            Expr::Subquery(sq) => Some(&mut sq.at),
            _ => None,
        };
        match slot {
            None => self.soft(
                span.start,
                "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
            ),
            Some(slot) if slot.is_some() => {
                self.soft(span.start, "@ <timestamp> may not be set multiple times");
            }
            Some(slot) => *slot = Some(at),
        }
        let end = self.tokens[self.next.saturating_sub(1)].end;
        Ok((expr, Span { end, ..span }))
    }

    fn set_anchored_smoothed(&mut self, node: &mut Node, kind: Kind) {
        let word = if kind == Kind::Anchored {
            "anchored"
        } else {
            "smoothed"
        };
        if !self.options.extended_range_selectors {
            self.soft(
                node.1.start,
                format!("{word} modifier is experimental and not enabled"),
            );
            return;
        }
        let start = node.1.start;
        let vs = match &mut node.0 {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&mut ms.selector),
            _ => None,
        };
        if let Some(vs) = vs {
            if kind == Kind::Anchored {
                vs.anchored = true;
            } else {
                vs.smoothed = true;
            }
            if vs.anchored && vs.smoothed {
                self.soft(
                    start,
                    "anchored and smoothed modifiers cannot be used together",
                );
            }
            return;
        }
        match &node.0 {
            Expr::Subquery(_) => self.soft(
                node.1.start,
                format!("{word} modifier is not supported for subqueries"),
            ),
            _ => self.soft(node.1.start, format!("{word} modifier not implemented")),
        }
    }

    /// Prometheus's `parser.number`: Go's `ParseInt(s, 0, 64)`, else
    /// `ParseFloat`.
    fn number(&mut self, t: Token) -> f64 {
        let text = self.text(t);
        match go_parse_number(text) {
            Ok(v) => v,
            Err(why) => {
                let message = format!(
                    "error parsing number: strconv.ParseFloat: parsing {}: {why}",
                    go_quote(text)
                );
                self.soft(t.pos, message);
                0.0
            }
        }
    }

    fn duration_seconds(&mut self, t: Token) -> f64 {
        let text = self.text(t).to_string();
        match go_parse_duration(&text) {
            Ok(ms) => ms as f64 / 1000.0,
            Err(message) => {
                self.soft(t.pos, message);
                0.0
            }
        }
    }

    fn unquote(&mut self, t: Token) -> String {
        unquote(self.text(t))
    }
}

#[derive(Default)]
struct BinModifiers {
    return_bool: bool,
    matching: Option<Matching>,
    cardinality: Option<Cardinality>,
    fill: (Option<f64>, Option<f64>),
}

const PREC_POW: u8 = 6;

fn binary_precedence(kind: Kind) -> Option<(u8, bool)> {
    Some(match kind {
        Kind::Lor => (1, false),
        Kind::Land | Kind::Lunless => (2, false),
        Kind::Eqlc
        | Kind::Gte
        | Kind::Gtr
        | Kind::Lss
        | Kind::Lte
        | Kind::Neq
        | Kind::TrimUpper
        | Kind::TrimLower => (3, false),
        Kind::Add | Kind::Sub => (4, false),
        Kind::Mul | Kind::Div | Kind::Mod | Kind::Atan2 => (5, false),
        Kind::Pow => (PREC_POW, true),
        _ => return None,
    })
}

/// Tokens that Prometheus's grammar accepts as a metric name
/// (`metric_identifier`): identifiers and most keywords.
fn is_metric_identifier(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Identifier
            | Kind::MetricIdentifier
            | Kind::Aggregator(_)
            | Kind::By
            | Kind::Fill
            | Kind::FillLeft
            | Kind::FillRight
            | Kind::Land
            | Kind::Lor
            | Kind::Lunless
            | Kind::Offset
            | Kind::Without
            | Kind::Start
            | Kind::End
            | Kind::Step
            | Kind::Range
            | Kind::Anchored
            | Kind::Smoothed
            | Kind::MaxOf
            | Kind::MinOf
    )
}

/// Tokens accepted as a label name in grouping (`maybe_label`).
fn is_label_token(kind: Kind) -> bool {
    is_metric_identifier(kind)
        || matches!(
            kind,
            Kind::Bool
                | Kind::GroupLeft
                | Kind::GroupRight
                | Kind::Ignoring
                | Kind::On
                | Kind::Atan2
        )
}

/// Functions Prometheus marks experimental (behind
/// `promql-experimental-functions`).
fn is_experimental_function(name: &str) -> bool {
    matches!(
        name,
        "double_exponential_smoothing"
            | "end"
            | "histogram_quantiles"
            | "info"
            | "mad_over_time"
            | "max_of"
            | "min_of"
            | "range"
            | "sort_by_label"
            | "sort_by_label_desc"
            | "start"
            | "start_timestamp"
            | "step"
            | "ts_of_first_over_time"
            | "ts_of_last_over_time"
            | "ts_of_max_over_time"
            | "ts_of_min_over_time"
    )
}

/// Prometheus 3 functions osprey does not evaluate yet: known names, so
/// the error says so rather than calling them unknown.
fn is_prometheus_function(name: &str) -> bool {
    matches!(name, "start_timestamp")
}

/// A bad regex matcher's message in the words of Go's `regexp` (which
/// Prometheus reports), for the errors its syntax and ours share; others
/// keep the regex crate's own description after the same prefix.
fn regex_error(pattern: &str, message: &str) -> String {
    let reason = message
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(message);
    let anchored = format!("^(?:{pattern})$");
    let (code, expr) = match reason {
        "unclosed group" => ("missing closing )", anchored),
        "unopened group" => ("unexpected )", anchored),
        "unclosed character class" => ("missing closing ]", anchored),
        "repetition operator missing expression" => {
            ("missing argument to repetition operator", anchored)
        }
        "incomplete escape sequence, reached end of pattern prematurely" => {
            ("trailing backslash at end of expression", String::new())
        }
        other => return format!("error parsing regexp: {other}: `{pattern}`"),
    };
    format!("error parsing regexp: {code}: `{expr}`")
}

fn seconds_to_ms(seconds: f64) -> i64 {
    let ms = (seconds * 1000.0).round();
    if ms.is_nan() {
        0
    } else {
        ms.clamp(-9.2e15, 9.2e15) as i64
    }
}

/// 1-based line and byte column of byte `offset`, as Prometheus counts.
fn line_col(query: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(query.len());
    let before = &query.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let last_break = before.iter().rposition(|b| *b == b'\n');
    let col = match last_break {
        Some(i) => offset - i,
        None => offset + 1,
    };
    (line, col)
}

/// Go's `%f`.
fn go_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:.6}")
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, falling back to `ParseFloat`, for
/// the texts the lexer lets through as numbers.
fn go_parse_number(text: &str) -> Result<f64, &'static str> {
    if let Some(v) = go_parse_int(text) {
        return Ok(v as f64);
    }
    match go_parse_float(text) {
        None => Err("invalid syntax"),
        Some(v) if v.is_infinite() && !text.to_ascii_lowercase().contains("inf") => {
            Err("value out of range")
        }
        Some(v) => Ok(v),
    }
}

fn underscores_ok(s: &str) -> bool {
    // Go: `_` only between digits, or between a base prefix and a digit.
    let b = s.as_bytes();
    let mut prev_digit_or_prefix = false;
    let mut i = 0;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'x' | b'o' | b'b') {
        i = 2;
        prev_digit_or_prefix = true;
    }
    while i < b.len() {
        let c = b[i];
        if c == b'_' {
            if !prev_digit_or_prefix {
                return false;
            }
            let next_digit = b.get(i + 1).is_some_and(|n| n.is_ascii_hexdigit());
            if !next_digit {
                return false;
            }
            prev_digit_or_prefix = false;
        } else {
            prev_digit_or_prefix = c.is_ascii_hexdigit();
        }
        i += 1;
    }
    true
}

fn go_parse_int(text: &str) -> Option<i64> {
    if text.contains('_') && !underscores_ok(text) {
        return None;
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h.to_string(), 16)
    } else if let Some(o) = lower.strip_prefix("0o") {
        (o.to_string(), 8)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b.to_string(), 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (lower[1..].to_string(), 8)
    } else {
        (lower, 10)
    };
    if digits.is_empty() {
        return None;
    }
    i64::from_str_radix(&digits, radix).ok()
}

fn go_parse_float(text: &str) -> Option<f64> {
    if text.contains('_') && !underscores_ok(text) {
        return None;
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(digits) = lower.strip_prefix("0x") {
        // Hex integers too large for an int64 (hex floats need a `p`
        // exponent, which the lexer never lets through).
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return Some(digits.bytes().fold(0.0, |acc, b| {
            acc * 16.0 + (b as char).to_digit(16).unwrap_or(0) as f64
        }));
    }
    if !lower
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
    {
        return None;
    }
    lower.parse::<f64>().ok()
}

/// Prometheus's `parseDuration` (`model.ParseDuration`), with its
/// messages, in milliseconds.
fn go_parse_duration(s: &str) -> Result<i64, String> {
    const UNITS: &[(&str, i64)] = &[
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let invalid = || format!("not a valid duration string: {}", go_quote(s));
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    let mut last_unit = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            return Err(invalid());
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let n: u64 = s[start..i].parse().map_err(|_| invalid())?;
        let unit_start = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        if unit_start == i {
            return Err(invalid());
        }
        let unit = &s[unit_start..i];
        let Some(index) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!(
                "unknown unit {} in duration {}",
                go_quote(unit),
                go_quote(s)
            ));
        };
        if index < last_unit {
            return Err(invalid());
        }
        last_unit = index + 1;
        let mult = UNITS[index].1;
        // Go checks against nanoseconds in an int64.
        let max_ms = i64::MAX / 1_000_000;
        let add = i64::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .filter(|v| *v <= max_ms)
            .ok_or_else(|| "duration out of range".to_string())?;
        total = total
            .checked_add(add)
            .filter(|v| *v <= max_ms)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(total)
}

/// The value of a string literal as written (quotes included): escapes
/// decoded, bytes that are not UTF-8 kept as marked characters (see
/// [`INVALID_BYTE_BASE`]). The lexer has already checked the escapes.
fn unquote(text: &str) -> String {
    let Some(quote) = text.chars().next() else {
        return String::new();
    };
    let inner = text
        .get(1..text.len().saturating_sub(1))
        .unwrap_or_default();
    if quote == '`' {
        return inner.to_string();
    }
    let mut bytes: Vec<u8> = Vec::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        if c != '\\' {
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = chars.next() else { break };
        let simple = match e {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            '\'' => Some(b'\''),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(b) = simple {
            bytes.push(b);
            continue;
        }
        let (n, radix, first) = match e {
            '0'..='7' => (3, 8, Some(e)),
            'x' => (2, 16, None),
            'u' => (4, 16, None),
            'U' => (8, 16, None),
            _ => continue,
        };
        let mut value: u32 = 0;
        let mut digits = 0;
        if let Some(f) = first {
            value = f.to_digit(8).unwrap_or(0);
            digits = 1;
        }
        while digits < n {
            match chars.next().and_then(|c| c.to_digit(radix)) {
                Some(d) => value = value * radix + d,
                None => break,
            }
            digits += 1;
        }
        if matches!(e, 'x' | '0'..='7') {
            bytes.push(value as u8);
        } else if let Some(c) = char::from_u32(value) {
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    decode_marking_invalid(&bytes)
}

// ---------------------------------------------------------------------
// The type check (Prometheus's `checkAST`).

/// The children of an expression in the order their spans are kept.
fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {
            Vec::new()
        }
        Expr::Paren(x) | Expr::Unary { expr: x, .. } => vec![x],
        Expr::Subquery(s) => vec![&s.expr],
        Expr::Binary(b) => vec![&b.lhs, &b.rhs],
        Expr::Aggregate(a) => {
            let mut v: Vec<&Expr> = vec![&a.expr];
            if let Some(p) = &a.param {
                v.push(p);
            }
            v
        }
        Expr::Call(c) => c.args.iter().collect(),
    }
}

fn kid(span: &Span, i: usize) -> Span {
    span.kids
        .get(i)
        .cloned()
        .unwrap_or_else(|| Span::leaf(span.start, span.end))
}

fn err(pos: usize, message: impl Into<String>) -> Result<ValueType, ParseError> {
    Err(ParseError {
        pos,
        message: message.into(),
    })
}

fn check(e: &Expr, span: &Span, input: &str) -> Result<ValueType, ParseError> {
    let kids = children(e);
    let typ = e.value_type();
    match e {
        Expr::Number(_) | Expr::String(_) => {}
        Expr::VectorSelector(vs) => check_selector(vs, span.start)?,
        Expr::MatrixSelector(ms) => check_selector(&ms.selector, span.start)?,
        Expr::Paren(_) => {
            check(kids[0], &kid(span, 0), input)?;
        }
        Expr::Unary { .. } => {
            let t = check(kids[0], &kid(span, 0), input)?;
            if !matches!(t, ValueType::Scalar | ValueType::Vector) {
                return err(
                    span.start,
                    format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                        go_quote(type_name(t))
                    ),
                );
            }
        }
        Expr::Subquery(_) => {
            let t = check(kids[0], &kid(span, 0), input)?;
            if t != ValueType::Vector {
                return err(
                    span.start,
                    format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        short_type_name(t)
                    ),
                );
            }
        }
        Expr::Aggregate(a) => {
            let expr_span = kid(span, 0);
            let t = check(&a.expr, &expr_span, input)?;
            if t != ValueType::Vector {
                return err(
                    expr_span.start,
                    format!(
                        "expected type instant vector in aggregation expression, got {}",
                        type_name(t)
                    ),
                );
            }
            let want = match a.op {
                AggregateOp::Topk
                | AggregateOp::Bottomk
                | AggregateOp::Quantile
                | AggregateOp::Limitk
                | AggregateOp::LimitRatio => Some(ValueType::Scalar),
                AggregateOp::CountValues => Some(ValueType::String),
                _ => None,
            };
            if let (Some(want), Some(param)) = (want, &a.param) {
                let param_span = kid(span, 1);
                let t = check(param, &param_span, input)?;
                if t != want {
                    return err(
                        param_span.start,
                        format!(
                            "expected type {} in aggregation parameter, got {}",
                            type_name(want),
                            type_name(t)
                        ),
                    );
                }
            }
        }
        Expr::Binary(b) => {
            let (lspan, rspan) = (kid(span, 0), kid(span, 1));
            let lt = check(&b.lhs, &lspan, input)?;
            let rt = check(&b.rhs, &rspan, input)?;
            let op_pos = first_non_space(input, lspan.end);
            if b.return_bool && !b.op.is_comparison() {
                return err(
                    op_pos,
                    "bool modifier can only be used on comparison operators",
                );
            }
            if b.op.is_comparison()
                && !b.return_bool
                && lt == ValueType::Scalar
                && rt == ValueType::Scalar
            {
                return err(op_pos, "comparisons between scalars must use BOOL modifier");
            }
            if let (
                Some(Matching::On(on)),
                Cardinality::ManyToOne(inc) | Cardinality::OneToMany(inc),
            ) = (&b.matching, &b.cardinality)
            {
                for l in on {
                    if inc.contains(l) {
                        return err(
                            op_pos,
                            format!(
                                "label {} must not occur in ON and GROUP clause at once",
                                go_quote(l)
                            ),
                        );
                    }
                }
            }
            if !matches!(lt, ValueType::Scalar | ValueType::Vector) {
                return err(
                    lspan.start,
                    "binary expression must contain only scalar and instant vector types",
                );
            }
            if !matches!(rt, ValueType::Scalar | ValueType::Vector) {
                return err(
                    rspan.start,
                    "binary expression must contain only scalar and instant vector types",
                );
            }
            let fills = b.fill_lhs.is_some() || b.fill_rhs.is_some();
            if lt != ValueType::Vector || rt != ValueType::Vector {
                let labels = match &b.matching {
                    Some(Matching::On(l)) | Some(Matching::Ignoring(l)) => l.len(),
                    None => 0,
                };
                if labels > 0 {
                    return err(
                        span.start,
                        "vector matching only allowed between instant vectors",
                    );
                }
                if fills {
                    return err(
                        span.start,
                        "filling in missing series only allowed between instant vectors",
                    );
                }
            } else if b.op.is_set() {
                if matches!(
                    b.cardinality,
                    Cardinality::ManyToOne(_) | Cardinality::OneToMany(_)
                ) {
                    return err(
                        span.start,
                        format!(
                            "no grouping allowed for {} operation",
                            go_quote(b.op.as_str())
                        ),
                    );
                }
                if b.cardinality != Cardinality::ManyToMany {
                    return err(span.start, "set operations must always be many-to-many");
                }
                if fills {
                    return err(
                        span.start,
                        "filling in missing series not allowed for set operators",
                    );
                }
            }
            if (lt == ValueType::Scalar || rt == ValueType::Scalar) && b.op.is_set() {
                return err(
                    span.start,
                    format!(
                        "set operator {} not allowed in binary scalar expression",
                        go_quote(b.op.as_str())
                    ),
                );
            }
        }
        Expr::Call(c) => {
            let Some(sig) = crate::functions::signature(&c.func) else {
                return err(
                    span.start,
                    format!("unknown function with name {}", go_quote(&c.func)),
                );
            };
            let nargs = sig.args.len();
            let n = c.args.len();
            if sig.variadic == 0 {
                if nargs != n {
                    return err(
                        span.start,
                        format!(
                            "expected {nargs} argument(s) in call to {}, got {n}",
                            go_quote(&c.func)
                        ),
                    );
                }
            } else {
                let min = nargs.saturating_sub(1);
                if min > n {
                    return err(
                        span.start,
                        format!(
                            "expected at least {min} argument(s) in call to {}, got {n}",
                            go_quote(&c.func)
                        ),
                    );
                }
                let max = min + sig.variadic.max(0) as usize;
                if sig.variadic > 0 && max < n {
                    return err(
                        span.start,
                        format!(
                            "expected at most {max} argument(s) in call to {}, got {n}",
                            go_quote(&c.func)
                        ),
                    );
                }
            }
            // info()'s second argument is a label selector, which may
            // match the empty string.
            let mut info_selector = false;
            if c.func == "info" && c.args.len() > 1 {
                let t = c.args[1].value_type();
                if t != ValueType::Vector {
                    return err(
                        span.start,
                        format!(
                            "expected type instant vector in call to function \"info\", got {}",
                            type_name(t)
                        ),
                    );
                }
                match &c.args[1] {
                    Expr::VectorSelector(vs) if vs.name.is_some() => {
                        return err(
                            kid(span, 1).start,
                            "expected label selectors only, got vector selector instead",
                        );
                    }
                    Expr::VectorSelector(_) => info_selector = true,
                    _ => return err(kid(span, 1).start, "expected label selectors only"),
                }
            }
            for (j, arg) in c.args.iter().enumerate() {
                if info_selector && j == 1 {
                    continue;
                }
                let i = if j >= nargs {
                    if sig.variadic == 0 || nargs == 0 {
                        break;
                    }
                    nargs - 1
                } else {
                    j
                };
                let arg_span = kid(span, j);
                let t = check(arg, &arg_span, input)?;
                let want = sig.args[i];
                if t != want {
                    return err(
                        arg_span.start,
                        format!(
                            "expected type {} in call to function {}, got {}",
                            type_name(want),
                            go_quote(&c.func),
                            type_name(t)
                        ),
                    );
                }
            }
        }
    }
    Ok(typ)
}

fn check_selector(vs: &VectorSelector, pos: usize) -> Result<(), ParseError> {
    if let Some(name) = &vs.name {
        // The first matcher is the name written outside the braces.
        for m in vs.matchers.iter().skip(1) {
            if m.name() == model::METRIC_NAME {
                return Err(ParseError {
                    pos,
                    message: format!(
                        "metric name must not be set twice: {} or {}",
                        go_quote(name),
                        go_quote(m.value())
                    ),
                });
            }
        }
        return Ok(());
    }
    if !vs.matchers.iter().any(|m| !m.matches_empty()) {
        return Err(ParseError {
            pos,
            message: "vector selector must contain at least one non-empty matcher".into(),
        });
    }
    Ok(())
}

fn first_non_space(input: &str, from: usize) -> usize {
    let b = input.as_bytes();
    let mut i = from;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------
// Bytes that are not UTF-8 in string literals.

/// A byte that is not part of valid UTF-8 is kept as the private-use
/// character `INVALID_BYTE_BASE + byte`, so checks can reject it and
/// messages can print it back as `\\xNN`.
pub(crate) const INVALID_BYTE_BASE: u32 = 0xF700;

fn decode_marking_invalid(mut bytes: &[u8]) -> String {
    let mut out = String::new();
    while !bytes.is_empty() {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                out.push_str(std::str::from_utf8(&bytes[..good]).unwrap_or(""));
                let bad = e.error_len().unwrap_or(bytes.len() - good).max(1);
                for &b in &bytes[good..good + bad] {
                    out.push(char::from_u32(INVALID_BYTE_BASE + b as u32).unwrap_or('?'));
                }
                bytes = &bytes[good + bad..];
            }
        }
    }
    out
}

/// Whether a string holds a byte that was not valid UTF-8 in the query.
pub(crate) fn has_invalid_bytes(s: &str) -> bool {
    s.chars()
        .any(|c| (INVALID_BYTE_BASE..INVALID_BYTE_BASE + 256).contains(&(c as u32)))
}

/// Go's `%q` of a string, printing marked invalid bytes as `\\xNN`.
pub(crate) fn go_quote_bytes(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        let v = c as u32;
        if (INVALID_BYTE_BASE..INVALID_BYTE_BASE + 256).contains(&v) {
            out.push_str(&format!("\\x{:02x}", v - INVALID_BYTE_BASE));
        } else {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(query: &str) -> String {
        parse(query).map(|_| ()).unwrap_err().message().to_string()
    }

    /// Found by benches/backtest_speed.py: a recording rule's name with
    /// `:inf` or `:nan` in it was refused as an infinite duration.
    #[test]
    fn colon_names_that_look_like_numbers() {
        for query in [
            "model:inference_latency:avg3h > 0.05",
            "job:nan_ratio",
            "sum_over_time(a:infx[5m:1m])",
        ] {
            assert!(parse(query).is_ok(), "{query}");
        }
        assert!(parse("a[5m:1e30]").is_err());
        assert!(parse("a offset inf").is_err());
    }

    #[test]
    fn osprey_functions_parse() {
        for (query, ok) in [
            ("anomaly_score(m[1h])", true),
            ("anomaly_band(m[1h], 3)", true),
            ("anomaly_score_seasonal(m[8d], 1800, 86400)", true),
            ("anomaly_score_seasonal(m[8d], 1800, 86400, 604800)", true),
            ("anomaly_band_seasonal(m[8d], 3, 1800, 86400, 604800)", true),
            ("anomaly_score(m)", false),
            ("anomaly_band(m[1h])", false),
            ("anomaly_score_seasonal(m[8d], 1800)", false),
            ("anomaly_band_seasonal(m[8d], 3, 1800)", false),
            ("drift_psi(a_bucket, b_bucket)", true),
            ("drift_kl(a_bucket, b_bucket)", true),
            ("drift_js(a_bucket, b_bucket)", true),
            ("drift_hellinger(a_bucket, b_bucket)", true),
            ("drift_ks(a_bucket, b_bucket)", true),
            ("drift_wasserstein(a_bucket, b_bucket)", true),
            ("drift_psi(a_bucket)", false),
        ] {
            assert_eq!(parse(query).is_ok(), ok, "{query}");
        }
        assert!(error_of("anomaly_band(m[1h])").contains("anomaly_band"));
        assert!(error_of("drift_psi(a_bucket)").contains("drift_psi"));
    }

    /// Messages and positions as Prometheus answers these queries. The
    /// table checked against a running Prometheus is in
    /// `crates/osprey/tests/promql_errors.rs`.
    #[test]
    fn parse_errors_carry_prometheus_positions() {
        let cases = [
            ("sum(up", "1:7: parse error: unclosed left parenthesis"),
            (
                "foo{",
                "1:5: parse error: unexpected end of input inside braces",
            ),
            (
                "rate(up[5m]",
                "1:12: parse error: unclosed left parenthesis",
            ),
            ("up +", "1:5: parse error: unexpected end of input"),
            ("1 + ", "1:5: parse error: unexpected end of input"),
            (
                "nosuchfn(up)",
                "1:1: parse error: unknown function with name \"nosuchfn\"",
            ),
            ("up[5m", "1:6: parse error: unclosed left bracket"),
            (
                "rate(up)",
                "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector",
            ),
            (
                "up offset",
                "1:10: parse error: unexpected end of input in offset, expected number, duration, step(), or range()",
            ),
            (
                "\"unterminated",
                "1:1: parse error: unterminated quoted string",
            ),
            (
                "sum(rate(x[5m]) foo)",
                "1:17: parse error: unexpected identifier \"foo\" in aggregation",
            ),
            (
                "a +\n  on b",
                "2:6: parse error: unexpected identifier \"b\" in grouping opts, expected \"(\"",
            ),
            (
                "{a=1}",
                "1:4: parse error: unexpected character inside braces: '1'",
            ),
        ];
        for (query, want) in cases {
            assert_eq!(error_of(query), want, "{query}");
        }
    }

    #[test]
    fn numbers_and_durations() {
        for (query, want) in [
            ("0x1F", 31.0),
            ("010", 8.0),
            ("1_000", 1000.0),
            ("1e3", 1000.0),
            ("5m", 300.0),
            ("-1h30m", -5400.0),
            (".5", 0.5),
            ("- 2 ^ 2", -4.0),
        ] {
            match parse(query).expect(query) {
                Expr::Number(v) => assert_eq!(v, want, "{query}"),
                Expr::Unary { negate: true, expr } => {
                    assert!(matches!(*expr, Expr::Binary(_)), "{query}");
                    assert_eq!(want, -4.0);
                }
                other => panic!("{query}: {other:?}"),
            }
        }
        assert!(parse("Inf").is_ok());
        assert!(parse("NaN").is_ok());
    }

    #[test]
    fn precedence_and_modifiers() {
        let cases = [
            ("a + b * c", "a + b * c"),
            ("(a + b) * c", "(a + b) * c"),
            ("a ^ b ^ c", "a ^ b ^ c"),
            ("-a ^ b", "-a ^ b"),
            ("a offset 5m + b", "a offset 5m + b"),
            ("a offset 5s - 8", "a offset 5s - 8"),
            ("rate(a[5m] offset -1h)", "rate(a[5m] offset -1h)"),
            ("a @ 100 offset 1m", "a offset 1m @ 100.000"),
            ("sum without (x) (a)", "sum without (x) (a)"),
            ("sum(a) by (x)", "sum by (x) (a)"),
            ("a / on (x) group_left (y) b", "a / on (x) group_left (y) b"),
            ("a > bool 1", "a > bool 1"),
            (
                "max_over_time(a[1h:5m] @ end())",
                "max_over_time(a[1h:5m] @ end())",
            ),
            (
                "{__name__=~\"a.*\", job!=\"x\"}",
                "{__name__=~\"a.*\", job!=\"x\"}",
            ),
            ("topk(3, a)", "topk(3, a)"),
            ("a[5]", "a[5s]"),
            ("a and b or c unless d", "a and b or c unless d"),
        ];
        for (query, want) in cases {
            let expr = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
            assert_eq!(crate::format(&expr), want, "{query}");
        }
        let Ok(Expr::Binary(b)) = parse("a or b and c") else {
            panic!("binary")
        };
        assert_eq!(b.op, BinaryOp::Or);
    }

    #[test]
    fn invalid_bytes_in_strings() {
        let Ok(Expr::String(s)) = parse("\"\\xff\"") else {
            panic!("string")
        };
        assert!(has_invalid_bytes(&s));
        let Ok(Expr::String(s)) = parse("\"\\u00e9\\n\"") else {
            panic!("string")
        };
        assert_eq!(s, "é\n");
    }

    #[test]
    fn experimental_syntax_is_refused_unless_enabled() {
        assert_eq!(
            error_of("a[5m+1m]"),
            "1:3: parse error: experimental duration expression is not enabled"
        );
        assert_eq!(
            error_of("a[5m] anchored"),
            "1:1: parse error: anchored modifier is experimental and not enabled"
        );
        assert_eq!(
            error_of("a + fill(0) b"),
            "1:1: parse error: binop fill modifiers are experimental and not enabled"
        );
        let folded = parse_with("a[5m+1m]", ParseOptions::ALL).expect("enabled");
        assert_eq!(crate::format(&folded), "a[300 + 60]");
    }

    /// A cheap stand-in for the fuzz target in every `cargo test`: token
    /// soup from a fixed generator never panics the parser, and whatever
    /// parses prints to text that parses to the same tree.
    #[test]
    fn token_soup_parses_or_errs_and_round_trips() {
        const TOKENS: &[&str] = &[
            "sum",
            "(",
            ")",
            "{",
            "}",
            "[",
            "]",
            ",",
            "a",
            "b:c",
            "\"x\"",
            "'y'",
            "`z`",
            "=",
            "!=",
            "=~",
            "!~",
            "1",
            "0x1f",
            "1.5e3",
            "5m",
            "1h30m",
            "+",
            "-",
            "*",
            "/",
            "%",
            "^",
            "==",
            ">",
            "<",
            ">=",
            "<=",
            "and",
            "or",
            "unless",
            "atan2",
            "offset",
            "@",
            "start()",
            "end()",
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
            "bool",
            "fill",
            "(0)",
            "anchored",
            "smoothed",
            "step()",
            "range()",
            "min_of",
            "max_of",
            ":",
            "rate",
            "info",
            "topk",
            "count_values",
            "\n",
            "#c\n",
            "\\",
            "é",
            "NaN",
            "Inf",
            "</",
            "5",
            ".5",
            "__name__",
            "le",
        ];
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut parsed = 0;
        for _ in 0..30_000 {
            let len = 1 + next(12);
            let mut query = String::new();
            for _ in 0..len {
                query.push_str(TOKENS[next(TOKENS.len())]);
                if next(3) == 0 {
                    query.push(' ');
                }
            }
            for options in [ParseOptions::OSPREY, ParseOptions::ALL] {
                let Ok(expr) = parse_uncached(&query, options) else {
                    continue;
                };
                parsed += 1;
                let printed = crate::format(&expr);
                let again = parse_uncached(&printed, options)
                    .unwrap_or_else(|e| panic!("{query:?} printed as {printed:?}: {e}"));
                if again != expr {
                    assert!(printed.contains("NaN"), "{query:?} printed as {printed:?}");
                }
            }
        }
        assert!(parsed > 100, "{parsed}");
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let query = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(parse(&query).is_err());
        let query = format!("{}1", "-".repeat(500));
        assert!(parse(&query).is_err());
    }
}
