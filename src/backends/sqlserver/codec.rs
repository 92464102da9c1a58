//! Binding [`Param`]s with tiberius, and reading typed columns back.

use tiberius::{ColumnData, Query};
use uuid::Uuid;

use crate::Value;
use crate::backends::sql::{Column, Param, json_from_text, timestamp_from_micros};
use crate::entity::FieldKind;

/// Binds one parameter as its column's SQL Server type: timestamps as
/// `BIGINT` unix microseconds, UUIDs as 16 bytes, JSON as compact text.
/// Arrays never occur (`get_many` uses `IN` lists); one is an error.
/// Borrowed text and bytes stay borrowed until the query is sent.
pub(super) fn bind<'a>(q: &mut Query<'a>, p: Param<'a>) -> Result<(), String> {
    match p {
        Param::Null(kind) => match kind {
            FieldKind::Int | FieldKind::Timestamp => q.bind(None::<i64>),
            FieldKind::Float => q.bind(None::<f64>),
            FieldKind::Bool => q.bind(None::<bool>),
            FieldKind::String | FieldKind::Json => q.bind(None::<String>),
            FieldKind::Bytes | FieldKind::Uuid => q.bind(None::<Vec<u8>>),
        },
        Param::Bool(b) => q.bind(b),
        Param::Int(i) => q.bind(i),
        Param::Float(f) => q.bind(f),
        Param::Text(s) => q.bind(s),
        Param::Bytes(b) => q.bind(b),
        Param::Timestamp(t) => q.bind(t.timestamp_micros()),
        Param::Uuid(u) => q.bind(u.as_bytes().to_vec()),
        Param::Json(j) => q.bind(j.to_string()),
        Param::Array(..) => {
            return Err("the sqlserver store cannot bind an array parameter".into());
        }
    }
    Ok(())
}

/// A query with every parameter bound.
pub(super) fn query<'a>(sql: &'a str, params: Vec<Param<'a>>) -> Result<Query<'a>, String> {
    let mut q = Query::new(sql);
    for p in params {
        bind(&mut q, p)?;
    }
    Ok(q)
}

/// An integer-like cell (`BIGINT`, `INT`, `BIT`, …) as an `i64`.
pub(super) fn int_of(d: &ColumnData<'_>) -> Option<i64> {
    match d {
        ColumnData::I64(v) => *v,
        ColumnData::I32(v) => v.map(i64::from),
        ColumnData::I16(v) => v.map(i64::from),
        ColumnData::U8(v) => v.map(i64::from),
        ColumnData::Bit(v) => v.map(i64::from),
        _ => None,
    }
}

/// One cell as a value of the column's kind (`Value::Null` for `NULL`).
pub(super) fn column_value(d: &ColumnData<'_>, col: &Column) -> Result<Value, String> {
    let name = col.name;
    let bad = || {
        format!(
            "column `{name}` holds {d:?}, not a {} value",
            col.kind.name()
        )
    };
    let v = match (col.kind, d) {
        (FieldKind::Bool, ColumnData::Bit(v)) => v.map(Value::Bool),
        (FieldKind::Int, _) if int_of(d).is_some() => int_of(d).map(Value::I64),
        (FieldKind::Float, ColumnData::F64(v)) => v.map(Value::F64),
        (FieldKind::Float, ColumnData::F32(v)) => v.map(|f| Value::F64(f64::from(f))),
        (FieldKind::String, ColumnData::String(v)) => {
            v.as_ref().map(|s| Value::String(s.to_string()))
        }
        (FieldKind::Json, ColumnData::String(v)) => match v {
            Some(s) => Some(json_from_text(name, s)?),
            None => None,
        },
        (FieldKind::Bytes, ColumnData::Binary(v)) => v.as_ref().map(|b| Value::Bytes(b.to_vec())),
        (FieldKind::Uuid, ColumnData::Binary(v)) => match v {
            Some(b) => Some(Value::Uuid(Uuid::from_slice(b).map_err(|_| {
                format!(
                    "column `{name}` holds {} bytes, not a 16-byte UUID",
                    b.len()
                )
            })?)),
            None => None,
        },
        (FieldKind::Timestamp, _) if int_of(d).is_some() => match int_of(d) {
            Some(m) => Some(timestamp_from_micros(name, m)?),
            None => None,
        },
        // A NULL of any type.
        (_, d) if is_null(d) => None,
        _ => return Err(bad()),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// Whether a cell is `NULL`.
fn is_null(d: &ColumnData<'_>) -> bool {
    matches!(
        d,
        ColumnData::U8(None)
            | ColumnData::I16(None)
            | ColumnData::I32(None)
            | ColumnData::I64(None)
            | ColumnData::F32(None)
            | ColumnData::F64(None)
            | ColumnData::Bit(None)
            | ColumnData::String(None)
            | ColumnData::Guid(None)
            | ColumnData::Binary(None)
    )
}
