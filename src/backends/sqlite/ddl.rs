//! Checks an existing table against an entity's schema.

use super::sql::{EXPIRES_COL, RESERVED_PREFIX, TableSql, VERSION_COL, quote, sql_type};
use crate::entity::FieldKind;

/// One row of `PRAGMA table_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Declared type, as written in the DDL.
    pub decl_type: String,
    /// Declared `NOT NULL`.
    pub notnull: bool,
    /// Default value expression, if any.
    pub default: Option<String>,
    /// 1-based position in the primary key, 0 if not part of it.
    pub pk: i64,
}

/// SQLite's type affinity of a declared type (<https://sqlite.org/datatype3.html>, 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

fn affinity(decl: &str) -> Affinity {
    let t = decl.to_ascii_uppercase();
    if t.contains("INT") {
        Affinity::Integer
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        Affinity::Text
    } else if t.contains("BLOB") || t.trim().is_empty() {
        Affinity::Blob
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        Affinity::Real
    } else {
        Affinity::Numeric
    }
}

/// Whether a column of this affinity stores values of `kind` unchanged.
fn holds(a: Affinity, kind: FieldKind) -> bool {
    use Affinity::*;
    match kind {
        // REAL affinity would turn large integers into lossy floats.
        FieldKind::Int | FieldKind::Bool | FieldKind::Timestamp => matches!(a, Integer | Numeric),
        FieldKind::Float => matches!(a, Real | Numeric | Integer),
        // NUMERIC/INTEGER/REAL affinity would turn "123" into a number.
        FieldKind::String | FieldKind::Uuid | FieldKind::Json => matches!(a, Text | Blob),
        FieldKind::Bytes => matches!(a, Blob | Text),
    }
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Checks `info` (the existing table's columns) can hold the entity; an
/// error names the store, table and column and says what to do.
pub(super) fn check_table(store: &str, t: &TableSql, info: &[ColumnInfo]) -> Result<(), String> {
    let at = |col: &str| format!("store `{store}`: table `{}`, column `{col}`", t.table);
    let qt = &t.qtable;
    let find = |name: &str| info.iter().find(|c| same(&c.name, name));
    for (i, col) in t.columns.iter().enumerate() {
        let want = sql_type(col.kind);
        let Some(have) = find(col.name) else {
            let null = if col.nullable {
                ""
            } else {
                " NOT NULL DEFAULT <value>"
            };
            return Err(format!(
                "{}: the column is missing; add it with `ALTER TABLE {qt} ADD COLUMN {} {want}{null}`, or set `table` to a new table name so polyrouter creates it",
                at(col.name),
                quote(col.name)
            ));
        };
        if !holds(affinity(&have.decl_type), col.kind) {
            return Err(format!(
                "{}: declared type `{}` cannot hold {} values unchanged (polyrouter uses {want}); migrate the column to {want}, or set `table` to a new table name",
                at(&have.name),
                have.decl_type,
                col.kind.name()
            ));
        }
        if i != t.key_index && col.nullable && have.notnull {
            return Err(format!(
                "{}: the column is NOT NULL but field `{}` is optional; make the column nullable, or make the field required",
                at(&have.name),
                col.name
            ));
        }
    }
    let key = t.key_column().name;
    let mut pk: Vec<&ColumnInfo> = info.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);
    if pk.len() != 1 || !same(&pk[0].name, key) {
        let have: Vec<&str> = pk.iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "{}: the table's primary key is ({}) but the entity's key is `{key}`; recreate the table with PRIMARY KEY ({}), or set `table` to a new table name",
            at(key),
            have.join(", "),
            quote(key)
        ));
    }
    for (name, nullable) in [(VERSION_COL, false), (EXPIRES_COL, true)] {
        let add = if nullable {
            "INTEGER"
        } else {
            "INTEGER NOT NULL DEFAULT 1"
        };
        let Some(have) = find(name) else {
            return Err(format!(
                "{}: the column polyrouter keeps its bookkeeping in is missing; add it with `ALTER TABLE {qt} ADD COLUMN {} {add}`",
                at(name),
                quote(name)
            ));
        };
        if !matches!(
            affinity(&have.decl_type),
            Affinity::Integer | Affinity::Numeric
        ) || (nullable && have.notnull)
        {
            return Err(format!(
                "{}: declared `{}{}`, but polyrouter needs `{add}`; migrate the column",
                at(&have.name),
                have.decl_type,
                if have.notnull { " NOT NULL" } else { "" }
            ));
        }
    }
    for c in info {
        let known = t.columns.iter().any(|s| same(s.name, &c.name))
            || (c.name.len() >= RESERVED_PREFIX.len()
                && same(&c.name[..RESERVED_PREFIX.len()], RESERVED_PREFIX));
        if !known && c.notnull && c.default.is_none() && c.pk == 0 {
            return Err(format!(
                "{}: the entity has no such field and the column is NOT NULL without a default, so inserts would fail; give it a default, make it nullable, or drop it",
                at(&c.name)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FieldDef, FieldType, KeyKind, Schema};

    static FIELDS: [FieldDef; 3] = [
        FieldDef {
            name: "id",
            ty: FieldType::required(FieldKind::Int),
        },
        FieldDef {
            name: "name",
            ty: FieldType::required(FieldKind::String),
        },
        FieldDef {
            name: "score",
            ty: FieldType {
                kind: FieldKind::Float,
                nullable: true,
            },
        },
    ];
    static SCHEMA: Schema = Schema {
        name: "e",
        key: "id",
        key_kind: KeyKind::Int,
        partition_key: None,
        version: None,
        fields: &FIELDS,
    };

    fn col(name: &str, ty: &str, notnull: bool, pk: i64) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            decl_type: ty.into(),
            notnull,
            default: None,
            pk,
        }
    }

    fn good() -> Vec<ColumnInfo> {
        vec![
            col("id", "INTEGER", true, 1),
            col("name", "TEXT", true, 0),
            col("score", "REAL", false, 0),
            col("_pr_version", "INTEGER", true, 0),
            col("_pr_expires_at", "INTEGER", false, 0),
        ]
    }

    fn check(info: Vec<ColumnInfo>) -> Result<(), String> {
        check_table("db", &TableSql::new(&SCHEMA, "tbl").unwrap(), &info)
    }

    #[test]
    fn affinities() {
        assert_eq!(affinity("BIGINT"), Affinity::Integer);
        assert_eq!(affinity("varchar(20)"), Affinity::Text);
        assert_eq!(affinity(""), Affinity::Blob);
        assert_eq!(affinity("DOUBLE PRECISION"), Affinity::Real);
        assert_eq!(affinity("DECIMAL(10,2)"), Affinity::Numeric);
    }

    #[test]
    fn compatible_tables_pass() {
        check(good()).unwrap();
        let mut t = good();
        t[1] = col("NAME", "varchar(10)", false, 0); // nullable column for a required field is fine
        t.push(ColumnInfo {
            default: Some("0".into()),
            ..col("extra", "INTEGER", true, 0)
        });
        t.push(col("other", "TEXT", false, 0));
        check(t).unwrap();
    }

    #[test]
    fn incompatible_tables_name_the_column() {
        let mut t = good();
        t.remove(1);
        let e = check(t).unwrap_err();
        assert!(
            e.contains("store `db`")
                && e.contains("table `tbl`")
                && e.contains("column `name`")
                && e.contains("ALTER TABLE"),
            "{e}"
        );

        let mut t = good();
        t[1] = col("name", "INTEGER", true, 0);
        let e = check(t).unwrap_err();
        assert!(
            e.contains("column `name`") && e.contains("`INTEGER`"),
            "{e}"
        );

        let mut t = good();
        t[2] = col("score", "REAL", true, 0);
        assert!(
            check(t)
                .unwrap_err()
                .contains("NOT NULL but field `score` is optional")
        );

        let mut t = good();
        t[0].pk = 0;
        t[1].pk = 1;
        assert!(check(t).unwrap_err().contains("primary key is (name)"));

        let mut t = good();
        t[1].pk = 2;
        assert!(check(t).unwrap_err().contains("primary key is (id, name)"));

        let mut t = good();
        t.push(col("extra", "TEXT", true, 0));
        assert!(check(t).unwrap_err().contains("column `extra`"));

        let mut t = good();
        t.remove(3);
        assert!(check(t).unwrap_err().contains("column `_pr_version`"));

        let mut t = good();
        t[4].notnull = true;
        assert!(check(t).unwrap_err().contains("column `_pr_expires_at`"));
    }
}
