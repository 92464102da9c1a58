//! Driver-neutral parameter values and the checks that turn record values
//! into them.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Dialect;
use super::table::Column;
use crate::entity::FieldKind;
use crate::{Key, KeyKind, Value};

/// One bound parameter, as the logical type of the column it goes to. Each
/// backend binds it in its driver's terms (SQLite binds booleans and
/// timestamps as integers, UUIDs and JSON as text; PostgreSQL binds them
/// natively).
///
/// Text, bytes and JSON borrow from the record or key they come from
/// (`'a`), so a write's values go from the record to the driver without a
/// copy in between; parameters the statement makes itself are owned.
///
/// ```
/// use std::borrow::Cow;
/// use polyrouter::backends::sql::Param;
/// let name = String::from("Ada");
/// let p = Param::Text(Cow::Borrowed(&name));
/// assert_eq!(p, Param::Text("Ada".into()));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Param<'a> {
    /// `NULL` typed as a column kind.
    Null(FieldKind),
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer (also `_pr_version`, `_pr_expires_at` and `now`, in
    /// unix microseconds).
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// Text.
    Text(Cow<'a, str>),
    /// Bytes (also literal prefix/contains operands matched byte-wise).
    Bytes(Cow<'a, [u8]>),
    /// A timestamp, whole microseconds.
    Timestamp(DateTime<Utc>),
    /// A UUID.
    Uuid(Uuid),
    /// A JSON value.
    Json(Cow<'a, serde_json::Value>),
    /// An array of values of one kind (PostgreSQL `= ANY(?)`, `UNNEST`);
    /// the elements are never arrays.
    Array(FieldKind, Vec<Param<'a>>),
}

impl Param<'_> {
    /// This parameter with its borrowed values copied, so it outlives the
    /// record it came from.
    ///
    /// ```
    /// use polyrouter::backends::sql::Param;
    /// let owned = {
    ///     let s = String::from("a");
    ///     Param::Text(s.as_str().into()).into_owned()
    /// };
    /// assert_eq!(owned, Param::Text("a".into()));
    /// ```
    pub fn into_owned(self) -> Param<'static> {
        match self {
            Param::Null(k) => Param::Null(k),
            Param::Bool(b) => Param::Bool(b),
            Param::Int(i) => Param::Int(i),
            Param::Float(f) => Param::Float(f),
            Param::Text(s) => Param::Text(Cow::Owned(s.into_owned())),
            Param::Bytes(b) => Param::Bytes(Cow::Owned(b.into_owned())),
            Param::Timestamp(t) => Param::Timestamp(t),
            Param::Uuid(u) => Param::Uuid(u),
            Param::Json(j) => Param::Json(Cow::Owned(j.into_owned())),
            Param::Array(k, items) => {
                Param::Array(k, items.into_iter().map(Param::into_owned).collect())
            }
        }
    }
}

/// A timestamp truncated (floor) to whole microseconds, as stored.
pub fn floor_micros(t: &DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(*t)
}

/// A key as bound for the key column.
pub fn key_param(key: &Key) -> Param<'_> {
    match key {
        Key::Str(s) => Param::Text(Cow::Borrowed(s)),
        Key::Int(i) => Param::Int(*i),
        Key::Uuid(u) => Param::Uuid(*u),
    }
}

/// A filter operand as bound, by its own type.
pub fn value_param(v: &Value) -> Param<'_> {
    match v {
        Value::Null => Param::Null(FieldKind::String),
        Value::Bool(b) => Param::Bool(*b),
        Value::I64(i) => Param::Int(*i),
        Value::F64(f) => Param::Float(*f),
        Value::String(s) => Param::Text(Cow::Borrowed(s)),
        Value::Bytes(b) => Param::Bytes(Cow::Borrowed(b)),
        Value::Timestamp(t) => Param::Timestamp(floor_micros(t)),
        Value::Uuid(u) => Param::Uuid(*u),
        Value::Json(j) => Param::Json(Cow::Borrowed(j)),
    }
}

/// The kind of the key column for a key kind.
pub fn key_field_kind(k: KeyKind) -> FieldKind {
    match k {
        KeyKind::Str => FieldKind::String,
        KeyKind::Int => FieldKind::Int,
        KeyKind::Uuid => FieldKind::Uuid,
    }
}

/// Whether a JSON value holds a NUL character in a string or key.
fn json_has_nul(j: &serde_json::Value) -> bool {
    match j {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(json_has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || json_has_nul(v)),
        _ => false,
    }
}

/// Whether a JSON value holds the number `-0.0` anywhere.
fn json_has_negative_zero(j: &serde_json::Value) -> bool {
    let mut stack = vec![j];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Number(n)
                if n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()) =>
            {
                return true;
            }
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    false
}

/// A field value as stored in its column, checked against the field's type
/// and what the database can hold.
pub fn encode_field<'a>(d: &dyn Dialect, col: &Column, v: &'a Value) -> Result<Param<'a>, String> {
    let nul = || {
        Err(format!(
            "field `{}` contains a NUL character (\\0), which {} text cannot hold",
            col.name,
            d.name()
        ))
    };
    let p = match (col.kind, v) {
        (kind, Value::Null) if col.nullable => Param::Null(kind),
        (_, Value::Null) => {
            return Err(format!(
                "field `{}` is not nullable, but the value is null",
                col.name
            ));
        }
        (FieldKind::Bool, Value::Bool(b)) => Param::Bool(*b),
        (FieldKind::Int, Value::I64(i)) => Param::Int(*i),
        (FieldKind::Float, Value::F64(f)) if f.is_nan() => {
            return Err(format!(
                "field `{}` is NaN, which the {} store cannot store",
                col.name,
                d.kind()
            ));
        }
        (FieldKind::Float, Value::F64(f)) if f.is_infinite() && !d.infinite_floats() => {
            return Err(format!(
                "field `{}` is infinite, which {} cannot store",
                col.name,
                d.name()
            ));
        }
        (FieldKind::Float, Value::F64(f)) => Param::Float(*f),
        (FieldKind::Float, Value::I64(i)) => Param::Float(*i as f64),
        (FieldKind::String, Value::String(s)) if !d.text_holds_nul() && s.contains('\0') => {
            return nul();
        }
        (FieldKind::String, Value::String(s)) => Param::Text(Cow::Borrowed(s)),
        (FieldKind::Bytes, Value::Bytes(b)) => Param::Bytes(Cow::Borrowed(b)),
        (FieldKind::Timestamp, Value::Timestamp(t)) => Param::Timestamp(floor_micros(t)),
        (FieldKind::Uuid, Value::Uuid(u)) => Param::Uuid(*u),
        (FieldKind::Json, Value::Json(j)) if !d.text_holds_nul() && json_has_nul(j) => {
            return nul();
        }
        (FieldKind::Json, Value::Json(j))
            if !d.json_negative_zero() && json_has_negative_zero(j) =>
        {
            return Err(format!(
                "field `{}` holds the number -0.0, which {} JSON turns into 0; store it as a float field or as text",
                col.name,
                d.name()
            ));
        }
        (FieldKind::Json, Value::Json(j)) => Param::Json(Cow::Borrowed(j)),
        (kind, v) => {
            return Err(format!(
                "field `{}` is {}, but the value is {}",
                col.name,
                kind.name(),
                v.type_name()
            ));
        }
    };
    Ok(p)
}
