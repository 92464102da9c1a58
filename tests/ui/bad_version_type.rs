use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct User {
    id: String,
    #[entity(version)]
    version: String,
}

fn main() {}
