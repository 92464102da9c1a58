//! Time series figures through the router's `TimeSeries` handle, on
//! PostgreSQL (`postgres://postgres@127.0.0.1:5432/test`, or
//! `POLYROUTER_BENCH_POSTGRES`, in a schema unique to the run, dropped at
//! the end) and SQLite (a file in a temp dir):
//!
//! - `timeseries/<store>/append_10k`: one `append` of 10 000 new points
//!   (one series per 100 points, three float fields), throughput in points
//!   per second. Every iteration writes new timestamps, so this is the
//!   insert path, not the replace path;
//! - `timeseries/<store>/downsample_1m_hourly`: one `downsample` of a
//!   series holding 1 000 000 points (one every 3.6 s, 1 000 hours) into
//!   1 000 hourly buckets with count/min/max/sum/last of three fields;
//! - `timeseries/<store>/latest_100`: the latest point of 100 series.
//!
//! ```text
//! cargo bench --features postgres --bench timeseries -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! docs/benchmarks.md keeps the figures.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use polyrouter::Router;
use polyrouter::router::TimeSeries;
use polyrouter::store::timeseries::Point;
use tokio::runtime::Runtime;

const BATCH: usize = 10_000;
const BIG: i64 = 1_000_000;
const FIELDS: &str = "fields = [\"temperature\", \"humidity\", \"battery\"]\n";

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("2026-01-01")
}

/// Batch number `n`: 100 series × 100 instants, all new.
fn batch(n: i64) -> Vec<Point> {
    let start = base() + TimeDelta::seconds(n * 100);
    (0..BATCH as i64)
        .map(|i| {
            Point::new(
                format!("dev-{:03}", i % 100),
                start + TimeDelta::seconds(i / 100),
            )
            .field("temperature", 20.0 + (i % 17) as f64 * 0.25)
            .field("humidity", 40.0 + (i % 29) as f64)
            .field("battery", 100.0 - (i % 50) as f64 * 0.1)
        })
        .collect()
}

/// Appends 1 000 000 points to the series `big`, one every 3.6 s.
async fn seed_big(ts: &TimeSeries) {
    let chunk = 50_000;
    for c in 0..BIG / chunk {
        let points: Vec<Point> = (c * chunk..(c + 1) * chunk)
            .map(|i| {
                Point::new("big", base() + TimeDelta::milliseconds(i * 3600))
                    .field("temperature", (i % 1000) as f64 * 0.01)
                    .field("humidity", (i % 97) as f64)
                    .field("battery", 100.0 - (i % 100) as f64 * 0.5)
            })
            .collect();
        ts.append(&points).await.expect("seed the big series");
    }
}

fn bench_store(c: &mut Criterion, rt: &Runtime, label: &str, ts: &TimeSeries) {
    let mut g = c.benchmark_group(format!("timeseries/{label}"));
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut n = 1_000_000; // past the big series' range
    g.bench_function("append_10k", |b| {
        b.to_async(rt).iter_batched(
            || {
                n += 1;
                batch(n)
            },
            |points| async move {
                let written = ts.append(&points).await.expect("append");
                assert_eq!(written, BATCH as u64);
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.throughput(Throughput::Elements(BIG as u64));
    let range = base()..base() + TimeDelta::hours(1000);
    g.bench_function("downsample_1m_hourly", |b| {
        b.to_async(rt).iter(|| async {
            let buckets = ts
                .downsample("big", range.clone(), Duration::from_secs(3600))
                .await
                .expect("downsample");
            assert_eq!(buckets.len(), 1000);
            assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), BIG as u64);
        })
    });
    g.throughput(Throughput::Elements(100));
    let keys: Vec<String> = (0..100).map(|i| format!("dev-{i:03}")).collect();
    g.bench_function("latest_100", |b| {
        b.to_async(rt).iter(|| async {
            let latest = ts.latest(&keys).await.expect("latest");
            assert!(latest.iter().all(|p| p.is_some()));
        })
    });
    g.finish();
}

async fn open(store_toml: &str) -> (Router, TimeSeries) {
    let toml = format!("[stores.s]\n{store_toml}\n[timeseries.telemetry]\nstore = \"s\"\n{FIELDS}");
    let router = Router::from_toml_str(&toml).await.expect("router");
    let ts = router.time_series("telemetry").expect("time series");
    seed_big(&ts).await;
    // `latest_100` needs the 100 series before the first append sample.
    ts.append(&batch(999_999)).await.expect("seed the devices");
    (router, ts)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let pg_url = std::env::var("POLYROUTER_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("pr_ts_bench_{}", std::process::id());
    {
        let (_router, ts) = rt.block_on(open(&format!(
            "kind = \"postgres\"\nurl = \"{pg_url}\"\nschema = \"{schema}\"\nmax_connections = 2\n"
        )));
        bench_store(c, &rt, "postgres", &ts);
    }
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&pg_url).await.expect("connect");
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut conn)
            .await
            .expect("drop the bench schema");
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/ts.db", dir.path().display());
    let (_router, ts) = rt.block_on(open(&format!("kind = \"sqlite\"\nurl = \"{url}\"\n")));
    bench_store(c, &rt, "sqlite", &ts);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
