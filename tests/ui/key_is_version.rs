use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct Counter {
    #[entity(key, version)]
    id: i64,
    hits: u64,
}

fn main() {}
