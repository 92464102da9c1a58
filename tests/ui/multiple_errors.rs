use polyrouter::Entity;
use serde::{Deserialize, Serialize};

// Every problem is reported at once, each at its own place.
#[derive(Entity, Serialize, Deserialize)]
#[entity(name = "user", colour = "blue", key = "nope")]
struct User {
    id: String,
    #[entity(version)]
    version: u64,
    #[entity(version)]
    revision: u64,
}

fn main() {}
