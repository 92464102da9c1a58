//! Tests of the cosmos store: the generated Cosmos SQL and the item layout
//! (no server), and request-level tests against the local emulator
//! (`scripts/emulators/start`, `POLYROUTER_COSMOS_ENDPOINT`, default
//! `http://127.0.0.1:8081/`), which fail loudly when it is not running.
//! Each emulator test works in its own database and deletes it.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::query::{CosmosSql, count, pinned_partition, select};
use super::*;
use crate::entity::{FieldDef, FieldKind};
use crate::query::{Direction, Order, field};
use crate::{KeyKind, Value};

static ITEM_FIELDS: [FieldDef; 5] = [
    FieldDef::required("id", FieldKind::Int),
    FieldDef::nullable("name", FieldKind::String),
    FieldDef::nullable("group", FieldKind::Int),
    FieldDef::nullable("score", FieldKind::Float),
    FieldDef::nullable("at", FieldKind::Timestamp),
];
static ITEM: Schema = Schema {
    name: "item",
    key: "id",
    key_kind: KeyKind::Int,
    partition_key: None,
    version: None,
    fields: &ITEM_FIELDS,
};

static NOTE_FIELDS: [FieldDef; 3] = [
    FieldDef::required("id", FieldKind::String),
    FieldDef::required("body", FieldKind::String),
    FieldDef::nullable("bytes", FieldKind::Bytes),
];
static NOTE: Schema = Schema {
    name: "note",
    key: "id",
    key_kind: KeyKind::Str,
    partition_key: None,
    version: None,
    fields: &NOTE_FIELDS,
};

static ORDER_FIELDS: [FieldDef; 3] = [
    FieldDef::required("id", FieldKind::Uuid),
    FieldDef::required("customer", FieldKind::String),
    FieldDef::required("total", FieldKind::Float),
];
pub(super) static ORDER: Schema = Schema {
    name: "order",
    key: "id",
    key_kind: KeyKind::Uuid,
    partition_key: Some("customer"),
    version: None,
    fields: &ORDER_FIELDS,
};

