use polyrouter::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct Measurement {
    id: f64,
    value: f64,
}

#[derive(Entity, Serialize, Deserialize)]
struct Flag {
    #[entity(key)]
    on: bool,
}

fn main() {}
