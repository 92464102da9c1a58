//! What differs between SQL databases: the [`Dialect`] trait.

use std::fmt;

use super::table::Column;
use crate::entity::FieldKind;
use crate::query::{CmpOp, Direction};

/// How a dialect's conditional writes learn their outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteMode {
    /// One statement per write with `RETURNING` (PostgreSQL, SQLite): the
    /// statements of [`TableSql`](super::TableSql) `upsert` … `delete_version`
    /// and an [`Expect`](super::Expect) per statement.
    Returning,
    /// Lock the row, decide in Rust, then write with plain statements
    /// (MySQL/MariaDB, which have no `UPDATE … RETURNING`): `lock`, `insert`,
    /// `update`, `delete` of [`TableSql`](super::TableSql), driven by
    /// [`write::apply_locked`](super::write::apply_locked). Must run inside a
    /// transaction.
    LockThenWrite,
}

/// How a batch of unconditional puts is written in one statement per
/// chunk ([`TableSql::put_many`](super::TableSql::put_many)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkUpsert {
    /// One array parameter per column, `INSERT … SELECT * FROM UNNEST(…)`
    /// (PostgreSQL); each array is cast to [`Dialect::array_type`].
    Unnest {
        /// The most rows per statement.
        rows: usize,
    },
    /// Multi-row `INSERT … VALUES (…), (…)` (SQLite), at most `max_params`
    /// parameters per statement.
    Values {
        /// The database's parameter limit per statement.
        max_params: usize,
    },
}

/// How `get_many` passes its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyList {
    /// One array parameter: `key = ANY(?)` (PostgreSQL).
    Array,
    /// `key IN (?, ?, …)`, at most `chunk` keys per statement, padded to a
    /// few bucket sizes so few distinct statements are prepared.
    InList {
        /// The most keys per statement.
        chunk: usize,
    },
}

