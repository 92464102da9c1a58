//! Filters, sorting, paging, counting, streaming — checked against
//! expectations computed here in plain Rust.

use std::collections::HashSet;

use futures::TryStreamExt;
use polyrouter::query::{Filter, Query, field};
use polyrouter::{Capabilities, Error, Repo, Result};

use crate::behaviour;
use crate::entities::*;
use crate::harness::{Behaviour, Ctx};

fn needs_query(c: &Capabilities) -> Option<&'static str> {
    (!(c.query && c.sort && c.count)).then_some("queries")
}

pub fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(every_filter_operator, needs_query),
        behaviour!(sort_with_ties_and_nulls, needs_query),
        behaviour!(paging_returns_every_row_once, needs_query),
        behaviour!(forged_or_foreign_tokens_are_rejected, needs_query),
        behaviour!(stream_walks_all_pages, needs_query),
    ]
}

fn dataset() -> Vec<Item> {
    let names = [
        "alpha",
        "Alpha",
        "alphabet",
        "beta",
        "",
        "100%",
        "100_x",
        "1000",
        "a_b",
        "aXb",
        "a%b",
        "ähnlich",
        "日本",
        "日本語",
        "zeta",
        "o'neil",
        "back\\slash",
        "tab\there",
        "ALPHA",
        "al",
    ];
    let tags = [
        None,
        Some("red"),
        Some("blue"),
        Some(""),
        Some("Red"),
        Some("red"),
    ];
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let i = i as i64;
        let score = match i % 5 {
            0 => None,
            1 => Some(-1.5),
            2 => Some(0.0),
            3 => Some(2.25),
            _ => Some(i as f64 * 10.0),
        };
        out.push(item(
            i + 1,
            name,
            i % 3,
            score,
            tags[i as usize % tags.len()],
        ));
    }
    out
}

async fn loaded(ctx: &Ctx) -> Result<(Repo<Item>, Vec<Item>)> {
    let repo = ctx.repo::<Item>().await?;
    let data = dataset();
    repo.put_many(&data).await?;
    let data = data
        .into_iter()
        .map(|mut i| {
            i.version = 1;
            i
        })
        .collect();
    Ok((repo, data))
}

async fn ids(repo: &Repo<Item>, f: Filter) -> Result<Vec<i64>> {
    let page = repo.query(Query::new().filter(f).limit(1000)).await?;
    Ok(page.items.iter().map(|i| i.id).collect())
}

