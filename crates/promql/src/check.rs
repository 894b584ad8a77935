//! Static checks on our AST: function names, arity and argument types,
//! aggregation parameters, operand types. The parser underneath does most
//! of this already; these checks make the engine safe whatever parser
//! feeds it, so evaluation never meets an argument of the wrong type.

use crate::QueryError;
use crate::ast::{AggregateOp, Expr, ValueType};
use crate::functions::signature;
use crate::parser::type_name;

pub(crate) fn check(e: &Expr) -> Result<(), QueryError> {
    match e {
        Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {
            Ok(())
        }
        Expr::Paren(inner) => check(inner),
        Expr::Unary { expr, .. } => {
            let t = expr.value_type();
            if !matches!(t, ValueType::Scalar | ValueType::Vector) {
                return Err(QueryError::bad_data(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    type_name(t)
                )));
            }
            check(expr)
        }
        Expr::Subquery(sq) => {
            let t = sq.expr.value_type();
            if !matches!(t, ValueType::Scalar | ValueType::Vector) {
                return Err(QueryError::bad_data(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    type_name(t)
                )));
            }
            check(&sq.expr)
        }
        Expr::Binary(b) => {
            let (lt, rt) = (b.lhs.value_type(), b.rhs.value_type());
            for t in [lt, rt] {
                if !matches!(t, ValueType::Scalar | ValueType::Vector) {
                    return Err(QueryError::bad_data(format!(
                        "binary expression must contain only scalar and instant vector types, got {}",
                        type_name(t)
                    )));
                }
            }
            if b.op.is_set() && (lt != ValueType::Vector || rt != ValueType::Vector) {
                return Err(QueryError::bad_data(format!(
                    "set operator \"{}\" not allowed in binary scalar expression",
                    b.op.as_str()
                )));
            }
            if b.op.is_comparison()
                && lt == ValueType::Scalar
                && rt == ValueType::Scalar
                && !b.return_bool
            {
                return Err(QueryError::bad_data(
                    "comparisons between scalars must use BOOL modifier",
                ));
            }
            check(&b.lhs)?;
            check(&b.rhs)
        }
        Expr::Aggregate(a) => {
            let t = a.expr.value_type();
            if t != ValueType::Vector {
                return Err(QueryError::bad_data(format!(
                    "expected type instant vector in aggregation expression, got {}",
                    type_name(t)
                )));
            }
            let want = match a.op {
                AggregateOp::CountValues => Some(ValueType::String),
                AggregateOp::Topk
                | AggregateOp::Bottomk
                | AggregateOp::Quantile
                | AggregateOp::Limitk
                | AggregateOp::LimitRatio => Some(ValueType::Scalar),
                _ => None,
            };
            match (want, &a.param) {
                (Some(w), Some(p)) => {
                    if p.value_type() != w {
                        return Err(QueryError::bad_data(format!(
                            "expected type {} in aggregation parameter, got {}",
                            type_name(w),
                            type_name(p.value_type())
                        )));
                    }
                    check(p)?;
                }
                (Some(_), None) => {
                    return Err(QueryError::bad_data(format!(
                        "no parameter given for aggregation {}",
                        a.op.as_str()
                    )));
                }
                _ => {}
            }
            check(&a.expr)
        }
        Expr::Call(c) => {
            let Some(sig) = signature(&c.func) else {
                return Err(QueryError::bad_data(format!(
                    "unknown function with name \"{}\"",
                    c.func
                )));
            };
            let n = c.args.len();
            let fixed = sig.args.len();
            let ok = match sig.variadic {
                0 => n == fixed,
                v if v > 0 => n + (v as usize) >= fixed && n <= fixed,
                _ => n + 1 >= fixed,
            };
            if !ok {
                return Err(QueryError::bad_data(format!(
                    "expected {} argument(s) in call to \"{}\", got {}",
                    fixed, c.func, n
                )));
            }
            for (i, a) in c.args.iter().enumerate() {
                let want = sig.args[i.min(fixed.saturating_sub(1))];
                let got = a.value_type();
                if got != want {
                    return Err(QueryError::bad_data(format!(
                        "expected type {} in call to function \"{}\", got {}",
                        type_name(want),
                        c.func,
                        type_name(got)
                    )));
                }
                check(a)?;
            }
            Ok(())
        }
    }
}
