//! Entities: the Rust types polyrouter stores, and their static schema.
//!
//! Derive [`Entity`](macro@crate::Entity) rather than implementing the trait
//! by hand:
//!
//! ```
//! use polyrouter::Entity;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Entity, Serialize, Deserialize)]
//! #[entity(name = "user", key = "id")]
//! struct User {
//!     id: String,
//!     email: String,
//!     age: Option<i32>,
//!     #[entity(version)]
//!     version: u64,
//! }
//!
//! let schema = User::schema();
//! assert_eq!(schema.name, "user");
//! assert_eq!(schema.field("age").unwrap().ty.kind, polyrouter::FieldKind::Int);
//! assert!(schema.field("age").unwrap().ty.nullable);
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Key, KeyKind};

/// A type polyrouter can store. Implemented by `#[derive(Entity)]`.
pub trait Entity: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The static schema: name, key, version and logical field types.
    fn schema() -> &'static Schema;
    /// This value's key.
    fn key(&self) -> Key;
}

/// The logical type of a field, derived from its Rust type.
///
/// ```
/// assert_eq!(polyrouter::FieldKind::Int.name(), "int");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// `bool`.
    Bool,
    /// Any integer type, stored as `i64` (a `u64` above `i64::MAX` is refused at write).
    Int,
    /// `f32`, `f64`.
    Float,
    /// `String`, `char`, `&str`.
    String,
    /// `Vec<u8>` (and any type serializing as serde bytes).
    Bytes,
    /// `chrono::DateTime<Tz>`.
    Timestamp,
    /// `uuid::Uuid`.
    Uuid,
    /// `serde_json::Value`, nested structs, maps, sequences (always nullable).
    Json,
}

impl FieldKind {
    /// A short lowercase name, used in messages and DDL checks.
    ///
    /// ```
    /// assert_eq!(polyrouter::FieldKind::Timestamp.name(), "timestamp");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Bool => "bool",
            FieldKind::Int => "int",
            FieldKind::Float => "float",
            FieldKind::String => "string",
            FieldKind::Bytes => "bytes",
            FieldKind::Timestamp => "timestamp",
            FieldKind::Uuid => "uuid",
            FieldKind::Json => "json",
        }
    }
}

/// A field's logical type and whether it may be null.
///
/// ```
/// use polyrouter::{FieldKind, FieldType};
/// assert_eq!(FieldType::required(FieldKind::Bool).nullable, false);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldType {
    /// The logical kind.
    pub kind: FieldKind,
    /// `Option<T>` (or JSON, which may hold null).
    pub nullable: bool,
}

impl FieldType {
    /// A non-null field of `kind`.
    ///
    /// ```
    /// let t = polyrouter::FieldType::required(polyrouter::FieldKind::Int);
    /// assert!(!t.nullable);
    /// ```
    pub const fn required(kind: FieldKind) -> Self {
        FieldType {
            kind,
            nullable: false,
        }
    }
}

/// One field of an entity's schema.
///
/// ```
/// use polyrouter::{FieldDef, FieldKind, FieldType};
/// let f = FieldDef { name: "id", ty: FieldType::required(FieldKind::String) };
/// assert_eq!(f.name, "id");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Field name as serde sees it (honours `#[serde(rename)]`).
    pub name: &'static str,
    /// Logical type.
    pub ty: FieldType,
}

impl FieldDef {
    /// A non-null field.
    ///
    /// ```
    /// use polyrouter::{FieldDef, FieldKind};
    /// static ID: FieldDef = FieldDef::required("id", FieldKind::String);
    /// assert!(!ID.ty.nullable);
    /// ```
    pub const fn required(name: &'static str, kind: FieldKind) -> Self {
        FieldDef {
            name,
            ty: FieldType::required(kind),
        }
    }

    /// A field that may be null.
    ///
    /// ```
    /// use polyrouter::{FieldDef, FieldKind};
    /// assert!(FieldDef::nullable("age", FieldKind::Int).ty.nullable);
    /// ```
    pub const fn nullable(name: &'static str, kind: FieldKind) -> Self {
        FieldDef {
            name,
            ty: FieldType {
                kind,
                nullable: true,
            },
        }
    }
}

/// The static description of an entity type.
///
/// ```
/// use polyrouter::{FieldDef, FieldKind, FieldType, KeyKind, Schema};
/// static FIELDS: [FieldDef; 1] = [FieldDef { name: "id", ty: FieldType::required(FieldKind::Int) }];
/// let s = Schema { name: "t", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &FIELDS };
/// assert_eq!(s.field("id").unwrap().ty.kind, FieldKind::Int);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// Entity name, the key used in `[entities.NAME]`.
    pub name: &'static str,
    /// The key field.
    pub key: &'static str,
    /// The key's kind.
    pub key_kind: KeyKind,
    /// Optional partition-key field.
    pub partition_key: Option<&'static str>,
    /// Optional version field (an integer the store maintains).
    pub version: Option<&'static str>,
    /// Every field except the version field, in declaration order.
    pub fields: &'static [FieldDef],
}

