//! MySQL's and MariaDB's SQL dialect.

use crate::backends::sql::{Dialect, KeyList, Param, WriteMode};
use crate::entity::FieldKind;
use crate::query::Direction;
use crate::store::namespace::{NameCase, TableNames};

/// The longest string key: the key column is `VARCHAR(255)` (an index
/// cannot cover unbounded text).
pub const MAX_KEY_CHARS: usize = 255;

/// MySQL / MariaDB: `` ` `` quoting, `?` parameters, lock-then-write
/// (`SELECT … FOR UPDATE`, then plain `INSERT`/`UPDATE`/`DELETE`: MariaDB
/// has no `UPDATE … RETURNING`, MySQL no `RETURNING` at all), text in a
/// binary *no-pad* collation (byte order, trailing spaces significant),
/// timestamps as `BIGINT` unix microseconds, UUIDs as `BINARY(16)`, JSON as
/// its compact text, nulls sorting first natively.
///
/// ```
/// use polyrouter::backends::sql::Dialect;
/// use polyrouter::backends::mysql::MySqlDialect;
/// let d = MySqlDialect::mariadb();
/// assert_eq!(d.quote("a`b"), "`a``b`");
/// assert!(d.column_type(polyrouter::FieldKind::String, false).contains("utf8mb4_nopad_bin"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MySqlDialect {
    /// The binary no-pad collation of text columns: `utf8mb4_nopad_bin`
    /// (MariaDB) or `utf8mb4_0900_bin` (MySQL 8).
    pub collation: &'static str,
}

impl MySqlDialect {
    /// For a MariaDB server.
    pub fn mariadb() -> Self {
        MySqlDialect {
            collation: "utf8mb4_nopad_bin",
        }
    }

    /// For a MySQL 8 server.
    pub fn mysql() -> Self {
        MySqlDialect {
            collation: "utf8mb4_0900_bin",
        }
    }

    /// For the server whose `SELECT VERSION()` is `version`.
    ///
    /// ```
    /// use polyrouter::backends::mysql::MySqlDialect;
    /// assert_eq!(MySqlDialect::for_version("10.11.6-MariaDB"), MySqlDialect::mariadb());
    /// assert_eq!(MySqlDialect::for_version("8.0.36"), MySqlDialect::mysql());
    /// ```
    pub fn for_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Self::mariadb()
        } else {
            Self::mysql()
        }
    }

    fn text(&self, base: &str) -> String {
        format!("{base} CHARACTER SET utf8mb4 COLLATE {}", self.collation)
    }
}

