use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Address {
    street: String,
}

#[derive(Entity, Serialize, Deserialize)]
struct User {
    id: String,
    #[serde(flatten)]
    address: Address,
}

fn main() {}
