//! Read coalescing (`coalesce_reads = true`): concurrent point reads of one
//! entity become one `get_many` on its primary store, DataLoader-style.
//!
//! The first read to arrive opens a batch and spawns its dispatcher; reads
//! arriving before the dispatcher runs (it yields once to the scheduler
//! first) join the batch, and a batch that reaches `max_batch` keys is
//! dispatched at once by the read that filled it. While a batch is in
//! flight the next one fills up, so under load each round trip serves
//! every read that arrived during the previous one.
//!
//! Every read keeps its own result: the batch is sent after each of its
//! reads was called, so it sees every write acknowledged before any of
//! them (strong reads stay strong); an error of the batch is each read's
//! error; duplicate keys are read once and the record handed to each. The
//! dispatcher is a task of its own, so a read whose caller gives up does
//! not strand the others.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::store::EntityInfo;
use crate::{Error, Key, Record, Result, Store};

/// What one read is waiting for.
type Answer = oneshot::Sender<Result<Option<Record>>>;

/// The reads of one batch: distinct keys, and per waiting read the index
/// of its key.
struct Batch {
    id: u64,
    keys: Vec<Key>,
    waiters: Vec<(usize, Answer)>,
}

/// Coalesces concurrent point reads of one entity on one store.
pub(crate) struct Coalescer {
    store: Arc<dyn Store>,
    info: EntityInfo,
    max_batch: usize,
    open: Mutex<Option<Batch>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("store", &self.store.name())
            .field("entity", &self.info.name())
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl Coalescer {
    /// Reads of `info` on `store`, at most `max_batch` keys per round trip.
    pub(crate) fn new(store: Arc<dyn Store>, info: EntityInfo, max_batch: usize) -> Arc<Self> {
        Arc::new(Coalescer {
            store,
            info,
            max_batch: max_batch.max(1),
            open: Mutex::new(None),
            next_id: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Reads one key as part of whatever batch is open.
    pub(crate) async fn get(self: &Arc<Self>, key: &Key) -> Result<Option<Record>> {
        let (tx, rx) = oneshot::channel();
        let (spawn, full) = {
            let mut open = self.open.lock();
            let mut spawn = None;
            let batch = open.get_or_insert_with(|| {
                let id = self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                spawn = Some(id);
                Batch {
                    id,
                    keys: Vec::new(),
                    waiters: Vec::new(),
                }
            });
            let slot = match batch.keys.iter().position(|k| k == key) {
                Some(i) => i,
                None => {
                    batch.keys.push(key.clone());
                    batch.keys.len() - 1
                }
            };
            batch.waiters.push((slot, tx));
            let full = if batch.keys.len() >= self.max_batch {
                open.take()
            } else {
                None
            };
            (spawn, full)
        };
        if let Some(batch) = full {
            let me = self.clone();
            tokio::spawn(async move { me.run(batch).await });
        } else if let Some(id) = spawn {
            let me = self.clone();
            tokio::spawn(async move {
                // Let the reads that are ready to run join first.
                tokio::task::yield_now().await;
                let batch = {
                    let mut open = me.open.lock();
                    match open.as_ref() {
                        Some(b) if b.id == id => open.take(),
                        // Dispatched already by the read that filled it.
                        _ => None,
                    }
                };
                if let Some(batch) = batch {
                    me.run(batch).await;
                }
            });
        }
        match rx.await {
            Ok(answer) => answer,
            Err(_) => Err(Error::unavailable(
                self.store.name(),
                self.info.name(),
                "the coalesced read was dropped before it was answered (runtime shutting down?); retry the read",
            )),
        }
    }

    /// Sends one `get_many` for the batch and answers each read.
    async fn run(&self, batch: Batch) {
        let got = self.store.get_many(&self.info, &batch.keys).await;
        match got {
            Ok(records) if records.len() == batch.keys.len() => {
                let mut records: Vec<Option<Option<Record>>> =
                    records.into_iter().map(Some).collect();
                let mut wanted = vec![0usize; batch.keys.len()];
                for (slot, _) in &batch.waiters {
                    wanted[*slot] += 1;
                }
                for (slot, tx) in batch.waiters {
                    wanted[slot] -= 1;
                    let rec = if wanted[slot] == 0 {
                        records[slot].take().flatten()
                    } else {
                        records[slot].clone().flatten()
                    };
                    let _ = tx.send(Ok(rec));
                }
            }
            Ok(records) => {
                let e = Error::backend(
                    self.store.name(),
                    self.info.name(),
                    format!(
                        "get_many answered {} slots for {} keys",
                        records.len(),
                        batch.keys.len()
                    ),
                );
                for (_, tx) in batch.waiters {
                    let _ = tx.send(Err(e.clone_lossy()));
                }
            }
            Err(e) => {
                for (_, tx) in batch.waiters {
                    let _ = tx.send(Err(e.clone_lossy()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::memory::MemoryStore;
    use crate::layers::testing::Counting;
    use crate::store::WriteOp;
    use crate::{FieldDef, KeyKind, Schema};

    static F: [FieldDef; 0] = [];
    static S: Schema = Schema {
        name: "t",
        key: "id",
        key_kind: KeyKind::Str,
        partition_key: None,
        version: None,
        fields: &F,
    };

    async fn setup(n: usize) -> (Arc<Counting<MemoryStore>>, EntityInfo) {
        let store = Arc::new(Counting::new(MemoryStore::new("m")));
        let info = EntityInfo::new(&S);
        store.ensure_entity(&info).await.unwrap();
        let ops = (0..n)
            .map(|i| WriteOp::Put {
                record: Record::new(Key::from(format!("k{i}"))),
                precondition: crate::Precondition::None,
                ttl: None,
            })
            .collect();
        store.write(&info, ops, false).await.unwrap();
        store.reset();
        (store, info)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_round_trips_and_keep_their_answers() {
        let (store, info) = setup(50).await;
        let c = Coalescer::new(store.clone(), info, 16);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                // Keys k0..k59: k50..k59 do not exist; each key read several times.
                let key = Key::from(format!("k{}", i % 60));
                (i % 60, c.get(&key).await)
            }));
        }
        for t in tasks {
            let (i, got) = t.await.unwrap();
            let got = got.unwrap();
            if i < 50 {
                assert_eq!(got.unwrap().key, Key::from(format!("k{i}")));
            } else {
                assert!(got.is_none(), "k{i} does not exist");
            }
        }
        let counts = store.counts();
        assert_eq!(counts.gets, 0, "every read went through get_many");
        assert!(
            counts.get_manys < 200,
            "200 concurrent reads took {} round trips",
            counts.get_manys
        );
    }

    #[tokio::test]
    async fn a_lone_read_is_answered() {
        let (store, info) = setup(1).await;
        let c = Coalescer::new(store.clone(), info, 16);
        assert!(c.get(&Key::from("k0")).await.unwrap().is_some());
        assert!(c.get(&Key::from("nope")).await.unwrap().is_none());
        assert_eq!(store.counts().get_manys, 2);
    }
}
