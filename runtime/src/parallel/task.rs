//! What a parallel call runs: tasks.

use crate::remote::{ErasedDecode, RemoteForm, RemoteMap, Transferable};

/// One unit of work for [`Parallel::run`](crate::Parallel::run): called once, on some
/// worker, for its output.
///
/// Implemented for every `FnOnce() -> R + Send` closure and for [`Delayed`] (what
/// `delayed!(f(args))` makes). Closures and tasks of your own run on threads; a [`Delayed`]
/// call can also run in a worker process when its function, arguments and result allow it.
///
/// # Examples
///
/// ```
/// use parjob::{Parallel, Task};
///
/// struct Square(u64);
///
/// impl Task for Square {
///     type Output = u64;
///     fn call(self) -> u64 {
///         self.0 * self.0
///     }
/// }
///
/// let out = Parallel::new().n_jobs(2).run((1..=3).map(Square))?;
/// assert_eq!(out, [1, 4, 9]);
/// # Ok::<(), parjob::Error>(())
/// ```
pub trait Task: Send {
    /// What the task produces.
    type Output: Send;

    /// Runs the task.
    fn call(self) -> Self::Output;

    /// How a worker process runs this task, if it can, and how its outcome is decoded
    /// (into `Self::Output`s).
    #[doc(hidden)]
    fn __remote_form(&self) -> Option<(RemoteForm, ErasedDecode)> {
        None
    }

    /// Appends the task's input to a batch payload (only called when `__remote_form` is
    /// `Some`).
    #[doc(hidden)]
    fn __encode_input(self, out: &mut Vec<u8>) -> Result<(), String>
    where
        Self: Sized,
    {
        let _ = out;
        Err("this task cannot run in another process".into())
    }
}

impl<F, R> Task for F
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    type Output = R;

    fn call(self) -> R {
        self()
    }
}

/// A function call whose arguments were evaluated where it was written, to be run later by
/// a parallel call: what `delayed!(f(a, b))` produces (joblib's `delayed(f)(a, b)`).
///
/// Made by [`Delayed::new`] from a closure (runs on threads only), or by [`Delayed::remote`]
/// from a `fn` and its arguments, which can also run in a worker process of a process
/// backend because the arguments and the result travel with serde.
///
/// # Examples
///
/// ```
/// use parjob::{Delayed, Parallel};
///
/// fn neg(x: i64) -> i64 {
///     -x
/// }
///
/// let tasks = (0..5).map(|i| Delayed::new(move || neg(i + 1)));
/// assert_eq!(Parallel::new().run(tasks)?, [-1, -2, -3, -4, -5]);
/// # Ok::<(), parjob::Error>(())
/// ```
pub struct Delayed<C, A = ()> {
    call: C,
    args: A,
    remote: Option<RemoteParts<A>>,
}

/// The process-crossing form of a [`Delayed`] call.
struct RemoteParts<A> {
    form: RemoteForm,
    encode_one: fn(A, &mut Vec<u8>) -> Result<(), String>,
    /// Made for the call's output type, which is the task's `Output`.
    decode: ErasedDecode,
}

impl<A> Clone for RemoteParts<A> {
    fn clone(&self) -> Self {
        RemoteParts {
            form: self.form,
            encode_one: self.encode_one,
            decode: self.decode,
        }
    }
}

/// A closure with no arguments, as [`Delayed::new`] takes it.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct Thunk<F>(F);

/// A function applied to one argument (a tuple of the call's arguments).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct Applied<F>(F);

/// What a [`Delayed`] holds: something to call with its arguments.
#[doc(hidden)]
pub trait Callable<A>: Send {
    type Output: Send;
    fn invoke(self, args: A) -> Self::Output;
}

impl<F: FnOnce() -> R + Send, R: Send> Callable<()> for Thunk<F> {
    type Output = R;
    fn invoke(self, (): ()) -> R {
        (self.0)()
    }
}

impl<F: FnOnce(A) -> R + Send, A, R: Send> Callable<A> for Applied<F> {
    type Output = R;
    fn invoke(self, args: A) -> R {
        (self.0)(args)
    }
}

impl<F> Delayed<Thunk<F>> {
    /// Wraps a closure that makes the call with arguments it already owns. Such a task runs
    /// on threads (or the calling thread) only.
    pub fn new(call: F) -> Self {
        Delayed {
            call: Thunk(call),
            args: (),
            remote: None,
        }
    }
}

impl<A, R> Delayed<Applied<fn(A) -> R>, A> {
    /// `f(args)` as a task that can run in a worker process: `f` is a plain function of
    /// this binary, and the arguments and the result go through serde. `args` is a tuple
    /// when `f` takes several values.
    ///
    /// This is what `delayed!` makes, without the macro.
    ///
    /// ```
    /// use parjob::{Delayed, Parallel};
    ///
    /// fn area((w, h): (u32, u32)) -> u32 {
    ///     w * h
    /// }
    ///
    /// let tasks = [(2, 3), (4, 5)].map(|wh| Delayed::remote(area, wh));
    /// assert_eq!(Parallel::new().run(tasks)?, [6, 20]);
    /// # Ok::<(), parjob::Error>(())
    /// ```
    pub fn remote(f: fn(A) -> R, args: A) -> Self
    where
        A: Transferable,
        R: Transferable,
    {
        let map = RemoteMap::pointer(f);
        Delayed {
            call: Applied(f),
            args,
            remote: Some(RemoteParts {
                form: map.form(),
                encode_one: map.element_encoder(),
                decode: map.erased_decoder(),
            }),
        }
    }
}

impl<F, A> Delayed<Applied<F>, A> {
    /// `f(args)` with the arguments already evaluated: what `delayed!` expands to. With a
    /// remote form (from the macros' probe) the call can run in a worker process.
    #[doc(hidden)]
    pub fn __with_args<R>(args: A, f: F, remote: Option<RemoteMap<A, R>>) -> Self
    where
        F: FnOnce(A) -> R,
    {
        Delayed {
            call: Applied(f),
            args,
            remote: remote.map(|map| RemoteParts {
                form: map.form(),
                encode_one: map.element_encoder(),
                decode: map.erased_decoder(),
            }),
        }
    }
}

impl<C: Clone, A: Clone> Clone for Delayed<C, A> {
    fn clone(&self) -> Self {
        Delayed {
            call: self.call.clone(),
            args: self.args.clone(),
            remote: self.remote.clone(),
        }
    }
}

impl<C, A> std::fmt::Debug for Delayed<C, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delayed")
            .field("can_run_in_processes", &self.remote.is_some())
            .finish()
    }
}

impl<C, A> Task for Delayed<C, A>
where
    C: Callable<A>,
    A: Send,
{
    type Output = C::Output;

    fn call(self) -> C::Output {
        self.call.invoke(self.args)
    }

    fn __remote_form(&self) -> Option<(RemoteForm, ErasedDecode)> {
        self.remote.as_ref().map(|r| (r.form, r.decode))
    }

    fn __encode_input(self, out: &mut Vec<u8>) -> Result<(), String> {
        match self.remote {
            Some(parts) => (parts.encode_one)(self.args, out),
            None => Err("this task cannot run in another process".into()),
        }
    }
}