impl Schema {
    /// Looks up a field by name.
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, FieldType, KeyKind, Schema};
    /// # static F: [FieldDef; 0] = [];
    /// # let s = Schema { name: "t", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &F };
    /// assert!(s.field("nope").is_none());
    /// ```
    pub fn field(&self, name: &str) -> Option<&'static FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Position of a field in [`Schema::fields`].
    ///
    /// ```
    /// # use polyrouter::{FieldDef, FieldKind, FieldType, KeyKind, Schema};
    /// # static F: [FieldDef; 1] = [FieldDef { name: "id", ty: FieldType::required(FieldKind::Int) }];
    /// # let s = Schema { name: "t", key: "id", key_kind: KeyKind::Int, partition_key: None, version: None, fields: &F };
    /// assert_eq!(s.position("id"), Some(0));
    /// ```
    pub fn position(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// Support code for `#[derive(Entity)]`; not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use std::marker::PhantomData;

    /// Types with a known logical field type.
    pub trait HasFieldType {
        /// The field type.
        const TYPE: FieldType;
    }

    macro_rules! has {
        ($kind:ident: $($t:ty),*) => {$(
            impl HasFieldType for $t { const TYPE: FieldType = FieldType::required(FieldKind::$kind); }
        )*};
    }
    has!(Bool: bool);
    has!(Int: i8, i16, i32, i64, u8, u16, u32, u64, isize, usize);
    has!(Float: f32, f64);
    has!(String: String, char, Box<str>, std::sync::Arc<str>);
    has!(Bytes: Vec<u8>);
    has!(Uuid: uuid::Uuid);
    impl HasFieldType for serde_json::Value {
        const TYPE: FieldType = FieldType {
            kind: FieldKind::Json,
            nullable: true,
        };
    }
    impl HasFieldType for serde_json::Map<String, serde_json::Value> {
        const TYPE: FieldType = FieldType {
            kind: FieldKind::Json,
            nullable: true,
        };
    }
    impl<Tz: chrono::TimeZone> HasFieldType for chrono::DateTime<Tz> {
        const TYPE: FieldType = FieldType::required(FieldKind::Timestamp);
    }
    impl<T: HasFieldType> HasFieldType for Option<T> {
        const TYPE: FieldType = FieldType {
            kind: T::TYPE.kind,
            nullable: true,
        };
    }

    /// Autoref-specialisation probe: known types first, then any serde type as JSON.
    pub struct Probe<T: ?Sized>(pub PhantomData<T>);

    /// Picked for types implementing [`HasFieldType`].
    pub trait KnownType {
        /// The field type.
        fn field_type(&self) -> FieldType;
    }
    impl<T: HasFieldType + ?Sized> KnownType for &Probe<T> {
        fn field_type(&self) -> FieldType {
            T::TYPE
        }
    }

    /// Fallback: any other serde type is stored as JSON (which may hold null).
    pub trait JsonType {
        /// The field type.
        fn field_type(&self) -> FieldType;
    }
    impl<T: Serialize + DeserializeOwned> JsonType for Probe<T> {
        fn field_type(&self) -> FieldType {
            FieldType {
                kind: FieldKind::Json,
                nullable: true,
            }
        }
    }

    /// Types allowed as an entity key.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be an entity key",
        label = "key fields must be String, uuid::Uuid, i16, i32, i64, u16 or u32"
    )]
    pub trait KeyField {
        /// The key kind.
        const KIND: KeyKind;
        /// Converts to a [`Key`].
        fn to_key(&self) -> Key;
    }
    impl KeyField for String {
        const KIND: KeyKind = KeyKind::Str;
        fn to_key(&self) -> Key {
            Key::Str(self.clone())
        }
    }
    impl KeyField for uuid::Uuid {
        const KIND: KeyKind = KeyKind::Uuid;
        fn to_key(&self) -> Key {
            Key::Uuid(*self)
        }
    }
    macro_rules! int_key {
        ($($t:ty),*) => {$(
            impl KeyField for $t {
                const KIND: KeyKind = KeyKind::Int;
                fn to_key(&self) -> Key { Key::Int(*self as i64) }
            }
        )*};
    }
    int_key!(i16, i32, i64, u16, u32);

    /// Types allowed as a version field: unsigned or signed integers.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a version field",
        label = "version fields must be u64, i64, u32, i32, Option<u64> or Option<i64>"
    )]
    pub trait VersionField {}
    impl VersionField for u64 {}
    impl VersionField for i64 {}
    impl VersionField for u32 {}
    impl VersionField for i32 {}
    impl VersionField for Option<u64> {}
    impl VersionField for Option<i64> {}
}
