//! The transactional outbox and versioned apply on Redis.
//!
//! The outbox is a stream per entity, `{key_prefix}:{table}#outbox`: the
//! write and apply scripts `XADD` one entry per applied change in the same
//! script run as the change (fields `v` = the version, known only inside
//! the script, and `e` = the event JSON built here with version 0).

use super::{Message, RedisStore, chunk_end_by, tombstone_ms};
use crate::store::{Applied, EntityInfo, OutboxEntry, VersionedChange, outbox_event};
use crate::sync::ChangeEvent;
use crate::{Error, Key, Record, Result};

/// The largest version the scripts hold exactly (Lua numbers are doubles).
const MAX_VERSION: u64 = 1 << 53;

/// Stream ids per `XDEL`.
const XDEL_CHUNK: usize = 1000;

/// The event a write (or applied change) records, as JSON with version 0
/// (the script puts the version into the stream entry); empty when the
/// route has no outbox.
pub(super) fn event_json(entity: &EntityInfo, key: &Key, record: Option<&Record>) -> Vec<u8> {
    outbox_event(entity, key, record, 0)
        .map(|e| e.to_json())
        .unwrap_or_default()
}

/// Whether `id` is a stream entry id (`{ms}-{seq}`); `XDEL` refuses the
/// whole call for one that is not.
fn is_stream_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        ms.parse::<u64>().is_ok()
            && seq.parse::<u64>().is_ok()
            && ms.bytes().all(|b| b.is_ascii_digit())
            && seq.bytes().all(|b| b.is_ascii_digit())
    })
}

/// One change, encoded for the apply script.
struct EncodedChange {
    key: Vec<u8>,
    version: String,
    kind: &'static str,
    data: Vec<u8>,
    event: Vec<u8>,
}

impl EncodedChange {
    /// Bytes sent for it, roughly.
    fn size(&self) -> usize {
        self.key.len() + self.version.len() + self.data.len() + self.event.len() + 40
    }
}

impl RedisStore {
    fn encode_change(
        &self,
        entity: &EntityInfo,
        change: &VersionedChange,
    ) -> Result<EncodedChange> {
        let key = self.record_key(entity, &change.key)?;
        if change.version > MAX_VERSION {
            return Err(Error::unsupported(
                &self.name,
                entity.name(),
                format!(
                    "version {} of key {} (Redis scripts hold versions up to 2^53 exactly)",
                    change.version, change.key
                ),
            ));
        }
        let (kind, data, event) = match &change.record {
            Some(record) if record.key != change.key => {
                let record = Record {
                    key: change.key.clone(),
                    ..record.clone()
                };
                let data = self.encode_data(entity, &record)?;
                ("p", data, event_json(entity, &change.key, Some(&record)))
            }
            Some(record) => {
                let data = self.encode_data(entity, record)?;
                ("p", data, event_json(entity, &change.key, Some(record)))
            }
            None => ("d", Vec::new(), event_json(entity, &change.key, None)),
        };
        Ok(EncodedChange {
            key,
            version: change.version.to_string(),
            kind,
            data,
            event,
        })
    }

