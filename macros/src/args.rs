//! Phase 1: tokens to a raw model that keeps every span. Nothing here decides what a value
//! means (that is `valid`); this only records what was written and where.
//!
//! Every parser takes a `proc_macro2::TokenStream` so that the unit and fuzz tests can drive
//! it without a compiler.

use crate::ctxt::Ctxt;
use proc_macro2::{Delimiter, Punct, Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, LitStr, Pat, Token};

/// `BACKEND (, KEY = VALUE)*` or `KEY = VALUE (, KEY = VALUE)*`, as written.
pub(crate) struct RawArgs {
    /// The positional first argument.
    pub backend: Option<Expr>,
    pub entries: Vec<RawEntry>,
    /// Where to point when the header is empty.
    pub span: Span,
    /// False after a syntax error: the header may look empty only because parsing stopped.
    pub complete: bool,
}

/// One `KEY = VALUE`.
pub(crate) struct RawEntry {
    pub key: Ident,
    pub value: Expr,
}

impl RawEntry {
    /// The key without a raw-identifier prefix: `r#type = 1` sets `type`.
    pub(crate) fn name(&self) -> String {
        let key = self.key.to_string();
        key.strip_prefix("r#").map(str::to_owned).unwrap_or(key)
    }
}

/// The whole input of `parallel!`.
pub(crate) struct RawParallel {
    pub header: RawHeader,
    pub body: RawBody,
}

pub(crate) enum RawHeader {
    /// `parallel!(EXPR for PAT in ITER)`.
    Absent,
    /// `parallel!(HEADER; ...)`.
    Args(RawArgs),
    /// `parallel!(@bound("threading"); ...)`: written by `#[parallel_backend]` into the
    /// header-less invocations of the function it annotates. Never written by users.
    Bound(RawBound),
}

/// What `#[parallel_backend]` knew statically about its backend: the built-in name, or
/// `None` when the backend is a run-time expression or the attribute names none.
pub(crate) struct RawBound {
    pub backend: Option<LitStr>,
}

pub(crate) enum RawBody {
    Comprehension(Box<RawComprehension>),
    /// The statements of the block form, untouched: rustc parses them where they end up, so
    /// any syntax rustc accepts works and its errors point at the user's tokens.
    Block(TokenStream),
}

/// `EXPR for PAT in ITER [if COND]`.
pub(crate) struct RawComprehension {
    pub expr: Expr,
    pub pat: Pat,
    pub iter: Expr,
    pub cond: Option<Expr>,
}

/// `delayed!(PATH(ARGS))`.
pub(crate) struct RawDelayed {
    pub func: Expr,
    pub args: Vec<Expr>,
}

/// Parses a header. Syntax errors stop the parse (later items would only produce noise);
/// the items read before the error are kept so that their checks still run.
pub(crate) fn parse_args(tokens: TokenStream, empty_span: Span, cx: &mut Ctxt) -> RawArgs {
    let mut args = RawArgs {
        backend: None,
        entries: Vec::new(),
        span: empty_span,
        complete: true,
    };
    let parser = |input: ParseStream<'_>| parse_args_into(input, &mut args, cx);
    if let Err(error) = parser.parse2(tokens) {
        cx.syn_error(error);
        args.complete = false;
    }
    args
}

