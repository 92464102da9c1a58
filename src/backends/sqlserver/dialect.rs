//! SQL Server's (T-SQL) dialect.

use crate::backends::sql::{Column, Dialect, KeyList, Param, WriteMode};
use crate::entity::FieldKind;
use crate::query::{CmpOp, Direction};
use crate::store::namespace::{NameCase, TableNames};

/// The binary collation of every text column: ordering and equality by
/// UTF-16 code unit, case- and accent-sensitive, like the reference (which
/// differs only for characters above U+FFFF against U+E000..U+FFFF).
pub const BINARY_COLLATION: &str = "Latin1_General_100_BIN2";

/// The most UTF-16 code units of a string key (`NVARCHAR(450)`: 900 bytes,
/// SQL Server's index key limit).
pub const MAX_KEY_UNITS: usize = 450;

/// The most keys of one `get_many` statement (SQL Server takes at most
/// 2100 parameters; one more is `now`).
pub const GET_MANY_CHUNK: usize = 2000;

/// SQL Server / Azure SQL: `[…]` quoting, `@Pn` parameters, lock-then-write
/// (`WITH (UPDLOCK, HOLDLOCK)`) conditional writes, `OFFSET … FETCH`
/// limits, text in a binary collation, timestamps as `BIGINT` unix
/// microseconds and UUIDs as `BINARY(16)` (both order like the reference;
/// `UNIQUEIDENTIFIER` does not), JSON as compact `NVARCHAR(MAX)` text.
/// Tables live in `schema` when set (`[schema].[table]`), else in the
/// login's default schema.
///
/// ```
/// use polyrouter::backends::sql::Dialect;
/// use polyrouter::backends::sqlserver::SqlServerDialect;
/// let d = SqlServerDialect::new(Some("app".into()));
/// assert_eq!(d.quote("a]b"), "[a]]b]");
/// assert_eq!(d.quote_table("t"), "[app].[t]");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SqlServerDialect {
    schema: Option<String>,
}

impl SqlServerDialect {
    /// The dialect for tables in `schema` (`None`: the login's default).
    pub fn new(schema: Option<String>) -> Self {
        SqlServerDialect { schema }
    }

    /// The schema tables live in, if configured.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    fn text(&self, max: &str) -> String {
        format!("NVARCHAR({max}) COLLATE {BINARY_COLLATION}")
    }
}

/// The `? COLLATE …` operand of text comparisons.
const TEXT_OPERAND: &str = "? COLLATE Latin1_General_100_BIN2";

