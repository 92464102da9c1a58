//! The transactional outbox and versioned apply on Cosmos DB.
//!
//! An outbox entry is an item in the entity's own container, in the
//! partition of its record, so a write and its event go in one
//! transactional batch: id `pr~outbox-<event id>` (no key's id can start
//! so), the partition key value, `pr_outbox: true`, `pr_order` and the
//! event's JSON text in `pr_event`. Reads, queries and counts leave these
//! items out as they leave out tombstones.
//!
//! `pr_order` is strictly increasing along a key's versions: a write reads
//! the key's item (record or tombstone, which keeps the `pr_order` of the
//! key's latest event) and replaces it with `If-Match`, so its event gets
//! `max(now in µs, previous + 1)`. `outbox_fetch` orders by it alone (one
//! property: no composite index needed); see `docs.md` for why that never
//! lists a key's newer event without its older ones.

use azure_data_cosmos::Query;

use super::batch::BatchOp;
use super::*;
use crate::store::{Applied, OutboxEntry, VersionedChange, outbox_event};
use crate::sync::ChangeEvent;

/// The most entries one `outbox_fetch` reads (the client buffers an
/// ordered cross-partition `TOP` query up to 1000 rows).
const MAX_FETCH: usize = 1000;
/// Outbox items deleted at once by `outbox_remove`.
const REMOVE_CONCURRENCY: usize = 16;

/// The order of a key's latest event, as its item (record, tombstone or
/// outbox item) keeps it.
pub(super) fn order_of(doc: &Doc) -> Option<u64> {
    doc.get(codec::ORDER).and_then(Json::as_u64)
}

/// The order of a key's next event: after the key's latest (`prev`), and
/// no earlier than now.
fn next_order(prev: Option<u64>) -> u64 {
    let now = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
    now.max(prev.map_or(0, |o| o.saturating_add(1)))
}

/// The outbox item holding `event`, in partition `pk`.
fn outbox_item(pk_prop: &str, pk: &Json, event: &ChangeEvent, order: u64) -> Doc {
    let mut doc = Doc::new();
    doc.insert(
        "id".into(),
        Json::from(format!("{}{}", codec::OUTBOX_ID_PREFIX, event.id)),
    );
    doc.insert(pk_prop.into(), pk.clone());
    doc.insert(codec::OUTBOX.into(), Json::Bool(true));
    doc.insert(codec::ORDER.into(), Json::from(order));
    doc.insert(codec::VERSION.into(), Json::from(event.version));
    let text = String::from_utf8_lossy(&event.to_json()).into_owned();
    doc.insert(codec::EVENT.into(), Json::String(text));
    doc
}

/// The id `outbox_fetch` gives an entry: its partition key value as JSON,
/// `|`, its item id (which holds no `|`).
fn entry_id(pk: &Json, id: &str) -> String {
    format!("{pk}|{id}")
}

/// The partition key value and item id of an entry id; `None` for an id
/// this store never gave.
fn parse_entry_id(entry: &str) -> Option<(Json, &str)> {
    let (pk, id) = entry.rsplit_once('|')?;
    if !id.starts_with(codec::OUTBOX_ID_PREFIX) {
        return None;
    }
    Some((serde_json::from_str(pk).ok()?, id))
}

