//! What the tools rely on: `backends::KINDS` describes each store as it
//! reports itself (`polyrouter advise`, `topology`), and `drop_entity`
//! removes a table whole (`polyrouter bench` cleans up with it).

use polyrouter::{Capabilities, Result, Router};

use crate::behaviour;
use crate::entities::Note;
use crate::harness::{Behaviour, Ctx, always};

pub fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(kind_describes_its_stores, |_: &Capabilities| None),
        behaviour!(drop_entity_removes_the_table_and_its_records, always),
    ]
}

/// The static description `polyrouter advise` and `topology` use is the
/// value the opened store reports, but for the capabilities the kind says
/// its options change (`depends`; e.g. a redis store with `cluster = true`).
async fn kind_describes_its_stores(ctx: Ctx) -> Result<()> {
    let router = Router::from_toml_str(&ctx.blob_store_config()).await?;
    let store = router.store("s").expect("store s");
    let kind = polyrouter::backends::kind(store.kind()).expect("a known kind");
    if store.capabilities() == &kind.capabilities {
        return Ok(());
    }
    let (has, declared) = (store.capabilities().names(), kind.capabilities.names());
    let differ: Vec<&str> = has
        .iter()
        .filter(|n| !declared.contains(n))
        .chain(declared.iter().filter(|n| !has.contains(n)))
        .copied()
        .collect();
    let undeclared: Vec<&&str> = differ
        .iter()
        .filter(|n| !kind.depends.iter().any(|d| d.capability == **n))
        .collect();
    assert!(
        !differ.is_empty() && undeclared.is_empty(),
        "store `{}` of kind `{}` reports other capabilities than backends::KINDS declares ({differ:?}), not all named in its `depends`",
        ctx.store,
        store.kind()
    );
    Ok(())
}

/// After `drop_entity` the records are gone, a second drop is no error,
/// the table can be made again, and other tables are untouched.
async fn drop_entity_removes_the_table_and_its_records(ctx: Ctx) -> Result<()> {
    let router = ctx.router().await?;
    let notes = router.repo::<Note>().await?;
    let items = router.repo::<crate::entities::Item>().await?;
    for i in 0..25 {
        notes
            .put(&Note {
                id: format!("n{i}"),
                body: "x".repeat(i),
            })
            .await?;
    }
    items
        .put(&crate::entities::item(1, "kept", 1, None, None))
        .await?;
    let store = router.store("s").expect("store s").clone();
    let info = polyrouter::store::EntityInfo {
        table: router.route("note").expect("note route").table.clone(),
        store: "s".into(),
        ..polyrouter::store::EntityInfo::new(<Note as polyrouter::Entity>::schema())
    };
    store.drop_entity(&info).await?;
    store.drop_entity(&info).await?;
    // Made again, empty.
    store.ensure_entity(&info).await?;
    for i in 0..25 {
        assert_eq!(
            store
                .get(&info, &polyrouter::Key::from(format!("n{i}")))
                .await?,
            None
        );
    }
    if store.capabilities().count {
        assert_eq!(store.count(&info, None).await?, 0);
    }
    assert_eq!(
        items
            .get(1)
            .await?
            .expect("the other table keeps its rows")
            .name,
        "kept"
    );
    store.drop_entity(&info).await?;
    Ok(())
}
