//! [`ChangeEvent`]: the one envelope every change source emits (the
//! transactional outbox, change capture) and every projection reads.
//!
//! On the wire an event is a CloudEvents 1.0 JSON document (structured
//! mode), so any CloudEvents reader can consume the stream:
//!
//! ```json
//! {"specversion":"1.0","id":"0b6c…","source":"polyrouter/main","type":"polyrouter.record.put",
//!  "subject":"order/o-1","time":"2026-12-04T20:00:00.000001Z","datacontenttype":"application/json",
//!  "prschema":1,"store":"main","entity":"order","key":"o-1","version":3,
//!  "data":{"id":"o-1","customer":"c-7","total":42.5}}
//! ```
//!
//! `prschema` is the envelope's own version (1); a reader refuses a larger
//! one. `data` is the after-image (absent on deletes, and on puts of a
//! route that does not ship it); its fields are typed by the entity's
//! schema: integers as JSON numbers, floats as numbers (infinities as the
//! strings `"inf"` / `"-inf"`), bytes as standard base64, timestamps as
//! RFC 3339 with microseconds, UUIDs hyphenated, JSON fields as they are.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::entity::{FieldKind, Schema};
use crate::{Key, KeyKind, Record, Value};

/// The envelope version this build writes and the largest it reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// What happened to the record.
///
/// ```
/// use polyrouter::sync::Operation;
/// assert_eq!(Operation::Put.event_type(), "polyrouter.record.put");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Inserted or replaced; `data` holds the after-image when shipped.
    Put,
    /// Deleted (the key's tombstone has the event's version).
    Delete,
}

impl Operation {
    /// The CloudEvents `type` of this operation.
    ///
    /// ```
    /// assert_eq!(polyrouter::sync::Operation::Delete.event_type(), "polyrouter.record.delete");
    /// ```
    pub fn event_type(self) -> &'static str {
        match self {
            Operation::Put => "polyrouter.record.put",
            Operation::Delete => "polyrouter.record.delete",
        }
    }

    fn from_event_type(t: &str) -> Option<Self> {
        match t {
            "polyrouter.record.put" => Some(Operation::Put),
            "polyrouter.record.delete" => Some(Operation::Delete),
            _ => None,
        }
    }
}

/// One change of one record, committed by its store.
///
/// Per key, events carry strictly increasing versions (a key's versions
/// never repeat over its life, deletes included), so a consumer that applies
/// an event only when it is newer than what it holds gets the same result
/// from any number of redeliveries.
///
/// ```
/// use polyrouter::sync::{ChangeEvent, Operation};
/// use polyrouter::Key;
/// let e = ChangeEvent::new("main", "order", Key::from("o-1"), Operation::Delete, 4);
/// let wire = e.to_json();
/// let back = ChangeEvent::from_json(&wire).unwrap();
/// assert_eq!(back, e);
/// assert_eq!(back.subject(), "order/o-1");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Unique event id; the bus's de-duplication id.
    pub id: String,
    /// The store that committed the change.
    pub store: String,
    /// The entity name.
    pub entity: String,
    /// The record's key.
    pub key: Key,
    /// Put or delete.
    pub op: Operation,
    /// The record's version after the change (for a delete, its tombstone's).
    pub version: u64,
    /// When the store committed the change.
    pub time: DateTime<Utc>,
    /// The after-image: field values by name (puts of routes that ship it).
    pub data: Option<Map<String, Json>>,
}

/// The JSON shape on the wire (CloudEvents structured mode).
#[derive(Serialize, Deserialize)]
struct Wire {
    specversion: String,
    id: String,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    subject: String,
    time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    datacontenttype: Option<String>,
    prschema: u32,
    store: String,
    entity: String,
    key: Json,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Map<String, Json>>,
}

impl ChangeEvent {
    /// An event with a fresh id, committed now, without an after-image.
    ///
    /// ```
    /// use polyrouter::sync::{ChangeEvent, Operation};
    /// let e = ChangeEvent::new("main", "user", polyrouter::Key::from(7i64), Operation::Put, 1);
    /// assert_eq!(e.version, 1);
    /// assert!(e.data.is_none());
    /// ```
    pub fn new(store: &str, entity: &str, key: Key, op: Operation, version: u64) -> Self {
        ChangeEvent {
            id: Uuid::new_v4().to_string(),
            store: store.into(),
            entity: entity.into(),
            key,
            op,
            version,
            time: Utc::now().trunc_subsecs(6),
            data: None,
        }
    }

