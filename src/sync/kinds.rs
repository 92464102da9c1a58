//! The bus kinds of `[buses.NAME]`, compiled in or not, and how to open
//! one from its spec.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Deserialize;

use super::{Bus, MemoryBus};
use crate::Result;
use crate::config::BusSpec;

/// Opens a bus of one kind from its spec.
pub type OpenBusFn = fn(BusSpec) -> BoxFuture<'static, Result<Arc<dyn Bus>>>;

/// A bus kind polyrouter knows, and the cargo feature that builds it.
///
/// ```
/// assert!(polyrouter::sync::BUS_KINDS.iter().any(|k| k.name == "nats" && k.feature == "nats"));
/// ```
pub type BusKindInfo = crate::config::KindInfo<OpenBusFn>;

/// Every bus kind, compiled in or not (so a config naming a kind whose
/// feature is off gets a precise error).
pub const BUS_KINDS: &[BusKindInfo] = &[
    BusKindInfo {
        name: "memory",
        feature: "(none: always built)",
        open: Some(open_memory),
    },
    BusKindInfo {
        name: "nats",
        feature: "nats",
        #[cfg(feature = "nats")]
        open: Some(super::nats::open),
        #[cfg(not(feature = "nats"))]
        open: None,
    },
    BusKindInfo {
        name: "redis-streams",
        feature: "redis",
        #[cfg(feature = "redis")]
        open: Some(super::redis_streams::open),
        #[cfg(not(feature = "redis"))]
        open: None,
    },
];

/// Opens the bus a spec describes. Opening checks the options but does
/// not wait for a server: a bus that is down is reported by
/// [`Bus::ping`] and by every call (`Error::Unavailable`) until it is back.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::config::BusSpec;
/// let bus = polyrouter::sync::open_bus(BusSpec::new("events", "memory", toml::Table::new())).await.unwrap();
/// assert_eq!(bus.kind(), "memory");
/// let e = polyrouter::sync::open_bus(BusSpec::new("events", "kafka", toml::Table::new())).await.unwrap_err();
/// assert!(e.to_string().contains("unknown bus kind `kafka`"), "{e}");
/// # });
/// ```
pub async fn open_bus(spec: BusSpec) -> Result<Arc<dyn Bus>> {
    let open = crate::config::opener(BUS_KINDS, "bus", &spec.kind)
        .map_err(|msg| spec.error(&["kind"], msg))?;
    open(spec).await
}

/// `kind = "memory"` takes no options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryOptions {}

fn open_memory(spec: BusSpec) -> BoxFuture<'static, Result<Arc<dyn Bus>>> {
    Box::pin(async move {
        let MemoryOptions {} = spec.parse()?;
        Ok(Arc::new(MemoryBus::new(&spec.name)) as Arc<dyn Bus>)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_options_and_disabled_kinds_are_located_errors() {
        let mut opts = toml::Table::new();
        opts.insert("size".into(), 3.into());
        let e = open_bus(BusSpec::new("events", "memory", opts))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("buses.events.size"), "{e}");
        #[cfg(not(feature = "nats"))]
        {
            let e = open_bus(BusSpec::new("events", "nats", toml::Table::new()))
                .await
                .unwrap_err();
            assert!(
                e.to_string().contains("enable the cargo feature `nats`"),
                "{e}"
            );
        }
    }
}
