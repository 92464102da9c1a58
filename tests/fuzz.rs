//! Fuzzing through the public API (proptest, a bounded number of cases
//! per run — a few seconds; raise `PROPTEST_CASES` for a longer hunt):
//!
//! - the filter normaliser and the stores' filter evaluation and SQL
//!   translation: arbitrary filters (unknown fields, mismatched and
//!   extreme operands, NaN, NUL, nesting past the limit) on the memory
//!   store and on SQLite — every query answers or fails with a typed
//!   `InvalidInput` / `Unsupported`, never a panic;
//! - the record decoder: arbitrary stored records (wrong kinds, missing
//!   and extra fields, deep and odd JSON) read back as a Rust type — a
//!   value or a typed `Backend` error, never a panic.
//!
//! The config parser is fuzzed in its own file.

use std::sync::Arc;

use polyrouter::backends::memory::MemoryStore;
use polyrouter::query::{CmpOp, MAX_FILTER_DEPTH, Query};
use polyrouter::store::{EntityInfo, WriteOp};
use polyrouter::{Entity, Error, Filter, Key, Precondition, Record, Router, Store, Value};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "item", key = "id")]
struct Item {
    id: i64,
    name: String,
    group: i64,
    score: Option<f64>,
    at: Option<chrono::DateTime<chrono::Utc>>,
    tags: Vec<String>,
    data: Option<serde_json::Value>,
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id".to_string()),
        Just("name".to_string()),
        Just("group".to_string()),
        Just("score".to_string()),
        Just("at".to_string()),
        Just("tags".to_string()),
        Just("data".to_string()),
        "[a-z_]{0,6}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0)
        ]
        .prop_map(Value::F64),
        ".{0,12}".prop_map(Value::String),
        "\\PC{0,4}\u{0}?".prop_map(Value::String),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        Just(Value::String("2024-02-29T23:59:58.5+05:30".into())),
        Just(Value::String("not a time".into())),
        any::<u128>().prop_map(|u| Value::Uuid(uuid::Uuid::from_u128(u))),
        (-10_000_000_000i64..10_000_000_000i64).prop_map(|s| {
            Value::timestamp(chrono::DateTime::from_timestamp(s, 0).unwrap_or_default())
        }),
        Just(Value::Json(serde_json::json!({"a": [1, null]}))),
    ]
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge)
    ]
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        (field_name(), op(), value()).prop_map(|(field, op, value)| Filter::Cmp {
            field,
            op,
            value
        }),
        (field_name(), prop::collection::vec(value(), 0..6))
            .prop_map(|(field, values)| Filter::In { field, values }),
        (field_name(), ".{0,4}").prop_map(|(field, prefix)| Filter::Prefix { field, prefix }),
        (field_name(), ".{0,4}").prop_map(|(field, needle)| Filter::Contains { field, needle }),
        field_name().prop_map(Filter::IsNull),
    ]
}

