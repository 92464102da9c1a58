//! [`Observe`]: a `tracing` span and `metrics` for every store call.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use parking_lot::RwLock;
use tracing::field::Empty;

use super::call::{Call, Operation};
use super::layered::{Outcome, Policy};
use crate::Result;

/// FNV-1a for the handle maps: their keys are an operation and a few short
/// entity names from the configuration (no untrusted input), looked up on
/// every call, where SipHash costs more than the rest of the lookup.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// The metric handles of one (operation, entity) of a store.
#[derive(Debug)]
struct Handles {
    ok: metrics::Counter,
    failed: metrics::Counter,
    seconds: metrics::Histogram,
}

impl Handles {
    fn register(call: &Call<'_>, entity: &str) -> Self {
        let labels = |outcome: &'static str| {
            [
                ("store", call.store.to_string()),
                ("entity", entity.to_string()),
                ("operation", call.operation.name().to_string()),
                ("outcome", outcome.to_string()),
            ]
        };
        Handles {
            ok: metrics::counter!("polyrouter_store_calls_total", &labels("ok")),
            failed: metrics::counter!("polyrouter_store_calls_total", &labels("error")),
            seconds: metrics::histogram!(
                "polyrouter_store_call_duration_seconds",
                "store" => call.store.to_string(),
                "entity" => entity.to_string(),
                "operation" => call.operation.name()
            ),
        }
    }
}

/// Gives every store call a `tracing` span named `polyrouter.store` with
/// the OpenTelemetry database semantic-convention fields — `db.system.name`
/// (the store kind), `db.operation.name`, `db.collection.name` (table,
/// graph, index or series), `server.address` and `server.port` (from the
/// store's redacted location) — plus `polyrouter.store`,
/// `polyrouter.entity`, `polyrouter.items`, and, when it ends,
/// `polyrouter.outcome` (`ok`/`error`), `error.type` (the error's
/// [`kind_name`](crate::Error::kind_name)), `otel.status_code`,
/// `polyrouter.attempts` (set by [`Retry`](super::Retry)) and
/// `db.response.returned_rows`. It never records a record's values, and a
/// key only when `trace_keys` is on.
///
/// Through the `metrics` facade it counts `polyrouter_store_calls_total`
/// (labels `store`, `entity`, `operation`, `outcome`) and
/// `polyrouter_store_errors_total` (`store`, `entity`, `operation`,
/// `kind`), and records `polyrouter_store_call_duration_seconds`. Handles
/// are registered with the recorder on the first call of each operation
/// and entity: install the recorder before the first call.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::layers::{Layered, Observe};
/// use polyrouter::{backends::memory::MemoryStore, Store};
/// let store = Layered::wrap(MemoryStore::new("m"), Observe::new());
/// store.ping().await.unwrap(); // a span, and a count, with no subscriber or recorder: nothing to see
/// # });
/// ```
#[derive(Debug, Default)]
pub struct Observe {
    address: Option<String>,
    port: Option<u16>,
    trace_keys: bool,
    handles: RwLock<FnvMap<Operation, FnvMap<Box<str>, Handles>>>,
}

impl Observe {
    /// Spans without a server address and without keys.
    ///
    /// ```
    /// let _o = polyrouter::layers::Observe::new();
    /// ```
    pub fn new() -> Self {
        Observe::default()
    }

    /// Takes `server.address` and `server.port` from a store's
    /// [`location`](crate::Store::location) (already without secrets):
    /// `postgres://user@db.example:5432/app` gives `db.example` and 5432; a
    /// path or `in-process` gives none.
    ///
    /// ```
    /// let o = polyrouter::layers::Observe::new().location("redis://127.0.0.1:6379/0");
    /// assert_eq!(o.server(), (Some("127.0.0.1"), Some(6379)));
    /// let o = polyrouter::layers::Observe::new().location("/var/data/app.db");
    /// assert_eq!(o.server(), (None, None));
    /// ```
    pub fn location(mut self, location: &str) -> Self {
        (self.address, self.port) = server_of(location);
        self
    }

    /// Records the key of single-key calls in the span (`polyrouter.key`).
    ///
    /// ```
    /// let _o = polyrouter::layers::Observe::new().trace_keys(true);
    /// ```
    pub fn trace_keys(mut self, on: bool) -> Self {
        self.trace_keys = on;
        self
    }

    /// The server address and port spans carry.
    ///
    /// ```
    /// assert_eq!(polyrouter::layers::Observe::new().server(), (None, None));
    /// ```
    pub fn server(&self) -> (Option<&str>, Option<u16>) {
        (self.address.as_deref(), self.port)
    }

