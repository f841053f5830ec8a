//! What runs before `main` in every binary that links parjob: a process that a worker pool
//! started becomes a worker here and never reaches `main` (see `process/bootstrap.rs`).
//!
//! It sits at the top of the crate because a worker's batches run inside the scope stack
//! (nested calls see threading), which the process engine below may not name: it is handed
//! [`worker_scope`](crate::scope::worker_scope) instead.

// `late`: constructors of other crates (std's argument capture among them) run first, so
// that tasks see the process as `main` would have.
#[cfg(unix)]
#[ctor::ctor(unsafe, priority = late)]
fn become_worker_if_asked() {
    crate::process::become_worker_if_asked(crate::scope::worker_scope);
}