/// Filters up to about 80 levels deep (past the limit of 64) and wide.
fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(80, 200, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

/// `not` chains far past the limit, built without recursion.
fn deep_filter() -> impl Strategy<Value = Filter> {
    (leaf(), MAX_FILTER_DEPTH..1_000).prop_map(|(mut f, n)| {
        for _ in 0..n {
            f = f.not();
        }
        f
    })
}

fn rows() -> Vec<Item> {
    (0..6)
        .map(|i| Item {
            id: i - 2,
            name: ["", "a", "A%", "b_", "\u{0}x", "日本"][i as usize].into(),
            group: i % 3,
            score: [
                None,
                Some(-0.0),
                Some(1.5),
                Some(f64::INFINITY),
                Some(-1e300),
                None,
            ][i as usize],
            at: (i % 2 == 0).then(|| chrono::DateTime::from_timestamp(i * 86_400, 0).unwrap()),
            tags: vec!["t".into(); i as usize],
            data: (i % 3 == 0).then(|| serde_json::json!({"n": i})),
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A query's outcome is fine when it answered, or refused the filter with
/// a typed error naming store and entity.
fn typed<T>(r: polyrouter::Result<T>) -> Result<(), TestCaseError> {
    match r {
        Ok(_) => Ok(()),
        Err(e @ (Error::InvalidInput { .. } | Error::Unsupported { .. })) => {
            let msg = e.to_string();
            prop_assert!(msg.contains("entity `item`"), "{msg}");
            Ok(())
        }
        Err(e) => Err(TestCaseError::fail(format!("untyped failure: {e}"))),
    }
}

/// Routers over the memory store and SQLite, with the same rows.
async fn routers(dir: &std::path::Path) -> Vec<polyrouter::Repo<Item>> {
    let mut repos = Vec::new();
    for store in [
        "kind = \"memory\"".to_string(),
        format!(
            "kind = \"sqlite\"\nurl = \"sqlite://{}/fuzz.db\"",
            dir.display()
        ),
    ] {
        let router = Router::from_toml_str(&format!(
            "[stores.s]\n{store}\n[entities.item]\nstore = \"s\"\n"
        ))
        .await
        .unwrap();
        let repo = router.repo::<Item>().await.unwrap();
        repo.put_many(&rows()).await.unwrap();
        repos.push(repo);
    }
    repos
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn filters_answer_or_are_refused_with_a_typed_error(f in filter(), deep in deep_filter()) {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let repos = routers(dir.path()).await;
            let mut answers = Vec::new();
            for repo in &repos {
                let page = repo.query(Query::new().filter(f.clone()).limit(100)).await;
                answers.push(page.as_ref().ok().map(|p| p.items.iter().map(|i| i.id).collect::<Vec<_>>()));
                typed(page)?;
                typed(repo.count(f.clone()).await)?;
                typed(repo.query(Query::new().filter(f.clone()).order_by_desc("score").limit(2)).await)?;
                let e = repo.query(Query::new().filter(deep.clone())).await.unwrap_err();
                prop_assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
            }
            // SQLite answers what the reference (memory) answers.
            prop_assert_eq!(&answers[0], &answers[1], "filter {}", f);
            Ok(())
        })?;
        polyrouter_drop(deep);
    }

    #[test]
    fn stored_records_decode_or_fail_with_a_typed_error(
        fields in prop::collection::vec((field_name(), value()), 0..9),
        json in json_value(),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let store = Arc::new(MemoryStore::new("m"));
            let router = Router::builder().store("m", store.clone()).route("item", "m").build().await.unwrap();
            let repo = router.repo::<Item>().await.unwrap();
            // Written straight to the store, past every check of `Repo`.
            let mut record = Record::new(Key::Int(7));
            for (name, v) in fields {
                record.set(name, v);
            }
            record.set("data", Value::Json(json));
            let info = EntityInfo { store: "m".into(), ..EntityInfo::new(Item::schema()) };
            let put = WriteOp::Put { record, precondition: Precondition::None, ttl: None };
            if store.write(&info, vec![put], true).await.is_err() {
                return Ok(()); // refused by the store: nothing to decode
            }
            match repo.get(7).await {
                Ok(_) => {}
                Err(e @ Error::Backend { .. }) => prop_assert!(e.to_string().contains("entity `item`"), "{e}"),
                Err(e) => return Err(TestCaseError::fail(format!("untyped failure: {e}"))),
            }
            match repo.query(Query::new()).await {
                Ok(_) | Err(Error::Backend { .. }) => {}
                Err(e) => return Err(TestCaseError::fail(format!("untyped failure: {e}"))),
            }
            Ok(())
        })?;
    }
}

/// Arbitrary JSON, sometimes nested past what any store reads back.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,6}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(100, 300, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".{0,3}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Frees a deep filter without recursion.
fn polyrouter_drop(f: Filter) {
    let mut stack = vec![f];
    while let Some(f) = stack.pop() {
        match f {
            Filter::And(v) | Filter::Or(v) => stack.extend(v),
            Filter::Not(b) => stack.push(*b),
            _ => {}
        }
    }
}
