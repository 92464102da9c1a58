//! Depth and size limits: what every store keeps exactly, and what is
//! refused with `InvalidInput` before anything is written — never a stack
//! overflow, a silently changed value or a wedged store.

use polyrouter::query::{MAX_FILTER_DEPTH, Query, field};
use polyrouter::record::MAX_JSON_DEPTH;
use std::time::Duration;

use polyrouter::router::WriteOptions;
use polyrouter::{Capabilities, Error, Filter, Key, Result};
use serde_json::{Value as Json, json};

use crate::behaviour;
use crate::entities::*;
use crate::harness::{Behaviour, Ctx, always};

pub fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(json_nesting_is_limited, always),
        behaviour!(json_numbers_are_exact_or_refused, always),
        behaviour!(ttls_are_bounded, |c: &Capabilities| (!c.ttl)
            .then_some("ttl")),
        behaviour!(long_in_lists_work_or_are_refused, |c: &Capabilities| {
            (!c.query || !c.filters.is_in || !c.sort).then_some("queries with `in`")
        }),
        behaviour!(odd_keys_are_their_own_records_or_refused, always),
        behaviour!(
            records_over_the_size_limit_are_refused,
            |c: &Capabilities| {
                c.max_record_bytes
                    .is_none_or(|m| m > 16 << 20)
                    .then_some("a record limit of at most 16 MiB")
            }
        ),
        behaviour!(filter_nesting_is_limited, |c: &Capabilities| {
            (!c.query || !c.filters.not || !c.filters.and || !c.filters.or)
                .then_some("queries with and/or/not")
        }),
    ]
}

/// `n` levels of arrays and objects, alternating, around a number; built
/// without recursion.
fn nested(n: usize) -> Json {
    let mut v = json!(7);
    for i in 0..n {
        v = if i % 2 == 0 {
            Json::Array(vec![v, json!("x")])
        } else {
            // Not `json!`, which serializes its arguments recursively.
            Json::Object([("k".to_string(), v)].into_iter().collect())
        };
    }
    v
}

/// Frees a deep value without recursion (dropping a `serde_json::Value`
/// recurses once per level, too deep for a test thread's stack).
fn free(v: Json) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Json::Array(a) => stack.extend(a),
            Json::Object(o) => stack.extend(o.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

fn is_invalid(e: &Error) -> bool {
    matches!(e, Error::InvalidInput { .. })
}

async fn json_nesting_is_limited(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Doc>().await?;
    let deepest = nested(MAX_JSON_DEPTH);
    repo.put(&doc("deepest", deepest.clone())).await?;
    assert_eq!(repo.get("deepest").await?.map(|d| d.data), Some(deepest));
    for n in [MAX_JSON_DEPTH + 1, 2_000, 100_000] {
        let too_deep = doc("too_deep", nested(n));
        let e = repo.put(&too_deep).await.unwrap_err();
        assert!(
            is_invalid(&e) && e.to_string().contains("deeper than 64"),
            "{n}: {e}"
        );
        // In a batch, nothing of it is written.
        let batch = [doc("ok", json!(1)), too_deep];
        let e = repo.put_many(&batch).await.unwrap_err();
        assert!(is_invalid(&e), "{n}: {e}");
        let [_, too_deep] = batch;
        free(too_deep.data);
    }
    assert_eq!(repo.get("too_deep").await?, None);
    assert_eq!(repo.get("ok").await?, None);
    // The table stays readable: every row decodes.
    if ctx.caps().query {
        let page = repo.query(Query::new()).await?;
        assert_eq!(page.items.len(), 1);
    }
    Ok(())
}

/// `not` around `leaf`, `n - 1` times: `n` levels.
fn nots(leaf: Filter, n: usize) -> Filter {
    let mut f = leaf;
    for _ in 1..n {
        f = f.not();
    }
    f
}

/// How deep alternating `and`/`or` is tested: the Cosmos emulator's query
/// parser takes time exponential in it (8 levels: a second, 12: minutes,
/// answering nothing else meanwhile — the shared emulator would hang), so
/// on cosmos only 6; the service itself is not tested here.
fn mixed_depth(store: &str) -> usize {
    if store == "cosmos" {
        6
    } else {
        MAX_FILTER_DEPTH
    }
}

async fn filter_nesting_is_limited(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    repo.put_many(&[
        item(1, "a", 1, None, None),
        item(2, "b", 2, None, None),
        item(3, "c", 1, None, None),
    ])
    .await?;
    // 64 levels: 63 `not`s, an odd number, around `group = 1`.
    let deepest = nots(field("group").eq(1), MAX_FILTER_DEPTH);
    let page = repo.query(Query::new().filter(deepest.clone())).await?;
    let ids: Vec<i64> = page.items.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![2]);
    if ctx.caps().count {
        assert_eq!(repo.count(deepest).await?, 1);
    }
    // And/or nested as deep: (((g=1 or g=9) and id<4) or ...).
    let mut mixed = field("group").eq(1);
    for i in 1..mixed_depth(&ctx.store) {
        mixed = if i % 2 == 0 {
            Filter::And(vec![mixed, field("id").lt(4)])
        } else {
            Filter::Or(vec![mixed, field("group").eq(9)])
        };
    }
    let page = repo.query(Query::new().filter(mixed)).await?;
    assert_eq!(page.items.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 3]);
    // One level more, and far more (built and handed over without
    // recursion; refused without overflowing the stack).
    for n in [MAX_FILTER_DEPTH + 1, 1_000, 200_000] {
        let e = repo
            .query(Query::new().filter(nots(field("group").eq(1), n)))
            .await
            .unwrap_err();
        assert!(
            is_invalid(&e) && e.to_string().contains("deeper than 64"),
            "{e}"
        );
        if ctx.caps().count {
            let e = repo.count(nots(field("group").eq(1), n)).await.unwrap_err();
            assert!(is_invalid(&e), "{e}");
        }
    }
    Ok(())
}

