//! Keys and record encoding for Redis: the record's fields as one compact
//! JSON object, typed by the entity's schema.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::DateTime;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::entity::{FieldKind, Schema};
use crate::{Key, Record, Value};

/// `{prefix}:{table}:{key}`: string keys raw (binary-safe), integers in
/// decimal, UUIDs lowercase hyphenated.
///
/// On a Redis Cluster a hash tag chooses the slot: see [`Tag`].
pub(super) fn record_key(prefix: &str, table: &str, key: &Key, tag: Tag) -> Vec<u8> {
    namespaced(prefix, "", table, key, tag)
}

/// Which part of a key is its Redis Cluster hash tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tag {
    /// One server: no tag, `{prefix}:{table}:{key}`.
    None,
    /// The record's key, `{prefix}:{table}:{{key}}`: records spread over
    /// the cluster by key. A key holding a hash tag of its own (`{…}` with
    /// something inside) is kept as it is, so keys sharing that tag share
    /// a slot.
    Key,
    /// The table, `{prefix}:{{table}}:{key}`: the whole table in one slot
    /// (on one master), so any batch of it is one script.
    Table,
}

/// `{prefix}#kv:{table}:{key}`: the [`KvStore`](crate::store::kv::KvStore)
/// raw values, which no record key can equal (a record key has `:` right
/// after the prefix, and table names hold no `:`).
pub(super) fn value_key(prefix: &str, table: &str, key: &Key, tag: Tag) -> Vec<u8> {
    namespaced(prefix, "#kv", table, key, tag)
}

/// Whether `key` holds a Redis Cluster hash tag: a `{` followed, later, by
/// a `}` with at least one byte between them.
pub(super) fn has_hash_tag(key: &[u8]) -> bool {
    key.iter().position(|b| *b == b'{').is_some_and(|open| {
        key[open + 1..]
            .iter()
            .position(|b| *b == b'}')
            .is_some_and(|len| len > 0)
    })
}

fn namespaced(prefix: &str, space: &str, table: &str, key: &Key, tag: Tag) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + space.len() + table.len() + 40);
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(space.as_bytes());
    out.push(b':');
    out.extend_from_slice(table_part(table, tag).as_bytes());
    out.push(b':');
    let text = match key {
        Key::Str(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
        Key::Int(i) => std::borrow::Cow::Owned(i.to_string().into_bytes()),
        Key::Uuid(u) => std::borrow::Cow::Owned(u.hyphenated().to_string().into_bytes()),
    };
    if tag == Tag::Key && !has_hash_tag(&text) {
        out.push(b'{');
        out.extend_from_slice(&text);
        out.push(b'}');
    } else {
        out.extend_from_slice(&text);
    }
    out
}

/// The table as it appears in its keys: `{table}` under [`Tag::Table`].
pub(super) fn table_part(table: &str, tag: Tag) -> std::borrow::Cow<'_, str> {
    if tag == Tag::Table {
        format!("{{{table}}}").into()
    } else {
        table.into()
    }
}

/// `{prefix}:{table}#outbox`: the entity's outbox stream, in its
/// namespace but equal to no record key (a record key has a `:` after the
/// table, and table names hold no `:`).
pub(super) fn outbox_key(prefix: &str, table: &str) -> Vec<u8> {
    format!("{prefix}:{table}#outbox").into_bytes()
}

/// `s` with the glob characters of `SCAN MATCH` escaped.
pub(super) fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Why a table name cannot be a Redis namespace, if it cannot.
pub(super) fn check_table(table: &str) -> Result<(), String> {
    if table.is_empty() {
        return Err("the table name is empty".into());
    }
    if table.contains(':') {
        return Err(format!(
            "table name {table:?} contains `:`, which separates the parts of a Redis key; choose a `table` without it"
        ));
    }
    Ok(())
}

