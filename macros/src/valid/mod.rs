//! Phase 2: raw model to typed configuration. Every check that can be made at compile time
//! is made here, once, and every failure is reported (none stops the others).
//!
//! The result is always usable: a setting that fails its check is left out, so the caller
//! can still emit code and the user sees our errors, not a cascade of rustc's.

mod literal;

use crate::args::{
    RawArgs, RawBody, RawBound, RawComprehension, RawEntry, RawHeader, RawParallel, peel,
};
use crate::ctxt::Ctxt;
use crate::suggest::{backticked_list, did_you_mean};
use literal::{
    check_batch_size, check_choice, check_integer, check_pre_dispatch, check_timeout, first_setting,
};
use proc_macro2::{Span, TokenStream};
use syn::{Expr, Lit, LitStr};

/// A backend the macros know by name. Adding one is adding a row to [`BUILTINS`].
pub(crate) struct Builtin {
    pub name: &'static str,
    /// Its own parameters, accepted as keys next to the common ones.
    pub params: &'static [&'static str],
    /// False for `sequential`, which runs tasks on the caller: per-worker settings mean nothing.
    pub has_workers: bool,
    /// Runs tasks in other processes: naming it at compile time requires results that
    /// serde can move (see `expand::comprehension_call`).
    pub runs_in_processes: bool,
    /// Starts its workers afresh (not by fork), so task bodies must capture nothing and
    /// inputs must go through serde too.
    pub moves_inputs: bool,
    /// Cargo feature of `parjob` that the backend needs.
    pub feature: Option<&'static str>,
}

pub(crate) const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "sequential",
        moves_inputs: false,
        params: &[],
        has_workers: false,
        runs_in_processes: false,
        feature: None,
    },
    Builtin {
        name: "threading",
        moves_inputs: false,
        params: &[],
        has_workers: true,
        runs_in_processes: false,
        feature: None,
    },
    Builtin {
        name: "loky",
        moves_inputs: true,
        params: &["idle_worker_timeout"],
        has_workers: true,
        runs_in_processes: true,
        feature: None,
    },
    Builtin {
        name: "multiprocessing",
        moves_inputs: false,
        params: &[],
        has_workers: true,
        runs_in_processes: true,
        feature: None,
    },
    Builtin {
        name: "mpi",
        moves_inputs: true,
        params: &[],
        has_workers: true,
        runs_in_processes: true,
        feature: Some("mpi"),
    },
];

/// Whether `parjob` was built with `feature`: its features turn on the same-named features
/// of this crate, one entry per feature here.
fn feature_enabled(feature: &str) -> bool {
    const ENABLED: &[(&str, bool)] = &[("mpi", cfg!(feature = "mpi"))];
    ENABLED
        .iter()
        .any(|&(name, enabled)| name == feature && enabled)
}

pub(crate) fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|backend| backend.name == name)
}

/// Where a header is written; it decides which keys make sense.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Site {
    /// `#[parallel_backend(...)]`: a scope around a function body.
    Attribute,
    /// `parallel!(HEADER; STMTS)`: a scope around statements.
    Block,
    /// `parallel!(HEADER; EXPR for ...)`: settings of one call.
    Call,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    NJobs,
    BatchSize,
    PreDispatch,
    Timeout,
    Verbose,
    Prefer,
    Require,
    InnerMaxNumThreads,
}

const KEYS: &[(&str, Key)] = &[
    ("n_jobs", Key::NJobs),
    ("batch_size", Key::BatchSize),
    ("pre_dispatch", Key::PreDispatch),
    ("timeout", Key::Timeout),
    ("verbose", Key::Verbose),
    ("prefer", Key::Prefer),
    ("require", Key::Require),
    ("inner_max_num_threads", Key::InnerMaxNumThreads),
];

impl Key {
    /// Keys that configure one call, not a scope: joblib has them on `Parallel` only.
    fn per_call(self) -> bool {
        matches!(self, Key::BatchSize | Key::PreDispatch | Key::Timeout)
    }
}

fn keys_for(site: Site) -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(move |(_, key)| site == Site::Call || !key.per_call())
        .map(|(name, _)| *name)
}

pub(crate) enum Backend {
    Builtin {
        backend: &'static Builtin,
        span: Span,
    },
    Runtime(Expr),
}