    /// A put event carrying `record` as its after-image.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, KeyKind, Schema, Key, Record, Value};
    /// # static F: [FieldDef; 2] = [FieldDef::required("id", FieldKind::String), FieldDef::required("n", FieldKind::Int)];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// use polyrouter::sync::ChangeEvent;
    /// let mut r = Record::new(Key::from("a"));
    /// r.set("id", Value::from("a"));
    /// r.set("n", Value::I64(3));
    /// r.version = 2;
    /// let e = ChangeEvent::put_of("main", &S, &r);
    /// assert_eq!(e.record(&S).unwrap(), Some(r));
    /// ```
    pub fn put_of(store: &str, schema: &Schema, record: &Record) -> Self {
        let mut e = ChangeEvent::new(
            store,
            schema.name,
            record.key.clone(),
            Operation::Put,
            record.version,
        );
        e.data = Some(record_to_json(record));
        e
    }

    /// The CloudEvents `subject`: `{entity}/{key}`.
    ///
    /// ```
    /// use polyrouter::sync::{ChangeEvent, Operation};
    /// let e = ChangeEvent::new("s", "user", polyrouter::Key::from(7i64), Operation::Put, 1);
    /// assert_eq!(e.subject(), "user/7");
    /// ```
    pub fn subject(&self) -> String {
        format!("{}/{}", self.entity, key_text(&self.key))
    }

    /// The event as one CloudEvents JSON document.
    ///
    /// ```
    /// use polyrouter::sync::{ChangeEvent, Operation};
    /// let e = ChangeEvent::new("s", "user", polyrouter::Key::from("u"), Operation::Put, 1);
    /// let text = String::from_utf8(e.to_json()).unwrap();
    /// assert!(text.contains(r#""specversion":"1.0""#));
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        let wire = Wire {
            specversion: "1.0".into(),
            id: self.id.clone(),
            source: format!("polyrouter/{}", self.store),
            kind: self.op.event_type().into(),
            subject: self.subject(),
            time: self.time.to_rfc3339_opts(SecondsFormat::Micros, true),
            datacontenttype: self.data.as_ref().map(|_| "application/json".into()),
            prschema: ENVELOPE_VERSION,
            store: self.store.clone(),
            entity: self.entity.clone(),
            key: key_json(&self.key),
            version: self.version,
            data: self.data.clone(),
        };
        serde_json::to_vec(&wire).expect("an event always serializes")
    }

    /// Reads an event written by [`ChangeEvent::to_json`]; the error says
    /// what is wrong (not JSON, not a polyrouter event, a newer envelope).
    ///
    /// ```
    /// assert!(polyrouter::sync::ChangeEvent::from_json(b"{}").is_err());
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let w: Wire = serde_json::from_slice(bytes)
            .map_err(|e| format!("not a polyrouter change event: {e}"))?;
        if w.specversion != "1.0" {
            return Err(format!(
                "CloudEvents specversion {:?} is not 1.0",
                w.specversion
            ));
        }
        if w.prschema > ENVELOPE_VERSION {
            return Err(format!(
                "event envelope version {} is newer than this build reads ({ENVELOPE_VERSION}); upgrade polyrouter",
                w.prschema
            ));
        }
        let op = Operation::from_event_type(&w.kind)
            .ok_or_else(|| format!("event type {:?} is not a polyrouter record change", w.kind))?;
        let key = match &w.key {
            Json::String(s) => Key::Str(s.clone()),
            Json::Number(n) => Key::Int(
                n.as_i64()
                    .ok_or_else(|| format!("event key {n} is not a 64-bit integer"))?,
            ),
            other => {
                return Err(format!(
                    "event key {other} is neither a string nor an integer"
                ));
            }
        };
        let time = DateTime::parse_from_rfc3339(&w.time)
            .map_err(|e| format!("event time {:?}: {e}", w.time))?
            .with_timezone(&Utc);
        Ok(ChangeEvent {
            id: w.id,
            store: w.store,
            entity: w.entity,
            key,
            op,
            version: w.version,
            time,
            data: w.data,
        })
    }

    /// The key, typed as the entity's schema says (a UUID key travels as
    /// its hyphenated string).
    ///
    /// ```
    /// use polyrouter::{Key, KeyKind, sync::{ChangeEvent, Operation}};
    /// let u = uuid::Uuid::new_v4();
    /// let e = ChangeEvent::new("s", "t", Key::Uuid(u), Operation::Delete, 2);
    /// let back = ChangeEvent::from_json(&e.to_json()).unwrap();
    /// assert_eq!(back.typed_key(KeyKind::Uuid).unwrap(), Key::Uuid(u));
    /// ```
    pub fn typed_key(&self, kind: KeyKind) -> Result<Key, String> {
        match (kind, &self.key) {
            (KeyKind::Str, Key::Str(_))
            | (KeyKind::Int, Key::Int(_))
            | (KeyKind::Uuid, Key::Uuid(_)) => Ok(self.key.clone()),
            (KeyKind::Uuid, Key::Str(s)) => Uuid::parse_str(s)
                .map(Key::Uuid)
                .map_err(|e| format!("event key {s:?} is not a UUID: {e}")),
            (KeyKind::Str, Key::Uuid(u)) => Ok(Key::Str(u.hyphenated().to_string())),
            (kind, key) => Err(format!(
                "event key {key} does not fit the entity's {kind:?} keys"
            )),
        }
    }

    /// The after-image as a record typed by `schema` (`None` for deletes
    /// and for puts without data).
    ///
    /// ```
    /// use polyrouter::sync::{ChangeEvent, Operation};
    /// # use polyrouter::{FieldDef, KeyKind, Schema};
    /// # static F: [FieldDef; 0] = [];
    /// # static S: Schema = Schema { name: "t", key: "id", key_kind: KeyKind::Str, partition_key: None, version: None, fields: &F };
    /// let e = ChangeEvent::new("s", "t", polyrouter::Key::from("a"), Operation::Delete, 2);
    /// assert_eq!(e.record(&S).unwrap(), None);
    /// ```
    pub fn record(&self, schema: &'static Schema) -> Result<Option<Record>, String> {
        let Some(data) = &self.data else {
            return Ok(None);
        };
        if self.op == Operation::Delete {
            return Ok(None);
        }
        let mut record = Record::new(self.typed_key(schema.key_kind)?);
        record.version = self.version;
        for f in schema.fields {
            let v = match data.get(f.name) {
                None | Some(Json::Null) => Value::Null,
                Some(j) => json_value(f.ty.kind, j)
                    .map_err(|e| format!("field `{}` of the event: {e}", f.name))?,
            };
            record.fields.push((f.name.into(), v));
        }
        Ok(Some(record))
    }
}

