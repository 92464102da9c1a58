//! Full-text search through the router: index on write, ranking, phrases,
//! exclusion, filters, facets, paging, deletes, updates, injection strings,
//! and the refresh interval. Runs on every store with the `search`
//! capability; records live in the store itself when it holds records
//! (postgres), else in a memory store beside it (tantivy).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use polyrouter::query::field;
use polyrouter::router::SearchQuery;
use polyrouter::{Capabilities, Entity, Error, Repo, Result, Router};
use serde::{Deserialize, Serialize};

use crate::behaviour;
use crate::harness::{Behaviour, Ctx, holds_records, store_toml};

fn needs_search(c: &Capabilities) -> Option<&'static str> {
    (!c.search).then_some("search")
}

pub fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(search_finds_and_ranks, needs_search),
        behaviour!(search_phrase_and_exclusion, needs_search),
        behaviour!(search_filters, needs_search),
        behaviour!(search_facets, needs_search),
        behaviour!(search_paging_returns_every_hit_once, needs_search),
        behaviour!(search_delete_and_update, needs_search),
        behaviour!(search_injection_strings_are_data, needs_search),
        behaviour!(search_write_becomes_visible, needs_search),
        behaviour!(search_bad_requests_are_rejected, needs_search),
    ]
}

/// A searchable document.
#[derive(Entity, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[entity(name = "doc", key = "id")]
pub struct Doc {
    pub id: String,
    pub title: String,
    pub body: Option<String>,
    pub category: String,
    pub price: f64,
    pub stock: i64,
    pub active: bool,
}

fn doc(id: &str, title: &str, body: &str, category: &str, price: f64, stock: i64) -> Doc {
    Doc {
        id: id.into(),
        title: title.into(),
        body: (!body.is_empty()).then(|| body.to_string()),
        category: category.into(),
        price,
        stock,
        active: stock > 0,
    }
}

/// The trial's router: `doc` on the store itself (or on memory beside a
/// search-only store), indexed in the store under test.
async fn docs(ctx: &Ctx) -> Result<Repo<Doc>> {
    let primary = if holds_records(&ctx.store) { "s" } else { "m" };
    let cfg = format!(
        "[stores.s]\n{}\n[stores.m]\nkind = \"memory\"\n\n[entities.doc]\nstore = \"{primary}\"\ntable = \"doc_{id}\"\nsearch = {{ store = \"s\", fields = [\"title\", \"body\"], filters = {{ category = \"string\", price = \"float\", stock = \"int\", active = \"bool\" }}, facets = [\"category\"] }}\n",
        store_toml(&ctx.store).expect("known store"),
        id = ctx.id,
    );
    let router = Router::from_toml_str(&cfg).await?;
    router.repo::<Doc>().await
}

fn fail(msg: String) -> Error {
    Error::invalid_input("behaviour", "doc", msg)
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond { Ok(()) } else { Err(fail(msg())) }
}

async fn keys(repo: &Repo<Doc>, q: SearchQuery) -> Result<Vec<String>> {
    let page = repo.search(q).await?;
    Ok(page.hits.into_iter().map(|h| h.item.id).collect())
}

fn catalog() -> Vec<Doc> {
    vec![
        doc(
            "a",
            "red fast car",
            "a red car that is fast",
            "cars",
            30000.0,
            3,
        ),
        doc("b", "red apple", "sweet fruit", "food", 1.5, 100),
        doc("c", "blue car", "slow but steady", "cars", 12000.0, 0),
        doc("d", "the car is red", "", "cars", 9000.0, 1),
        doc("e", "fast bicycle", "light frame", "bikes", 800.0, 7),
        doc("f", "green tea", "hot drink", "food", 4.0, 0),
    ]
}

async fn loaded(ctx: &Ctx) -> Result<Repo<Doc>> {
    let repo = docs(ctx).await?;
    repo.put_many(&catalog()).await?;
    repo.refresh_search().await?;
    Ok(repo)
}

