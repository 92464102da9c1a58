//! What `backends::KINDS` says of a kind is what its stores report.

use polyrouter::{Capabilities, Result, Router};

use crate::behaviour;
use crate::harness::{Behaviour, Ctx};

pub fn behaviours() -> Vec<Behaviour> {
    vec![behaviour!(kind_describes_its_stores, |_: &Capabilities| {
        None
    })]
}

/// The static description `polyrouter advise` and `topology` use is the
/// value the opened store reports (the test stores use default options).
async fn kind_describes_its_stores(ctx: Ctx) -> Result<()> {
    let router = Router::from_toml_str(&ctx.blob_store_config()).await?;
    let store = router.store("s").expect("store s");
    let kind = polyrouter::backends::kind(store.kind()).expect("a known kind");
    assert_eq!(
        store.capabilities(),
        &kind.capabilities,
        "store `{}` of kind `{}` reports other capabilities than backends::KINDS declares",
        ctx.store,
        store.kind()
    );
    Ok(())
}
