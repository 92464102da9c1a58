//! Atomic batches: one Cosmos DB transactional batch, within one partition.
//!
//! The batch is planned against the items as read (versions and ETags),
//! exactly as the single-operation path decides: every precondition is
//! checked before anything is sent (`Conflict` with the actual version,
//! nothing written), an insert is a *create*, an update a *replace* with
//! `If-Match`, a delete of an existing item a *delete* with `If-Match`.
//! The service runs the operations in order, all or nothing; a `409`,
//! `412` or `404` from it means another writer came between the read and
//! the batch: nothing was written, so the store reads again and plans
//! again (then a precondition that no longer holds is a `Conflict`).

use azure_data_cosmos::TransactionalBatch;
use azure_data_cosmos::options::{BatchDeleteOptions, BatchReplaceOptions};

use super::*;

/// The most operations one transactional batch takes.
pub(super) const MAX_BATCH_OPS: usize = crate::backends::kind_caps::COSMOS_MAX_BATCH_OPS;
/// The largest request body of a transactional batch.
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// One operation of the planned transactional batch.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum BatchOp {
    /// Insert an item that was absent.
    Create(Doc),
    /// Replace an item; `if_match` on the first write of a key.
    Replace {
        id: String,
        doc: Doc,
        if_match: Option<String>,
    },
    /// Delete an item; `if_match` on the first write of a key.
    Delete {
        id: String,
        if_match: Option<String>,
    },
}

/// What a key holds as the batch is planned, op by op.
#[derive(Default)]
struct Slot {
    /// The version; `None`: absent.
    version: Option<u64>,
    /// The version a put continues from (the record's or its tombstone's).
    base: u64,
    /// An item (a record or a tombstone) holds the id.
    exists: bool,
    /// The ETag as read; taken by the key's first write in the batch.
    etag: Option<String>,
    /// The partition key value of the item.
    partition: Option<Json>,
    /// Written earlier in this batch.
    touched: bool,
    /// The order of the key's latest event (route with an outbox).
    order: Option<u64>,
}

/// The planned batch: its operations, its one partition key value, and
/// the outcome of each polyrouter op.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) ops: Vec<BatchOp>,
    pub(super) partition: Option<Json>,
    pub(super) outcomes: Vec<WriteOutcome>,
}

/// A polyrouter op ready for planning: its item id, and for a put the
/// encoded item (version to be set).
pub(super) struct Prepared {
    pub(super) id: String,
    pub(super) doc: Option<Doc>,
}

impl CosmosStore {
    fn span_error(&self, entity: &EntityInfo, partitions: usize) -> Error {
        Error::unsupported(
            &self.inner.name,
            entity.name(),
            format!(
                "atomic batch: ops span {partitions} partitions; atomic batches need one partition key value (field `{}`) in Cosmos DB",
                codec::partition_field(entity.schema)
            ),
        )
    }

