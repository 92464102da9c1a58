//! Checks an existing table against an entity's schema.

use super::sql::{EXPIRES_COL, RESERVED_PREFIX, TableSql, VERSION_COL, quote, sql_type};
use crate::entity::FieldKind;

/// One row of `information_schema.columns`, plus primary-key membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// `data_type`, e.g. `bigint`, `timestamp with time zone`.
    pub data_type: String,
    /// May hold `NULL`.
    pub nullable: bool,
    /// Default value expression, if any.
    pub default: Option<String>,
    /// Part of the primary key.
    pub pk: bool,
}

/// Whether a column of this `data_type` holds values of `kind` unchanged.
fn holds(data_type: &str, kind: FieldKind) -> bool {
    let t = data_type.to_ascii_lowercase();
    match kind {
        FieldKind::Int => t == "bigint",
        FieldKind::Bool => t == "boolean",
        FieldKind::Timestamp => t == "timestamp with time zone",
        FieldKind::Float => t == "double precision",
        FieldKind::String => t == "text" || t == "character varying",
        FieldKind::Bytes => t == "bytea",
        FieldKind::Uuid => t == "uuid",
        FieldKind::Json => t == "jsonb",
    }
}

/// Checks `info` (the existing table's columns) can hold the entity; an
/// error names the store, table and column and says what to do.
pub(super) fn check_table(store: &str, t: &TableSql, info: &[ColumnInfo]) -> Result<(), String> {
    let at = |col: &str| format!("store `{store}`: table `{}`, column `{col}`", t.table);
    let qt = &t.qtable;
    let find = |name: &str| info.iter().find(|c| c.name == name);
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
        if !holds(&have.data_type, col.kind) {
            return Err(format!(
                "{}: type `{}` cannot hold {} values unchanged (polyrouter uses {want}); migrate the column to {want}, or set `table` to a new table name",
                at(&have.name),
                have.data_type,
                col.kind.name()
            ));
        }
        if i != t.key_index && col.nullable && !have.nullable {
            return Err(format!(
                "{}: the column is NOT NULL but field `{}` is optional; make the column nullable, or make the field required",
                at(&have.name),
                col.name
            ));
        }
    }
    let key = t.key_column().name;
    let pk: Vec<&ColumnInfo> = info.iter().filter(|c| c.pk).collect();
    if pk.len() != 1 || pk[0].name != key {
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
            "BIGINT"
        } else {
            "BIGINT NOT NULL DEFAULT 1"
        };
        let Some(have) = find(name) else {
            return Err(format!(
                "{}: the column polyrouter keeps its bookkeeping in is missing; add it with `ALTER TABLE {qt} ADD COLUMN {} {add}`",
                at(name),
                quote(name)
            ));
        };
        if have.data_type != "bigint" || (nullable && !have.nullable) {
            return Err(format!(
                "{}: declared `{}{}`, but polyrouter needs `{add}`; migrate the column",
                at(&have.name),
                have.data_type,
                if have.nullable { "" } else { " NOT NULL" }
            ));
        }
    }
    for c in info {
        let known =
            t.columns.iter().any(|s| s.name == c.name) || c.name.starts_with(RESERVED_PREFIX);
        if !known && !c.nullable && c.default.is_none() && !c.pk {
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

    static FIELDS: [FieldDef; 2] = [
        FieldDef {
            name: "id",
            ty: FieldType::required(FieldKind::Int),
        },
        FieldDef {
            name: "name",
            ty: FieldType::required(FieldKind::String),
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

    fn col(name: &str, ty: &str, nullable: bool, pk: bool) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            data_type: ty.into(),
            nullable,
            default: None,
            pk,
        }
    }

    fn good() -> Vec<ColumnInfo> {
        vec![
            col("id", "bigint", false, true),
            col("name", "text", false, false),
            col("_pr_version", "bigint", false, false),
            col("_pr_expires_at", "bigint", true, false),
        ]
    }

    fn check(info: Vec<ColumnInfo>) -> Result<(), String> {
        check_table("db", &TableSql::new(&SCHEMA, "tbl").unwrap(), &info)
    }

    #[test]
    fn checks_columns() {
        check(good()).unwrap();
        let mut t = good();
        t[1] = col("name", "integer", false, false);
        let e = check(t).unwrap_err();
        assert!(
            e.contains("store `db`") && e.contains("table `tbl`") && e.contains("column `name`"),
            "{e}"
        );
        let mut t = good();
        t.remove(1);
        assert!(check(t).unwrap_err().contains("ALTER TABLE"));
        let mut t = good();
        t[0].pk = false;
        assert!(check(t).unwrap_err().contains("primary key"));
    }
}
