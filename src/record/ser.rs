//! `T: Serialize` → [`Record`], driven by the entity's static schema.

use serde::ser::{self, Impossible, Serialize};

use crate::entity::{FieldKind, Schema};
use crate::{Key, Record, Value};

/// Why a value could not become a record; the router adds store and entity.
#[derive(Debug)]
pub(crate) struct SerError(pub String);

impl std::fmt::Display for SerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for SerError {}
impl ser::Error for SerError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        SerError(msg.to_string())
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, SerError> {
    Err(SerError(msg.into()))
}

/// Converts an entity value into a record: the key is taken from `key`, the
/// version field is left out, and every field is checked against its
/// logical type.
pub(crate) fn to_record<T: Serialize + ?Sized>(
    schema: &'static Schema,
    key: Key,
    value: &T,
) -> Result<Record, SerError> {
    let mut record = Record {
        key,
        version: 0,
        fields: Vec::with_capacity(schema.fields.len()),
    };
    value.serialize(RecordSer {
        schema,
        record: &mut record,
    })?;
    for f in schema.fields {
        if record.get(f.name).is_none() {
            if f.ty.nullable {
                record.fields.push((f.name.into(), Value::Null));
            } else {
                return err(format!("field `{}` is missing", f.name));
            }
        }
    }
    Ok(record)
}

struct RecordSer<'a> {
    schema: &'static Schema,
    record: &'a mut Record,
}

impl RecordSer<'_> {
    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), SerError> {
        if Some(name) == self.schema.version {
            // Not a stored field: kept as the record's version, which
            // `Repo::update` uses as its precondition.
            if let Ok(Value::I64(v)) = value.serialize(ValueSer {
                kind: FieldKind::Int,
            }) {
                self.record.version = u64::try_from(v).unwrap_or(0);
            }
            return Ok(());
        }
        let hint = self.record.fields.len();
        let def = match self.schema.fields.get(hint) {
            Some(d) if d.name == name => d,
            _ => match self.schema.field(name) {
                Some(d) => d,
                None => return err(format!("field `{name}` is not in the entity schema")),
            },
        };
        let v = if def.ty.kind == FieldKind::Json {
            match super::depth::to_json(value) {
                Ok(serde_json::Value::Null) => Value::Null,
                Ok(j) => Value::Json(j),
                Err(e) => return err(format!("field `{name}`: {e}")),
            }
        } else {
            value
                .serialize(ValueSer { kind: def.ty.kind })
                .map_err(|e| SerError(format!("field `{name}`: {}", e.0)))?
        };
        if v.is_null() && !def.ty.nullable {
            return err(format!("field `{name}` is not nullable"));
        }
        self.record.fields.push((def.name.into(), v));
        Ok(())
    }
}

macro_rules! not_a_struct {
    ($($m:ident($($t:ty),*)),*) => {$(
        fn $m(self, $(_: $t),*) -> Result<(), SerError> {
            err("an entity must serialize as a struct")
        }
    )*};
}

impl<'a> ser::Serializer for RecordSer<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Impossible<(), SerError>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = MapSer<'a>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), SerError>;

    not_a_struct!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str)
    );

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), SerError> {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), SerError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), SerError> {
        err("an entity must serialize as a struct")
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        err("an entity must serialize as a struct")
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, SerError> {
        err("an entity must serialize as a struct")
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        err("an entity must serialize as a struct")
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        err("an entity must serialize as a struct")
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Ok(MapSer {
            inner: self,
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, SerError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        err("an entity must serialize as a struct")
    }
}

impl ser::SerializeStruct for RecordSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        self.field(name, value)
    }
    fn skip_field(&mut self, _: &'static str) -> Result<(), SerError> {
        Ok(())
    }
    fn end(self) -> Result<(), SerError> {
        Ok(())
    }
}

/// Structs serialized as maps (e.g. by `#[serde(flatten)]` elsewhere).
pub(crate) struct MapSer<'a> {
    inner: RecordSer<'a>,
    key: Option<String>,
}

