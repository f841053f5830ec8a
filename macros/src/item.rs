//! The item under `#[parallel_backend]`: what it may be, and the checks on it.

use crate::ctxt::Ctxt;
use proc_macro2::{Span, TokenStream, TokenTree};
use syn::spanned::Spanned;
use syn::{Attribute, ImplItem, Item, ItemFn, ItemImpl, Signature, TraitItemFn};

/// An item the attribute can apply to.
pub(crate) enum Annotated {
    Fn(Box<ItemFn>),
    /// Every method gets the scope, except those with their own `#[parallel_backend]` (which
    /// expands after ours and wins) and `const fn`s (which cannot enter a scope and cannot
    /// call `parallel!` either).
    Impl(Box<ItemImpl>),
}

pub(crate) fn check_item(tokens: TokenStream, cx: &mut Ctxt) -> Option<Annotated> {
    let item: Item = match syn::parse2(tokens) {
        Ok(item) => item,
        Err(error) => {
            cx.syn_error(error);
            return None;
        }
    };
    match item {
        Item::Fn(function) => {
            check_signature(&function.sig, cx);
            if let Some(constness) = &function.sig.constness {
                cx.error(
                    constness.span,
                    "`#[parallel_backend]` cannot be used on a `const fn`",
                );
            }
            Some(Annotated::Fn(Box::new(function)))
        }
        Item::Impl(block) => {
            for method in methods(&block) {
                check_signature(&method.sig, cx);
            }
            Some(Annotated::Impl(Box::new(block)))
        }
        Item::Verbatim(tokens) if syn::parse2::<TraitItemFn>(tokens.clone()).is_ok() => {
            cx.error(
                first_span(&tokens),
                "`#[parallel_backend]` needs a function body to run inside the scope",
            );
            None
        }
        other => {
            cx.error(
                keyword_span(&other),
                "`#[parallel_backend]` can only be used on a `fn`, a method or an `impl` block",
            );
            None
        }
    }
}

/// The methods of an annotated `impl` block that receive the scope.
pub(crate) fn methods(block: &ItemImpl) -> impl Iterator<Item = &syn::ImplItemFn> {
    block.items.iter().filter_map(|item| match item {
        ImplItem::Fn(method) if takes_scope(&method.attrs, &method.sig) => Some(method),
        _ => None,
    })
}

pub(crate) fn takes_scope(attrs: &[Attribute], sig: &Signature) -> bool {
    sig.constness.is_none() && !attrs.iter().any(is_parallel_backend)
}

fn is_parallel_backend(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "parallel_backend")
}

fn check_signature(sig: &Signature, cx: &mut Ctxt) {
    if let Some(asyncness) = &sig.asyncness {
        // The scope is thread-local and its guard is `!Send`: an async body moves between
        // threads at every `.await`, so the scope would not follow it.
        cx.error(
            asyncness.span,
            "`#[parallel_backend]` cannot be used on an `async fn`\n\
             = help: enter the scope inside the body with `parjob::parallel_backend(..).run(|| ..)` \
             around the synchronous part",
        );
    }
}

/// The token that says what the item is (`struct`, `mod`, ...): the smallest one to blame.
fn keyword_span(item: &Item) -> Span {
    match item {
        Item::Const(item) => item.const_token.span,
        Item::Enum(item) => item.enum_token.span,
        Item::ExternCrate(item) => item.extern_token.span,
        Item::ForeignMod(item) => item.abi.extern_token.span,
        Item::Macro(item) => item.mac.path.span(),
        Item::Mod(item) => item.mod_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Struct(item) => item.struct_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::TraitAlias(item) => item.trait_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Union(item) => item.union_token.span,
        Item::Use(item) => item.use_token.span,
        other => first_span(&quote::ToTokens::to_token_stream(other)),
    }
}

/// The first token after any attributes and visibility, or the whole invocation.
fn first_span(tokens: &TokenStream) -> Span {
    let mut iter = tokens.clone().into_iter().peekable();
    while let Some(tree) = iter.next() {
        match &tree {
            // `#[...]` / `#![...]`
            TokenTree::Punct(punct) if punct.as_char() == '#' => {
                if matches!(iter.peek(), Some(TokenTree::Punct(bang)) if bang.as_char() == '!') {
                    iter.next();
                }
                iter.next();
            }
            // `pub`, `pub(crate)`
            TokenTree::Ident(ident) if ident == "pub" => {
                if matches!(iter.peek(), Some(TokenTree::Group(_))) {
                    iter.next();
                }
            }
            other => return other.span(),
        }
    }
    Span::call_site()
}
