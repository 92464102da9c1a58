//! Checks an existing table against an entity's schema.

use super::table::{EXPIRES_COL, RESERVED_PREFIX, TableSql, VERSION_COL};
use crate::entity::FieldKind;

/// One column of an existing table, as the database's catalog describes it.
///
/// ```
/// use polyrouter::backends::sql::ColumnInfo;
/// let c = ColumnInfo { name: "id".into(), data_type: "bigint".into(), nullable: false, default: None, pk: 1 };
/// assert!(c.pk > 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// The declared type as the catalog reports it (checked with
    /// [`Dialect::holds`](super::Dialect::holds)).
    pub data_type: String,
    /// May hold `NULL`.
    pub nullable: bool,
    /// Default value expression, if any.
    pub default: Option<String>,
    /// 1-based position in the primary key, 0 if not part of it.
    pub pk: u32,
}

/// Checks `info` (the existing table's columns) can hold the entity; an
/// error names the store, table and column and says what to do.
pub fn check_table(store: &str, t: &TableSql, info: &[ColumnInfo]) -> Result<(), String> {
    let d = &*t.dialect;
    let same = |a: &str, b: &str| {
        if d.case_insensitive_idents() {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    let at = |col: &str| format!("store `{store}`: table `{}`, column `{col}`", t.table);
    let qt = &t.qtable;
    let find = |name: &str| info.iter().find(|c| same(&c.name, name));
    for (i, col) in t.columns.iter().enumerate() {
        let want = d.column_type(col.kind, i == t.key_index);
        let Some(have) = find(col.name) else {
            let null = if col.nullable {
                ""
            } else {
                " NOT NULL DEFAULT <value>"
            };
            return Err(format!(
                "{}: the column is missing; add it with `ALTER TABLE {qt} ADD COLUMN {} {want}{null}`, or set `table` to a new table name so polyrouter creates it",
                at(col.name),
                d.quote(col.name)
            ));
        };
        if !d.holds(&have.data_type, col.kind) {
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
    let mut pk: Vec<&ColumnInfo> = info.iter().filter(|c| c.pk > 0).collect();
    pk.sort_by_key(|c| c.pk);
    if pk.len() != 1 || !same(&pk[0].name, key) {
        let have: Vec<&str> = pk.iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "{}: the table's primary key is ({}) but the entity's key is `{key}`; recreate the table with PRIMARY KEY ({}), or set `table` to a new table name",
            at(key),
            have.join(", "),
            d.quote(key)
        ));
    }
    let big = d.bigint_type();
    for (name, nullable) in [(VERSION_COL, false), (EXPIRES_COL, true)] {
        let add = if nullable {
            big.to_string()
        } else {
            format!("{big} NOT NULL DEFAULT 1")
        };
        let Some(have) = find(name) else {
            return Err(format!(
                "{}: the column polyrouter keeps its bookkeeping in is missing; add it with `ALTER TABLE {qt} ADD COLUMN {} {add}`",
                at(name),
                d.quote(name)
            ));
        };
        if !d.holds(&have.data_type, FieldKind::Int) || (nullable && !have.nullable) {
            return Err(format!(
                "{}: declared `{}{}`, but polyrouter needs `{add}`; migrate the column",
                at(&have.name),
                have.data_type,
                if have.nullable { "" } else { " NOT NULL" }
            ));
        }
    }
    for c in info {
        let known = t.columns.iter().any(|s| same(s.name, &c.name))
            || c.name
                .get(..RESERVED_PREFIX.len())
                .is_some_and(|p| same(p, RESERVED_PREFIX));
        if !known && !c.nullable && c.default.is_none() && c.pk == 0 {
            return Err(format!(
                "{}: the entity has no such field and the column is NOT NULL without a default, so inserts would fail; give it a default, make it nullable, or drop it",
                at(&c.name)
            ));
        }
    }
    Ok(())
}