/// Numbers a JSON field must keep exactly (or refuse): the edges of
/// 64-bit integers, the first integer a double cannot hold, negative zero,
/// the largest and smallest doubles.
fn numbers() -> Vec<(&'static str, Json)> {
    vec![
        ("i64_min", json!(i64::MIN)),
        ("i64_max", json!(i64::MAX)),
        ("u64_max", json!(u64::MAX)),
        ("two53_plus_1", json!((1u64 << 53) + 1)),
        ("minus_two53_minus_1", json!(-(1i64 << 53) - 1)),
        ("neg_zero", json!(-0.0f64)),
        ("big", json!(1e308)),
        ("max", json!(f64::MAX)),
        ("tiny", json!(5e-324)),
        ("third", json!(1.0f64 / 3.0)),
        (
            "mixed",
            json!({"a": [u64::MAX, i64::MIN, 0.1, -0.0], "b": 9007199254740993u64}),
        ),
    ]
}

/// Whether two JSON values hold the same numbers: integers equal, floats
/// with the same bits (so `-0.0` is not `0.0`). A float may come back as
/// an integer of the same value (PostgreSQL's `jsonb` prints `1e16` as
/// `10000000000000000`).
fn same_numbers(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match x.as_f64() {
            Some(p) if x.is_f64() => y.as_f64().is_some_and(|q| q.to_bits() == p.to_bits()),
            _ => !y.is_f64() && x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64(),
        },
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_numbers(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_numbers(v, w)))
        }
        _ => a == b,
    }
}

async fn json_numbers_are_exact_or_refused(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Doc>().await?;
    let mut refused = Vec::new();
    for (id, value) in numbers() {
        match repo.put(&doc(id, value.clone())).await {
            Ok(_) => {
                let got = repo.get(id).await?.expect("stored").data;
                assert!(
                    same_numbers(&value, &got),
                    "{}: wrote {value}, read back {got}",
                    ctx.store
                );
            }
            Err(e) if is_invalid(&e) => {
                assert_eq!(repo.get(id).await?, None, "{id}: refused, nothing written");
                refused.push(id);
            }
            Err(e) => return Err(e),
        }
    }
    // Only PostgreSQL's `jsonb` cannot hold a negative zero.
    let expected: &[&str] = if ctx.store == "postgres" {
        &["neg_zero", "mixed"]
    } else {
        &[]
    };
    assert_eq!(refused, expected, "{}", ctx.store);
    Ok(())
}

async fn ttls_are_bounded(ctx: Ctx) -> Result<()> {
    let router = ctx.router().await?;
    let notes = router.repo::<Note>().await?;
    let longest = Capabilities::MAX_TTL;
    notes
        .put_with(&note("longest", "kept"), WriteOptions::new().ttl(longest))
        .await?;
    assert_eq!(
        notes.get("longest").await?.map(|n| n.body),
        Some("kept".into())
    );
    for ttl in [longest + Duration::from_secs(1), Duration::MAX] {
        let opts = WriteOptions::new().ttl(ttl);
        let e = notes
            .put_with(&note("too_long", "x"), opts)
            .await
            .unwrap_err();
        assert!(
            is_invalid(&e) && e.to_string().contains("longer than"),
            "{ttl:?}: {e}"
        );
        // In a batch, nothing of it is written.
        let e = notes
            .batch()
            .put(&note("ok", "y"))
            .put_with(&note("too_long", "x"), opts)
            .commit()
            .await
            .unwrap_err();
        assert!(is_invalid(&e), "{e}");
        // The key-value extras refuse it too.
        if let Some(kv) = router.store("s").and_then(|s| s.as_kv()) {
            let info = polyrouter::store::EntityInfo {
                store: "s".into(),
                ..polyrouter::store::EntityInfo::new(<Note as polyrouter::Entity>::schema())
            };
            let key = Key::from("counter");
            let e = kv.increment(&info, &key, 1, Some(ttl)).await.unwrap_err();
            assert!(is_invalid(&e), "{e}");
            let e = kv.set_if_absent(&info, &key, b"x", ttl).await.unwrap_err();
            assert!(is_invalid(&e), "{e}");
            let e = kv
                .expire(&info, &Key::from("longest"), ttl)
                .await
                .unwrap_err();
            assert!(is_invalid(&e), "{e}");
        }
    }
    assert_eq!(notes.get("too_long").await?, None);
    assert_eq!(notes.get("ok").await?, None);
    Ok(())
}

