//! Search figures on 100 000 generated documents, for the tantivy store (an
//! index in a temp dir) and PostgreSQL full text
//! (`postgres://postgres@127.0.0.1:5432/test`, or `POLYROUTER_BENCH_POSTGRES`;
//! a schema unique to the run, `pr_bench_search_<pid>`, dropped at the end).
//!
//! ```text
//! cargo bench --features tantivy,postgres --bench search -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Benchmark ids are `<store>/<op>`:
//!
//! - `index_100k` (printed, not a criterion run): the 100 000 documents
//!   indexed through `SearchStore::index` in batches of 1 000, then a
//!   `flush`; the rate in documents per second;
//! - `index_batch_1k`: one more batch of 1 000 documents (replacing
//!   existing keys) plus a `flush`, with throughput in documents;
//! - `query_word`: one common word, top 20;
//! - `query_two_words`: two words (both required), top 20;
//! - `query_phrase`: a two-word phrase, top 20;
//! - `query_filter_facet`: a word, a range + equality filter, a facet
//!   (20 categories) over all matches, top 20;
//! - `query_page_5`: the fifth page of 20 of a common word (keyset position).
//!
//! `cargo bench ... --bench search -- tantivy` runs one store.
//! docs/benchmarks.md keeps the figures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/args.rs"]
mod args;
use polyrouter::query::field;
use polyrouter::store::search::{SearchCursor, SearchIndex, SearchRequest};
use polyrouter::{Entity, Key, Record, Router, Store, Value};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

const DOCS: usize = 100_000;

#[derive(Entity, Serialize, Deserialize)]
#[entity(name = "bench_doc", key = "id")]
struct BenchDoc {
    id: i64,
    title: String,
    body: String,
    category: String,
    price: f64,
}

/// A deterministic vocabulary of 5 000 pronounceable words.
fn vocabulary() -> Vec<String> {
    let c = [
        "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
    ];
    let v = ["a", "e", "i", "o", "u"];
    let mut out = Vec::new();
    'outer: for a in c {
        for b in v {
            for d in c {
                for e in v {
                    for f in ["n", "r", "s", "t"] {
                        out.push(format!("{a}{b}{d}{e}{f}"));
                        if out.len() == 5_000 {
                            break 'outer;
                        }
                    }
                }
            }
        }
    }
    out
}

/// Documents with Zipf-like word frequencies (a few words are common).
fn documents(n: usize, seed: u64) -> Vec<Record> {
    let vocab = vocabulary();
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    let mut word = move || {
        // Squared uniform: small indexes (common words) far more likely.
        let u = next() % 10_000;
        let r = next();
        (u * u / 10_000 * vocab.len() / 10_000 + r % 2).min(vocab.len() - 1)
    };
    let vocab = vocabulary();
    (0..n)
        .map(|i| {
            let title: Vec<&str> = (0..5).map(|_| vocab[word()].as_str()).collect();
            let body: Vec<&str> = (0..30).map(|_| vocab[word()].as_str()).collect();
            let mut r = Record::new(Key::Int(i as i64));
            r.set("id", Value::I64(i as i64));
            r.set("title", Value::String(title.join(" ")));
            r.set("body", Value::String(body.join(" ")));
            r.set("category", Value::String(format!("cat{:02}", i % 20)));
            r.set("price", Value::F64((i % 1000) as f64));
            r
        })
        .collect()
}

fn layout(name: &str) -> SearchIndex {
    let mut i = SearchIndex::new(BenchDoc::schema(), &["title", "body"]);
    i.name = name.into();
    i.filters = vec!["category".into(), "price".into()];
    i.facets = vec!["category".into()];
    i
}

fn bench_store(
    c: &mut Criterion,
    rt: &Runtime,
    label: &str,
    store: Arc<dyn Store>,
    idx: SearchIndex,
) {
    let search = store.as_search().expect("a search store");
    rt.block_on(search.ensure_index(&idx))
        .expect("ensure index");
    let docs = documents(DOCS, 1);
    let started = Instant::now();
    rt.block_on(async {
        for chunk in docs.chunks(1_000) {
            search.index(&idx, chunk).await.expect("index");
        }
        search.flush(&idx).await.expect("flush");
    });
    let took = started.elapsed();
    println!(
        "{label}/index_100k: {DOCS} documents in {:.2} s = {:.0} documents/s",
        took.as_secs_f64(),
        DOCS as f64 / took.as_secs_f64()
    );
    let vocab = vocabulary();
    let (common, second) = (vocab[0].clone(), vocab[1].clone());
    let mut g = c.benchmark_group(label);
    g.sample_size(10);
    let more = documents(1_000, 2);
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("index_batch_1k", |b| {
        b.to_async(rt).iter(|| async {
            search.index(&idx, &more).await.unwrap();
            search.flush(&idx).await.unwrap();
        })
    });
    g.throughput(Throughput::Elements(1));
    let run = |req: SearchRequest| {
        let search = store.as_search().unwrap();
        let idx = idx.clone();
        async move { black_box(search.search(&idx, &req).await.unwrap()) }
    };
    g.bench_function("query_word", |b| {
        b.to_async(rt)
            .iter(|| run(SearchRequest::new(common.clone(), 20)))
    });
    g.bench_function("query_two_words", |b| {
        b.to_async(rt)
            .iter(|| run(SearchRequest::new(format!("{common} {second}"), 20)))
    });
    g.bench_function("query_phrase", |b| {
        b.to_async(rt)
            .iter(|| run(SearchRequest::new(format!("\"{common} {second}\""), 20)))
    });
    g.bench_function("query_filter_facet", |b| {
        b.to_async(rt).iter(|| {
            let mut r = SearchRequest::new(common.clone(), 20);
            r.filter = Some(field("price").lt(500.0).and(field("category").ne("cat03")));
            r.facets = vec!["category".into()];
            run(r)
        })
    });
    // The position after four pages of 20.
    let first = rt
        .block_on(search.search(&idx, &SearchRequest::new(common.clone(), 80)))
        .unwrap();
    let last = first.hits.last().expect("80 hits").clone();
    g.bench_function("query_page_5", |b| {
        b.to_async(rt).iter(|| {
            let mut r = SearchRequest::new(common.clone(), 20);
            r.after = Some(SearchCursor {
                score: last.score,
                key: last.key.clone(),
            });
            run(r)
        })
    });
    g.finish();
    println!(
        "{label}: `{common}` matches {} of {DOCS} documents",
        first.total
    );
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    if args::wanted("tantivy") {
        let dir = tempfile::tempdir().unwrap();
        let router = rt
            .block_on(Router::from_toml_str(&format!(
                "[stores.s]\nkind = \"tantivy\"\npath = \"{}\"\ncommit_docs = 1000000\nwriter_memory_mb = 100\n",
                dir.path().display()
            )))
            .unwrap();
        let store = router.store("s").unwrap().clone();
        bench_store(c, &rt, "tantivy", store, layout("bench_doc"));
    }
    if args::wanted("postgres") {
        let url = std::env::var("POLYROUTER_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("pr_bench_search_{}", std::process::id());
        let router = rt
            .block_on(Router::from_toml_str(&format!(
                "[stores.s]\nkind = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\n"
            )))
            .expect("connect to postgres");
        let store = router.store("s").unwrap().clone();
        bench_store(c, &rt, "postgres", store, layout("bench_doc"));
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut conn)
                .await
                .unwrap();
        });
    }
}

criterion_group!(search_benches, benches);
criterion_main!(search_benches);
