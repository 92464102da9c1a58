use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct User {
    #[entity(key)]
    id: String,
    #[entity(key)]
    email: String,
}

fn main() {}
