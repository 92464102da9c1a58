//! Documents: how a record is stored as a Cosmos DB item, and how keys
//! become item ids.
//!
//! An item is a flat JSON object:
//!
//! | property | holds |
//! | --- | --- |
//! | `id` | the key, as an id Cosmos accepts ([`item_id`]) |
//! | each field | the field's value, typed ([`encode_value`]) |
//! | `pr_version` | the record's version |
//! | `pr_exact` | exact text of values JSON numbers cannot hold (optional): integers beyond ±2^53, infinities, JSON fields holding such numbers or `-0.0` |
//! | `ttl` | seconds to live, when the write had a TTL |
//!
//! A field whose name Cosmos reserves (`id`, `ttl`, or starting with `_`)
//! is stored as `pr_<name>`; field names starting with `pr_` are refused.

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value as Json};

use crate::entity::{FieldKind, Schema};
use crate::{Key, KeyKind, Record, Value};

/// The version property.
pub(super) const VERSION: &str = "pr_version";
/// Marks a tombstone: the item of a deleted record, holding only its id,
/// partition key and last version, so a re-created record continues from
/// it; absent to reads, queries and preconditions.
pub(super) const DELETED: &str = "pr_deleted";
/// Exact values JSON numbers cannot hold: `{field: text}`.
pub(super) const EXACT: &str = "pr_exact";
/// Marks an outbox item: a change event waiting for the relay, in the
/// partition of its record; absent to reads, queries and counts.
pub(super) const OUTBOX: &str = "pr_outbox";
/// The order of a key's latest event (on its record or tombstone) and of
/// an outbox item: strictly increasing along a key's versions.
pub(super) const ORDER: &str = "pr_order";
/// An outbox item's event, as its CloudEvents JSON text (text keeps every
/// number exact).
pub(super) const EVENT: &str = "pr_event";
/// How outbox item ids start: `~` followed by anything but two upper-case
/// hex digits, which no key's id ([`item_id`]) can hold.
pub(super) const OUTBOX_ID_PREFIX: &str = "pr~outbox-";
/// The longest item id Cosmos accepts, in bytes.
pub(super) const MAX_ID_BYTES: usize = 255;
/// Integers beyond ±2^53 lose precision as JSON numbers (IEEE doubles).
const EXACT_INT: i64 = 1 << 53;

/// The property a field is stored under.
///
/// ```text
/// name -> name, id -> pr_id, ttl -> pr_ttl, _x -> pr__x
/// ```
pub(super) fn stored_name(field: &str) -> String {
    if field == "id" || field == "ttl" || field.starts_with('_') {
        format!("pr_{field}")
    } else {
        field.to_string()
    }
}

/// Why the schema's names cannot be stored, if they cannot.
pub(super) fn check_schema(schema: &Schema) -> Result<(), String> {
    for name in schema.fields.iter().map(|f| f.name).chain([schema.key]) {
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok {
            return Err(format!(
                "field `{name}` cannot be a Cosmos DB property path; use letters, digits and `_`"
            ));
        }
        if name.starts_with("pr_") {
            return Err(format!(
                "field `{name}` starts with `pr_`, which the cosmos store reserves for its own properties; rename the field"
            ));
        }
    }
    if let Some(pk) = schema.partition_key {
        if schema.field(pk).is_none() && pk != schema.key {
            return Err(format!("partition key `{pk}` is not a field"));
        }
    }
    Ok(())
}

/// The field the container is partitioned by: the entity's partition key,
/// else its key.
pub(super) fn partition_field(schema: &Schema) -> &'static str {
    schema.partition_key.unwrap_or(schema.key)
}

/// The container's partition key path, e.g. `/pr_id` or `/category`.
pub(super) fn partition_path(schema: &Schema) -> String {
    format!("/{}", stored_name(partition_field(schema)))
}