/// A checked header.
pub(crate) struct Config {
    pub backend: Option<Backend>,
    pub settings: Vec<Setting>,
}

impl Config {
    pub(crate) fn sets_n_jobs(&self) -> bool {
        self.settings
            .iter()
            .any(|setting| matches!(setting.value, Value::NJobs(_)))
    }

    pub(crate) fn builtin(&self) -> Option<&'static Builtin> {
        match self.backend {
            Some(Backend::Builtin { backend, .. }) => Some(backend),
            _ => None,
        }
    }
}

/// One checked `KEY = VALUE`; `key_span` names the builder method in the expansion so that
/// rustc's complaints about it point at the key.
pub(crate) struct Setting {
    pub key_span: Span,
    pub value: Value,
}

pub(crate) enum Value {
    NJobs(Expr),
    Verbose(Expr),
    InnerMaxNumThreads(Expr),
    Prefer(Choice<Prefer>),
    Require(Choice<Require>),
    BatchSize(BatchSize),
    /// Counts are emitted as `usize` literals; anything else goes to `From<&str>` or the
    /// user's own `PreDispatch` expression.
    PreDispatch(Count),
    Timeout(Timeout),
    Param {
        name: String,
        value: Expr,
    },
}

/// A value that is either a known literal, checked here, or an expression rustc will type.
pub(crate) enum Choice<T> {
    Known(T, Span),
    Expr(Expr),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefer {
    Threads,
    Processes,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Require {
    SharedMem,
}

pub(crate) enum BatchSize {
    Auto(Span),
    Fixed(Count),
}

pub(crate) enum Count {
    Literal(usize, Span),
    Expr(Expr),
}

pub(crate) enum Timeout {
    Seconds(f64, Span),
    Expr(Expr),
}

/// The whole `parallel!` invocation, checked.
pub(crate) enum Parallel {
    Comprehension {
        call: Call,
        comprehension: Box<RawComprehension>,
    },
    Block {
        scope: Option<Config>,
        stmts: TokenStream,
    },
}

/// Where a comprehension's settings come from.
pub(crate) enum Call {
    /// No header: everything from the active scope.
    Inherit,
    Header(Config),
    /// Bound by `#[parallel_backend]`: at run time the attribute's scope is active, so this
    /// inherits like `Inherit`; the backend the attribute named statically is kept for the
    /// compile-time checks that depend on it.
    Bound(Option<&'static Builtin>),
}

impl Call {
    /// The built-in backend this call is known to use at compile time, if any.
    pub(crate) fn static_backend(&self) -> Option<&'static Builtin> {
        match self {
            Call::Inherit => None,
            Call::Header(config) => config.builtin(),
            Call::Bound(backend) => *backend,
        }
    }
}

pub(crate) fn check_parallel(raw: RawParallel, cx: &mut Ctxt) -> Parallel {
    match raw.body {
        RawBody::Comprehension(comprehension) => {
            let call = match raw.header {
                RawHeader::Absent => Call::Inherit,
                RawHeader::Bound(RawBound { backend }) => {
                    Call::Bound(backend.and_then(|name| builtin(&name.value())))
                }
                RawHeader::Args(args) => Call::Header(check_args(args, Site::Call, cx)),
            };
            Parallel::Comprehension {
                call,
                comprehension,
            }
        }
        RawBody::Block(stmts) => {
            let scope = match raw.header {
                RawHeader::Args(args) => Some(check_args(args, Site::Block, cx)),
                // A block form always has a header (`;` separates it); `@bound` never reaches
                // a block because the attribute only rewrites header-less invocations.
                RawHeader::Absent | RawHeader::Bound(_) => None,
            };
            Parallel::Block { scope, stmts }
        }
    }
}

/// What the backend argument turned out to be, for the key checks that depend on it.
enum BackendKind {
    /// No backend argument: the backend is inherited and unknown here.
    Inherited,
    Builtin(&'static Builtin),
    Runtime,
    /// Already reported as wrong; key checks that depend on it are skipped.
    Invalid,
}

pub(crate) fn check_args(raw: RawArgs, site: Site, cx: &mut Ctxt) -> Config {
    if raw.complete && raw.backend.is_none() && raw.entries.is_empty() {
        let message = match site {
            Site::Attribute => {
                "`#[parallel_backend]` needs a backend or `KEY = VALUE` settings, \
                 e.g. `#[parallel_backend(\"threading\", n_jobs = 4)]`"
            }
            Site::Block | Site::Call => "expected a backend or `KEY = VALUE` before `;`",
        };
        cx.error(raw.span, message);
    }
    let (backend, kind) = match raw.backend {
        None => (None, BackendKind::Inherited),
        Some(expr) => check_backend(expr, cx),
    };
    let mut config = Config {
        backend,
        settings: Vec::new(),
    };
    let mut seen: Vec<&RawEntry> = Vec::new();
    for entry in &raw.entries {
        let name = entry.name();
        if let Some(first) = seen.iter().find(|first| first.name() == name) {
            cx.error(
                entry.key.span(),
                format!("duplicate key `{name}`, {}", first_setting(&first.value)),
            );
            continue;
        }
        seen.push(entry);
        if let Some(setting) = check_entry(entry, &name, site, &kind, cx) {
            config.settings.push(setting);
        }
    }
    check_combinations(&raw.entries, site, &kind, cx);
    config
}

fn check_backend(expr: Expr, cx: &mut Ctxt) -> (Option<Backend>, BackendKind) {
    match peel(&expr) {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(name) => check_backend_name(name, cx),
            other => {
                cx.error(
                    other.span(),
                    "expected a backend name string or an expression evaluating to a backend",
                );
                (None, BackendKind::Invalid)
            }
        },
        _ => (Some(Backend::Runtime(expr)), BackendKind::Runtime),
    }
}

fn check_backend_name(name: &LitStr, cx: &mut Ctxt) -> (Option<Backend>, BackendKind) {
    let value = name.value();
    let Some(backend) = builtin(&value) else {
        let names = BUILTINS.iter().map(|backend| backend.name);
        let help =
            did_you_mean(&value, names.clone()).map(|near| format!("did you mean `{near}`?"));
        let message = format!(
            "unknown backend `{value}`, expected one of {}",
            backticked_list(names)
        );
        cx.error_with_help(name.span(), message, help);
        return (None, BackendKind::Invalid);
    };
    if let Some(feature) = backend.feature
        && !feature_enabled(feature)
    {
        let message = format!("backend `{value}` needs the `{feature}` feature of `parjob`");
        cx.error(name.span(), message);
        return (None, BackendKind::Invalid);
    }
    (
        Some(Backend::Builtin {
            backend,
            span: name.span(),
        }),
        BackendKind::Builtin(backend),
    )
}

fn check_entry(
    entry: &RawEntry,
    name: &str,
    site: Site,
    kind: &BackendKind,
    cx: &mut Ctxt,
) -> Option<Setting> {
    let key_span = entry.key.span();
    let Some(&(_, key)) = KEYS.iter().find(|(known, _)| *known == name) else {
        return check_param(entry, name, site, kind, cx);
    };
    if key.per_call() && site != Site::Call {
        cx.error(
            key_span,
            format!("`{name}` applies to one call: put it on a `parallel!` comprehension"),
        );
        return None;
    }
    let value = &entry.value;
    let checked = match key {
        Key::NJobs => check_integer(name, value, i64::from(i32::MIN), i64::from(i32::MAX), cx)
            .and_then(|literal| match literal {
                Some(0) => {
                    cx.error_spanned(
                        value,
                        "`n_jobs` cannot be `0`, expected a positive number of workers \
                         or a negative offset from the cpu count (`-1` = all cpus)",
                    );
                    None
                }
                _ => Some(Value::NJobs(value.clone())),
            }),
        Key::Verbose => check_integer(name, value, 0, i64::from(u32::MAX), cx)
            .map(|_| Value::Verbose(value.clone())),
        Key::InnerMaxNumThreads => check_integer(name, value, 1, i64::MAX, cx)
            .map(|_| Value::InnerMaxNumThreads(value.clone())),
        Key::BatchSize => check_batch_size(value, cx).map(Value::BatchSize),
        Key::PreDispatch => check_pre_dispatch(value, cx).map(Value::PreDispatch),
        Key::Timeout => check_timeout(value, cx).map(Value::Timeout),
        Key::Prefer => check_choice(
            name,
            value,
            &[
                ("threads", Prefer::Threads),
                ("processes", Prefer::Processes),
            ],
            cx,
        )
        .map(Value::Prefer),
        Key::Require => {
            check_choice(name, value, &[("sharedmem", Require::SharedMem)], cx).map(Value::Require)
        }
    }?;
    Some(Setting {
        key_span,
        value: checked,
    })
}

/// A key that is not a common one: a parameter of the backend, or a mistake.
fn check_param(
    entry: &RawEntry,
    name: &str,
    site: Site,
    kind: &BackendKind,
    cx: &mut Ctxt,
) -> Option<Setting> {
    let key_span = entry.key.span();
    match kind {
        BackendKind::Builtin(backend) => {
            if backend.params.contains(&name) {
                return Some(param(entry, name));
            }
            let allowed: Vec<&str> = keys_for(site)
                .chain(backend.params.iter().copied())
                .collect();
            let help = did_you_mean(name, allowed.iter().copied())
                .map(|near| format!("did you mean `{near}`?"));
            let message = format!(
                "unknown key `{name}` for backend `{}`, expected one of {}",
                backend.name,
                backticked_list(allowed.iter().copied())
            );
            cx.error_with_help(key_span, message, help);
            None
        }
        // A run-time backend may take any parameter; but one edit away from a common key is
        // almost surely a typo, which as a parameter would be found only at run time.
        BackendKind::Runtime => match did_you_mean(name, keys_for(site)) {
            Some(near) if strsim::levenshtein(name, near) == 1 => {
                let message = format!(
                    "unknown key `{name}`, expected one of {}",
                    backticked_list(keys_for(site))
                );
                cx.error_with_help(key_span, message, Some(format!("did you mean `{near}`?")));
                None
            }
            _ => Some(param(entry, name)),
        },
        // Without a backend there is nobody to take a parameter (the runtime would refuse it).
        BackendKind::Inherited => {
            let help = did_you_mean(name, keys_for(site)).map(|near| format!("did you mean `{near}`?")).unwrap_or_else(
                || format!("a backend's own parameters need the backend named first: `\"NAME\", {name} = ...`"),
            );
            let message = format!(
                "unknown key `{name}`, expected one of {}",
                backticked_list(keys_for(site))
            );
            cx.error_with_help(key_span, message, Some(help));
            None
        }
        BackendKind::Invalid => None,
    }
}

fn param(entry: &RawEntry, name: &str) -> Setting {
    Setting {
        key_span: entry.key.span(),
        value: Value::Param {
            name: name.to_owned(),
            value: entry.value.clone(),
        },
    }
}

/// Checks that cannot be made on one key alone.
fn check_combinations(entries: &[RawEntry], site: Site, kind: &BackendKind, cx: &mut Ctxt) {
    let literal = |key: &str| {
        entries
            .iter()
            .position(|entry| entry.name() == key)
            .and_then(|index| match peel(&entries[index].value) {
                Expr::Lit(lit) => match &lit.lit {
                    Lit::Str(s) => Some((index, s.value(), s.span())),
                    _ => None,
                },
                _ => None,
            })
    };
    if let (Some((prefer_at, prefer, prefer_span)), Some((require_at, require, require_span))) =
        (literal("prefer"), literal("require"))
        && prefer == "processes"
        && require == "sharedmem"
    {
        // Point at whichever came second: that is where the header became contradictory.
        let span = if prefer_at > require_at {
            prefer_span
        } else {
            require_span
        };
        cx.error(
            span,
            "`prefer = \"processes\"` conflicts with `require = \"sharedmem\"`: shared memory needs threads",
        );
    }
    let thread_limit = entries
        .iter()
        .find(|entry| entry.name() == "inner_max_num_threads");
    match (kind, thread_limit) {
        // A scope's thread limit belongs to the backend it names (a call's, to the call).
        (BackendKind::Inherited, Some(entry)) if site != Site::Call => cx.error(
            entry.key.span(),
            "`inner_max_num_threads` needs a backend: name it first, e.g. `\"threading\"`",
        ),
        (BackendKind::Builtin(backend), Some(entry)) if !backend.has_workers => cx.error(
            entry.key.span(),
            format!(
                "`inner_max_num_threads` does not apply to the `{}` backend: it has no workers of its own",
                backend.name
            ),
        ),
        _ => {}
    }
}
