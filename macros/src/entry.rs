//! The three macros as phase pipelines: parse, check, expand. Errors from every phase are
//! emitted together, next to the best code that could still be produced, so that rustc does
//! not add a cascade of its own errors to ours.

use crate::ctxt::Ctxt;
use crate::{args, expand, item, valid};
use proc_macro2::{Span, TokenStream};
use quote::quote;

pub(crate) fn parallel_backend(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::new();
    let raw = args::parse_args(args, Span::call_site(), &mut cx);
    let config = valid::check_args(raw, valid::Site::Attribute, &mut cx);
    let annotated = item::check_item(input.clone(), &mut cx);
    match annotated {
        Some(annotated) if !cx.has_errors() => expand::annotated(annotated, &config),
        // The item as written: with no scope and no binding, but no error of rustc's about
        // the item vanishing either.
        _ => {
            let errors = cx.to_compile_errors();
            quote!(#errors #input)
        }
    }
}

pub(crate) fn parallel(input: TokenStream) -> TokenStream {
    let mut cx = Ctxt::new();
    let code = args::parse_parallel(input, &mut cx).map(|raw| {
        let checked = valid::check_parallel(raw, &mut cx);
        expand::parallel(&checked)
    });
    match code {
        _ if !cx.has_errors() => code.unwrap_or_default(),
        // Statements first, the expression last: the block still has the call's value and type.
        Some(code) => {
            let errors = cx.to_compile_errors();
            quote!({ #errors #code })
        }
        None => cx.to_compile_error_expr(),
    }
}

pub(crate) fn delayed(input: TokenStream) -> TokenStream {
    match args::parse_delayed(input) {
        Ok(raw) => expand::delayed(&raw),
        Err(error) => error.to_compile_error(),
    }
}
