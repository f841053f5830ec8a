//! Procedural macros of [parjob](https://docs.rs/parjob). Use them through the `parjob` crate,
//! which re-exports them; this crate is an implementation detail.
//!
//! The macros are joblib's `parallel_backend`, `Parallel(...)(... for ...)` and `delayed`,
//! with the checks that can be made at compile time made then: backend names, keys and
//! literal values are validated, and every mistake in an invocation is reported at once.
//!
//! Each macro runs three phases, one module each: `args` reads tokens into a raw model that
//! keeps spans, `valid` turns it into a checked configuration (`item` checks what the
//! attribute is on), `expand` writes the code. `bind` rewrites the `parallel!` calls of an
//! annotated body, `ctxt` collects the errors, `entry` runs the phases for each macro.
//! Generated code refers only to `::parjob::__private`, the runtime's hidden support module.

mod args;
mod bind;
mod capture;
mod ctxt;
mod entry;
mod expand;
mod item;
mod suggest;
mod valid;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Runs a function, a method, or every method of an `impl` block inside a backend scope.
///
/// The attribute form of `parjob::parallel_backend`, like wrapping the body in Python's
/// `with parallel_backend(...):`. The scope is entered at the top of the body and left when
/// the function returns, by any path (`return`, `?`, a panic). Every `parallel!` call in the
/// body without a header of its own is bound to the attribute's backend (see *Binding*).
///
/// ```
/// use parjob::{parallel, parallel_backend};
///
/// fn neg(x: i64) -> i64 { -x }
///
/// #[parallel_backend("threading", n_jobs = 4)]
/// fn negate_all(xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
///     assert_eq!(parjob::get_active_backend().n_jobs(), Some(4));
///     parallel!(neg(x) for x in xs.iter().copied())
/// }
///
/// assert_eq!(negate_all(&[1, 2, 3])?, [-1, -2, -3]);
/// assert_eq!(parjob::get_active_backend().n_jobs(), Some(-1)); // the scope ended
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// Equivalent code without the macro (the macro's guard cannot fail: see *Errors*):
///
/// ```
/// # fn neg(x: i64) -> i64 { -x }
/// fn negate_all(xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
///     let _scope = parjob::parallel_backend("threading").n_jobs(4).enter()?;
///     parjob::Parallel::new().map(xs.iter().copied(), neg)
/// }
/// # assert_eq!(negate_all(&[1, 2, 3])?, [-1, -2, -3]);
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// # Arguments
///
/// `#[parallel_backend(BACKEND, KEY = VALUE, ...)]` or `#[parallel_backend(KEY = VALUE, ...)]`.
/// Each key may appear once. A header that names a backend behaves like `parallel_backend`
/// (`n_jobs` defaults to `-1`, every cpu); one with keys only behaves like `parallel_config`
/// (everything not given is inherited from the enclosing scope).
///
/// ## `BACKEND`
///
/// A string literal names a built-in backend and is checked at compile time: `"sequential"`,
/// `"threading"`, `"loky"`, `"multiprocessing"`, or `"mpi"` (only with the `mpi` feature of
/// `parjob`). Any other expression is evaluated when the function is called and converted
/// with `Into<BackendSpec>`: a `String`, `parjob::registered("name")` for a backend
/// registered at run time, or a backend instance such as `parjob::backend::Threading::new()`.
///
/// ```text
/// #[parallel_backend("sequential")]            // checked now
/// #[parallel_backend(config.backend_name())]   // looked up when called
/// ```
///
/// ## `n_jobs = i32`
///
/// Number of workers: `k > 0` is `k` workers, `-1` every cpu, `k < -1` is `cpus + 1 + k`.
/// A literal `0` is a compile error; any `i32` expression is accepted.
///
/// ## `verbose = u32`
///
/// Progress reporting level for calls in the scope; `0` is silent.
///
/// ## `prefer = "threads" | "processes"`
///
/// A soft hint for calls that do not name a backend, as in joblib. A literal is checked;
/// any `parjob::Prefer` expression is accepted.
///
/// ## `require = "sharedmem"`
///
/// A hard constraint: calls in the scope run on threads. `prefer = "processes"` together
/// with `require = "sharedmem"` is a compile error. Any `parjob::Require` expression is
/// accepted.
///
/// ## `inner_max_num_threads = usize`
///
/// Limits the threads that tasks' own nested parallel calls may use. It needs a backend with
/// workers: an error without a backend or with `"sequential"`.
///
/// ## A backend's own parameters
///
/// Built-in backends list theirs (`"loky"`: `idle_worker_timeout`); an unknown key is a
/// compile error that lists the accepted ones. For a backend given as a run-time expression,
/// any other key is passed to it with `BackendScope::param(name, value)`.
///
/// `batch_size`, `pre_dispatch` and `timeout` configure one call, not a scope: put them on a
/// `parallel!` comprehension.
///
/// # Where it applies
///
/// - A free `fn`, including generic, `unsafe`, `extern` and `-> Result` functions.
/// - A method in an `impl` or trait `impl` block.
/// - An `impl` block: every method gets the scope, except `const fn`s (which cannot enter
///   one) and methods carrying their own `#[parallel_backend]` (which wins).
///
/// It is a compile error on an `async fn` (the scope is thread-local and would not follow
/// the future across threads), a `const fn`, a function without a body, and any other item.
///
/// # Binding
///
/// Header-less `parallel!` calls written in the body, including inside closures, blocks and
/// other macros' arguments, are rewritten to carry the attribute's backend, so that checks
/// that depend on the backend can be made at compile time. At run time they inherit the
/// scope, which is active for the whole body; a scope entered by hand inside the body takes
/// over for the calls after it, as nested `with` blocks do in Python. Calls inside nested
/// items (`fn`, `impl`, `mod`, `macro_rules!`) and inside another `parallel!` are left alone:
/// the former are not part of the body, the latter are task code and follow the runtime's
/// nesting rules.
///
/// # Process backends
///
/// When the attribute names `"loky"` or `"mpi"`, the bound comprehensions must be able to run
/// in another process: the variables their body uses travel with the call (see
/// [`parallel!`](macro@parallel), "Tasks in other processes"), and items, results and those
/// variables must implement serde's `Serialize` and `Deserialize`. Each violation is a
/// compile error at the value concerned ("`T` cannot be sent to a worker process").
/// `"multiprocessing"` forks, so only results must implement serde.
///
/// # Errors
///
/// A scope that cannot be entered at run time (an unregistered run-time backend name, a
/// parameter the backend does not take) does not fail the function: every parallel call in
/// the scope returns that error instead.
///
/// # Expansion
///
/// ```text
/// fn negate_all(xs: &[i64]) -> Result<Vec<i64>, parjob::Error> {
///     let <guard> = ::parjob::__private::enter_scope(
///         ::parjob::__private::parallel_backend(::parjob::__private::builtin("threading")).n_jobs(4),
///     );
///     parallel!(@bound("threading"); neg(x) for x in xs.iter().copied())
/// }
/// ```
///
/// Generated code names `::parjob`, so the crate must be a dependency under that name.
#[proc_macro_attribute]
pub fn parallel_backend(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::parallel_backend(args.into(), item.into()).into()
}

