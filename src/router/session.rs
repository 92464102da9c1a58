//! [`Session`]: what one client has written and seen, for the
//! `read_your_writes` and `monotonic` consistency levels.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;

use crate::{Error, Key, Result};

/// The version a session records for a key it deleted: no copy can satisfy
/// it, so the next read of that key goes to the primary.
pub(crate) const DELETED: u64 = u64::MAX;

const PREFIX: &str = "s1.";
/// How many keys a session remembers unless told otherwise.
pub const DEFAULT_SESSION_KEYS: usize = 32;
/// The most keys a session may remember (bounds the token's size).
pub const MAX_SESSION_KEYS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    slot: u64,
    written: u64,
    seen: u64,
}

#[derive(Debug)]
struct State {
    capacity: usize,
    entries: Vec<Entry>, // most recent last
}

/// One client's consistency token: the versions it wrote
/// (`read_your_writes`) and the highest versions it has seen (`monotonic`),
/// per entity and key.
///
/// Attach it to a repository with [`Repo::with_session`](crate::Repo::with_session);
/// every write and read through that repository updates it. Clones share
/// the same state. Carry it between requests as a compact string
/// ([`Session::to_token`] / [`Session::parse`]), e.g. in a cookie or header.
///
/// **Bounded:** a session remembers the `capacity` most recently used keys
/// (default [`DEFAULT_SESSION_KEYS`], at most [`MAX_SESSION_KEYS`]); an older
/// key is forgotten, and a read of it is then only as consistent as the
/// entity's level without a session. Keys are kept as 64-bit hashes of
/// entity and key (FNV-1a), so the token reveals no key; two keys sharing a
/// hash only make the session stricter (more primary reads), never looser.
/// A token is at most about 30 bytes per key.
///
/// ```
/// use polyrouter::router::Session;
/// let s = Session::new();
/// let token = s.to_token();
/// let back = Session::parse(&token).unwrap();
/// assert_eq!(back.len(), 0);
/// let err = Session::parse("garbage").unwrap_err();
/// assert!(err.to_string().contains("session token"), "{err}");
/// ```
#[derive(Clone)]
pub struct Session {
    state: Arc<Mutex<State>>,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("Session")
            .field("keys", &s.entries.len())
            .field("capacity", &s.capacity)
            .finish()
    }
}

fn bad(msg: impl fmt::Display) -> Error {
    Error::invalid_input(
        "session",
        "",
        format!("invalid session token: {msg}; start a new session with Session::new()"),
    )
}

/// FNV-1a over entity name, a separator, and the key's tagged text: stable
/// across processes and versions of Rust.
fn slot(entity: &str, key: &Key) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(entity.as_bytes());
    feed(&[0]);
    match key {
        Key::Str(s) => {
            feed(b"s");
            feed(s.as_bytes())
        }
        Key::Int(i) => {
            feed(b"i");
            feed(&i.to_be_bytes())
        }
        Key::Uuid(u) => {
            feed(b"u");
            feed(u.as_bytes())
        }
    }
    h
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes
            .get(*at)
            .ok_or_else(|| bad("it ends in the middle of a number"))?;
        *at += 1;
        v |= u64::from(b & 0x7f)
            .checked_shl(shift)
            .filter(|x| x >> shift == u64::from(b & 0x7f))
            .ok_or_else(|| bad("a number is too large"))?;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(bad("a number is too long"))
}

