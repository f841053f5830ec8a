//! Backend names: the built-in ones, those registered at run time, and the default.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::backend::{Backend, BackendSpec, ParamValue, Sequential, Threading};
use crate::error::Error;
use crate::sync::Recover;

type Factory = Arc<dyn Fn() -> Box<dyn Backend> + Send + Sync>;

struct Registry {
    factories: BTreeMap<String, Factory>,
    default: String,
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut factories: BTreeMap<String, Factory> = BTreeMap::new();
        factories.insert(
            "sequential".into(),
            Arc::new(|| Box::new(Sequential::new())),
        );
        factories.insert("threading".into(), Arc::new(|| Box::new(Threading::new())));
        #[cfg(unix)]
        factories.insert(
            "loky".into(),
            Arc::new(|| Box::new(crate::backend::Loky::new())),
        );
        #[cfg(unix)]
        factories.insert(
            "multiprocessing".into(),
            Arc::new(|| Box::new(crate::backend::Multiprocessing::new())),
        );
        #[cfg(all(unix, feature = "mpi"))]
        factories.insert(
            "mpi".into(),
            Arc::new(|| Box::new(crate::backend::Mpi::new())),
        );
        RwLock::new(Registry {
            factories,
            default: "threading".into(),
        })
    })
}

/// Registers a backend under `name`, so that `parallel_backend(name)`, `registered(name)` and
/// `#[parallel_backend]` with a run-time name can use it. `factory` makes a fresh instance
/// each time a scope or call names the backend (so that backend parameters apply to that
/// instance only). A name registered again is replaced. With `make_default`, the backend
/// also becomes the root default of every thread (unless `PARJOB_BACKEND` is set, which
/// always wins).
///
/// # Errors
///
/// [`Error::InvalidConfig`] for an empty name.
///
/// # Examples
///
/// ```
/// use parjob::{get_active_backend, register_parallel_backend, backend::Sequential};
///
/// register_parallel_backend("debug", Sequential::new, false)?;
/// let name = parjob::parallel_backend("debug")
///     .run(|| get_active_backend().name().to_owned())?;
/// assert_eq!(name, "sequential"); // the instance reports its own name
/// # Ok::<(), parjob::Error>(())
/// ```
pub fn register_parallel_backend<B, F>(
    name: impl Into<String>,
    factory: F,
    make_default: bool,
) -> Result<(), Error>
where
    B: Backend,
    F: Fn() -> B + Send + Sync + 'static,
{
    let name = name.into();
    if name.trim().is_empty() {
        return Err(Error::config("a backend name cannot be empty"));
    }
    let mut reg = registry().write().recover();
    reg.factories.insert(
        name.clone(),
        Arc::new(move || Box::new(factory()) as Box<dyn Backend>),
    );
    if make_default {
        reg.default = name;
    }
    Ok(())
}

/// The backend registered under `name`, looked up when a scope is entered or a call runs.
///
/// Use it for names only known at run time; a string literal in the macros is checked at
/// compile time instead.
///
/// ```
/// use parjob::{parallel_backend, registered, Error};
///
/// let name = String::from("sequential");
/// assert!(parallel_backend(registered(&name)).enter().is_ok());
/// assert!(matches!(
///     parallel_backend(registered("no-such-backend")).enter(),
///     Err(Error::UnknownBackend { .. })
/// ));
/// ```
pub fn registered(name: impl AsRef<str>) -> BackendSpec {
    BackendSpec::named(name.as_ref())
}

/// The names registered now, sorted.
pub(crate) fn known_names() -> Vec<String> {
    let reg = registry().read().recover();
    reg.factories.keys().cloned().collect()
}

/// The name of the root default backend: `PARJOB_BACKEND` if set, else the registered default.
pub(crate) fn default_name() -> String {
    if let Some(name) = env_backend() {
        return name;
    }
    registry().read().recover().default.clone()
}

/// `PARJOB_BACKEND`, read once per process.
fn env_backend() -> Option<String> {
    static BACKEND: OnceLock<Option<String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            std::env::var("PARJOB_BACKEND")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .clone()
}

pub(crate) fn is_registered(name: &str) -> bool {
    registry().read().recover().factories.contains_key(name)
}

/// A backend instance for `spec`, with `params` applied: a name is looked up now.
pub(crate) fn resolve(
    spec: &BackendSpec,
    params: &[(String, ParamValue)],
) -> Result<Arc<dyn Backend>, Error> {
    match spec.instance() {
        None => instantiate(spec.name(), params),
        Some(b) if params.is_empty() => Ok(Arc::clone(b)),
        Some(b) => Err(Error::config(format!(
            "backend parameters need a backend given by name, not an instance of `{}`",
            b.name()
        ))),
    }
}

/// A fresh instance of the backend registered under `name`, with `params` applied.
pub(crate) fn instantiate(
    name: &str,
    params: &[(String, ParamValue)],
) -> Result<Arc<dyn Backend>, Error> {
    let factory = registry().read().recover().factories.get(name).cloned();
    let Some(factory) = factory else {
        return Err(Error::UnknownBackend {
            name: name.to_owned(),
            known: known_names(),
        });
    };
    let mut backend = factory();
    for (key, value) in params {
        backend.set_param(key, value)?;
    }
    Ok(Arc::from(backend))
}