fn where_of(f: crate::Filter) -> CosmosSql {
    let sql = select(&ITEM, Some(&f), None, None).unwrap();
    assert!(
        sql.text
            .starts_with(r#"SELECT * FROM c WHERE NOT IS_DEFINED(c["pr_deleted"]) AND NOT IS_DEFINED(c["pr_outbox"]) AND "#),
        "tombstones are left out: {}",
        sql.text
    );
    super::query::condition(&ITEM, &f).unwrap()
}

fn params(p: &[(&str, serde_json::Value)]) -> Vec<(String, serde_json::Value)> {
    p.iter().map(|(n, v)| (n.to_string(), v.clone())).collect()
}

const NAME_PRESENT: &str = r#"IS_DEFINED(c["name"]) AND NOT IS_NULL(c["name"])"#;
const NAME_NULL: &str = r#"NOT IS_DEFINED(c["name"]) OR IS_NULL(c["name"])"#;

#[test]
fn comparisons_are_two_valued_and_bound() {
    for (f, op) in [
        (field("name").eq("a"), "="),
        (field("name").lt("a"), "<"),
        (field("name").le("a"), "<="),
        (field("name").gt("a"), ">"),
        (field("name").ge("a"), ">="),
    ] {
        let sql = where_of(f);
        assert_eq!(
            sql.text,
            format!(r#"{NAME_PRESENT} AND c["name"] {op} @p0"#)
        );
        assert_eq!(sql.params, params(&[("@p0", json!("a"))]));
    }
    let ne = where_of(field("name").ne("x'; DROP"));
    assert_eq!(ne.text, format!(r#"{NAME_NULL} OR c["name"] != @p0"#));
    assert_eq!(ne.params, params(&[("@p0", json!("x'; DROP"))]));
}

#[test]
fn null_operands_mirror_eval() {
    assert_eq!(where_of(field("name").eq(Value::Null)).text, NAME_NULL);
    for f in [field("name").ne(Value::Null), field("name").gt(Value::Null)] {
        let sql = where_of(f);
        assert_eq!(sql.text, NAME_PRESENT);
        assert!(sql.params.is_empty());
    }
    assert_eq!(where_of(field("name").lt(Value::Null)).text, "false");
    assert_eq!(where_of(field("name").is_null()).text, NAME_NULL);
}

#[test]
fn in_prefix_contains_and_the_key_property() {
    let sql = where_of(field("group").is_in([1, 2]));
    assert_eq!(
        sql.text,
        r#"IS_DEFINED(c["group"]) AND NOT IS_NULL(c["group"]) AND c["group"] IN (@p0, @p1)"#
    );
    assert_eq!(sql.params, params(&[("@p0", json!(1)), ("@p1", json!(2))]));
    assert_eq!(
        where_of(field("group").is_in(Vec::<i64>::new())).text,
        "false"
    );
    let sql = where_of(field("name").prefix("100%"));
    assert_eq!(
        sql.text,
        r#"IS_STRING(c["name"]) AND STARTSWITH(c["name"], @p0)"#
    );
    assert_eq!(sql.params, params(&[("@p0", json!("100%"))]));
    let sql = where_of(field("name").contains("_"));
    assert_eq!(
        sql.text,
        r#"IS_STRING(c["name"]) AND CONTAINS(c["name"], @p0)"#
    );
    // The key field `id` is stored as `pr_id` (Cosmos' `id` is the encoded id).
    let sql = where_of(field("id").gt(5));
    assert_eq!(
        sql.text,
        r#"IS_DEFINED(c["pr_id"]) AND NOT IS_NULL(c["pr_id"]) AND c["pr_id"] > @p0"#
    );
}

#[test]
fn and_or_not_take_parentheses_only_where_needed() {
    let f = field("name")
        .is_null()
        .and(field("group").eq(1))
        .or(field("score").ge(2.5).not());
    let sql = where_of(f);
    assert_eq!(
        sql.text,
        format!(
            r#"({NAME_NULL}) AND IS_DEFINED(c["group"]) AND NOT IS_NULL(c["group"]) AND c["group"] = @p0 OR NOT (IS_DEFINED(c["score"]) AND NOT IS_NULL(c["score"]) AND c["score"] >= @p1)"#
        )
    );
    assert_eq!(
        sql.params,
        params(&[("@p0", json!(1)), ("@p1", json!(2.5))])
    );
    assert_eq!(where_of(crate::Filter::And(vec![])).text, "true");
    assert_eq!(where_of(crate::Filter::Or(vec![])).text, "false");
    assert_eq!(where_of(crate::Filter::Or(vec![]).not()).text, "NOT false");
}

#[test]
fn values_use_the_stored_encodings() {
    let at = Utc.with_ymd_and_hms(2024, 2, 29, 12, 0, 0).unwrap();
    let sql = where_of(field("at").lt(at));
    assert_eq!(
        sql.params,
        params(&[("@p0", json!("2024-02-29T12:00:00.000000Z"))])
    );
    let sql = where_of(field("score").lt(f64::INFINITY));
    assert_eq!(sql.params, params(&[("@p0", json!(f64::MAX))]));
    let sql = select(&NOTE, Some(&field("bytes").eq(vec![0u8, 255])), None, None).unwrap();
    assert_eq!(sql.params, params(&[("@p0", json!("00ff"))]));
}

#[test]
fn select_orders_by_the_first_sort_key_and_tops_only_the_key_order() {
    let by_name = Order {
        field: "name".into(),
        direction: Direction::Desc,
    };
    let sql = select(&ITEM, None, Some(&by_name), None).unwrap();
    assert_eq!(
        sql.text,
        r#"SELECT * FROM c WHERE NOT IS_DEFINED(c["pr_deleted"]) AND NOT IS_DEFINED(c["pr_outbox"]) ORDER BY c["name"] DESC"#
    );
    let by_key = Order {
        field: "id".into(),
        direction: Direction::Asc,
    };
    let sql = select(&ITEM, Some(&field("group").eq(3)), Some(&by_key), Some(50)).unwrap();
    assert_eq!(
        sql.text,
        r#"SELECT TOP @p0 * FROM c WHERE NOT IS_DEFINED(c["pr_deleted"]) AND NOT IS_DEFINED(c["pr_outbox"]) AND IS_DEFINED(c["group"]) AND NOT IS_NULL(c["group"]) AND c["group"] = @p1 ORDER BY c["pr_id"] ASC"#
    );
    assert_eq!(sql.params, params(&[("@p0", json!(50)), ("@p1", json!(3))]));
    let sql = count(&ITEM, Some(&field("name").prefix("a"))).unwrap();
    assert_eq!(
        sql.text,
        r#"SELECT VALUE COUNT(1) FROM c WHERE NOT IS_DEFINED(c["pr_deleted"]) AND NOT IS_DEFINED(c["pr_outbox"]) AND IS_STRING(c["name"]) AND STARTSWITH(c["name"], @p0)"#
    );
    assert!(select(&ITEM, Some(&field("nope").eq(1)), None, None).is_err());
}

#[test]
fn a_filter_pinning_the_partition_key_is_found() {
    let f = field("customer").eq("c1").and(field("total").gt(3.0));
    assert_eq!(
        pinned_partition("customer", Some(&f)),
        Some(&Value::String("c1".into()))
    );
    assert_eq!(
        pinned_partition("customer", Some(&field("customer").eq("c2"))),
        Some(&Value::String("c2".into()))
    );
    let or = field("customer").eq("c1").or(field("total").gt(3.0));
    assert_eq!(pinned_partition("customer", Some(&or)), None);
    assert_eq!(
        pinned_partition("customer", Some(&field("customer").ne("c1"))),
        None
    );
    assert_eq!(pinned_partition("customer", None), None);
    assert_eq!(codec::partition_path(&ORDER), "/customer");
    assert_eq!(codec::partition_path(&ITEM), "/pr_id");
}

#[test]
fn ids_are_encoded_reversibly_and_long_ones_refused() {
    let cases = [
        ("plain", "plain"),
        ("a/b?c#d", "a~2Fb~3Fc~23d"),
        ("back\\slash", "back~5Cslash"),
        (" trailing space ", " trailing space~20"),
        ("tilde~", "tilde~7E"),
        ("nul\u{0}byte", "nul~00byte"),
        ("", "~"),
        ("日本", "日本"),
        // Whole-path dot segments a URL would normalise away.
        (".", "~2E"),
        ("..", "~2E~2E"),
        ("...", "..."),
        ("a.", "a."),
    ];
    for (key, id) in cases {
        let k = Key::from(key);
        assert_eq!(codec::item_id(&k).unwrap(), id, "{key:?}");
        assert_eq!(codec::key_of_id(KeyKind::Str, id), Some(k), "{id:?}");
    }
    assert_eq!(codec::item_id(&Key::Int(-42)).unwrap(), "-42");
    let long = Key::from("x".repeat(256));
    assert!(codec::item_id(&long).unwrap_err().contains("at most 255"));
    assert!(
        codec::item_id(&Key::from("/".repeat(100))).is_err(),
        "300 bytes once encoded"
    );
}

#[test]
fn records_round_trip_through_items() {
    let mut r = Record::new(Key::Int(i64::MAX));
    r.set("id", Value::I64(i64::MAX));
    r.set("name", Value::String("\u{0}nul".into()));
    r.set("group", Value::Null);
    r.set("score", Value::F64(f64::NEG_INFINITY));
    r.set(
        "at",
        Value::Timestamp(Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap()),
    );
    let doc = codec::encode_record(&ITEM, &r, 7, Some(2)).unwrap();
    assert_eq!(doc["id"], json!("9223372036854775807"));
    assert_eq!(doc["pr_version"], json!(7));
    assert_eq!(doc["ttl"], json!(2));
    assert_eq!(doc["group"], json!(null));
    assert_eq!(doc["pr_exact"]["score"], json!("-inf"));
    assert_eq!(doc["at"], json!("1900-01-01T00:00:00.000000Z"));
    let back = codec::decode_record(&ITEM, &doc).unwrap();
    r.version = 7;
    assert_eq!(back, r);
    let mut nan = Record::new(Key::Int(1));
    nan.set("id", Value::I64(1));
    nan.set("score", Value::F64(f64::NAN));
    assert!(
        codec::encode_record(&ITEM, &nan, 1, None)
            .unwrap_err()
            .contains("score")
    );
    let mut far = Record::new(Key::Int(1));
    far.set(
        "at",
        Value::Timestamp(Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap()),
    );
    assert!(codec::encode_record(&ITEM, &far, 1, None).is_err());
    assert_eq!(ttl_secs(Duration::from_millis(400)), Ok(1));
    assert_eq!(ttl_secs(Duration::from_millis(1001)), Ok(2));
    assert_eq!(ttl_secs(Duration::from_secs(60)), Ok(60));
    assert_eq!(ttl_secs(crate::Capabilities::MAX_TTL), Ok(i32::MAX as u64));
    // No overflow and no wrap to a short TTL, whatever the duration.
    assert!(ttl_secs(Duration::MAX).unwrap_err().contains("longer than"));
    assert!(ttl_secs(Duration::from_secs(i32::MAX as u64) + Duration::from_millis(1)).is_err());
}

#[test]
fn json_numbers_doubles_would_change_are_kept_as_text() {
    static DOC_FIELDS: [FieldDef; 2] = [
        FieldDef::required("id", FieldKind::String),
        FieldDef::nullable("data", FieldKind::Json),
    ];
    static DOC: Schema = Schema {
        name: "doc",
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: None,
        version: None,
        fields: &DOC_FIELDS,
    };
    let item = |data: serde_json::Value| {
        let mut r = Record::new(Key::from("d"));
        r.set("id", Value::String("d".into()));
        r.set("data", Value::Json(data));
        codec::encode_record(&DOC, &r, 1, None).unwrap()
    };
    for exact in [
        json!(u64::MAX),
        json!({"a": [i64::MIN]}),
        json!((1u64 << 53) + 1),
        json!(-(1i64 << 53) - 1),
        json!([1, -0.0]),
    ] {
        let doc = item(exact.clone());
        assert_eq!(
            doc[codec::EXACT]["data"],
            json!(exact.to_string()),
            "{exact}"
        );
        // Decoded from the text even when the service rounded the number.
        let mut rounded = doc.clone();
        rounded.insert("data".into(), json!(1.8446744073709552e19));
        let back = codec::decode_record(&DOC, &rounded).unwrap();
        assert_eq!(back.get("data"), Some(&Value::Json(exact)));
    }
    for plain in [
        json!(1u64 << 53),
        json!(-(1i64 << 53)),
        json!([0.5, 0.0, "x"]),
    ] {
        assert!(item(plain.clone()).get(codec::EXACT).is_none(), "{plain}");
    }
}

#[test]
fn reserved_and_unusable_field_names_are_refused() {
    static BAD_FIELDS: [FieldDef; 2] = [
        FieldDef::required("id", FieldKind::String),
        FieldDef::required("pr_version", FieldKind::Int),
    ];
    static BAD: Schema = Schema {
        name: "bad",
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: None,
        version: None,
        fields: &BAD_FIELDS,
    };
    assert!(codec::check_schema(&BAD).unwrap_err().contains("pr_"));
    assert!(codec::check_schema(&ITEM).is_ok());
    assert_eq!(codec::stored_name("ttl"), "pr_ttl");
    assert_eq!(codec::stored_name("_meta"), "pr__meta");
}

// ---- against the emulator ----

/// The emulators' well-known, public account key.
const EMULATOR_KEY: &str =
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw==";

fn endpoint() -> String {
    std::env::var("POLYROUTER_COSMOS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:8081/".into())
}

fn database() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "pr_unit_{}_{}",
        std::process::id(),
        N.fetch_add(1, AtomicOrdering::Relaxed)
    )
}

pub(super) async fn emulator_store() -> CosmosStore {
    let cfg = CosmosConfig::new(endpoint(), EMULATOR_KEY, &database()).create_if_missing(true);
    CosmosStore::connect("catalog", cfg)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the Cosmos emulator is not running; start it with `scripts/emulators/start`: {e}"
            )
        })
}

