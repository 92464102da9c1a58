use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[entity(partition_key = "region")]
struct User {
    id: String,
    country: String,
}

fn main() {}
