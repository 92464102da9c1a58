use polyrouter::Entity;

#[derive(Entity)]
union Bits {
    id: i64,
    float: f64,
}

fn main() {}