pub(super) fn entity(schema: &'static Schema) -> EntityInfo {
    let mut e = EntityInfo::new(schema);
    e.store = "catalog".into();
    e
}

fn note(id: &str) -> Record {
    let mut r = Record::new(Key::from(id));
    r.set("id", Value::String(id.into()));
    r.set("body", Value::String("b".into()));
    r.set("bytes", Value::Null);
    r
}

#[tokio::test]
async fn unusable_ids_are_refused_before_any_request() {
    let store = emulator_store().await;
    let notes = entity(&NOTE);
    store.ensure_entity(&notes).await.unwrap();
    let long = "k".repeat(300);
    let put = WriteOp::Put {
        record: note(&long),
        precondition: Precondition::None,
        ttl: None,
    };
    let ok = WriteOp::Put {
        record: note("fine"),
        precondition: Precondition::None,
        ttl: None,
    };
    let e = store.write(&notes, vec![ok, put], false).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert!(e.to_string().contains("at most 255"), "{e}");
    // Nothing of the batch was written: the bad key was found first.
    assert_eq!(store.count(&notes, None).await.unwrap(), 0);
    let e = store.get(&notes, &Key::from(long)).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let e = store.get(&notes, &Key::Int(3)).await.unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    // Encoded ids round-trip on the wire.
    for key in ["a/b?c#d", " x ", "~7E", "back\\"] {
        let w = WriteOp::Put {
            record: note(key),
            precondition: Precondition::Absent,
            ttl: None,
        };
        store.write(&notes, vec![w], true).await.unwrap();
        let got = store.get(&notes, &Key::from(key)).await.unwrap().unwrap();
        assert_eq!(got.key, Key::from(key));
    }
    store.delete_database().await.unwrap();
}