    /// Plans the batch against the items as read (`current`, by id): the
    /// same decisions as the single-op path, with each key's state
    /// evolving through the batch.
    pub(super) fn plan_batch(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        prepared: &[Prepared],
        current: &HashMap<String, Option<Doc>>,
        c: &Container,
    ) -> Result<Plan> {
        let tombstones = !entity.tombstone_retention.is_zero();
        let pk_prop = codec::stored_name(codec::partition_field(entity.schema));
        let mut slots: HashMap<&str, Slot> = HashMap::new();
        let mut plan = Plan {
            ops: Vec::new(),
            partition: None,
            outcomes: Vec::with_capacity(ops.len()),
        };
        let mut partitions: Vec<Json> = Vec::new();
        // The outbox items of the writes' events, after the writes.
        let mut events: Vec<BatchOp> = Vec::new();
        let mut event = |slot: &mut Slot,
                         item: Option<&mut Doc>,
                         pk: &Json,
                         key: &Key,
                         record: Option<&Record>,
                         version: u64| {
            if let Some(ev) = self.event_item(entity, item, slot.order, pk, key, record, version) {
                slot.order = super::sync::order_of(&ev);
                events.push(BatchOp::Create(ev));
            }
        };
        for (op, prep) in ops.iter().zip(prepared) {
            let slot = slots.entry(prep.id.as_str()).or_insert_with(|| {
                match current.get(&prep.id).and_then(Option::as_ref) {
                    Some(doc) => Slot {
                        version: (!codec::is_tombstone(doc)).then(|| codec::version_of(doc)),
                        base: codec::version_of(doc),
                        exists: true,
                        etag: codec::etag_of(doc),
                        partition: Some(doc.get(&pk_prop).cloned().unwrap_or(Json::Null)),
                        touched: false,
                        order: super::sync::order_of(doc),
                    },
                    None => Slot::default(),
                }
            });
            let (precondition, key) = match op {
                WriteOp::Put {
                    record,
                    precondition,
                    ..
                } => (*precondition, &record.key),
                WriteOp::Delete { key, precondition } => (*precondition, key),
            };
            if !precondition.holds(slot.version) {
                return Err(self.conflict(entity, key, precondition, slot.version));
            }
            // The key's first write carries the ETag read; a later one is
            // guarded by that first write (the batch is all or nothing).
            let guard = |slot: &mut Slot| -> Result<Option<String>> {
                let touched = std::mem::replace(&mut slot.touched, true);
                match slot.etag.take() {
                    None if !touched && slot.exists => {
                        Err(self.corrupt(entity, "the item has no `_etag`".into()))
                    }
                    etag => Ok(etag),
                }
            };
            let partition = match op {
                WriteOp::Put { record, .. } => {
                    let mut doc = prep
                        .doc
                        .clone()
                        .ok_or_else(|| self.corrupt(entity, "a put without its item".into()))?;
                    let pk = doc.get(&pk_prop).cloned().unwrap_or(Json::Null);
                    if slot.exists && slot.partition.as_ref() != Some(&pk) {
                        return Err(self.invalid(
                            entity,
                            format!(
                                "the partition key `{}` of a stored record cannot change in Cosmos DB; delete the record and insert it again (outside an atomic batch: a deleted record's tombstone keeps its partition for the entity's `tombstone_retention`)",
                                codec::partition_field(entity.schema)
                            ),
                        ));
                    }
                    let next = slot.base + 1;
                    doc.insert(codec::VERSION.into(), Json::from(next));
                    event(slot, Some(&mut doc), &pk, key, Some(record), next);
                    if !slot.exists {
                        // An absent item is guarded by the create itself.
                        slot.touched = true;
                        plan.ops.push(BatchOp::Create(doc));
                    } else {
                        let if_match = guard(slot)?;
                        plan.ops.push(BatchOp::Replace {
                            id: prep.id.clone(),
                            doc,
                            if_match,
                        });
                    }
                    slot.version = Some(next);
                    slot.base = next;
                    slot.exists = true;
                    slot.partition = Some(pk.clone());
                    plan.outcomes.push(WriteOutcome::Written { version: next });
                    Some(pk)
                }
                WriteOp::Delete { .. } => match slot.version {
                    None => {
                        plan.outcomes.push(WriteOutcome::Deleted { existed: false });
                        None
                    }
                    Some(v) if tombstones => {
                        // The item becomes the record's tombstone.
                        let if_match = guard(slot)?;
                        let pk = slot.partition.clone().unwrap_or(Json::Null);
                        let mut doc =
                            self.tombstone(entity, c, &prep.id, &pk_prop, pk.clone(), v + 1);
                        event(slot, Some(&mut doc), &pk, key, None, v + 1);
                        plan.ops.push(BatchOp::Replace {
                            id: prep.id.clone(),
                            doc,
                            if_match,
                        });
                        slot.version = None;
                        slot.base = v + 1;
                        plan.outcomes.push(WriteOutcome::Deleted { existed: true });
                        Some(pk)
                    }
                    Some(v) => {
                        let if_match = guard(slot)?;
                        plan.ops.push(BatchOp::Delete {
                            id: prep.id.clone(),
                            if_match,
                        });
                        let pk = slot.partition.take();
                        event(
                            slot,
                            None,
                            pk.as_ref().unwrap_or(&Json::Null),
                            key,
                            None,
                            v + 1,
                        );
                        slot.version = None;
                        slot.base = 0;
                        slot.exists = false;
                        plan.outcomes.push(WriteOutcome::Deleted { existed: true });
                        pk
                    }
                },
            };
            if let Some(pk) = partition {
                if !partitions.contains(&pk) {
                    partitions.push(pk);
                }
            }
        }
        if partitions.len() > 1 {
            return Err(self.span_error(entity, partitions.len()));
        }
        plan.partition = partitions.pop();
        plan.ops.extend(events);
        Ok(plan)
    }