impl Session {
    /// A new, empty session remembering [`DEFAULT_SESSION_KEYS`] keys.
    ///
    /// ```
    /// assert!(polyrouter::router::Session::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_SESSION_KEYS)
    }

    /// A new session remembering up to `capacity` keys (clamped to
    /// 1..=[`MAX_SESSION_KEYS`]).
    ///
    /// ```
    /// assert_eq!(polyrouter::router::Session::with_capacity(4).capacity(), 4);
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Session {
            state: Arc::new(Mutex::new(State {
                capacity: capacity.clamp(1, MAX_SESSION_KEYS),
                entries: Vec::new(),
            })),
        }
    }

    /// How many keys this session may remember.
    ///
    /// ```
    /// assert_eq!(polyrouter::router::Session::new().capacity(), polyrouter::router::DEFAULT_SESSION_KEYS);
    /// ```
    pub fn capacity(&self) -> usize {
        self.state.lock().capacity
    }

    /// How many keys it remembers now.
    ///
    /// ```
    /// assert_eq!(polyrouter::router::Session::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// True when it remembers no key.
    ///
    /// ```
    /// assert!(polyrouter::router::Session::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn update(&self, entity: &str, key: &Key, f: impl FnOnce(&mut Entry)) {
        let slot = slot(entity, key);
        let mut s = self.state.lock();
        let mut entry = match s.entries.iter().position(|e| e.slot == slot) {
            Some(i) => s.entries.remove(i),
            None => Entry {
                slot,
                written: 0,
                seen: 0,
            },
        };
        f(&mut entry);
        s.entries.push(entry);
        let cap = s.capacity;
        if s.entries.len() > cap {
            let extra = s.entries.len() - cap;
            s.entries.drain(..extra);
        }
    }

    fn entry(&self, entity: &str, key: &Key) -> Option<Entry> {
        let slot = slot(entity, key);
        self.state
            .lock()
            .entries
            .iter()
            .find(|e| e.slot == slot)
            .copied()
    }

    /// Records that this session wrote `version` of a key (called by the
    /// repository on every write; [`u64::MAX`] records a delete).
    ///
    /// ```
    /// use polyrouter::{router::Session, Key};
    /// let s = Session::new();
    /// s.record_write("user", &Key::from("u1"), 3);
    /// assert_eq!(s.written("user", &Key::from("u1")), 3);
    /// ```
    pub fn record_write(&self, entity: &str, key: &Key, version: u64) {
        self.update(entity, key, |e| {
            // The latest write is what must be visible (after a delete and
            // a re-insert, versions start again at 1).
            e.written = version;
            if version != DELETED {
                e.seen = e.seen.max(version);
            }
        });
    }

    /// Records that this session was shown `version` of a key.
    ///
    /// ```
    /// use polyrouter::{router::Session, Key};
    /// let s = Session::new();
    /// s.record_seen("user", &Key::from("u1"), 5);
    /// s.record_seen("user", &Key::from("u1"), 2);
    /// assert_eq!(s.seen("user", &Key::from("u1")), 5);
    /// ```
    pub fn record_seen(&self, entity: &str, key: &Key, version: u64) {
        if version == 0 {
            return;
        }
        self.update(entity, key, |e| e.seen = e.seen.max(version));
    }

    /// The highest version of a key this session wrote (0: none remembered).
    ///
    /// ```
    /// assert_eq!(polyrouter::router::Session::new().written("user", &polyrouter::Key::from(1i64)), 0);
    /// ```
    pub fn written(&self, entity: &str, key: &Key) -> u64 {
        self.entry(entity, key).map_or(0, |e| e.written)
    }

    /// The highest version of a key this session wrote or saw (0: none remembered).
    ///
    /// ```
    /// assert_eq!(polyrouter::router::Session::new().seen("user", &polyrouter::Key::from(1i64)), 0);
    /// ```
    pub fn seen(&self, entity: &str, key: &Key) -> u64 {
        self.entry(entity, key).map_or(0, |e| e.seen)
    }

    /// The session as a compact URL- and cookie-safe string:
    /// `s1.` + unpadded base64url of (capacity, then per key: hash,
    /// written, seen as varints).
    ///
    /// ```
    /// use polyrouter::{router::Session, Key};
    /// let s = Session::new();
    /// s.record_write("user", &Key::from("u1"), 2);
    /// let t = s.to_token();
    /// assert!(t.starts_with("s1.") && t.len() < 40, "{t}");
    /// assert_eq!(Session::parse(&t).unwrap().written("user", &Key::from("u1")), 2);
    /// ```
    pub fn to_token(&self) -> String {
        let s = self.state.lock();
        let mut bytes = Vec::with_capacity(2 + s.entries.len() * 24);
        put_varint(&mut bytes, s.capacity as u64);
        for e in &s.entries {
            bytes.extend_from_slice(&e.slot.to_be_bytes());
            put_varint(&mut bytes, e.written);
            put_varint(&mut bytes, e.seen);
        }
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses a token made by [`to_token`](Self::to_token); anything else
    /// (wrong prefix, bad base64, truncated, too many keys) is
    /// [`Error::InvalidInput`] saying what is wrong.
    ///
    /// ```
    /// use polyrouter::router::Session;
    /// assert!(Session::parse("s1.!!").unwrap_err().to_string().contains("base64"));
    /// ```
    pub fn parse(token: &str) -> Result<Session> {
        let max_len = PREFIX.len() + (4 + MAX_SESSION_KEYS * 28) * 4 / 3 + 4;
        if token.len() > max_len {
            return Err(bad(format!(
                "it is {} bytes long; a token is at most {max_len}",
                token.len()
            )));
        }
        let body = token
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad(format!("it does not start with `{PREFIX}`")))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| bad(format!("it is not unpadded base64url ({e})")))?;
        let mut at = 0;
        let capacity = get_varint(&bytes, &mut at)?;
        if capacity == 0 || capacity > MAX_SESSION_KEYS as u64 {
            return Err(bad(format!(
                "capacity {capacity} is outside 1..={MAX_SESSION_KEYS}"
            )));
        }
        let mut entries = Vec::new();
        while at < bytes.len() {
            let slot_bytes: [u8; 8] = bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| bad("it ends in the middle of a key"))?;
            at += 8;
            let written = get_varint(&bytes, &mut at)?;
            let seen = get_varint(&bytes, &mut at)?;
            entries.push(Entry {
                slot: u64::from_be_bytes(slot_bytes),
                written,
                seen,
            });
        }
        if entries.len() > capacity as usize {
            return Err(bad(format!(
                "it holds {} keys but its capacity is {capacity}",
                entries.len()
            )));
        }
        Ok(Session {
            state: Arc::new(Mutex::new(State {
                capacity: capacity as usize,
                entries,
            })),
        })
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_token())
    }
}

