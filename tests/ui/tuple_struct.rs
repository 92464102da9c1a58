use polyrouter::Entity;

#[derive(Entity)]
struct Pair(String, i64);

fn main() {}
