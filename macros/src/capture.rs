//! The variables of the caller that a comprehension body uses (its captures), and the body
//! rewritten to take them from one argument, so that the closure itself captures nothing and
//! a worker process can run it with the captures sent once per call.
//!
//! The rule, as the documentation of `parallel!` states it: a name in the body (or the
//! condition) is a capture when it is a plain lowercase name (or `self`) used as a value, not
//! as the function of a call, and no pattern or item anywhere in the body binds the same
//! name. Everything else is left alone: a name the rule does not see (one used only inside a
//! nested macro call, or one that is also bound inside the body) is captured by the closure
//! as Rust captures it, which keeps the call on threads (or, with a process backend named at
//! compile time, is a compile error that names it).

use std::collections::HashSet;

use proc_macro2::Span;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprPath, FieldValue, Ident, Item, Member, Pat, Path};

/// The captures of `body` and `cond`, in order of first use.
pub(crate) fn captures(pat: &Pat, body: &Expr, cond: Option<&Expr>) -> Vec<Ident> {
    // The walks only read; `VisitMut` is the visitor this crate's syn features provide.
    let (mut pat, mut body, mut cond) = (pat.clone(), body.clone(), cond.cloned());
    let mut bound = Bound::default();
    bound.visit_pat_mut(&mut pat);
    bound.visit_expr_mut(&mut body);
    if let Some(cond) = &mut cond {
        bound.visit_expr_mut(cond);
    }
    let mut free = Free {
        bound: &bound.names,
        found: Vec::new(),
    };
    free.visit_expr_mut(&mut body);
    if let Some(cond) = &mut cond {
        free.visit_expr_mut(cond);
    }
    free.found
}

/// Replaces each use of a capture in `expr` by `(*caps.k)`, `k` its position in `names`.
pub(crate) fn rewrite(expr: &mut Expr, names: &[Ident], caps: &Ident) {
    Rewrite { names, caps }.visit_expr_mut(expr);
}

/// Every name some pattern or item inside the body binds.
#[derive(Default)]
struct Bound {
    names: HashSet<String>,
}

impl VisitMut for Bound {
    fn visit_pat_ident_mut(&mut self, node: &mut syn::PatIdent) {
        self.names.insert(node.ident.to_string());
        visit_mut::visit_pat_ident_mut(self, node);
    }

    fn visit_item_mut(&mut self, node: &mut Item) {
        let ident = match node {
            Item::Fn(f) => Some(&f.sig.ident),
            Item::Const(c) => Some(&c.ident),
            Item::Static(s) => Some(&s.ident),
            _ => None,
        };
        if let Some(ident) = ident {
            self.names.insert(ident.to_string());
        }
        // Names inside a nested item are not the body's.
    }
}

/// A plain one-segment name, if `path` is one that may name a variable.
fn variable(path: &Path) -> Option<&Ident> {
    if path.leading_colon.is_some() || path.segments.len() != 1 {
        return None;
    }
    let segment = &path.segments[0];
    if !segment.arguments.is_none() {
        return None;
    }
    let ident = &segment.ident;
    let name = ident.to_string();
    let first = name.trim_start_matches("r#").chars().next()?;
    (name == "self" || first == '_' || first.is_lowercase()).then_some(ident)
}

struct Free<'b> {
    bound: &'b HashSet<String>,
    found: Vec<Ident>,
}

impl VisitMut for Free<'_> {
    fn visit_expr_mut(&mut self, node: &mut Expr) {
        match node {
            Expr::Path(ExprPath {
                qself: None, path, ..
            }) => {
                if let Some(ident) = variable(path)
                    && ident != "_"
                    && !self.bound.contains(&ident.to_string())
                    && !self.found.iter().any(|f| f == ident)
                {
                    self.found.push(ident.clone());
                }
            }
            // The function of a call is a function, not a captured value.
            Expr::Call(call) if matches!(&*call.func, Expr::Path(p) if variable(&p.path).is_some()) => {
                for arg in &mut call.args {
                    self.visit_expr_mut(arg);
                }
            }
            _ => visit_mut::visit_expr_mut(self, node),
        }
    }

    fn visit_item_mut(&mut self, _node: &mut Item) {
        // An item inside the body cannot use the body's captures.
    }
}

struct Rewrite<'a> {
    names: &'a [Ident],
    caps: &'a Ident,
}

impl Rewrite<'_> {
    /// `(*caps.k)` for a capture, spanned at its use so that errors point there.
    fn replacement(&self, ident: &Ident) -> Option<Expr> {
        let index = self.names.iter().position(|n| n == ident)?;
        let member = Member::Unnamed(syn::Index {
            index: index as u32,
            span: ident.span(),
        });
        let caps = Ident::new(
            &self.caps.to_string(),
            Span::mixed_site().located_at(ident.span()),
        );
        Some(syn::parse_quote_spanned!(ident.span()=> (*#caps.#member)))
    }
}

impl VisitMut for Rewrite<'_> {
    fn visit_expr_mut(&mut self, node: &mut Expr) {
        match node {
            Expr::Path(ExprPath {
                qself: None, path, ..
            }) => {
                if let Some(replacement) = variable(path).and_then(|ident| self.replacement(ident))
                {
                    *node = replacement;
                }
            }
            Expr::Call(call) if matches!(&*call.func, Expr::Path(p) if variable(&p.path).is_some()) => {
                for arg in &mut call.args {
                    self.visit_expr_mut(arg);
                }
            }
            _ => visit_mut::visit_expr_mut(self, node),
        }
    }

    fn visit_field_value_mut(&mut self, node: &mut FieldValue) {
        // `S { x }` is `S { x: x }`: the value needs the colon once it is rewritten.
        if node.colon_token.is_none()
            && let Member::Named(_) = node.member
        {
            node.colon_token = Some(Default::default());
        }
        visit_mut::visit_field_value_mut(self, node);
    }

    fn visit_item_mut(&mut self, _node: &mut Item) {}
}
