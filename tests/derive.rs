//! `#[derive(Entity)]`: the generated schema and key, and the compile errors.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use polyrouter::{Entity, FieldDef, FieldKind, FieldType, Key, KeyKind, Schema};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

fn def(name: &'static str, kind: FieldKind, nullable: bool) -> FieldDef {
    FieldDef {
        name,
        ty: FieldType { kind, nullable },
    }
}

fn leak(fields: Vec<FieldDef>) -> &'static [FieldDef] {
    Box::leak(fields.into_boxed_slice())
}

/// The keys serde emits for `value`, which must be exactly the schema's
/// fields plus the version field.
fn assert_schema_matches_serde<E: Entity>(value: &E) {
    let json = serde_json::to_value(value).unwrap();
    let emitted: BTreeSet<String> = json.as_object().unwrap().keys().cloned().collect();
    let schema = E::schema();
    let mut declared: BTreeSet<String> = schema.fields.iter().map(|f| f.name.to_string()).collect();
    declared.extend(schema.version.map(str::to_string));
    assert_eq!(
        emitted, declared,
        "schema of `{}` vs serde output",
        schema.name
    );
    assert!(schema.field(schema.key).is_some(), "key is a schema field");
    if let Some(p) = schema.partition_key {
        assert!(schema.field(p).is_some(), "partition key is a schema field");
    }
}

// ---------------------------------------------------------------------------
// String key, partition key, version, rename, skip.

#[derive(Debug, Default, Clone, PartialEq)]
struct Cache(u32);

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[entity(name = "user", key = "id")]
#[entity(partition_key = "country")]
struct User {
    id: String,
    country: String,
    #[serde(rename = "mail")]
    email: String,
    age: Option<i32>,
    #[serde(skip)]
    cache: Cache,
    #[entity(version)]
    version: u64,
}

fn user() -> User {
    User {
        id: "u1".into(),
        country: "SE".into(),
        email: "a@example.com".into(),
        age: Some(42),
        cache: Cache(7),
        version: 3,
    }
}

#[test]
fn string_key_partition_version_rename_skip() {
    let expected = Schema {
        name: "user",
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: Some("country"),
        version: Some("version"),
        fields: leak(vec![
            def("id", FieldKind::String, false),
            def("country", FieldKind::String, false),
            def("mail", FieldKind::String, false),
            def("age", FieldKind::Int, true),
        ]),
    };
    assert_eq!(*User::schema(), expected);
    assert_eq!(user().key(), Key::Str("u1".into()));
    assert_schema_matches_serde(&user());
}

#[test]
fn schema_is_built_once() {
    assert!(std::ptr::eq(User::schema(), User::schema()));
    assert!(std::ptr::eq(User::schema().fields, User::schema().fields));
}