/// Ids a URL path would normalise (`.`, `..`, and their `%2e` spellings)
/// are encoded, so they address their own item: a delete of `..` once
/// deleted the whole container on the emulator.
#[tokio::test]
async fn dot_keys_address_their_own_items_and_the_container_survives() {
    let store = emulator_store().await;
    let notes = entity(&NOTE);
    store.ensure_entity(&notes).await.unwrap();
    let put = |key: &str| WriteOp::Put {
        record: note(key),
        precondition: Precondition::Absent,
        ttl: None,
    };
    store
        .write(&notes, vec![put("canary")], true)
        .await
        .unwrap();
    let keys = [
        ".", "..", "...", "%2e", "%2E%2E", ".%2e", "%2e.", "a.", ".a", "./..", "~2E",
    ];
    // One by one, and as one (non-atomic) batch.
    for key in &keys[..4] {
        store.write(&notes, vec![put(key)], true).await.unwrap();
    }
    let rest = keys[4..].iter().map(|k| put(k)).collect();
    store.write(&notes, rest, false).await.unwrap();
    for key in keys {
        let got = store.get(&notes, &Key::from(key)).await.unwrap();
        assert_eq!(got.map(|r| r.key), Some(Key::from(key)), "{key:?}");
    }
    let many: Vec<Key> = keys.iter().map(|k| Key::from(*k)).collect();
    let got = store.get_many(&notes, &many).await.unwrap();
    assert!(got.iter().all(Option::is_some), "{got:?}");
    assert_eq!(
        store.count(&notes, None).await.unwrap(),
        keys.len() as u64 + 1
    );
    // Deleting `..` deletes that item only.
    let del = |key: &str, precondition| WriteOp::Delete {
        key: Key::from(key),
        precondition,
    };
    let out = store
        .write(&notes, vec![del("..", Precondition::Exists)], true)
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Deleted { existed: true }]);
    let out = store
        .write(
            &notes,
            vec![del(".", Precondition::None), del("..", Precondition::None)],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            WriteOutcome::Deleted { existed: true },
            WriteOutcome::Deleted { existed: false }
        ]
    );
    assert_eq!(
        store.count(&notes, None).await.unwrap(),
        keys.len() as u64 - 1
    );
    let canary = store.get(&notes, &Key::from("canary")).await.unwrap();
    assert!(canary.is_some(), "the container and its items survive");
    store.delete_database().await.unwrap();
}

#[tokio::test]
async fn items_carry_id_version_ttl_and_etag_preconditions() {
    let store = emulator_store().await;
    let notes = entity(&NOTE);
    store.ensure_entity(&notes).await.unwrap();
    let put = |p, ttl| WriteOp::Put {
        record: note("a/1"),
        precondition: p,
        ttl,
    };
    store
        .write(
            &notes,
            vec![put(Precondition::Absent, Some(Duration::from_secs(90)))],
            true,
        )
        .await
        .unwrap();
    let e = store
        .write(&notes, vec![put(Precondition::Absent, None)], true)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                actual: Some(1),
                ..
            }
        ),
        "{e}"
    );
    let e = store
        .write(&notes, vec![put(Precondition::Version(5), None)], true)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                actual: Some(1),
                ..
            }
        ),
        "{e}"
    );
    // What is on the wire, read with the raw client.
    let c = store.container(&notes).await.unwrap();
    let raw: Doc = c
        .client
        .read_item("a/1".to_string(), "a~2F1", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(raw["id"], json!("a~2F1"));
    assert_eq!(raw["pr_id"], json!("a/1"));
    assert_eq!(raw["pr_version"], json!(1));
    assert_eq!(raw["ttl"], json!(90), "the item TTL is sent in seconds");
    assert!(raw["_etag"].is_string());
    // Containers are created with TTL on and no default (-1).
    let props = c.client.read(None).await.unwrap().into_model().unwrap();
    assert_eq!(props.default_ttl, TimeToLive::NoDefault);
    assert_eq!(
        props
            .partition_key
            .paths()
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        ["/pr_id"]
    );
    let out = store
        .write(&notes, vec![put(Precondition::Version(1), None)], true)
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 2 }]);
    store.delete_database().await.unwrap();
}

#[tokio::test]
async fn a_query_pinning_the_partition_key_and_reads_by_id_across_partitions() {
    let store = emulator_store().await;
    let orders = entity(&ORDER);
    store.ensure_entity(&orders).await.unwrap();
    let mut ops = Vec::new();
    let mut ids = Vec::new();
    for (i, customer) in ["c1", "c1", "c2"].iter().enumerate() {
        let id = uuid::Uuid::new_v4();
        ids.push(id);
        let mut r = Record::new(Key::Uuid(id));
        r.set("id", Value::Uuid(id));
        r.set("customer", Value::String(customer.to_string()));
        r.set("total", Value::F64(i as f64));
        ops.push(WriteOp::Put {
            record: r,
            precondition: Precondition::None,
            ttl: None,
        });
    }
    store.write(&orders, ops, false).await.unwrap();
    let q = StoreQuery {
        filter: Some(field("customer").eq("c1")),
        order: vec![Order {
            field: "id".into(),
            direction: Direction::Asc,
        }],
        limit: Some(10),
    };
    let rows = store.query(&orders, &q).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|r| r.value("customer") == &Value::String("c1".into()))
    );
    // The key alone does not name the partition: found by a query by id.
    let got = store
        .get(&orders, &Key::Uuid(ids[2]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.value("customer"), &Value::String("c2".into()));
    let out = store
        .write(
            &orders,
            vec![WriteOp::Delete {
                key: Key::Uuid(ids[2]),
                precondition: Precondition::Version(1),
            }],
            true,
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Deleted { existed: true }]);
    assert_eq!(store.count(&orders, None).await.unwrap(), 2);
    store.delete_database().await.unwrap();
}

