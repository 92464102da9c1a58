//! The neutral record: what every backend reads and writes.

use std::borrow::Cow;

use crate::{Key, Value};

mod de;
mod depth;
mod ser;

pub(crate) use de::{from_fields, from_record};
pub use depth::MAX_JSON_DEPTH;
pub(crate) use ser::to_record;

/// A field name: borrowed from the static schema on the hot path.
pub type FieldName = Cow<'static, str>;

/// One stored record: its key, its version and its fields.
///
/// The key field is among `fields`; the version field is not (it lives in
/// [`Record::version`], maintained by the store).
///
/// ```
/// use polyrouter::{Key, Record, Value};
/// let mut r = Record::new(Key::from("u1"));
/// r.set("id", Value::from("u1"));
/// r.set("name", Value::from("Ada"));
/// assert_eq!(r.get("name"), Some(&Value::from("Ada")));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record's key.
    pub key: Key,
    /// The version the store holds (0 before the first write).
    pub version: u64,
    /// Field values, in schema order when produced by polyrouter.
    pub fields: Vec<(FieldName, Value)>,
}

impl Record {
    /// An empty record with `key` and version 0.
    ///
    /// ```
    /// let r = polyrouter::Record::new(polyrouter::Key::from(1i64));
    /// assert!(r.fields.is_empty());
    /// ```
    pub fn new(key: Key) -> Self {
        Record {
            key,
            version: 0,
            fields: Vec::new(),
        }
    }

    /// The record of an entity value, as a repository writes it: the key
    /// from the value, every field checked against its logical type, the
    /// version from the entity's version field (0 without one). For code
    /// below the repositories, such as a projection handler.
    ///
    /// ```
    /// #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// #[entity(name = "note", key = "id")]
    /// struct Note { id: String, body: String }
    /// let n = Note { id: "a".into(), body: "hi".into() };
    /// let r = polyrouter::Record::from_entity(&n).unwrap();
    /// assert_eq!(r.get("body"), Some(&polyrouter::Value::from("hi")));
    /// assert_eq!(r.into_entity::<Note>().unwrap(), n);
    /// ```
    pub fn from_entity<T: crate::Entity>(value: &T) -> crate::Result<Record> {
        to_record(T::schema(), value.key(), value)
            .map_err(|e| crate::Error::invalid_input("", T::schema().name, e))
    }

    /// The entity value this record holds (its version into the entity's
    /// version field); an error names the field that does not fit.
    ///
    /// ```
    /// #[derive(polyrouter::Entity, serde::Serialize, serde::Deserialize)]
    /// #[entity(name = "n", key = "id")]
    /// struct N { id: i64, body: String }
    /// let r = polyrouter::Record::new(polyrouter::Key::from(1i64));
    /// assert!(r.into_entity::<N>().is_err());
    /// ```
    pub fn into_entity<T: crate::Entity>(self) -> crate::Result<T> {
        from_record(T::schema(), self)
            .map_err(|e| crate::Error::invalid_input("", T::schema().name, e))
    }

    /// A field's value.
    ///
    /// ```
    /// let r = polyrouter::Record::new(polyrouter::Key::from(1i64));
    /// assert_eq!(r.get("x"), None);
    /// ```
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Sets a field, replacing an existing value.
    ///
    /// ```
    /// let mut r = polyrouter::Record::new(polyrouter::Key::from(1i64));
    /// r.set("x", 1.into());
    /// r.set("x", 2.into());
    /// assert_eq!(r.fields.len(), 1);
    /// ```
    pub fn set(&mut self, name: impl Into<FieldName>, value: Value) {
        let name = name.into();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    /// The value of a field, or `Null` when the record lacks it.
    ///
    /// ```
    /// let r = polyrouter::Record::new(polyrouter::Key::from(1i64));
    /// assert!(r.value("x").is_null());
    /// ```
    pub fn value(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(name).unwrap_or(&NULL)
    }
}
