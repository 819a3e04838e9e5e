//! The one way the crate defines and registers its metric families: [`defined`] builds a family
//! from a fixed definition, [`register`] adds it to a registry, and [`registered`] does both and
//! hands back the family. Every module that owns metrics (the gateway's in `metrics.rs`, auth,
//! policy reloads, etcd, config reloads, the access log) goes through these.

use prometheus::Registry;
use prometheus::core::Collector;

/// Builds a metric family from a fixed definition (literal name, help and labels). Such a
/// definition fails only when it is malformed, a programming error every test would catch, so
/// this panics instead of returning an error nobody could handle.
pub fn defined<T>(family: prometheus::Result<T>) -> T {
    match family {
        Ok(family) => family,
        Err(e) => panic!("malformed metric definition: {e}"),
    }
}

/// Registers `collector` in `registry`. Only a family registered twice (two gateways sharing
/// one registry) fails: the first registration's series stay exported, the new handles count
/// unexported, and a warning says so.
pub fn register(registry: &Registry, collector: impl Collector + 'static) {
    if let Err(e) = registry.register(Box::new(collector)) {
        tracing::warn!(error = %e, "metric family not registered");
    }
}

/// [`defined`], then [`register`]: the family, registered in `registry`.
pub fn registered<C: Collector + Clone + 'static>(
    registry: &Registry,
    family: prometheus::Result<C>,
) -> C {
    let family = defined(family);
    register(registry, family.clone());
    family
}