impl std::str::FromStr for Session {
    type Err = Error;
    fn from_str(s: &str) -> Result<Session> {
        Session::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recent_keys() {
        let s = Session::with_capacity(3);
        for i in 0..5i64 {
            s.record_write("t", &Key::from(i), 1);
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.written("t", &Key::from(0i64)), 0);
        assert_eq!(s.written("t", &Key::from(4i64)), 1);
        // Using an old key makes it the most recent again.
        s.record_seen("t", &Key::from(2i64), 9);
        s.record_write("t", &Key::from(5i64), 1);
        assert_eq!(s.seen("t", &Key::from(2i64)), 9);
        assert_eq!(s.written("t", &Key::from(3i64)), 0);
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let s = Session::new();
        s.record_write("user", &Key::from("a"), 7);
        s.record_seen("user", &Key::from("b"), 300);
        s.record_write("order", &Key::from(9i64), DELETED);
        let back = Session::parse(&s.to_token()).unwrap();
        assert_eq!(back.written("user", &Key::from("a")), 7);
        assert_eq!(back.seen("user", &Key::from("b")), 300);
        assert_eq!(back.written("order", &Key::from(9i64)), DELETED);
        assert_eq!(back.written("user", &Key::from("b")), 0);
        let token = s.to_token();
        for garbage in [
            "",
            "s2.AAAA",
            "s1.",
            "s1.@@@",
            &token[..token.len() - 3],
            &"s1.".repeat(5000),
        ] {
            let e = Session::parse(garbage).unwrap_err();
            assert!(matches!(e, Error::InvalidInput { .. }), "{garbage}: {e}");
            assert!(e.to_string().contains("invalid session token"), "{e}");
        }
        // Capacity 0 and too many keys are refused.
        let zero = format!("s1.{}", URL_SAFE_NO_PAD.encode([0u8]));
        assert!(Session::parse(&zero).is_err());
    }
}
