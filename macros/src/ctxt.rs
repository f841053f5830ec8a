//! The error collector every phase reports into, so that one compile shows every mistake
//! (the model is serde_derive's `internals::ctxt::Ctxt`).

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use std::fmt::Display;

/// Errors gathered while parsing and checking one macro invocation.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An error pointing at `span`.
    pub(crate) fn error(&mut self, span: Span, message: impl Display) {
        self.errors.push(syn::Error::new(span, message));
    }

    /// An error with a hint, rendered under the message the way rustc prints `= help:` notes.
    /// Stable proc macros cannot attach real notes; a second line keeps the hint next to the
    /// error it belongs to instead of counting as an error of its own.
    pub(crate) fn error_with_help(
        &mut self,
        span: Span,
        message: impl Display,
        help: Option<String>,
    ) {
        match help {
            Some(help) => self.error(span, format!("{message}\n= help: {help}")),
            None => self.error(span, message),
        }
    }

    /// An error spanning every token of `tokens` (first to last).
    pub(crate) fn error_spanned(&mut self, tokens: impl quote::ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn syn_error(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Every error as `compile_error!` invocations, in the order they were found.
    pub(crate) fn to_compile_errors(&self) -> TokenStream {
        self.errors
            .iter()
            .map(syn::Error::to_compile_error)
            .collect()
    }

    /// The errors as one expression whose type is rustc's error type, for a function-like
    /// macro that has no code to emit: the last `compile_error!` is the block's value, so
    /// nothing the caller does with the value (`?`, a type annotation) adds an error of its own.
    pub(crate) fn to_compile_error_expr(&self) -> TokenStream {
        let mut tokens = TokenStream::new();
        let count = self.errors.len();
        for (index, error) in self.errors.iter().enumerate() {
            let error = error.to_compile_error();
            if index + 1 == count {
                tokens.extend(error.into_iter().map(parenthesize_group));
            } else {
                tokens.extend(error);
            }
        }
        let mut block = Group::new(Delimiter::Brace, tokens);
        block.set_span(Span::call_site());
        TokenTree::Group(block).into()
    }

    #[cfg(test)]
    pub(crate) fn messages(&self) -> Vec<String> {
        self.errors.iter().map(ToString::to_string).collect()
    }
}

/// `compile_error! { .. }` with braces is a statement; with parentheses, an expression.
fn parenthesize_group(tree: TokenTree) -> TokenTree {
    match tree {
        TokenTree::Group(group) if group.delimiter() == Delimiter::Brace => {
            let mut parenthesized = Group::new(Delimiter::Parenthesis, group.stream());
            parenthesized.set_span(group.span());
            TokenTree::Group(parenthesized)
        }
        other => other,
    }
}
