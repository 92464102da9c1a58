//! Store selection, per-trial isolation and the behaviour type.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use futures::future::BoxFuture;
use polyrouter::{Capabilities, Entity, Repo, Router};

/// One behaviour: a name, the capability it needs, and its body.
pub struct Behaviour {
    pub name: &'static str,
    pub needs: fn(&Capabilities) -> Option<&'static str>,
    pub run: fn(Ctx) -> BoxFuture<'static, polyrouter::Result<()>>,
}

/// A behaviour every store must pass.
pub fn always(_: &Capabilities) -> Option<&'static str> {
    None
}

/// Declares behaviours: `behaviour!(name, needs, body_fn)`.
#[macro_export]
macro_rules! behaviour {
    ($name:ident, $needs:expr) => {
        $crate::harness::Behaviour {
            name: stringify!($name),
            needs: $needs,
            run: |ctx| Box::pin($name(ctx)),
        }
    };
}

/// The stores named in `POLYROUTER_TEST_STORES` (default `memory,sqlite`).
pub fn stores_under_test() -> Vec<String> {
    let list = std::env::var("POLYROUTER_TEST_STORES").unwrap_or_else(|_| "memory,sqlite".into());
    let stores: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for s in &stores {
        if store_toml(s).is_none() {
            panic!("POLYROUTER_TEST_STORES names `{s}`, which the behaviour suite does not know; known: memory, sqlite");
        }
    }
    stores
}

fn tmp() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
}

/// The `[stores.s]` body for a store under test.
pub fn store_toml(store: &str) -> Option<String> {
    Some(match store {
        "memory" => "kind = \"memory\"\n".to_string(),
        "sqlite" => format!(
            "kind = \"sqlite\"\nurl = \"sqlite://{}/behavior.db\"\n",
            tmp().path().display()
        ),
        _ => return None,
    })
}

/// Opens the store once and returns its capabilities, or why it failed.
pub async fn probe(store: &str) -> Result<Capabilities, String> {
    let ctx = Ctx::new(store);
    let router = ctx.router().await.map_err(|e| format!("store `{store}` is not usable: {e}"))?;
    let s = router.store("s").expect("store s");
    s.ping().await.map_err(|e| format!("store `{store}` does not answer: {e}"))?;
    Ok(s.capabilities().clone())
}

/// One trial's context: its store and a unique table suffix.
#[derive(Clone)]
pub struct Ctx {
    pub store: String,
    pub id: String,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl Ctx {
    pub fn new(store: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ctx {
            store: store.to_string(),
            id: format!("{}_{}", std::process::id(), n),
        }
    }

    /// The config text for this trial: the store as `s`, every test entity
    /// on its own table.
    pub fn config(&self) -> String {
        let mut cfg = format!("[stores.s]\n{}\n", store_toml(&self.store).expect("known store"));
        for (entity, extra) in [
            ("everything", ""),
            ("item", ""),
            ("note", ""),
            ("session", "ttl = \"1s\"\n"),
        ] {
            cfg.push_str(&format!(
                "[entities.{entity}]\nstore = \"s\"\ntable = \"{entity}_{}\"\n{extra}\n",
                self.id
            ));
        }
        cfg
    }

    pub async fn router(&self) -> polyrouter::Result<Router> {
        Router::from_toml_str(&self.config()).await
    }

    pub async fn repo<T: Entity>(&self) -> polyrouter::Result<Repo<T>> {
        self.router().await?.repo::<T>().await
    }
}
