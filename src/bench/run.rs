//! Running the workloads: load, measure, clean up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};

use super::{BENCH_TABLE, BenchReport, OpStats, Operation, Run, Workload};
use crate::config::{Config, EntityConfig};
use crate::query::{Query, field};
use crate::store::EntityInfo;
use crate::{
    Entity, Error, FieldDef, FieldKind, Key, KeyKind, Precondition, Result, Router, Schema, Store,
};

/// What to run.
///
/// ```
/// let cfg = polyrouter::config::Config::parse("[stores.m]\nkind = \"memory\"\n", "<string>").unwrap();
/// let o = polyrouter::bench::BenchOptions::new(cfg);
/// assert_eq!(o.workloads.len(), 6);
/// ```
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The user's configuration: its record stores are measured.
    pub config: Config,
    /// Measure this entity's route (its store, cache and consistency)
    /// rather than every store alone; the records are still the bench's.
    pub entity: Option<String>,
    /// The workloads, in order.
    pub workloads: Vec<Workload>,
    /// Records loaded before each workload.
    pub records: u64,
    /// Operations per workload and store.
    pub operations: u64,
    /// Concurrent clients.
    pub threads: usize,
    /// The random seed (runs with one seed choose the same keys).
    pub seed: u64,
}

impl BenchOptions {
    /// Every workload, 1 000 records, 10 000 operations, 4 clients.
    ///
    /// ```
    /// let cfg = polyrouter::config::Config::empty("<code>");
    /// assert_eq!(polyrouter::bench::BenchOptions::new(cfg).records, 1000);
    /// ```
    pub fn new(config: Config) -> BenchOptions {
        BenchOptions {
            config,
            entity: None,
            workloads: Workload::ALL.to_vec(),
            records: 1000,
            operations: 10_000,
            threads: 4,
            seed: 42,
        }
    }
}

/// How far a run is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress<'a> {
    /// The workload.
    pub workload: Workload,
    /// The store.
    pub store: &'a str,
    /// `load` or `run`.
    pub phase: &'static str,
    /// Done so far.
    pub done: u64,
    /// Out of.
    pub total: u64,
}

/// A bench record: YCSB's `usertable` row, ten 100-byte fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRow {
    id: String,
    field0: String,
    field1: String,
    field2: String,
    field3: String,
    field4: String,
    field5: String,
    field6: String,
    field7: String,
    field8: String,
    field9: String,
    version: u64,
}

static USER_FIELDS: [FieldDef; 11] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("field0", FieldKind::String),
    FieldDef::required("field1", FieldKind::String),
    FieldDef::required("field2", FieldKind::String),
    FieldDef::required("field3", FieldKind::String),
    FieldDef::required("field4", FieldKind::String),
    FieldDef::required("field5", FieldKind::String),
    FieldDef::required("field6", FieldKind::String),
    FieldDef::required("field7", FieldKind::String),
    FieldDef::required("field8", FieldKind::String),
    FieldDef::required("field9", FieldKind::String),
];

static USER_SCHEMA: Schema = Schema {
    name: BENCH_TABLE,
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: Some("version"),
    fields: &USER_FIELDS,
};

impl Entity for UserRow {
    fn schema() -> &'static Schema {
        &USER_SCHEMA
    }
    fn key(&self) -> Key {
        Key::Str(self.id.clone())
    }
}

const FIELD_BYTES: usize = 100;
const MAX_SCAN: u32 = 100;
const LOAD_CHUNK: usize = 250;
const RMW_ATTEMPTS: usize = 16;

/// YCSB keys: `user` and a hash of the insertion ordinal, so key order is
/// not insertion order.
fn key_of(ordinal: u64) -> String {
    // FNV-1a 64 over the ordinal's bytes, as YCSB's `hashed` key order.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ordinal.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("user{h:020}")
}

