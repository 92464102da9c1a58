//! The SQL engine a change-capture test writes to with plain SQL, so one
//! scenario serves PostgreSQL (`tests/cdc.rs`, `tests/cdc_crash.rs`) and
//! MariaDB (`tests/cdc_mysql*.rs`): what differs is said once per engine
//! here (identifier quoting, placeholders, the upsert, how a slot's
//! position is read); running statements is written once for both pool
//! types (`#[path = "support/cdc_sql.rs"] mod cdc_sql;`).
#![allow(dead_code)]

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub enum Arg {
    /// A string.
    Str(String),
    /// An integer.
    I64(i64),
    /// A NULL string.
    Null,
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Str(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Str(s)
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Arg {
        Arg::I64(n)
    }
}

/// Runs statements on a pool (the same code for every sqlx pool type).
#[async_trait::async_trait]
pub trait Exec: Clone + Send + Sync + 'static {
    /// Runs one statement with `args` bound in order.
    async fn execute(&self, sql: &str, args: &[Arg]) -> Result<(), sqlx::Error>;
    /// Runs `statements` in one transaction, stopping at the first error
    /// (which rolls it back); then commits it, or rolls it back when
    /// `commit` is false.
    async fn transaction(
        &self,
        statements: &[(String, Vec<Arg>)],
        commit: bool,
    ) -> Result<(), sqlx::Error>;
    /// `SELECT <text>, <int>` rows.
    async fn pairs(&self, sql: &str) -> Vec<(String, i64)>;
    /// `SELECT <text>, <int?>, <bool>` rows.
    async fn triples(&self, sql: &str) -> Vec<(String, Option<i64>, bool)>;
    /// A `SELECT count(*)`.
    async fn count(&self, sql: &str) -> i64;
}

/// What differs between the engines.
#[async_trait::async_trait]
pub trait Engine: Exec {
    /// The store's `kind` in a config.
    const KIND: &'static str;
    /// The prefix of a captured event's id (`{prefix}:{slot}:…`).
    const ID_PREFIX: &'static str;
    /// A quoted identifier.
    fn quote(&self, name: &str) -> String;
    /// The `i`th (from 1) placeholder.
    fn ph(&self, i: usize) -> String;
    /// An upsert of `(id, n)` into `table` (two placeholders) with
    /// `_pr_version = 1`.
    fn upsert(&self, table: &str) -> String;
    /// A DELETE of one `id` (one placeholder) from `table`.
    fn delete(&self, table: &str) -> String;
    /// `id` as text in a SELECT.
    fn id_text(&self) -> &'static str;
    /// The slot's durable position.
    async fn position(&self, slot: &str) -> u64;
}

/// `sql` with `args` bound in order.
macro_rules! bound {
    ($db:ty, $sql:expr, $args:expr) => {{
        let mut q = sqlx::query::<$db>($sql);
        for a in $args {
            q = match a {
                Arg::Str(s) => q.bind(s.clone()),
                Arg::I64(n) => q.bind(*n),
                Arg::Null => q.bind(None::<String>),
            };
        }
        q
    }};
}

macro_rules! exec_for {
    ($pool:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl Exec for $pool {
            async fn execute(&self, sql: &str, args: &[Arg]) -> Result<(), sqlx::Error> {
                bound!($db, sql, args).execute(self).await.map(|_| ())
            }

            async fn transaction(
                &self,
                statements: &[(String, Vec<Arg>)],
                commit: bool,
            ) -> Result<(), sqlx::Error> {
                let mut tx = self.begin().await?;
                for (sql, args) in statements {
                    bound!($db, sql, args).execute(&mut *tx).await?;
                }
                if commit {
                    tx.commit().await
                } else {
                    tx.rollback().await
                }
            }

            async fn pairs(&self, sql: &str) -> Vec<(String, i64)> {
                sqlx::query_as(sql).fetch_all(self).await.unwrap()
            }

            async fn triples(&self, sql: &str) -> Vec<(String, Option<i64>, bool)> {
                sqlx::query_as(sql).fetch_all(self).await.unwrap()
            }

            async fn count(&self, sql: &str) -> i64 {
                sqlx::query_scalar(sql).fetch_one(self).await.unwrap()
            }
        }
    };
}

#[cfg(feature = "postgres")]
exec_for!(sqlx::postgres::PgPool, sqlx::Postgres);
#[cfg(feature = "mysql")]
exec_for!(sqlx::mysql::MySqlPool, sqlx::MySql);

#[cfg(feature = "postgres")]
#[async_trait::async_trait]
impl Engine for sqlx::postgres::PgPool {
    const KIND: &'static str = "postgres";
    const ID_PREFIX: &'static str = "pg";
    fn quote(&self, name: &str) -> String {
        format!("\"{name}\"")
    }
    fn ph(&self, i: usize) -> String {
        format!("${i}")
    }
    fn upsert(&self, table: &str) -> String {
        format!(
            "INSERT INTO \"{table}\" (id, n, _pr_version) VALUES ($1, $2, 1) ON CONFLICT (id) DO UPDATE SET n = excluded.n"
        )
    }
    fn delete(&self, table: &str) -> String {
        format!("DELETE FROM \"{table}\" WHERE id = $1")
    }
    fn id_text(&self) -> &'static str {
        "id"
    }
    /// The slot's confirmed position.
    async fn position(&self, slot: &str) -> u64 {
        let lsn: i64 = sqlx::query_scalar(
            "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::int8 FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(slot)
        .fetch_one(self)
        .await
        .unwrap();
        lsn as u64
    }
}

#[cfg(feature = "mysql")]
#[async_trait::async_trait]
impl Engine for sqlx::mysql::MySqlPool {
    const KIND: &'static str = "mysql";
    const ID_PREFIX: &'static str = "mysql";
    fn quote(&self, name: &str) -> String {
        format!("`{name}`")
    }
    fn ph(&self, _: usize) -> String {
        "?".into()
    }
    fn upsert(&self, table: &str) -> String {
        format!(
            "INSERT INTO `{table}` (id, n, _pr_version) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE n = VALUES(n)"
        )
    }
    fn delete(&self, table: &str) -> String {
        format!("DELETE FROM `{table}` WHERE id = ?")
    }
    fn id_text(&self) -> &'static str {
        "CAST(id AS CHAR)"
    }
    /// The row `polyrouter_capture` keeps for the slot.
    async fn position(&self, slot: &str) -> u64 {
        sqlx::query_scalar("SELECT position FROM polyrouter_capture WHERE slot = ?")
            .bind(slot)
            .fetch_one(self)
            .await
            .unwrap()
    }
}
