//! Literal values: reading numbers and strings out of expressions, and the checks of the
//! keys whose literals can be judged at compile time. Anything that is not a literal passes
//! through for rustc to type-check against the builder method.

use super::{BatchSize, Choice, Count, Timeout};
use crate::args::peel;
use crate::ctxt::Ctxt;
use crate::suggest::did_you_mean;
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Lit, UnOp};

/// How the duplicate-key error mentions the first setting: its value when it is short.
pub(super) fn first_setting(value: &Expr) -> String {
    let shown = match peel(value) {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Some(format!("{:?}", s.value())),
            Lit::Int(int) => Some(int.base10_digits().to_owned()),
            Lit::Float(float) => Some(float.base10_digits().to_owned()),
            Lit::Bool(b) => Some(b.value().to_string()),
            _ => None,
        },
        _ => number(value)
            .and_then(Result::ok)
            .map(|number| number.to_string()),
    };
    match shown {
        Some(shown) => format!("first set to `{shown}`"),
        None => "first set earlier in this header".to_owned(),
    }
}

/// A number written as a literal, possibly negated and parenthesised.
#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Int(int) => write!(f, "{int}"),
            Number::Float(float) => write!(f, "{float}"),
        }
    }
}

/// `None`: not a number literal. `Some(Err(span))`: a number too large to represent.
fn number(expr: &Expr) -> Option<Result<Number, Span>> {
    match peel(expr) {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => Some(
                int.base10_digits()
                    .parse::<i128>()
                    .map(Number::Int)
                    .map_err(|_| int.span()),
            ),
            Lit::Float(float) => Some(
                float
                    .base10_digits()
                    .parse::<f64>()
                    .map(Number::Float)
                    .map_err(|_| float.span()),
            ),
            _ => None,
        },
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => match number(&unary.expr)? {
            Ok(Number::Int(int)) => Some(Ok(Number::Int(-int))),
            Ok(Number::Float(float)) => Some(Ok(Number::Float(-float))),
            Err(span) => Some(Err(span)),
        },
        _ => None,
    }
}

/// Names the kind of a literal that is not what a key wants, for "expected X, found Y".
fn literal_kind(expr: &Expr) -> Option<(&'static str, Span)> {
    match peel(expr) {
        Expr::Lit(lit) => Some((
            match &lit.lit {
                Lit::Str(_) => "a string",
                Lit::ByteStr(_) | Lit::CStr(_) => "a byte string",
                Lit::Byte(_) | Lit::Char(_) => "a character",
                Lit::Int(_) => "an integer",
                Lit::Float(_) => "a float",
                Lit::Bool(_) => "a boolean",
                _ => "a literal",
            },
            lit.span(),
        )),
        _ => None,
    }
}

/// Checks an integer key. `None`: reported. `Some(None)`: an expression for rustc to type.
/// `Some(Some(..))`: a literal within `min..=max`.
pub(super) fn check_integer(
    name: &str,
    value: &Expr,
    min: i64,
    max: i64,
    cx: &mut Ctxt,
) -> Option<Option<i64>> {
    match number(value) {
        Some(Ok(Number::Int(int))) => {
            if int < i128::from(min) || int > i128::from(max) {
                let bound = if int < i128::from(min) {
                    format!("at least `{min}`")
                } else {
                    format!("at most `{max}`")
                };
                cx.error_spanned(value, format!("`{name}` must be {bound}, found `{int}`"));
                return None;
            }
            i64::try_from(int).ok().map(Some)
        }
        Some(Ok(Number::Float(_))) => {
            cx.error_spanned(
                value,
                format!("expected an integer for `{name}`, found a float"),
            );
            None
        }
        Some(Err(span)) => {
            cx.error(span, format!("`{name}` is out of range"));
            None
        }
        None => match literal_kind(value) {
            Some((kind, span)) => {
                cx.error(
                    span,
                    format!("expected an integer for `{name}`, found {kind}"),
                );
                None
            }
            None => Some(None),
        },
    }
}