fn row(ordinal: u64, rng: &mut SmallRng) -> UserRow {
    let mut f = || -> String {
        (0..FIELD_BYTES)
            .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
            .collect()
    };
    UserRow {
        id: key_of(ordinal),
        field0: f(),
        field1: f(),
        field2: f(),
        field3: f(),
        field4: f(),
        field5: f(),
        field6: f(),
        field7: f(),
        field8: f(),
        field9: f(),
        version: 0,
    }
}

/// A zipfian ordinal in `[0, n)`, hottest first (YCSB's constant 0.99).
fn zipf(rng: &mut SmallRng, n: u64) -> u64 {
    match Zipf::new(n.max(1), 0.99) {
        Ok(z) => (z.sample(rng) as u64)
            .saturating_sub(1)
            .min(n.saturating_sub(1)),
        Err(_) => 0,
    }
}

/// A store to measure: its name, kind and the router over it.
struct Target {
    store: String,
    kind: String,
    stores: Vec<(String, Arc<dyn Store>)>,
    route: EntityConfig,
}

/// Runs the workloads on every record store of the configuration (or on one
/// entity's route), loading and dropping the bench table around each run.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::bench::{bench, BenchOptions, Workload};
/// let cfg = polyrouter::config::Config::parse("[stores.kv]\nkind = \"memory\"\n", "<string>").unwrap();
/// let mut o = BenchOptions::new(cfg);
/// o.workloads = vec![Workload::A];
/// o.records = 50;
/// o.operations = 100;
/// let report = bench(&o, &|_| {}).await.unwrap();
/// assert_eq!(report.runs[0].operations.iter().map(|op| op.count).sum::<u64>(), 100);
/// # });
/// ```
pub async fn bench(
    opts: &BenchOptions,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<BenchReport> {
    if opts.records == 0 || opts.operations == 0 || opts.threads == 0 {
        return Err(Error::invalid_input(
            "",
            BENCH_TABLE,
            "records, operations and threads must each be at least 1",
        ));
    }
    let targets = targets(opts).await?;
    if targets.is_empty() {
        return Err(opts.config.error(
            "stores",
            "no store of this configuration holds records; `polyrouter bench` measures record stores",
        ));
    }
    let mut runs = Vec::new();
    for &w in &opts.workloads {
        for t in &targets {
            runs.push(run_one(opts, w, t, progress).await?);
        }
    }
    Ok(BenchReport {
        config: opts.config.file.clone(),
        records: opts.records,
        operations: opts.operations,
        threads: opts.threads,
        runs,
    })
}

/// The stores to measure, opened once.
async fn targets(opts: &BenchOptions) -> Result<Vec<Target>> {
    let cfg = &opts.config;
    // A user entity already on the bench table: never touch it.
    for (name, e) in &cfg.entities {
        if e.table.as_deref().unwrap_or(name) == BENCH_TABLE || name == BENCH_TABLE {
            return Err(cfg.error(
                &format!("entities.{name}"),
                format!("entity `{name}` uses the table `{BENCH_TABLE}` that `polyrouter bench` loads and drops; rename its table"),
            ));
        }
    }
    let open = |name: &str| {
        let spec = cfg.stores.get(name).cloned();
        let name = name.to_string();
        async move {
            let Some(spec) = spec else {
                return Err(cfg.error(
                    &format!("stores.{name}"),
                    format!("store `{name}` is not defined"),
                ));
            };
            Ok((name, crate::backends::open(spec).await?))
        }
    };
    let mut out = Vec::new();
    match &opts.entity {
        Some(entity) => {
            let Some(e) = cfg.entities.get(entity) else {
                return Err(cfg.error(
                    &format!("entities.{entity}"),
                    format!("entity `{entity}` has no route in this configuration"),
                ));
            };
            let (name, store) = open(&e.store).await?;
            let mut stores = vec![(name.clone(), store.clone())];
            if let Some(c) = &e.cache {
                let (cname, cstore) = open(&c.store).await?;
                stores.push((cname, cstore));
            }
            // The route as the entity has it, minus what would reach the
            // user's data: its replica, search index and blob cascades, and
            // its outbox (no relay drains the bench's table).
            let route = EntityConfig {
                store: e.store.clone(),
                table: Some(BENCH_TABLE.into()),
                key_prefix: None,
                ttl: e.ttl,
                tombstone_retention: e.tombstone_retention,
                cache: e.cache.clone(),
                consistency: e.consistency,
                read_from: None,
                cascade_blobs: Vec::new(),
                search: None,
                coalesce_reads: e.coalesce_reads,
                coalesce_max_batch: e.coalesce_max_batch,
                sql: None,
                outbox: None,
                change_capture: None,
            };
            out.push(Target {
                kind: store.kind().to_string(),
                store: name,
                stores,
                route,
            });
        }
        None => {
            for name in cfg.stores.keys() {
                let (name, store) = open(name).await?;
                if !store.capabilities().records {
                    continue;
                }
                out.push(Target {
                    kind: store.kind().to_string(),
                    route: EntityConfig {
                        store: name.clone(),
                        table: Some(BENCH_TABLE.into()),
                        ..Default::default()
                    },
                    stores: vec![(name.clone(), store)],
                    store: name,
                });
            }
        }
    }
    Ok(out)
}

/// The capability a workload needs that the store lacks, if any.
fn refusal(w: Workload, caps: &crate::Capabilities) -> Option<String> {
    let mut missing = Vec::new();
    if w.needs_scans() {
        if !caps.query {
            missing.push("query");
        }
        if !caps.filters.range {
            missing.push("range");
        }
        if !caps.sort {
            missing.push("sort");
        }
    }
    if w == Workload::F && !caps.if_version {
        missing.push("if-version");
    }
    (!missing.is_empty()).then(|| {
        let what = if w.needs_scans() {
            "range scans"
        } else {
            "read-modify-write with version checks"
        };
        format!(
            "workload {} needs {what}: the store lacks {}",
            w.letter().to_uppercase(),
            missing.join(", ")
        )
    })
}

/// Drops the bench table (and its cache entries) from the target's stores.
async fn drop_tables(t: &Target) -> Result<()> {
    let primary = &t.stores[0].1;
    let info = EntityInfo {
        table: BENCH_TABLE.into(),
        store: t.store.clone(),
        ..EntityInfo::new(&USER_SCHEMA)
    };
    primary.drop_entity(&info).await?;
    if let (Some(c), Some((cname, cstore))) = (&t.route.cache, t.stores.get(1)) {
        debug_assert_eq!(&c.store, cname);
        let cinfo = crate::router::cache_entity(KeyKind::Str, BENCH_TABLE, cname);
        cstore.drop_entity(&cinfo).await?;
    }
    Ok(())
}

async fn run_one(
    opts: &BenchOptions,
    w: Workload,
    t: &Target,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Run> {
    let caps = t.stores[0].1.capabilities().clone();
    let mut run = Run {
        workload: w.letter().into(),
        store: t.store.clone(),
        kind: t.kind.clone(),
        refused: None,
        throughput: 0.0,
        elapsed_ms: 0.0,
        operations: Vec::new(),
    };
    if let Some(why) = refusal(w, &caps) {
        run.refused = Some(why);
        return Ok(run);
    }
    // Leftovers of an interrupted run go first; a store that cannot drop
    // tables is refused before anything is written.
    if let Err(e) = drop_tables(t).await {
        if matches!(e, Error::Unsupported { .. }) {
            run.refused = Some(format!("the bench cannot clean up after itself here: {e}"));
            return Ok(run);
        }
        return Err(e);
    }
    let measured = measure(opts, w, t, progress).await;
    let dropped = drop_tables(t).await;
    let (elapsed, ops) = measured?;
    dropped?;
    let total: u64 = ops.iter().map(|o| o.count).sum();
    run.elapsed_ms = elapsed.as_secs_f64() * 1e3;
    run.throughput = total as f64 / elapsed.as_secs_f64().max(1e-9);
    run.operations = ops;
    Ok(run)
}

/// Loads the records, runs the mix, returns the wall time and the stats.
async fn measure(
    opts: &BenchOptions,
    w: Workload,
    t: &Target,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<(Duration, Vec<OpStats>)> {
    let mut builder = Router::builder().route_with(BENCH_TABLE, t.route.clone());
    for (name, store) in &t.stores {
        builder = builder.store(name, store.clone());
    }
    let router = builder.build().await?;
    let repo = router.repo::<UserRow>().await?;

    // Load.
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    let mut loaded = 0u64;
    while loaded < opts.records {
        let n = (opts.records - loaded).min(LOAD_CHUNK as u64);
        let rows: Vec<UserRow> = (loaded..loaded + n).map(|i| row(i, &mut rng)).collect();
        repo.put_many(&rows).await?;
        loaded += n;
        progress(Progress {
            workload: w,
            store: &t.store,
            phase: "load",
            done: loaded,
            total: opts.records,
        });
    }

    // Run: `threads` clients share the operations.
    let inserted = Arc::new(AtomicU64::new(opts.records));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..opts.threads as u64 {
        let share = opts.operations / opts.threads as u64
            + u64::from(client < opts.operations % opts.threads as u64);
        let repo = repo.clone();
        let inserted = inserted.clone();
        let done = done.clone();
        let records = opts.records;
        let seed = opts.seed.wrapping_add(client + 1);
        tasks.push(tokio::spawn(async move {
            client_loop(w, repo, share, records, inserted, done, seed).await
        }));
    }
    let mut finished = Vec::new();
    let mut tasks = futures::future::join_all(tasks);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let results = loop {
        tokio::select! {
            r = &mut tasks => break r,
            _ = tick.tick() => progress(Progress {
                workload: w,
                store: &t.store,
                phase: "run",
                done: done.load(Ordering::Relaxed),
                total: opts.operations,
            }),
        }
    };
    let elapsed = started.elapsed();
    for r in results {
        let r = r.map_err(|e| Error::backend(&t.store, BENCH_TABLE, Box::new(e)))?;
        finished.push(r?);
    }
    progress(Progress {
        workload: w,
        store: &t.store,
        phase: "run",
        done: opts.operations,
        total: opts.operations,
    });
    Ok((elapsed, merge(w, finished)))
}

/// One client's histograms and error counts, per operation.
type ClientStats = BTreeMap<&'static str, (Histogram<u64>, u64)>;

async fn client_loop(
    w: Workload,
    repo: crate::Repo<UserRow>,
    ops: u64,
    records: u64,
    inserted: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    seed: u64,
) -> Result<ClientStats> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut stats: ClientStats = BTreeMap::new();
    for (op, _) in w.mix() {
        stats.insert(op.name(), (new_histogram(), 0));
    }
    for _ in 0..ops {
        let op = choose(w, &mut rng);
        let started = Instant::now();
        let outcome = match op {
            Operation::Read => {
                let ordinal = if w == Workload::D {
                    // Read latest: skewed towards the newest records.
                    let n = inserted.load(Ordering::Relaxed);
                    n - 1 - zipf(&mut rng, n)
                } else {
                    zipf(&mut rng, records)
                };
                repo.get(key_of(ordinal)).await.map(|_| ())
            }
            Operation::Update => {
                let r = row(zipf(&mut rng, records), &mut rng);
                repo.put(&r).await.map(|_| ())
            }
            Operation::Insert => {
                let ordinal = inserted.fetch_add(1, Ordering::Relaxed);
                let r = row(ordinal, &mut rng);
                repo.put(&r).await.map(|_| ())
            }
            Operation::Scan => {
                let start = key_of(zipf(&mut rng, records));
                let len = rng.gen_range(1..=MAX_SCAN);
                let q = Query::new()
                    .filter(field("id").ge(start))
                    .order_by("id")
                    .limit(len);
                repo.query(q).await.map(|_| ())
            }
            Operation::ReadModifyWrite => {
                read_modify_write(&repo, key_of(zipf(&mut rng, records)), &mut rng).await
            }
        };
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let entry = stats
            .entry(op.name())
            .or_insert_with(|| (new_histogram(), 0));
        match outcome {
            Ok(()) => {
                entry.0.saturating_record(micros.max(1));
            }
            // Unavailable or conflicting operations are counted, not timed;
            // anything else is a bug in the bench or the store: stop.
            Err(e) if e.is_transient() || matches!(e, Error::Conflict { .. }) => entry.1 += 1,
            Err(e) => return Err(e),
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(stats)
}

/// `get`, change one field, `put_if` the version read; retried on a conflict.
async fn read_modify_write(
    repo: &crate::Repo<UserRow>,
    key: String,
    rng: &mut SmallRng,
) -> Result<()> {
    let mut last = None;
    for _ in 0..RMW_ATTEMPTS {
        let Some(mut r) = repo.get(key.clone()).await? else {
            return Err(Error::invalid_input(
                "",
                BENCH_TABLE,
                format!("record {key} of the loaded set is missing"),
            ));
        };
        r.field0 = (0..FIELD_BYTES)
            .map(|_| char::from(rng.gen_range(b'a'..=b'z')))
            .collect();
        match repo.put_if(&r, Precondition::Version(r.version)).await {
            Ok(_) => return Ok(()),
            Err(e @ Error::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

fn choose(w: Workload, rng: &mut SmallRng) -> Operation {
    let mut roll = rng.gen_range(0..100u32);
    for (op, share) in w.mix() {
        if roll < *share {
            return *op;
        }
        roll -= share;
    }
    w.mix()[0].0
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at three significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn merge(w: Workload, clients: Vec<ClientStats>) -> Vec<OpStats> {
    w.mix()
        .iter()
        .map(|(op, _)| {
            let mut h = new_histogram();
            let mut errors = 0;
            for c in &clients {
                if let Some((ch, e)) = c.get(op.name()) {
                    h.add(ch).expect("histograms of equal bounds");
                    errors += e;
                }
            }
            OpStats {
                operation: op.name().into(),
                count: h.len() + errors,
                errors,
                p50_us: h.value_at_quantile(0.50),
                p95_us: h.value_at_quantile(0.95),
                p99_us: h.value_at_quantile(0.99),
                max_us: h.max(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashed_and_distinct() {
        let keys: std::collections::BTreeSet<String> = (0..10_000).map(key_of).collect();
        assert_eq!(keys.len(), 10_000);
        assert!(
            key_of(1) > key_of(2) || key_of(2) > key_of(3),
            "not insertion order"
        );
    }

    #[test]
    fn zipf_stays_in_range_and_favours_the_first() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut first = 0;
        for _ in 0..10_000 {
            let v = zipf(&mut rng, 100);
            assert!(v < 100);
            first += u32::from(v == 0);
        }
        assert!(first > 500, "ordinal 0 drawn {first} times");
        assert_eq!(zipf(&mut rng, 1), 0);
    }

    #[test]
    fn the_mix_is_followed() {
        let mut rng = SmallRng::seed_from_u64(7);
        let reads = (0..10_000)
            .filter(|_| choose(Workload::B, &mut rng) == Operation::Read)
            .count();
        assert!((9_300..9_700).contains(&reads), "{reads}");
    }

    #[test]
    fn scans_on_a_key_value_store_are_refused_naming_the_capabilities() {
        let why = refusal(Workload::E, &crate::backends::kind_caps::redis()).unwrap();
        assert!(why.contains("lacks query, range, sort"), "{why}");
        assert!(refusal(Workload::A, &crate::backends::kind_caps::redis()).is_none());
    }
}