impl Dialect for SqlServerDialect {
    fn name(&self) -> &'static str {
        "SQL Server"
    }

    fn kind(&self) -> &'static str {
        "sqlserver"
    }

    fn quote(&self, ident: &str) -> String {
        format!("[{}]", ident.replace(']', "]]"))
    }

    fn quote_table(&self, table: &str) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(table)),
            None => self.quote(table),
        }
    }

    fn check_ident(&self, what: &str, ident: &str) -> Result<(), String> {
        if ident.is_empty() {
            return Err(format!("the {what} name is empty"));
        }
        if ident.contains('\0') {
            return Err(format!(
                "the {what} name {ident:?} contains a NUL character, which SQL Server identifiers cannot hold"
            ));
        }
        if ident.encode_utf16().count() > 128 {
            return Err(format!(
                "the {what} name {ident:?} is longer than 128 characters, the most SQL Server identifiers hold"
            ));
        }
        Ok(())
    }

    fn case_insensitive_idents(&self) -> bool {
        // Identifier case-sensitivity follows the database collation; the
        // usual ones (and Azure SQL's default) ignore case.
        true
    }

    fn table_names(&self) -> TableNames {
        TableNames {
            case: NameCase::Insensitive,
            max_bytes: None,
            rule: "SQL Server compares names ignoring case under its usual collations (and Azure SQL's default), so polyrouter always ignores case",
        }
    }

    fn placeholder(&self, n: usize, out: &mut String) {
        out.push_str("@P");
        out.push_str(&n.to_string());
    }

    fn column_type(&self, kind: FieldKind, key: bool) -> String {
        match kind {
            FieldKind::Int | FieldKind::Timestamp => "BIGINT".into(),
            FieldKind::Bool => "BIT".into(),
            FieldKind::Float => "FLOAT".into(),
            FieldKind::String if key => self.text(&MAX_KEY_UNITS.to_string()),
            FieldKind::String | FieldKind::Json => self.text("MAX"),
            FieldKind::Uuid => "BINARY(16)".into(),
            FieldKind::Bytes => "VARBINARY(MAX)".into(),
        }
    }

    fn serial_key(&self) -> &'static str {
        "BIGINT IDENTITY(1,1) PRIMARY KEY"
    }

    fn bigint_type(&self) -> &'static str {
        "BIGINT"
    }

    /// `data_type` as the backend reads it from `INFORMATION_SCHEMA.COLUMNS`:
    /// `DATA_TYPE(CHARACTER_MAXIMUM_LENGTH) COLLATE COLLATION_NAME`, e.g.
    /// `nvarchar(max) COLLATE Latin1_General_100_BIN2` (see
    /// `tsql::catalog_type`).
    fn holds(&self, data_type: &str, kind: FieldKind) -> bool {
        let t = data_type.to_ascii_lowercase();
        let (ty, collation) = match t.split_once(" collate ") {
            Some((ty, c)) => (ty.trim(), Some(c.trim())),
            None => (t.trim(), None),
        };
        let binary_text =
            || ty.starts_with("nvarchar(") && collation.is_some_and(|c| c.ends_with("_bin2"));
        match kind {
            FieldKind::Int | FieldKind::Timestamp => ty == "bigint",
            FieldKind::Bool => ty == "bit",
            FieldKind::Float => ty == "float" || ty == "float(53)",
            FieldKind::String => binary_text(),
            FieldKind::Json => ty == "nvarchar(max)" && binary_text(),
            FieldKind::Uuid => ty == "binary(16)",
            FieldKind::Bytes => ty == "varbinary(max)",
        }
    }

    fn max_params(&self) -> usize {
        // A request carries at most 2100 parameters.
        2_100
    }

    fn text_holds_nul(&self) -> bool {
        true
    }

    fn key_problem(&self, key: &str) -> Option<String> {
        if key.encode_utf16().count() > MAX_KEY_UNITS {
            return Some(format!(
                "longer than {MAX_KEY_UNITS} UTF-16 code units, the most a SQL Server key column (NVARCHAR({MAX_KEY_UNITS})) indexes"
            ));
        }
        if key.ends_with(' ') {
            return Some(
                "ends with a space; SQL Server compares strings ignoring trailing spaces, so it could not be told apart from the key without them"
                    .into(),
            );
        }
        None
    }

    fn literal(&self, value: bool) -> &'static str {
        if value { "(1 = 1)" } else { "(1 = 0)" }
    }

    fn order(&self, direction: Direction, _nullable: bool) -> &'static str {
        // SQL Server sorts NULL first ascending and last descending already.
        match direction {
            Direction::Asc => "ASC",
            Direction::Desc => "DESC",
        }
    }

    fn limit(&self, sql: &mut String) {
        sql.push_str(" OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY");
    }

    fn prefix(&self, qc: &str, prefix: &str, sql: &mut String, params: &mut Vec<Param<'_>>) {
        // Literal and exact: the column's first len(prefix) code units equal
        // the prefix, and the column is at least that long (`=` pads
        // trailing spaces, so the length check keeps `a` from starting
        // with `a `). DATALENGTH counts bytes (2 per code unit); LEN would
        // ignore trailing spaces.
        sql.push_str(&format!(
            "({qc} IS NOT NULL AND DATALENGTH({qc}) >= DATALENGTH(?) AND SUBSTRING({qc}, 1, DATALENGTH(?) / 2) = {TEXT_OPERAND})"
        ));
        for _ in 0..3 {
            params.push(Param::Text(prefix.to_string().into()));
        }
    }

    fn contains(&self, qc: &str, needle: &str, sql: &mut String, params: &mut Vec<Param<'_>>) {
        // CHARINDEX is literal (no wildcards); the binary collation makes it
        // case- and byte-exact.
        sql.push_str(&format!(
            "({qc} IS NOT NULL AND CHARINDEX({TEXT_OPERAND}, {qc}) > 0)"
        ));
        params.push(Param::Text(needle.to_string().into()));
    }

    fn operand(&self, kind: FieldKind) -> &'static str {
        match kind {
            FieldKind::String | FieldKind::Json => TEXT_OPERAND,
            _ => "?",
        }
    }

    fn exact_cmp(&self, c: &Column, qc: &str, op: CmpOp) -> Option<(String, usize)> {
        // `=` and `<` pad the shorter value with spaces (text) or zero
        // bytes (binary): values equal that way differ only in those
        // trailing characters, and the longer one is the greater.
        let p = match c.kind {
            FieldKind::String | FieldKind::Json => TEXT_OPERAND,
            FieldKind::Bytes => "?",
            _ => return None,
        };
        let len = format!("DATALENGTH({qc})");
        Some(match op {
            CmpOp::Eq => (
                format!("({qc} IS NOT NULL AND {qc} = {p} AND {len} = DATALENGTH(?))"),
                2,
            ),
            CmpOp::Ne => (
                format!("({qc} IS NULL OR {qc} <> {p} OR {len} <> DATALENGTH(?))"),
                2,
            ),
            CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
                let strict = if matches!(op, CmpOp::Lt | CmpOp::Le) {
                    "<"
                } else {
                    ">"
                };
                (
                    format!(
                        "({qc} IS NOT NULL AND ({qc} {strict} {p} OR ({qc} = {p} AND {len} {} DATALENGTH(?))))",
                        op.symbol()
                    ),
                    3,
                )
            }
        })
    }

    fn order_tiebreak(&self, c: &Column, qc: &str) -> Option<String> {
        matches!(
            c.kind,
            FieldKind::String | FieldKind::Json | FieldKind::Bytes
        )
        .then(|| format!("DATALENGTH({qc})"))
    }

    fn write_mode(&self) -> WriteMode {
        WriteMode::LockThenWrite
    }

    fn key_list(&self) -> KeyList {
        KeyList::InList {
            chunk: GET_MANY_CHUNK,
        }
    }

    fn create_index(&self, index: &str, qtable: &str, qcolumn: &str) -> Option<String> {
        // T-SQL has no `CREATE INDEX IF NOT EXISTS`; names go in N'…'
        // literals with `'` doubled (identifiers, never values).
        let lit = |s: &str| format!("N'{}'", s.replace('\'', "''"));
        Some(format!(
            "IF INDEXPROPERTY(OBJECT_ID({}), {}, 'IndexID') IS NULL CREATE INDEX {index} ON {qtable} ({qcolumn})",
            lit(qtable),
            lit(&unquote(index))
        ))
    }

    fn purge(&self, qtable: &str, _qkey: &str, cond: &str, chunk: u64) -> String {
        format!("DELETE TOP ({chunk}) FROM {qtable} WHERE {cond}")
    }

    fn lock_row(&self, columns: &str, qtable: &str, cond: &str) -> String {
        // UPDLOCK: one writer per key; HOLDLOCK (serializable): the key's
        // range stays locked when the row is absent, so no concurrent
        // insert slips in before the transaction ends.
        format!("SELECT {columns} FROM {qtable} WITH (UPDLOCK, HOLDLOCK) WHERE {cond}")
    }
}

/// The name inside a `[…]` quoted identifier.
fn unquote(q: &str) -> String {
    q.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(q)
        .replace("]]", "]")
}
