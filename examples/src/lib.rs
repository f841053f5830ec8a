//! Runnable examples of parjob: see the `examples` of this package.
