//! The macros' table of built-in backends ([`BUILTINS`]) checked against the runtime they
//! expand to: the same names, the same parameters, the same kinds of workers. A backend
//! added to one side only fails here, not in a user's build.

use crate::valid::BUILTINS;
use parjob::backend::{Sequential, Threading, Workers};
use parjob::{Backend, Error, parallel_backend};

/// The runtime's instance of a built-in backend, to ask what its workers are.
fn instance(name: &str) -> Option<Box<dyn Backend>> {
    Some(match name {
        "sequential" => Box::new(Sequential::new()),
        "threading" => Box::new(Threading::new()),
        #[cfg(unix)]
        "loky" => Box::new(parjob::backend::Loky::new()),
        #[cfg(unix)]
        "multiprocessing" => Box::new(parjob::backend::Multiprocessing::new()),
        _ => return None,
    })
}

/// The names the runtime's registry knows, from the error an unknown name gets.
fn registered_names() -> Vec<String> {
    match parallel_backend("no-such-backend").enter() {
        Err(Error::UnknownBackend { known, .. }) => known,
        other => panic!("an unknown name must be refused, got {other:?}"),
    }
}

#[test]
fn every_registered_backend_is_in_the_table() {
    let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
    let registered = registered_names();
    assert!(!registered.is_empty());
    for name in &registered {
        assert!(
            names.contains(&name.as_str()),
            "`{name}` is registered but the macros do not know it"
        );
    }
    for backend in BUILTINS.iter().filter(|b| b.feature.is_none()) {
        #[cfg(not(unix))]
        if backend.runs_in_processes {
            continue;
        }
        assert!(
            registered.iter().any(|r| r == backend.name),
            "the macros accept `{}`, which the runtime does not register",
            backend.name
        );
    }
}

#[test]
fn the_table_says_what_the_runtime_backends_are() {
    let mut checked = 0;
    for backend in BUILTINS {
        let Some(instance) = instance(backend.name) else {
            continue;
        };
        checked += 1;
        let workers = instance.workers();
        assert_eq!(
            backend.has_workers,
            workers.has_workers(),
            "{}",
            backend.name
        );
        assert_eq!(
            backend.runs_in_processes,
            !workers.shares_memory(),
            "{}",
            backend.name
        );
        assert_eq!(
            backend.moves_inputs,
            workers == Workers::Processes,
            "{}",
            backend.name
        );
    }
    assert!(checked >= 2, "only {checked} backends checked");
}

#[test]
fn every_parameter_in_the_table_is_taken_by_the_runtime() {
    let registered = registered_names();
    for backend in BUILTINS
        .iter()
        .filter(|b| registered.iter().any(|r| r == b.name))
    {
        for param in backend.params {
            let entered = parallel_backend(backend.name).param(param, 1.5).enter();
            assert!(
                entered.is_ok(),
                "`{}` refuses `{param}`: {:?}",
                backend.name,
                entered.err()
            );
        }
        let unknown = parallel_backend(backend.name)
            .param("no_such_param", 1)
            .enter();
        assert!(
            matches!(unknown, Err(Error::InvalidConfig { .. })),
            "`{}` takes a parameter the macros do not list",
            backend.name
        );
    }
}
