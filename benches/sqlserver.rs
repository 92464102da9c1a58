//! SQL Server figures: the router's point get and point put against a
//! hand-written tiberius baseline doing the same work, so that the router /
//! raw ratio shows what the router itself costs. The SQL Server counterpart
//! of the `mysql` group of `benches/backends.rs`.
//!
//! ```text
//! POLYROUTER_BENCH_SQLSERVER=sqlserver://user:pw@host:1433/db \
//!   cargo bench --features sqlserver --bench sqlserver -- --warm-up-time 1 --measurement-time 4
//! ```
//!
//! `POLYROUTER_BENCH_SQLSERVER` names the server in the store's URL format
//! (`sqlserver://user:password@host:port/database`, user and password
//! percent-encoded, port default 1433). Both sides encrypt as the store does
//! by default (`encrypt = "required"`, rustls, the system's roots);
//! `POLYROUTER_BENCH_SQLSERVER_TRUST_CERT=1` accepts any server certificate
//! on both (`trust_server_certificate = true`: a local container with a
//! self-signed one). Without `POLYROUTER_BENCH_SQLSERVER` the bench says so
//! on stderr and registers nothing.
//!
//! **Not run yet**: no SQL Server can run on the machine this project is
//! developed on, so this bench has been compiled and its statement texts
//! checked against the store's (below), but it has never run against a
//! server, and there are no figures.
//!
//! The router is opened from TOML (`kind = "sqlserver"`, default options)
//! with a schema unique to the run (`pr_bench_<pid>`), which it creates with
//! the `bench_user` table; the schema and its tables are dropped at the end
//! (`SqlServerStore::drop_schema`). The table holds the one row under
//! `user-000042` (and one the start-up check writes).
//!
//! The raw side is what an application would write with tiberius and bb8:
//! its own pool of the store's default shape (8 connections, `SELECT 1` on
//! every checkout — bb8's default and the store's — TCP_NODELAY; no
//! gateway redirect followed: name the server itself),
//! and the store's own statements written out by hand against
//! `[pr_bench_<pid>].[bench_user]`, values always bound (`@P1…`, tiberius
//! RPC), `now` bound as `BIGINT` unix microseconds:
//!
//! - `sqlserver/get`: `Repo::get` of the row;
//! - `sqlserver/raw_get_decoded`: the store's get — one checkout (`SELECT 1`)
//!   and one round trip, `SELECT [id], [email], [name], [score],
//!   [_pr_version] FROM … WHERE [id] = @P1 AND ([_pr_expires_at] IS NULL OR
//!   [_pr_expires_at] > @P2)` (key, now), the row decoded into `BenchUser`;
//! - `sqlserver/put`: `Repo::put` of the row (no precondition, no TTL);
//! - `sqlserver/raw_put_versioned`: the store's lock-then-write put — one
//!   checkout (`SELECT 1`) and four round trips in one transaction:
//!   `BEGIN TRANSACTION`; the row lock `SELECT CASE WHEN (live) THEN
//!   [_pr_version] WHEN [_pr_expires_at] < 0 THEN 0 - [_pr_version] ELSE 0
//!   END FROM … WITH (UPDLOCK, HOLDLOCK) WHERE [id] = @P2` (now, key); then
//!   `UPDATE … SET [email], [name], [score], [_pr_version], [_pr_expires_at]
//!   … WHERE [id] = @P6` when a row is there (version = the live or buried
//!   version + 1, or 1 over an expired row) or `INSERT` of the six columns
//!   at version 1 when none is; `COMMIT TRANSACTION`. It returns the
//!   version, as the router does. It does less than the router only in
//!   what the router adds around the same statements (encoding the struct
//!   into a record, the route, the resilience layers, error mapping, the
//!   rollback on failure — the raw side panics instead);
//! - `sqlserver/interleaved_get`, `sqlserver/interleaved_put`: the router
//!   and the baseline in alternating chunks of 16 in one loop; criterion
//!   reports the router's time, and the median router / raw ratio over the
//!   chunk pairs (warm-up included) is printed at the end, so drift in
//!   machine and network load cancels out.
//!
//! Before measuring, the baseline is checked against the router: the
//! hand-written statements must equal the store's (`TableSql` for
//! `BenchUser`, also checked without a server); a raw put after the
//! router's must write version + 1, which the router's get must see, and
//! the other way round; a raw put of a new key must write version 1, which
//! the router reads back. Any difference panics.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_user::{BenchUser, KEY, now_micros, runtime, sample};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use interleave::{interleaved_bench, median};
use polyrouter::backends::sql::TableSql;
use polyrouter::backends::sqlserver::{SqlServerConfig, SqlServerDialect, SqlServerStore};
use polyrouter::{Entity, Repo, Router};
use tiberius::{AuthMethod, Client, ColumnData, EncryptionLevel, Query, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

#[path = "support/bench_user.rs"]
mod bench_user;
#[path = "support/interleave.rs"]
mod interleave;

/// The store's table for `BenchUser`.
const TABLE: &str = "bench_user";
/// The store's default pool size (`max_connections`).
const POOL_SIZE: u32 = 8;
/// The store's default `connect_timeout` and `acquire_timeout`.
const TIMEOUT: Duration = Duration::from_secs(5);

fn bench(c: &mut Criterion) {
    let schema = format!("pr_bench_{}", std::process::id());
    let sql = Statements::new(&schema);
    sql.check(&schema);
    let Ok(url) = std::env::var("POLYROUTER_BENCH_SQLSERVER") else {
        eprintln!("POLYROUTER_BENCH_SQLSERVER is not set: the SQL Server bench did not run");
        return;
    };
    let trust_cert = std::env::var("POLYROUTER_BENCH_SQLSERVER_TRUST_CERT").is_ok_and(|v| v == "1");
    let rt = runtime();
    let repo = rt.block_on(async {
        let toml = format!(
            "[stores.s]\nkind = \"sqlserver\"\nurl = {}\nschema = \"{schema}\"\ntrust_server_certificate = {trust_cert}\n[entities.bench_user]\nstore = \"s\"\n",
            toml::Value::String(url.clone())
        );
        let router = Router::from_toml_str(&toml)
            .await
            .expect("the router opens the SQL Server named by POLYROUTER_BENCH_SQLSERVER");
        router.repo::<BenchUser>().await.expect("repo")
    });
    let pool = rt.block_on(async {
        let manager = RawManager {
            config: raw_config(&url, trust_cert),
        };
        bb8::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(TIMEOUT)
            .idle_timeout(Some(Duration::from_secs(300)))
            .test_on_check_out(true)
            .build(manager)
            .await
            .expect("the raw pool")
    });
    rt.block_on(check_baseline(&repo, &pool, &sql));

    let one = sample();
    let ratios_get = Mutex::new(Vec::new());
    let ratios_put = Mutex::new(Vec::new());
    let router_get = || async {
        black_box(repo.get(black_box(KEY)).await.expect("get"));
    };
    let raw_get = || async {
        black_box(raw_get_decoded(&pool, &sql, KEY).await);
    };
    let router_put = || async {
        black_box(repo.put(black_box(&one)).await.expect("put"));
    };
    let raw_put = || async {
        black_box(raw_put_versioned(&pool, &sql, &one).await);
    };
    let mut g = c.benchmark_group("sqlserver");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("get", |b| b.to_async(&rt).iter(router_get));
    g.bench_function("raw_get_decoded", |b| b.to_async(&rt).iter(raw_get));
    g.bench_function("put", |b| b.to_async(&rt).iter(router_put));
    g.bench_function("raw_put_versioned", |b| b.to_async(&rt).iter(raw_put));
    interleaved_bench(
        &mut g,
        &rt,
        "interleaved_get",
        &ratios_get,
        router_get,
        raw_get,
    );
    interleaved_bench(
        &mut g,
        &rt,
        "interleaved_put",
        &ratios_put,
        router_put,
        raw_put,
    );
    g.finish();
    for (op, ratios) in [("get", &ratios_get), ("put", &ratios_put)] {
        let (m, n) = median(ratios);
        if n > 0 {
            eprintln!(
                "sqlserver: router/raw {op} = {m:.3} (interleaved, median of {n} chunk pairs)"
            );
        }
    }
    drop(repo);
    rt.block_on(async {
        drop(pool);
        let mut cfg = SqlServerConfig::new(url);
        cfg.schema = Some(schema.clone());
        cfg.trust_server_certificate = trust_cert;
        let store = SqlServerStore::connect("s", cfg)
            .await
            .expect("a store to drop the bench schema");
        store.drop_schema().await.expect("drop the bench schema");
    });
    eprintln!("sqlserver: dropped schema {schema}");
}

/// The store's statements for `[schema].[bench_user]`, written out by
/// hand (src/backends/sql/table.rs with the SQL Server dialect; the texts
/// src/backends/sqlserver/tests.rs asserts for its test table).
struct Statements {
    /// One row by key: binds key, now.
    get: String,
    /// The row lock: the live version, minus a tombstone's version, 0 for
    /// an expired row, no row when absent: binds now, key.
    lock: String,
    /// A new row: binds id, email, name, score, version, expires.
    insert: String,
    /// A row overwritten: binds email, name, score, version, expires, id.
    update: String,
}

impl Statements {
    fn new(schema: &str) -> Statements {
        let t = format!("[{}].[{TABLE}]", schema.replace(']', "]]"));
        let live = |p: u32| format!("([_pr_expires_at] IS NULL OR [_pr_expires_at] > @P{p})");
        Statements {
            get: format!(
                "SELECT [id], [email], [name], [score], [_pr_version] FROM {t} WHERE [id] = @P1 AND {}",
                live(2)
            ),
            lock: format!(
                "SELECT CASE WHEN {} THEN [_pr_version] WHEN [_pr_expires_at] < 0 THEN 0 - [_pr_version] ELSE 0 END \
                 FROM {t} WITH (UPDLOCK, HOLDLOCK) WHERE [id] = @P2",
                live(1)
            ),
            insert: format!(
                "INSERT INTO {t} ([id], [email], [name], [score], [_pr_version], [_pr_expires_at]) \
                 VALUES (@P1, @P2, @P3, @P4, @P5, @P6)"
            ),
            update: format!(
                "UPDATE {t} SET [email] = @P1, [name] = @P2, [score] = @P3, [_pr_version] = @P4, \
                 [_pr_expires_at] = @P5 WHERE [id] = @P6"
            ),
        }
    }

    /// Panics unless every statement is the store's own (the SQL Server
    /// dialect's `TableSql` for `BenchUser` in `schema`): the baseline
    /// would no longer do the router's work.
    fn check(&self, schema: &str) {
        let t = TableSql::new(
            Arc::new(SqlServerDialect::new(Some(schema.into()))),
            BenchUser::schema(),
            TABLE,
        )
        .expect("the store's statements for bench_user");
        for (name, mine, store) in [
            ("get", &self.get, &t.get),
            ("lock", &self.lock, &t.lock),
            ("insert", &self.insert, &t.insert),
            ("update", &self.update, &t.update),
        ] {
            assert_eq!(
                mine, store,
                "the bench's hand-written `{name}` statement is not the store's any more; update benches/sqlserver.rs"
            );
        }
    }
}

/// Checks, before measuring, that the baseline does the router's work on
/// the same row: versions continue across both sides and each reads what
/// the other wrote.
async fn check_baseline(repo: &Repo<BenchUser>, pool: &RawPool, sql: &Statements) {
    let one = sample();
    let v1 = repo.put(&one).await.expect("the router's put");
    let v2 = raw_put_versioned(pool, sql, &one).await;
    assert_eq!(
        v2,
        v1 + 1,
        "the raw put after the router's put (version {v1}) wrote version {v2}, not {}",
        v1 + 1
    );
    let got = repo
        .get(KEY)
        .await
        .expect("the router's get")
        .expect("the router finds the row the raw put wrote");
    assert_eq!(
        got.version, v2,
        "the router's get sees version {} after the raw put wrote version {v2}",
        got.version
    );
    assert_same_row(&got, &one, "the router's get after the raw put");
    let v3 = repo.put(&one).await.expect("the router's put");
    assert_eq!(
        v3,
        v2 + 1,
        "the router's put after the raw put (version {v2}) wrote version {v3}, not {}",
        v2 + 1
    );
    let raw = raw_get_decoded(pool, sql, KEY)
        .await
        .expect("the raw get finds the row the router wrote");
    assert_eq!(
        raw.version, v3,
        "the raw get sees version {} after the router's put wrote version {v3}",
        raw.version
    );
    assert_same_row(&raw, &one, "the raw get after the router's put");
    // A key nobody wrote: the raw put inserts it at version 1.
    let fresh = bench_user::user("raw-check".into(), 7);
    let v = raw_put_versioned(pool, sql, &fresh).await;
    assert_eq!(v, 1, "the raw put of a new key wrote version {v}, not 1");
    let got = repo
        .get(fresh.id.as_str())
        .await
        .expect("the router's get")
        .expect("the router finds the row the raw put inserted");
    assert_eq!(
        got.version, 1,
        "the router's get sees the raw insert at version {}, not 1",
        got.version
    );
    assert_same_row(&got, &fresh, "the router's get after the raw insert");
}

/// Panics unless `got` holds `want`'s fields (the version aside).
fn assert_same_row(got: &BenchUser, want: &BenchUser, what: &str) {
    assert_eq!(
        (&got.id, &got.email, &got.name, got.score),
        (&want.id, &want.email, &want.name, want.score),
        "{what}: the row's fields differ from the ones written"
    );
}

type RawClient = Client<Compat<TcpStream>>;
type RawPool = bb8::Pool<RawManager>;

/// The raw side's connections, opened as the store opens its own.
struct RawManager {
    config: tiberius::Config,
}

impl bb8::ManageConnection for RawManager {
    type Connection = RawClient;
    type Error = tiberius::error::Error;

    async fn connect(&self) -> Result<RawClient, Self::Error> {
        match tokio::time::timeout(TIMEOUT, raw_connect(self.config.clone())).await {
            Ok(r) => r,
            Err(_) => Err(tiberius::error::Error::Io {
                kind: std::io::ErrorKind::TimedOut,
                message: format!("connecting took longer than {TIMEOUT:?}"),
            }),
        }
    }

    async fn is_valid(&self, client: &mut RawClient) -> Result<(), Self::Error> {
        client.simple_query("SELECT 1").await?.into_row().await?;
        Ok(())
    }

    fn has_broken(&self, _: &mut RawClient) -> bool {
        // Any error panics the bench: no connection is reused after one.
        false
    }
}

/// TCP (no Nagle), TLS and login, as a plain tiberius application
/// connects. (The store also follows an Azure SQL gateway's redirect and
/// sets `XACT_ABORT ON`; neither changes what a get or put costs, and a
/// redirect here fails loudly: name the server the gateway redirects to.)
async fn raw_connect(config: tiberius::Config) -> tiberius::Result<RawClient> {
    let tcp = TcpStream::connect(config.get_addr()).await?;
    tcp.set_nodelay(true)?;
    Client::connect(config, tcp.compat_write()).await
}

/// The tiberius configuration for the store's URL (parsed by the store's
/// own [`SqlServerConfig::address`]), with the store's default TLS
/// (`encrypt = "required"`) and, when asked, any certificate accepted.
fn raw_config(url: &str, trust_cert: bool) -> tiberius::Config {
    let a = SqlServerConfig::new(url)
        .address()
        .unwrap_or_else(|e| panic!("POLYROUTER_BENCH_SQLSERVER: {e}"));
    let mut c = tiberius::Config::new();
    c.host(&a.host);
    c.port(a.port);
    if let Some(database) = &a.database {
        c.database(database);
    }
    c.application_name("polyrouter-bench:raw");
    c.authentication(AuthMethod::sql_server(&a.user, &a.password));
    c.encryption(EncryptionLevel::Required);
    if trust_cert {
        c.trust_cert();
    }
    c
}

/// An integer cell (`BIGINT`, or `INT`).
fn int_cell(row: &Row, i: usize) -> Option<i64> {
    match row.get_column_data(i).expect("the cell") {
        ColumnData::I64(v) => *v,
        ColumnData::I32(v) => v.map(i64::from),
        d => panic!("cell {i} is {d:?}, not an integer"),
    }
}

/// A `NOT NULL` text cell.
fn text_cell(row: &Row, i: usize) -> String {
    row.try_get::<&str, _>(i)
        .expect("a text cell")
        .expect("not NULL")
        .to_owned()
}

/// The store's get by hand: one checkout, the store's statement with key
/// and now bound, the row decoded into the struct.
async fn raw_get_decoded(pool: &RawPool, sql: &Statements, key: &str) -> Option<BenchUser> {
    let mut client = pool.get().await.expect("a raw connection");
    let mut q = Query::new(sql.get.as_str());
    q.bind(key);
    q.bind(now_micros());
    let row = q
        .query(&mut client)
        .await
        .expect("SELECT")
        .into_row()
        .await
        .expect("SELECT")?;
    Some(BenchUser {
        id: text_cell(&row, 0),
        email: text_cell(&row, 1),
        name: text_cell(&row, 2),
        score: int_cell(&row, 3).expect("score is not NULL"),
        version: int_cell(&row, 4).expect("_pr_version is not NULL") as u64,
    })
}

/// The store's unconditional put by hand (lock-then-write, no TTL): one
/// checkout, then `BEGIN TRANSACTION`, the row lock, `UPDATE` or `INSERT`,
/// `COMMIT TRANSACTION`; the version it wrote.
async fn raw_put_versioned(pool: &RawPool, sql: &Statements, u: &BenchUser) -> u64 {
    let mut client = pool.get().await.expect("a raw connection");
    client
        .simple_query("BEGIN TRANSACTION")
        .await
        .expect("BEGIN TRANSACTION")
        .into_results()
        .await
        .expect("BEGIN TRANSACTION");
    let mut lock = Query::new(sql.lock.as_str());
    lock.bind(now_micros());
    lock.bind(u.id.as_str());
    // None: no row; Some(0): an expired row; Some(v): live at version v;
    // Some(-v): a tombstone at version v.
    let current = lock
        .query(&mut client)
        .await
        .expect("the row lock")
        .into_row()
        .await
        .expect("the row lock")
        .map(|row| int_cell(&row, 0).expect("the locked version is not NULL"));
    let version = match current {
        Some(v) if v != 0 => v.unsigned_abs() + 1,
        _ => 1,
    };
    let expires: Option<i64> = None;
    let written = if current.is_some() {
        let mut q = Query::new(sql.update.as_str());
        q.bind(u.email.as_str());
        q.bind(u.name.as_str());
        q.bind(u.score);
        q.bind(version as i64);
        q.bind(expires);
        q.bind(u.id.as_str());
        q.execute(&mut client).await.expect("UPDATE")
    } else {
        let mut q = Query::new(sql.insert.as_str());
        q.bind(u.id.as_str());
        q.bind(u.email.as_str());
        q.bind(u.name.as_str());
        q.bind(u.score);
        q.bind(version as i64);
        q.bind(expires);
        q.execute(&mut client).await.expect("INSERT")
    };
    black_box(written.total());
    client
        .simple_query("COMMIT TRANSACTION")
        .await
        .expect("COMMIT TRANSACTION")
        .into_results()
        .await
        .expect("COMMIT TRANSACTION");
    version
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
