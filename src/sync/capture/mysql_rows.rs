//! MySQL / MariaDB binlog positions and row images: the `u64` encoding of
//! a (file, offset) position, and typed [`Value`]s from the row images of
//! a table polyrouter created (docs/cdc.md, "MySQL / MariaDB").

use mysql_async::Value as MyValue;
use mysql_async::binlog::value::BinlogValue;
use uuid::Uuid;

use crate::backends::sql::{EXPIRES_COL, json_from_text, timestamp_from_micros};
use crate::entity::{FieldKind, Schema};
use crate::{Key, KeyKind, Value};

/// A binlog position as one `u64`: the file's sequence number (the
/// `.000042` suffix of `binlog.000042`) in the high 32 bits, the byte
/// offset in that file in the low 32 (binlog offsets are 32-bit in the
/// protocol). Positions of later events compare greater, across files too.
pub(crate) fn encode(file_seq: u32, offset: u32) -> u64 {
    (u64::from(file_seq) << 32) | u64::from(offset)
}

/// The (file sequence number, offset) of an encoded position.
pub(crate) fn decode(position: u64) -> (u32, u32) {
    ((position >> 32) as u32, position as u32)
}

/// The sequence number of a binlog file name (`binlog.000042` → 42).
pub(crate) fn file_seq(file: &str) -> Result<u32, String> {
    file.rsplit_once('.')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| {
            format!("binlog file name {file:?} does not end in a sequence number (`.000001`)")
        })
}

/// The name of the file with sequence number `seq` beside `like` (same
/// base name, the server's six-digit suffix).
pub(crate) fn file_name(like: &str, seq: u32) -> String {
    let base = like.rsplit_once('.').map_or(like, |(b, _)| b);
    format!("{base}.{seq:06}")
}

/// Where the entity's columns are in the table's rows (column indexes in
/// table order).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// The table's column count (a row image must have as many).
    pub columns: usize,
    pub key: usize,
    pub fields: Vec<usize>,
    pub expires: Option<usize>,
}

impl Layout {
    /// The layout of a table whose columns are `names`, in table order.
    pub(crate) fn of(schema: &Schema, table: &str, names: &[String]) -> Result<Layout, String> {
        let find = |name: &str| names.iter().position(|c| c == name);
        let missing =
            |name: &str| format!("table `{table}` has no column `{name}` the entity needs");
        Ok(Layout {
            columns: names.len(),
            key: find(schema.key).ok_or_else(|| missing(schema.key))?,
            fields: schema
                .fields
                .iter()
                .map(|f| find(f.name).ok_or_else(|| missing(f.name)))
                .collect::<Result<_, _>>()?,
            expires: find(EXPIRES_COL),
        })
    }
}

/// One cell of a row image as a plain MySQL value (`NULL` included).
pub(crate) fn plain(v: Option<&BinlogValue<'_>>) -> Result<MyValue, String> {
    match v {
        Some(BinlogValue::Value(v)) => Ok(v.clone()),
        Some(j @ BinlogValue::Jsonb(_)) => MyValue::try_from(j.clone())
            .map_err(|e| format!("a JSON column cannot be read: {e}")),
        Some(BinlogValue::JsonDiff(_)) => Err(
            "a partial JSON update was logged; set `binlog_row_value_options = ''` (MySQL) so row images carry whole JSON values"
                .into(),
        ),
        None => Err(
            "a row image lacks a column; the server must run `binlog_row_image = FULL`".into(),
        ),
    }
}

fn int(name: &str, v: &MyValue) -> Result<i64, String> {
    match v {
        MyValue::Int(i) => Ok(*i),
        MyValue::UInt(u) => i64::try_from(*u)
            .map_err(|_| format!("column `{name}` holds {u}, beyond a 64-bit signed integer")),
        other => Err(format!(
            "column `{name}` holds {other:?}, not an integer (is the column's type the one polyrouter creates?)"
        )),
    }
}

fn bytes<'v>(name: &str, v: &'v MyValue) -> Result<&'v [u8], String> {
    match v {
        MyValue::Bytes(b) => Ok(b),
        other => Err(format!(
            "column `{name}` holds {other:?}, not text or bytes (is the column's type the one polyrouter creates?)"
        )),
    }
}

fn text(name: &str, v: &MyValue) -> Result<String, String> {
    String::from_utf8(bytes(name, v)?.to_vec())
        .map_err(|e| format!("column `{name}` holds text that is not UTF-8: {e}"))
}

