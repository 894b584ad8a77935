//! Prints our AST back to PromQL text, the way Prometheus's `String()`
//! does: canonical spacing, `by (…)` before the arguments, durations in
//! the largest units, `@` times in seconds with three decimals.

use crate::ast::{
    At, BinaryOp, Cardinality, DurationExpr, Expr, Grouping, Matching, VectorSelector,
};
use crate::functions::go_float;
use model::MatchOp;
use model::duration::format_duration_ms;

/// The canonical text of an expression.
pub fn format(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

fn is_legacy_name(s: &str, allow_colon: bool) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || (allow_colon && c == ':') => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (allow_colon && c == ':'))
}

pub(crate) fn go_quote(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            // The lexer refuses a literal U+FFFD (Go reads it as a bad byte).
            '\u{FFFD}' => s.push_str("\\ufffd"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                s.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// A duration expression; an offset's is always a single term (a sign
/// and a literal, call or parenthesised expression), so it needs no
/// parentheses of its own.
fn write_duration_expr(out: &mut String, d: &DurationExpr) {
    match d {
        DurationExpr::Number(v) => out.push_str(&go_float(*v)),
        DurationExpr::Step => out.push_str("step()"),
        DurationExpr::Range => out.push_str("range()"),
        DurationExpr::Neg(x) => {
            out.push('-');
            write_duration_expr(out, x);
        }
        DurationExpr::Paren(x) => {
            out.push('(');
            write_duration_expr(out, x);
            out.push(')');
        }
        DurationExpr::MinOf(a, b) | DurationExpr::MaxOf(a, b) => {
            out.push_str(if matches!(d, DurationExpr::MinOf(..)) {
                "min_of("
            } else {
                "max_of("
            });
            write_duration_expr(out, a);
            out.push_str(", ");
            write_duration_expr(out, b);
            out.push(')');
        }
        DurationExpr::Binary { op, lhs, rhs } => {
            write_duration_expr(out, lhs);
            out.push(' ');
            out.push_str(match op {
                BinaryOp::Add => "+",
                BinaryOp::Sub => "-",
                BinaryOp::Mul => "*",
                BinaryOp::Div => "/",
                BinaryOp::Mod => "%",
                _ => "^",
            });
            out.push(' ');
            write_duration_expr(out, rhs);
        }
    }
}

fn write_extended(out: &mut String, vs: &VectorSelector) {
    if vs.anchored {
        out.push_str(" anchored");
    }
    if vs.smoothed {
        out.push_str(" smoothed");
    }
}

fn write_duration(out: &mut String, ms: i64, expr: Option<&DurationExpr>) {
    match expr {
        Some(e) => write_duration_expr(out, e),
        None => out.push_str(&format_duration_ms(ms)),
    }
}

fn write_at_offset(
    out: &mut String,
    at: Option<At>,
    offset_ms: i64,
    offset_expr: Option<&DurationExpr>,
) {
    if let Some(e) = offset_expr {
        out.push_str(" offset ");
        write_duration_expr(out, e);
    } else if offset_ms != 0 {
        out.push_str(" offset ");
        out.push_str(&format_duration_ms(offset_ms));
    }
    match at {
        None => {}
        Some(At::Start) => out.push_str(" @ start()"),
        Some(At::End) => out.push_str(" @ end()"),
        Some(At::Time(t)) => {
            let sign = if t < 0 { "-" } else { "" };
            let a = t.unsigned_abs();
            out.push_str(&format!(" @ {sign}{}.{:03}", a / 1000, a % 1000));
        }
    }
}

fn write_selector_body(out: &mut String, vs: &VectorSelector) {
    let name = vs.name.as_deref();
    let mut rest = Vec::new();
    let mut name_written = false;
    for m in &vs.matchers {
        if !name_written
            && Some(m.value()) == name
            && m.name() == model::METRIC_NAME
            && m.op() == MatchOp::Equal
        {
            name_written = true;
            continue;
        }
        rest.push(m);
    }
    let mut parts: Vec<String> = Vec::new();
    match name {
        Some(n) if is_legacy_name(n, true) => out.push_str(n),
        Some(n) => parts.push(go_quote(n)),
        None => {}
    }
    for m in rest {
        let label = if is_legacy_name(m.name(), false) {
            m.name().to_string()
        } else {
            go_quote(m.name())
        };
        parts.push(format!("{label}{}{}", m.op().as_str(), go_quote(m.value())));
    }
    if !parts.is_empty() || name.is_none() {
        out.push('{');
        out.push_str(&parts.join(", "));
        out.push('}');
    }
}

fn label_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            if is_legacy_name(n, false) {
                n.clone()
            } else {
                go_quote(n)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::Number(v) => out.push_str(&go_float(*v)),
        Expr::String(s) => out.push_str(&go_quote(s)),
        Expr::Paren(inner) => {
            out.push('(');
            write_expr(out, inner);
            out.push(')');
        }
        Expr::Unary { negate, expr } => {
            out.push(if *negate { '-' } else { '+' });
            write_expr(out, expr);
        }
        Expr::VectorSelector(vs) => {
            write_selector_body(out, vs);
            write_at_offset(out, vs.at, vs.offset_ms, vs.offset_expr.as_ref());
            write_extended(out, vs);
        }
        Expr::MatrixSelector(ms) => {
            write_selector_body(out, &ms.selector);
            out.push('[');
            write_duration(out, ms.range_ms, ms.range_expr.as_ref());
            out.push(']');
            write_at_offset(
                out,
                ms.selector.at,
                ms.selector.offset_ms,
                ms.selector.offset_expr.as_ref(),
            );
            write_extended(out, &ms.selector);
        }
        Expr::Subquery(sq) => {
            write_expr(out, &sq.expr);
            out.push('[');
            write_duration(out, sq.range_ms, sq.range_expr.as_ref());
            out.push(':');
            if let Some(e) = &sq.step_expr {
                write_duration_expr(out, e);
            } else if let Some(step) = sq.step_ms {
                out.push_str(&format_duration_ms(step));
            }
            out.push(']');
            write_at_offset(out, sq.at, sq.offset_ms, sq.offset_expr.as_ref());
        }
        Expr::Binary(b) => {
            match &*b.lhs {
                // `+Inf ^ x` would read back as `+(Inf ^ x)`: a sign binds
                // looser than `^`.
                Expr::Number(v) if b.op == BinaryOp::Pow && *v == f64::INFINITY => {
                    out.push_str("Inf")
                }
                lhs => write_expr(out, lhs),
            }
            out.push(' ');
            out.push_str(b.op.as_str());
            if b.return_bool {
                out.push_str(" bool");
            }
            match &b.matching {
                Some(Matching::On(l)) => out.push_str(&format!(" on ({})", label_list(l))),
                // `ignoring ()` is the default, except before `group_x`.
                Some(Matching::Ignoring(l))
                    if !l.is_empty()
                        || matches!(
                            b.cardinality,
                            Cardinality::ManyToOne(_) | Cardinality::OneToMany(_)
                        ) =>
                {
                    out.push_str(&format!(" ignoring ({})", label_list(l)))
                }
                _ => {}
            }
            match &b.cardinality {
                Cardinality::ManyToOne(l) => {
                    out.push_str(&format!(" group_left ({})", label_list(l)))
                }
                Cardinality::OneToMany(l) => {
                    out.push_str(&format!(" group_right ({})", label_list(l)))
                }
                _ => {}
            }
            let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
            match (b.fill_lhs, b.fill_rhs) {
                (Some(l), Some(r)) if same(l, r) => {
                    out.push_str(&format!(" fill({})", go_float(l)))
                }
                (l, r) => {
                    if let Some(l) = l {
                        out.push_str(&format!(" fill_left({})", go_float(l)));
                    }
                    if let Some(r) = r {
                        out.push_str(&format!(" fill_right({})", go_float(r)));
                    }
                }
            }
            out.push(' ');
            write_expr(out, &b.rhs);
        }
        Expr::Aggregate(a) => {
            out.push_str(a.op.as_str());
            match &a.grouping {
                Some(Grouping::By(l)) => out.push_str(&format!(" by ({}) ", label_list(l))),
                Some(Grouping::Without(l)) => {
                    out.push_str(&format!(" without ({}) ", label_list(l)))
                }
                None => {}
            }
            out.push('(');
            if let Some(p) = &a.param {
                write_expr(out, p);
                out.push_str(", ");
            }
            write_expr(out, &a.expr);
            out.push(')');
        }
        Expr::Call(c) => {
            out.push_str(&c.func);
            out.push('(');
            for (i, a) in c.args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, a);
            }
            out.push(')');
        }
    }
}