    fn count<T>(&self, call: &Call<'_>, out: &Result<T>, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let entity = call.entity();
        let record = |h: &Handles| {
            match out {
                Ok(_) => h.ok.increment(1),
                Err(_) => h.failed.increment(1),
            }
            h.seconds.record(seconds);
        };
        let known = self
            .handles
            .read()
            .get(&call.operation)
            .and_then(|m| m.get(entity.as_ref()))
            .map(record)
            .is_some();
        if !known {
            let mut all = self.handles.write();
            let h = all
                .entry(call.operation)
                .or_default()
                .entry(entity.as_ref().into())
                .or_insert_with(|| Handles::register(call, &entity));
            record(h);
        }
        if let Err(e) = out {
            metrics::counter!(
                "polyrouter_store_errors_total",
                "store" => call.store.to_string(),
                "entity" => entity.into_owned(),
                "operation" => call.operation.name(),
                "kind" => e.kind_name()
            )
            .increment(1);
        }
    }
}

/// Host and port of a location like `scheme://user@host:port/path`,
/// `host:port` or `[::1]:5432`; none for paths and `in-process`.
fn server_of(location: &str) -> (Option<String>, Option<u16>) {
    let rest = match location.split_once("://") {
        Some((_, rest)) => rest,
        None if location.starts_with('/') || location.starts_with('.') => return (None, None),
        None => location,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return (None, None);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return (None, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = port.and_then(|p| p.parse().ok());
    if port.is_none() && !host.contains('.') && host != "localhost" {
        // `in-process`, `sqlite::memory:`, a bare word: not a server.
        return (None, None);
    }
    (Some(host.to_string()), port)
}

impl Policy for Observe {
    fn around<'a, T, F, Fut>(
        &'a self,
        call: &'a Call<'a>,
        run: F,
    ) -> impl Future<Output = Result<T>> + Send + 'a
    where
        T: Outcome + 'a,
        F: Fn() -> Fut + Send + Sync + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        let span = tracing::info_span!(
            "polyrouter.store",
            otel.kind = "client",
            db.system.name = call.kind,
            db.operation.name = call.operation.name(),
            db.collection.name = call.target.collection(),
            server.address = self.address.as_deref(),
            server.port = self.port,
            polyrouter.store = call.store,
            polyrouter.entity = %call.entity(),
            polyrouter.items = call.items as u64,
            polyrouter.key = Empty,
            polyrouter.outcome = Empty,
            polyrouter.attempts = 1u64,
            db.response.returned_rows = Empty,
            error.type = Empty,
            otel.status_code = Empty,
        );
        if self.trace_keys {
            if let Some(key) = call.key {
                span.record("polyrouter.key", tracing::field::display(key));
            }
        }
        async move {
            let started = Instant::now();
            // The span is entered around every poll of the call (as
            // `Instrument` does) and owned here, not cloned for the end.
            let mut attempt = std::pin::pin!(run());
            let out = std::future::poll_fn(|cx| {
                let _entered = span.enter();
                attempt.as_mut().poll(cx)
            })
            .await;
            match &out {
                Ok(v) => {
                    span.record("polyrouter.outcome", "ok");
                    if let Some(rows) = v.rows() {
                        span.record("db.response.returned_rows", rows);
                    }
                }
                Err(e) => {
                    span.record("polyrouter.outcome", "error");
                    span.record("error.type", e.kind_name());
                    span.record("otel.status_code", "ERROR");
                }
            }
            self.count(call, &out, started);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_of;

    #[test]
    fn server_addresses_come_from_locations_without_secrets() {
        let s = |l: &str| server_of(l);
        assert_eq!(
            s("postgres://postgres@127.0.0.1:5432/test"),
            (Some("127.0.0.1".into()), Some(5432))
        );
        assert_eq!(
            s("mysql://root:***@db.internal:3306/app"),
            (Some("db.internal".into()), Some(3306))
        );
        assert_eq!(
            s("http://127.0.0.1:8081/shop"),
            (Some("127.0.0.1".into()), Some(8081))
        );
        assert_eq!(s("[::1]:6379"), (Some("::1".into()), Some(6379)));
        assert_eq!(s("localhost"), (Some("localhost".into()), None));
        assert_eq!(s("in-process"), (None, None));
        assert_eq!(s("sqlite::memory:"), (None, None));
        assert_eq!(s("/tmp/x/app.db"), (None, None));
        assert_eq!(s("sqlite:///tmp/app.db"), (None, None));
    }
}