async fn search_finds_and_ranks(ctx: Ctx) -> Result<()> {
    let repo = loaded(&ctx).await?;
    let mut red = keys(&repo, SearchQuery::new("red")).await?;
    red.sort();
    check(red == ["a", "b", "d"], || format!("`red` found {red:?}"))?;
    // Stemming: "cars" finds "car".
    let mut cars = keys(&repo, SearchQuery::new("cars")).await?;
    cars.sort();
    check(cars == ["a", "c", "d"], || format!("`cars` found {cars:?}"))?;
    // All words are required.
    let mut both = keys(&repo, SearchQuery::new("red car")).await?;
    both.sort();
    check(both == ["a", "d"], || format!("`red car` found {both:?}"))?;
    // OR: a document matching more of the terms ranks higher.
    let page = repo.search(SearchQuery::new("red OR fast OR car")).await?;
    let order: Vec<&str> = page.hits.iter().map(|h| h.item.id.as_str()).collect();
    check(order.first() == Some(&"a"), || {
        format!("`red OR fast OR car`: `a` matches all three terms but the order is {order:?}")
    })?;
    check(page.total == 5, || {
        format!("total {} for 5 matches", page.total)
    })?;
    for w in page.hits.windows(2) {
        check(w[0].score >= w[1].score, || "scores not descending".into())?;
    }
    // A match in the body counts too.
    let fruit = keys(&repo, SearchQuery::new("fruit")).await?;
    check(fruit == ["b"], || format!("`fruit` found {fruit:?}"))?;
    // Hydrated records are the stored ones.
    let page = repo.search(SearchQuery::new("bicycle")).await?;
    check(
        page.hits.len() == 1 && page.hits[0].item == catalog()[4] && page.missing == 0,
        || format!("bicycle hit {:?}", page.hits),
    )?;
    // Nothing matches.
    let none = repo.search(SearchQuery::new("zeppelin")).await?;
    check(none.hits.is_empty() && none.total == 0, || {
        "`zeppelin` found something".into()
    })
}

async fn search_phrase_and_exclusion(ctx: Ctx) -> Result<()> {
    let repo = loaded(&ctx).await?;
    let phrase = keys(&repo, SearchQuery::new("\"red car\"")).await?;
    check(phrase == ["a"], || {
        format!("phrase \"red car\" found {phrase:?}")
    })?;
    let mut excl = keys(&repo, SearchQuery::new("car -red")).await?;
    excl.sort();
    check(excl == ["c"], || format!("`car -red` found {excl:?}"))?;
    let mut excl_phrase = keys(&repo, SearchQuery::new("red -\"fast car\"")).await?;
    excl_phrase.sort();
    check(excl_phrase == ["b", "d"], || {
        format!("`red -\"fast car\"` found {excl_phrase:?}")
    })
}

async fn search_filters(ctx: Ctx) -> Result<()> {
    let repo = loaded(&ctx).await?;
    let mut cheap_cars = keys(
        &repo,
        SearchQuery::new("car").filter(field("price").lt(15000.0)),
    )
    .await?;
    cheap_cars.sort();
    check(cheap_cars == ["c", "d"], || {
        format!("cheap cars {cheap_cars:?}")
    })?;
    let mut in_stock = keys(
        &repo,
        SearchQuery::new("").filter(field("active").eq(true).and(field("category").ne("cars"))),
    )
    .await?;
    in_stock.sort();
    check(in_stock == ["b", "e"], || {
        format!("active non-cars {in_stock:?}")
    })?;
    let mut some = keys(
        &repo,
        SearchQuery::new("").filter(
            field("category")
                .is_in(["bikes", "food"])
                .and(field("stock").ge(7).not()),
        ),
    )
    .await?;
    some.sort();
    check(some == ["f"], || format!("in/not/ge {some:?}"))?;
    let or = keys(
        &repo,
        SearchQuery::new("red").filter(field("stock").eq(100).or(field("price").gt(20000.0))),
    )
    .await?;
    check(
        or.iter().collect::<HashSet<_>>().len() == 2
            && or.contains(&"a".into())
            && or.contains(&"b".into()),
        || format!("or filter {or:?}"),
    )?;
    // An operator the store cannot evaluate is refused, never ignored.
    let search = repo_search_caps(&ctx).await?;
    let prefix = repo
        .search(SearchQuery::new("").filter(field("category").prefix("ca")))
        .await;
    if search.prefix {
        let mut got: Vec<String> = prefix?.hits.into_iter().map(|h| h.item.id).collect();
        got.sort();
        check(got == ["a", "c", "d"], || format!("prefix found {got:?}"))?;
    } else {
        check(matches!(prefix, Err(Error::Unsupported { .. })), || {
            format!("prefix on a store without it: {prefix:?}")
        })?;
    }
    // A field that is not a search filter is bad input.
    let title = repo
        .search(SearchQuery::new("").filter(field("title").eq("x")))
        .await;
    check(matches!(title, Err(Error::InvalidInput { .. })), || {
        format!("filter on a non-filter field: {title:?}")
    })
}