    /// [`Store::apply_versioned`](crate::Store::apply_versioned): every
    /// change is encoded and checked first, then the apply script runs
    /// over chunks of at most 1000 changes / 16 MiB, in order.
    pub(super) async fn apply_changes(
        &self,
        entity: &EntityInfo,
        changes: &[VersionedChange],
    ) -> Result<Vec<Applied>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        self.check_table(entity)?;
        let encoded = changes
            .iter()
            .map(|c| self.encode_change(entity, c))
            .collect::<Result<Vec<_>>>()?;
        if self.cluster && entity.outbox.is_some() {
            return Err(self.no_cluster_outbox(entity));
        }
        let mut out = Vec::with_capacity(changes.len());
        let mut start = 0;
        while start < encoded.len() {
            let end = chunk_end_by(encoded.len(), start, |i| encoded[i].size());
            let end = self.same_slot_end(start, end, |i| &encoded[i].key);
            let mut invocation = self.apply_script.prepare_invoke();
            for e in &encoded[start..end] {
                invocation
                    .key(&e.key)
                    .arg(&e.version)
                    .arg(e.kind)
                    .arg(&e.data)
                    .arg(&e.event);
            }
            if entity.outbox.is_some() {
                invocation.key(self.outbox_key(entity));
            }
            invocation.arg(tombstone_ms(entity));
            let reply: Vec<i64> = self
                .conn()
                .invoke(&invocation, super::APPLY_LUA, &encoded[start].key)
                .await
                .map_err(|e| self.err(entity, e))?;
            if reply.len() != end - start {
                return Err(Error::backend(
                    &self.name,
                    entity.name(),
                    Message(format!(
                        "the apply script returned {} values for {} changes; is another program writing these keys?",
                        reply.len(),
                        end - start
                    )),
                ));
            }
            self.replicated(entity, &encoded[start].key).await?;
            out.extend(reply.into_iter().map(|v| match u64::try_from(v) {
                Ok(current) => Applied::Stale { current },
                Err(_) => Applied::Applied,
            }));
            start = end;
        }
        Ok(out)
    }

    /// [`Store::outbox_fetch`](crate::Store::outbox_fetch):
    /// `XRANGE {outbox} - + COUNT max`, each entry's `v` put into its event.
    pub(super) async fn outbox_entries(
        &self,
        entity: &EntityInfo,
        max: usize,
    ) -> Result<Vec<OutboxEntry>> {
        self.check_table(entity)?;
        if self.cluster {
            return Err(self.no_cluster_outbox(entity));
        }
        if max == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
            .arg(self.outbox_key(entity))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| self.err(entity, e))?;
        rows.into_iter()
            .map(|(id, fields)| self.outbox_entry(entity, id, &fields))
            .collect()
    }

    /// One stream entry (`v`, `e`) as an [`OutboxEntry`].
    fn outbox_entry(
        &self,
        entity: &EntityInfo,
        id: String,
        fields: &[Vec<u8>],
    ) -> Result<OutboxEntry> {
        let field = |name: &[u8]| {
            fields
                .chunks_exact(2)
                .find(|p| p[0] == name)
                .map(|p| p[1].as_slice())
        };
        let bad = |what: String| {
            Error::backend(
                &self.name,
                entity.name(),
                Message(format!(
                    "outbox entry {id} of table `{}`: {what}; remove it with XDEL if another program wrote it",
                    entity.table
                )),
            )
        };
        let version = field(b"v")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| bad("no version (field `v`)".into()))?;
        let json = field(b"e").ok_or_else(|| bad("no event (field `e`)".into()))?;
        let mut event = ChangeEvent::from_json(json).map_err(&bad)?;
        event.version = version;
        event.key = event.typed_key(entity.schema.key_kind).map_err(&bad)?;
        Ok(OutboxEntry { id, event })
    }

    /// [`Store::outbox_remove`](crate::Store::outbox_remove): `XDEL` of
    /// the ids that are stream ids, 1000 per call.
    pub(super) async fn outbox_delete(&self, entity: &EntityInfo, ids: &[String]) -> Result<()> {
        self.check_table(entity)?;
        if self.cluster {
            return Err(self.no_cluster_outbox(entity));
        }
        let ids: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| is_stream_id(id))
            .collect();
        let key = self.outbox_key(entity);
        let mut conn = self.conn();
        for chunk in ids.chunks(XDEL_CHUNK) {
            let _: u64 = redis::cmd("XDEL")
                .arg(&key)
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.err(entity, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_stream_id;

    #[test]
    fn stream_ids() {
        assert!(is_stream_id("1700000000000-0"));
        assert!(is_stream_id("0-1"));
        for bad in ["no-such-entry", "1-", "-1", "12", "+1-2", "1-2-3", ""] {
            assert!(!is_stream_id(bad), "{bad}");
        }
    }
}
