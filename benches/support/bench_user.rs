//! The small row of the per-store benches (`backends`, `allocs`, `cosmos`)
//! and the single-threaded runtime they measure on.

use polyrouter::Entity;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

/// A typical small row: a string key, three fields and a version.
#[derive(Entity, Serialize, Deserialize, Debug, Clone)]
#[entity(name = "bench_user", key = "id")]
pub struct BenchUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub score: i64,
    #[entity(version)]
    pub version: u64,
}

/// The key of the row that point operations read and replace.
pub const KEY: &str = "user-000042";

/// Row `i` under key `id`.
pub fn user(id: String, i: i64) -> BenchUser {
    BenchUser {
        id,
        email: format!("user{i}@example.com"),
        name: format!("User number {i}"),
        score: i,
        version: 0,
    }
}

/// The row under [`KEY`].
pub fn sample() -> BenchUser {
    user(KEY.into(), 42)
}

/// A current-thread runtime: no other worker's tasks in the figures.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Now in unix microseconds, as the SQL stores bind it.
#[allow(dead_code)] // not every bench that includes this file binds a time
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}
