//! Change capture from PostgreSQL logical decoding (docs/cdc.md): rows
//! written with plain SQL — a raw sqlx connection, not the router — reach
//! projections as change events.
//!
//! Needs the private `wal_level = logical` server `scripts/services
//! pg-logical` starts on 127.0.0.1:5442 (`POLYROUTER_TEST_PG_LOGICAL_URL`
//! overrides it); the refusal test also uses the machine's PostgreSQL on
//! 5432 (`wal_level = replica`) and Redis on 6379; the status test runs the
//! `polyrouter` binary.
//!
//! `cargo test --all-features --test cdc`
#![cfg(all(feature = "postgres", feature = "redis", feature = "cli"))]

#[path = "support/cdc_scenarios.rs"]
mod cdc_scenarios;
#[path = "support/cdc_sql.rs"]
mod cdc_sql;
#[path = "support/cdc.rs"]
mod cdc_support;

use std::collections::BTreeMap;
use std::time::Duration;

use cdc_scenarios::start_seen;
use cdc_sql::{Engine, Exec};
use cdc_support::{Seen, n_of};
use polyrouter::sync::Operation;
use polyrouter::{Error, Router};
use sqlx::postgres::PgPool;

fn logical_url() -> String {
    std::env::var("POLYROUTER_TEST_PG_LOGICAL_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5442/test".into())
}

fn unique(tag: &str) -> String {
    cdc_support::unique("cdct", tag)
}

fn config(url: &str, table: &str) -> String {
    cdc_scenarios::config("postgres", url, table)
}

async fn pool() -> PgPool {
    let pool = PgPool::connect(&logical_url())
        .await
        .expect("the pg-logical server (scripts/services pg-logical) answers on 127.0.0.1:5442");
    sweep_dead_runs(&pool).await;
    pool
}

/// Drops the slots, publications and tables of earlier runs of this test
/// binary whose process is gone (a failed test leaves its slot, which
/// would keep log on the server). Names are `cdct_{tag}_{pid}_{n}…`.
async fn sweep_dead_runs(pool: &PgPool) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name LIKE 'cdct\\_%' AND NOT active \
         UNION SELECT pubname::text FROM pg_publication WHERE pubname LIKE 'cdct\\_%' \
         UNION SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'cdct\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for base in cdc_support::dead_runs(&names) {
        drop_slot(pool, &base).await;
    }
}