/// The record's fields as one compact JSON object, by the schema's kinds:
/// nulls are left out; floats are strings holding the shortest decimal that
/// parses back to the same bits (`"inf"`, `"-inf"` for infinities); bytes
/// are standard base64; timestamps unix microseconds; UUIDs hyphenated
/// strings; JSON fields embedded as they are.
pub(super) fn encode_record(schema: &Schema, record: &Record) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(64 + record.fields.len() * 16);
    out.push(b'{');
    let mut first = true;
    for (name, v) in &record.fields {
        let Some(def) = schema.field(name) else {
            return Err(format!("field `{name}` is not in the entity schema"));
        };
        let encoded = match (def.ty.kind, v) {
            (_, Value::Null) if def.ty.nullable => continue,
            (_, Value::Null) => {
                return Err(format!(
                    "field `{name}` is not nullable, but the value is null"
                ));
            }
            (FieldKind::Bool, Value::Bool(b)) => Json::Bool(*b),
            (FieldKind::Int, Value::I64(i)) => Json::from(*i),
            (FieldKind::Float, Value::F64(f)) if f.is_nan() => {
                return Err(format!("field `{name}` is NaN, which cannot be stored"));
            }
            (FieldKind::Float, Value::F64(f)) => Json::String(float_text(*f)),
            (FieldKind::Float, Value::I64(i)) => Json::String(float_text(*i as f64)),
            (FieldKind::String, Value::String(s)) => Json::String(s.clone()),
            (FieldKind::Bytes, Value::Bytes(b)) => Json::String(BASE64.encode(b)),
            (FieldKind::Timestamp, Value::Timestamp(t)) => Json::from(t.timestamp_micros()),
            (FieldKind::Uuid, Value::Uuid(u)) => Json::String(u.hyphenated().to_string()),
            (FieldKind::Json, Value::Json(j)) => {
                if !first {
                    out.push(b',');
                }
                first = false;
                write_json(&mut out, &Json::String(def.name.to_string()))?;
                out.push(b':');
                write_json(&mut out, j)?;
                continue;
            }
            (kind, v) => {
                return Err(format!(
                    "field `{name}` is {}, but the value is {}",
                    kind.name(),
                    v.type_name()
                ));
            }
        };
        if !first {
            out.push(b',');
        }
        first = false;
        write_json(&mut out, &Json::String(def.name.to_string()))?;
        out.push(b':');
        write_json(&mut out, &encoded)?;
    }
    out.push(b'}');
    Ok(out)
}

fn write_json(out: &mut Vec<u8>, v: &Json) -> Result<(), String> {
    serde_json::to_writer(out, v).map_err(|e| format!("cannot encode a value as JSON: {e}"))
}

/// The shortest decimal that parses back to exactly `f` (Rust's `Debug`
/// formatting), or `inf` / `-inf`.
fn float_text(f: f64) -> String {
    if f == f64::INFINITY {
        "inf".into()
    } else if f == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{f:?}")
    }
}

/// A stored record back as the values the schema's kinds say, fields in
/// schema order, absent ones `Null`; keys the schema no longer has are
/// ignored.
pub(super) fn decode_record(
    schema: &Schema,
    key: &Key,
    version: u64,
    data: &[u8],
) -> Result<Record, String> {
    let mut map: Map<String, Json> = serde_json::from_slice(data)
        .map_err(|e| format!("the stored record is not a JSON object: {e}"))?;
    let mut fields = Vec::with_capacity(schema.fields.len());
    for def in schema.fields {
        let v = match map.remove(def.name) {
            None => Value::Null,
            Some(j) => {
                decode_value(def.ty.kind, j).map_err(|m| format!("field `{}`: {m}", def.name))?
            }
        };
        fields.push((def.name.into(), v));
    }
    Ok(Record {
        key: key.clone(),
        version,
        fields,
    })
}

