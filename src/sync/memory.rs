//! [`MemoryBus`]: the in-process bus, so examples and tests run with no
//! server. It keeps the [`Bus`] promises within one process (durable for
//! the life of the bus value, de-duplication, redelivery after `ack_wait`,
//! per-entity publish order), and is the reference the other buses are
//! tested against. An event is dropped once every consumer group that
//! exists has acknowledged it; a group created later starts at the oldest
//! event still held.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::ChangeEvent;
use super::bus::{Bus, Delivery, DeliveryTag, StartAt, SubscribeOptions, Subscription};
use crate::{Error, Result};

/// How long a published event id is remembered for de-duplication.
const DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// An in-process bus; clones share the same events and groups.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use polyrouter::{Key, sync::{Bus, ChangeEvent, MemoryBus, Operation, SubscribeOptions}};
/// let bus = MemoryBus::new("events");
/// let e = ChangeEvent::new("main", "order", Key::from("o1"), Operation::Put, 1);
/// bus.publish(&[e.clone(), e.clone()]).await?; // the same id twice: stored once
/// let mut sub = bus.subscribe("view", &["order".into()], &SubscribeOptions::default()).await?;
/// let got = sub.fetch(10, Duration::from_millis(10)).await?;
/// assert_eq!(got.len(), 1);
/// sub.ack(&[got[0].tag.clone()]).await?;
/// assert_eq!(bus.backlog("view", &["order".into()]).await?, Some(0));
/// # Ok::<(), polyrouter::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBus {
    name: String,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    published: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Every event still held, by sequence number (1, 2, …).
    log: VecDeque<(u64, Arc<ChangeEvent>)>,
    next_seq: u64,
    /// Event ids published within the de-duplication window.
    seen: HashMap<String, Instant>,
    seen_order: VecDeque<(Instant, String)>,
    groups: HashMap<String, Group>,
}

#[derive(Debug, Default)]
struct Group {
    /// The next sequence number not yet delivered to the group.
    cursor: u64,
    /// Delivered, not acknowledged: due time and attempts so far.
    pending: BTreeMap<u64, Pending>,
}

#[derive(Debug)]
struct Pending {
    due: Instant,
    attempts: u32,
    entity: String,
}

impl MemoryBus {
    /// An empty bus.
    ///
    /// ```
    /// use polyrouter::sync::{Bus, MemoryBus};
    /// assert_eq!(MemoryBus::new("events").kind(), "memory");
    /// ```
    pub fn new(name: &str) -> Self {
        MemoryBus {
            name: name.into(),
            shared: Arc::default(),
        }
    }
}