/// The item id of a key: integers in decimal, UUIDs lowercase hyphenated,
/// strings as they are unless they hold a character Cosmos ids cannot
/// (`/`, `\`, `?`, `#`), a control character, a trailing space, or `~`,
/// in which case each such character becomes `~XX` (its UTF-8 bytes in
/// upper-case hex); the empty string is `~`. The ids `.` and `..` are
/// `~2E` and `~2E~2E`: the id is a segment of the request's URL path, where
/// they would be dot segments that address the container (a delete of `..`
/// would delete it). No other id can be a dot segment: `/` is encoded, and
/// the driver sends `%` as `%25`, so `%2e` stays text. Reversible
/// ([`key_of_id`]); an id over 255 bytes is refused.
pub(super) fn item_id(key: &Key) -> Result<String, String> {
    let id = match key {
        Key::Int(i) => i.to_string(),
        Key::Uuid(u) => u.hyphenated().to_string(),
        Key::Str(s) if s.is_empty() => "~".to_string(),
        Key::Str(s) => {
            let trailing = s.len() - s.trim_end_matches(' ').len();
            let body_end = s.len() - trailing;
            let mut out = String::with_capacity(s.len());
            for (i, c) in s.char_indices() {
                let escape = matches!(c, '/' | '\\' | '?' | '#' | '~')
                    || c.is_control()
                    || (c == ' ' && i >= body_end);
                if escape {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("~{b:02X}"));
                    }
                } else {
                    out.push(c);
                }
            }
            if out == "." || out == ".." {
                out = out.replace('.', "~2E");
            }
            out
        }
    };
    if id.len() > MAX_ID_BYTES {
        return Err(format!(
            "key {key} is {} bytes as a Cosmos DB item id; Cosmos DB accepts at most {MAX_ID_BYTES}",
            id.len()
        ));
    }
    Ok(id)
}

/// The key an item id stands for (the inverse of [`item_id`]).
#[cfg_attr(not(test), allow(dead_code))]
pub(super) fn key_of_id(kind: KeyKind, id: &str) -> Option<Key> {
    match kind {
        KeyKind::Int => id.parse().ok().map(Key::Int),
        KeyKind::Uuid => uuid::Uuid::parse_str(id).ok().map(Key::Uuid),
        KeyKind::Str if id == "~" => Some(Key::Str(String::new())),
        KeyKind::Str => {
            let mut bytes = Vec::with_capacity(id.len());
            let mut rest = id.as_bytes();
            while let Some((&b, tail)) = rest.split_first() {
                if b == b'~' {
                    let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
                    bytes.push(u8::from_str_radix(hex, 16).ok()?);
                    rest = &tail[2..];
                } else {
                    bytes.push(b);
                    rest = tail;
                }
            }
            String::from_utf8(bytes).ok().map(Key::Str)
        }
    }
}

/// A key as the typed JSON value stored in the key's property.
pub(super) fn key_json(key: &Key) -> Json {
    match key {
        Key::Str(s) => Json::String(s.clone()),
        Key::Int(i) => encode_int(*i).0,
        Key::Uuid(u) => Json::String(u.hyphenated().to_string()),
    }
}

