//! Backend names: the built-in ones, those registered at run time, and the default.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use crate::Error;
use crate::backend::{Backend, ParamValue, Sequential, Threading};

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
    let mut reg = registry().write().unwrap_or_else(|e| e.into_inner());
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
    BackendSpec(Spec::Name(Arc::from(name.as_ref())))
}

/// The names registered now, sorted.
pub(crate) fn known_names() -> Vec<String> {
    let reg = registry().read().unwrap_or_else(|e| e.into_inner());
    reg.factories.keys().cloned().collect()
}

/// The name of the root default backend: `PARJOB_BACKEND` if set, else the registered default.
pub(crate) fn default_name() -> String {
    if let Some(name) = crate::scope::env_backend() {
        return name;
    }
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .default
        .clone()
}

pub(crate) fn is_registered(name: &str) -> bool {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .factories
        .contains_key(name)
}

fn instantiate(name: &str, params: &[(String, ParamValue)]) -> Result<Arc<dyn Backend>, Error> {
    let factory = registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .factories
        .get(name)
        .cloned();
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

/// A backend as a scope or a call names it: a registered name, resolved when used, or an
/// instance.
///
/// Anything that converts into a `BackendSpec` is accepted where a backend is taken: a name
/// (`&str`, `String`), [`registered(name)`](registered), or a backend instance such as
/// [`Threading::new()`](crate::backend::Threading::new).
///
/// ```
/// use parjob::{backend::Sequential, registered, BackendSpec};
///
/// assert_eq!(BackendSpec::from("threading").name(), "threading");
/// assert_eq!(BackendSpec::from(Sequential::new()).name(), "sequential");
/// assert_eq!(registered("loky").name(), "loky");
/// ```
#[derive(Clone)]
pub struct BackendSpec(Spec);

#[derive(Clone)]
enum Spec {
    Name(Arc<str>),
    Instance(Arc<dyn Backend>),
}

impl BackendSpec {
    /// The backend's name: the registered name, or the instance's own.
    pub fn name(&self) -> &str {
        match &self.0 {
            Spec::Name(n) => n,
            Spec::Instance(b) => b.name(),
        }
    }

    /// A backend instance with `params` applied.
    pub(crate) fn resolve(
        &self,
        params: &[(String, ParamValue)],
    ) -> Result<Arc<dyn Backend>, Error> {
        match &self.0 {
            Spec::Name(n) => instantiate(n, params),
            Spec::Instance(b) if params.is_empty() => Ok(Arc::clone(b)),
            Spec::Instance(b) => Err(Error::config(format!(
                "backend parameters need a backend given by name, not an instance of `{}`",
                b.name()
            ))),
        }
    }
}

impl fmt::Debug for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Spec::Name(n) => f.debug_tuple("BackendSpec").field(n).finish(),
            Spec::Instance(b) => write!(f, "BackendSpec(<{} instance>)", b.name()),
        }
    }
}

impl From<&str> for BackendSpec {
    fn from(name: &str) -> Self {
        registered(name)
    }
}

impl From<String> for BackendSpec {
    fn from(name: String) -> Self {
        BackendSpec(Spec::Name(Arc::from(name)))
    }
}

impl From<&String> for BackendSpec {
    fn from(name: &String) -> Self {
        registered(name)
    }
}

impl<B: Backend> From<B> for BackendSpec {
    fn from(backend: B) -> Self {
        BackendSpec(Spec::Instance(Arc::new(backend)))
    }
}

impl From<Arc<dyn Backend>> for BackendSpec {
    fn from(backend: Arc<dyn Backend>) -> Self {
        BackendSpec(Spec::Instance(backend))
    }
}
