//! trybuild cases for the parjob macros live in `tests/`.
