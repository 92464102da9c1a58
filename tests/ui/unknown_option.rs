use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[entity(name = "user", table = "users", key = "id")]
struct User {
    id: String,
}

fn main() {}
