use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct User {
    #[entity(primary)]
    id: String,
    #[entity(key = "x")]
    email: String,
}

fn main() {}
