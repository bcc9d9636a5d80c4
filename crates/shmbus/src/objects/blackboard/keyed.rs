//! Keyed blackboards: a fixed set of named keys, each its own latest-value board.
//!
//! # Layout (after the 128-byte header; `K` keys, the header's `max_slots`)
//!
//! | offset                | what                                                   |
//! |----------------------:|--------------------------------------------------------|
//! |                   128 | the key table: `K` entries of 64 bytes (`len: u32`, then the key's bytes), written once by the creator before the object is ready; `T = ceil(64 × K / 128) × 128` bytes |
//! |               128 + T | `K` control blocks of 256 bytes, one per key (the plain board's) |
//! |         128 + T + 256 × K | `K` × `copies` copies of a value, each `capacity` rounded up to 64 |
//!
//! Each key is a board of its own (see [`crate::protocol::latch`]): its own version,
//! writer lock and sleepers, so writers of different keys never contend. The opener reads
//! the key table once, validates it (lengths, UTF-8, no duplicates) and looks keys up in a
//! private map afterwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::board_spec;
use super::core::{on_update_from, Core};
use crate::error::{Error, Result};
use crate::objects::handler::{HandlerGuard, Update};
use crate::segment::header::HEADER_SIZE;
use crate::segment::options::Options;
use crate::segment::Segment;
use crate::sync::{AtomicU32, AtomicU8, Ordering::Relaxed};
use crate::Kind;

/// Bytes of one key table entry.
pub(crate) const KEY_ENTRY: usize = crate::protocol::layout::KEY_ENTRY as usize;
/// Longest key, in bytes.
const MAX_KEY_LEN: usize = KeyedBlackboard::MAX_KEY_LEN;
/// Most keys a keyed board may have.
const MAX_KEYS: usize = KeyedBlackboard::MAX_KEYS;

/// A named set of latest-value boards, one per key, with the keys fixed at creation.
///
/// Each key behaves like a [`Blackboard`](crate::Blackboard): one writer at a time, any
/// number of readers that never see a torn value and never wait for the writer, a version
/// per write, `wait_newer` and an update handler. Writers of different keys never contend.
/// [`key`](Self::key) gives a cheap handle to one key ([`BoardKey`]) that skips the
/// lookup on every call.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::KeyedBlackboard;
///
/// let board = KeyedBlackboard::create("doc.keyed.robot", &["pose", "battery"], 64)?;
/// let reader = KeyedBlackboard::open("doc.keyed.robot")?; // in another process, typically
/// board.write("battery", b"87%")?;
/// assert_eq!(reader.read("battery")?, (1, b"87%".to_vec()));
/// assert_eq!(reader.read("pose")?, (0, Vec::new())); // never written
///
/// let pose = board.key("pose")?; // no lookup per call
/// pose.write(b"x=1.0 y=2.5")?;
/// assert_eq!(reader.version("pose")?, 1);
/// assert!(matches!(reader.read("speed"), Err(shmbus::Error::UnknownKey { .. })));
/// assert_eq!(reader.keys(), ["pose", "battery"]);
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct KeyedBlackboard {
    inner: Arc<Keyed>,
}

#[derive(Debug)]
struct Keyed {
    core: Arc<Core>,
    keys: Vec<String>,
    index: HashMap<String, usize>,
}

/// One key of a [`KeyedBlackboard`]: the same operations as a
/// [`Blackboard`](crate::Blackboard), without a lookup per call. Cheap to clone.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::KeyedBlackboard;
/// use std::time::Duration;
///
/// let board = KeyedBlackboard::create("doc.keyed.key", &["setpoint"], 16)?;
/// let setpoint = board.key("setpoint")?;
/// let v = setpoint.write(b"42")?;
/// assert_eq!(setpoint.read()?, (v, b"42".to_vec()));
/// assert_eq!(setpoint.wait_newer(v, Some(Duration::from_millis(1)))?, None);
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct BoardKey {
    board: KeyedBlackboard,
    index: usize,
}

/// Why `key` cannot be a key, if it cannot.
fn check_key(key: &str) -> std::result::Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!(
            "key {key:?} is {} bytes long: a key has 1 to {MAX_KEY_LEN} bytes",
            key.len()
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(format!("key {key:?} contains a control character"));
    }
    Ok(())
}

/// Why this key set cannot make a board, if it cannot.
fn check_keys(keys: &[&str]) -> std::result::Result<(), String> {
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!(
            "{} keys: a keyed blackboard has 1 to {MAX_KEYS}",
            keys.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        check_key(key)?;
        if !seen.insert(*key) {
            return Err(format!("key {key:?} is given twice"));
        }
    }
    Ok(())
}

