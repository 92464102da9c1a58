//! The canonical encoding verify compares: a record's key, version and
//! every schema field, in schema order, each value tagged with its kind, so
//! two engines holding the same record encode it to the same bytes
//! whatever their column order, JSON key order or float spelling.

use crate::entity::Schema;
use crate::{Key, Record, Value};

/// The canonical bytes of `record` under `schema`: equal for two records
/// exactly when their keys, versions and schema fields are equal (a field
/// a store did not return counts as null; JSON objects compare with
/// their keys sorted; `-0.0` equals `0.0`).
///
/// ```
/// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, Key, Record, Value};
/// # static F: [FieldDef; 2] = [FieldDef::required("id", FieldKind::Int), FieldDef::nullable("j", FieldKind::Json)];
/// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &F };
/// use polyrouter::migrate::canonical;
/// let mut a = Record::new(Key::Int(1));
/// a.set("j", Value::Json(serde_json::json!({"x": 1, "y": 2})));
/// let mut b = Record::new(Key::Int(1));
/// b.set("j", Value::Json(serde_json::json!({"y": 2, "x": 1})));
/// assert_eq!(canonical(&S, &a), canonical(&S, &b));
/// b.version = 2;
/// assert_ne!(canonical(&S, &a), canonical(&S, &b));
/// ```
pub fn canonical(schema: &Schema, record: &Record) -> Vec<u8> {
    encode(schema, record, true)
}

/// [`canonical`] without the version: equal for two records exactly when
/// their keys and schema fields are equal. What a migration fed by change
/// capture compares, where the target holds the log positions of the
/// changes as versions and the source its own counters.
///
/// ```
/// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, Key, Record, Value};
/// # static F: [FieldDef; 2] = [FieldDef::required("id", FieldKind::Int), FieldDef::nullable("n", FieldKind::Int)];
/// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &F };
/// use polyrouter::migrate::canonical_fields;
/// let mut a = Record::new(Key::Int(1));
/// a.set("n", Value::I64(5));
/// let mut b = a.clone();
/// b.version = 2;
/// assert_eq!(canonical_fields(&S, &a), canonical_fields(&S, &b));
/// b.set("n", Value::I64(6));
/// assert_ne!(canonical_fields(&S, &a), canonical_fields(&S, &b));
/// ```
pub fn canonical_fields(schema: &Schema, record: &Record) -> Vec<u8> {
    encode(schema, record, false)
}

/// Whether two records read from the two sides are the same: by
/// [`canonical`], or by [`canonical_fields`] when `by_version` is false.
pub(crate) fn same(schema: &Schema, a: &Record, b: &Record, by_version: bool) -> bool {
    encode(schema, a, by_version) == encode(schema, b, by_version)
}

fn encode(schema: &Schema, record: &Record, with_version: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    key(&mut out, &record.key);
    if with_version {
        out.extend_from_slice(&record.version.to_le_bytes());
    }
    for f in schema.fields {
        if f.name == schema.key {
            continue;
        }
        bytes(&mut out, f.name.as_bytes());
        value(&mut out, record.get(f.name).unwrap_or(&Value::Null));
    }
    out
}

fn key(out: &mut Vec<u8>, k: &Key) {
    match k {
        Key::Str(s) => {
            out.push(b's');
            bytes(out, s.as_bytes());
        }
        Key::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(&i.to_le_bytes());
        }
        Key::Uuid(u) => {
            out.push(b'u');
            out.extend_from_slice(u.as_bytes());
        }
    }
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(b) => {
            out.push(1);
            out.push(u8::from(*b));
        }
        Value::I64(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::F64(f) => {
            out.push(3);
            let f = if *f == 0.0 { 0.0 } else { *f };
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            out.push(4);
            bytes(out, s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(5);
            bytes(out, b);
        }
        Value::Timestamp(t) => {
            out.push(6);
            out.extend_from_slice(&t.timestamp_micros().to_le_bytes());
        }
        Value::Uuid(u) => {
            out.push(7);
            out.extend_from_slice(u.as_bytes());
        }
        Value::Json(j) => {
            out.push(8);
            json(out, j);
        }
    }
}

fn json(out: &mut Vec<u8>, j: &serde_json::Value) {
    use serde_json::Value as J;
    match j {
        J::Null => out.push(0),
        J::Bool(b) => {
            out.push(1);
            out.push(u8::from(*b));
        }
        J::Number(n) => {
            // Integers as integers, the rest by their f64 value, so `1.50`
            // and `1.5` (engines re-spell numbers) compare equal.
            if let Some(i) = n.as_i64() {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            } else if let Some(u) = n.as_u64() {
                out.push(3);
                out.extend_from_slice(&u.to_le_bytes());
            } else {
                out.push(4);
                let f = n.as_f64().unwrap_or(0.0);
                let f = if f == 0.0 { 0.0 } else { f };
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
        }
        J::String(s) => {
            out.push(5);
            bytes(out, s.as_bytes());
        }
        J::Array(a) => {
            out.push(6);
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for x in a {
                json(out, x);
            }
        }
        J::Object(m) => {
            out.push(7);
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
            for k in keys {
                bytes(out, k.as_bytes());
                json(out, &m[k]);
            }
        }
    }
}
