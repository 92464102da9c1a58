//! Time series as SQL tables: parity with a DataFusion memory table
//! holding the same points, the time range and series keys pushed into
//! the store's scan (points pulled counted by the `Counting` layer), and
//! a scan that streams in pages.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::TryStreamExt;
use polyrouter::analytics::datafusion::arrow::array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use polyrouter::analytics::datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use polyrouter::analytics::datafusion::datasource::MemTable;
use polyrouter::analytics::datafusion::prelude::SessionContext;
use polyrouter::config::{Config, TimeSeriesConfig};
use polyrouter::layers::testing::Counting;
use polyrouter::store::timeseries::Point;
use polyrouter::{Entity, Router, Store};
use serde::{Deserialize, Serialize};

use super::{clean_up, expected, lines, run, run_name, spec};

#[derive(Entity, Debug, Clone, Serialize, Deserialize)]
#[entity(name = "an_device", key = "id")]
struct Device {
    id: String,
    site: String,
}

const SERIES: [&str; 5] = ["dev-a", "dev-b", "dev-c", "dev é", "dev-z"];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// 40 points per series, 37 minutes apart, some a few microseconds off
/// the second; `hum` missing on every fourth point.
fn points() -> Vec<Point> {
    let mut out = Vec::new();
    for (k, s) in SERIES.iter().enumerate() {
        for i in 0..40i64 {
            let at = t0()
                + Duration::minutes(37 * i)
                + Duration::seconds(13 * k as i64)
                + Duration::microseconds(i % 3);
            let mut p =
                Point::new(*s, at).field("temp", 15.0 + ((i * 7 + k as i64 * 3) % 20) as f64 / 2.0);
            if i % 4 != 0 {
                p = p.field("hum", 0.3 + (i % 5) as f64 / 10.0);
            }
            out.push(p);
        }
    }
    out
}

fn devices() -> Vec<Device> {
    ["dev-a", "dev-b", "dev-c", "dev é", "dev-q"]
        .iter()
        .enumerate()
        .map(|(i, id)| Device {
            id: id.to_string(),
            site: ["north", "south"][i % 2].to_string(),
        })
        .collect()
}