/// Writes the key table of a board being created (before it is marked ready, which
/// publishes these relaxed stores with a Release store).
fn write_table(seg: &Segment, keys: &[&str]) {
    for (k, key) in keys.iter().enumerate() {
        let entry = HEADER_SIZE + k * KEY_ENTRY;
        seg.at::<AtomicU32>(entry).store(key.len() as u32, Relaxed);
        let bytes = seg.slice::<AtomicU8>(entry + 4, key.len());
        crate::protocol::shared_bytes::store_bytes_u8(bytes, key.as_bytes());
    }
}

/// Reads and validates the key table of an opened board.
fn read_table(seg: &Segment) -> Result<Vec<String>> {
    let count = seg.header().fields.max_slots as usize;
    let corrupt = |reason: String| Error::Corrupt {
        name: seg.name().describe(),
        reason,
    };
    let mut keys = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::new();
    for k in 0..count {
        let entry = HEADER_SIZE + k * KEY_ENTRY;
        let len = seg.at::<AtomicU32>(entry).load(Relaxed) as usize;
        if len == 0 || len > MAX_KEY_LEN {
            return Err(corrupt(format!("key {k} claims {len} bytes")));
        }
        let mut bytes = vec![0; len];
        crate::protocol::shared_bytes::load_bytes_u8(
            seg.slice::<AtomicU8>(entry + 4, len),
            &mut bytes,
        );
        let key = String::from_utf8(bytes).map_err(|_| corrupt(format!("key {k} is not UTF-8")))?;
        check_key(&key).map_err(corrupt)?;
        if !seen.insert(key.clone()) {
            return Err(corrupt(format!("key {key:?} appears twice")));
        }
        keys.push(key);
    }
    Ok(keys)
}

impl KeyedBlackboard {
    /// Most keys a keyed blackboard may have.
    pub const MAX_KEYS: usize = crate::protocol::layout::MAX_BOARD_KEYS as usize;

    /// Longest key, in bytes (a key is UTF-8 without control characters).
    pub const MAX_KEY_LEN: usize = KEY_ENTRY - 4;

    /// Creates a keyed blackboard with these keys (1 to 4096, each 1 to 60 bytes of UTF-8
    /// without control characters, all different), each holding values of up to
    /// `capacity` bytes; removed when the last clone of this handle is dropped unless
    /// [`Options::persistent`]. Every key starts at version 0, with no value.
    pub fn create(name: &str, keys: &[&str], capacity: usize) -> Result<KeyedBlackboard> {
        Self::create_with(name, keys, capacity, &Options::default())
    }

    /// [`KeyedBlackboard::create`] with options.
    pub fn create_with(
        name: &str,
        keys: &[&str],
        capacity: usize,
        opts: &Options,
    ) -> Result<KeyedBlackboard> {
        check_keys(keys).map_err(|reason| Error::InvalidConfig { reason })?;
        let spec = board_spec(capacity, keys.len() as u32);
        let seg = Segment::create_kind_init(
            opts.name(name)?,
            Kind::KeyedBlackboard,
            spec,
            opts,
            &|seg| write_table(seg, keys),
        )?;
        KeyedBlackboard::from_segment(seg, opts)
    }

    /// Opens an existing keyed blackboard.
    pub fn open(name: &str) -> Result<KeyedBlackboard> {
        Self::open_with(name, &Options::default())
    }

    /// [`KeyedBlackboard::open`] with options.
    pub fn open_with(name: &str, opts: &Options) -> Result<KeyedBlackboard> {
        let seg = Segment::open_kind(opts.name(name)?, Some(Kind::KeyedBlackboard), opts, true)?;
        KeyedBlackboard::from_segment(seg, opts)
    }

    /// Opens the keyed blackboard, or creates it with `keys` and `capacity` (race-free).
    /// An existing board keeps its own keys and capacity.
    pub fn create_or_open(name: &str, keys: &[&str], capacity: usize) -> Result<KeyedBlackboard> {
        Self::create_or_open_with(name, keys, capacity, &Options::default())
    }

    /// [`KeyedBlackboard::create_or_open`] with options.
    pub fn create_or_open_with(
        name: &str,
        keys: &[&str],
        capacity: usize,
        opts: &Options,
    ) -> Result<KeyedBlackboard> {
        check_keys(keys).map_err(|reason| Error::InvalidConfig { reason })?;
        let spec = board_spec(capacity, keys.len() as u32);
        let seg = Segment::create_or_open_kind_init(
            opts.name(name)?,
            Kind::KeyedBlackboard,
            spec,
            opts,
            &|seg| write_table(seg, keys),
        )?;
        KeyedBlackboard::from_segment(seg, opts)
    }

    fn from_segment(seg: Segment, opts: &Options) -> Result<KeyedBlackboard> {
        let keys = read_table(&seg)?;
        let index = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        Ok(KeyedBlackboard {
            inner: Arc::new(Keyed {
                core: Arc::new(Core::new(seg, opts)),
                keys,
                index,
            }),
        })
    }