async fn drop_slot(pool: &PgPool, slot: &str) {
    sqlx::query(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(slot)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(&format!("DROP PUBLICATION IF EXISTS \"{slot}\""))
        .execute(pool)
        .await
        .unwrap();
    for t in [
        slot.to_string(),
        format!("{slot}_sync"),
        format!("{slot}_sync_dead_letters"),
    ] {
        sqlx::query(&format!("DROP TABLE IF EXISTS \"{t}\""))
            .execute(pool)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_sql_inserts_updates_deletes_and_transactions_reach_projections() {
    let table = unique("crud");
    let router = Router::from_toml_str(&config(&logical_url(), &table))
        .await
        .unwrap();
    let (sync, seen) = start_seen(&router).await;
    let pg = pool().await;
    let before = pg.position(&table).await;
    // Plain SQL: polyrouter's version column is set to 1 and never bumped.
    cdc_scenarios::plain_sql_changes(&pg, &table, 1).await;
    let t = format!("\"{table}\"");
    let ins = format!("INSERT INTO {t} (id, n, note, _pr_version) VALUES ($1, $2, $3, 1)");
    // A large out-of-line (TOASTed) value an update leaves untouched still
    // travels in full (the table's replica identity is FULL).
    let mut seed = 7u64;
    let big: String = (0..8000)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            char::from_digit(((seed >> 33) % 16) as u32, 16).unwrap()
        })
        .collect();
    pg.execute(&ins, &["big".into(), 1i64.into(), big.clone().into()])
        .await
        .unwrap();
    pg.execute(&format!("UPDATE {t} SET n = 2 WHERE id = 'big'"), &[])
        .await
        .unwrap();
    // COPY logs its rows in one multi-insert record: one WAL position for
    // several rows, still one event (and id) per row.
    {
        use sqlx::postgres::PgPoolCopyExt;
        let mut copy = pg
            .copy_in_raw(&format!("COPY {t} (id, n, _pr_version) FROM STDIN"))
            .await
            .unwrap();
        copy.send(b"m1\t1\t1\nm2\t2\t1\nm3\t3\t1\n".as_slice())
            .await
            .unwrap();
        assert_eq!(copy.finish().await.unwrap(), 3);
    }
    cdc_scenarios::put_and_delete_through_the_store(&router, &table).await;
    sync.settle(Duration::from_secs(30)).await.unwrap();

    let got = seen.by_key();
    cdc_scenarios::assert_crud_events(&got, &table, "pg");
    assert_eq!(cdc_scenarios::ops(&got, "big").len(), 2);
    assert_eq!(
        got["big"][1].data.as_ref().unwrap()["note"],
        serde_json::json!(big),
        "the untouched TOASTed value travels in full"
    );
    for k in ["m1", "m2", "m3"] {
        assert_eq!(cdc_scenarios::ops(&got, k).len(), 1, "{k}");
    }
    cdc_scenarios::assert_replica_and_status(&router, &sync, &table, &got, &[]).await;
    let after = pg.position(&table).await;
    assert!(after > before, "the slot advanced ({before} → {after})");
    let r = cdc_scenarios::item_retention(&router).await;
    // (An idle capture moves on as other tables' writes grow the log.)
    assert!(r.position >= after, "{} < {after}", r.position);
    assert_ne!(r.status, "lost");
    sync.shutdown().await.unwrap();
    drop_slot(&pg, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_plain_sql_writers_on_the_same_keys_end_in_the_tables_state() {
    let table = unique("conc");
    let router = Router::from_toml_str(&config(&logical_url(), &table))
        .await
        .unwrap();
    let (sync, seen) = start_seen(&router).await;
    let pg = pool().await;
    let t = format!("\"{table}\"");
    let mut writers = Vec::new();
    for w in 0..4i64 {
        let (pg, t) = (pg.clone(), t.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..60i64 {
                let key = format!("k{}", (i + w) % 5);
                let sql = if (i + w) % 7 == 0 {
                    format!("DELETE FROM {t} WHERE id = $1 AND $2::int8 IS NOT NULL")
                } else {
                    format!(
                        "INSERT INTO {t} (id, n, _pr_version) VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET n = excluded.n"
                    )
                };
                sqlx::query(&sql)
                    .bind(&key)
                    .bind(w * 1000 + i)
                    .execute(&pg)
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    sync.settle(Duration::from_secs(60)).await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as(&format!("SELECT id, n FROM {t}"))
        .fetch_all(&pg)
        .await
        .unwrap();
    let table_state: BTreeMap<String, i64> = rows.into_iter().collect();
    let got = seen.by_key();
    for k in 0..5 {
        let key = format!("k{k}");
        let events = got.get(&key).cloned().unwrap_or_default();
        for w in events.windows(2) {
            assert!(w[0].version < w[1].version, "{key}: versions must grow");
        }
        let last = events.last().map(|e| (e.op, n_of(e)));
        match table_state.get(&key) {
            Some(n) => assert_eq!(last, Some((Operation::Put, Some(*n))), "{key}"),
            None => assert!(
                last.is_none() || last == Some((Operation::Delete, None)),
                "{key}: {last:?}"
            ),
        }
    }
    sync.shutdown().await.unwrap();
    drop_slot(&pg, &table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_without_a_usable_change_stream_are_refused() {
    // Not together with an outbox.
    let both = config(&logical_url(), &unique("both")).replace(
        "change_capture = {",
        "outbox = { bus = \"events\" }\nchange_capture = {",
    );
    let e = Router::from_toml_str(&both).await.unwrap_err();
    assert!(e.to_string().contains("not both"), "{e}");

    // Redis: no reliable change stream.
    let redis = config(&logical_url(), &unique("redis")).replace(
        "[entities.item]\nstore = \"main\"",
        "[stores.kv]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\n[entities.item]\nstore = \"kv\"",
    );
    let router = Router::from_toml_str(&redis).await.unwrap();
    match router.sync_builder().projections(false).start().await {
        Err(Error::Unsupported {
            store, capability, ..
        }) => {
            assert_eq!(store, "kv");
            assert!(
                capability.contains("no reliable change stream"),
                "{capability}"
            );
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }

    // The machine's server runs `wal_level = replica`.
    let table = unique("levelcheck");
    let router = Router::from_toml_str(&config("postgres://postgres@127.0.0.1:5432/test", &table))
        .await
        .unwrap();
    match router.sync_builder().projections(false).start().await {
        Err(Error::Unsupported { capability, .. }) => {
            assert!(capability.contains("wal_level = logical"), "{capability}")
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let pg = PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    for t in [table.clone(), format!("{table}_sync")] {
        sqlx::query(&format!("DROP TABLE IF EXISTS \"{t}\""))
            .execute(&pg)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_status_reports_a_stopped_captures_retained_log_and_warns() {
    let table = unique("status");
    let text = config(&logical_url(), &table).replace(
        "interval = \"20ms\" }",
        "interval = \"20ms\", warn_retained_mb = 0 }",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cdc.toml");
    std::fs::write(&file, &text).unwrap();
    let router = Router::from_toml_str(&text).await.unwrap();
    // The worker creates the slot, then stops: the log written since stays.
    let sync = router
        .sync_builder()
        .handler("seen", Seen::default())
        .start()
        .await
        .unwrap();
    sync.shutdown().await.unwrap();
    let pg = pool().await;
    sqlx::query(&format!(
        "INSERT INTO \"{table}\" (id, n, _pr_version) SELECT 'k' || i, i, 1 FROM generate_series(1, 200) i"
    ))
    .execute(&pg)
    .await
    .unwrap();
    // POLYROUTER_BIN: this build's binary when a shared target directory's
    // `polyrouter` belongs to another build.
    let bin =
        std::env::var("POLYROUTER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_polyrouter").into());
    let out = std::process::Command::new(bin)
        .args(["sync", "status", "--config"])
        .arg(&file)
        .output()
        .expect("run polyrouter sync status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("item ") && l.contains(&table))
        .unwrap_or_else(|| panic!("no capture line for slot {table}:\n{stdout}"));
    let retained: u64 = line
        .split_whitespace()
        .nth(4)
        .and_then(|b| b.parse().ok())
        .unwrap_or_else(|| panic!("no retained bytes in {line:?}"));
    assert!(retained > 0, "{line}");
    assert!(line.contains("reserved"), "{line}");
    assert!(
        stdout.contains(&format!("WARNING: slot `{table}`")),
        "{stdout}"
    );
    drop_slot(&pg, &table).await;
}

/// The source contract the capture (and the migration engine) stands on:
/// until `commit`, reading again returns the same events with the same ids
/// and versions; after it, nothing of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_source_rereads_the_same_events_until_committed() {
    let table = unique("source");
    let router = Router::from_toml_str(&config(&logical_url(), &table))
        .await
        .unwrap();
    let pg = pool().await;
    let (source, first) = cdc_scenarios::source_with_three_events(&router, &pg, &table).await;
    cdc_scenarios::commit_read_and_remove(&*source, &first, None).await;
    drop_slot(&pg, &table).await;
}