#[tokio::test]
async fn a_missing_database_is_a_config_error_naming_it() {
    let cfg = CosmosConfig::new(endpoint(), EMULATOR_KEY, &database());
    let e = CosmosStore::connect("catalog", cfg).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("create_if_missing"), "{e}");
}

#[tokio::test]
async fn a_stopped_emulator_is_unavailable_naming_the_store_without_the_key() {
    // A port nobody listens on: what a stopped emulator looks like.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = CosmosConfig::new(format!("http://127.0.0.1:{port}/"), EMULATOR_KEY, "db");
    cfg.connect_timeout = crate::config::ConfigDuration(Duration::from_millis(500));
    cfg.request_timeout = crate::config::ConfigDuration(Duration::from_secs(2));
    let e = tokio::time::timeout(
        Duration::from_secs(120),
        CosmosStore::connect("catalog", cfg),
    )
    .await
    .expect("gives up in time")
    .unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("store `catalog`"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains(EMULATOR_KEY) && !format!("{e:?}").contains(EMULATOR_KEY));
}

/// The emulator accepts any key, so a wrong key cannot be seen there: this
/// checks the request signature is built from the configured key instead.
#[tokio::test]
async fn requests_are_signed_with_the_configured_key() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 16 * 1024];
            let n = sock.read(&mut buf).await.unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = sock
                .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                .await;
        }
    });
    let key = "c2lnbmluZyBrZXkgZm9yIHRoZSB0ZXN0";
    let mut cfg = CosmosConfig::new(format!("http://127.0.0.1:{port}/"), key, "db");
    cfg.request_timeout = crate::config::ConfigDuration(Duration::from_secs(2));
    let _ = tokio::time::timeout(
        Duration::from_secs(60),
        CosmosStore::connect("catalog", cfg),
    )
    .await;
    server.abort();
    let request = rx.recv().await.expect("the client sent a request");
    let header = |name: &str| {
        request
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} header in {request}"))
    };
    let auth = percent_decode(&header("authorization"));
    let date = header("x-ms-date");
    let first_line = request.lines().next().unwrap();
    assert!(first_line.starts_with("GET / "), "{first_line}");
    // GET of the account: empty resource type and link.
    let to_sign = format!("get\n\n\n{}\n\n", date.to_ascii_lowercase());
    let sig = |k: &str| {
        azure_core::hmac::hmac_sha256(
            &to_sign,
            &azure_core::credentials::Secret::new(k.to_string()),
        )
        .unwrap()
    };
    assert_eq!(auth, format!("type=master&ver=1.0&sig={}", sig(key)));
    assert_ne!(
        auth,
        format!("type=master&ver=1.0&sig={}", sig(EMULATOR_KEY))
    );
    assert!(!request.contains(key), "the key itself is never sent");
}

fn percent_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

// ---- atomic batches: transactional batch ----

