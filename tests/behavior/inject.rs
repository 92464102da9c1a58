//! Injection strings as keys, values and filter operands round-trip as data.

use polyrouter::query::{Query, field};
use polyrouter::{Error, Result};

use crate::behaviour;
use crate::entities::*;
use crate::harness::{Behaviour, Ctx, always};

pub fn behaviours() -> Vec<Behaviour> {
    vec![behaviour!(injection_strings_are_data, always)]
}

const EVIL: &[&str] = &[
    "'; DROP TABLE note; --",
    "\"; DROP TABLE \"note\"; --",
    "' OR '1'='1",
    "back\\slash\\",
    "nul\u{0}byte",
    "x'); g.V().drop(); ('",
    "%_%",
    "\u{202E}rtl\u{FEFF}",
    "🎉 emoji",
    "",
    " trailing space ",
    "a/b?c#d",
];

async fn injection_strings_are_data(ctx: Ctx) -> Result<()> {
    let repo = ctx.repo::<Note>().await?;
    repo.put(&note("canary", "still here")).await?;
    let caps = ctx.caps();
    for (i, evil) in EVIL.iter().enumerate() {
        let key = format!("{evil}{i}");
        if evil.contains('\0') && !crate::harness::text_holds_nul(&ctx.store) {
            // The store's text cannot hold NUL: refused, nothing written.
            let err = repo.put(&note(&key, evil)).await.unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{evil:?}: {err}");
            assert_eq!(repo.get(key.clone()).await?, None);
            if caps.query && caps.filters.eq {
                let found = repo
                    .query(Query::new().filter(field("body").eq(*evil)))
                    .await?;
                assert!(found.items.is_empty(), "eq on {evil:?}");
            }
            continue;
        }
        repo.put(&note(&key, evil)).await?;
        let got = repo.get(key.clone()).await?.expect("round trip");
        assert_eq!(got.body, *evil);
        assert_eq!(got.id, key);
        if caps.query && caps.filters.eq {
            let found = repo
                .query(Query::new().filter(field("body").eq(*evil)))
                .await?;
            assert!(found.items.iter().any(|n| n.id == key), "eq on {evil:?}");
        }
        if caps.query && caps.filters.prefix {
            let found = repo
                .query(Query::new().filter(field("id").prefix(key.clone())))
                .await?;
            assert_eq!(found.items.len(), 1, "prefix on {evil:?}");
        }
    }
    let bare_key = repo.get(EVIL[0]).await?;
    assert_eq!(bare_key, None);
    assert_eq!(
        repo.get("canary").await?.map(|n| n.body),
        Some("still here".into())
    );
    let stored = |evil: &str| !evil.contains('\0') || crate::harness::text_holds_nul(&ctx.store);
    let kept = EVIL.iter().filter(|e| stored(e)).count();
    if caps.count {
        assert_eq!(repo.count(None).await?, kept as u64 + 1);
    }
    let keys = EVIL
        .iter()
        .enumerate()
        .filter(|(_, evil)| stored(evil))
        .map(|(i, evil)| format!("{evil}{i}"));
    assert!(
        repo.get_many(keys).await?.iter().all(Option::is_some),
        "every key kept its own record"
    );
    Ok(())
}