fn key_text(key: &Key) -> String {
    match key {
        Key::Str(s) => s.clone(),
        Key::Int(i) => i.to_string(),
        Key::Uuid(u) => u.hyphenated().to_string(),
    }
}

fn key_json(key: &Key) -> Json {
    match key {
        Key::Int(i) => Json::from(*i),
        other => Json::String(key_text(other)),
    }
}

/// A record's fields as the event's `data` object (nulls kept as `null`).
fn record_to_json(record: &Record) -> Map<String, Json> {
    record
        .fields
        .iter()
        .map(|(name, v)| (name.to_string(), value_json(v)))
        .collect()
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::I64(i) => Json::from(*i),
        Value::F64(f) if f.is_finite() => Json::from(*f),
        Value::F64(f) if *f > 0.0 => Json::String("inf".into()),
        Value::F64(_) => Json::String("-inf".into()),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(BASE64.encode(b)),
        Value::Timestamp(t) => Json::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        Value::Uuid(u) => Json::String(u.hyphenated().to_string()),
        Value::Json(j) => j.clone(),
    }
}

fn json_value(kind: FieldKind, j: &Json) -> Result<Value, String> {
    let wrong = || format!("{j} is not a {}", kind.name());
    Ok(match kind {
        FieldKind::Bool => Value::Bool(j.as_bool().ok_or_else(wrong)?),
        FieldKind::Int => Value::I64(j.as_i64().ok_or_else(wrong)?),
        FieldKind::Float => match j {
            Json::String(s) if s == "inf" => Value::F64(f64::INFINITY),
            Json::String(s) if s == "-inf" => Value::F64(f64::NEG_INFINITY),
            _ => Value::F64(j.as_f64().ok_or_else(wrong)?),
        },
        FieldKind::String => Value::String(j.as_str().ok_or_else(wrong)?.to_string()),
        FieldKind::Bytes => Value::Bytes(
            BASE64
                .decode(j.as_str().ok_or_else(wrong)?)
                .map_err(|e| format!("{j} is not base64: {e}"))?,
        ),
        FieldKind::Timestamp => Value::Timestamp(
            DateTime::parse_from_rfc3339(j.as_str().ok_or_else(wrong)?)
                .map_err(|e| format!("{j} is not an RFC 3339 time: {e}"))?
                .with_timezone(&Utc),
        ),
        FieldKind::Uuid => Value::Uuid(
            Uuid::parse_str(j.as_str().ok_or_else(wrong)?)
                .map_err(|e| format!("{j} is not a UUID: {e}"))?,
        ),
        FieldKind::Json => Value::Json(j.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::FieldDef;

    static FIELDS: [FieldDef; 8] = [
        FieldDef::required("id", FieldKind::String),
        FieldDef::required("b", FieldKind::Bool),
        FieldDef::required("i", FieldKind::Int),
        FieldDef::nullable("f", FieldKind::Float),
        FieldDef::required("bytes", FieldKind::Bytes),
        FieldDef::required("t", FieldKind::Timestamp),
        FieldDef::required("u", FieldKind::Uuid),
        FieldDef::nullable("j", FieldKind::Json),
    ];
    static SCHEMA: Schema = Schema {
        name: "thing",
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: None,
        version: None,
        fields: &FIELDS,
    };

    fn record(f: Value) -> Record {
        let mut r = Record::new(Key::from("k\u{0}/é"));
        r.version = 9;
        r.set("id", Value::from("k\u{0}/é"));
        r.set("b", Value::Bool(true));
        r.set("i", Value::I64(i64::MIN));
        r.set("f", f);
        r.set("bytes", Value::Bytes(vec![0, 255, 10]));
        r.set(
            "t",
            Value::timestamp(DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z").unwrap()),
        );
        r.set("u", Value::Uuid(Uuid::new_v4()));
        r.set("j", Value::Json(serde_json::json!({"a": [1, "x", null]})));
        r
    }

    #[test]
    fn every_kind_round_trips_through_the_wire() {
        for f in [
            Value::F64(-0.5),
            Value::F64(f64::INFINITY),
            Value::F64(f64::NEG_INFINITY),
            Value::Null,
        ] {
            let r = record(f);
            let e = ChangeEvent::put_of("main", &SCHEMA, &r);
            let back = ChangeEvent::from_json(&e.to_json()).unwrap();
            assert_eq!(back, e);
            assert_eq!(back.record(&SCHEMA).unwrap(), Some(r));
        }
    }

    #[test]
    fn integer_and_uuid_keys_keep_their_type() {
        let e = ChangeEvent::new("s", "t", Key::Int(-3), Operation::Put, 1);
        let back = ChangeEvent::from_json(&e.to_json()).unwrap();
        assert_eq!(back.key, Key::Int(-3));
        assert_eq!(back.typed_key(KeyKind::Int).unwrap(), Key::Int(-3));
        assert!(back.typed_key(KeyKind::Uuid).is_err());
    }

    #[test]
    fn readers_refuse_what_they_cannot_read() {
        let e = ChangeEvent::new("s", "t", Key::from("a"), Operation::Put, 1);
        let mut j: Json = serde_json::from_slice(&e.to_json()).unwrap();
        j["prschema"] = Json::from(ENVELOPE_VERSION + 1);
        let err = ChangeEvent::from_json(&serde_json::to_vec(&j).unwrap()).unwrap_err();
        assert!(err.contains("newer"), "{err}");
        j["prschema"] = Json::from(1);
        j["type"] = Json::from("com.example.other");
        assert!(ChangeEvent::from_json(&serde_json::to_vec(&j).unwrap()).is_err());
        assert!(ChangeEvent::from_json(b"not json").is_err());
    }

    #[test]
    fn data_of_the_wrong_type_is_an_error_naming_the_field() {
        let mut e = ChangeEvent::put_of("main", &SCHEMA, &record(Value::F64(1.0)));
        e.data
            .as_mut()
            .unwrap()
            .insert("i".into(), Json::String("x".into()));
        let err = e.record(&SCHEMA).unwrap_err();
        assert!(err.contains("field `i`"), "{err}");
    }

    #[test]
    fn the_wire_carries_the_cloudevents_attributes() {
        let e = ChangeEvent::put_of("main", &SCHEMA, &record(Value::Null));
        let j: Json = serde_json::from_slice(&e.to_json()).unwrap();
        for attr in ["specversion", "id", "source", "type", "subject", "time"] {
            assert!(j.get(attr).is_some(), "missing {attr}");
        }
        assert_eq!(j["source"], "polyrouter/main");
        assert_eq!(j["datacontenttype"], "application/json");
    }
}