impl CosmosStore {
    /// The outbox item of a write's event, if the route has an outbox: a
    /// put of `record` (carrying `version`), or a delete at `version`.
    /// `prev` is the order of the key's latest event ([`order_of`] its
    /// item as read); `item`, the item the write stores (record or
    /// tombstone), gets the new event's order.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn event_item(
        &self,
        entity: &EntityInfo,
        item: Option<&mut Doc>,
        prev: Option<u64>,
        pk: &Json,
        key: &Key,
        record: Option<&Record>,
        version: u64,
    ) -> Option<Doc> {
        let event = match record {
            Some(r) if r.version != version => {
                let r = Record {
                    version,
                    ..r.clone()
                };
                outbox_event(entity, key, Some(&r), version)?
            }
            r => outbox_event(entity, key, r, version)?,
        };
        let order = next_order(prev);
        if let Some(item) = item {
            item.insert(codec::ORDER.into(), Json::from(order));
        }
        let pk_prop = codec::stored_name(codec::partition_field(entity.schema));
        Some(outbox_item(&pk_prop, pk, &event, order))
    }

    /// Writes one item in partition `pk` and, when given, the outbox item
    /// of its event in the same transactional batch. `Ok(false)`: another
    /// writer came between the read and this write (`409` on a create,
    /// `412`/`404` on a replace or delete): nothing was written; read again.
    pub(super) async fn commit(
        &self,
        entity: &EntityInfo,
        c: &Container,
        pk: &Json,
        op: BatchOp,
        event: Option<Doc>,
    ) -> Result<bool> {
        let key = partition_key(pk).map_err(|m| self.invalid(entity, m))?;
        if let Some(event) = event {
            return self
                .execute_batch(entity, c, key, &[op, BatchOp::Create(event)])
                .await;
        }
        let if_match = |etag: &Option<String>| {
            etag.as_ref().map(|etag| {
                ItemWriteOptions::default()
                    .with_precondition(CosmosPrecondition::if_match(etag.clone()))
            })
        };
        let (res, raced): (_, &[u16]) = match &op {
            BatchOp::Create(doc) => {
                let id = doc.get("id").and_then(Json::as_str).unwrap_or_default();
                (
                    c.client.create_item(key, id, doc, None).await.map(|_| ()),
                    &[409],
                )
            }
            BatchOp::Replace {
                id,
                doc,
                if_match: etag,
            } => (
                c.client
                    .replace_item(key, id, doc, if_match(etag))
                    .await
                    .map(|_| ()),
                &[412, 404],
            ),
            BatchOp::Delete { id, if_match: etag } => (
                c.client
                    .delete_item(key, id, if_match(etag))
                    .await
                    .map(|_| ()),
                &[412, 404],
            ),
        };
        match res {
            Ok(()) => Ok(true),
            Err(e) if status(&e).is_some_and(|s| raced.contains(&s)) => Ok(false),
            Err(e) => Err(self.err(entity.name(), e)),
        }
    }

    /// Applies one change: read the key's item, answer `Stale` when it is
    /// not older, else create, replace (`If-Match`) or delete it, with the
    /// event in the same batch; a concurrent writer makes it read again.
    async fn apply_one(
        &self,
        entity: &EntityInfo,
        c: &Container,
        change: &VersionedChange,
        id: &str,
        encoded: Option<&Doc>,
    ) -> Result<Applied> {
        let pk_prop = codec::stored_name(codec::partition_field(entity.schema));
        for attempt in 0..WRITE_ATTEMPTS {
            contention_pause(attempt).await;
            let cur = self.current(entity, c, &change.key, id).await?;
            let current = cur.as_ref().map_or(0, Current::version);
            if change.version <= current {
                return Ok(Applied::Stale { current });
            }
            let prev = cur.as_ref().map(|c| &c.doc);
            let cur_pk = prev.map(|d| d.get(&pk_prop).cloned().unwrap_or(Json::Null));
            let mut etag = match prev {
                Some(d) => Some(
                    codec::etag_of(d)
                        .ok_or_else(|| self.corrupt(entity, "the item has no `_etag`".into()))?,
                ),
                None => None,
            };
            let (pk, item) = match (&change.record, encoded) {
                (Some(_), Some(doc)) => {
                    let mut doc = doc.clone();
                    doc.insert(codec::VERSION.into(), Json::from(change.version));
                    let pk = doc.get(&pk_prop).cloned().unwrap_or(Json::Null);
                    if let (Some(old), Some(tag)) = (cur_pk.as_ref(), etag.as_ref())
                        && old != &pk
                    {
                        // The key's item is in another partition: it makes
                        // way first (not atomic with the create below; its
                        // version guard is gone until that create lands).
                        let op = BatchOp::Delete {
                            id: id.to_string(),
                            if_match: Some(tag.clone()),
                        };
                        if !self.commit(entity, c, old, op, None).await? {
                            continue;
                        }
                        etag = None;
                    }
                    (pk, Some(doc))
                }
                (Some(_), None) => {
                    return Err(self.corrupt(entity, "a put without its item".into()));
                }
                (None, _) => {
                    let pk = cur_pk.unwrap_or_else(|| {
                        if Self::partitioned_by_key(entity.schema) {
                            codec::key_json(&change.key)
                        } else {
                            Json::Null
                        }
                    });
                    let tomb = (!entity.tombstone_retention.is_zero()).then(|| {
                        self.tombstone(entity, c, id, &pk_prop, pk.clone(), change.version)
                    });
                    (pk, tomb)
                }
            };
            let mut item = item;
            let event = self.event_item(
                entity,
                item.as_mut(),
                prev.and_then(order_of),
                &pk,
                &change.key,
                change.record.as_ref(),
                change.version,
            );
            let op = match (item, etag) {
                (Some(doc), None) => BatchOp::Create(doc),
                (Some(doc), Some(tag)) => BatchOp::Replace {
                    id: id.to_string(),
                    doc,
                    if_match: Some(tag),
                },
                (None, Some(tag)) => BatchOp::Delete {
                    id: id.to_string(),
                    if_match: Some(tag),
                },
                // A delete of an absent key without tombstones: nothing to
                // store but its event.
                (None, None) => {
                    if let Some(event) = event {
                        self.commit(entity, c, &pk, BatchOp::Create(event), None)
                            .await?;
                    }
                    return Ok(Applied::Applied);
                }
            };
            if self.commit(entity, c, &pk, op, event).await? {
                return Ok(Applied::Applied);
            }
        }
        Err(Error::unavailable(
            &self.inner.name,
            entity.name(),
            format!(
                "key {}: other writers kept changing the item; retry",
                change.key
            ),
        ))
    }

    /// Every change checked and encoded before any request: the item id
    /// and, for a put, the item (no TTL).
    fn prepare_changes(
        &self,
        entity: &EntityInfo,
        changes: &[VersionedChange],
    ) -> Result<Vec<(String, Option<Doc>)>> {
        changes
            .iter()
            .map(|ch| {
                let id = self.item_id(entity, &ch.key)?;
                let doc = match &ch.record {
                    Some(r) if r.key != ch.key => {
                        return Err(self.invalid(
                            entity,
                            format!(
                                "a change of key {} carries the record of key {}",
                                ch.key, r.key
                            ),
                        ));
                    }
                    Some(r) => Some(self.encode_item(entity, r, None)?),
                    None => None,
                };
                Ok((id, doc))
            })
            .collect()
    }

    pub(super) async fn apply_changes(
        &self,
        entity: &EntityInfo,
        changes: Vec<VersionedChange>,
    ) -> Result<Vec<Applied>> {
        use futures::{StreamExt, TryStreamExt};
        let prepared = self.prepare_changes(entity, &changes)?;
        let c = self.container(entity).await?;
        // Distinct keys are applied concurrently (a backfill chunk, a
        // projection batch without repeats); a key changed twice in the
        // call keeps the call's order.
        let width = concurrency_for(changes.iter().map(|ch| &ch.key));
        let mut applies = Vec::with_capacity(changes.len());
        for (change, (id, doc)) in changes.iter().zip(&prepared) {
            applies.push(self.apply_one(entity, &c, change, id, doc.as_ref()));
        }
        futures::stream::iter(applies)
            .buffered(width)
            .try_collect()
            .await
    }

    /// Runs an outbox query (no parameters but `@n`) over the container.
    async fn outbox_query(
        &self,
        entity: &EntityInfo,
        c: &Container,
        text: &str,
        n: Option<usize>,
    ) -> Result<Vec<Json>> {
        let mut q = Query::from(text.to_string());
        if let Some(n) = n {
            q = q
                .with_parameter("@n", n as u64)
                .map_err(|e| self.err(entity.name(), e))?;
        }
        let mut items = c
            .client
            .query_items::<Json>(q, FeedScope::full_container(), None)
            .await
            .map_err(|e| self.err(entity.name(), e))?;
        let mut out = Vec::new();
        while n.is_none_or(|n| out.len() < n) {
            match items.try_next().await {
                Ok(Some(item)) => out.push(item),
                Ok(None) => break,
                Err(e) => return Err(self.err(entity.name(), e)),
            }
        }
        Ok(out)
    }

    pub(super) async fn fetch_outbox(
        &self,
        entity: &EntityInfo,
        max: usize,
    ) -> Result<Vec<OutboxEntry>> {
        let c = self.container(entity).await?;
        let n = max.min(MAX_FETCH);
        if n == 0 {
            return Ok(Vec::new());
        }
        let text = format!(
            "SELECT TOP @n * FROM c WHERE c[\"{}\"] = true ORDER BY c[\"{}\"] ASC",
            codec::OUTBOX,
            codec::ORDER
        );
        let pk_prop = codec::stored_name(codec::partition_field(entity.schema));
        let items = self.outbox_query(entity, &c, &text, Some(n)).await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let bad = |m: &str| self.corrupt(entity, format!("outbox item {item}: {m}"));
            let id = item
                .get("id")
                .and_then(Json::as_str)
                .ok_or_else(|| bad("no id"))?;
            let text = item
                .get(codec::EVENT)
                .and_then(Json::as_str)
                .ok_or_else(|| bad("no event"))?;
            let event = ChangeEvent::from_json(text.as_bytes()).map_err(|m| bad(&m))?;
            let pk = item.get(&pk_prop).cloned().unwrap_or(Json::Null);
            out.push(OutboxEntry {
                id: entry_id(&pk, id),
                event,
            });
        }
        Ok(out)
    }

    pub(super) async fn remove_outbox(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        use futures::StreamExt;
        let c = self.container(entity).await?;
        let mut deletes = Vec::new();
        for (pk, id) in ids.iter().filter_map(|e| parse_entry_id(e)) {
            let c = &c;
            deletes.push(async move {
                let key = partition_key(&pk).map_err(|m| self.invalid(entity, m))?;
                match c.client.delete_item(key, id, None).await {
                    Ok(_) => Ok(()),
                    Err(e) if status(&e) == Some(404) => Ok(()), // removed already
                    Err(e) => Err(self.err(entity.name(), e)),
                }
            });
        }
        futures::stream::iter(deletes)
            .buffer_unordered(REMOVE_CONCURRENCY)
            .collect::<Vec<Result<()>>>()
            .await
            .into_iter()
            .collect()
    }

    pub(super) async fn outbox_count(&self, entity: &EntityInfo) -> Result<u64> {
        let c = self.container(entity).await?;
        let text = format!(
            "SELECT VALUE COUNT(1) FROM c WHERE c[\"{}\"] = true",
            codec::OUTBOX
        );
        let parts = self.outbox_query(entity, &c, &text, None).await?;
        Ok(parts.iter().filter_map(Json::as_u64).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_round_trip_and_foreign_ids_are_ignored() {
        let pk = Json::from("a|b");
        let id = format!("{}1234", codec::OUTBOX_ID_PREFIX);
        let entry = entry_id(&pk, &id);
        assert_eq!(parse_entry_id(&entry), Some((pk, id.as_str())));
        assert_eq!(parse_entry_id("no-such-entry"), None);
        assert_eq!(parse_entry_id("\"a\"|plain-record-id"), None);
        let null = entry_id(&Json::Null, &id);
        assert_eq!(parse_entry_id(&null), Some((Json::Null, id.as_str())));
    }

    #[test]
    fn outbox_ids_never_collide_with_key_ids() {
        // A key spelling the prefix gets its `~` escaped.
        let key = Key::from(format!("{}x", codec::OUTBOX_ID_PREFIX));
        assert!(
            !codec::item_id(&key)
                .unwrap()
                .starts_with(codec::OUTBOX_ID_PREFIX)
        );
    }

    #[test]
    fn orders_increase_along_a_key_even_when_the_clock_is_behind() {
        let mut prev = Doc::new();
        prev.insert(codec::ORDER.into(), Json::from(u64::MAX / 4));
        assert_eq!(next_order(order_of(&prev)), u64::MAX / 4 + 1);
        let now = next_order(None);
        assert!(next_order(None) >= now);
    }
}