async fn repo_search_caps(ctx: &Ctx) -> Result<polyrouter::FilterCaps> {
    let router =
        Router::from_toml_str(&format!("[stores.s]\n{}", store_toml(&ctx.store).unwrap())).await?;
    let s = router.store("s").unwrap();
    Ok(s.as_search().expect("a search store").filter_caps())
}

async fn search_facets(ctx: Ctx) -> Result<()> {
    let repo = loaded(&ctx).await?;
    let page = repo.search(SearchQuery::new("").facet("category")).await?;
    let f = &page.facets[0];
    check(
        f.field == "category"
            && f.counts
                == vec![
                    ("cars".to_string(), 3),
                    ("food".to_string(), 2),
                    ("bikes".to_string(), 1),
                ],
        || format!("facets over everything: {f:?}"),
    )?;
    // Facets count the matches, not the page.
    let page = repo
        .search(SearchQuery::new("red").facet("category").limit(1))
        .await?;
    let f = &page.facets[0];
    check(
        f.count("cars") == 2 && f.count("food") == 1 && f.count("bikes") == 0,
        || format!("facets over `red`: {f:?}"),
    )?;
    check(
        page.hits.len() == 1 && page.total == 3 && page.next.is_some(),
        || {
            format!(
                "page of one: {} hits, total {}",
                page.hits.len(),
                page.total
            )
        },
    )?;
    let bad = repo.search(SearchQuery::new("").facet("title")).await;
    check(matches!(bad, Err(Error::InvalidInput { .. })), || {
        format!("facet on a non-facet: {bad:?}")
    })
}

async fn search_paging_returns_every_hit_once(ctx: Ctx) -> Result<()> {
    let repo = docs(&ctx).await?;
    let mut all = Vec::new();
    for i in 0..23 {
        // Ties: many documents with the same text and score.
        let title = if i % 3 == 0 {
            "lamp lamp desk"
        } else {
            "desk lamp"
        };
        all.push(doc(&format!("k{i:02}"), title, "", "home", i as f64, i));
    }
    repo.put_many(&all).await?;
    repo.refresh_search().await?;
    for text in ["lamp", ""] {
        let mut seen = Vec::new();
        let mut scores = Vec::new();
        let mut q = Some(SearchQuery::new(text).limit(4));
        let mut pages = 0;
        while let Some(query) = q {
            let page = repo.search(query).await?;
            check(page.total == 23, || format!("total {}", page.total))?;
            seen.extend(page.hits.iter().map(|h| h.item.id.clone()));
            scores.extend(page.hits.iter().map(|h| h.score));
            q = page.next_query();
            pages += 1;
            check(pages < 20, || "paging does not end".into())?;
        }
        let unique: HashSet<&String> = seen.iter().collect();
        check(seen.len() == 23 && unique.len() == 23, || {
            format!(
                "`{text}`: {} hits, {} distinct over pages",
                seen.len(),
                unique.len()
            )
        })?;
        for w in scores.windows(2) {
            check(w[0] >= w[1], || {
                format!("`{text}`: scores rise across pages: {scores:?}")
            })?;
        }
    }
    // A token only continues its own search.
    let page = repo.search(SearchQuery::new("lamp").limit(4)).await?;
    let token = page.next.clone().expect("more pages");
    let other = repo
        .search(SearchQuery::new("desk").limit(4).after(token.clone()))
        .await;
    check(matches!(other, Err(Error::InvalidInput { .. })), || {
        format!("foreign token: {other:?}")
    })?;
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    let bad = repo
        .search(SearchQuery::new("lamp").limit(4).after(forged))
        .await;
    check(matches!(bad, Err(Error::InvalidInput { .. })), || {
        format!("forged token: {bad:?}")
    })
}

