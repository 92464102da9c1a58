use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct User {
    #[serde(skip)]
    id: String,
    email: String,
}

fn main() {}