/// The SQL text one database needs where databases differ.
///
/// The shared statement builder ([`TableSql`](super::TableSql)) writes `?`
/// for every parameter and asks the dialect for everything else: how to
/// quote, how to number parameters, column types, upsert and limit syntax,
/// null ordering, literal prefix/contains matching. Every method without a
/// default must be supplied; see the [module documentation](super) for a
/// walk-through of adding a dialect.
///
/// ```
/// # #[cfg(feature = "postgres")] {
/// use polyrouter::backends::sql::Dialect;
/// let d = polyrouter::backends::postgres::PostgresDialect;
/// assert_eq!(d.quote("a\"b"), "\"a\"\"b\"");
/// let mut s = String::new();
/// d.placeholder(2, &mut s);
/// assert_eq!(s, "$2");
/// # }
/// ```
pub trait Dialect: fmt::Debug + Send + Sync + 'static {
    /// The database's name in messages, e.g. `PostgreSQL`.
    fn name(&self) -> &'static str;

    /// The store kind in messages, e.g. `postgres`.
    fn kind(&self) -> &'static str;

    /// A quoted identifier: `"a""b"` (standard), the same in backquotes
    /// (MySQL), `[a]]b]` (SQL Server).
    fn quote(&self, ident: &str) -> String;

    /// The table name as written in statements: default [`Dialect::quote`];
    /// a dialect that places tables in a configured schema qualifies it
    /// (`[schema].[table]`).
    fn quote_table(&self, table: &str) -> String {
        self.quote(table)
    }

    /// Checks a table or column name can be quoted and used; the error says
    /// what is wrong with it. `what` is `table` or `field`.
    fn check_ident(&self, what: &str, ident: &str) -> Result<(), String>;

    /// Whether the database treats `A` and `a` as the same column name.
    fn case_insensitive_idents(&self) -> bool;

    /// How the database compares and limits table names: the router folds
    /// every table a route uses this way at start-up and refuses two that
    /// become one ([`Store::namespace`](crate::Store::namespace)).
    fn table_names(&self) -> crate::store::namespace::TableNames;

    /// Writes the `n`th (1-based) parameter marker: `?`, `$n` or `@Pn`.
    fn placeholder(&self, n: usize, out: &mut String);

    /// The declared column type for values of `kind`; `key` for the primary
    /// key column (some databases cannot index unbounded text).
    fn column_type(&self, kind: FieldKind, key: bool) -> String;

    /// The 64-bit integer type of `_pr_version` and `_pr_expires_at`
    /// (unix microseconds).
    fn bigint_type(&self) -> &'static str;

    /// The column definition of an outbox table's `seq`: a 64-bit primary
    /// key the database numbers on insert and never reuses
    /// (`BIGSERIAL PRIMARY KEY`, `INTEGER PRIMARY KEY AUTOINCREMENT`, …).
    fn serial_key(&self) -> &'static str;

    /// Whether an existing column of type `data_type` (as the catalog reports
    /// it, e.g. `information_schema.columns.data_type`) holds values of
    /// `kind` unchanged.
    fn holds(&self, data_type: &str, kind: FieldKind) -> bool;

    /// Whether stored text may contain NUL characters. When not, such values
    /// are refused with `InvalidInput` and filters treat NUL operands as
    /// matching no stored value.
    fn text_holds_nul(&self) -> bool;

    /// Whether JSON columns keep a negative zero (PostgreSQL's `jsonb`
    /// keeps numbers as `numeric`, which has none: such values are refused
    /// with `InvalidInput`). Default true.
    fn json_negative_zero(&self) -> bool {
        true
    }

    /// Whether float columns hold `±inf` (MySQL's `DOUBLE` does not: such
    /// values are refused with `InvalidInput`, and filters treat infinite
    /// operands as beyond every stored value). Default true.
    fn infinite_floats(&self) -> bool {
        true
    }

    /// Why a string key cannot be stored (beyond NUL), e.g. too long for an
    /// indexed column. Default: every key can.
    fn key_problem(&self, key: &str) -> Option<String> {
        let _ = key;
        None
    }

    /// The literal for an always-true / always-false condition.
    fn literal(&self, value: bool) -> &'static str;

    /// The direction of a sort on a column, with nulls first ascending and
    /// last descending (the reference order). `nullable`: whether the column
    /// can hold nulls at all (a `NULLS FIRST` there may stop index use).
    fn order(&self, direction: Direction, nullable: bool) -> &'static str;

    /// Appends the row limit (a `?` parameter) to a query that ends with its
    /// `ORDER BY`: ` LIMIT ?` or ` OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY`.
    fn limit(&self, sql: &mut String);

    /// Renders `starts_with(column, prefix)` for a non-empty prefix, literal
    /// (no wildcards), case- and byte-exact, false for NULL columns; pushes
    /// its parameters. `qc` is the quoted column.
    fn prefix(&self, qc: &str, prefix: &str, sql: &mut String, params: &mut Vec<super::Param>);

    /// Renders `contains(column, needle)` for a non-empty needle, like
    /// [`Dialect::prefix`].
    fn contains(&self, qc: &str, needle: &str, sql: &mut String, params: &mut Vec<super::Param>);

    /// The parameter marker (with any cast or collation) of an operand
    /// compared with a column of `kind`. Default `?`.
    fn operand(&self, kind: FieldKind) -> &'static str {
        let _ = kind;
        "?"
    }

    /// The column as ordered and compared with `<`, `>`: default the quoted
    /// column. PostgreSQL compares JSON by its text.
    fn ordered(&self, c: &Column, qc: &str) -> String {
        let _ = c;
        qc.to_string()
    }

    /// The operand marker for `<`, `>` comparisons with a column of `kind`
    /// (see [`Dialect::ordered`]). Default [`Dialect::operand`].
    fn ordered_operand(&self, kind: FieldKind) -> &'static str {
        self.operand(kind)
    }

    /// A comparison `column op operand` written out in full where the
    /// database's own operator is not exact (SQL Server ignores trailing
    /// spaces and trailing zero bytes when comparing): the expression
    /// (never NULL, with `?` markers, including the column's `IS [NOT]
    /// NULL` part) and how many times the operand is bound. `In` lists use
    /// the `Eq` form per candidate. Default `None`: the shared
    /// `column op operand` form.
    fn exact_cmp(&self, c: &Column, qc: &str, op: CmpOp) -> Option<(String, usize)> {
        let _ = (c, qc, op);
        None
    }

    /// A second sort key written after a column in `ORDER BY`, in the same
    /// direction, where the database's order of the column ties values the
    /// reference tells apart (SQL Server: `DATALENGTH(col)`). Default none.
    fn order_tiebreak(&self, c: &Column, qc: &str) -> Option<String> {
        let _ = (c, qc);
        None
    }

    /// An index hint written after the table of a query whose order starts
    /// with the key, where the database's sort would tie keys the
    /// reference tells apart but its primary key index orders them exactly
    /// (MariaDB/MySQL: `FORCE INDEX (PRIMARY)`, so such a page is read in
    /// index order, never sorted). Default none.
    fn key_order_hint(&self) -> Option<&'static str> {
        None
    }

    /// The most parameters one statement may bind (PostgreSQL and MySQL
    /// 65 535, SQLite 32 766, SQL Server 2 100). A query needing more —
    /// an `in` list binds one per value — is refused with `InvalidInput`
    /// before it is sent. Default 65 535.
    fn max_params(&self) -> usize {
        65_535
    }

    /// How conditional writes learn their outcome.
    fn write_mode(&self) -> WriteMode;

    /// In [`WriteMode::Returning`]: the alias of the target table in
    /// `INSERT … ON CONFLICT DO UPDATE` (`Some("_pr_t")` on PostgreSQL, where
    /// the existing row must be qualified), or `None`.
    fn upsert_alias(&self) -> Option<&'static str> {
        None
    }

    /// How `get_many` passes its keys.
    fn key_list(&self) -> KeyList;

    /// `CREATE INDEX` on the expiry column, if missing (`index`, `qtable`
    /// and `qcolumn` are quoted). `None`: the index is created with the
    /// table (in [`Dialect::table_suffix`]) or checked separately.
    fn create_index(&self, index: &str, qtable: &str, qcolumn: &str) -> Option<String> {
        Some(format!(
            "CREATE INDEX IF NOT EXISTS {index} ON {qtable} ({qcolumn})"
        ))
    }

    /// An index on the expiry column declared inside `CREATE TABLE`
    /// (`qcolumn` quoted), for databases without `CREATE INDEX IF NOT
    /// EXISTS`; then [`Dialect::create_index`] returns `None`. Default none.
    fn inline_index(&self, qcolumn: &str) -> Option<String> {
        let _ = qcolumn;
        None
    }

    /// Text after the column definitions of `CREATE TABLE` (e.g. table
    /// options or an inline index). Default none. `qexpires` is the quoted
    /// expiry column, `index` the quoted index name.
    fn table_suffix(&self, index: &str, qexpires: &str) -> String {
        let _ = (index, qexpires);
        String::new()
    }

    /// A statement deleting at most `chunk` rows matching `cond` (which
    /// binds one parameter, `now`).
    fn purge(&self, qtable: &str, qkey: &str, cond: &str, chunk: u64) -> String {
        format!(
            "DELETE FROM {qtable} WHERE {qkey} IN (SELECT {qkey} FROM {qtable} WHERE {cond} LIMIT {chunk})"
        )
    }

    /// How a batch of unconditional puts becomes one `INSERT … ON CONFLICT
    /// DO UPDATE … RETURNING key, version` per chunk
    /// ([`WriteMode::Returning`] only). Default `None`: every put runs alone.
    fn bulk_upsert(&self) -> Option<BulkUpsert> {
        None
    }

    /// For [`BulkUpsert::Unnest`]: the SQL array type of a column of `kind`
    /// (e.g. `TEXT[]`). Default `None` (no arrays).
    fn array_type(&self, kind: FieldKind) -> Option<&'static str> {
        let _ = kind;
        None
    }

    /// In [`WriteMode::LockThenWrite`]: `SELECT {columns} FROM {qtable}
    /// WHERE {cond}` that locks the row (and the key's gap) until the
    /// transaction ends. Default `… FOR UPDATE`.
    fn lock_row(&self, columns: &str, qtable: &str, cond: &str) -> String {
        format!("SELECT {columns} FROM {qtable} WHERE {cond} FOR UPDATE")
    }

    /// In [`WriteMode::LockThenWrite`]: whether versioned apply locks all
    /// the keys of a batch with one [`Dialect::lock_row`] over `key IN
    /// (…)` per [`KeyList`] chunk, instead of one lock per change. Default
    /// `false`.
    fn lock_key_list(&self) -> bool {
        false
    }
}

/// Replaces each `?` outside quoted identifiers and literals with the
/// dialect's numbered marker.
///
/// ```
/// # #[cfg(feature = "postgres")] {
/// use polyrouter::backends::sql::number;
/// let d = polyrouter::backends::postgres::PostgresDialect;
/// assert_eq!(number(&d, "a = ? AND \"b?\" = '?' AND c = ?"), "a = $1 AND \"b?\" = '?' AND c = $2");
/// assert_eq!(number(&d, "[a]]?] = ?"), "[a]]?] = $1");
/// # }
/// ```
pub fn number(dialect: &dyn Dialect, sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        match (quote, ch) {
            // `]]` inside `[…]` is an escaped `]` (T-SQL), not the end.
            (Some(']'), ']') if chars.peek() == Some(&']') => {
                out.push(']');
                out.push(chars.next().unwrap_or(']'));
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '"' | '\'' | '`') => {
                quote = Some(ch);
                out.push(ch);
            }
            (None, '[') => {
                quote = Some(']');
                out.push(ch);
            }
            (None, '?') => {
                n += 1;
                dialect.placeholder(n, &mut out);
            }
            (None, c) => out.push(c),
        }
    }
    out
}