fn parse_args_into(input: ParseStream<'_>, args: &mut RawArgs, cx: &mut Ctxt) -> syn::Result<()> {
    let mut first = true;
    while !input.is_empty() {
        if input.peek(Token![,]) {
            return Err(input.error("expected a backend or `KEY = VALUE`, found `,`"));
        }
        if starts_key_value(input) {
            let key = input.call(Ident::parse_any)?;
            input.parse::<Token![=]>()?;
            if input.is_empty() || input.peek(Token![,]) {
                let message = format!("expected a value after `{key} =`");
                return Err(syn::Error::new(key.span(), message));
            }
            let value = input.parse()?;
            args.entries.push(RawEntry { key, value });
        } else {
            let expr: Expr = input.parse()?;
            if first {
                args.backend = Some(expr);
            } else if args.backend.is_some() {
                cx.error_spanned(
                    &expr,
                    "expected `KEY = VALUE`: only the first argument can be a backend",
                );
            } else {
                cx.error_spanned(
                    &expr,
                    "the backend must come first, before any `KEY = VALUE`",
                );
            }
        }
        first = false;
        if input.is_empty() {
            break;
        }
        if !input.peek(Token![,]) {
            return Err(input.error(format!("expected `,`{}", found(input))));
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

/// `IDENT =` but not `IDENT ==` or `IDENT =>`: a positional expression may start with an
/// identifier too.
fn starts_key_value(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    fork.call(Ident::parse_any).is_ok()
        && fork.peek(Token![=])
        && !fork.peek(Token![==])
        && !fork.peek(Token![=>])
}

/// Parses the input of `parallel!`. `None` when it is too broken to expand at all.
pub(crate) fn parse_parallel(tokens: TokenStream, cx: &mut Ctxt) -> Option<RawParallel> {
    if tokens.is_empty() {
        cx.error(
            Span::call_site(),
            "`parallel!` expects a comprehension `EXPR for PAT in ITER` \
             or a header and statements `HEADER; STMTS`",
        );
        return None;
    }
    let (header_tokens, semi, rest) = split_header(tokens);
    let Some(semi) = semi else {
        let comprehension = parse_comprehension(header_tokens)
            .map_err(|e| cx.syn_error(e))
            .ok()?;
        return Some(RawParallel {
            header: RawHeader::Absent,
            body: RawBody::Comprehension(Box::new(comprehension)),
        });
    };
    let header = match bound_marker(&header_tokens) {
        Some(at) => match parse_bound(header_tokens) {
            Ok(bound) => RawHeader::Bound(bound),
            Err(_) => {
                // Only the attribute writes `@bound`, so a malformed one is a user typing
                // `@`: report it as an ordinary unexpected token.
                cx.error(at, "unexpected `@` in the header of `parallel!`");
                return None;
            }
        },
        None => RawHeader::Args(parse_args(header_tokens, semi.span(), cx)),
    };
    // A bound call was header-less as written, so it can only be a comprehension.
    let body = if matches!(header, RawHeader::Bound(_)) || looks_like_comprehension(&rest) {
        let comprehension = parse_comprehension(rest)
            .map_err(|e| cx.syn_error(e))
            .ok()?;
        RawBody::Comprehension(Box::new(comprehension))
    } else {
        RawBody::Block(rest)
    };
    Some(RawParallel { header, body })
}

/// Splits at the first `;` outside any group. A header can hold a `;` only inside a group
/// (`[0; 3]`, a block), so the first bare one ends it; a header-less comprehension has none.
pub(crate) fn split_header(tokens: TokenStream) -> (TokenStream, Option<Punct>, TokenStream) {
    let mut iter = tokens.into_iter();
    let mut header = TokenStream::new();
    for tree in iter.by_ref() {
        match tree {
            TokenTree::Punct(punct) if punct.as_char() == ';' => {
                return (header, Some(punct), iter.collect());
            }
            other => header.extend([other]),
        }
    }
    (header, None, TokenStream::new())
}

/// The span of the `@` that starts a `@bound(..)` header, if the header starts with one.
fn bound_marker(tokens: &TokenStream) -> Option<Span> {
    match tokens.clone().into_iter().next() {
        Some(TokenTree::Punct(at)) if at.as_char() == '@' => Some(at.span()),
        _ => None,
    }
}

fn parse_bound(tokens: TokenStream) -> syn::Result<RawBound> {
    let parser = |input: ParseStream<'_>| {
        input.parse::<Token![@]>()?;
        let name = input.call(Ident::parse_any)?;
        if name != "bound" {
            return Err(syn::Error::new(name.span(), "expected `bound`"));
        }
        let content;
        syn::parenthesized!(content in input);
        let backend = if content.is_empty() {
            None
        } else {
            Some(content.parse()?)
        };
        Ok(RawBound { backend })
    };
    parser.parse2(tokens)
}

/// After a header, the rest is a comprehension when an expression is followed by `for`, or
/// when it has a bare `in` without any `for` (a comprehension that lost its `for`, which is
/// better reported as such than as a broken statement).
fn looks_like_comprehension(rest: &TokenStream) -> bool {
    let expr_then_for = |input: ParseStream<'_>| {
        let ok =
            !input.peek(Token![for]) && input.parse::<Expr>().is_ok() && input.peek(Token![for]);
        // Leave the rest unread: this is a look-ahead, the real parse comes after.
        input.parse::<TokenStream>()?;
        Ok(ok)
    };
    if expr_then_for.parse2(rest.clone()).unwrap_or(false) {
        return true;
    }
    let mut has_in = false;
    for tree in rest.clone() {
        if let TokenTree::Ident(ident) = tree {
            if ident == "for" {
                return false;
            }
            has_in |= ident == "in";
        }
    }
    has_in
}

/// Parses `EXPR for PAT in ITER [if COND]`.
pub(crate) fn parse_comprehension(tokens: TokenStream) -> syn::Result<RawComprehension> {
    let parser = |input: ParseStream<'_>| {
        if input.is_empty() {
            return Err(input.error("expected a comprehension `EXPR for PAT in ITER`"));
        }
        if input.peek(Token![for]) {
            return Err(input.error(
                "expected an expression before `for`: a comprehension is `EXPR for PAT in ITER`",
            ));
        }
        let expr = input.parse()?;
        if !input.peek(Token![for]) {
            return Err(input.error(format!(
                "expected `for` after the expression{}",
                found(input)
            )));
        }
        input.parse::<Token![for]>()?;
        if input.is_empty() || input.peek(Token![in]) {
            return Err(input.error(format!("expected a pattern after `for`{}", found(input))));
        }
        let pat = Pat::parse_multi_with_leading_vert(input)?;
        if !input.peek(Token![in]) {
            return Err(input.error(format!("expected `in` after the pattern{}", found(input))));
        }
        input.parse::<Token![in]>()?;
        if input.is_empty() || input.peek(Token![if]) {
            return Err(input.error(format!("expected an iterator after `in`{}", found(input))));
        }
        let iter = input.parse()?;
        let cond = if input.peek(Token![if]) {
            input.parse::<Token![if]>()?;
            if input.is_empty() {
                return Err(input.error("expected a condition after `if`"));
            }
            Some(input.parse()?)
        } else {
            None
        };
        if input.peek(Token![for]) {
            return Err(input.error(
                "a comprehension has one `for` clause: iterate over pairs instead, \
                 e.g. `f(x, y) for (x, y) in PAIRS`",
            ));
        }
        if !input.is_empty() {
            let expected = if cond.is_some() {
                "the end of the comprehension"
            } else {
                "`if` or the end of the comprehension"
            };
            return Err(input.error(format!("expected {expected}{}", found(input))));
        }
        Ok(RawComprehension {
            expr,
            pat,
            iter,
            cond,
        })
    };
    parser.parse2(tokens)
}

