//! Redis Cluster mode of the `redis` store: connecting, hash slots (a
//! script call touches one slot), `WAIT` for replicas, and the calls that
//! run per node (dropping a table).

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use redis::RedisError;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;

use super::{EncodedOp, Message, RedisConfig, RedisStore, Slot, codec};
use crate::config::Redactor;
use crate::store::EntityInfo;
use crate::store::WriteOp;
use crate::{Error, Key, Record, Result};

/// The most writes an atomic batch may have on a cluster.
pub(crate) const CLUSTER_MAX_BATCH_OPS: usize =
    crate::backends::kind_caps::REDIS_CLUSTER_MAX_BATCH_OPS;

/// Concurrent point reads of a `get_many` on a cluster.
const GET_MANY_CONCURRENCY: usize = 64;

/// Opens the driver's cluster connection from the seed URLs: it reads the
/// slot map from the first node that answers, then follows `MOVED` / `ASK`
/// redirects and refreshes the map after a failover.
pub(super) async fn connect(
    name: &str,
    config: &RedisConfig,
    location: &str,
    config_error: &(dyn Fn(&str, String) -> Error + Send + Sync),
) -> Result<(ClusterClient, ClusterConnection)> {
    let seeds: Vec<&str> = std::iter::once(config.url.as_str())
        .chain(config.cluster_urls.iter().map(String::as_str))
        .collect();
    let redactor = seeds.iter().fold(Redactor::new(), |r, url| r.with_url(url));
    let client = ClusterClientBuilder::new(seeds.clone())
        .connection_timeout(config.connect_timeout.0)
        .response_timeout(config.response_timeout.0)
        .retries(6)
        .min_retry_wait(50)
        .max_retry_wait(1000)
        .build()
        .map_err(|e| {
            config_error(
                "url",
                format!(
                    "the Redis Cluster URLs ({location} and `cluster_urls`) are not usable: {}; write `redis://[user:password@]host:port` for each, all with the same user and password",
                    redactor.redact(&e.to_string())
                ),
            )
        })?;
    let conn = client.get_async_connection().await.map_err(|e| {
        let shown = redactor.redact(&e.to_string());
        Error::Unavailable {
            store: name.into(),
            entity: String::new(),
            message: format!(
                "cannot connect to the Redis Cluster at {location} (or `cluster_urls`): {shown}; check that its nodes run in cluster mode, that `cluster_state` is ok, and the URLs, user and password"
            ),
            source: Some(Box::new(Message(shown))),
        }
    })?;
    Ok((client, conn))
}

impl RedisStore {
    /// After a `READONLY` reply (the driver sent a write to a node that is
    /// now a replica: its slot map is older than a failover, and the
    /// driver refreshes it on `MOVED` and lost connections, not on
    /// `READONLY`), opens a new cluster connection in the background, which
    /// reads the slot map afresh, and the store's calls use it from then on.
    pub(super) fn refresh_slot_map(&self) {
        let Some(client) = self.cluster_client.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self
            .refreshing
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        let (slot, refreshing) = (self.conn.clone(), self.refreshing.clone());
        runtime.spawn(async move {
            if let Ok(fresh) = client.get_async_connection().await {
                *slot.write().unwrap_or_else(|p| p.into_inner()) = super::Conn::Cluster(fresh);
            }
            refreshing.store(false, std::sync::atomic::Ordering::SeqCst);
        });
    }

