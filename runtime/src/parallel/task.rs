//! What a parallel call runs: tasks.

/// One unit of work for [`Parallel::run`](crate::Parallel::run): called once, on some
/// worker, for its output.
///
/// Implemented for every `FnOnce() -> R + Send` closure and for [`Delayed`] (what
/// `delayed!(f(args))` makes).
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
#[derive(Clone)]
pub struct Delayed<F> {
    call: F,
}

impl<F> Delayed<F> {
    /// Wraps a closure that makes the call with arguments it already owns.
    pub fn new(call: F) -> Self {
        Delayed { call }
    }
}

impl<F> std::fmt::Debug for Delayed<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Delayed")
    }
}

impl<F, R> Task for Delayed<F>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    type Output = R;

    fn call(self) -> R {
        (self.call)()
    }
}
