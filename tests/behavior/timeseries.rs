//! Time series: batches, range bounds, paging, downsample against a
//! reference computed here (and the memory store), latest per series,
//! retention, bad input and injection strings as series keys.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use polyrouter::router::TimeSeries;
use polyrouter::store::timeseries::{Bucket, MAX_SCAN_KEYS, Point, SeriesScan};
use polyrouter::{Capabilities, Error, Result, Router};

use crate::behaviour;
use crate::harness::{Behaviour, Ctx};

fn needs_ts(c: &Capabilities) -> Option<&'static str> {
    (!c.time_series).then_some("time_series")
}

pub fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(ts_append_and_range_bounds, needs_ts),
        behaviour!(ts_range_pages_by_keyset, needs_ts),
        behaviour!(ts_scan_walks_every_series_in_order, needs_ts),
        behaviour!(ts_downsample_matches_reference, needs_ts),
        behaviour!(ts_latest_per_series, needs_ts),
        behaviour!(ts_retention_drops_exactly_old_points, needs_ts),
        behaviour!(ts_bad_input_writes_nothing, needs_ts),
        behaviour!(ts_injection_strings_are_series_keys, needs_ts),
    ]
}

/// 2026-01-01T00:00:00Z.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap()
}

fn us(n: i64) -> TimeDelta {
    TimeDelta::microseconds(n)
}

fn fail(msg: String) -> Error {
    Error::invalid_input("test", "timeseries", msg)
}

/// Every point of `key` in `range`, following the pages.
async fn all_points(
    ts: &TimeSeries,
    key: &str,
    range: std::ops::Range<DateTime<Utc>>,
) -> Result<Vec<Point>> {
    let mut out = Vec::new();
    let mut next = Some(range);
    while let Some(r) = next {
        let page = ts.range(key, r, 1000).await?;
        out.extend(page.points);
        next = page.next;
    }
    Ok(out)
}

async fn ts_append_and_range_bounds(ctx: Ctx) -> Result<()> {
    let router = ctx.ts_router().await?;
    let ts = router.time_series("telemetry")?;
    let t = t0();
    // Two batches; the second replaces one point and adds others.
    let first: Vec<Point> = (0..5)
        .map(|i| Point::new("dev-1", t + us(i)).field("temperature", i as f64))
        .collect();
    assert_eq!(ts.append(&first).await?, 5);
    let second = vec![
        Point::new("dev-1", t + us(2))
            .field("temperature", 20.5)
            .field("humidity", 0.25),
        Point::new("dev-1", t + us(5)).field("battery", 3),
        Point::new("dev-2", t + us(1)).field("temperature", -1.0),
    ];
    assert_eq!(ts.append(&second).await?, 3);
    assert_eq!(ts.append(&[]).await?, 0);

    // [t+1µs, t+4µs): 1, 2, 3 — the start included, the end excluded.
    let page = ts.range("dev-1", t + us(1)..t + us(4), 100).await?;
    let times: Vec<DateTime<Utc>> = page.points.iter().map(|p| p.at).collect();
    assert_eq!(times, vec![t + us(1), t + us(2), t + us(3)]);
    assert_eq!(page.next, None);
    let replaced = &page.points[1];
    assert_eq!(replaced.get("temperature"), Some(20.5));
    assert_eq!(replaced.get("humidity"), Some(0.25));
    assert_eq!(replaced.get("battery"), None, "a missing field stays empty");
    assert_eq!(page.points[0].series, "dev-1");
    assert!(
        ts.range("dev-1", t + us(3)..t + us(3), 10)
            .await?
            .points
            .is_empty(),
        "an empty range"
    );
    assert!(
        ts.range("dev-1", t + us(4)..t + us(1), 10)
            .await?
            .points
            .is_empty(),
        "a reversed range"
    );
    let all = all_points(&ts, "dev-1", t..t + us(6)).await?;
    assert_eq!(all.len(), 6);
    assert_eq!(all[5].get("battery"), Some(3.0));
    assert_eq!(all[5].get("temperature"), None);
    let other = all_points(&ts, "dev-2", t..t + us(6)).await?;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].get("temperature"), Some(-1.0));
    assert!(all_points(&ts, "dev-3", t..t + us(6)).await?.is_empty());
    // Sub-microsecond timestamps are truncated, like every timestamp.
    let nanos = DateTime::from_timestamp(t.timestamp(), 7_999).unwrap();
    ts.append(&[Point::new("dev-4", nanos).field("temperature", 1)])
        .await?;
    let got = ts.range("dev-4", t..t + us(10), 10).await?;
    assert_eq!(got.points[0].at, t + us(7));
    Ok(())
}