/// One HTTP/1.1 message: its head (start line and headers) and body.
struct Message {
    head: String,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    fn start(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// The message with `body`, its length set and `connection: close`.
    fn with_body(&self, body: Vec<u8>) -> Vec<u8> {
        let mut out = String::new();
        for (i, l) in self.head.lines().enumerate() {
            let name = l
                .split_once(':')
                .map(|(n, _)| n.trim().to_ascii_lowercase());
            if i > 0 && matches!(name.as_deref(), Some("content-length" | "connection")) {
                continue;
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = out.into_bytes();
        bytes.extend(body);
        bytes
    }
}

/// Reads one message with a `content-length` body (all the client and the
/// emulator proxy send); `None` at the end of the stream.
async fn read_message(
    sock: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> Option<Message> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 16 * 1024];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let mut msg = Message {
        head,
        body: Vec::new(),
    };
    let len: usize = msg
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    msg.body = buf.drain(..len).collect();
    Some(msg)
}

/// What the recorder does with the next batch request: wait for `release`
/// (if any), then answer `answer` (status, JSON body) instead of
/// forwarding it (if any).
#[derive(Default)]
struct Scripted {
    release: Option<tokio::sync::oneshot::Receiver<()>>,
    answer: Option<(u16, serde_json::Value)>,
}

/// A recording HTTP forwarder between a store and the emulator: every
/// transactional batch request is sent to `batches`; scripted ones are
/// held and answered by the test.
struct Recorder {
    endpoint: String,
    batches: tokio::sync::mpsc::UnboundedReceiver<Message>,
    script: Arc<parking_lot::Mutex<std::collections::VecDeque<Scripted>>>,
    /// The request line of every request, in order.
    requests: Arc<parking_lot::Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let upstream = endpoint();
        let up_authority = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let me = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let (tx, batches) = tokio::sync::mpsc::unbounded_channel();
        let script: Arc<parking_lot::Mutex<std::collections::VecDeque<Scripted>>> = Arc::default();
        let script2 = script.clone();
        let requests: Arc<parking_lot::Mutex<Vec<String>>> = Arc::default();
        let requests2 = requests.clone();
        let me2 = me.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (tx, script, log, up, me) = (
                    tx.clone(),
                    script2.clone(),
                    requests2.clone(),
                    up_authority.clone(),
                    me2.clone(),
                );
                tokio::spawn(async move {
                    let _ = Recorder::serve(sock, tx, script, log, up, me).await;
                });
            }
        });
        Recorder {
            endpoint: format!("http://{me}/"),
            batches,
            script,
            requests,
            server,
        }
    }

    async fn serve(
        mut sock: tokio::net::TcpStream,
        tx: tokio::sync::mpsc::UnboundedSender<Message>,
        script: Arc<parking_lot::Mutex<std::collections::VecDeque<Scripted>>>,
        log: Arc<parking_lot::Mutex<Vec<String>>>,
        upstream: String,
        me: String,
    ) -> Option<()> {
        use tokio::io::AsyncWriteExt;
        let mut buf = Vec::new();
        loop {
            let req = read_message(&mut sock, &mut buf).await?;
            log.lock().push(req.start().to_string());
            let is_batch = req
                .header("x-ms-cosmos-is-batch-request")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let scripted = if is_batch {
                let copy = Message {
                    head: req.head.clone(),
                    body: req.body.clone(),
                };
                let _ = tx.send(copy);
                script.lock().pop_front()
            } else {
                None
            };
            let mut answer = None;
            if let Some(s) = scripted {
                if let Some(release) = s.release {
                    let _ = release.await;
                }
                answer = s.answer;
            }
            let out = match answer {
                Some((status, body)) => {
                    let resp = Message {
                        head: format!(
                            "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\nx-ms-activity-id: 00000000-0000-0000-0000-000000000000\r\nx-ms-request-charge: 1"
                        ),
                        body: Vec::new(),
                    };
                    resp.with_body(serde_json::to_vec(&body).unwrap())
                }
                None => {
                    let mut up = tokio::net::TcpStream::connect(&upstream).await.ok()?;
                    up.write_all(&req.with_body(req.body.clone())).await.ok()?;
                    let resp = read_message(&mut up, &mut Vec::new()).await?;
                    let mut body = resp.body.clone();
                    if req.start().starts_with("GET / ") {
                        // The account document names the endpoint to use.
                        body = String::from_utf8_lossy(&body)
                            .replace(&upstream, &me)
                            .into_bytes();
                    }
                    resp.with_body(body)
                }
            };
            sock.write_all(&out).await.ok()?;
        }
    }

    async fn store(&self, database: &str) -> CosmosStore {
        let cfg = CosmosConfig::new(&self.endpoint, EMULATOR_KEY, database).create_if_missing(true);
        CosmosStore::connect("catalog", cfg).await.unwrap_or_else(|e| {
            panic!(
                "the Cosmos emulator is not running; start it with `scripts/emulators/start`: {e}"
            )
        })
    }

    fn next_batch(&mut self) -> Option<Message> {
        self.batches.try_recv().ok()
    }

    /// The methods of the requests made since the last call (`GET`,
    /// `POST`, `PUT`, …).
    fn take_methods(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock())
            .iter()
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub(super) fn order(id: uuid::Uuid, customer: &str, total: f64) -> Record {
    let mut r = Record::new(Key::Uuid(id));
    r.set("id", Value::Uuid(id));
    r.set("customer", Value::String(customer.into()));
    r.set("total", Value::F64(total));
    r
}

pub(super) fn put(record: Record, precondition: Precondition) -> WriteOp {
    WriteOp::Put {
        record,
        precondition,
        ttl: None,
    }
}

