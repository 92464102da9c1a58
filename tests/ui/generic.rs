use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct Wrapper<T> {
    id: String,
    inner: T,
}

fn main() {}
