use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[entity(key = "id")]
struct User {
    id: String,
    #[entity(key)]
    email: String,
}

fn main() {}