impl Dialect for MySqlDialect {
    fn name(&self) -> &'static str {
        "MySQL"
    }

    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }

    fn check_ident(&self, what: &str, ident: &str) -> Result<(), String> {
        if ident.is_empty() {
            return Err(format!("the {what} name is empty"));
        }
        if ident.contains('\0') {
            return Err(format!(
                "the {what} name {ident:?} contains a NUL character, which MySQL identifiers cannot hold"
            ));
        }
        if ident.chars().count() > 64 {
            return Err(format!(
                "the {what} name {ident:?} is longer than 64 characters, the most MySQL allows"
            ));
        }
        if ident.ends_with(' ') {
            return Err(format!(
                "the {what} name {ident:?} ends with a space, which MySQL does not allow"
            ));
        }
        Ok(())
    }

    fn case_insensitive_idents(&self) -> bool {
        // Column names are case-insensitive in MySQL.
        true
    }

    fn table_names(&self) -> TableNames {
        TableNames {
            case: NameCase::Insensitive,
            max_bytes: None,
            rule: "MySQL and MariaDB compare table names ignoring case on servers with `lower_case_table_names` 1 or 2 (Windows, macOS) and in their catalog everywhere, so polyrouter always ignores case",
        }
    }

    fn placeholder(&self, _n: usize, out: &mut String) {
        out.push('?');
    }

    fn column_type(&self, kind: FieldKind, key: bool) -> String {
        match kind {
            FieldKind::Int | FieldKind::Timestamp => "BIGINT".into(),
            FieldKind::Bool => "BOOLEAN".into(),
            FieldKind::Float => "DOUBLE".into(),
            FieldKind::String if key => self.text(&format!("VARCHAR({MAX_KEY_CHARS})")),
            FieldKind::String | FieldKind::Json => self.text("LONGTEXT"),
            FieldKind::Uuid => "BINARY(16)".into(),
            FieldKind::Bytes => "LONGBLOB".into(),
        }
    }

    fn serial_key(&self) -> &'static str {
        "BIGINT AUTO_INCREMENT PRIMARY KEY"
    }

    fn bigint_type(&self) -> &'static str {
        "BIGINT"
    }

    /// `data_type` is `information_schema.columns.DATA_TYPE`, then a space
    /// and the `COLLATION_NAME` for text columns.
    fn holds(&self, data_type: &str, kind: FieldKind) -> bool {
        let lower = data_type.to_ascii_lowercase();
        let mut parts = lower.split_whitespace();
        let t = parts.next().unwrap_or("");
        let collation = parts.next().unwrap_or("");
        // Byte order, and `'a' <> 'a '`: a binary no-pad collation.
        let exact_text = collation == "utf8mb4_nopad_bin" || collation == "utf8mb4_0900_bin";
        match kind {
            FieldKind::Int | FieldKind::Timestamp => t == "bigint",
            FieldKind::Bool => t == "tinyint",
            FieldKind::Float => t == "double",
            FieldKind::String | FieldKind::Json => {
                matches!(t, "longtext" | "mediumtext" | "text" | "varchar") && exact_text
            }
            FieldKind::Uuid => t == "binary",
            FieldKind::Bytes => matches!(t, "longblob" | "mediumblob" | "blob" | "varbinary"),
        }
    }

    fn text_holds_nul(&self) -> bool {
        true
    }

    fn infinite_floats(&self) -> bool {
        false
    }

    fn key_problem(&self, key: &str) -> Option<String> {
        (key.chars().count() > MAX_KEY_CHARS).then(|| {
            format!("longer than {MAX_KEY_CHARS} characters, the most a MySQL key column holds")
        })
    }

    fn literal(&self, value: bool) -> &'static str {
        if value { "TRUE" } else { "FALSE" }
    }

    fn order(&self, direction: Direction, _nullable: bool) -> &'static str {
        // MySQL sorts NULL first ascending and last descending: the
        // reference order.
        match direction {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        }
    }

    fn limit(&self, sql: &mut String) {
        sql.push_str(" LIMIT ?");
    }

    fn prefix(&self, qc: &str, prefix: &str, sql: &mut String, params: &mut Vec<Param<'_>>) {
        // Bytes, not characters or a LIKE pattern: literal and exact.
        sql.push_str(&format!(
            "({qc} IS NOT NULL AND LEFT(CAST({qc} AS BINARY), ?) = ?)"
        ));
        params.push(Param::Int(prefix.len() as i64));
        params.push(Param::Bytes(prefix.as_bytes().to_vec().into()));
    }

    fn contains(&self, qc: &str, needle: &str, sql: &mut String, params: &mut Vec<Param<'_>>) {
        sql.push_str(&format!(
            "({qc} IS NOT NULL AND LOCATE(?, CAST({qc} AS BINARY)) > 0)"
        ));
        params.push(Param::Bytes(needle.as_bytes().to_vec().into()));
    }

    // Text is compared bare: the binary no-pad collations compare code
    // points, then lengths — exactly the reference's byte order (`'ab' <
    // 'ab\0' < 'ab '`), and a range on the key uses its index. Their sort
    // keys are padded with zero bytes, though, so a sort (filesort) ties
    // `'ab'` and `'ab\0'`: text columns get a byte-order tie-break, and a
    // query ordered by the key is read in primary-key order, never sorted.
    fn order_tiebreak(&self, c: &crate::backends::sql::Column, qc: &str) -> Option<String> {
        matches!(c.kind, FieldKind::String | FieldKind::Json)
            .then(|| format!("CAST({qc} AS BINARY)"))
    }

    fn key_order_hint(&self) -> Option<&'static str> {
        Some("FORCE INDEX (PRIMARY)")
    }

    fn write_mode(&self) -> WriteMode {
        WriteMode::LockThenWrite
    }

    fn key_list(&self) -> KeyList {
        KeyList::InList { chunk: 10_000 }
    }

    fn lock_key_list(&self) -> bool {
        true
    }

    fn create_index(&self, _index: &str, _qtable: &str, _qcolumn: &str) -> Option<String> {
        None // declared inside CREATE TABLE (MySQL has no CREATE INDEX IF NOT EXISTS)
    }

    fn inline_index(&self, qcolumn: &str) -> Option<String> {
        Some(format!("INDEX `_pr_expires_at` ({qcolumn})"))
    }

    fn table_suffix(&self, _index: &str, _qexpires: &str) -> String {
        format!(
            " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={}",
            self.collation
        )
    }

    fn purge(&self, qtable: &str, _qkey: &str, cond: &str, chunk: u64) -> String {
        // MySQL allows no LIMIT in an IN subquery, but DELETE … LIMIT.
        format!("DELETE FROM {qtable} WHERE {cond} LIMIT {chunk}")
    }
}