pub(super) async fn raw_item(
    store: &CosmosStore,
    e: &EntityInfo,
    customer: &str,
    id: uuid::Uuid,
) -> Option<Doc> {
    let c = store.container(e).await.unwrap();
    match c
        .client
        .read_item(customer.to_string(), &id.to_string(), None)
        .await
    {
        Ok(r) => Some(r.into_model().unwrap()),
        Err(e) if status(&e) == Some(404) => None,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn an_atomic_batch_in_one_partition_is_one_transactional_batch() {
    let mut rec = Recorder::start().await;
    let db = database();
    let store = rec.store(&db).await;
    let orders = entity(&ORDER);
    store.ensure_entity(&orders).await.unwrap();
    let (o1, o2, o3) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    store
        .write(
            &orders,
            vec![put(order(o1, "c1", 1.0), Precondition::None)],
            true,
        )
        .await
        .unwrap();
    assert!(rec.next_batch().is_none(), "a single write is no batch");
    let etag = codec::etag_of(&raw_item(&store, &orders, "c1", o1).await.unwrap()).unwrap();

    let out = store
        .write(
            &orders,
            vec![
                put(order(o2, "c1", 2.0), Precondition::Absent),
                put(order(o1, "c1", 1.5), Precondition::Version(1)),
                WriteOp::Delete {
                    key: Key::Uuid(o3),
                    precondition: Precondition::None,
                },
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            WriteOutcome::Written { version: 1 },
            WriteOutcome::Written { version: 2 },
            WriteOutcome::Deleted { existed: false },
        ]
    );
    let req = rec.next_batch().expect("one batch request");
    assert!(rec.next_batch().is_none(), "exactly one batch request");
    assert_eq!(
        req.start(),
        format!("POST /dbs/{db}/colls/order/docs HTTP/1.1")
    );
    let h = |n: &str| {
        req.header(n)
            .unwrap_or_else(|| panic!("no {n} in {}", req.head))
    };
    assert!(h("x-ms-cosmos-is-batch-request").eq_ignore_ascii_case("true"));
    assert!(h("x-ms-cosmos-batch-atomic").eq_ignore_ascii_case("true"));
    assert_eq!(h("x-ms-documentdb-partitionkey"), r#"["c1"]"#);
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    let ops = body.as_array().expect("a JSON array of operations");
    assert_eq!(
        ops.len(),
        2,
        "the delete of an absent item is not sent: {body}"
    );
    assert_eq!(ops[0]["operationType"], json!("Create"));
    assert_eq!(ops[0]["resourceBody"]["id"], json!(o2.to_string()));
    assert_eq!(ops[0]["resourceBody"]["customer"], json!("c1"));
    assert_eq!(ops[0]["resourceBody"]["pr_version"], json!(1));
    assert!(ops[0].get("ifMatch").is_none());
    assert_eq!(ops[1]["operationType"], json!("Replace"));
    assert_eq!(ops[1]["id"], json!(o1.to_string()));
    assert_eq!(ops[1]["resourceBody"]["pr_version"], json!(2));
    assert_eq!(ops[1]["resourceBody"]["total"], json!(1.5));
    assert_eq!(ops[1]["ifMatch"], json!(etag), "guarded by the ETag read");
    let stored = raw_item(&store, &orders, "c1", o1).await.unwrap();
    assert_eq!(stored["pr_version"], json!(2));
    assert_eq!(stored["total"].as_f64(), Some(1.5));

    // A precondition that fails is found before anything is sent.
    let e = store
        .write(
            &orders,
            vec![
                put(order(o3, "c1", 3.0), Precondition::None),
                put(order(o2, "c1", 2.5), Precondition::Version(7)),
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                actual: Some(1),
                expected: Precondition::Version(7),
                ..
            }
        ),
        "{e}"
    );
    assert!(rec.next_batch().is_none(), "nothing sent");
    assert!(raw_item(&store, &orders, "c1", o3).await.is_none());

    // A delete and a put of the same key: the first write carries the ETag.
    let out = store
        .write(
            &orders,
            vec![
                WriteOp::Delete {
                    key: Key::Uuid(o2),
                    precondition: Precondition::Version(1),
                },
                put(order(o2, "c1", 9.0), Precondition::Absent),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            WriteOutcome::Deleted { existed: true },
            WriteOutcome::Written { version: 3 }
        ]
    );
    let req = rec.next_batch().expect("a batch");
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    // The delete turns the item into its tombstone; the insert replaces it.
    assert_eq!(body[0]["operationType"], json!("Replace"));
    assert!(body[0]["ifMatch"].is_string());
    assert_eq!(body[0]["resourceBody"]["pr_deleted"], json!(true));
    assert_eq!(body[1]["operationType"], json!("Replace"));
    store.delete_database().await.unwrap();
}

#[tokio::test]
async fn a_failed_transactional_batch_is_a_conflict_with_nothing_written() {
    let mut rec = Recorder::start().await;
    let db = database();
    let store = Arc::new(rec.store(&db).await);
    let orders = entity(&ORDER);
    store.ensure_entity(&orders).await.unwrap();
    let (o1, o2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    store
        .write(
            &orders,
            vec![put(order(o1, "c1", 1.0), Precondition::None)],
            true,
        )
        .await
        .unwrap();

    // Another writer changes o1 between the batch's read and the batch:
    // the service answers 207 with the replace 412 and the create 424.
    let (go, release) = tokio::sync::oneshot::channel();
    rec.script.lock().push_back(Scripted {
        release: Some(release),
        answer: Some((
            207,
            json!([
                {"statusCode": 424, "requestCharge": 0},
                {"statusCode": 412, "requestCharge": 1, "substatusCode": 0}
            ]),
        )),
    });
    let batch = {
        let (store, orders) = (store.clone(), orders.clone());
        tokio::spawn(async move {
            store
                .write(
                    &orders,
                    vec![
                        put(order(o2, "c1", 2.0), Precondition::Absent),
                        put(order(o1, "c1", 1.5), Precondition::Version(1)),
                    ],
                    true,
                )
                .await
        })
    };
    let first = loop {
        if let Some(m) = rec.next_batch() {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let body: serde_json::Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body[1]["operationType"], json!("Replace"));
    store
        .write(
            &orders,
            vec![put(order(o1, "c1", 7.0), Precondition::None)],
            false,
        )
        .await
        .unwrap();
    go.send(()).unwrap();
    let e = batch.await.unwrap().unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Conflict {
                actual: Some(2),
                expected: Precondition::Version(1),
                ..
            }
        ),
        "re-read after the 412: the precondition fails with the actual version: {e}"
    );
    assert!(e.to_string().contains("store `catalog`"), "{e}");
    assert!(
        rec.next_batch().is_none(),
        "not sent again once the precondition fails"
    );
    assert!(
        raw_item(&store, &orders, "c1", o2).await.is_none(),
        "nothing written"
    );
    let o1_doc = raw_item(&store, &orders, "c1", o1).await.unwrap();
    assert_eq!(
        o1_doc["total"].as_f64(),
        Some(7.0),
        "the other writer's value stays"
    );

    // A batch failing for another reason (400) is an error naming the op.
    rec.script.lock().push_back(Scripted {
        release: None,
        answer: Some((
            207,
            json!([{"statusCode": 400, "requestCharge": 0}, {"statusCode": 424, "requestCharge": 0}]),
        )),
    });
    let e = store
        .write(
            &orders,
            vec![
                put(order(o2, "c1", 2.0), Precondition::None),
                put(order(o1, "c1", 1.5), Precondition::None),
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Backend { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("create of item {o2}")),
        "{e}"
    );
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert!(raw_item(&store, &orders, "c1", o2).await.is_none());
    store.delete_database().await.unwrap();
}

#[tokio::test]
async fn atomic_batches_across_partitions_or_over_100_ops_are_unsupported() {
    let mut rec = Recorder::start().await;
    let store = rec.store(&database()).await;
    let orders = entity(&ORDER);
    store.ensure_entity(&orders).await.unwrap();
    let (o1, o2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let e = store
        .write(
            &orders,
            vec![
                put(order(o1, "c1", 1.0), Precondition::None),
                put(order(o2, "c2", 2.0), Precondition::None),
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("store `catalog`") && text.contains("entity `order`"),
        "{text}"
    );
    assert!(
        text.contains("ops span 2 partitions; atomic batches need one partition key value"),
        "{text}"
    );
    // A delete's partition is the stored item's: known after reading it.
    store
        .write(
            &orders,
            vec![put(order(o2, "c2", 2.0), Precondition::None)],
            false,
        )
        .await
        .unwrap();
    let e = store
        .write(
            &orders,
            vec![
                put(order(o1, "c1", 1.0), Precondition::None),
                WriteOp::Delete {
                    key: Key::Uuid(o2),
                    precondition: Precondition::None,
                },
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ops span 2 partitions"), "{e}");
    assert!(
        raw_item(&store, &orders, "c2", o2).await.is_some(),
        "nothing deleted"
    );
    assert!(
        raw_item(&store, &orders, "c1", o1).await.is_none(),
        "nothing written"
    );

    // Partitioned by the key (no partition key field): two keys, two partitions.
    let notes = entity(&NOTE);
    store.ensure_entity(&notes).await.unwrap();
    let e = store
        .write(
            &notes,
            vec![
                put(note("a"), Precondition::None),
                put(note("b"), Precondition::None),
            ],
            true,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ops span 2 partitions"), "{e}");
    // Two writes of one key are one partition.
    let out = store
        .write(
            &notes,
            vec![
                put(note("a"), Precondition::Absent),
                put(note("a"), Precondition::Version(1)),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            WriteOutcome::Written { version: 1 },
            WriteOutcome::Written { version: 2 }
        ]
    );
    assert!(rec.next_batch().is_some());

    let many: Vec<WriteOp> = (0..101)
        .map(|i| {
            put(
                order(uuid::Uuid::new_v4(), "c1", i as f64),
                Precondition::None,
            )
        })
        .collect();
    let e = store.write(&orders, many, true).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("at most 100"), "{e}");
    // Non-atomic, the same 101 writes go through one by one.
    let many: Vec<WriteOp> = (0..101)
        .map(|i| {
            put(
                order(uuid::Uuid::new_v4(), "c1", i as f64),
                Precondition::None,
            )
        })
        .collect();
    assert_eq!(store.write(&orders, many, false).await.unwrap().len(), 101);
    assert!(
        rec.next_batch().is_none(),
        "no batch request for non-atomic writes"
    );
    store.delete_database().await.unwrap();
}

/// Against the emulator through its proxy (which undoes a failed atomic
/// batch, as the service never applies one): a failing op writes nothing.
#[tokio::test]
async fn a_batch_failing_on_the_emulator_writes_nothing() {
    let store = emulator_store().await;
    let orders = entity(&ORDER);
    store.ensure_entity(&orders).await.unwrap();
    let c = store.container(&orders).await.unwrap();
    let (o1, o2, o3) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    store
        .write(
            &orders,
            vec![put(order(o1, "c1", 1.0), Precondition::None)],
            true,
        )
        .await
        .unwrap();
    let before = raw_item(&store, &orders, "c1", o1).await.unwrap();
    // Straight to the client: create o2, replace o1, create o1 again (409).
    let mut doc1 = before.clone();
    doc1.insert("total".into(), json!(5.0));
    let mut doc2 = codec::encode_record(&ORDER, &order(o2, "c1", 2.0), 1, None).unwrap();
    doc2.insert("pr_version".into(), json!(1));
    let doc3 = codec::encode_record(&ORDER, &order(o3, "c1", 3.0), 1, None).unwrap();
    let batch = azure_data_cosmos::TransactionalBatch::new("c1")
        .create_item(&doc2)
        .unwrap()
        .replace_item(o1.to_string(), &doc1, None)
        .unwrap()
        .create_item(&doc3)
        .unwrap()
        .create_item(&before)
        .unwrap();
    let resp = c
        .client
        .execute_transactional_batch(batch, None)
        .await
        .unwrap();
    assert_eq!(u16::from(resp.status().status_code()), 207);
    let results = resp.into_model().unwrap();
    let codes: Vec<u16> = results.results().iter().map(|r| r.status_code()).collect();
    assert_eq!(codes, vec![424, 424, 424, 409]);
    assert!(raw_item(&store, &orders, "c1", o2).await.is_none());
    assert!(raw_item(&store, &orders, "c1", o3).await.is_none());
    let after = raw_item(&store, &orders, "c1", o1).await.unwrap();
    assert_eq!(after["total"].as_f64(), Some(1.0), "the replace was undone");
    assert_eq!(after["pr_version"], json!(1));
    store.delete_database().await.unwrap();
}

/// Requests per single-record write (issue 17's "Cosmos put in at most two
/// requests"): a put reads then creates or replaces — two requests whether
/// the item exists or not; an insert is one create; a put whose version is
/// given still reads for the `_etag` it replaces with.
#[tokio::test]
async fn a_put_is_at_most_two_requests_and_an_insert_one() {
    let rec = Recorder::start().await;
    let db = database();
    let store = rec.store(&db).await;
    let notes = entity(&NOTE);
    store.ensure_entity(&notes).await.unwrap();
    let write = |op: WriteOp| {
        let (store, notes) = (&store, &notes);
        async move { store.write(notes, vec![op], true).await.unwrap() }
    };
    rec.take_methods();

    write(put(note("new"), Precondition::None)).await;
    assert_eq!(
        rec.take_methods(),
        ["GET", "POST"],
        "put of a new item: read, create"
    );
    write(put(note("new"), Precondition::None)).await;
    assert_eq!(
        rec.take_methods(),
        ["GET", "PUT"],
        "put of an existing item: read, replace"
    );
    write(put(note("ins"), Precondition::Absent)).await;
    assert_eq!(rec.take_methods(), ["POST"], "insert: one create");
    let out = write(put(note("ins"), Precondition::Version(1))).await;
    assert_eq!(out, vec![WriteOutcome::Written { version: 2 }]);
    assert_eq!(
        rec.take_methods(),
        ["GET", "PUT"],
        "versioned put: read, replace"
    );
    // Among many (a bulk load), new items are one create each.
    let out = store
        .write(
            &notes,
            vec![
                put(note("b1"), Precondition::None),
                put(note("b2"), Precondition::None),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(out, vec![WriteOutcome::Written { version: 1 }; 2]);
    assert_eq!(
        rec.take_methods(),
        ["POST", "POST"],
        "bulk put of new items: one create each"
    );
    store.delete_database().await.unwrap();
}
