use polyrouter::Entity;

#[derive(Entity)]
enum Shape {
    Circle { id: String },
    Square { id: String },
}

fn main() {}
