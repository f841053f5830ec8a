//! The macros' compile-time behaviour: every accepted form compiles and runs
//! (`tests/ui/pass`), every distinct error reads as recorded (`tests/ui/fail/*.stderr`).
//!
//! rustc's wording drifts between releases, so the snapshots belong to the compiler they
//! were made with; on any other the suite is skipped with a notice. Regenerate with
//! `TRYBUILD=overwrite cargo test -p parjob-ui-tests` and read the diff.

use std::process::Command;

/// The compiler the `.stderr` snapshots were made with.
const SNAPSHOT_RUSTC: &str = "rustc 1.95.";

#[test]
fn ui() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    if !version.starts_with(SNAPSHOT_RUSTC) {
        println!(
            "note: skipping the ui tests: their snapshots were made with {SNAPSHOT_RUSTC}x, \
             this is `{}`",
            version.trim()
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
