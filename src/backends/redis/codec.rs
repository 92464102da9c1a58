//! Keys and record encoding for Redis: the record's fields as one compact
//! JSON object, typed by the entity's schema.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::DateTime;
use serde_json::Value as Json;
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
    let mut out = Vec::with_capacity(64 + record.fields.len() * 24);
    out.push(b'{');
    let mut first = true;
    for (name, v) in &record.fields {
        let Some(def) = schema.field(name) else {
            return Err(format!("field `{name}` is not in the entity schema"));
        };
        if v.is_null() {
            if def.ty.nullable {
                continue;
            }
            return Err(format!(
                "field `{name}` is not nullable, but the value is null"
            ));
        }
        if !first {
            out.push(b',');
        }
        first = false;
        // Written straight into the buffer: no value is copied on the way.
        write_json(&mut out, def.name)?;
        out.push(b':');
        match (def.ty.kind, v) {
            (FieldKind::Bool, Value::Bool(b)) => write_json(&mut out, b)?,
            (FieldKind::Int, Value::I64(i)) => write_json(&mut out, i)?,
            (FieldKind::Float, Value::F64(f)) if f.is_nan() => {
                return Err(format!("field `{name}` is NaN, which cannot be stored"));
            }
            (FieldKind::Float, Value::F64(f)) => write_float(&mut out, *f),
            (FieldKind::Float, Value::I64(i)) => write_float(&mut out, *i as f64),
            (FieldKind::String, Value::String(s)) => write_json(&mut out, s.as_str())?,
            (FieldKind::Bytes, Value::Bytes(b)) => {
                // Base64 needs no JSON escaping.
                out.push(b'"');
                let start = out.len();
                out.resize(start + base64::encoded_len(b.len(), true).unwrap_or(0), 0);
                let n = BASE64
                    .encode_slice(b, &mut out[start..])
                    .map_err(|e| format!("field `{name}`: cannot encode bytes: {e}"))?;
                out.truncate(start + n);
                out.push(b'"');
            }
            (FieldKind::Timestamp, Value::Timestamp(t)) => {
                write_json(&mut out, &t.timestamp_micros())?
            }
            (FieldKind::Uuid, Value::Uuid(u)) => {
                out.push(b'"');
                out.extend_from_slice(
                    u.hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer())
                        .as_bytes(),
                );
                out.push(b'"');
            }
            (FieldKind::Json, Value::Json(j)) => write_json(&mut out, j)?,
            (kind, v) => {
                return Err(format!(
                    "field `{name}` is {}, but the value is {}",
                    kind.name(),
                    v.type_name()
                ));
            }
        }
    }
    out.push(b'}');
    Ok(out)
}

fn write_json<V: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &V) -> Result<(), String> {
    serde_json::to_writer(out, v).map_err(|e| format!("cannot encode a value as JSON: {e}"))
}

/// `f` as a JSON string holding the shortest decimal that parses back to
/// exactly `f` (Rust's `Debug` formatting), or `inf` / `-inf`; never NaN.
fn write_float(out: &mut Vec<u8>, f: f64) {
    use std::io::Write;
    let _ = if f == f64::INFINITY {
        out.write_all(b"\"inf\"")
    } else if f == f64::NEG_INFINITY {
        out.write_all(b"\"-inf\"")
    } else {
        write!(out, "\"{f:?}\"")
    };
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
    // Read field by field into the record: no map of the object and no
    // copy of its keys on the way.
    let mut de = serde_json::Deserializer::from_slice(data);
    let (fields, bad) = serde::de::DeserializeSeed::deserialize(StoredFields(schema), &mut de)
        .and_then(|out| de.end().map(|()| out))
        .map_err(|e| format!("the stored record is not a JSON object: {e}"))?;
    if let Some(m) = bad {
        return Err(m);
    }
    Ok(Record {
        key: key.clone(),
        version,
        fields,
    })
}

/// Reads a stored JSON object into the schema's fields (in schema order,
/// absent ones `Null`, unknown keys skipped; a key given twice keeps its
/// last value), with the first field that does not decode as its kind.
struct StoredFields<'s>(&'s Schema);

impl<'de> serde::de::DeserializeSeed<'de> for StoredFields<'_> {
    type Value = (Vec<(crate::record::FieldName, Value)>, Option<String>);

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StoredFields<'_> {
    type Value = (Vec<(crate::record::FieldName, Value)>, Option<String>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let schema = self.0;
        let mut fields: Vec<(crate::record::FieldName, Value)> = schema
            .fields
            .iter()
            .map(|f| (f.name.into(), Value::Null))
            .collect();
        let mut bad = None;
        while let Some(slot) = map.next_key_seed(FieldSlot(schema))? {
            let Some(i) = slot else {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            };
            let def = &schema.fields[i];
            match decode_value(def.ty.kind, map.next_value()?) {
                Ok(v) => fields[i].1 = v,
                Err(m) => {
                    bad.get_or_insert_with(|| format!("field `{}`: {m}", def.name));
                }
            }
        }
        Ok((fields, bad))
    }
}

/// An object key as the index of the schema field it names, if any.
struct FieldSlot<'s>(&'s Schema);

impl<'de> serde::de::DeserializeSeed<'de> for FieldSlot<'_> {
    type Value = Option<usize>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for FieldSlot<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.fields.iter().position(|f| f.name == name))
    }
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
    fn decoding_reads_the_object_in_place() {
        // Unknown keys are skipped, a repeated key keeps its last value,
        // an escaped key names its field, absent fields are null.
        let data = br#"{"old":[1,{"x":2}],"id":1,"\u0066":"2.5","id":7,"b":"AP8="}"#;
        let r = decode_record(&S, &Key::Int(7), 2, data).unwrap();
        assert_eq!(r.get("id"), Some(&Value::I64(7)));
        assert_eq!(r.get("f"), Some(&Value::F64(2.5)));
        assert_eq!(r.get("b"), Some(&Value::Bytes(vec![0, 255])));
        assert_eq!(r.get("j"), Some(&Value::Null));
        assert_eq!(
            r.fields.iter().map(|(n, _)| n.as_ref()).collect::<Vec<_>>(),
            ["id", "f", "b", "j", "t"]
        );
        // Text with escapes survives the trip; trailing bytes are refused.
        static TEXT: [FieldDef; 2] = [
            FieldDef {
                name: "id",
                ty: FieldType::required(FieldKind::Int),
            },
            FieldDef {
                name: "s",
                ty: FieldType::required(FieldKind::String),
            },
        ];
        static T: Schema = Schema {
            name: "t",
            key: "id",
            key_kind: KeyKind::Int,
            partition_key: None,
            version: None,
            fields: &TEXT,
        };
        let mut r = Record::new(Key::Int(1));
        r.set("id", Value::I64(1));
        r.set("s", Value::from("quote \" slash \\ nul \0 é 😀"));
        let back = decode_record(&T, &r.key, 1, &encode_record(&T, &r).unwrap()).unwrap();
        assert_eq!(back.fields, r.fields);
        let e = decode_record(&T, &r.key, 1, br#"{"id":1,"s":"a"} x"#).unwrap_err();
        assert!(e.contains("not a JSON object"), "{e}");
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