/// Parses the input of `delayed!`.
pub(crate) fn parse_delayed(tokens: TokenStream) -> syn::Result<RawDelayed> {
    if tokens.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "`delayed!` expects a function call `path(args)`",
        ));
    }
    let parser = |input: ParseStream<'_>| {
        let expr: Expr = input.parse()?;
        if !input.is_empty() {
            return Err(input.error(format!(
                "`delayed!` takes one function call{}",
                found(input)
            )));
        }
        Ok(expr)
    };
    match parser.parse2(tokens)? {
        // `macro_rules!` forwards a `$f:path` in an invisible group.
        Expr::Call(call) if matches!(peel(&call.func), Expr::Path(_)) => Ok(RawDelayed {
            func: *call.func,
            args: call.args.into_iter().collect(),
        }),
        Expr::MethodCall(call) => Err(syn::Error::new(
            call.method.span(),
            "expected a function call `path(args)`, found a method call\n\
             = help: call the method through its path so the receiver is an argument: \
             `Type::method(receiver, args)`",
        )),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a function call `path(args)`",
        )),
    }
}

/// ", found `tok`" for the next token, or "" at the end of the input (the span then points
/// at the whole invocation, which says "end" well enough).
/// Sees through the parentheses and invisible groups that `macro_rules!` forwarding adds.
pub(crate) fn peel(mut expr: &Expr) -> &Expr {
    loop {
        match expr {
            Expr::Paren(inner) => expr = &inner.expr,
            Expr::Group(inner) => expr = &inner.expr,
            _ => return expr,
        }
    }
}

fn found(input: ParseStream<'_>) -> String {
    match input.cursor().token_tree() {
        Some((tree, _)) => format!(", found `{}`", describe(&tree)),
        None => String::new(),
    }
}

fn describe(tree: &TokenTree) -> String {
    match tree {
        TokenTree::Group(group) => match group.delimiter() {
            Delimiter::Parenthesis => "(".to_owned(),
            Delimiter::Bracket => "[".to_owned(),
            Delimiter::Brace => "{".to_owned(),
            Delimiter::None => match group.stream().into_iter().next() {
                Some(inner) => describe(&inner),
                None => "<empty>".to_owned(),
            },
        },
        other => other.to_string(),
    }
}
