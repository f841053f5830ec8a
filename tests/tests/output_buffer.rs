//! Results of calls over inputs of known length are written by the workers straight into
//! the output: lying length hints, failures and owned results must still come out right,
//! with every value dropped exactly once.

use parjob::{Error, Parallel};
use parjob_tests::Tracked;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

/// An iterator that announces `claimed` items and yields `actual`.
struct Lying {
    next: usize,
    actual: usize,
    claimed: usize,
}

impl Iterator for Lying {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        (self.next < self.actual).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.claimed.saturating_sub(self.next);
        (left, Some(left))
    }
}

#[test]
fn inputs_that_lie_about_their_length_still_give_every_result_in_order() {
    for (actual, claimed) in [(1000, 10), (10, 1000), (5000, 4999), (0, 3), (3, 0)] {
        let input = Lying {
            next: 0,
            actual,
            claimed,
        };
        let out = Parallel::new()
            .n_jobs(2)
            .map(input, |i| format!("#{i}"))
            .unwrap();
        let expected: Vec<String> = (0..actual).map(|i| format!("#{i}")).collect();
        assert_eq!(out, expected, "actual={actual} claimed={claimed}");
    }
}

#[test]
fn every_result_is_dropped_exactly_once_on_success_and_on_failure() {
    let live = Arc::new(AtomicIsize::new(0));
    let out = Parallel::new()
        .n_jobs(2)
        .map(0..10_000, |_| Tracked::new(&live))
        .unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 10_000);
    drop(out);
    assert_eq!(live.load(Ordering::SeqCst), 0);

    for fail_at in [0, 1, 255, 256, 5_000, 9_999] {
        let r = Parallel::new().n_jobs(2).try_map(0..10_000, |i| {
            if i == fail_at {
                Err("no")
            } else {
                Ok(Tracked::new(&live))
            }
        });
        assert!(matches!(r, Err(Error::TaskFailed { index, .. }) if index == fail_at));
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "fail_at={fail_at}: results leaked or dropped twice"
        );
    }
}

#[test]
fn panics_in_place_report_the_right_index() {
    for at in [0usize, 300, 7_777] {
        let err = Parallel::new()
            .n_jobs(3)
            .map(0..10_000usize, |i| {
                assert!(i != at, "at {i}");
                i.to_string()
            })
            .unwrap_err();
        assert!(
            matches!(err, Error::TaskPanicked { index, .. } if index == at),
            "{err:?}"
        );
    }
}

#[test]
fn a_panic_mid_batch_drops_the_values_already_written_exactly_once() {
    let live = Arc::new(AtomicIsize::new(0));
    for at in [0usize, 1, 600, 9_999] {
        let r = Parallel::new().n_jobs(2).map(0..10_000usize, |i| {
            assert!(i != at, "at {i}");
            Tracked::new(&live)
        });
        assert!(matches!(r, Err(Error::TaskPanicked { index, .. }) if index == at));
        assert_eq!(live.load(Ordering::SeqCst), 0, "at={at}");
    }
}