pub(super) fn check_batch_size(value: &Expr, cx: &mut Ctxt) -> Option<BatchSize> {
    const EXPECTED: &str = "expected `\"auto\"` or a positive integer";
    if let Expr::Lit(lit) = peel(value)
        && let Lit::Str(s) = &lit.lit
    {
        if s.value() == "auto" {
            return Some(BatchSize::Auto(s.span()));
        }
        cx.error(
            s.span(),
            format!("invalid `batch_size` {:?}, {EXPECTED}", s.value()),
        );
        return None;
    }
    check_count("batch_size", value, EXPECTED, cx).map(BatchSize::Fixed)
}

pub(super) fn check_pre_dispatch(value: &Expr, cx: &mut Ctxt) -> Option<Count> {
    // Strings (`"all"`, `"2*n_jobs"`) are parsed by the runtime: its grammar is its own.
    if let Expr::Lit(lit) = peel(value)
        && let Lit::Str(_) = &lit.lit
    {
        return Some(Count::Expr(value.clone()));
    }
    check_count(
        "pre_dispatch",
        value,
        "expected a positive integer or a string like `\"2*n_jobs\"`",
        cx,
    )
}

/// A positive count; literals become `usize` so that `impl Into<..>` arguments infer.
fn check_count(name: &str, value: &Expr, expected: &str, cx: &mut Ctxt) -> Option<Count> {
    match number(value) {
        Some(Ok(Number::Int(int))) if int > 0 && usize::try_from(int).is_ok() => {
            usize::try_from(int)
                .ok()
                .map(|count| Count::Literal(count, value.span()))
        }
        Some(Ok(number)) => {
            cx.error_spanned(value, format!("invalid `{name}` `{number}`, {expected}"));
            None
        }
        Some(Err(span)) => {
            cx.error(span, format!("`{name}` is out of range"));
            None
        }
        None => match literal_kind(value) {
            Some((kind, span)) => {
                cx.error(span, format!("invalid `{name}`: {expected}, found {kind}"));
                None
            }
            None => Some(Count::Expr(value.clone())),
        },
    }
}

pub(super) fn check_timeout(value: &Expr, cx: &mut Ctxt) -> Option<Timeout> {
    const EXPECTED: &str = "expected a positive number of seconds or a `Duration`";
    let seconds = match number(value) {
        Some(Ok(Number::Int(int))) => int as f64,
        Some(Ok(Number::Float(float))) => float,
        Some(Err(span)) => {
            cx.error(span, "`timeout` is out of range");
            return None;
        }
        None => {
            return match literal_kind(value) {
                Some((kind, span)) => {
                    cx.error(span, format!("invalid `timeout`: {EXPECTED}, found {kind}"));
                    None
                }
                None => Some(Timeout::Expr(value.clone())),
            };
        }
    };
    // `Duration::from_secs_f64` panics on these at run time; say so at compile time instead.
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= u64::MAX as f64) {
        cx.error_spanned(value, format!("invalid `timeout` `{seconds}`, {EXPECTED}"));
        return None;
    }
    Some(Timeout::Seconds(seconds, value.span()))
}

/// A key whose literal values are a fixed set of strings; other expressions pass through.
pub(super) fn check_choice<T: Copy>(
    name: &str,
    value: &Expr,
    choices: &[(&str, T)],
    cx: &mut Ctxt,
) -> Option<Choice<T>> {
    let names = choices.iter().map(|(choice, _)| *choice);
    match peel(value) {
        Expr::Lit(lit) => {
            let Lit::Str(s) = &lit.lit else {
                let (kind, span) = literal_kind(value)?;
                cx.error(
                    span,
                    format!("expected {} for `{name}`, found {kind}", quoted_list(names)),
                );
                return None;
            };
            let found = s.value();
            if let Some(&(_, choice)) = choices.iter().find(|(choice, _)| *choice == found) {
                return Some(Choice::Known(choice, s.span()));
            }
            let help = did_you_mean(&found, names.clone())
                .map(|near| format!("did you mean `\"{near}\"`?"));
            let message = format!(
                "invalid `{name}` value {found:?}, expected {}",
                quoted_list(names)
            );
            cx.error_with_help(s.span(), message, help);
            None
        }
        _ => Some(Choice::Expr(value.clone())),
    }
}

/// "`\"a\"` or `\"b\"`".
fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|name| format!("`\"{name}\"`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}
