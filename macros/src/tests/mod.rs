//! Unit tests of the phases, driven through `proc_macro2` without a compiler, and a fuzz test
//! that the macros never panic.

mod check;
mod expand;
mod fuzz;
mod parse;
mod runtime;

use crate::ctxt::Ctxt;
use proc_macro2::TokenStream;

/// Tokens from source text; the tests only write valid token text.
fn tokens(source: &str) -> TokenStream {
    source.parse().expect("test input is valid token text")
}

/// Parses and checks a header the way `parallel!` or the attribute would, returning the error
/// messages.
fn header_errors(source: &str, site: crate::valid::Site) -> Vec<String> {
    let mut cx = Ctxt::new();
    let raw = crate::args::parse_args(tokens(source), proc_macro2::Span::call_site(), &mut cx);
    let _config = crate::valid::check_args(raw, site, &mut cx);
    cx.messages()
}

/// Source text with the spaces `TokenStream`'s printer puts around punctuation removed, so
/// expected expansions can be written naturally.
fn squash(tokens: &TokenStream) -> String {
    tokens
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}