async fn search_delete_and_update(ctx: Ctx) -> Result<()> {
    let repo = loaded(&ctx).await?;
    check(repo.delete("b").await?, || "b existed".into())?;
    repo.refresh_search().await?;
    let apple = repo.search(SearchQuery::new("apple")).await?;
    check(apple.hits.is_empty() && apple.total == 0, || {
        format!("deleted doc still found: {:?}", apple.hits)
    })?;
    // An update re-indexes: the old words are gone, the new ones found.
    repo.put(&doc("c", "purple submarine", "", "boats", 5.0, 2))
        .await?;
    repo.refresh_search().await?;
    let blue = keys(&repo, SearchQuery::new("blue")).await?;
    check(blue.is_empty(), || {
        format!("old words still match: {blue:?}")
    })?;
    let sub = keys(
        &repo,
        SearchQuery::new("submarine").filter(field("category").eq("boats")),
    )
    .await?;
    check(sub == ["c"], || format!("new words: {sub:?}"))?;
    let cars = keys(
        &repo,
        SearchQuery::new("").filter(field("category").eq("cars")),
    )
    .await?;
    check(!cars.contains(&"c".to_string()), || {
        "old filter value still matches".into()
    })?;
    // A batch that puts and deletes indexes the outcome.
    repo.batch()
        .put(&doc("g", "orange juice", "", "food", 2.0, 5))
        .delete("a")
        .commit()
        .await?;
    repo.refresh_search().await?;
    check(
        keys(&repo, SearchQuery::new("juice")).await? == ["g"],
        || "batch put not indexed".into(),
    )?;
    check(
        keys(&repo, SearchQuery::new("fast car")).await?.is_empty(),
        || "batch delete not applied".into(),
    )?;
    // delete_many removes from the index too.
    repo.delete_many(["d", "g"]).await?;
    repo.refresh_search().await?;
    let left = keys(&repo, SearchQuery::new("")).await?;
    let left: HashSet<String> = left.into_iter().collect();
    let want: HashSet<String> = ["c", "e", "f"].iter().map(|s| s.to_string()).collect();
    check(left == want, || format!("left after deletes: {left:?}"))
}

async fn search_injection_strings_are_data(ctx: Ctx) -> Result<()> {
    let repo = docs(&ctx).await?;
    let nasty = [
        "x'); DROP TABLE doc; --",
        "\"quoted\" OR 1=1",
        "robert'); g.V().drop(); ('",
        "ünïcødé 日本語 ✓",
        "back\\slash % _ *",
        "-minus OR \"unbalanced",
    ];
    let docs: Vec<Doc> = nasty
        .iter()
        .enumerate()
        .map(|(i, s)| doc(s, &format!("marker{i} {s}"), s, s, i as f64, 1))
        .collect();
    repo.put_many(&docs).await?;
    repo.refresh_search().await?;
    for (i, s) in nasty.iter().enumerate() {
        let page = repo.search(SearchQuery::new(format!("marker{i}"))).await?;
        check(
            page.hits.len() == 1 && page.hits[0].key == (*s).into() && page.hits[0].item == docs[i],
            || format!("marker{i}: {:?}", page.hits),
        )?;
        let by_cat = keys(&repo, SearchQuery::new("").filter(field("category").eq(*s))).await?;
        check(by_cat == [s.to_string()], || {
            format!("filter on {s:?}: {by_cat:?}")
        })?;
        // The nasty string as query text is only text.
        repo.search(SearchQuery::new(*s)).await?;
    }
    let page = repo.search(SearchQuery::new("").facet("category")).await?;
    for s in nasty {
        check(page.facets[0].count(s) == 1, || {
            format!("facet value {s:?} missing: {:?}", page.facets)
        })?;
    }
    Ok(())
}

async fn search_write_becomes_visible(ctx: Ctx) -> Result<()> {
    let repo = docs(&ctx).await?;
    repo.put(&doc("late", "eventually visible", "", "misc", 1.0, 1))
        .await?;
    // No refresh: the store's commit interval (or immediate commit) makes it
    // searchable; poll until a generous deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if keys(&repo, SearchQuery::new("eventually")).await? == ["late"] {
            break;
        }
        check(Instant::now() < deadline, || {
            "a write was not searchable within 30s".into()
        })?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    repo.delete("late").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if keys(&repo, SearchQuery::new("eventually"))
            .await?
            .is_empty()
        {
            return Ok(());
        }
        check(Instant::now() < deadline, || {
            "a delete was not applied within 30s".into()
        })?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn search_bad_requests_are_rejected(ctx: Ctx) -> Result<()> {
    let repo = loaded(&ctx).await?;
    let zero = repo.search(SearchQuery::new("car").limit(0)).await;
    check(matches!(zero, Err(Error::InvalidInput { .. })), || {
        format!("limit 0: {zero:?}")
    })?;
    let wrong_type = repo
        .search(SearchQuery::new("").filter(field("price").eq("cheap")))
        .await;
    check(
        matches!(wrong_type, Err(Error::InvalidInput { .. })),
        || format!("string operand for a float filter: {wrong_type:?}"),
    )?;
    let garbage = repo
        .search(SearchQuery::new("car").after("not-a-token"))
        .await;
    check(matches!(garbage, Err(Error::InvalidInput { .. })), || {
        format!("garbage token: {garbage:?}")
    })?;
    // Operators alone are text, not errors.
    for text in ["OR", "-", "\"", "OR OR -\"\"", "   "] {
        repo.search(SearchQuery::new(text)).await?;
    }
    Ok(())
}
