//! The neutral value type every backend reads and writes.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

/// One field value in a [`Record`](crate::Record).
///
/// Timestamps are instants in UTC with microsecond precision (the finest
/// precision every relational store keeps); an offset given on the way in is
/// converted, so the instant round-trips exactly. Floats are never NaN.
///
/// ```
/// use polyrouter::Value;
/// assert_eq!(Value::from("a"), Value::String("a".into()));
/// assert!(Value::Null < Value::from(0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`, `Option::None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer (all Rust integer types that fit).
    I64(i64),
    /// A finite or infinite 64-bit float, never NaN.
    F64(f64),
    /// UTF-8 text.
    String(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// An instant, UTC, microsecond precision.
    Timestamp(DateTime<Utc>),
    /// A UUID.
    Uuid(Uuid),
    /// Arbitrary JSON: `serde_json::Value` fields and nested structs.
    Json(serde_json::Value),
}

impl Value {
    /// True for [`Value::Null`].
    ///
    /// ```
    /// assert!(polyrouter::Value::Null.is_null());
    /// ```
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A timestamp value truncated to microseconds.
    ///
    /// ```
    /// let t = chrono::Utc::now();
    /// let v = polyrouter::Value::timestamp(t);
    /// assert!(matches!(v, polyrouter::Value::Timestamp(_)));
    /// ```
    pub fn timestamp<Tz: chrono::TimeZone>(t: DateTime<Tz>) -> Value {
        Value::Timestamp(t.with_timezone(&Utc).trunc_subsecs(6))
    }

    /// The name of this value's type, for error messages.
    ///
    /// ```
    /// assert_eq!(polyrouter::Value::from(1).type_name(), "integer");
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::I64(_) => "integer",
            Value::F64(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Timestamp(_) => "timestamp",
            Value::Uuid(_) => "uuid",
            Value::Json(_) => "json",
        }
    }

    /// The string, if this is a [`Value::String`].
    ///
    /// ```
    /// assert_eq!(polyrouter::Value::from("x").as_str(), Some("x"));
    /// ```
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The type's place in the reference order (null first).
    pub(crate) fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::I64(_) | Value::F64(_) => 2,
            Value::String(_) => 3,
            Value::Bytes(_) => 4,
            Value::Timestamp(_) => 5,
            Value::Uuid(_) => 6,
            Value::Json(_) => 7,
        }
    }
}

/// The reference order used for sorting and range filters: `Null` first,
/// numbers numerically (integers and floats compare with each other),
/// strings by UTF-8 bytes (code point order), bytes lexicographically, JSON by
/// its compact text.
impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::I64(a), Value::I64(b)) => a.cmp(b),
            (Value::F64(a), Value::F64(b)) => a.total_cmp(b),
            (Value::I64(a), Value::F64(b)) => cmp_int_float(*a, *b),
            (Value::F64(a), Value::I64(b)) => cmp_int_float(*b, *a).reverse(),
            (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
            (Value::Uuid(a), Value::Uuid(b)) => a.cmp(b),
            (Value::Json(a), Value::Json(b)) => a.to_string().cmp(&b.to_string()),
            (a, b) => a.rank().cmp(&b.rank()),
        })
    }
}

fn cmp_int_float(i: i64, f: f64) -> Ordering {
    // Exact comparison without losing precision for large integers.
    if f.is_nan() {
        return Ordering::Less;
    }
    if f >= 9.223_372_036_854_776e18 {
        return Ordering::Less;
    }
    if f < -9.223_372_036_854_776e18 {
        return Ordering::Greater;
    }
    let t = f.trunc() as i64;
    match i.cmp(&t) {
        Ordering::Equal => {
            let frac = f - f.trunc();
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(i) => write!(f, "{i}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Timestamp(t) => write!(f, "{}", t.to_rfc3339()),
            Value::Uuid(u) => write!(f, "{u}"),
            Value::Json(j) => write!(f, "{j}"),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::I64(v as i64) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F64(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::F64(v as f64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::String(v.clone())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Value::Uuid(v)
    }
}
impl<Tz: chrono::TimeZone> From<DateTime<Tz>> for Value {
    fn from(v: DateTime<Tz>) -> Self {
        Value::timestamp(v)
    }
}
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        Value::Json(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_total_and_mixed_numbers_compare_exactly() {
        assert!(Value::I64(i64::MAX) > Value::F64(9.2e18));
        assert!(Value::I64(1) < Value::F64(1.5));
        assert!(Value::F64(-0.5) < Value::I64(0));
        assert_eq!(
            Value::I64(2).partial_cmp(&Value::F64(2.0)),
            Some(Ordering::Equal)
        );
        assert!(Value::Null < Value::Bool(false));
        assert!(Value::String("Z".into()) < Value::String("a".into()));
        assert!(Value::String("é".into()) > Value::String("z".into()));
    }
}
