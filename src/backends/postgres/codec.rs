//! Conversions between [`Value`]s and PostgreSQL storage: typed bound
//! arguments going in, typed columns coming out.

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Postgres, Row};
use uuid::Uuid;

use super::sql::{Column, TableSql};
use crate::entity::FieldKind;
use crate::record::FieldName;
use crate::{Key, KeyKind, Record, Value};

/// One bound parameter, typed as its column.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    /// `NULL` of a column kind.
    Null(FieldKind),
    /// `BIGINT` (also `_pr_version`, `_pr_expires_at` and `now`).
    Int(i64),
    /// `DOUBLE PRECISION`.
    Real(f64),
    /// `BOOLEAN`.
    Bool(bool),
    /// `TEXT`.
    Text(String),
    /// `BYTEA`.
    Bytes(Vec<u8>),
    /// `TIMESTAMPTZ` (whole microseconds).
    Ts(DateTime<Utc>),
    /// `UUID`.
    Uuid(Uuid),
    /// `JSONB`.
    Json(serde_json::Value),
    /// `TEXT[]` (keys for `= ANY`).
    TextArray(Vec<String>),
    /// `BIGINT[]`.
    IntArray(Vec<i64>),
    /// `UUID[]`.
    UuidArray(Vec<Uuid>),
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// Binds every argument, in order.
pub(super) fn bind_all(mut q: PgQuery<'_>, args: Vec<Arg>) -> PgQuery<'_> {
    for a in args {
        q = match a {
            Arg::Null(kind) => match kind {
                FieldKind::Int => q.bind(None::<i64>),
                FieldKind::Float => q.bind(None::<f64>),
                FieldKind::Bool => q.bind(None::<bool>),
                FieldKind::String => q.bind(None::<String>),
                FieldKind::Bytes => q.bind(None::<Vec<u8>>),
                FieldKind::Timestamp => q.bind(None::<DateTime<Utc>>),
                FieldKind::Uuid => q.bind(None::<Uuid>),
                FieldKind::Json => q.bind(None::<sqlx::types::Json<serde_json::Value>>),
            },
            Arg::Int(i) => q.bind(i),
            Arg::Real(f) => q.bind(f),
            Arg::Bool(b) => q.bind(b),
            Arg::Text(s) => q.bind(s),
            Arg::Bytes(b) => q.bind(b),
            Arg::Ts(t) => q.bind(t),
            Arg::Uuid(u) => q.bind(u),
            Arg::Json(j) => q.bind(sqlx::types::Json(j)),
            Arg::TextArray(v) => q.bind(v),
            Arg::IntArray(v) => q.bind(v),
            Arg::UuidArray(v) => q.bind(v),
        };
    }
    q
}

/// A timestamp as unix microseconds (floor).
pub(super) fn micros<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> i64 {
    t.timestamp_micros()
}

/// A timestamp truncated (floor) to whole microseconds, as stored.
pub(super) fn ts_arg(t: &DateTime<Utc>) -> Arg {
    Arg::Ts(DateTime::from_timestamp_micros(micros(t)).unwrap_or(*t))
}

/// A key as bound for the key column.
pub(super) fn key_arg(key: &Key) -> Arg {
    match key {
        Key::Str(s) => Arg::Text(s.clone()),
        Key::Int(i) => Arg::Int(*i),
        Key::Uuid(u) => Arg::Uuid(*u),
    }
}

/// A filter operand as bound, by its own type.
pub(super) fn value_arg(v: &Value) -> Arg {
    match v {
        Value::Null => Arg::Null(FieldKind::String),
        Value::Bool(b) => Arg::Bool(*b),
        Value::I64(i) => Arg::Int(*i),
        Value::F64(f) => Arg::Real(*f),
        Value::String(s) => Arg::Text(s.clone()),
        Value::Bytes(b) => Arg::Bytes(b.clone()),
        Value::Timestamp(t) => ts_arg(t),
        Value::Uuid(u) => Arg::Uuid(*u),
        Value::Json(j) => Arg::Json(j.clone()),
    }
}

/// Whether a JSON value holds a NUL character in a string or key
/// (PostgreSQL's `jsonb` cannot).
fn json_has_nul(j: &serde_json::Value) -> bool {
    match j {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(json_has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// A field value as stored in its column, checked against the field's type.
pub(super) fn encode_field(col: &Column, v: &Value) -> Result<Arg, String> {
    let nul = || {
        Err(format!(
            "field `{}` contains a NUL character (\\0), which PostgreSQL text cannot hold",
            col.name
        ))
    };
    let arg = match (col.kind, v) {
        (kind, Value::Null) if col.nullable => Arg::Null(kind),
        (_, Value::Null) => {
            return Err(format!(
                "field `{}` is not nullable, but the value is null",
                col.name
            ));
        }
        (FieldKind::Bool, Value::Bool(b)) => Arg::Bool(*b),
        (FieldKind::Int, Value::I64(i)) => Arg::Int(*i),
        (FieldKind::Float, Value::F64(f)) if f.is_nan() => {
            return Err(format!(
                "field `{}` is NaN, which the postgres store does not store",
                col.name
            ));
        }
        (FieldKind::Float, Value::F64(f)) => Arg::Real(*f),
        (FieldKind::Float, Value::I64(i)) => Arg::Real(*i as f64),
        (FieldKind::String, Value::String(s)) if s.contains('\0') => return nul(),
        (FieldKind::String, Value::String(s)) => Arg::Text(s.clone()),
        (FieldKind::Bytes, Value::Bytes(b)) => Arg::Bytes(b.clone()),
        (FieldKind::Timestamp, Value::Timestamp(t)) => ts_arg(t),
        (FieldKind::Uuid, Value::Uuid(u)) => Arg::Uuid(*u),
        (FieldKind::Json, Value::Json(j)) if json_has_nul(j) => return nul(),
        (FieldKind::Json, Value::Json(j)) => Arg::Json(j.clone()),
        (kind, v) => {
            return Err(format!(
                "field `{}` is {}, but the value is {}",
                col.name,
                kind.name(),
                v.type_name()
            ));
        }
    };
    Ok(arg)
}

/// The kind of the key column for a key kind.
pub(super) fn key_field_kind(k: KeyKind) -> FieldKind {
    match k {
        KeyKind::Str => FieldKind::String,
        KeyKind::Int => FieldKind::Int,
        KeyKind::Uuid => FieldKind::Uuid,
    }
}

/// One column of a row as a value of the field's kind.
fn column_value(row: &PgRow, i: usize, col: &Column) -> Result<Value, String> {
    let name = col.name;
    let bad = |e: sqlx::Error| format!("column `{name}` holds a value that cannot be read: {e}");
    let v = match col.kind {
        FieldKind::Bool => row
            .try_get::<Option<bool>, _>(i)
            .map_err(bad)?
            .map(Value::Bool),
        FieldKind::Int => row
            .try_get::<Option<i64>, _>(i)
            .map_err(bad)?
            .map(Value::I64),
        FieldKind::Float => row
            .try_get::<Option<f64>, _>(i)
            .map_err(bad)?
            .map(Value::F64),
        FieldKind::String => row
            .try_get::<Option<String>, _>(i)
            .map_err(bad)?
            .map(Value::String),
        FieldKind::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(bad)?
            .map(Value::Bytes),
        FieldKind::Timestamp => row
            .try_get::<Option<DateTime<Utc>>, _>(i)
            .map_err(bad)?
            .map(Value::Timestamp),
        FieldKind::Uuid => row
            .try_get::<Option<Uuid>, _>(i)
            .map_err(bad)?
            .map(Value::Uuid),
        FieldKind::Json => row
            .try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>(i)
            .map_err(bad)?
            .map(|j| Value::Json(j.0)),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// A row selected with [`TableSql::select_list`] as a record: fields in schema
/// order, the key from the key column, the version from `_pr_version`.
pub(super) fn decode_record(t: &TableSql, row: &PgRow) -> Result<Record, String> {
    let mut fields = Vec::with_capacity(t.columns.len());
    let mut key = None;
    for (i, col) in t.columns.iter().enumerate() {
        let v = column_value(row, i, col)?;
        if i == t.key_index {
            key = Some(
                Key::from_value(&v).ok_or_else(|| format!("key column `{}` is null", col.name))?,
            );
        }
        if col.is_field {
            fields.push((FieldName::Borrowed(col.name), v));
        }
    }
    let version: i64 = row
        .try_get(t.columns.len())
        .map_err(|e| format!("column `_pr_version`: {e}"))?;
    Ok(Record {
        key: key.ok_or("the row has no key column")?,
        version: u64::try_from(version).unwrap_or(0),
        fields,
    })
}