/// The same points and devices as DataFusion memory tables.
fn reference() -> SessionContext {
    let ctx = SessionContext::new();
    let p = points();
    let schema = Arc::new(Schema::new(vec![
        Field::new("series", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("temp", DataType::Float64, true),
        Field::new("hum", DataType::Float64, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            p.iter().map(|x| x.series.clone()),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(p.iter().map(|x| x.at.timestamp_micros()))
                .with_timezone("UTC"),
        ),
        Arc::new(Float64Array::from(
            p.iter().map(|x| x.get("temp")).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            p.iter().map(|x| x.get("hum")).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    ctx.register_table(
        "an_tele",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    let d = devices();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("site", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            d.iter().map(|x| x.id.clone()),
        )),
        Arc::new(StringArray::from_iter_values(
            d.iter().map(|x| x.site.clone()),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    ctx.register_table(
        "an_device",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    ctx
}

/// Range filters (every operator, sub-microsecond and naive literals),
/// series filters, time buckets, a join, window functions, limits.
const QUERIES: &[&str] = &[
    "SELECT * FROM an_tele",
    "SELECT series, ts, temp FROM an_tele WHERE ts >= '2024-01-01T06:00:00Z' AND ts < '2024-01-01T09:00:00Z'",
    "SELECT series, ts FROM an_tele WHERE ts > '2024-01-01T06:10:00.000001Z' AND ts <= '2024-01-01T12:20:00.000002Z'",
    "SELECT series, ts FROM an_tele WHERE ts > '2024-01-01T00:37:00.0000005Z' AND ts < '2024-01-01T01:15:00.0000015Z'",
    "SELECT series, ts, hum FROM an_tele WHERE ts = '2024-01-01T00:37:00.000001Z'",
    "SELECT series, ts FROM an_tele WHERE ts BETWEEN '2024-01-01T10:00:00Z' AND '2024-01-01T11:14:00.000002Z'",
    "SELECT series, ts FROM an_tele WHERE ts >= TIMESTAMP '2024-01-01 20:00:00'",
    "SELECT series, ts FROM an_tele WHERE '2024-01-01T20:00:00Z' > ts AND series = 'dev-b'",
    "SELECT series, ts, temp FROM an_tele WHERE series = 'dev é' AND ts < '2024-01-01T05:00:00Z'",
    "SELECT series, ts FROM an_tele WHERE series IN ('dev-a', 'dev-z', 'nobody') AND ts BETWEEN '2024-01-01T02:00:00Z' AND '2024-01-01T08:00:00Z'",
    "SELECT series, count(*) AS n FROM an_tele WHERE series = 'dev-a' OR series = 'dev-c' GROUP BY series",
    "SELECT series, ts FROM an_tele WHERE series = 'dev-a' AND series = 'dev-b'",
    "SELECT series, ts FROM an_tele WHERE ts < '2023-12-31T00:00:00Z'",
    "SELECT series, ts, temp FROM an_tele WHERE temp > 20 AND ts < '2024-01-01T12:00:00Z'",
    "SELECT series, ts FROM an_tele WHERE hum IS NULL",
    "SELECT series, ts FROM an_tele WHERE series LIKE 'dev-%' AND ts > '2024-01-02T00:00:00Z'",
    "SELECT series, date_bin(INTERVAL '1 hour', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS bucket, count(*) AS n, avg(temp) AS t, min(hum) AS lo, max(hum) AS hi FROM an_tele GROUP BY 1, 2",
    "SELECT date_bin(INTERVAL '6 hours', ts) AS bucket, count(hum) AS n, sum(temp) AS s FROM an_tele WHERE ts >= '2024-01-01T03:00:00Z' GROUP BY 1",
    "SELECT d.site, count(*) AS n, sum(t.temp) AS s FROM an_tele t JOIN an_device d ON t.series = d.id WHERE t.ts < '2024-01-01T12:00:00Z' GROUP BY d.site",
    "SELECT d.id, count(t.ts) AS n FROM an_device d LEFT JOIN an_tele t ON t.series = d.id AND t.ts >= '2024-01-01T20:00:00Z' GROUP BY d.id",
    "SELECT series, ts, temp - lag(temp) OVER (PARTITION BY series ORDER BY ts) AS delta FROM an_tele WHERE series = 'dev-a'",
    "SELECT series, ts, avg(temp) OVER (PARTITION BY series ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS smooth, rank() OVER (PARTITION BY series ORDER BY temp DESC, ts) AS r FROM an_tele WHERE ts < '2024-01-01T08:00:00Z'",
    "SELECT series, ts FROM an_tele ORDER BY series, ts LIMIT 5 OFFSET 3",
    "SELECT series, ts, temp FROM an_tele WHERE series = 'dev-c' ORDER BY ts DESC LIMIT 4",
    "SELECT series, max(ts) AS last FROM an_tele GROUP BY series",
];

/// Loads the points into `kind` (and the devices), checks every query
/// against the reference, then the points the store returned.
pub(super) async fn parity(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let name = run_name();
    let Some(spec) = spec(kind, &name, dir.path()) else {
        return;
    };
    let raw = polyrouter::backends::open(spec)
        .await
        .unwrap_or_else(|e| panic!("cannot open {kind} (is it running? scripts/services): {e}"));
    let store = Arc::new(Counting::new(raw));
    let result = checks(kind, store.clone()).await;
    clean_up(kind, &name).await;
    if let Err(failures) = result {
        panic!(
            "{kind}: {} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

async fn checks(kind: &str, store: Arc<Counting<Arc<dyn Store>>>) -> Result<(), Vec<String>> {
    // Pages of 7 points: every scan crosses pages (and series).
    let config = Config::parse("[router]\npage_size = 7\nmax_page_size = 7\n", "<test>").unwrap();
    let router = Router::builder()
        .config(config)
        .store("s", store.clone())
        .route("an_device", "s")
        .time_series(
            "an_tele",
            TimeSeriesConfig {
                store: "s".into(),
                fields: vec!["temp".into(), "hum".into()],
                ..Default::default()
            },
        )
        .build()
        .await
        .unwrap();
    router
        .repo::<Device>()
        .await
        .unwrap()
        .put_many(&devices())
        .await
        .unwrap();
    let tele = router.time_series("an_tele").unwrap();
    assert_eq!(tele.append(&points()).await.unwrap(), 200);
    let reference = reference();
    let mut failures = Vec::new();
    assert!(QUERIES.len() >= 8);
    for sql in QUERIES {
        let session = router.sql_session().await.unwrap();
        let got = lines(&run(&session, sql).await);
        let want = lines(&expected(&reference, sql).await);
        if got != want {
            failures.push(format!("{sql}\n  got  {got:?}\n  want {want:?}"));
        }
    }

    // Pushdown: the store returns exactly the points the range and the
    // series keys select (`None`: as many as the answer has).
    let pushed: &[(&str, Option<u64>)] = &[
        (
            "SELECT series, ts FROM an_tele WHERE ts >= '2024-01-01T06:00:00Z' AND ts < '2024-01-01T09:00:00Z'",
            None,
        ),
        (
            "SELECT ts FROM an_tele WHERE series = 'dev-b' AND ts > '2024-01-01T06:10:00.000001Z'",
            None,
        ),
        (
            "SELECT ts FROM an_tele WHERE series IN ('dev-a', 'dev-z') AND ts BETWEEN '2024-01-01T02:00:00Z' AND '2024-01-01T08:00:00Z'",
            None,
        ),
        (
            "SELECT series, ts FROM an_tele WHERE ts = '2024-01-01T00:37:00.000001Z'",
            None,
        ),
        (
            "SELECT series, ts FROM an_tele WHERE series = 'dev-a' AND series = 'dev-b'",
            Some(0),
        ),
        (
            "SELECT series, ts FROM an_tele WHERE ts >= TIMESTAMP '2024-01-01 20:00:00'",
            None,
        ),
        (
            "SELECT series, ts FROM an_tele WHERE ts < now() - INTERVAL '100000 days'",
            Some(0),
        ),
        // Limits go to the store when nothing is left to DataFusion.
        ("SELECT series, ts FROM an_tele LIMIT 9", Some(9)),
        // A field filter and a LIKE stay in DataFusion: the range alone narrows.
        (
            "SELECT series FROM an_tele WHERE temp > 20 AND ts < '2024-01-01T06:00:00Z'",
            Some(5 * 10),
        ),
        (
            "SELECT series FROM an_tele WHERE series LIKE '%z'",
            Some(200),
        ),
    ];
    for (sql, exact) in pushed {
        store.reset();
        let session = router.sql_session().await.unwrap();
        let returned: usize = run(&session, sql).await.iter().map(|b| b.num_rows()).sum();
        let pulled = store.counts().points_read;
        let want = exact.unwrap_or(returned as u64);
        if pulled != want || session.rows_pulled("an_tele") != want {
            failures.push(format!(
                "{sql}: the store returned {pulled} points (scan counted {}), expected {want}; the answer has {returned}",
                session.rows_pulled("an_tele")
            ));
        }
    }
    // A scan streams: the first batch comes after one page, not the table.
    store.reset();
    let session = router.sql_session().await.unwrap();
    let mut stream = session.sql("SELECT * FROM an_tele").await.unwrap();
    let first = stream.try_next().await.unwrap().unwrap();
    let pages_so_far = store.counts().series_reads;
    if first.num_rows() > 7 || pages_so_far > 2 {
        failures.push(format!(
            "streaming: the first batch has {} rows after {pages_so_far} store scans (want ≤ 7 rows, ≤ 2 scans)",
            first.num_rows()
        ));
    }
    let rest: usize = stream
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    // 200 points in pages of 7: 28 full pages and one of 4.
    if first.num_rows() + rest != 200 || store.counts().series_reads != 29 {
        failures.push(format!(
            "streaming: {} rows in {} pages, want 200 in 29",
            first.num_rows() + rest,
            store.counts().series_reads
        ));
    }
    // EXPLAIN names the store and what it was given.
    let plan = lines(
        &run(
            &session,
            "EXPLAIN SELECT ts, temp FROM an_tele WHERE series = 'dev-b' AND ts >= '2024-01-01T06:00:00Z' AND ts < '2024-01-01T09:00:00Z' AND temp > 20",
        )
        .await,
    )
    .join("\n");
    for want in [
        format!("SeriesScan: series=an_tele table=an_tele store=s ({kind})"),
        "range=[2024-01-01T06:00:00Z, 2024-01-01T09:00:00Z) series=[dev-b]".to_string(),
    ] {
        if !plan.contains(&want) {
            failures.push(format!("EXPLAIN does not show `{want}`:\n{plan}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}