impl ser::SerializeMap for MapSer<'_> {
    type Ok = ();
    type Error = SerError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerError> {
        match key.serialize(ValueSer {
            kind: FieldKind::String,
        })? {
            Value::String(s) => {
                self.key = Some(s);
                Ok(())
            }
            _ => err("entity map keys must be strings"),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerError> {
        let key = self.key.take().unwrap_or_default();
        self.inner.field(&key, value)
    }
    fn end(self) -> Result<(), SerError> {
        Ok(())
    }
}

/// Serializes one field value as a [`Value`] of the expected kind.
struct ValueSer {
    kind: FieldKind,
}

impl ValueSer {
    fn int(self, v: i128) -> Result<Value, SerError> {
        match self.kind {
            FieldKind::Int => i64::try_from(v)
                .map(Value::I64)
                .or_else(|_| err(format!("{v} is out of the 64-bit signed integer range"))),
            FieldKind::Float => Ok(Value::F64(v as f64)),
            k => err(format!("expected {}, got an integer", k.name())),
        }
    }
    fn mismatch(self, got: &str) -> Result<Value, SerError> {
        err(format!("expected {}, got {got}", self.kind.name()))
    }
}

impl ser::Serializer for ValueSer {
    type Ok = Value;
    type Error = SerError;
    type SerializeSeq = BytesSer;
    type SerializeTuple = BytesSer;
    type SerializeTupleStruct = Impossible<Value, SerError>;
    type SerializeTupleVariant = Impossible<Value, SerError>;
    type SerializeMap = Impossible<Value, SerError>;
    type SerializeStruct = Impossible<Value, SerError>;
    type SerializeStructVariant = Impossible<Value, SerError>;

    fn serialize_bool(self, v: bool) -> Result<Value, SerError> {
        match self.kind {
            FieldKind::Bool => Ok(Value::Bool(v)),
            _ => self.mismatch("a bool"),
        }
    }
    fn serialize_i8(self, v: i8) -> Result<Value, SerError> {
        self.int(v as i128)
    }
    fn serialize_i16(self, v: i16) -> Result<Value, SerError> {
        self.int(v as i128)
    }
    fn serialize_i32(self, v: i32) -> Result<Value, SerError> {
        self.int(v as i128)
    }
    fn serialize_i64(self, v: i64) -> Result<Value, SerError> {
        self.int(v as i128)
    }
    fn serialize_i128(self, v: i128) -> Result<Value, SerError> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, SerError> {
        self.int(v as i128)
    }
    fn serialize_u16(self, v: u16) -> Result<Value, SerError> {
        self.int(v as i128)
    }
    fn serialize_u32(self, v: u32) -> Result<Value, SerError> {
        self.int(v as i128)
    }
    fn serialize_u64(self, v: u64) -> Result<Value, SerError> {
        self.int(v as i128)
    }
    fn serialize_u128(self, v: u128) -> Result<Value, SerError> {
        match i128::try_from(v) {
            Ok(v) => self.int(v),
            Err(_) => err(format!("{v} is out of the 64-bit signed integer range")),
        }
    }
    fn serialize_f32(self, v: f32) -> Result<Value, SerError> {
        self.serialize_f64(v as f64)
    }
    fn serialize_f64(self, v: f64) -> Result<Value, SerError> {
        match self.kind {
            FieldKind::Float if v.is_nan() => {
                err("NaN cannot be stored; use Option<f64> for a missing value")
            }
            // -0.0 is stored as 0.0: stores disagree on whether they differ.
            FieldKind::Float => Ok(Value::F64(if v == 0.0 { 0.0 } else { v })),
            _ => self.mismatch("a float"),
        }
    }
    fn serialize_char(self, v: char) -> Result<Value, SerError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Value, SerError> {
        match self.kind {
            FieldKind::String => Ok(Value::String(v.to_string())),
            FieldKind::Timestamp => chrono::DateTime::parse_from_rfc3339(v)
                .map(Value::timestamp)
                .or_else(|e| err(format!("{v:?} is not an RFC 3339 timestamp: {e}"))),
            FieldKind::Uuid => uuid::Uuid::parse_str(v)
                .map(Value::Uuid)
                .or_else(|e| err(format!("{v:?} is not a UUID: {e}"))),
            _ => self.mismatch("a string"),
        }
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerError> {
        match self.kind {
            FieldKind::Bytes => Ok(Value::Bytes(v.to_vec())),
            FieldKind::Uuid => uuid::Uuid::from_slice(v)
                .map(Value::Uuid)
                .or_else(|e| err(e.to_string())),
            _ => self.mismatch("bytes"),
        }
    }
    fn serialize_none(self) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, SerError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, SerError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<Value, SerError> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Value, SerError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Value, SerError> {
        self.mismatch("an enum variant")
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<BytesSer, SerError> {
        match self.kind {
            FieldKind::Bytes => Ok(BytesSer(Vec::with_capacity(len.unwrap_or(0)))),
            _ => err(format!("expected {}, got a sequence", self.kind.name())),
        }
    }
    fn serialize_tuple(self, len: usize) -> Result<BytesSer, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        err(format!("expected {}, got a tuple struct", self.kind.name()))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        err(format!(
            "expected {}, got an enum variant",
            self.kind.name()
        ))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        err(format!("expected {}, got a map", self.kind.name()))
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        err(format!("expected {}, got a struct", self.kind.name()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        err(format!(
            "expected {}, got an enum variant",
            self.kind.name()
        ))
    }
}

/// Collects `Vec<u8>` (serialized by serde as a sequence of integers).
struct BytesSer(Vec<u8>);

impl BytesSer {
    fn push<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerError> {
        match v.serialize(ValueSer {
            kind: FieldKind::Int,
        })? {
            Value::I64(b) if (0..=255).contains(&b) => {
                self.0.push(b as u8);
                Ok(())
            }
            _ => err("expected bytes, got a sequence with a non-byte element"),
        }
    }
}

impl ser::SerializeSeq for BytesSer {
    type Ok = Value;
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerError> {
        self.push(v)
    }
    fn end(self) -> Result<Value, SerError> {
        Ok(Value::Bytes(self.0))
    }
}

impl ser::SerializeTuple for BytesSer {
    type Ok = Value;
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), SerError> {
        self.push(v)
    }
    fn end(self) -> Result<Value, SerError> {
        Ok(Value::Bytes(self.0))
    }
}
