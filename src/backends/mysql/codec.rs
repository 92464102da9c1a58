//! Binding [`Param`]s with sqlx for MySQL, and reading typed columns back.

use std::borrow::Cow;

use sqlx::mysql::{MySqlArguments, MySqlRow};
use sqlx::{MySql, Row};
use uuid::Uuid;

use crate::Value;
use crate::backends::sql::{Column, Param, json_from_text, timestamp_from_micros};
use crate::entity::FieldKind;

type MySqlQuery<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

/// Binds every parameter, in order: timestamps as unix microseconds, UUIDs
/// as 16 bytes, JSON as compact text.
pub(super) fn bind_all<'q>(mut q: MySqlQuery<'q>, params: Vec<Param<'q>>) -> MySqlQuery<'q> {
    for p in params {
        q = match p {
            Param::Null(kind) => match kind {
                FieldKind::Bool => q.bind(None::<bool>),
                FieldKind::Float => q.bind(None::<f64>),
                FieldKind::String | FieldKind::Json => q.bind(None::<String>),
                FieldKind::Bytes | FieldKind::Uuid => q.bind(None::<Vec<u8>>),
                FieldKind::Int | FieldKind::Timestamp => q.bind(None::<i64>),
            },
            Param::Int(i) => q.bind(i),
            Param::Bool(b) => q.bind(b),
            Param::Float(f) => q.bind(f),
            Param::Text(s) => q.bind(s),
            Param::Bytes(Cow::Borrowed(b)) => q.bind(b),
            Param::Bytes(Cow::Owned(b)) => q.bind(b),
            Param::Timestamp(t) => q.bind(t.timestamp_micros()),
            Param::Uuid(u) => q.bind(u.as_bytes().to_vec()),
            Param::Json(j) => q.bind(j.to_string()),
            // MySQL has no arrays; its dialect never asks for one.
            Param::Array(..) => q.bind(None::<i64>),
        };
    }
    q
}

fn utf8(column: &str, b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|e| format!("column `{column}` holds text that is not UTF-8: {e}"))
}

/// One column of a row as a value of the field's kind.
pub(super) fn column_value(row: &MySqlRow, i: usize, col: &Column) -> Result<Value, String> {
    let name = col.name;
    let bad = |e: sqlx::Error| format!("column `{name}` holds a value that cannot be read: {e}");
    Ok(match col.kind {
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
        // Binary-collation text comes back flagged binary: read bytes.
        FieldKind::String => match row.try_get::<Option<Vec<u8>>, _>(i).map_err(bad)? {
            Some(b) => Some(Value::String(utf8(name, b)?)),
            None => None,
        },
        FieldKind::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(i)
            .map_err(bad)?
            .map(Value::Bytes),
        FieldKind::Timestamp => match row.try_get::<Option<i64>, _>(i).map_err(bad)? {
            Some(m) => Some(timestamp_from_micros(name, m)?),
            None => None,
        },
        FieldKind::Uuid => match row.try_get::<Option<Vec<u8>>, _>(i).map_err(bad)? {
            Some(b) => Some(Value::Uuid(Uuid::from_slice(&b).map_err(|e| {
                format!("column `{name}` holds a value that is not a UUID: {e}")
            })?)),
            None => None,
        },
        FieldKind::Json => match row.try_get::<Option<Vec<u8>>, _>(i).map_err(bad)? {
            Some(b) => Some(json_from_text(name, &utf8(name, b)?)?),
            None => None,
        },
    }
    .unwrap_or(Value::Null))
}
