//! Fault 8 of the matrix, the input iterator panics part-way: the panic reaches the
//! caller for `run` and for a comprehension, the call does not hang, and the pool heals.

use crate::harness::{
    CALL_LIMIT, assert_healthy, assert_nothing_left_behind, is_process_backend, payload_text,
    serial, within,
};
use crate::tasks::square;
use parjob::{Error, delayed, parallel};
use parjob_tests::par;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The panic reaches the caller, as in rayon, for both call shapes (`run`, whose tasks own
/// their data, and a comprehension, which is a `map`); the call does not hang, and the
/// next one works.
fn check_input_panic(_test: &str, backend: &'static str) {
    // Serialised on every backend, as `check_panic`.
    let _serial = serial();
    type Call = fn(&'static str) -> Result<Vec<u64>, Error>;
    let shapes: [(&str, Call); 2] = [
        ("run", |backend| {
            par(backend).batch_size(1).run((0..10u64).map(|x| {
                assert!(x != 5, "the input broke at 5");
                delayed!(square(x))
            }))
        }),
        ("comprehension", |backend| {
            let items = (0..10u64).inspect(|&x| assert!(x != 5, "the input broke at 5"));
            parallel!(backend, n_jobs = 2, batch_size = 1; square(x) for x in items)
        }),
    ];
    for (shape, call) in shapes {
        let caught = within(CALL_LIMIT, backend, move || {
            catch_unwind(AssertUnwindSafe(|| call(backend))).map_err(|p| payload_text(&*p))
        });
        match caught {
            Err(message) => assert!(
                message.contains("the input broke at 5"),
                "{backend} {shape}: {message}"
            ),
            Ok(r) => panic!("{backend} {shape}: the input's panic was swallowed: {r:?}"),
        }
        assert_healthy(backend);
    }
    if is_process_backend(backend) {
        assert_nothing_left_behind(backend);
    }
}

cells!(check_input_panic => {
    input_panic_sequential: "sequential",
    input_panic_threading: "threading",
    input_panic_loky: "loky",
    input_panic_multiprocessing: "multiprocessing",
});