/// A `BINARY(16)` UUID: the binlog drops a fixed-width binary value's
/// trailing zero bytes, so they are put back.
fn uuid(name: &str, v: &MyValue) -> Result<Uuid, String> {
    let b = bytes(name, v)?;
    if b.len() > 16 {
        return Err(format!(
            "column `{name}` holds {} bytes, not a UUID",
            b.len()
        ));
    }
    let mut full = [0u8; 16];
    full[..b.len()].copy_from_slice(b);
    Ok(Uuid::from_bytes(full))
}

/// A field's value, the column typed as polyrouter creates it (MySQL
/// dialect: BIGINT for integers and timestamps in microseconds, BOOLEAN,
/// DOUBLE, LONGTEXT for text and JSON, BINARY(16) UUIDs, LONGBLOB).
pub(crate) fn value(kind: FieldKind, name: &str, v: &MyValue) -> Result<Value, String> {
    if matches!(v, MyValue::NULL) {
        return Ok(Value::Null);
    }
    Ok(match kind {
        FieldKind::Bool => Value::Bool(int(name, v)? != 0),
        FieldKind::Int => Value::I64(int(name, v)?),
        FieldKind::Float => match v {
            MyValue::Double(f) => Value::F64(*f),
            MyValue::Float(f) => Value::F64(f64::from(*f)),
            other => return Err(format!("column `{name}` holds {other:?}, not a float")),
        },
        FieldKind::String => Value::String(text(name, v)?),
        FieldKind::Bytes => Value::Bytes(bytes(name, v)?.to_vec()),
        FieldKind::Timestamp => timestamp_from_micros(name, int(name, v)?)?,
        FieldKind::Uuid => Value::Uuid(uuid(name, v)?),
        FieldKind::Json => json_from_text(name, &text(name, v)?)?,
    })
}

/// A key from its column.
pub(crate) fn key(kind: KeyKind, name: &str, v: &MyValue) -> Result<Key, String> {
    Ok(match (kind, v) {
        (_, MyValue::NULL) => return Err(format!("a row change has a NULL key `{name}`")),
        (KeyKind::Str, v) => Key::Str(text(name, v)?),
        (KeyKind::Int, v) => Key::Int(int(name, v)?),
        (KeyKind::Uuid, v) => Key::Uuid(uuid(name, v)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_across_files_and_round_trip() {
        let p = encode(3, 325);
        assert_eq!(decode(p), (3, 325));
        assert!(encode(3, u32::MAX) < encode(4, 4));
        assert_eq!(file_seq("binlog.000042").unwrap(), 42);
        assert_eq!(file_seq("host.name-bin.1000000").unwrap(), 1_000_000);
        assert!(file_seq("binlog").is_err());
        assert_eq!(
            file_name("host.name-bin.000041", 42),
            "host.name-bin.000042"
        );
    }

    #[test]
    fn reads_the_columns_polyrouter_creates() {
        let b = |s: &[u8]| MyValue::Bytes(s.to_vec());
        assert_eq!(
            value(FieldKind::Bool, "b", &MyValue::Int(1)).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            value(FieldKind::Int, "n", &MyValue::Int(-7)).unwrap(),
            Value::I64(-7)
        );
        assert_eq!(
            value(FieldKind::Float, "f", &MyValue::Double(1.5)).unwrap(),
            Value::F64(1.5)
        );
        assert_eq!(
            value(FieldKind::String, "s", &b(b"h\xc3\xa9")).unwrap(),
            Value::String("hé".into())
        );
        assert!(value(FieldKind::String, "s", &b(b"\xff")).is_err());
        assert_eq!(
            value(FieldKind::Json, "j", &b(b"{\"a\":1}")).unwrap(),
            Value::Json(serde_json::json!({"a": 1}))
        );
        assert_eq!(
            value(FieldKind::Int, "n", &MyValue::NULL).unwrap(),
            Value::Null
        );
        let Value::Timestamp(t) = value(
            FieldKind::Timestamp,
            "t",
            &MyValue::Int(1_700_000_000_123_456),
        )
        .unwrap() else {
            panic!("a timestamp")
        };
        assert_eq!(t.timestamp_micros(), 1_700_000_000_123_456);
        // A UUID ending in zero bytes arrives shortened.
        let u = Uuid::from_bytes([7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0]);
        assert_eq!(
            value(FieldKind::Uuid, "u", &b(&u.as_bytes()[..13])).unwrap(),
            Value::Uuid(u)
        );
        assert_eq!(
            key(KeyKind::Int, "id", &MyValue::Int(42)).unwrap(),
            Key::Int(42)
        );
        assert!(key(KeyKind::Str, "id", &MyValue::NULL).is_err());
        assert!(plain(None).unwrap_err().contains("binlog_row_image = FULL"));
    }
}
