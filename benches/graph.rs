//! Graph figures on a 10 000-vertex / 100 000-edge `follows` graph, through
//! `router.graph(..)`, on SQLite (a file in a temp dir) and PostgreSQL
//! (`postgres://postgres@127.0.0.1:5432/test`, or `POLYROUTER_BENCH_POSTGRES`,
//! in a schema unique to the run, dropped at the end).
//!
//! ```text
//! cargo bench --features postgres --bench graph -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The graph is built once per store and run: 10 000 `add_vertex` calls,
//! then `link_many` in batches of 5 000 edges (each vertex follows 10 others
//! picked by a fixed pseudo-random sequence, so every run builds the same
//! graph); the build rate is printed. Benchmark ids are `<store>/<op>`:
//!
//! - `followers_100`: the first page of 100 followers of a vertex;
//! - `fof_10`: the top 10 friends-of-friends recommendations of a vertex
//!   (about 100 two-hop candidates, ranked by shared connections);
//! - `shortest_path_4`: a shortest path of at most 4 edges between two vertices.
//!
//! Each iteration takes the next of 64 fixed vertices, so caches see a spread.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/args.rs"]
mod args;
use polyrouter::Router;
use polyrouter::router::Graph;
use polyrouter::store::graph::{Edge, Vertex};
use tokio::runtime::Runtime;

const VERTICES: usize = 10_000;
const OUT_DEGREE: usize = 10;
const BATCH: usize = 5_000;

fn id(i: usize) -> String {
    format!("u{i:05}")
}

/// Each vertex follows `OUT_DEGREE` distinct others, from a fixed LCG.
fn edges() -> Vec<Edge> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % VERTICES
    };
    let mut out = Vec::with_capacity(VERTICES * OUT_DEGREE);
    for v in 0..VERTICES {
        let mut picked = std::collections::BTreeSet::new();
        while picked.len() < OUT_DEGREE {
            let t = next();
            if t != v {
                picked.insert(t);
            }
        }
        out.extend(
            picked
                .into_iter()
                .map(|t| Edge::new(id(v), "follows", id(t))),
        );
    }
    out
}

async fn build(g: &Graph, edges: &[Edge]) {
    let start = Instant::now();
    for i in 0..VERTICES {
        g.add_vertex(&Vertex::new(id(i), "user"))
            .await
            .expect("add vertex");
    }
    let vertices = start.elapsed();
    let start = Instant::now();
    let mut created = 0;
    for chunk in edges.chunks(BATCH) {
        created += g.link_many(chunk).await.expect("link_many");
    }
    let linked = start.elapsed();
    assert_eq!(created as usize, edges.len());
    eprintln!(
        "{}: built {VERTICES} vertices in {vertices:.2?} ({:.0}/s), {} edges in {linked:.2?} ({:.0}/s, batches of {BATCH})",
        g.store().kind(),
        VERTICES as f64 / vertices.as_secs_f64(),
        edges.len(),
        edges.len() as f64 / linked.as_secs_f64(),
    );
}

fn bench_store(c: &mut Criterion, rt: &Runtime, name: &str, g: &Graph) {
    let picks: Vec<String> = (0..64).map(|i| id(i * 149 % VERTICES)).collect();
    let mut group = c.benchmark_group(name);
    let mut i = 0;
    group.bench_function("followers_100", |b| {
        b.iter(|| {
            i = (i + 1) % picks.len();
            let page = rt
                .block_on(g.followers(&picks[i], "follows", 100, None))
                .unwrap();
            black_box(page)
        })
    });
    group.bench_function("fof_10", |b| {
        b.iter(|| {
            i = (i + 1) % picks.len();
            let recs = rt.block_on(g.recommend(&picks[i], "follows", 10)).unwrap();
            assert!(!recs.is_empty());
            black_box(recs)
        })
    });
    group.bench_function("shortest_path_4", |b| {
        b.iter(|| {
            i = (i + 1) % picks.len();
            let to = &picks[(i + 7) % picks.len()];
            let path = rt
                .block_on(g.shortest_path(&picks[i], to, "follows", 4))
                .unwrap();
            black_box(path)
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let edges = edges();
    if args::wanted("sqlite") {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            "[stores.db]\nkind = \"sqlite\"\nurl = \"sqlite://{}/graph.db\"\n[graphs.social]\nstore = \"db\"\n",
            dir.path().display()
        );
        let router = rt.block_on(Router::from_toml_str(&cfg)).unwrap();
        let g = router.graph("social").unwrap();
        rt.block_on(build(&g, &edges));
        bench_store(c, &rt, "sqlite", &g);
    }

    if args::wanted("postgres") {
        let url = std::env::var("POLYROUTER_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("pr_bench_graph_{}", std::process::id());
        let cfg = format!(
            "[stores.db]\nkind = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\n[graphs.social]\nstore = \"db\"\n"
        );
        let router = rt.block_on(Router::from_toml_str(&cfg)).unwrap();
        let g = router.graph("social").unwrap();
        rt.block_on(build(&g, &edges));
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            for table in ["social_vertices", "social_edges"] {
                sqlx::query(&format!("ANALYZE \"{schema}\".\"{table}\""))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        });
        bench_store(c, &rt, "postgres", &g);
        drop(router);
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .execute(&mut conn)
                .await
                .unwrap();
        });
        eprintln!("postgres: dropped schema {schema}");
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
