//! `cascade_blobs`: deleting a record deletes the blobs its fields name,
//! after the record is gone.

use std::sync::Arc;

use super::Bound;
use crate::config::CascadeBlobs;
use crate::store::{WriteOp, WriteOutcome};
use crate::{Error, Record, Result, Store, Value};

/// One cascade of a bound entity: a field and the blob store its keys live in.
#[derive(Debug, Clone)]
pub(crate) struct Cascade {
    pub field: String,
    pub store: Arc<dyn Store>,
}

/// Checks a route's `cascade_blobs` against the entity's schema and the
/// stores, and resolves them.
pub(crate) fn resolve(
    entity: &str,
    schema: &'static crate::Schema,
    list: &[CascadeBlobs],
    stores: &std::collections::BTreeMap<String, Arc<dyn Store>>,
    config: &crate::config::Config,
) -> Result<Vec<Cascade>> {
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let at = format!("entities.{entity}.cascade_blobs.{i}");
        let Some(store) = stores.get(&c.store) else {
            return Err(config.error(
                &format!("{at}.store"),
                format!(
                    "store `{}` is not defined; add a [stores.{}] table",
                    c.store, c.store
                ),
            ));
        };
        if store.as_blob().is_none() {
            return Err(config.error(
                &format!("{at}.store"),
                format!(
                    "store `{}` (kind `{}`) does not hold blobs; name a blob store (kind `fs`, `azblob` or `memory`)",
                    c.store,
                    store.kind()
                ),
            ));
        }
        if !schema.fields.iter().any(|f| f.name == c.field) {
            return Err(config.error(
                &format!("{at}.field"),
                format!(
                    "entity `{entity}` has no field `{}`; name the field that holds the blob key",
                    c.field
                ),
            ));
        }
        out.push(Cascade {
            field: c.field.clone(),
            store: store.clone(),
        });
    }
    Ok(out)
}

/// The blob keys a record's field names: a string, a list of strings, or none.
fn keys_in(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Json(serde_json::Value::String(s))) if !s.is_empty() => vec![s.clone()],
        Some(Value::Json(serde_json::Value::Array(items))) => items
            .iter()
            .filter_map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Before a write: for each delete, the blobs its record names now
/// (`(op index, store, key)`).
pub(crate) async fn before(b: &Bound, ops: &[WriteOp]) -> Result<Vec<(usize, usize, String)>> {
    if b.cascade.is_empty() {
        return Ok(Vec::new());
    }
    let deletes: Vec<(usize, crate::Key)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            WriteOp::Delete { key, .. } => Some((i, key.clone())),
            WriteOp::Put { .. } => None,
        })
        .collect();
    if deletes.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<crate::Key> = deletes.iter().map(|(_, k)| k.clone()).collect();
    let records: Vec<Option<Record>> = b
        .store
        .get_many(&b.info, &keys)
        .await
        .map_err(|e| e.with_entity(b.info.name()))?;
    let mut out = Vec::new();
    for ((i, _), rec) in deletes.iter().zip(records) {
        let Some(rec) = rec else { continue };
        for (c, cascade) in b.cascade.iter().enumerate() {
            for key in keys_in(rec.get(&cascade.field)) {
                out.push((*i, c, key));
            }
        }
    }
    Ok(out)
}

/// After a successful write: deletes the blobs of the records that were
/// deleted. A blob already gone is fine; any other failure is returned
/// (the record is deleted, the blob is not: the error says so).
pub(crate) async fn after(
    b: &Bound,
    blobs: Vec<(usize, usize, String)>,
    outcomes: &[Option<WriteOutcome>],
) -> Result<()> {
    for (i, c, key) in blobs {
        if !matches!(
            outcomes.get(i),
            Some(Some(WriteOutcome::Deleted { existed: true }))
        ) {
            continue;
        }
        let cascade = &b.cascade[c];
        let Some(store) = cascade.store.as_blob() else {
            continue; // checked at start-up
        };
        if let Err(e) = store.delete(&key).await {
            return Err(Error::backend(
                cascade.store.name(),
                b.info.name(),
                format!(
                    "the record was deleted but its blob {key:?} (field `{}`) was not: {e}; delete the blob again",
                    cascade.field
                ),
            ));
        }
    }
    Ok(())
}
