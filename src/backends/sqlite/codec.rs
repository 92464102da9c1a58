//! Conversions between [`Value`]s and SQLite storage: bound arguments going
//! in, typed columns coming out.

use chrono::DateTime;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Decode, Row, Sqlite, ValueRef};
use uuid::Uuid;

use super::sql::{Column, TableSql};
use crate::entity::FieldKind;
use crate::record::FieldName;
use crate::{Key, KeyKind, Record, Value};

/// One bound parameter, in SQLite's storage classes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    /// `NULL`.
    Null,
    /// `INTEGER` (also booleans and timestamps in microseconds).
    Int(i64),
    /// `REAL`.
    Real(f64),
    /// `TEXT` (also UUIDs and JSON).
    Text(String),
    /// `BLOB`.
    Blob(Vec<u8>),
}

/// Binds every argument, in order.
pub(super) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Null => q.bind(None::<i64>),
            Arg::Int(i) => q.bind(i),
            Arg::Real(f) => q.bind(f),
            Arg::Text(s) => q.bind(s),
            Arg::Blob(b) => q.bind(b),
        };
    }
    q
}

/// A timestamp as unix microseconds (floor).
pub(super) fn micros<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> i64 {
    t.timestamp_micros()
}

/// A UUID as stored: lowercase, hyphenated.
pub(super) fn uuid_text(u: &Uuid) -> String {
    u.hyphenated().to_string()
}

/// A key as bound for the key column.
pub(super) fn key_arg(key: &Key) -> Arg {
    match key {
        Key::Str(s) => Arg::Text(s.clone()),
        Key::Int(i) => Arg::Int(*i),
        Key::Uuid(u) => Arg::Text(uuid_text(u)),
    }
}

/// A filter operand as bound, by its own type.
pub(super) fn value_arg(v: &Value) -> Arg {
    match v {
        Value::Null => Arg::Null,
        Value::Bool(b) => Arg::Int(i64::from(*b)),
        Value::I64(i) => Arg::Int(*i),
        Value::F64(f) => Arg::Real(*f),
        Value::String(s) => Arg::Text(s.clone()),
        Value::Bytes(b) => Arg::Blob(b.clone()),
        Value::Timestamp(t) => Arg::Int(micros(t)),
        Value::Uuid(u) => Arg::Text(uuid_text(u)),
        Value::Json(j) => Arg::Text(j.to_string()),
    }
}

/// A field value as stored in its column, checked against the field's type.
pub(super) fn encode_field(col: &Column, v: &Value) -> Result<Arg, String> {
    let arg = match (col.kind, v) {
        (_, Value::Null) if col.nullable => Arg::Null,
        (_, Value::Null) => {
            return Err(format!(
                "field `{}` is not nullable, but the value is null",
                col.name
            ));
        }
        (FieldKind::Bool, Value::Bool(b)) => Arg::Int(i64::from(*b)),
        (FieldKind::Int, Value::I64(i)) => Arg::Int(*i),
        (FieldKind::Float, Value::F64(f)) if f.is_nan() => {
            return Err(format!(
                "field `{}` is NaN, which SQLite cannot store",
                col.name
            ));
        }
        (FieldKind::Float, Value::F64(f)) => Arg::Real(*f),
        (FieldKind::Float, Value::I64(i)) => Arg::Real(*i as f64),
        (FieldKind::String, Value::String(s)) => Arg::Text(s.clone()),
        (FieldKind::Bytes, Value::Bytes(b)) => Arg::Blob(b.clone()),
        (FieldKind::Timestamp, Value::Timestamp(t)) => Arg::Int(micros(t)),
        (FieldKind::Uuid, Value::Uuid(u)) => Arg::Text(uuid_text(u)),
        (FieldKind::Json, Value::Json(j)) => Arg::Text(j.to_string()),
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

fn decode<'r, T: Decode<'r, Sqlite>>(
    raw: sqlx::sqlite::SqliteValueRef<'r>,
    col: &str,
) -> Result<T, String> {
    T::decode(raw).map_err(|e| format!("column `{col}` holds a value that cannot be read: {e}"))
}

/// One column of a row as a value of the field's kind.
fn column_value(row: &SqliteRow, i: usize, col: &Column) -> Result<Value, String> {
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
        FieldKind::Timestamp => {
            let m = decode::<i64>(raw, name)?;
            let t = DateTime::from_timestamp_micros(m).ok_or_else(|| {
                format!("column `{name}` holds {m}, which is not a timestamp in microseconds")
            })?;
            Value::Timestamp(t)
        }
        FieldKind::Uuid => {
            let s = decode::<String>(raw, name)?;
            Value::Uuid(
                Uuid::parse_str(&s).map_err(|e| {
                    format!("column `{name}` holds a value that is not a UUID: {e}")
                })?,
            )
        }
        FieldKind::Json => {
            let s = decode::<String>(raw, name)?;
            Value::Json(
                serde_json::from_str(&s)
                    .map_err(|e| format!("column `{name}` holds invalid JSON: {e}"))?,
            )
        }
    })
}

/// A row selected with [`TableSql::select_list`] as a record: fields in schema
/// order, the key from the key column, the version from `_pr_version`.
pub(super) fn decode_record(t: &TableSql, row: &SqliteRow) -> Result<Record, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn col(kind: FieldKind, nullable: bool) -> Column {
        Column {
            name: "c",
            kind,
            nullable,
            is_field: true,
        }
    }

    #[test]
    fn encodes_every_kind() {
        let t = chrono::DateTime::from_timestamp_micros(-1_500_001).unwrap();
        let u = Uuid::from_u128(0xABCD_EF00_0000_0000_0000_0000_0000_0001);
        let cases = [
            (FieldKind::Bool, Value::Bool(true), Arg::Int(1)),
            (FieldKind::Int, Value::I64(i64::MIN), Arg::Int(i64::MIN)),
            (FieldKind::Float, Value::F64(1.5), Arg::Real(1.5)),
            (FieldKind::Float, Value::I64(2), Arg::Real(2.0)),
            (
                FieldKind::String,
                Value::from("a\0b"),
                Arg::Text("a\0b".into()),
            ),
            (
                FieldKind::Bytes,
                Value::Bytes(vec![0, 255]),
                Arg::Blob(vec![0, 255]),
            ),
            (
                FieldKind::Timestamp,
                Value::Timestamp(t),
                Arg::Int(-1_500_001),
            ),
            (
                FieldKind::Uuid,
                Value::Uuid(u),
                Arg::Text("abcdef00-0000-0000-0000-000000000001".into()),
            ),
            (
                FieldKind::Json,
                Value::Json(serde_json::json!({"b": 1, "a": [null]})),
                Arg::Text(r#"{"a":[null],"b":1}"#.into()),
            ),
            (
                FieldKind::Json,
                Value::Json(serde_json::Value::Null),
                Arg::Text("null".into()),
            ),
        ];
        for (kind, v, want) in cases {
            assert_eq!(
                encode_field(&col(kind, false), &v).unwrap(),
                want,
                "{kind:?}"
            );
        }
        assert_eq!(
            encode_field(&col(FieldKind::Int, true), &Value::Null).unwrap(),
            Arg::Null
        );
        assert!(
            encode_field(&col(FieldKind::Int, false), &Value::Null)
                .unwrap_err()
                .contains("not nullable")
        );
        assert!(
            encode_field(&col(FieldKind::Float, false), &Value::F64(f64::NAN))
                .unwrap_err()
                .contains("NaN")
        );
        assert!(
            encode_field(&col(FieldKind::Int, false), &Value::from("x"))
                .unwrap_err()
                .contains("is int")
        );
    }
}
