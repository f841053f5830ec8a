//! Binds the header-less `parallel!` calls of an annotated body to the attribute's backend.
//!
//! A call is rewritten to `parallel!(@bound("NAME"); ...)`, so its own expansion knows
//! statically which backend it runs on. Only calls lexically in the body are bound: nested
//! items (`fn`, `impl`, `mod`, `macro_rules!`) are not part of the body's scope, and the
//! insides of another `parallel!` are task code, whose nested calls follow the runtime's
//! nesting rules instead.

use crate::valid::Builtin;
use proc_macro2::{Group, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Block, Item, LitStr, Macro, Path};

pub(crate) fn bind_block(block: &mut Block, backend: Option<&Builtin>) {
    let name = backend.map(|backend| LitStr::new(backend.name, Span::call_site()));
    let header = quote!(@bound(#name););
    BindParallel { header }.visit_block_mut(block);
}

struct BindParallel {
    /// `@bound("NAME");`, prepended to each header-less invocation.
    header: TokenStream,
}

impl VisitMut for BindParallel {
    fn visit_item_mut(&mut self, _nested: &mut Item) {}

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        let tokens = std::mem::take(&mut mac.tokens);
        mac.tokens = if is_parallel(&mac.path) {
            self.bind_invocation(tokens)
        } else {
            // Other macros' input is opaque to syn (`assert_eq!(parallel!(..)?, ..)`), so
            // look for invocations among their tokens.
            self.bind_tokens(tokens)
        };
    }
}

impl BindParallel {
    /// The input of one `parallel!`: prefixed if it has no header, otherwise left alone.
    fn bind_invocation(&self, tokens: TokenStream) -> TokenStream {
        if is_headerless(&tokens) {
            let mut bound = self.header.clone();
            bound.extend(tokens);
            bound
        } else {
            tokens
        }
    }

    /// Rewrites `parallel!(..)` / `parjob::parallel!(..)` found anywhere in `tokens`.
    fn bind_tokens(&self, tokens: TokenStream) -> TokenStream {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = Vec::with_capacity(trees.len());
        let mut index = 0;
        while index < trees.len() {
            match (&trees[index], trees.get(index + 1), trees.get(index + 2)) {
                (
                    TokenTree::Ident(name),
                    Some(TokenTree::Punct(bang)),
                    Some(TokenTree::Group(input)),
                ) if name == "parallel"
                    && bang.as_char() == '!'
                    && is_parallel_prefix(&trees[..index]) =>
                {
                    out.push(trees[index].clone());
                    out.push(trees[index + 1].clone());
                    out.push(regroup(input, self.bind_invocation(input.stream())));
                    index += 3;
                }
                (TokenTree::Group(group), _, _) => {
                    out.push(regroup(group, self.bind_tokens(group.stream())));
                    index += 1;
                }
                (tree, _, _) => {
                    out.push(tree.clone());
                    index += 1;
                }
            }
        }
        out.into_iter().collect()
    }
}

fn regroup(group: &Group, stream: TokenStream) -> TokenTree {
    let mut regrouped = Group::new(group.delimiter(), stream);
    regrouped.set_span(group.span());
    TokenTree::Group(regrouped)
}

/// `parallel`, `parjob::parallel` or `::parjob::parallel`: another crate's `parallel!` is not
/// ours to rewrite.
fn is_parallel(path: &Path) -> bool {
    let segments: Vec<String> = path
        .segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect();
    match segments.as_slice() {
        [name] => name == "parallel" && path.leading_colon.is_none(),
        [krate, name] => krate == "parjob" && name == "parallel",
        _ => false,
    }
}

/// Whether the tokens before a `parallel` identifier make it one of the paths above.
fn is_parallel_prefix(before: &[TokenTree]) -> bool {
    match before {
        [
            ..,
            TokenTree::Ident(krate),
            TokenTree::Punct(first),
            TokenTree::Punct(second),
        ] if is_path_sep(first, second) => krate == "parjob",
        [.., TokenTree::Punct(first), TokenTree::Punct(second)] if is_path_sep(first, second) => {
            false
        }
        _ => true,
    }
}

fn is_path_sep(first: &Punct, second: &Punct) -> bool {
    first.as_char() == ':' && first.spacing() == Spacing::Joint && second.as_char() == ':'
}

/// No `;` outside groups and not already bound.
fn is_headerless(tokens: &TokenStream) -> bool {
    let mut trees = tokens.clone().into_iter().peekable();
    if matches!(trees.peek(), Some(TokenTree::Punct(at)) if at.as_char() == '@') {
        return false;
    }
    let mut empty = true;
    for tree in trees {
        empty = false;
        if matches!(tree, TokenTree::Punct(ref semi) if semi.as_char() == ';') {
            return false;
        }
    }
    !empty
}
