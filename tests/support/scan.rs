//! Reading a whole table back through the store API, for the migration
//! tests' final comparisons (`#[path = "support/scan.rs"] mod scan;`).
#![allow(dead_code)]

use std::sync::Arc;

use polyrouter::query::{Direction, Order};
use polyrouter::store::{EntityInfo, StoreQuery};
use polyrouter::{Key, Record, Store, field};

/// Every row of `store` in key order, read by keyset pages of 2 000.
pub async fn every_row(store: &Arc<dyn Store>, info: &EntityInfo) -> Vec<Record> {
    let key = info.schema.key;
    let mut out = Vec::new();
    let mut last: Option<Key> = None;
    loop {
        let q = StoreQuery {
            filter: last.as_ref().map(|k| field(key).gt(k.to_value())),
            order: vec![Order {
                field: key.into(),
                direction: Direction::Asc,
            }],
            limit: Some(2000),
        };
        let page = store.query(info, &q).await.unwrap();
        let Some(l) = page.last() else { return out };
        last = Some(l.key.clone());
        out.extend(page);
    }
}
