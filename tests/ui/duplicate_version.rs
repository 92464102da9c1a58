use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct User {
    id: String,
    #[entity(version)]
    version: u64,
    #[entity(version)]
    revision: u64,
}

fn main() {}