impl State {
    fn forget_old_ids(&mut self, now: Instant) {
        while let Some((at, _)) = self.seen_order.front() {
            if now.duration_since(*at) < DEDUP_WINDOW {
                break;
            }
            let (_, id) = self.seen_order.pop_front().expect("front exists");
            self.seen.remove(&id);
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn location(&self) -> String {
        "in-process".into()
    }

    async fn publish(&self, events: &[ChangeEvent]) -> Result<()> {
        let now = Instant::now();
        {
            let mut st = self.shared.state.lock();
            st.forget_old_ids(now);
            for e in events {
                if st.seen.contains_key(&e.id) {
                    continue;
                }
                st.seen.insert(e.id.clone(), now);
                st.seen_order.push_back((now, e.id.clone()));
                st.next_seq += 1;
                let seq = st.next_seq;
                st.log.push_back((seq, Arc::new(e.clone())));
            }
        }
        self.shared.published.notify_waiters();
        Ok(())
    }

    async fn subscribe(
        &self,
        group: &str,
        entities: &[String],
        options: &SubscribeOptions,
    ) -> Result<Box<dyn Subscription>> {
        if entities.is_empty() {
            return Err(Error::invalid_input(
                &self.name,
                "",
                format!("consumer group `{group}` names no entity to read"),
            ));
        }
        {
            let mut st = self.shared.state.lock();
            let cursor = match options.start {
                StartAt::Oldest => st.log.front().map_or(st.next_seq + 1, |(s, _)| *s),
                StartAt::New => st.next_seq + 1,
            };
            st.groups.entry(group.to_string()).or_insert_with(|| Group {
                cursor,
                pending: BTreeMap::new(),
            });
        }
        Ok(Box::new(MemorySubscription {
            shared: self.shared.clone(),
            group: group.to_string(),
            entities: entities.to_vec(),
            ack_wait: options.ack_wait,
            ephemeral: options.ephemeral,
        }))
    }

    async fn backlog(&self, group: &str, entities: &[String]) -> Result<Option<u64>> {
        let st = self.shared.state.lock();
        let Some(g) = st.groups.get(group) else {
            let n = st
                .log
                .iter()
                .filter(|(_, e)| entities.contains(&e.entity))
                .count();
            return Ok(Some(n as u64));
        };
        let pending = g
            .pending
            .values()
            .filter(|p| entities.contains(&p.entity))
            .count();
        let unread = st
            .log
            .iter()
            .filter(|(s, e)| *s >= g.cursor && entities.contains(&e.entity))
            .count();
        Ok(Some((pending + unread) as u64))
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

struct MemorySubscription {
    shared: Arc<Shared>,
    group: String,
    entities: Vec<String>,
    ack_wait: Duration,
    ephemeral: bool,
}

impl MemorySubscription {
    fn take_ready(&self, max: usize) -> Vec<Delivery> {
        let now = Instant::now();
        let mut st = self.shared.state.lock();
        let st = &mut *st;
        let Some(g) = st.groups.get_mut(&self.group) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // Due redeliveries first.
        let due: Vec<u64> = g
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now && self.entities.contains(&p.entity))
            .map(|(s, _)| *s)
            .take(max)
            .collect();
        for seq in due {
            let first = st.log.front().map_or(0, |(s, _)| *s);
            let Some(event) = seq
                .checked_sub(first)
                .and_then(|i| st.log.get(i as usize))
                .map(|(_, e)| e.clone())
            else {
                g.pending.remove(&seq);
                continue;
            };
            let p = g.pending.get_mut(&seq).expect("listed above");
            p.attempts += 1;
            p.due = now + self.ack_wait;
            out.push(Delivery {
                event: (*event).clone(),
                attempt: p.attempts,
                tag: DeliveryTag::new(seq.to_string()),
            });
        }
        // Then new events of the group's entities.
        while out.len() < max {
            let Some((seq, event)) = st
                .log
                .iter()
                .find(|(s, _)| *s >= g.cursor)
                .map(|(s, e)| (*s, e.clone()))
            else {
                break;
            };
            g.cursor = seq + 1;
            if !self.entities.contains(&event.entity) {
                continue;
            }
            g.pending.insert(
                seq,
                Pending {
                    due: now + self.ack_wait,
                    attempts: 1,
                    entity: event.entity.clone(),
                },
            );
            out.push(Delivery {
                event: (*event).clone(),
                attempt: 1,
                tag: DeliveryTag::new(seq.to_string()),
            });
        }
        out
    }

    fn seq(&self, tag: &DeliveryTag) -> Result<u64> {
        tag.as_str().parse().map_err(|_| {
            Error::invalid_input(
                "memory bus",
                "",
                format!("{tag:?} is not a delivery of this bus"),
            )
        })
    }
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        loop {
            let notified = self.shared.published.notified();
            let got = self.take_ready(max.max(1));
            if !got.is_empty() {
                return Ok(got);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(got);
            }
            // Wake on a publish, or when the earliest pending delivery is due.
            let next_due = {
                let st = self.shared.state.lock();
                st.groups
                    .get(&self.group)
                    .and_then(|g| g.pending.values().map(|p| p.due).min())
            };
            let until = next_due.map_or(deadline, |d| d.min(deadline));
            let _ = tokio::time::timeout(until.saturating_duration_since(now), notified).await;
        }
    }

    async fn ack(&mut self, tags: &[DeliveryTag]) -> Result<()> {
        let seqs = tags
            .iter()
            .map(|t| self.seq(t))
            .collect::<Result<Vec<_>>>()?;
        let mut st = self.shared.state.lock();
        if let Some(g) = st.groups.get_mut(&self.group) {
            for s in seqs {
                g.pending.remove(&s);
            }
        }
        // Drop events every group has read and acknowledged.
        let floor = st
            .groups
            .values()
            .map(|g| {
                g.pending
                    .keys()
                    .next()
                    .copied()
                    .unwrap_or(g.cursor)
                    .min(g.cursor)
            })
            .min()
            .unwrap_or(0);
        while st.log.front().is_some_and(|(s, _)| *s < floor) {
            st.log.pop_front();
        }
        Ok(())
    }

    async fn nack(&mut self, tag: &DeliveryTag, delay: Duration) -> Result<()> {
        let seq = self.seq(tag)?;
        {
            let mut st = self.shared.state.lock();
            if let Some(p) = st
                .groups
                .get_mut(&self.group)
                .and_then(|g| g.pending.get_mut(&seq))
            {
                p.due = Instant::now() + delay;
            }
        }
        self.shared.published.notify_waiters();
        Ok(())
    }

    async fn close(self: Box<Self>) -> Result<()> {
        if self.ephemeral {
            self.shared.state.lock().groups.remove(&self.group);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;
    use crate::sync::Operation;

    fn ev(entity: &str, key: &str, version: u64) -> ChangeEvent {
        ChangeEvent::new("main", entity, Key::from(key), Operation::Put, version)
    }

    fn opts(ack_wait: Duration) -> SubscribeOptions {
        SubscribeOptions {
            ack_wait,
            ..SubscribeOptions::default()
        }
    }

    #[tokio::test]
    async fn groups_read_their_entities_in_order_and_resume_after_acks() {
        let bus = MemoryBus::new("b");
        let events: Vec<_> = (1..=5)
            .map(|v| ev(if v % 2 == 0 { "a" } else { "b" }, "k", v))
            .collect();
        bus.publish(&events).await.unwrap();
        let mut sub = bus
            .subscribe("g", &["b".into()], &opts(Duration::from_secs(60)))
            .await
            .unwrap();
        let other = bus
            .subscribe("other", &["a".into()], &opts(Duration::from_secs(60)))
            .await
            .unwrap();
        let got = sub.fetch(2, Duration::ZERO).await.unwrap();
        assert_eq!(
            got.iter().map(|d| d.event.version).collect::<Vec<_>>(),
            [1, 3]
        );
        sub.ack(&[got[0].tag.clone(), got[1].tag.clone()])
            .await
            .unwrap();
        drop(sub);
        // A new member of the same group resumes after what was acknowledged.
        let mut again = bus
            .subscribe("g", &["b".into()], &opts(Duration::from_secs(60)))
            .await
            .unwrap();
        let got = again.fetch(10, Duration::ZERO).await.unwrap();
        assert_eq!(got.iter().map(|d| d.event.version).collect::<Vec<_>>(), [5]);
        // Another group's events are kept until it acknowledges them.
        drop(other);
        assert_eq!(bus.backlog("other", &["a".into()]).await.unwrap(), Some(2));
    }

    #[tokio::test]
    async fn unacknowledged_and_nacked_events_come_back_with_a_higher_attempt() {
        let bus = MemoryBus::new("b");
        bus.publish(&[ev("a", "k", 1)]).await.unwrap();
        let mut sub = bus
            .subscribe("g", &["a".into()], &opts(Duration::from_millis(20)))
            .await
            .unwrap();
        let first = sub.fetch(1, Duration::ZERO).await.unwrap();
        assert_eq!(first[0].attempt, 1);
        let again = sub.fetch(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(again[0].attempt, 2, "redelivered after ack_wait");
        sub.nack(&again[0].tag, Duration::ZERO).await.unwrap();
        let third = sub.fetch(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(third[0].attempt, 3);
        sub.ack(&[third[0].tag.clone()]).await.unwrap();
        assert!(
            sub.fetch(1, Duration::from_millis(50))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(bus.backlog("g", &["a".into()]).await.unwrap(), Some(0));
    }

    #[tokio::test]
    async fn a_fetch_waiting_for_events_wakes_on_publish() {
        let bus = MemoryBus::new("b");
        let mut sub = bus
            .subscribe("g", &["a".into()], &SubscribeOptions::default())
            .await
            .unwrap();
        let publisher = bus.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            publisher.publish(&[ev("a", "k", 1)]).await.unwrap();
        });
        let got = sub.fetch(1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(got.len(), 1);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn duplicate_ids_are_stored_once_and_foreign_tags_are_refused() {
        let bus = MemoryBus::new("b");
        let e = ev("a", "k", 1);
        bus.publish(std::slice::from_ref(&e)).await.unwrap();
        bus.publish(std::slice::from_ref(&e)).await.unwrap();
        assert_eq!(bus.backlog("g", &["a".into()]).await.unwrap(), Some(1));
        let mut sub = bus
            .subscribe("g", &["a".into()], &SubscribeOptions::default())
            .await
            .unwrap();
        assert!(sub.ack(&[DeliveryTag::new("nope")]).await.is_err());
        assert!(
            bus.subscribe("g", &[], &SubscribeOptions::default())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn an_ephemeral_group_starting_at_new_sees_only_later_events_and_goes_on_close() {
        let bus = MemoryBus::new("b");
        bus.publish(&[ev("a", "k", 1)]).await.unwrap();
        let o = SubscribeOptions {
            start: StartAt::New,
            ephemeral: true,
            ..SubscribeOptions::default()
        };
        let mut sub = bus.subscribe("cache-1", &["a".into()], &o).await.unwrap();
        bus.publish(&[ev("a", "k", 2)]).await.unwrap();
        let got = sub.fetch(10, Duration::ZERO).await.unwrap();
        assert_eq!(got.iter().map(|d| d.event.version).collect::<Vec<_>>(), [2]);
        sub.close().await.unwrap();
        // Gone: the next member of that name starts afresh.
        let mut again = bus.subscribe("cache-1", &["a".into()], &o).await.unwrap();
        assert!(again.fetch(10, Duration::ZERO).await.unwrap().is_empty());
    }
}