// ---------------------------------------------------------------------------
// Integer keys, field-level markers, default name.

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct PageCounter {
    #[entity(key)]
    counter_id: i64,
    #[entity(partition_key)]
    site: String,
    hits: u64,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct HTTPRequest {
    id: u32,
    path: String,
}

#[test]
fn int_key_from_field_marker_and_default_name() {
    let expected = Schema {
        name: "page_counter",
        key: "counter_id",
        key_kind: KeyKind::Int,
        partition_key: Some("site"),
        version: None,
        fields: leak(vec![
            def("counter_id", FieldKind::Int, false),
            def("site", FieldKind::String, false),
            def("hits", FieldKind::Int, false),
        ]),
    };
    assert_eq!(*PageCounter::schema(), expected);
    let c = PageCounter {
        counter_id: -9,
        site: "x".into(),
        hits: 1,
    };
    assert_eq!(c.key(), Key::Int(-9));
    assert_schema_matches_serde(&c);
}

#[test]
fn default_key_is_id_and_acronyms_stay_one_word() {
    let s = HTTPRequest::schema();
    assert_eq!(s.name, "http_request");
    assert_eq!(s.key, "id");
    assert_eq!(s.key_kind, KeyKind::Int);
    assert_eq!(s.version, None);
    assert_eq!(s.partition_key, None);
    let r = HTTPRequest {
        id: 4_000_000_000,
        path: "/".into(),
    };
    assert_eq!(r.key(), Key::Int(4_000_000_000));
    assert_schema_matches_serde(&r);
}

// ---------------------------------------------------------------------------
// UUID key and every logical type.

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Address {
    street: String,
    zip: Option<String>,
}

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Document {
    id: Uuid,
    flag: bool,
    small: i16,
    float: f64,
    maybe_float: Option<f32>,
    initial: char,
    created: DateTime<Utc>,
    zoned: DateTime<FixedOffset>,
    deleted: Option<DateTime<Utc>>,
    blob: Vec<u8>,
    maybe_blob: Option<Vec<u8>>,
    json: serde_json::Value,
    address: Address,
    maybe_address: Option<Address>,
    tags: Vec<String>,
    attrs: BTreeMap<String, i64>,
    other: Option<Uuid>,
}

fn document() -> Document {
    let at = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    Document {
        id: Uuid::from_u128(0x1234),
        flag: true,
        small: 1,
        float: 1.5,
        maybe_float: None,
        initial: 'x',
        created: at,
        zoned: at.with_timezone(&FixedOffset::east_opt(3600).unwrap()),
        deleted: None,
        blob: vec![1, 2],
        maybe_blob: None,
        json: serde_json::json!({"a": 1}),
        address: Address {
            street: "Main".into(),
            zip: None,
        },
        maybe_address: None,
        tags: vec!["t".into()],
        attrs: BTreeMap::new(),
        other: None,
    }
}

#[test]
fn uuid_key_and_field_kinds() {
    use FieldKind::*;
    let expected = Schema {
        name: "document",
        key: "id",
        key_kind: KeyKind::Uuid,
        partition_key: None,
        version: None,
        fields: leak(vec![
            def("id", Uuid, false),
            def("flag", Bool, false),
            def("small", Int, false),
            def("float", Float, false),
            def("maybe_float", Float, true),
            def("initial", String, false),
            def("created", Timestamp, false),
            def("zoned", Timestamp, false),
            def("deleted", Timestamp, true),
            def("blob", Bytes, false),
            def("maybe_blob", Bytes, true),
            def("json", Json, true),
            def("address", Json, true),
            def("maybe_address", Json, true),
            def("tags", Json, true),
            def("attrs", Json, true),
            def("other", Uuid, true),
        ]),
    };
    assert_eq!(*Document::schema(), expected);
    assert_eq!(document().key(), Key::Uuid(uuid::Uuid::from_u128(0x1234)));
    assert_schema_matches_serde(&document());
}

// ---------------------------------------------------------------------------
// rename_all, struct-level version, raw identifiers.

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[entity(key = "user_id", version = "row_version", partition_key = "homeRegion")]
struct UserProfile {
    user_id: String,
    display_name: String,
    home_region: String,
    #[serde(rename = "EXPLICIT")]
    renamed_field: Option<bool>,
    r#type: String,
    #[serde(skip_serializing, default)]
    transient: i32,
    row_version: Option<i64>,
}

#[test]
fn rename_all_with_field_rename_and_struct_level_version() {
    let expected = Schema {
        name: "user_profile",
        key: "userId",
        key_kind: KeyKind::Str,
        partition_key: Some("homeRegion"),
        version: Some("rowVersion"),
        fields: leak(vec![
            def("userId", FieldKind::String, false),
            def("displayName", FieldKind::String, false),
            def("homeRegion", FieldKind::String, false),
            def("EXPLICIT", FieldKind::Bool, true),
            def("type", FieldKind::String, false),
        ]),
    };
    assert_eq!(*UserProfile::schema(), expected);
    let p = UserProfile {
        user_id: "p1".into(),
        display_name: "P".into(),
        home_region: "eu".into(),
        renamed_field: Some(true),
        r#type: "t".into(),
        transient: 5,
        row_version: Some(1),
    };
    assert_eq!(p.key(), Key::from("p1"));
    assert_schema_matches_serde(&p);
}

/// One entity per serde rename rule, declared through `macro_rules!` (which
/// also checks the derive works on macro-generated input).
macro_rules! renamed {
    ($ty:ident, $rule:literal) => {
        #[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
        #[serde(rename_all = $rule)]
        #[entity(key = "record_id")]
        struct $ty {
            record_id: i32,
            created_at_utc: String,
            #[entity(version)]
            row_version: u32,
        }

        impl $ty {
            fn sample() -> Self {
                $ty {
                    record_id: 5,
                    created_at_utc: String::new(),
                    row_version: 0,
                }
            }
        }
    };
}
renamed!(Snake, "snake_case");
renamed!(Camel, "camelCase");
renamed!(Pascal, "PascalCase");
renamed!(Screaming, "SCREAMING_SNAKE_CASE");
renamed!(Kebab, "kebab-case");
renamed!(ScreamingKebab, "SCREAMING-KEBAB-CASE");
renamed!(Lower, "lowercase");
renamed!(Upper, "UPPERCASE");

fn names<E: Entity>(sample: E) -> (&'static str, Vec<&'static str>, Option<&'static str>) {
    assert_eq!(sample.key(), Key::Int(5));
    assert_schema_matches_serde(&sample);
    let s = E::schema();
    (s.key, s.fields.iter().map(|f| f.name).collect(), s.version)
}

#[test]
fn every_rename_all_rule() {
    assert_eq!(
        names(Snake::sample()),
        (
            "record_id",
            vec!["record_id", "created_at_utc"],
            Some("row_version")
        )
    );
    assert_eq!(
        names(Camel::sample()),
        (
            "recordId",
            vec!["recordId", "createdAtUtc"],
            Some("rowVersion")
        )
    );
    assert_eq!(
        names(Pascal::sample()),
        (
            "RecordId",
            vec!["RecordId", "CreatedAtUtc"],
            Some("RowVersion")
        )
    );
    assert_eq!(
        names(Screaming::sample()),
        (
            "RECORD_ID",
            vec!["RECORD_ID", "CREATED_AT_UTC"],
            Some("ROW_VERSION")
        )
    );
    assert_eq!(
        names(Kebab::sample()),
        (
            "record-id",
            vec!["record-id", "created-at-utc"],
            Some("row-version")
        )
    );
    assert_eq!(
        names(ScreamingKebab::sample()),
        (
            "RECORD-ID",
            vec!["RECORD-ID", "CREATED-AT-UTC"],
            Some("ROW-VERSION")
        )
    );
    assert_eq!(
        names(Lower::sample()),
        (
            "record_id",
            vec!["record_id", "created_at_utc"],
            Some("row_version")
        )
    );
    assert_eq!(
        names(Upper::sample()),
        (
            "RECORD_ID",
            vec!["RECORD_ID", "CREATED_AT_UTC"],
            Some("ROW_VERSION")
        )
    );
    assert_eq!(Kebab::schema().name, "kebab");
    assert_eq!(ScreamingKebab::schema().name, "screaming_kebab");
}

// ---------------------------------------------------------------------------
// Hygiene: the generated code uses absolute paths only.

mod shadowed {
    #![allow(dead_code)]
    use serde::{Deserialize, Serialize};

    struct Schema;
    struct Key;
    struct FieldDef;
    mod core {}
    mod std {}
    mod polyrouter {}

    #[derive(::polyrouter::Entity, Serialize, Deserialize)]
    pub struct Shadowed {
        pub id: String,
        pub n: i64,
    }
}

#[test]
fn generated_code_uses_absolute_paths() {
    let s = shadowed::Shadowed {
        id: "s".into(),
        n: 1,
    };
    assert_eq!(s.key(), Key::from("s"));
    assert_eq!(shadowed::Shadowed::schema().name, "shadowed");
    assert_eq!(shadowed::Shadowed::schema().fields.len(), 2);
}

// ---------------------------------------------------------------------------
// Compile errors.

/// trybuild checks the UI cases in a crate of its own that depends on
/// polyrouter with the features of this build: with every feature that means
/// checking every backend's dependencies (DataFusion among them) a second
/// time, for cases about the derive macro alone. So they run in the default
/// build (`cargo test`, which CI runs too), not in `--all-features`.
#[cfg(not(feature = "analytics"))]
#[test]
fn compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