async fn long_in_lists_work_or_are_refused(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    repo.put_many(&[
        item(5, "a", 1, None, None),
        item(70_000, "b", 2, None, None),
        item(-1, "c", 1, None, None),
    ])
    .await?;
    for n in [1_000i64, 40_000, 100_000] {
        let many = field("id").is_in(0..n);
        match repo.query(Query::new().filter(many.clone())).await {
            Ok(page) => {
                let ids: Vec<i64> = page.items.iter().map(|i| i.id).collect();
                let want: Vec<i64> = [5, 70_000].into_iter().filter(|id| *id < n).collect();
                assert_eq!(ids, want, "{n} values");
                if ctx.caps().count {
                    assert_eq!(repo.count(many).await?, want.len() as u64, "{n} values");
                }
            }
            Err(e) => {
                // Refused before anything is sent, as invalid input (never
                // the transient `Unavailable`, which callers retry).
                assert!(
                    is_invalid(&e) && e.to_string().contains("values"),
                    "{n}: {e}"
                );
                assert!(n > 1_000, "{n} values must work: {e}");
            }
        }
        // Strings too, with the keyset of a second page.
        let names = field("name").is_in(
            (0..n)
                .map(|i| format!("n{i}"))
                .chain(["a".into(), "b".into()]),
        );
        match repo
            .query(Query::new().filter(names).order_by("name").limit(1))
            .await
        {
            Ok(page) => {
                assert_eq!(page.items.iter().map(|i| i.id).collect::<Vec<_>>(), [5]);
                let next = repo
                    .query(page.next_query().expect("a second page"))
                    .await?;
                assert_eq!(
                    next.items.iter().map(|i| i.id).collect::<Vec<_>>(),
                    [70_000]
                );
            }
            Err(e) => assert!(is_invalid(&e) && n > 1_000, "{n}: {e}"),
        }
    }
    Ok(())
}

/// Keys a path, a URL or a key-value namespace could misread: each is
/// stored as itself or refused with `InvalidInput`, and never reaches
/// another record (or the table) — `delete("..")` once deleted a whole
/// Cosmos container.
async fn odd_keys_are_their_own_records_or_refused(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Note>().await?;
    repo.put(&note("canary", "still here")).await?;
    let long = "k".repeat(10_000);
    let keys: Vec<String> = [
        ".", "..", "...", "./", "../", "a/../b", "../../x", "%2e", "%2E%2E", ".%2e", "/", "//",
        "\\", "?", "#", "*", ":", "::", "~", "~2E", " ", "\u{0}", "\r\n", "\u{FEFF}",
    ]
    .into_iter()
    .map(str::to_string)
    .chain([long, "é".repeat(300)])
    .collect();
    let mut kept = Vec::new();
    for key in &keys {
        match repo.put(&note(key, key)).await {
            Ok(_) => {
                let got = repo.get(key.clone()).await?;
                assert_eq!(got.map(|n| n.body), Some(key.clone()), "{key:?}");
                kept.push(key.clone());
            }
            Err(e) if is_invalid(&e) => {
                assert_eq!(repo.get(key.clone()).await.ok().flatten(), None)
            }
            Err(e) => return Err(e),
        }
    }
    // Every kept key is its own record, and deletes only itself.
    if ctx.caps().count {
        assert_eq!(repo.count(None).await?, kept.len() as u64 + 1);
    }
    for key in &kept {
        assert!(repo.delete(key.clone()).await?, "{key:?}");
        assert!(!repo.delete(key.clone()).await?, "{key:?} deleted once");
    }
    assert_eq!(
        repo.get("canary").await?.map(|n| n.body),
        Some("still here".into())
    );
    Ok(())
}

/// A record past the store's size limit is refused before anything is
/// sent, and nothing of it is written.
async fn records_over_the_size_limit_are_refused(ctx: Ctx) -> Result<()> {
    let max = ctx.caps().max_record_bytes.expect("gated on a limit");
    let repo = ctx.repo::<Note>().await?;
    let e = repo
        .put(&note("big", &"x".repeat(max + 1)))
        .await
        .unwrap_err();
    assert!(is_invalid(&e) && e.to_string().contains("bytes"), "{e}");
    assert_eq!(repo.get("big").await?, None);
    let e = repo
        .put_many(&[note("small", "s"), note("big", &"x".repeat(max + 1))])
        .await
        .unwrap_err();
    assert!(is_invalid(&e), "{e}");
    assert_eq!(repo.get("small").await?, None);
    Ok(())
}
