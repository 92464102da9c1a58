use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[entity(name = "user", key = "nope")]
struct User {
    id: String,
    email: String,
}

fn main() {}