/// Every page of a scan, following the cursor.
async fn scan_all(ts: &TimeSeries, mut scan: SeriesScan) -> Result<(Vec<Point>, usize)> {
    let (mut out, mut pages) = (Vec::new(), 0);
    loop {
        let page = ts.scan(&scan).await?;
        pages += 1;
        if page.len() > scan.limit {
            return Err(fail(format!(
                "a page of {} points, limit {}",
                page.len(),
                scan.limit
            )));
        }
        let Some(last) = page.last() else { break };
        scan.after = Some((last.series.clone(), last.at));
        let full = page.len() == scan.limit;
        out.extend(page);
        if !full {
            break;
        }
    }
    Ok((out, pages))
}

async fn ts_scan_walks_every_series_in_order(ctx: Ctx) -> Result<()> {
    let router = ctx.ts_router().await?;
    let ts = router.time_series("telemetry")?;
    let t = t0();
    // Keys that sort differently by bytes, by locale and by case.
    let keys = [
        "b",
        "a",
        "é",
        "B",
        "a b",
        "'; DROP TABLE telemetry; --",
        "z",
    ];
    let mut points = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        for i in 0..5 {
            points.push(Point::new(*key, t + us(10 * i + k as i64)).field("temperature", i as f64));
        }
    }
    assert_eq!(ts.append(&points).await?, 35);
    let mut want: Vec<(String, DateTime<Utc>)> =
        points.iter().map(|p| (p.series.clone(), p.at)).collect();
    want.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
    // Pages of 3: every point once, in (series, ts) byte order.
    let (got, pages) = scan_all(&ts, SeriesScan::all(3)).await?;
    let got: Vec<(String, DateTime<Utc>)> = got.iter().map(|p| (p.series.clone(), p.at)).collect();
    if got != want || pages != 12 {
        return Err(fail(format!(
            "scan in {pages} pages (want 12): {got:?}, want {want:?}"
        )));
    }
    // Keys (with one absent) and a range: only those, in order.
    let mut scan = SeriesScan::all(2);
    scan.keys = Some(vec!["z".into(), "a".into(), "nobody".into(), "a".into()]);
    scan.range = t + us(10)..t + us(36);
    let (got, _) = scan_all(&ts, scan).await?;
    let got: Vec<(String, i64)> = got
        .iter()
        .map(|p| {
            (
                p.series.clone(),
                (p.at - t).num_microseconds().unwrap_or(-1),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = [("a", 11), ("a", 21), ("a", 31), ("z", 16), ("z", 26)]
        .iter()
        .map(|(s, n)| (s.to_string(), *n))
        .collect();
    if got != want {
        return Err(fail(format!("keyed scan: {got:?}, want {want:?}")));
    }
    // An empty range or key list reads nothing; bad requests fail first.
    let mut empty = SeriesScan::all(5);
    empty.range = t..t;
    assert!(ts.scan(&empty).await?.is_empty());
    empty = SeriesScan::all(5);
    empty.keys = Some(Vec::new());
    assert!(ts.scan(&empty).await?.is_empty());
    for bad in [
        SeriesScan::all(0),
        SeriesScan {
            keys: Some(vec![String::new()]),
            ..SeriesScan::all(5)
        },
        SeriesScan {
            keys: Some((0..=MAX_SCAN_KEYS).map(|i| i.to_string()).collect()),
            ..SeriesScan::all(5)
        },
    ] {
        let e = ts.scan(&bad).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    }
    Ok(())
}

async fn ts_range_pages_by_keyset(ctx: Ctx) -> Result<()> {
    let router = ctx.ts_router().await?;
    let ts = router.time_series("telemetry")?;
    let t = t0();
    let mut points = Vec::new();
    for i in 0..250 {
        points.push(Point::new("a", t + TimeDelta::seconds(i)).field("temperature", i as f64));
        points.push(Point::new("b", t + TimeDelta::seconds(i)).field("temperature", -(i as f64)));
    }
    assert_eq!(ts.append(&points).await?, 500);
    let end = t + TimeDelta::seconds(250);
    let mut next = Some(t..end);
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(r) = next {
        let page = ts.range("a", r, 40).await?;
        assert!(page.points.len() <= 40);
        pages += 1;
        // A point appended behind the cursor between pages is not returned.
        if pages == 2 {
            ts.append(&[Point::new("a", t - TimeDelta::seconds(1))])
                .await?;
        }
        seen.extend(page.points);
        next = page.next;
    }
    assert_eq!(pages, 7, "250 points in pages of 40");
    assert_eq!(seen.len(), 250);
    for (i, p) in seen.iter().enumerate() {
        assert_eq!(p.at, t + TimeDelta::seconds(i as i64));
        assert_eq!(p.get("temperature"), Some(i as f64));
        assert_eq!(p.series, "a");
    }
    // Exactly the limit: no next page is reported after the last point.
    let exact = ts.range("a", t + TimeDelta::seconds(240)..end, 10).await?;
    assert_eq!((exact.points.len(), exact.next), (10, None));
    let limit = ts.range("a", t..end, 0).await.unwrap_err();
    assert!(matches!(limit, Error::InvalidInput { .. }), "{limit}");
    Ok(())
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn value(&mut self) -> f64 {
        (self.below(2_000_001) as f64 - 1_000_000.0) / 1000.0
    }
}

/// Per bucket start (µs): count, and per field (count, min, max, sum, last).
type Reference = BTreeMap<i64, (u64, BTreeMap<&'static str, (u64, f64, f64, f64, f64)>)>;

fn reference(points: &[Point], key: &str, from: i64, to: i64, width: i64) -> Reference {
    let mut sorted: Vec<&Point> = points
        .iter()
        .filter(|p| p.series == key)
        .filter(|p| (from..to).contains(&p.at.timestamp_micros()))
        .collect();
    sorted.sort_by_key(|p| p.at);
    let mut out = Reference::new();
    for p in sorted {
        let ts = p.at.timestamp_micros();
        let start = ts.div_euclid(width) * width;
        let b = out.entry(start).or_default();
        b.0 += 1;
        for f in FIELDS {
            if let Some(v) = p.get(f) {
                let s = b.1.entry(f).or_insert((0, v, v, 0.0, v));
                s.0 += 1;
                s.1 = s.1.min(v);
                s.2 = s.2.max(v);
                s.3 += v;
                s.4 = v;
            }
        }
    }
    out
}

const FIELDS: [&str; 3] = ["temperature", "humidity", "battery"];

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn check_buckets(what: &str, got: &[Bucket], want: &Reference) -> Result<()> {
    if got.len() != want.len() {
        return Err(fail(format!(
            "{what}: {} buckets, expected {}",
            got.len(),
            want.len()
        )));
    }
    for (b, (start, (count, fields))) in got.iter().zip(want) {
        let at = b.start.timestamp_micros();
        if at != *start || b.count != *count {
            return Err(fail(format!(
                "{what}: bucket at {at} with {} points, expected {start} with {count}",
                b.count
            )));
        }
        if b.fields.len() != fields.len() {
            return Err(fail(format!(
                "{what}: bucket {start}: fields {:?}, expected {:?}",
                b.fields.keys().collect::<Vec<_>>(),
                fields.keys().collect::<Vec<_>>()
            )));
        }
        for (f, (n, min, max, sum, last)) in fields {
            let s = b.field(f).expect("field present");
            let ok = s.count == *n
                && s.min == *min
                && s.max == *max
                && s.last == *last
                && close(s.sum, *sum)
                && close(s.avg(), sum / *n as f64);
            if !ok {
                return Err(fail(format!(
                    "{what}: bucket {start} field {f}: got {s:?}, expected count {n} min {min} max {max} sum {sum} last {last}"
                )));
            }
        }
    }
    Ok(())
}

async fn ts_downsample_matches_reference(ctx: Ctx) -> Result<()> {
    let router = ctx.ts_router().await?;
    let ts = router.time_series("telemetry")?;
    let memory = Router::from_toml_str(
        "[stores.m]\nkind = \"memory\"\n[timeseries.telemetry]\nstore = \"m\"\nfields = [\"temperature\", \"humidity\", \"battery\"]\n",
    )
    .await?
    .time_series("telemetry")?;
    // Two series around the epoch (buckets before 1970 align too) and
    // around 2026, random times, values and missing fields.
    let seed = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    let mut rng = Rng(seed);
    let mut points = Vec::new();
    for (key, base) in [
        ("epoch", DateTime::from_timestamp(-3 * 3600, 0).unwrap()),
        ("now", t0()),
    ] {
        for _ in 0..1500 {
            let at = base + us(rng.below(6 * 3_600_000_000) as i64);
            let mut p = Point::new(key, at);
            for f in FIELDS {
                if rng.below(5) != 0 {
                    p = p.field(f, rng.value());
                }
            }
            points.push(p);
        }
    }
    // Later duplicates replace earlier ones; keep only what is stored.
    let mut stored: BTreeMap<(String, DateTime<Utc>), Point> = BTreeMap::new();
    for p in &points {
        stored.insert((p.series.clone(), p.at), p.clone());
    }
    let stored: Vec<Point> = stored.into_values().collect();
    for chunk in points.chunks(700) {
        ts.append(chunk).await?;
        memory.append(chunk).await?;
    }
    for (key, base) in [
        ("epoch", DateTime::from_timestamp(-3 * 3600, 0).unwrap()),
        ("now", t0()),
    ] {
        for (width, from_off, to_off) in [
            (Duration::from_secs(3600), 0, 6 * 3600),
            (Duration::from_secs(17 * 60 + 3), 1234, 5 * 3600 + 7),
            (Duration::from_micros(999_983), 100, 200),
        ] {
            let from = base + TimeDelta::seconds(from_off);
            let to = base + TimeDelta::seconds(to_off);
            let w = width.as_micros() as i64;
            let want = reference(
                &stored,
                key,
                from.timestamp_micros(),
                to.timestamp_micros(),
                w,
            );
            let what = format!("{} {key} width {width:?}", ctx.store);
            let got = ts.downsample(key, from..to, width).await?;
            check_buckets(&what, &got, &want)?;
            let mem = memory.downsample(key, from..to, width).await?;
            check_buckets(&format!("memory {key} width {width:?}"), &mem, &want)?;
            assert!(!want.is_empty(), "the data falls in the range");
        }
    }
    let bad = ts
        .downsample("now", t0()..t0() + TimeDelta::hours(1), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(bad, Error::InvalidInput { .. }), "{bad}");
    Ok(())
}

async fn ts_latest_per_series(ctx: Ctx) -> Result<()> {
    let router = ctx.ts_router().await?;
    let ts = router.time_series("telemetry")?;
    let t = t0();
    let mut points = Vec::new();
    for d in 0..20 {
        for i in 0..=d {
            points.push(
                Point::new(format!("dev-{d:02}"), t + TimeDelta::minutes(i))
                    .field("temperature", (d * 100 + i) as f64),
            );
        }
    }
    // The newest point of dev-03 has no temperature; it is still the latest.
    points.push(Point::new("dev-03", t + TimeDelta::hours(2)).field("battery", 3.7));
    ts.append(&points).await?;
    let mut keys: Vec<String> = (0..20).map(|d| format!("dev-{d:02}")).collect();
    keys.push("missing".into());
    keys.push("dev-05".into());
    let latest = ts.latest(&keys).await?;
    assert_eq!(latest.len(), keys.len());
    for d in 0..20 {
        let p = latest[d as usize]
            .as_ref()
            .expect("every device has points");
        assert_eq!(p.series, format!("dev-{d:02}"));
        if d == 3 {
            assert_eq!(p.at, t + TimeDelta::hours(2));
            assert_eq!((p.get("battery"), p.get("temperature")), (Some(3.7), None));
        } else {
            assert_eq!(p.at, t + TimeDelta::minutes(d));
            assert_eq!(p.get("temperature"), Some((d * 101) as f64));
        }
    }
    assert_eq!(latest[20], None);
    assert_eq!(latest[21], latest[5], "a key asked twice");
    assert!(ts.latest::<&str>(&[]).await?.is_empty());
    // Many keys at once (more than one statement's worth on SQLite).
    let many: Vec<String> = (0..600).map(|i| format!("dev-{:02}", i % 25)).collect();
    let got = ts.latest(&many).await?;
    assert_eq!(got.iter().filter(|p| p.is_some()).count(), 600 / 25 * 20);
    Ok(())
}

async fn ts_retention_drops_exactly_old_points(ctx: Ctx) -> Result<()> {
    let router = ctx.ts_router().await?;
    let recent = router.time_series("recent")?;
    assert_eq!(recent.retention(), Some(Duration::from_secs(3600)));
    let info = recent.info().clone();
    let store = router.store("s").expect("store s").clone();
    let raw = store.as_time_series().expect("time series store");
    let now = Utc::now();
    let old_offsets = [3 * 60, 2 * 60, 61]; // minutes ago, older than 1h
    let fresh_offsets = [59, 1, 0];
    let point = |key: &str, mins: i64| {
        Point::new(key, now - TimeDelta::minutes(mins)).field("v", mins as f64)
    };
    let mut batch: Vec<Point> = old_offsets
        .iter()
        .chain(&fresh_offsets)
        .map(|m| point("r1", *m))
        .collect();
    batch.push(point("only-old", 90));
    // Written through the store, so the background purge cannot race
    // the write; reads through the handle hide the old points at once.
    raw.append(&info, &batch).await?;
    let everything = now - TimeDelta::days(1)..now + TimeDelta::minutes(1);
    let visible = all_points(&recent, "r1", everything.clone()).await?;
    let mins: Vec<f64> = visible.iter().filter_map(|p| p.get("v")).collect();
    assert_eq!(mins, vec![59.0, 1.0, 0.0], "old points are hidden");
    assert_eq!(recent.latest(&["only-old", "r1"]).await?[0], None);
    let buckets = recent
        .downsample("r1", everything.clone(), Duration::from_secs(86_400))
        .await?;
    assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 3);

    // The explicit purge (or the background one, which may run first)
    // deletes exactly the four old points.
    let purged = recent.purge().await?;
    assert!(purged <= 4, "purged {purged}");
    let left = raw.range(&info, "r1", everything.clone(), 100).await?;
    let left: Vec<f64> = left.iter().filter_map(|p| p.get("v")).collect();
    assert_eq!(
        left,
        vec![59.0, 1.0, 0.0],
        "exactly the old points are gone"
    );
    assert!(
        raw.range(&info, "only-old", everything.clone(), 10)
            .await?
            .is_empty()
    );

    // The background purge (every 200ms here) deletes old points too.
    raw.append(&info, &[point("r2", 120), point("r2", 5)])
        .await?;
    let mut waited = 0;
    loop {
        let left = raw.range(&info, "r2", everything.clone(), 10).await?;
        if left.len() == 1 {
            assert_eq!(left[0].get("v"), Some(5.0));
            break;
        }
        assert!(waited < 100, "the background purge did not run");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn ts_bad_input_writes_nothing(ctx: Ctx) -> Result<()> {
    let router = ctx.ts_router().await?;
    let ts = router.time_series("telemetry")?;
    let t = t0();
    let good = Point::new("dev-1", t).field("temperature", 1.0);
    let cases: Vec<(Point, &str)> = vec![
        (
            Point::new("dev-1", t + us(1)).field("temperature", f64::NAN),
            "temperature",
        ),
        (
            Point::new("dev-1", t + us(1)).field("humidity", f64::INFINITY),
            "humidity",
        ),
        (
            Point::new("dev-1", t + us(1)).field("pressure", 1.0),
            "unknown field `pressure`",
        ),
        (
            Point::new("dev-1", t + us(1)).field("battery", "full"),
            "battery",
        ),
        (
            Point::new("dev-1", t + us(1)).field("battery", i64::MAX),
            "battery",
        ),
        (Point::new("", t + us(1)), "empty"),
        (Point::new("nul\0key", t + us(1)), "NUL"),
    ];
    for (bad, names) in cases {
        let batch = vec![good.clone(), bad.clone()];
        let err = ts.append(&batch).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::InvalidInput { .. }), "{msg}");
        assert!(msg.contains(names), "{msg} names {names}");
        assert!(msg.contains("point 1"), "{msg} names the point");
        assert!(
            msg.contains("store `s`") && msg.contains("telemetry"),
            "{msg}"
        );
        assert!(
            ts.latest(&["dev-1"]).await?[0].is_none(),
            "nothing of the batch was written ({msg})"
        );
    }
    for key in ["", "nul\0key"] {
        let err = ts.range(key, t..t + us(1), 1).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
    assert!(router.time_series("nope").is_err());
    Ok(())
}

const EVIL: &[&str] = &[
    "'; DROP TABLE telemetry; --",
    "\"; DROP TABLE \"telemetry\"; --",
    "' OR '1'='1",
    "back\\slash\\",
    "x'); g.V().drop(); ('",
    "%_%",
    "\u{202E}rtl\u{FEFF}",
    "🎉 emoji",
    " trailing space ",
    "a/b?c#d",
];

async fn ts_injection_strings_are_series_keys(ctx: Ctx) -> Result<()> {
    let router = ctx.ts_router().await?;
    let ts = router.time_series("telemetry")?;
    let t = t0();
    let points: Vec<Point> = EVIL
        .iter()
        .enumerate()
        .flat_map(|(i, k)| {
            (0..3).map(move |j| {
                Point::new(*k, t + TimeDelta::seconds(j))
                    .field("temperature", (i * 10 + j as usize) as f64)
            })
        })
        .collect();
    assert_eq!(ts.append(&points).await?, 3 * EVIL.len() as u64);
    let keys: Vec<String> = EVIL.iter().map(|k| k.to_string()).collect();
    let latest = ts.latest(&keys).await?;
    for (i, k) in EVIL.iter().enumerate() {
        let p = latest[i].as_ref().expect("latest of an injection key");
        assert_eq!(p.series, *k);
        assert_eq!(p.get("temperature"), Some((i * 10 + 2) as f64));
        let page = ts.range(k, t..t + TimeDelta::seconds(3), 10).await?;
        assert_eq!(page.points.len(), 3, "{k:?}");
        let b = ts
            .downsample(k, t..t + TimeDelta::seconds(3), Duration::from_secs(60))
            .await?;
        assert_eq!(b.len(), 1);
        assert_eq!(
            b[0].field("temperature").map(|s| s.sum),
            Some((i * 30 + 3) as f64)
        );
    }
    // The table is intact and holds nothing else.
    let prefix = ts.latest(&["'"]).await?;
    assert_eq!(prefix, vec![None]);
    Ok(())
}
