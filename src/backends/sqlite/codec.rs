//! Binding [`Param`]s in SQLite's storage classes, and reading typed
//! columns back.

use std::borrow::Cow;

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Decode, Row, Sqlite, ValueRef};

use crate::Value;
use crate::backends::sql::{
    Column, Param, json_from_text, timestamp_from_micros, uuid_from_text, uuid_text,
};
use crate::entity::FieldKind;

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

/// A parameter in SQLite's storage classes (text and blobs borrowed from
/// the record where they come from one).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Stored<'a> {
    /// `NULL`.
    Null,
    /// `INTEGER` (also booleans and timestamps in microseconds).
    Int(i64),
    /// `REAL`.
    Real(f64),
    /// `TEXT` (also UUIDs, lowercase and hyphenated, and JSON, compact).
    Text(Cow<'a, str>),
    /// `BLOB`.
    Blob(Cow<'a, [u8]>),
}

/// A parameter as SQLite stores it.
pub(super) fn stored(p: Param<'_>) -> Stored<'_> {
    match p {
        // SQLite has no arrays; its dialect never asks for one.
        Param::Null(_) | Param::Array(..) => Stored::Null,
        Param::Int(i) => Stored::Int(i),
        Param::Bool(b) => Stored::Int(i64::from(b)),
        Param::Float(f) => Stored::Real(f),
        Param::Text(s) => Stored::Text(s),
        Param::Bytes(b) => Stored::Blob(b),
        Param::Timestamp(t) => Stored::Int(t.timestamp_micros()),
        Param::Uuid(u) => Stored::Text(uuid_text(&u).into()),
        Param::Json(j) => Stored::Text(j.to_string().into()),
    }
}

/// Binds every parameter, in order, as [`stored`].
pub(super) fn bind_all<'q>(mut q: SqliteQuery<'q>, params: Vec<Param<'q>>) -> SqliteQuery<'q> {
    for p in params {
        q = match stored(p) {
            Stored::Null => q.bind(None::<i64>),
            Stored::Int(i) => q.bind(i),
            Stored::Real(f) => q.bind(f),
            Stored::Text(s) => q.bind(s),
            Stored::Blob(Cow::Borrowed(b)) => q.bind(b),
            Stored::Blob(Cow::Owned(b)) => q.bind(b),
        };
    }
    q
}

fn decode<'r, T: Decode<'r, Sqlite>>(
    raw: sqlx::sqlite::SqliteValueRef<'r>,
    col: &str,
) -> Result<T, String> {
    T::decode(raw).map_err(|e| format!("column `{col}` holds a value that cannot be read: {e}"))
}

/// One column of a row as a value of the field's kind.
pub(super) fn column_value(row: &SqliteRow, i: usize, col: &Column) -> Result<Value, String> {
    let raw = row
        .try_get_raw(i)
        .map_err(|e| format!("column `{}`: {e}", col.name))?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let name = col.name;
    Ok(match col.kind {
        FieldKind::Bool => Value::Bool(decode::<i64>(raw, name)? != 0),
        FieldKind::Int => Value::I64(decode::<i64>(raw, name)?),
        FieldKind::Float => Value::F64(decode::<f64>(raw, name)?),
        FieldKind::String => Value::String(decode::<String>(raw, name)?),
        FieldKind::Bytes => Value::Bytes(decode::<Vec<u8>>(raw, name)?),
        FieldKind::Timestamp => timestamp_from_micros(name, decode::<i64>(raw, name)?)?,
        FieldKind::Uuid => uuid_from_text(name, &decode::<String>(raw, name)?)?,
        FieldKind::Json => json_from_text(name, &decode::<String>(raw, name)?)?,
    })
}
