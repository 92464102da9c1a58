//! [`Record`] → `T: Deserialize`, without a JSON round trip.

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

use crate::entity::Schema;
use crate::{Record, Value};

/// Why a record could not become the entity type.
#[derive(Debug)]
pub(crate) struct DeError(pub String);

impl std::fmt::Display for DeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DeError {}
impl de::Error for DeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DeError(msg.to_string())
    }
}

/// Builds the entity from a record; the version field is filled from
/// [`Record::version`].
pub(crate) fn from_record<T: DeserializeOwned>(
    schema: &'static Schema,
    record: Record,
) -> Result<T, DeError> {
    from_fields(schema, record.version, record.fields)
}

/// [`from_record`] of a record taken apart, so that the caller keeps its
/// key (for an error message) without copying it.
pub(crate) fn from_fields<T: DeserializeOwned>(
    schema: &'static Schema,
    version: u64,
    fields: Vec<(super::FieldName, Value)>,
) -> Result<T, DeError> {
    let version = schema.version.map(|name| (name, version));
    T::deserialize(RecordDe {
        fields: fields.into_iter(),
        version,
        pending: None,
    })
}

struct RecordDe {
    fields: std::vec::IntoIter<(super::FieldName, Value)>,
    version: Option<(&'static str, u64)>,
    pending: Option<Value>,
}

impl<'de> de::Deserializer<'de> for RecordDe {
    type Error = DeError;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_map(self)
    }
    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> de::MapAccess<'de> for RecordDe {
    type Error = DeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        if let Some((name, value)) = self.fields.next() {
            self.pending = Some(value);
            return seed
                .deserialize(name.as_ref().into_deserializer())
                .map(Some)
                .map_err(|e: de::value::Error| DeError(e.to_string()));
        }
        if let Some((name, version)) = self.version.take() {
            self.pending = Some(Value::I64(version as i64));
            return seed
                .deserialize(name.into_deserializer())
                .map(Some)
                .map_err(|e: de::value::Error| DeError(e.to_string()));
        }
        Ok(None)
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let v = self.pending.take().unwrap_or(Value::Null);
        seed.deserialize(ValueDe(v))
    }
}

/// Deserializes one [`Value`].
pub(crate) struct ValueDe(pub Value);

fn json_err(e: serde_json::Error) -> DeError {
    DeError(e.to_string())
}

impl<'de> de::Deserializer<'de> for ValueDe {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::I64(i) => visitor.visit_i64(i),
            Value::F64(f) => visitor.visit_f64(f),
            Value::String(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_seq(de::value::SeqDeserializer::new(b.into_iter())),
            Value::Timestamp(t) => {
                visitor.visit_string(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
            Value::Uuid(u) => visitor.visit_string(u.hyphenated().to_string()),
            Value::Json(j) => j.deserialize_any(visitor).map_err(json_err),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            Value::Json(serde_json::Value::Null) => visitor.visit_none(),
            other => visitor.visit_some(ValueDe(other)),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Bytes(b) => visitor.visit_byte_buf(b),
            Value::Uuid(u) => visitor.visit_bytes(u.as_bytes()),
            other => ValueDe(other).deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Json(j) => j
                .deserialize_enum(name, variants, visitor)
                .map_err(json_err),
            Value::String(s) => s
                .into_deserializer()
                .deserialize_enum(name, variants, visitor)
                .map_err(|e: de::value::Error| DeError(e.to_string())),
            other => Err(DeError(format!(
                "expected an enum, found {}",
                other.type_name()
            ))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match self.0 {
            Value::Json(j) => j
                .deserialize_struct(name, fields, visitor)
                .map_err(json_err),
            other => ValueDe(other).deserialize_any(visitor),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}
