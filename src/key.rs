//! Record keys: strings, integers or UUIDs.

use std::fmt;

use uuid::Uuid;

use crate::Value;

/// The identity of a record within its entity.
///
/// ```
/// use polyrouter::Key;
/// assert_eq!(Key::from("u1"), Key::Str("u1".into()));
/// assert_eq!(Key::from(7i64).to_string(), "7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A string key (any UTF-8, including the empty string and NUL).
    Str(String),
    /// An integer key.
    Int(i64),
    /// A UUID key.
    Uuid(Uuid),
}

/// Which kind of key an entity uses.
///
/// ```
/// assert_eq!(polyrouter::Key::from(1i64).kind(), polyrouter::KeyKind::Int);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// String keys.
    Str,
    /// Integer keys.
    Int,
    /// UUID keys.
    Uuid,
}

impl Key {
    /// This key's kind.
    ///
    /// ```
    /// assert_eq!(polyrouter::Key::from("a").kind(), polyrouter::KeyKind::Str);
    /// ```
    pub fn kind(&self) -> KeyKind {
        match self {
            Key::Str(_) => KeyKind::Str,
            Key::Int(_) => KeyKind::Int,
            Key::Uuid(_) => KeyKind::Uuid,
        }
    }

    /// The key as a field value.
    ///
    /// ```
    /// assert_eq!(polyrouter::Key::from(3i64).to_value(), polyrouter::Value::I64(3));
    /// ```
    pub fn to_value(&self) -> Value {
        match self {
            Key::Str(s) => Value::String(s.clone()),
            Key::Int(i) => Value::I64(*i),
            Key::Uuid(u) => Value::Uuid(*u),
        }
    }

    /// The key from a field value, if the value is a string, integer or UUID.
    ///
    /// ```
    /// use polyrouter::{Key, Value};
    /// assert_eq!(Key::from_value(&Value::I64(3)), Some(Key::Int(3)));
    /// assert_eq!(Key::from_value(&Value::Bool(true)), None);
    /// ```
    pub fn from_value(v: &Value) -> Option<Key> {
        match v {
            Value::String(s) => Some(Key::Str(s.clone())),
            Value::I64(i) => Some(Key::Int(*i)),
            Value::Uuid(u) => Some(Key::Uuid(*u)),
            _ => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Str(s) => write!(f, "{s:?}"),
            Key::Int(i) => write!(f, "{i}"),
            Key::Uuid(u) => write!(f, "{u}"),
        }
    }
}

impl From<&str> for Key {
    fn from(v: &str) -> Self {
        Key::Str(v.to_string())
    }
}
impl From<String> for Key {
    fn from(v: String) -> Self {
        Key::Str(v)
    }
}
impl From<&String> for Key {
    fn from(v: &String) -> Self {
        Key::Str(v.clone())
    }
}
impl From<&Key> for Key {
    fn from(v: &Key) -> Self {
        v.clone()
    }
}
impl From<Uuid> for Key {
    fn from(v: Uuid) -> Self {
        Key::Uuid(v)
    }
}
impl From<&Uuid> for Key {
    fn from(v: &Uuid) -> Self {
        Key::Uuid(*v)
    }
}
macro_rules! key_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Key { fn from(v: $t) -> Self { Key::Int(v as i64) } }
        impl From<&$t> for Key { fn from(v: &$t) -> Self { Key::Int(*v as i64) } }
    )*};
}
key_from_int!(i8, i16, i32, i64, u8, u16, u32);