async fn every_filter_operator(ctx: Ctx) -> Result<()> {
    let (repo, data) = loaded(&ctx).await?;
    type Pred = Box<dyn Fn(&Item) -> bool + Send + Sync>;
    let cases: Vec<(Filter, Pred)> = vec![
        (field("name").eq("alpha"), Box::new(|i| i.name == "alpha")),
        (field("name").eq(""), Box::new(|i| i.name.is_empty())),
        (field("name").ne("alpha"), Box::new(|i| i.name != "alpha")),
        (
            field("tag").eq("red"),
            Box::new(|i| i.tag.as_deref() == Some("red")),
        ),
        (
            field("tag").ne("red"),
            Box::new(|i| i.tag.as_deref() != Some("red")),
        ),
        (
            field("tag").eq(polyrouter::Value::Null),
            Box::new(|i| i.tag.is_none()),
        ),
        (
            field("tag").ne(polyrouter::Value::Null),
            Box::new(|i| i.tag.is_some()),
        ),
        (
            field("score").lt(0.0),
            Box::new(|i| i.score.is_some_and(|s| s < 0.0)),
        ),
        (
            field("score").le(0),
            Box::new(|i| i.score.is_some_and(|s| s <= 0.0)),
        ),
        (
            field("score").gt(2.25),
            Box::new(|i| i.score.is_some_and(|s| s > 2.25)),
        ),
        (
            field("score").ge(2.25),
            Box::new(|i| i.score.is_some_and(|s| s >= 2.25)),
        ),
        (
            field("group").is_in([0, 2]),
            Box::new(|i| i.group == 0 || i.group == 2),
        ),
        (field("group").is_in(Vec::<i64>::new()), Box::new(|_| false)),
        (
            field("tag").is_in(["red", "blue"]),
            Box::new(|i| matches!(i.tag.as_deref(), Some("red" | "blue"))),
        ),
        (
            field("name").prefix("alpha"),
            Box::new(|i| i.name.starts_with("alpha")),
        ),
        (
            field("name").prefix("100%"),
            Box::new(|i| i.name.starts_with("100%")),
        ),
        (
            field("name").prefix("100_"),
            Box::new(|i| i.name.starts_with("100_")),
        ),
        (
            field("name").prefix("a_"),
            Box::new(|i| i.name.starts_with("a_")),
        ),
        (field("name").prefix(""), Box::new(|_| true)),
        (
            field("name").prefix("日本"),
            Box::new(|i| i.name.starts_with("日本")),
        ),
        (
            field("name").prefix("ALPHA"),
            Box::new(|i| i.name.starts_with("ALPHA")),
        ),
        (
            field("name").contains("%"),
            Box::new(|i| i.name.contains('%')),
        ),
        (
            field("name").contains("_"),
            Box::new(|i| i.name.contains('_')),
        ),
        (
            field("name").contains("ph"),
            Box::new(|i| i.name.contains("ph")),
        ),
        (
            field("name").contains("'"),
            Box::new(|i| i.name.contains('\'')),
        ),
        (
            field("name").contains("\\"),
            Box::new(|i| i.name.contains('\\')),
        ),
        (
            field("name").contains("本語"),
            Box::new(|i| i.name.contains("本語")),
        ),
        (
            field("tag").contains("e"),
            Box::new(|i| i.tag.as_deref().is_some_and(|t| t.contains('e'))),
        ),
        (field("score").is_null(), Box::new(|i| i.score.is_none())),
        (
            field("score").is_not_null(),
            Box::new(|i| i.score.is_some()),
        ),
        (field("active").eq(true), Box::new(|i| i.active)),
        (
            field("score").lt(1.0).not(),
            Box::new(|i| !i.score.is_some_and(|s| s < 1.0)),
        ),
        (
            field("tag").eq("red").not(),
            Box::new(|i| i.tag.as_deref() != Some("red")),
        ),
        (
            field("group").eq(1).and(field("score").gt(-2.0)),
            Box::new(|i| i.group == 1 && i.score.is_some_and(|s| s > -2.0)),
        ),
        (
            field("group").eq(1).or(field("tag").is_null()),
            Box::new(|i| i.group == 1 || i.tag.is_none()),
        ),
        (
            field("name")
                .prefix("a")
                .and(field("tag").ne("red").or(field("score").ge(2)))
                .not(),
            Box::new(|i| {
                !(i.name.starts_with('a')
                    && (i.tag.as_deref() != Some("red") || i.score.is_some_and(|s| s >= 2.0)))
            }),
        ),
        (Filter::And(vec![]), Box::new(|_| true)),
        (Filter::Or(vec![]), Box::new(|_| false)),
        (
            field("id").ge(5).and(field("id").lt(9)),
            Box::new(|i| (5..9).contains(&i.id)),
        ),
    ];
    for (filter, pred) in cases {
        let shown = filter.to_string();
        let mut want: Vec<i64> = data.iter().filter(|i| pred(i)).map(|i| i.id).collect();
        want.sort();
        let got = ids(&repo, filter.clone()).await?;
        assert_eq!(got, want, "query results for `{shown}`");
        let n = repo.count(filter).await?;
        assert_eq!(n, want.len() as u64, "count for `{shown}`");
    }
    Ok(())
}

async fn sort_with_ties_and_nulls(ctx: Ctx) -> Result<()> {
    let (repo, data) = loaded(&ctx).await?;
    // tag asc (nulls first), score desc (nulls last), then key.
    let page = repo
        .query(
            Query::new()
                .order_by("tag")
                .order_by_desc("score")
                .limit(1000),
        )
        .await?;
    let mut want = data.clone();
    want.sort_by(|a, b| {
        a.tag
            .as_deref()
            .map(str::as_bytes)
            .cmp(&b.tag.as_deref().map(str::as_bytes))
            .then_with(|| match (a.score, b.score) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) => y.total_cmp(&x),
            })
            .then(a.id.cmp(&b.id))
    });
    let got: Vec<i64> = page.items.iter().map(|i| i.id).collect();
    let want: Vec<i64> = want.iter().map(|i| i.id).collect();
    assert_eq!(got, want);
    // Names sort by code point: uppercase before lowercase, unicode last.
    let page = repo
        .query(Query::new().order_by_desc("name").limit(3))
        .await?;
    assert_eq!(page.items[0].name, "日本語");
    assert_eq!(page.items[1].name, "日本");
    assert_eq!(page.items[2].name, "ähnlich");
    Ok(())
}