/// A parallel comprehension, or statements run inside a backend scope.
///
/// # Comprehension: `parallel!([HEADER;] EXPR for PAT in ITER [if COND])`
///
/// Python's `Parallel(...)(delayed(f)(x) for x in xs if cond)`: evaluates `EXPR` for every
/// item of `ITER` that matches `PAT` and passes `COND`, in parallel, and returns the results
/// in input order as `Result<Vec<T>, parjob::Error>`.
///
/// ```
/// use parjob::parallel;
///
/// let pairs = vec![(1, 2), (3, 4)];
/// let squares = parallel!(x * x for x in 0..5)?;
/// let evens = parallel!(n_jobs = 2; x for x in 0..10 if x % 2 == 0)?;
/// let sums = parallel!("threading"; a + b for (a, b) in pairs.iter().copied())?;
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
/// assert_eq!(evens, [0, 2, 4, 6, 8]);
/// assert_eq!(sums, [3, 7]);
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// Equivalent code without the macro (for the second call):
///
/// ```
/// let evens: Vec<i32> = parjob::Parallel::new()
///     .n_jobs(2)
///     .map(0..10, |x| if x % 2 == 0 { Some(x) } else { None })?
///     .into_iter()
///     .flatten()
///     .collect();
/// assert_eq!(evens, [0, 2, 4, 6, 8]);
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// - `EXPR` runs in a task. It may borrow from the caller (the call waits for every task),
///   so what it borrows must be `Sync`; the items must be `Send`, and so must the results.
///   `return` and `?` in `EXPR` cannot leave the enclosing function: use
///   `Parallel::try_map` for fallible work.
/// - `PAT` is any irrefutable or refutable pattern a `for` loop takes, including tuples,
///   references and `A | B` alternatives.
/// - `ITER` is anything `IntoIterator`.
/// - `COND` is evaluated in the task too, with the pattern's bindings, before `EXPR`; items
///   for which it is false produce no result.
///
/// Without a header the call inherits everything from the active scope. Inside a function
/// annotated with `#[parallel_backend]`, a header-less call is bound to that backend.
///
/// ## Tasks in other processes
///
/// A process backend (`"loky"`, `"mpi"`) runs a task in another process of the same
/// program, so the task must be able to get there: items and results implement serde's
/// traits, and so do the variables of the caller that the body uses (its captures).
///
/// The captures travel once per call and worker, not once per task: the macro finds them,
/// hands them to the body as one argument, encodes them once when the call starts, and each
/// worker decodes them once. In the worker a captured variable has the type it has in the
/// caller: a `&[f32]`, `&str` or `&T` is rebuilt from its owned form (`Vec<f32>`, `String`,
/// `T`); vectors and slices of numbers travel as one block of memory. Large captures (1 MiB
/// or more) stay with the workers for 2 seconds after the call, and a next call whose
/// captures are the same bytes reuses them (the caller compares them in full). Wrap data
/// that many calls use in [`parjob::Shared`](https://docs.rs/parjob/latest/parjob/struct.Shared.html):
/// workers keep it across calls.
///
/// The rule that finds the captures: a name in `EXPR` or `COND` is a capture when it is a
/// plain lowercase name (or `self`) used as a value, not as the function of a call, and no
/// pattern or item inside the body binds the same name. The rule cannot see a name used
/// only inside a nested macro call (`format!("{x}")`), nor tell a shadowed name from the
/// outer one; such a variable is captured by the body's closure as Rust captures it, which
/// keeps the call on threads, or, with a process backend named at compile time, is a
/// compile error that names it. Use the variable outside the macro (`let x = &x;` before
/// the comprehension, then `format!("{}", x)`), or rename the inner binding. A function
/// named as a value (`xs.map(f)`) is a capture of size zero and travels as nothing.
///
/// Named at compile time (in the header, or the attribute of the enclosing function), all of
/// this is checked at compile time, with an error at the captured variable or the value
/// whose type lacks serde. Chosen at run time (a scope), the macro checks it on the concrete
/// types where it is written: tasks that can travel do, the others run on threads (with a
/// `tracing` warning).
///
/// ```
/// use parjob::{parallel, parallel_backend};
///
/// fn fit(data: &[f64], label: &str, alpha: f64) -> f64 {
///     data.iter().map(|x| (x - alpha).abs()).sum::<f64>() + label.len() as f64
/// }
///
/// // Library code: no backend argument; `data` and `label` are captures.
/// fn grid_search(data: &[f64], label: &str) -> Result<Vec<f64>, parjob::Error> {
///     parallel!(fit(data, label, alpha) for alpha in [0.5, 1.0, 2.0])
/// }
///
/// let data: Vec<f64> = (0..100).map(f64::from).collect();
/// // The caller chooses worker processes; the data set reaches each worker once.
/// let scores = parallel_backend("loky").n_jobs(2).run(|| grid_search(&data, "l1"))??;
/// assert_eq!(scores.len(), 3);
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// # Block: `parallel!(HEADER; STMTS)`
///
/// Runs the statements with the header's scope active and has the value of the last
/// expression, like `with parallel_backend(...):` around them. It is a block, not a
/// closure: `return`, `?`, `break` and `continue` act on the enclosing function or loop.
///
/// ```
/// use parjob::parallel;
///
/// fn heavy(x: u64) -> u64 { x * x }
///
/// fn total(inputs: Vec<u64>) -> Result<u64, parjob::Error> {
///     let total = parallel!("threading", n_jobs = 2;
///         let parts = parallel!(heavy(x) for x in inputs)?; // `?` leaves `total`
///         parts.into_iter().sum::<u64>()
///     );
///     Ok(total)
/// }
/// assert_eq!(total(vec![1, 2, 3])?, 14);
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// The rest after the header is a comprehension when it is an expression followed by
/// `for`; anything else (including a `for` loop statement) is a block.
///
/// # Header
///
/// `BACKEND (, KEY = VALUE)*` or `KEY = VALUE (, KEY = VALUE)*`, ended by `;`. Each key may
/// appear once; literal values are checked at compile time and every mistake is reported at
/// once. On a comprehension the header applies to that call only, like
/// `Parallel(n_jobs=4, backend='threading')`; on a block it makes a scope.
///
/// ## `BACKEND`
///
/// A string literal names a built-in backend, checked at compile time (`"sequential"`,
/// `"threading"`, `"loky"`, `"multiprocessing"`, `"mpi"` with the `mpi` feature); any other
/// expression is evaluated at run time with `Into<BackendSpec>`. A header that names a
/// backend and no `n_jobs` uses `n_jobs = -1`, as `parallel_backend` does.
///
/// ## `n_jobs = i32`
///
/// Workers: `k > 0`, `-1` for every cpu, `k < -1` for `cpus + 1 + k`. A literal `0` is an error.
///
/// ## `batch_size = "auto" | usize` (comprehension only)
///
/// Tasks sent to a worker at a time; `"auto"` adapts it. A literal must be positive. Any
/// `impl Into<parjob::BatchSize>` expression is accepted.
///
/// ## `pre_dispatch = usize | "all" | "2*n_jobs" | ...` (comprehension only)
///
/// How many tasks are dispatched ahead of completion. A literal count must be positive;
/// strings are parsed by the runtime.
///
/// ## `timeout = seconds | Duration` (comprehension only)
///
/// Per-task time limit, measured from each task's start. A number literal is seconds
/// (`2.5` is 2.5 s) and must be positive; any other expression must be a `Duration`.
///
/// ## `verbose = u32`, `prefer = "threads" | "processes"`, `require = "sharedmem"`
///
/// As for `#[parallel_backend]`; `prefer = "processes"` with `require = "sharedmem"` is an
/// error.
///
/// ## `inner_max_num_threads = usize`
///
/// Threads available to nested calls inside the tasks. In a block header it needs a backend.
///
/// ## A backend's own parameters
///
/// `"loky"` takes `idle_worker_timeout`; other built-ins take none. A run-time backend takes
/// any other key as a parameter. An unknown key is an error listing the accepted ones.
///
/// # Expansion
///
/// ```text
/// parallel!("threading", batch_size = 4; f(x) for x in xs if x > 0)
/// // becomes (a shared-memory backend named here: no remote form)
/// ::parjob::__private::comprehension(
///     ::parjob::__private::Parallel::new()
///         .backend(::parjob::__private::builtin("threading")).n_jobs(-1).batch_size(4usize),
///     xs,
///     |x| if x > 0 { Some(f(x)) } else { None },
/// )
///
/// parallel!(f(x) for x in xs)
/// // becomes (backend chosen at run time: a probe on the concrete types)
/// {
///     let <job> = ::parjob::__private::comprehension_job(xs, |x| Some(f(x)));
///     let <remote> = (&&&&<job>.probe()).remote_map(); // Some(..) if the task can travel
///     <job>.run(::parjob::__private::Parallel::new(), <remote>)
/// }
///
/// parallel!(n_jobs = 2; STMTS)
/// // becomes
/// { let <guard> = ::parjob::__private::enter_scope(::parjob::__private::parallel_config().n_jobs(2)); STMTS }
/// ```
#[proc_macro]
pub fn parallel(input: TokenStream) -> TokenStream {
    entry::parallel(input.into()).into()
}

