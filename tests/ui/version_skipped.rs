use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct User {
    id: String,
    #[serde(skip)]
    #[entity(version)]
    version: u64,
}

fn main() {}