async fn paging_returns_every_row_once(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let items: Vec<Item> = (0..257)
        .map(|i| {
            let score = if i % 9 == 0 {
                None
            } else {
                Some((i % 4) as f64)
            };
            let tag = if i % 5 == 0 {
                None
            } else {
                Some(["a", "b", "c"][i as usize % 3])
            };
            item(i, &format!("n{}", i % 11), i % 3, score, tag)
        })
        .collect();
    repo.put_many(&items).await?;
    let queries = [
        Query::new(),
        Query::new().order_by("name"),
        Query::new().order_by_desc("score").order_by("tag"),
        Query::new().order_by("tag").order_by_desc("id"),
        Query::new()
            .filter(field("group").ne(1))
            .order_by_desc("tag")
            .order_by("score"),
    ];
    for q in queries {
        let all = repo.query(q.clone().limit(1000)).await?;
        let mut pages = 0;
        let mut seen = Vec::new();
        let mut next = Some(q.clone().limit(7));
        while let Some(q) = next {
            let page = repo.query(q).await?;
            assert!(page.items.len() <= 7);
            seen.extend(page.items.iter().map(|i| i.id));
            next = page.next_query();
            pages += 1;
            assert!(pages < 100, "paging does not terminate");
        }
        let want: Vec<i64> = all.items.iter().map(|i| i.id).collect();
        assert_eq!(seen, want, "pages of {q:?} concatenate to the full result");
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            seen.len(),
            "no row twice"
        );
        assert!(all.next.is_none());
    }
    Ok(())
}

async fn forged_or_foreign_tokens_are_rejected(ctx: Ctx) -> Result<()> {
    let (repo, _) = loaded(&ctx).await?;
    let q = Query::new().order_by("name").limit(3);
    let page = repo.query(q.clone()).await?;
    let token = page.next.clone().expect("more than one page");
    // Same token on its own query works.
    repo.query(q.clone().after(token.clone())).await?;
    let foreign = repo
        .query(Query::new().order_by("score").limit(3).after(token.clone()))
        .await;
    assert!(
        matches!(foreign, Err(Error::InvalidInput { .. })),
        "{foreign:?}"
    );
    let filtered = repo
        .query(
            Query::new()
                .filter(field("group").eq(1))
                .order_by("name")
                .limit(3)
                .after(token.clone()),
        )
        .await;
    assert!(
        matches!(filtered, Err(Error::InvalidInput { .. })),
        "{filtered:?}"
    );
    let mut chars: Vec<char> = token.chars().collect();
    let mid = chars.len() / 2;
    chars[mid] = if chars[mid] == 'A' { 'B' } else { 'A' };
    let forged: String = chars.into_iter().collect();
    let e = repo.query(q.clone().after(forged)).await;
    assert!(matches!(e, Err(Error::InvalidInput { .. })), "{e:?}");
    for junk in ["", "x", "'; DROP TABLE item; --", &token[..token.len() - 2]] {
        let e = repo.query(q.clone().after(junk)).await;
        assert!(
            matches!(e, Err(Error::InvalidInput { .. })),
            "{junk:?}: {e:?}"
        );
    }
    Ok(())
}

async fn stream_walks_all_pages(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Item>().await?;
    let items: Vec<Item> = (0..95).map(|i| item(i, "s", i % 2, None, None)).collect();
    repo.put_many(&items).await?;
    let all: Vec<Item> = repo
        .stream(
            Query::new()
                .filter(field("group").eq(1))
                .order_by_desc("id")
                .limit(10),
        )
        .try_collect()
        .await?;
    let got: Vec<i64> = all.iter().map(|i| i.id).collect();
    let want: Vec<i64> = (0..95).rev().filter(|i| i % 2 == 1).collect();
    assert_eq!(got, want);
    Ok(())
}
