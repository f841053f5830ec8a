//! Phase 3: code from the checked configuration only; no decisions are made here.
//!
//! Generated code names nothing but `::parjob::__private::…` (and `::core`), and its own
//! bindings are `Span::mixed_site()` so they can neither clash with nor see the user's.

use crate::args::{RawComprehension, RawDelayed};
use crate::item::{self, Annotated};
use crate::valid::{
    Backend, BatchSize, Call, Choice, Config, Count, Parallel, Prefer, Require, Timeout, Value,
};
use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Expr, Ident, LitStr, Pat, Signature, Stmt};

/// The binding that holds the scope guard for the rest of the body or block.
fn guard_ident() -> Ident {
    Ident::new("__parjob_scope", Span::mixed_site())
}

/// `BackendSpec` for the backend argument. A run-time expression is converted by a call
/// located at it, so "`X: Into<BackendSpec>` is not satisfied" points there; the call's
/// hygiene stays the macro's, so clippy does not call `BackendSpec::from(registered(..))` a
/// useless conversion in the user's code.
fn backend_spec(backend: &Backend) -> TokenStream {
    match backend {
        Backend::Builtin { backend, span } => {
            let name = LitStr::new(backend.name, *span);
            quote_spanned!(*span=> ::parjob::__private::builtin(#name))
        }
        Backend::Runtime(expr) => {
            let span = Span::mixed_site().located_at(expr.span());
            quote_spanned!(span=> ::parjob::__private::BackendSpec::from(#expr))
        }
    }
}

/// The builder calls for the settings, in the order they were written.
fn settings(config: &Config) -> TokenStream {
    let mut tokens = TokenStream::new();
    for setting in &config.settings {
        let span = setting.key_span;
        let method = |name: &str| Ident::new(name, span);
        let call = match &setting.value {
            Value::NJobs(expr) => call(method("n_jobs"), expr),
            Value::Verbose(expr) => call(method("verbose"), expr),
            Value::InnerMaxNumThreads(expr) => call(method("inner_max_num_threads"), expr),
            Value::Prefer(choice) => call(method("prefer"), choice_tokens(choice, prefer_variant)),
            Value::Require(choice) => {
                call(method("require"), choice_tokens(choice, require_variant))
            }
            Value::BatchSize(BatchSize::Auto(span)) => call(
                method("batch_size"),
                quote_spanned!(*span=> ::parjob::__private::BatchSize::Auto),
            ),
            Value::BatchSize(BatchSize::Fixed(count)) => {
                call(method("batch_size"), count_tokens(count))
            }
            Value::PreDispatch(count) => call(method("pre_dispatch"), count_tokens(count)),
            Value::Timeout(Timeout::Seconds(seconds, span)) => {
                let mut seconds = Literal::f64_unsuffixed(*seconds);
                seconds.set_span(*span);
                let duration =
                    quote_spanned!(*span=> ::parjob::__private::Duration::from_secs_f64(#seconds));
                call(method("timeout"), duration)
            }
            Value::Timeout(Timeout::Expr(expr)) => call(method("timeout"), expr),
            Value::Param { name, value } => {
                let name = LitStr::new(name, span);
                quote_spanned!(span=> .param(#name, #value))
            }
        };
        tokens.extend(call);
    }
    tokens
}

fn call(method: Ident, argument: impl ToTokens) -> TokenStream {
    quote!(.#method(#argument))
}

fn choice_tokens<T: Copy>(choice: &Choice<T>, variant: fn(T) -> TokenStream) -> TokenStream {
    match choice {
        Choice::Known(value, span) => {
            let variant = variant(*value);
            quote_spanned!(*span=> ::parjob::__private::#variant)
        }
        Choice::Expr(expr) => expr.to_token_stream(),
    }
}

fn prefer_variant(prefer: Prefer) -> TokenStream {
    match prefer {
        Prefer::Threads => quote!(Prefer::Threads),
        Prefer::Processes => quote!(Prefer::Processes),
    }
}

fn require_variant(require: Require) -> TokenStream {
    match require {
        Require::SharedMem => quote!(Require::SharedMem),
    }
}

/// Counts are `usize` literals: an unsuffixed integer would default to `i32` and miss the
/// `From<usize>` conversion of `impl Into<BatchSize>` / `impl Into<PreDispatch>`.
fn count_tokens(count: &Count) -> TokenStream {
    match count {
        Count::Literal(count, span) => {
            let mut literal = Literal::usize_suffixed(*count);
            literal.set_span(*span);
            literal.into_token_stream()
        }
        Count::Expr(expr) => expr.to_token_stream(),
    }
}

/// `parallel_backend(spec)` / `parallel_config()` plus the settings: the scope of an
/// attribute or block.
fn scope(config: &Config) -> TokenStream {
    let start = match &config.backend {
        Some(backend) => {
            let spec = backend_spec(backend);
            quote!(::parjob::__private::parallel_backend(#spec))
        }
        None => quote!(::parjob::__private::parallel_config()),
    };
    let settings = settings(config);
    quote!(#start #settings)
}

/// `let <guard> = enter_scope(..);`: the scope lasts until the enclosing block ends, and
/// being declared first, the guard is dropped last, after the body's own locals.
fn enter_scope(config: &Config) -> TokenStream {
    let guard = guard_ident();
    let scope = scope(config);
    quote!(let #guard = ::parjob::__private::enter_scope(#scope);)
}

/// The `Parallel` of a comprehension. A header that names a backend behaves like
/// `parallel_backend`, whose `n_jobs` defaults to `-1`, so that default is written out.
fn parallel_builder(call: &Call) -> TokenStream {
    let new = quote!(::parjob::__private::Parallel::new());
    let Call::Header(config) = call else {
        return new;
    };
    let backend = config.backend.as_ref().map(|backend| {
        let spec = backend_spec(backend);
        let n_jobs = (!config.sets_n_jobs()).then(|| quote!(.n_jobs(-1)));
        quote!(.backend(#spec) #n_jobs)
    });
    let settings = settings(config);
    quote!(#new #backend #settings)
}

pub(crate) fn parallel(parallel: &Parallel) -> TokenStream {
    match parallel {
        Parallel::Comprehension {
            call,
            comprehension,
        } => comprehension_call(parallel_builder(call), call, comprehension),
        Parallel::Block { scope, stmts } => {
            let enter = scope.as_ref().map(enter_scope);
            quote!({ #enter #stmts })
        }
    }
}

/// Binding names of the generated code: hygienic, invisible to the user's code.
fn hidden(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// A comprehension runs as `map` over `ITER`: with the body `|PAT| EXPR` when it has no
/// condition, or `|PAT| Some(EXPR)` (`None` when the condition, evaluated in the task,
/// filters the item out) then flattened. How its tasks may travel depends on what is known
/// here:
///
/// - a shared-memory backend named at compile time: no remote form at all;
/// - a process backend that starts its workers afresh (`loky`, `mpi`): the body must capture
///   nothing — it is coerced to a `fn` pointer, so rustc names any capture — and items and
///   results must implement serde's traits, checked where they are written;
/// - otherwise (the backend is chosen at run time): a probe on the concrete types decides;
///   tasks that cannot travel run on threads if a process backend is active.
fn comprehension_call(
    builder: TokenStream,
    call: &Call,
    comprehension: &RawComprehension,
) -> TokenStream {
    let RawComprehension {
        expr,
        pat,
        iter,
        cond,
    } = comprehension;
    // Where tasks may go to worker processes that start afresh, the body's captures travel
    // apart from it (see `capture`).
    let static_backend = call.static_backend();
    if static_backend.is_none_or(|b| b.moves_inputs) {
        let names = crate::capture::captures(pat, expr, cond.as_ref());
        if !names.is_empty() {
            return captured_call(builder, static_backend.is_some(), comprehension, &names);
        }
    }
    // An or-pattern needs parentheses as a closure parameter; anything else must not have
    // them (`unused_parens`).
    let pat = match pat {
        Pat::Or(_) => quote!((#pat)),
        _ => pat.to_token_stream(),
    };
    // The body and the runtime's names for this shape of comprehension.
    let (body, names) = match cond {
        Some(cond) => {
            let some = quote_spanned!(expr.span()=> ::core::option::Option::Some(#expr));
            (
                quote! { if #cond { #some } else { ::core::option::Option::None } },
                Names::FILTERED,
            )
        }
        None => (quote!(#expr), Names::PLAIN),
    };
    let Names {
        local,
        job: job_fn,
        remote_body,
        check_results: check_results_fn,
    } = names;
    let (local, job_fn, remote_body, check_results_fn) = (
        hidden_path(local),
        hidden_path(job_fn),
        hidden_path(remote_body),
        hidden_path(check_results_fn),
    );
    let (items, job, remote) = (
        hidden("__parjob_items"),
        hidden("__parjob_job"),
        hidden("__parjob_remote"),
    );
    match call.static_backend() {
        Some(backend) if backend.moves_inputs => {
            let body_fn = hidden("__parjob_body");
            let check_items = quote_spanned!(iter.span()=> ::parjob::__private::require_transferable_items(&#items));
            let check_results =
                quote_spanned!(expr.span()=> ::parjob::__private::#check_results_fn(&#body_fn));
            quote!({
                let #items = #iter;
                let #body_fn = ::parjob::__private::#remote_body(&#items, |#pat| #body);
                #check_items;
                #check_results;
                #[allow(unused_imports)]
                use ::parjob::__private::{ViaSerde as _, ViaShared as _};
                #[allow(clippy::needless_borrow)]
                let #remote = (&::parjob::__private::PointerProbe(#body_fn)).remote_map();
                ::parjob::__private::#job_fn(#items, #body_fn).run(#builder, #remote, ::core::option::Option::None)
            })
        }
        Some(backend) if !backend.runs_in_processes => {
            quote!(::parjob::__private::#local(#builder, #iter, |#pat| #body))
        }
        backend => {
            let check_results = backend.map(|_| {
                quote_spanned!(expr.span()=> ::parjob::__private::#check_results_fn(&#job.body_ref());)
            });
            let results = hidden("__parjob_results");
            quote!({
                #[allow(unused_imports)]
                use ::parjob::__private::{
                    ResultsLocal as _, ResultsViaRef as _, ResultsViaSerde as _,
                    ViaRefItem as _, ViaRefResult as _, ViaSerde as _, ViaShared as _
                };
                let #job = ::parjob::__private::#job_fn(#iter, |#pat| #body);
                #check_results
                #[allow(clippy::needless_borrow)]
                let #remote = (&&&&#job.probe()).remote_map();
                #[allow(clippy::needless_borrow)]
                let #results = (&&&#job.probe()).result_codec();
                #job.run(#builder, #remote, #results)
            })
        }
    }
}

/// A comprehension whose body uses variables of the caller (`names`): the body takes them
/// as one tuple of references, so that it captures nothing itself. `named` is a process
/// backend named at compile time: the body must then coerce to a `fn` pointer (rustc names
/// anything else it captures), and every capture, item and result must be able to travel,
/// checked where it is written.
fn captured_call(
    builder: TokenStream,
    named: bool,
    comprehension: &RawComprehension,
    names: &[Ident],
) -> TokenStream {
    let caps = hidden("__parjob_caps");
    let mut expr = comprehension.expr.clone();
    crate::capture::rewrite(&mut expr, names, &caps);
    let pat = match &comprehension.pat {
        Pat::Or(_) => {
            let pat = &comprehension.pat;
            quote!((#pat))
        }
        pat => pat.to_token_stream(),
    };
    let iter = &comprehension.iter;
    let (body, job_fn, check_results_fn) = match &comprehension.cond {
        Some(cond) => {
            let mut cond = cond.clone();
            crate::capture::rewrite(&mut cond, names, &caps);
            let some = quote_spanned!(expr.span()=> ::core::option::Option::Some(#expr));
            (
                quote! { if #cond { #some } else { ::core::option::Option::None } },
                "captured_comprehension_job",
                "require_transferable_captured_filtered_results",
            )
        }
        None => (
            quote!(#expr),
            "captured_map_job",
            "require_transferable_captured_results",
        ),
    };
    let (job_fn, check_results_fn) = (hidden_path(job_fn), hidden_path(check_results_fn));
    let (items, captures, kinds, job, remote, results, body_fn) = (
        hidden("__parjob_items"),
        hidden("__parjob_captures"),
        hidden("__parjob_kinds"),
        hidden("__parjob_job"),
        hidden("__parjob_remote"),
        hidden("__parjob_results"),
        hidden("__parjob_body"),
    );
    let stays = hidden("__parjob_stays");
    let probe = hidden("__parjob_probe");
    let name_strings = names.iter().map(|n| LitStr::new(&n.to_string(), n.span()));
    let kinds_value = quote! {
        (#((&&&&&&&&&::parjob::__private::CaptureProbe::of(&#names)).kind(),)*)
    };
    let probes = quote! {
        #[allow(unused_imports)]
        use ::parjob::__private::{
            CaptureNumberVec as _, CaptureNumberVecRef as _, CaptureNumbers as _,
            CaptureOwned as _, CaptureRef as _, CaptureSlice as _, CaptureStays as _,
            CaptureStr as _, CaptureZeroSized as _
        };
    };
    if named {
        let check_items =
            quote_spanned!(iter.span()=> ::parjob::__private::require_transferable_items(&#items));
        let check_results =
            quote_spanned!(expr.span()=> ::parjob::__private::#check_results_fn(&#body_fn));
        let check_captures = names.iter().enumerate().map(|(i, name)| {
            let index = syn::Index::from(i);
            quote_spanned!(name.span()=> ::parjob::__private::require_travels(&#name, &#kinds.#index);)
        });
        return quote!({
            #probes
            #[allow(unused_imports)]
            use ::parjob::__private::{CapturedPointerNone as _, CapturedPointerSerde as _};
            let #items = #iter;
            let #captures = (#(&#names,)*);
            let #body_fn = ::parjob::__private::captured_remote_body(&#items, &#captures, |#caps, #pat| #body);
            #check_items;
            #check_results;
            #[allow(clippy::needless_borrow)]
            let #kinds = #kinds_value;
            #(#check_captures)*
            #[allow(clippy::needless_borrow)]
            let #remote = |#captures: &_| ::parjob::__private::captured_remote(
                (&::parjob::__private::CapturedPointerProbe(#body_fn)).remote_map(#captures, #kinds)
            );
            ::parjob::__private::#job_fn(#items, #captures, #body_fn).run(#builder, #remote, ::core::option::Option::None, ::core::option::Option::None)
        });
    }
    quote!({
        #probes
        #[allow(unused_imports)]
        use ::parjob::__private::{
            CapturedRefItem as _, CapturedRefResult as _, CapturedSerde as _, CapturedShared as _,
            ResultsLocal as _, ResultsViaRef as _, ResultsViaSerde as _
        };
        #[allow(clippy::needless_borrow)]
        let #kinds = #kinds_value;
        let #job = ::parjob::__private::#job_fn(#iter, (#(&#names,)*), |#caps, #pat| #body);
        #[allow(clippy::needless_borrow)]
        let #results = (&&&#job.results_probe()).result_codec();
        let #stays = ::parjob::__private::captures_stay(#job.captures(), &#kinds, &[#(#name_strings),*]);
        let #probe = #job.probe();
        // Encodes the captures: run only when the call goes to worker processes.
        #[allow(clippy::needless_borrow)]
        let #remote = |#captures: &_| ::parjob::__private::captured_remote(
            (&&&&#probe).remote_map(#captures, #kinds)
        );
        #job.run(#builder, #remote, #results, #stays)
    })
}

/// The runtime functions a comprehension of one shape calls.
struct Names {
    /// On a shared-memory backend named at compile time.
    local: &'static str,
    /// Builds the job the probes look at.
    job: &'static str,
    /// Coerces the body to a `fn` pointer (a process backend named at compile time).
    remote_body: &'static str,
    /// Checks that the results can travel.
    check_results: &'static str,
}

impl Names {
    /// `EXPR for PAT in ITER`: one result per item.
    const PLAIN: Names = Names {
        local: "map_comprehension",
        job: "map_job",
        remote_body: "remote_map_body",
        check_results: "require_transferable_map_results",
    };
    /// `EXPR for PAT in ITER if COND`: an `Option` per item, flattened.
    const FILTERED: Names = Names {
        local: "comprehension",
        job: "comprehension_job",
        remote_body: "remote_body",
        check_results: "require_transferable_results",
    };
}

/// A name in `::parjob::__private`, spanned at the call site.
fn hidden_path(name: &str) -> Ident {
    Ident::new(name, Span::call_site())
}

/// `{ let a0 = ARG0; ...; Delayed::new(move || PATH(a0, ...)) }`: the arguments are
/// evaluated here and now, in order, like joblib's `delayed(f)(args)`.
pub(crate) fn delayed(delayed: &RawDelayed) -> TokenStream {
    let RawDelayed { func, args } = delayed;
    let names: Vec<Ident> = (0..args.len())
        .map(|index| {
            // Hygienic, but located at the argument so type errors point at it.
            let span = Span::mixed_site().located_at(args[index].span());
            Ident::new(&format!("__parjob_arg{index}"), span)
        })
        .collect();
    let (call, remote) = (hidden("__parjob_call"), hidden("__parjob_remote"));
    // The arguments travel as one tuple, the call is a closure over it: a closure that
    // captures nothing, so a probe can let a process backend run it elsewhere.
    quote!({
        #(let #names = #args;)*
        #[allow(unused_imports)]
        use ::parjob::__private::{ViaRefItem as _, ViaRefResult as _, ViaSerde as _, ViaShared as _};
        let #call = ::parjob::__private::DelayedCall::new((#(#names,)*), move |(#(#names,)*)| #func(#(#names),*));
        #[allow(clippy::needless_borrow)]
        let #remote = (&&&&#call.probe()).remote_map();
        #call.finish(#remote)
    })
}

/// The annotated item with the scope entered at the top of each body it covers, and its
/// header-less `parallel!` calls bound to the attribute's backend.
pub(crate) fn annotated(item: Annotated, config: &Config) -> TokenStream {
    match item {
        Annotated::Fn(mut function) => {
            let entry = scope_entry(&function.sig, config);
            bind_body(&mut function.block, entry, config);
            function.into_token_stream()
        }
        Annotated::Impl(mut block) => {
            for impl_item in &mut block.items {
                if let syn::ImplItem::Fn(method) = impl_item
                    && item::takes_scope(&method.attrs, &method.sig)
                {
                    let entry = scope_entry(&method.sig, config);
                    bind_body(&mut method.block, entry, config);
                }
            }
            block.into_token_stream()
        }
    }
}

fn bind_body(block: &mut Block, entry: TokenStream, config: &Config) {
    crate::bind::bind_block(block, config.builtin());
    // `Expr::Verbatim` prints the statement as written, which saves re-parsing our own
    // tokens (and any chance of failing to) just to put them back in the tree.
    block
        .stmts
        .insert(0, Stmt::Expr(Expr::Verbatim(entry), None));
}

/// What runs at the top of an annotated body.
fn scope_entry(sig: &Signature, config: &Config) -> TokenStream {
    match config.builtin() {
        Some(backend) if backend.name == "mpi" && sig.ident == "main" => mpi_main_entry(config),
        _ => enter_scope(config),
    }
}

/// `#[parallel_backend("mpi")] fn main`: MPI is initialised before anything else of the
/// body runs; ranks other than 0 serve tasks there and exit, and rank 0 enters the scope.
/// The guard ends the MPI job when `main` returns (also by `?` or a panic).
fn mpi_main_entry(config: &Config) -> TokenStream {
    let guard = guard_ident();
    let scope = scope(config);
    quote!(let #guard = ::parjob::__private::mpi_main(#scope);)
}