    /// Writes `ops` all or nothing with one transactional batch.
    pub(super) async fn write_atomic(
        &self,
        entity: &EntityInfo,
        c: &Container,
        ops: &[WriteOp],
    ) -> Result<Vec<WriteOutcome>> {
        if ops.len() > MAX_BATCH_OPS {
            return Err(Error::unsupported(
                &self.inner.name,
                entity.name(),
                format!(
                    "atomic batch of {} ops: a Cosmos DB transactional batch takes at most {MAX_BATCH_OPS}; split it or use a non-atomic batch",
                    ops.len()
                ),
            ));
        }
        let pk_prop = codec::stored_name(codec::partition_field(entity.schema));
        let by_key = Self::partitioned_by_key(entity.schema);
        // Encode and check everything before any request.
        let mut prepared = Vec::with_capacity(ops.len());
        let mut known: Vec<Json> = Vec::new();
        let mut bytes = 0;
        for op in ops {
            let id = self.item_id(entity, op.key())?;
            let doc = match op {
                WriteOp::Put { record, ttl, .. } => {
                    if ttl.is_some() && !c.ttl_enabled {
                        return Err(self.ttl_unsupported(entity));
                    }
                    let doc = self.encode_item(entity, record, *ttl)?;
                    bytes += serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0);
                    Some(doc)
                }
                WriteOp::Delete { .. } => None,
            };
            let pk = match (&doc, by_key) {
                (Some(doc), _) => Some(doc.get(&pk_prop).cloned().unwrap_or(Json::Null)),
                (None, true) => Some(codec::key_json(op.key())),
                // The item's partition is known once it is read.
                (None, false) => None,
            };
            if let Some(pk) = pk {
                if !known.contains(&pk) {
                    known.push(pk);
                }
            }
            prepared.push(Prepared { id, doc });
        }
        if known.len() > 1 {
            return Err(self.span_error(entity, known.len()));
        }
        if bytes > MAX_BATCH_BYTES {
            return Err(Error::unsupported(
                &self.inner.name,
                entity.name(),
                format!(
                    "atomic batch of {bytes} bytes: a Cosmos DB transactional batch carries at most {MAX_BATCH_BYTES}"
                ),
            ));
        }
        for attempt in 0..WRITE_ATTEMPTS {
            contention_pause(attempt).await;
            let current = self.read_current(entity, c, ops, &prepared).await?;
            let plan = self.plan_batch(entity, ops, &prepared, &current, c)?;
            let Some(partition) = plan.partition.clone() else {
                return Ok(plan.outcomes); // nothing to write
            };
            if plan.ops.len() > MAX_BATCH_OPS {
                // Only with an outbox: every write also creates its event.
                return Err(Error::unsupported(
                    &self.inner.name,
                    entity.name(),
                    format!(
                        "atomic batch of {} writes on a route with an outbox: each write and its event are {} operations, and a Cosmos DB transactional batch takes at most {MAX_BATCH_OPS}; split it or use a non-atomic batch",
                        ops.len(),
                        plan.ops.len()
                    ),
                ));
            }
            let pk = partition_key(&partition).map_err(|m| self.invalid(entity, m))?;
            if self.execute_batch(entity, c, pk, &plan.ops).await? {
                return Ok(plan.outcomes);
            }
        }
        Err(Error::unavailable(
            &self.inner.name,
            entity.name(),
            "other writers kept changing the batch's items; retry",
        ))
    }

    /// Runs a transactional batch. `Ok(false)`: an operation failed with
    /// `409`, `412` or `404` — another writer came between the read and
    /// the batch; nothing was written, read and decide again.
    pub(super) async fn execute_batch(
        &self,
        entity: &EntityInfo,
        c: &Container,
        pk: PartitionKey,
        ops: &[BatchOp],
    ) -> Result<bool> {
        let batch = self.transactional_batch(entity, pk, ops)?;
        let resp = c
            .client
            .execute_transactional_batch(batch, None)
            .await
            .map_err(|e| self.err(entity.name(), e))?;
        let results = resp
            .into_model()
            .map_err(|e| self.corrupt(entity, format!("unreadable batch response: {e}")))?;
        let results = results.results();
        if results.len() == ops.len() && results.iter().all(|r| r.is_success()) {
            return Ok(true);
        }
        // The operation that failed the batch (the others say 424).
        let failed = results
            .iter()
            .position(|r| !r.is_success() && r.status_code() != 424);
        match failed.map(|i| (i, results[i].status_code())) {
            Some((_, 409 | 412 | 404)) => Ok(false),
            Some((i, code)) => Err(self.batch_error(entity, ops, i, code)),
            None => Err(self.corrupt(
                entity,
                format!(
                    "the transactional batch of {} operations answered {} results, none of them the failure",
                    ops.len(),
                    results.len()
                ),
            )),
        }
    }

    /// The items the ops name, by id (each read once).
    async fn read_current(
        &self,
        entity: &EntityInfo,
        c: &Container,
        ops: &[WriteOp],
        prepared: &[Prepared],
    ) -> Result<HashMap<String, Option<Doc>>> {
        use futures::StreamExt;
        let mut seen = std::collections::HashSet::new();
        let mut reads = Vec::new();
        for (op, p) in ops.iter().zip(prepared) {
            if seen.insert(p.id.as_str()) {
                let id = p.id.clone();
                reads.push(async move {
                    let cur = self.current(entity, c, op.key(), &id).await?;
                    Ok::<_, Error>((id, cur.map(|c| c.doc)))
                });
            }
        }
        futures::stream::iter(reads)
            .buffered(GET_MANY_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    fn transactional_batch(
        &self,
        entity: &EntityInfo,
        pk: PartitionKey,
        ops: &[BatchOp],
    ) -> Result<TransactionalBatch> {
        let mut batch = TransactionalBatch::new(pk);
        let build = |e: CosmosError| self.corrupt(entity, format!("cannot build the batch: {e}"));
        for op in ops {
            batch = match op {
                BatchOp::Create(doc) => batch.create_item(doc).map_err(build)?,
                BatchOp::Replace { id, doc, if_match } => {
                    let opts = if_match.as_ref().map(|etag| {
                        BatchReplaceOptions::default()
                            .with_precondition(CosmosPrecondition::if_match(etag.clone()))
                    });
                    batch.replace_item(id.clone(), doc, opts).map_err(build)?
                }
                BatchOp::Delete { id, if_match } => {
                    let opts = if_match.as_ref().map(|etag| {
                        BatchDeleteOptions::default()
                            .with_precondition(CosmosPrecondition::if_match(etag.clone()))
                    });
                    batch.delete_item(id.clone(), opts)
                }
            };
        }
        Ok(batch)
    }

    /// A batch operation failed for a reason other than a concurrent write.
    fn batch_error(&self, entity: &EntityInfo, ops: &[BatchOp], i: usize, code: u16) -> Error {
        let what = match ops.get(i) {
            Some(BatchOp::Create(doc)) => format!(
                "create of item {}",
                doc.get("id").and_then(Json::as_str).unwrap_or("?")
            ),
            Some(BatchOp::Replace { id, .. }) => format!("replace of item {id}"),
            Some(BatchOp::Delete { id, .. }) => format!("delete of item {id}"),
            None => format!("operation {i}"),
        };
        let message = format!(
            "the transactional batch failed at its {what} with status {code}; nothing was written"
        );
        match code {
            408 | 429 | 449 | 500 | 502 | 503 | 504 => {
                Error::unavailable(&self.inner.name, entity.name(), format!("{message}; retry"))
            }
            413 => Error::invalid_input(&self.inner.name, entity.name(), message),
            _ => Error::backend(&self.inner.name, entity.name(), Message(message)),
        }
    }
}
