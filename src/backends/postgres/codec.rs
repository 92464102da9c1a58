//! Binding [`Param`]s with sqlx, and reading typed columns back.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Postgres, Row};
use uuid::Uuid;

use crate::Value;
use crate::backends::sql::{Column, Param};
use crate::entity::FieldKind;

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The elements of an array parameter as one typed, nullable vector.
fn array<'q, T>(items: Vec<Param<'q>>, f: impl Fn(Param<'q>) -> Option<T>) -> Vec<Option<T>> {
    items.into_iter().map(f).collect()
}

/// Binds every parameter, in order, as its column's PostgreSQL type;
/// borrowed text, bytes and JSON are encoded straight from where they are.
pub(super) fn bind_all<'q>(mut q: PgQuery<'q>, params: Vec<Param<'q>>) -> PgQuery<'q> {
    for p in params {
        q = match p {
            Param::Null(kind) => match kind {
                FieldKind::Int => q.bind(None::<i64>),
                FieldKind::Float => q.bind(None::<f64>),
                FieldKind::Bool => q.bind(None::<bool>),
                FieldKind::String => q.bind(None::<String>),
                FieldKind::Bytes => q.bind(None::<Vec<u8>>),
                FieldKind::Timestamp => q.bind(None::<DateTime<Utc>>),
                FieldKind::Uuid => q.bind(None::<Uuid>),
                FieldKind::Json => q.bind(None::<sqlx::types::Json<serde_json::Value>>),
            },
            Param::Int(i) => q.bind(i),
            Param::Float(f) => q.bind(f),
            Param::Bool(b) => q.bind(b),
            Param::Text(s) => q.bind(s),
            Param::Bytes(Cow::Borrowed(b)) => q.bind(b),
            Param::Bytes(Cow::Owned(b)) => q.bind(b),
            Param::Timestamp(t) => q.bind(t),
            Param::Uuid(u) => q.bind(u),
            Param::Json(j) => q.bind(sqlx::types::Json(j)),
            Param::Array(kind, items) => match kind {
                FieldKind::Int => q.bind(array(items, |p| match p {
                    Param::Int(i) => Some(i),
                    _ => None,
                })),
                FieldKind::Float => q.bind(array(items, |p| match p {
                    Param::Float(f) => Some(f),
                    _ => None,
                })),
                FieldKind::Bool => q.bind(array(items, |p| match p {
                    Param::Bool(b) => Some(b),
                    _ => None,
                })),
                FieldKind::String => q.bind(array(items, |p| match p {
                    Param::Text(s) => Some(s),
                    _ => None,
                })),
                FieldKind::Bytes => q.bind(array(items, |p| match p {
                    Param::Bytes(b) => Some(b.into_owned()),
                    _ => None,
                })),
                FieldKind::Timestamp => q.bind(array(items, |p| match p {
                    Param::Timestamp(t) => Some(t),
                    _ => None,
                })),
                FieldKind::Uuid => q.bind(array(items, |p| match p {
                    Param::Uuid(u) => Some(u),
                    _ => None,
                })),
                FieldKind::Json => q.bind(array(items, |p| match p {
                    Param::Json(j) => Some(sqlx::types::Json(j)),
                    _ => None,
                })),
            },
        };
    }
    q
}

/// One column of a row as a value of the field's kind.
pub(super) fn column_value(row: &PgRow, i: usize, col: &Column) -> Result<Value, String> {
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