fn decode_value(kind: FieldKind, j: Json) -> Result<Value, String> {
    let bad = |j: &Json| format!("holds {j}, which is not a stored {}", kind.name());
    Ok(match (kind, j) {
        (FieldKind::Json, j) => Value::Json(j),
        (FieldKind::Bool, Json::Bool(b)) => Value::Bool(b),
        (FieldKind::Int, Json::Number(n)) if n.is_i64() => {
            Value::I64(n.as_i64().unwrap_or_default())
        }
        (FieldKind::Float, Json::String(s)) => match s.parse::<f64>() {
            Ok(f) if !f.is_nan() => Value::F64(f),
            _ => return Err(bad(&Json::String(s))),
        },
        (FieldKind::String, Json::String(s)) => Value::String(s),
        (FieldKind::Bytes, Json::String(s)) => match BASE64.decode(s.as_bytes()) {
            Ok(b) => Value::Bytes(b),
            Err(_) => return Err(bad(&Json::String(s))),
        },
        (FieldKind::Timestamp, Json::Number(n)) => {
            match n.as_i64().and_then(DateTime::from_timestamp_micros) {
                Some(t) => Value::Timestamp(t),
                None => return Err(bad(&Json::Number(n))),
            }
        }
        (FieldKind::Uuid, Json::String(s)) => match Uuid::parse_str(&s) {
            Ok(u) => Value::Uuid(u),
            Err(_) => return Err(bad(&Json::String(s))),
        },
        (_, j) => return Err(bad(&j)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyKind;
    use crate::entity::{FieldDef, FieldType};

    static FIELDS: [FieldDef; 5] = [
        FieldDef {
            name: "id",
            ty: FieldType::required(FieldKind::Int),
        },
        FieldDef {
            name: "f",
            ty: FieldType::required(FieldKind::Float),
        },
        FieldDef {
            name: "b",
            ty: FieldType::required(FieldKind::Bytes),
        },
        FieldDef {
            name: "j",
            ty: FieldType {
                kind: FieldKind::Json,
                nullable: true,
            },
        },
        FieldDef {
            name: "t",
            ty: FieldType {
                kind: FieldKind::Timestamp,
                nullable: true,
            },
        },
    ];
    static S: Schema = Schema {
        name: "s",
        key: "id",
        key_kind: KeyKind::Int,
        partition_key: None,
        version: None,
        fields: &FIELDS,
    };

    #[test]
    fn keys() {
        assert_eq!(record_key("p", "t", &Key::Int(-7), Tag::None), b"p:t:-7");
        assert_eq!(
            record_key("p", "t", &Key::from("a:b\0"), Tag::None),
            b"p:t:a:b\0"
        );
        let u = Uuid::from_u128(0xABCD);
        assert_eq!(
            record_key("p", "t", &Key::Uuid(u), Tag::None),
            b"p:t:00000000-0000-0000-0000-00000000abcd"
        );
        assert_eq!(value_key("p", "t", &Key::from("x"), Tag::None), b"p#kv:t:x");
        // Cluster layout: the key is the hash tag, unless it has its own.
        assert_eq!(record_key("p", "t", &Key::Int(-7), Tag::Key), b"p:t:{-7}");
        assert_eq!(
            value_key("p", "t", &Key::from("x"), Tag::Key),
            b"p#kv:t:{x}"
        );
        assert_eq!(
            record_key("p", "t", &Key::from("{o1}:a"), Tag::Key),
            b"p:t:{o1}:a"
        );
        assert_eq!(
            record_key("p", "t", &Key::from("{}a}"), Tag::Key),
            b"p:t:{{}a}}"
        );
        assert_eq!(
            record_key("p", "t", &Key::from("{o1}:a"), Tag::Table),
            b"p:{t}:{o1}:a"
        );
        assert_eq!(value_key("p", "t", &Key::Int(1), Tag::Table), b"p#kv:{t}:1");
        assert!(has_hash_tag(b"x{a}") && !has_hash_tag(b"{}") && !has_hash_tag(b"a{"));
        assert_eq!(outbox_key("p", "t"), b"p:t#outbox");
        assert!(check_table("a:b").is_err());
        assert!(check_table("").is_err());
        assert!(check_table("user_1").is_ok());
    }

    #[test]
    fn compact_encoding_and_exact_round_trip() {
        let mut r = Record::new(Key::Int(1));
        r.set("id", Value::I64(1));
        r.set("f", Value::F64(0.1));
        r.set("b", Value::Bytes(vec![0, 255]));
        r.set("j", Value::Json(serde_json::json!({"z": 1, "a": null})));
        r.set("t", Value::Null);
        let data = encode_record(&S, &r).unwrap();
        assert_eq!(
            std::str::from_utf8(&data).unwrap(),
            r#"{"id":1,"f":"0.1","b":"AP8=","j":{"a":null,"z":1}}"#
        );
        let back = decode_record(&S, &r.key, 3, &data).unwrap();
        assert_eq!(back.fields, r.fields);
        assert_eq!(back.version, 3);
        for f in [
            f64::MAX,
            f64::MIN_POSITIVE,
            -1e-300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            5e-324,
        ] {
            r.set("f", Value::F64(f));
            let back = decode_record(&S, &r.key, 1, &encode_record(&S, &r).unwrap()).unwrap();
            assert_eq!(back.get("f"), Some(&Value::F64(f)));
        }
        // JSON null is kept apart from an absent value.
        r.set("j", Value::Json(Json::Null));
        let back = decode_record(&S, &r.key, 1, &encode_record(&S, &r).unwrap()).unwrap();
        assert_eq!(back.get("j"), Some(&Value::Json(Json::Null)));
    }

    #[test]
    fn bad_values_are_refused() {
        let mut r = Record::new(Key::Int(1));
        r.set("id", Value::from("one"));
        assert!(encode_record(&S, &r).unwrap_err().contains("is int"));
        let mut r = Record::new(Key::Int(1));
        r.set("f", Value::F64(f64::NAN));
        assert!(encode_record(&S, &r).unwrap_err().contains("NaN"));
        let mut r = Record::new(Key::Int(1));
        r.set("nope", Value::I64(1));
        assert!(
            encode_record(&S, &r)
                .unwrap_err()
                .contains("not in the entity schema")
        );
        let mut r = Record::new(Key::Int(1));
        r.set("b", Value::Null);
        assert!(encode_record(&S, &r).unwrap_err().contains("not nullable"));
        assert!(decode_record(&S, &Key::Int(1), 1, b"[1]").is_err());
        let e = decode_record(&S, &Key::Int(1), 1, br#"{"f":1.5}"#).unwrap_err();
        assert!(e.contains("field `f`"), "{e}");
    }
}
