//! Rows back into records.

use chrono::DateTime;
use uuid::Uuid;

use super::table::{Column, TableSql};
use crate::record::FieldName;
use crate::{Key, Record, Value};

/// A row selected with [`TableSql::select_list`] as a record: fields in
/// schema order, the key from the key column, the version from
/// `_pr_version`. `column(i, col)` reads column `i` as a value of the
/// column's kind (`Value::Null` for SQL `NULL`); `version(i)` reads the
/// version at index `i` (after the data columns).
pub fn decode_record(
    t: &TableSql,
    mut column: impl FnMut(usize, &Column) -> Result<Value, String>,
    version: impl FnOnce(usize) -> Result<i64, String>,
) -> Result<Record, String> {
    let mut fields = Vec::with_capacity(t.columns.len());
    let mut key = None;
    for (i, col) in t.columns.iter().enumerate() {
        let v = column(i, col)?;
        if i == t.key_index {
            key = Some(
                Key::from_value(&v).ok_or_else(|| format!("key column `{}` is null", col.name))?,
            );
        }
        if col.is_field {
            fields.push((FieldName::Borrowed(col.name), v));
        }
    }
    let version = version(t.columns.len()).map_err(|e| format!("column `_pr_version`: {e}"))?;
    Ok(Record {
        key: key.ok_or("the row has no key column")?,
        version: u64::try_from(version).unwrap_or(0),
        fields,
    })
}

/// A timestamp stored as unix microseconds.
pub fn timestamp_from_micros(column: &str, m: i64) -> Result<Value, String> {
    DateTime::from_timestamp_micros(m)
        .map(Value::Timestamp)
        .ok_or_else(|| {
            format!("column `{column}` holds {m}, which is not a timestamp in microseconds")
        })
}

/// A UUID stored as text.
pub fn uuid_from_text(column: &str, s: &str) -> Result<Value, String> {
    Uuid::parse_str(s)
        .map(Value::Uuid)
        .map_err(|e| format!("column `{column}` holds a value that is not a UUID: {e}"))
}

/// JSON stored as text.
pub fn json_from_text(column: &str, s: &str) -> Result<Value, String> {
    serde_json::from_str(s)
        .map(Value::Json)
        .map_err(|e| format!("column `{column}` holds invalid JSON: {e}"))
}

/// A UUID as stored in text: lowercase, hyphenated (ordered like the UUID).
pub fn uuid_text(u: &Uuid) -> String {
    u.hyphenated().to_string()
}

/// Rows of `(key, integer)` (what a set-based versioned apply or a bulk
/// upsert returns) as pairs; `read(row)` gives the key (`None`:
/// unreadable) and the integer. An unreadable key is a backend error
/// naming `store` and `entity`, and `what` returned it.
///
/// ```
/// use polyrouter::Key;
/// let rows = [("a", 3i64), ("b", 5)];
/// let pairs = polyrouter::backends::sql::key_ints(&rows, "s", "e", "a versioned apply", |r| {
///     Ok((Some(Key::from(r.0)), r.1))
/// });
/// assert_eq!(pairs.unwrap(), vec![(Key::from("a"), 3), (Key::from("b"), 5)]);
/// let unreadable = polyrouter::backends::sql::key_ints(&rows, "s", "e", "the bulk upsert", |r| Ok((None, r.1)));
/// assert!(unreadable.unwrap_err().to_string().contains("the bulk upsert returned an unreadable key"));
/// ```
pub fn key_ints<R>(
    rows: &[R],
    store: &str,
    entity: &str,
    what: &str,
    mut read: impl FnMut(&R) -> crate::Result<(Option<Key>, i64)>,
) -> crate::Result<Vec<(Key, i64)>> {
    rows.iter()
        .map(|r| match read(r)? {
            (Some(k), n) => Ok((k, n)),
            (None, _) => Err(crate::Error::backend(
                store,
                entity,
                super::Message(format!("{what} returned an unreadable key")),
            )),
        })
        .collect()
}

/// [`key_ints`] over the rows of a sqlx backend: column 0 read by the
/// backend's `column_value` as a key of the key column `key`, column 1 as
/// a 64-bit integer (its error mapped by `map_err`).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) fn sqlx_key_ints<R>(
    rows: &[R],
    (store, entity, what): (&str, &str, &str),
    key: &Column,
    column_value: impl Fn(&R, usize, &Column) -> Result<Value, String>,
    mut map_err: impl FnMut(sqlx::Error) -> crate::Error,
) -> crate::Result<Vec<(Key, i64)>>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    key_ints(rows, store, entity, what, |r| {
        let k = column_value(r, 0, key)
            .ok()
            .and_then(|v| Key::from_value(&v));
        let n = r.try_get::<i64, _>(1).map_err(&mut map_err)?;
        Ok((k, n))
    })
}