fn encode_int(i: i64) -> (Json, Option<String>) {
    if (-EXACT_INT..=EXACT_INT).contains(&i) {
        (Json::from(i), None)
    } else {
        (Json::from(i as f64), Some(i.to_string()))
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`: fixed width, so text order is time order.
pub(super) fn timestamp_text(t: &DateTime<Utc>) -> Result<String, String> {
    if !(0..=9999).contains(&t.year()) {
        return Err(format!(
            "timestamp {t} is outside the years 0000-9999 the cosmos store can order"
        ));
    }
    Ok(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// A value as it is stored and as a query parameter: numbers as JSON
/// numbers (integers beyond ±2^53 and infinities also get exact text),
/// bytes as lower-case hex (so text order is byte order), timestamps as
/// fixed-width UTC text, UUIDs hyphenated lower-case, JSON as it is.
/// Returns the JSON value and the exact text, if one is needed.
pub(super) fn encode_value(v: &Value) -> Result<(Json, Option<String>), String> {
    Ok(match v {
        Value::Null => (Json::Null, None),
        Value::Bool(b) => (Json::Bool(*b), None),
        Value::I64(i) => encode_int(*i),
        Value::F64(f) if f.is_nan() => return Err("NaN cannot be stored".into()),
        Value::F64(f) if f.is_infinite() => {
            let edge = if *f > 0.0 { f64::MAX } else { f64::MIN };
            (
                Json::from(edge),
                Some(if *f > 0.0 { "inf" } else { "-inf" }.into()),
            )
        }
        Value::F64(f) => (Json::from(*f), None),
        Value::String(s) => (Json::String(s.clone()), None),
        Value::Bytes(b) => (Json::String(hex(b)), None),
        Value::Timestamp(t) => (Json::String(timestamp_text(t)?), None),
        Value::Uuid(u) => (Json::String(u.hyphenated().to_string()), None),
        // The item keeps the value (for `is_null`); numbers the service's
        // doubles would change are kept exactly as JSON text too.
        Value::Json(j) if json_needs_text(j) => (j.clone(), Some(j.to_string())),
        Value::Json(j) => (j.clone(), None),
    })
}

/// Whether a JSON value holds a number Cosmos DB (which keeps numbers as
/// IEEE doubles) would change: an integer beyond ±2^53, or `-0.0`.
fn json_needs_text(j: &Json) -> bool {
    let mut stack = vec![j];
    while let Some(v) = stack.pop() {
        match v {
            Json::Number(n) => {
                let changed = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                    (Some(i), ..) => !(-EXACT_INT..=EXACT_INT).contains(&i),
                    (None, Some(u), _) => u > EXACT_INT as u64,
                    (None, None, Some(f)) => f == 0.0 && f.is_sign_negative(),
                    _ => false,
                };
                if changed {
                    return true;
                }
            }
            Json::Array(a) => stack.extend(a),
            Json::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    false
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The item for a record: its fields, the key as `id` and typed in the
/// key's property, the version and the TTL.
pub(super) fn encode_record(
    schema: &Schema,
    record: &Record,
    version: u64,
    ttl_secs: Option<u64>,
) -> Result<Map<String, Json>, String> {
    let mut doc = Map::with_capacity(record.fields.len() + 4);
    let mut exact = Map::new();
    doc.insert("id".into(), Json::String(item_id(&record.key)?));
    for (name, v) in &record.fields {
        let Some(def) = schema.field(name) else {
            return Err(format!("field `{name}` is not in the entity schema"));
        };
        if v.is_null() && !def.ty.nullable {
            return Err(format!(
                "field `{name}` is not nullable, but the value is null"
            ));
        }
        let typed = match (def.ty.kind, v) {
            (_, Value::Null) => true,
            (FieldKind::Float, Value::I64(_)) => true,
            (kind, v) => kind_of(v) == Some(kind),
        };
        if !typed {
            return Err(format!(
                "field `{name}` is {}, but the value is {}",
                def.ty.kind.name(),
                v.type_name()
            ));
        }
        let v = match (def.ty.kind, v) {
            (FieldKind::Float, Value::I64(i)) => Value::F64(*i as f64),
            _ => v.clone(),
        };
        let (json, text) = encode_value(&v).map_err(|m| format!("field `{name}`: {m}"))?;
        if let Some(t) = text {
            exact.insert(name.to_string(), Json::String(t));
        }
        doc.insert(stored_name(name), json);
    }
    // The key, typed, also when it is not a declared field.
    doc.insert(stored_name(schema.key), key_json(&record.key));
    if let Key::Int(i) = record.key {
        if let (_, Some(t)) = encode_int(i) {
            exact.insert(schema.key.to_string(), Json::String(t));
        }
    }
    if let Some(pk) = schema.partition_key {
        if !doc.contains_key(&stored_name(pk)) {
            doc.insert(stored_name(pk), Json::Null);
        }
    }
    doc.insert(VERSION.into(), Json::from(version));
    if !exact.is_empty() {
        doc.insert(EXACT.into(), Json::Object(exact));
    }
    if let Some(secs) = ttl_secs {
        doc.insert("ttl".into(), Json::from(secs));
    }
    Ok(doc)
}

fn kind_of(v: &Value) -> Option<FieldKind> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => FieldKind::Bool,
        Value::I64(_) => FieldKind::Int,
        Value::F64(_) => FieldKind::Float,
        Value::String(_) => FieldKind::String,
        Value::Bytes(_) => FieldKind::Bytes,
        Value::Timestamp(_) => FieldKind::Timestamp,
        Value::Uuid(_) => FieldKind::Uuid,
        Value::Json(_) => FieldKind::Json,
    })
}

/// The version stored in an item.
pub(super) fn version_of(doc: &Map<String, Json>) -> u64 {
    doc.get(VERSION).and_then(Json::as_u64).unwrap_or(0)
}

/// Whether an item is a tombstone ([`DELETED`]).
pub(super) fn is_tombstone(doc: &Map<String, Json>) -> bool {
    doc.contains_key(DELETED)
}

/// The `_etag` of an item as the service returned it.
pub(super) fn etag_of(doc: &Map<String, Json>) -> Option<String> {
    doc.get("_etag").and_then(Json::as_str).map(str::to_string)
}

/// A stored item back as a record: fields in schema order (absent ones
/// `Null`), the key from its typed property.
pub(super) fn decode_record(schema: &Schema, doc: &Map<String, Json>) -> Result<Record, String> {
    let exact = doc.get(EXACT).and_then(Json::as_object);
    let exact_of = |name: &str| exact.and_then(|m| m.get(name)).and_then(Json::as_str);
    let key_value = doc
        .get(&stored_name(schema.key))
        .ok_or_else(|| format!("the item has no `{}` property", stored_name(schema.key)))?;
    let key = match schema.key_kind {
        KeyKind::Str => key_value.as_str().map(|s| Key::Str(s.to_string())),
        KeyKind::Int => match exact_of(schema.key) {
            Some(t) => t.parse().ok().map(Key::Int),
            None => json_int(key_value).map(Key::Int),
        },
        KeyKind::Uuid => key_value
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .map(Key::Uuid),
    }
    .ok_or_else(|| {
        format!(
            "the item's key {key_value} is not a {:?} key",
            schema.key_kind
        )
    })?;
    let mut fields = Vec::with_capacity(schema.fields.len());
    for def in schema.fields {
        let v = match doc.get(&stored_name(def.name)) {
            None | Some(Json::Null) => Value::Null,
            Some(j) => decode_value(def.ty.kind, j, exact_of(def.name))
                .map_err(|m| format!("field `{}`: {m}", def.name))?,
        };
        fields.push((def.name.into(), v));
    }
    Ok(Record {
        key,
        version: version_of(doc),
        fields,
    })
}

fn json_int(j: &Json) -> Option<i64> {
    j.as_i64().or_else(|| {
        j.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.3e18)
            .map(|f| f as i64)
    })
}

fn decode_value(kind: FieldKind, j: &Json, exact: Option<&str>) -> Result<Value, String> {
    let bad = || format!("stored value {j} is not a {}", kind.name());
    Ok(match kind {
        FieldKind::Bool => Value::Bool(j.as_bool().ok_or_else(bad)?),
        FieldKind::Int => match exact {
            Some(t) => Value::I64(t.parse().map_err(|_| bad())?),
            None => Value::I64(json_int(j).ok_or_else(bad)?),
        },
        FieldKind::Float => match exact {
            Some("inf") => Value::F64(f64::INFINITY),
            Some("-inf") => Value::F64(f64::NEG_INFINITY),
            _ => Value::F64(j.as_f64().ok_or_else(bad)?),
        },
        FieldKind::String => Value::String(j.as_str().ok_or_else(bad)?.to_string()),
        FieldKind::Bytes => Value::Bytes(j.as_str().and_then(unhex).ok_or_else(bad)?),
        FieldKind::Timestamp => {
            let s = j.as_str().ok_or_else(bad)?;
            Value::Timestamp(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|_| bad())?
                    .with_timezone(&Utc),
            )
        }
        FieldKind::Uuid => Value::Uuid(
            j.as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .ok_or_else(bad)?,
        ),
        FieldKind::Json => match exact {
            Some(t) => Value::Json(serde_json::from_str(t).map_err(|_| bad())?),
            None => Value::Json(j.clone()),
        },
    })
}