    /// The board's name.
    pub fn name(&self) -> &crate::Name {
        self.inner.core.seg.name()
    }

    /// The largest value each key holds, in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.core.capacity
    }

    /// The keys, in the order they were given at creation.
    pub fn keys(&self) -> &[String] {
        &self.inner.keys
    }

    /// A handle to one key; [`Error::UnknownKey`] if the board has no such key.
    pub fn key(&self, key: &str) -> Result<BoardKey> {
        match self.inner.index.get(key) {
            Some(&index) => Ok(BoardKey {
                board: self.clone(),
                index,
            }),
            None => Err(Error::UnknownKey {
                name: self.name().describe(),
                key: key.to_owned(),
            }),
        }
    }

    /// Replaces the value of `key`; returns its version (1 for its first write). See
    /// [`Blackboard::write`](crate::Blackboard::write).
    pub fn write(&self, key: &str, data: &[u8]) -> Result<u64> {
        self.key(key)?.write(data)
    }

    /// The current value of `key` and its version (0 and no bytes before its first write).
    pub fn read(&self, key: &str) -> Result<(u64, Vec<u8>)> {
        self.key(key)?.read()
    }

    /// Copies the current value of `key` into `buf`; returns `(version, length)`.
    pub fn read_into(&self, key: &str, buf: &mut [u8]) -> Result<(u64, usize)> {
        self.key(key)?.read_into(buf)
    }

    /// The version of `key`'s current value (0 before its first write).
    pub fn version(&self, key: &str) -> Result<u64> {
        Ok(self.key(key)?.version())
    }

    /// Waits until `key`'s version is newer than `version`; `None` on timeout.
    pub fn wait_newer(
        &self,
        key: &str,
        version: u64,
        timeout: Option<Duration>,
    ) -> Result<Option<u64>> {
        self.key(key)?.wait_newer(version, timeout)
    }
}

impl BoardKey {
    /// The key.
    pub fn key(&self) -> &str {
        &self.board.inner.keys[self.index]
    }

    /// The board it belongs to.
    pub fn board(&self) -> &KeyedBlackboard {
        &self.board
    }

    fn core(&self) -> &Core {
        &self.board.inner.core
    }

    fn what(&self) -> String {
        format!("key {:?} of {}", self.key(), self.board.name().describe())
    }

    /// Replaces the value; returns its version. Fails with
    /// [`Error::TooLarge`] beyond the capacity, [`Error::Busy`] when another live writer
    /// of this key holds it for more than a second.
    pub fn write(&self, data: &[u8]) -> Result<u64> {
        self.core().write(self.index, data, || self.what())
    }

    /// The current value and its version (0 and no bytes before the first write).
    pub fn read(&self) -> Result<(u64, Vec<u8>)> {
        let mut buf = vec![0; self.core().capacity];
        let (version, len) = self.read_into(&mut buf)?;
        buf.truncate(len);
        Ok((version, buf))
    }

    /// Copies the current value into `buf`; returns `(version, length)`.
    pub fn read_into(&self, buf: &mut [u8]) -> Result<(u64, usize)> {
        self.core().read_into(self.index, buf, || self.what())
    }

    /// The version of the current value (0 before the first write). Never waits.
    pub fn version(&self) -> u64 {
        self.core().latch(self.index).version()
    }

    /// What a `WaitSet` keeps of this key.
    pub(crate) fn waitable(&self) -> super::core::BoardWaitable {
        super::core::BoardWaitable::new(self.board.inner.core.clone(), self.index)
    }

    /// Waits until the version is newer than `version`; returns it, or `None` when
    /// `timeout` passes first (`None` waits forever).
    pub fn wait_newer(&self, version: u64, timeout: Option<Duration>) -> Result<Option<u64>> {
        Ok(self.core().wait_newer(self.index, version, timeout))
    }

    /// Runs `handler` on a background thread for each version of this key written from
    /// now on (see [`Blackboard::on_update`](crate::Blackboard::on_update)).
    pub fn on_update<F>(&self, handler: F) -> Result<HandlerGuard>
    where
        F: FnMut(Update<'_>) + Send + 'static,
    {
        self.on_update_from(self.version(), handler)
    }

    /// Like [`on_update`](Self::on_update) but for every version after `version`.
    pub fn on_update_from<F>(&self, version: u64, handler: F) -> Result<HandlerGuard>
    where
        F: FnMut(Update<'_>) + Send + 'static,
    {
        on_update_from(
            self.board.inner.core.clone(),
            self.index,
            version,
            self.what(),
            handler,
        )
    }
}

/// Live state for `info`: each key with its board's state.
pub(crate) fn live_state(seg: &Segment) -> Result<Vec<(String, super::BoardState)>> {
    Ok(read_table(seg)?
        .into_iter()
        .enumerate()
        .map(|(i, key)| (key, super::board_state(seg, i)))
        .collect())
}