/// One task: a function call whose arguments are evaluated now and whose call runs later, on
/// a worker.
///
/// joblib's `delayed(f)(args)`. The value implements `parjob::Task` and is what
/// `Parallel::run` takes.
///
/// ```
/// use parjob::{delayed, Parallel};
///
/// fn neg(x: i64) -> i64 { -x }
///
/// let out = Parallel::new().run((0..5).map(|i| delayed!(neg(i + 1))))?;
/// assert_eq!(out, [-1, -2, -3, -4, -5]);
/// # Ok::<(), parjob::Error>(())
/// ```
///
/// Equivalent code without the macro: `parjob::Delayed::remote(neg, i + 1)` (a task that can
/// also run in a worker process), or `parjob::Delayed::new(move || neg(i + 1))` (threads only).
///
/// When `PATH` is a plain function and the arguments and the result implement serde's
/// traits, the task can run in a worker process of a process backend; otherwise it runs on
/// threads. This is decided on the concrete types where `delayed!` is written.
///
/// # Argument: `PATH(ARGS)`
///
/// ## `PATH`
///
/// A path to a function: `f`, `module::f`, `Type::method`, `f::<T>`, `<T as Trait>::f`. A
/// method call `receiver.method(args)` is an error: write `Type::method(receiver, args)`,
/// which makes the receiver an argument like the others.
///
/// ## `ARGS`
///
/// Evaluated at the `delayed!` call site, left to right, and moved into the task, so the
/// task owns them. They and the result must be `Send`.
///
/// # Expansion
///
/// ```text
/// delayed!(add(a + 1, b))
/// // becomes
/// {
///     let <arg0> = a + 1;
///     let <arg1> = b;
///     let <call> = ::parjob::__private::DelayedCall::new((<arg0>, <arg1>,), move |(<arg0>, <arg1>,)| add(<arg0>, <arg1>));
///     let <remote> = (&&&&<call>.probe()).remote_map(); // Some(..) if the call can travel
///     <call>.finish(<remote>)
/// }
/// ```
#[proc_macro]
pub fn delayed(input: TokenStream) -> TokenStream {
    entry::delayed(input.into()).into()
}