    /// On a cluster: the end (≤ `end`) of the run of items from `start`
    /// whose keys share the first one's hash slot, so that one script call
    /// touches one slot. On one server: `end`.
    pub(super) fn same_slot_end<'a>(
        &self,
        start: usize,
        end: usize,
        key: impl Fn(usize) -> &'a [u8],
    ) -> usize {
        if !self.cluster || start >= end {
            return end;
        }
        let slot = Slot::for_key(key(start));
        (start + 1..end)
            .find(|&i| Slot::for_key(key(i)) != slot)
            .unwrap_or(end)
    }

    /// On a cluster, an atomic batch is one script call, which Redis runs
    /// only over keys of one hash slot: a batch across slots is refused,
    /// never split.
    pub(super) fn check_one_slot(
        &self,
        entity: &EntityInfo,
        ops: &[WriteOp],
        encoded: &[EncodedOp],
    ) -> Result<()> {
        if !self.cluster {
            return Ok(());
        }
        if ops.len() > CLUSTER_MAX_BATCH_OPS {
            return Err(Error::unsupported(
                &self.name,
                entity.name(),
                format!(
                    "atomic batch of {} writes: on a Redis Cluster an atomic batch is one script of at most {CLUSTER_MAX_BATCH_OPS} writes (a longer one blocks its node); split it, or commit it non-atomically",
                    ops.len()
                ),
            ));
        }
        let span = if self.tag(entity) == codec::Tag::Table {
            // The table is one slot; the batch is held to one partition
            // value, as the capability says (a delete names only a key).
            let pk = entity.schema.partition_key.unwrap_or(entity.schema.key);
            let mut values: Vec<&crate::Value> = Vec::new();
            for op in ops {
                if let WriteOp::Put { record, .. } = op {
                    let v = record.value(pk);
                    if !values.contains(&v) {
                        values.push(v);
                    }
                }
            }
            values.len()
        } else {
            encoded
                .iter()
                .map(|e| Slot::for_key(&e.key))
                .collect::<HashSet<Slot>>()
                .len()
        };
        if span <= 1 {
            return Ok(());
        }
        let keys: Vec<String> = ops.iter().take(3).map(|op| op.key().to_string()).collect();
        Err(Error::unsupported(
            &self.name,
            entity.name(),
            format!(
                "atomic batch: ops span {} partitions; atomic batches need one partition key value — on a Redis Cluster, keys in one hash slot (keys {}, …): give the keys a common hash tag (`{{order42}}:line1`, `{{order42}}:line2`), or commit it non-atomically",
                span,
                keys.join(", ")
            ),
        ))
    }

    /// Why a route with an `outbox` cannot use this store on a cluster.
    pub(super) fn no_cluster_outbox(&self, entity: &EntityInfo) -> Error {
        Error::unsupported(
            &self.name,
            entity.name(),
            "outbox on a Redis Cluster: the outbox is one stream per table, which cannot share a hash slot with every record's key, so a write and its event cannot be one script; route this entity's outbox to a single Redis server or a SQL store",
        )
    }

    /// With `wait_replicas`, waits (`WAIT`) until that many replicas have
    /// every write sent before on the connection that carried the write of
    /// `key`; fewer within `wait_timeout` is [`Error::Unavailable`] — the
    /// write is on the master but may be lost if it fails over now.
    pub(super) async fn replicated(&self, entity: &EntityInfo, key: &[u8]) -> Result<()> {
        let Some((replicas, timeout_ms)) = self.wait else {
            return Ok(());
        };
        let acked = self
            .conn()
            .wait(key, replicas, timeout_ms)
            .await
            .map_err(|e| self.err(entity, e))?;
        if acked < i64::from(replicas) {
            return Err(Error::unavailable(
                &self.name,
                entity.name(),
                format!(
                    "the write was applied on the master (Redis at {}) but only {acked} of the {replicas} replicas required by `wait_replicas` confirmed it within {timeout_ms} ms; it may be lost if the master fails now — read it back before relying on it, or retry",
                    self.location
                ),
            ));
        }
        Ok(())
    }

    /// `get_many` on a cluster: one `HMGET` per key, concurrently (the
    /// keys are in many slots), in order.
    pub(super) async fn get_many_cluster(
        &self,
        entity: &EntityInfo,
        keys: &[Key],
        rkeys: &[Vec<u8>],
    ) -> Result<Vec<Option<Record>>> {
        let reads: Vec<_> = rkeys
            .iter()
            .map(|rkey| {
                let mut conn = self.conn();
                let rkey = rkey.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(&rkey)
                        .arg("v")
                        .arg("d")
                        .query_async(&mut conn)
                        .await
                }
            })
            .collect();
        let rows: Vec<(Option<u64>, Option<Vec<u8>>)> = futures::stream::iter(reads)
            .buffered(GET_MANY_CONCURRENCY)
            .try_collect()
            .await
            .map_err(|e: RedisError| self.err(entity, e))?;
        keys.iter()
            .zip(rows)
            .map(|(key, row)| match row {
                (Some(v), Some(d)) => self.decode(entity, key, v, &d).map(Some),
                _ => Ok(None),
            })
            .collect()
    }

    /// `drop_entity` on a cluster: `SCAN` each master for the table's
    /// records and raw values, `UNLINK`ed slot by slot.
    pub(super) async fn drop_cluster_entity(&self, entity: &EntityInfo) -> Result<()> {
        let mut conn = self.conn();
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.err(entity, e))?;
        for (host, port) in masters(&nodes) {
            for space in ["", "#kv"] {
                let pattern = format!(
                    "{}{space}:{}:*",
                    codec::glob_escape(&self.prefix),
                    codec::glob_escape(&codec::table_part(&entity.table, self.tag(entity)))
                );
                let mut cursor: u64 = 0;
                loop {
                    let mut scan = redis::cmd("SCAN");
                    scan.arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000);
                    let reply = conn
                        .on_node(scan, &host, port)
                        .await
                        .expect("a cluster connection")
                        .map_err(|e| self.err(entity, e))?;
                    let (next, keys): (u64, Vec<Vec<u8>>) =
                        redis::from_redis_value(reply).map_err(|e| self.err(entity, e.into()))?;
                    let mut by_slot: HashMap<Slot, Vec<Vec<u8>>> = HashMap::new();
                    for k in keys {
                        by_slot.entry(Slot::for_key(&k)).or_default().push(k);
                    }
                    for keys in by_slot.into_values() {
                        let _: u64 = redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(&mut conn)
                            .await
                            .map_err(|e| self.err(entity, e))?;
                    }
                    cursor = next;
                    if cursor == 0 {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The `host:port` of each master that is not failed, from `CLUSTER NODES`.
fn masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let addr = f.nth(1)?;
            let flags = f.next()?;
            let is_master = flags.split(',').any(|x| x == "master")
                && !flags
                    .split(',')
                    .any(|x| x.starts_with("fail") || x == "noaddr");
            if !is_master {
                return None;
            }
            let addr = addr.split('@').next()?;
            let addr = addr.split(',').next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.to_string(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_from_cluster_nodes() {
        let text = "a 127.0.0.1:7102@17102 master - 0 1 2 connected 5461-10922\n\
                    b 127.0.0.1:7105@17105 slave a 0 1 3 connected\n\
                    c 127.0.0.1:7101@17101 myself,master - 0 1 1 connected 0-5460\n\
                    d 127.0.0.1:7103@17103 master,fail - 0 1 3 disconnected\n";
        assert_eq!(
            masters(text),
            [
                ("127.0.0.1".to_string(), 7102),
                ("127.0.0.1".to_string(), 7101)
            ]
        );
        assert_eq!(Slot::for_key(b"foo"), Slot::for_key(b"p:t:{foo}"));
        assert_eq!(Slot::for_key(b"p:t:{o1}:a"), Slot::for_key(b"p:t:{o1}:b"));
    }
}
