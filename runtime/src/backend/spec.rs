//! How a scope or a call names a backend: by name, or as an instance.

use std::fmt;
use std::sync::Arc;

use super::Backend;

/// A backend as a scope or a call names it: a registered name, resolved when used, or an
/// instance.
///
/// Anything that converts into a `BackendSpec` is accepted where a backend is taken: a name
/// (`&str`, `String`), [`registered(name)`](crate::registered), or a backend instance such as
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

    /// A registered name, looked up when the spec is used.
    pub(crate) fn named(name: &str) -> Self {
        BackendSpec(Spec::Name(Arc::from(name)))
    }

    /// The instance, for a spec made from one.
    pub(crate) fn instance(&self) -> Option<&Arc<dyn Backend>> {
        match &self.0 {
            Spec::Name(_) => None,
            Spec::Instance(b) => Some(b),
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
        BackendSpec::named(name)
    }
}

impl From<String> for BackendSpec {
    fn from(name: String) -> Self {
        BackendSpec(Spec::Name(Arc::from(name)))
    }
}

impl From<&String> for BackendSpec {
    fn from(name: &String) -> Self {
        BackendSpec::named(name)
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
