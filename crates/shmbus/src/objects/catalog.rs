//! Finding and describing objects: what `shmbus ls` and `shmbus info` show.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::objects::event::EventMode;
use crate::os::sys;
use crate::segment::header::Kind;
use crate::segment::name::{dir_prefix, Name};
use crate::segment::options::Options;
use crate::segment::Segment;

/// What an object is, who owns it, and (when it can be read) its live state.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The object's name.
    pub name: Name,
    /// Size of the shared-memory object in bytes.
    pub size: u64,
    /// Owner uid.
    pub owner: u32,
    /// Permission bits.
    pub mode: u32,
    /// What the header says, when it could be read and validated.
    pub header: Option<HeaderInfo>,
    /// Why the header could not be read (permission, corruption, version ...).
    pub problem: Option<String>,
    /// Whether its owner lives: for a channel, its publisher or any subscriber; for other
    /// kinds, the creating process. `None` when the header could not be read.
    pub alive: Option<bool>,
}

/// The validated header of an object and its live state.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HeaderInfo {
    /// Kind of object.
    pub kind: Kind,
    /// Layout version (always [`crate::LAYOUT_VERSION`] here: others are refused).
    pub layout_version: u32,
    /// Data capacity in bytes (0 for events).
    pub capacity: u64,
    /// Pid of the creating process.
    pub creator_pid: u32,
    /// When it was created.
    pub created: SystemTime,
    /// Whether the creator asked for it to outlive it.
    pub persistent: bool,
    /// The kind's live state.
    pub state: LiveState,
}

/// Live state of an object, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveState {
    /// A plain segment has no state beyond its bytes.
    Segment,
    /// An event.
    Event {
        /// Manual or auto reset.
        mode: EventMode,
        /// Whether it is set.
        set: bool,
        /// Threads waiting on it now.
        waiters: u32,
        /// The raw state word.
        raw: u32,
    },
    /// A broadcast channel.
    Channel {
        /// Lossy or back-pressure.
        mode: crate::Mode,
        /// Largest message.
        max_message: u64,
        /// Subscriber slots.
        max_subscribers: u32,
        /// Messages published so far.
        published: u64,
        /// Bytes published so far (the ring position).
        tail: u64,
        /// Live subscribers.
        subscribers: u32,
        /// Whether a live publisher holds the channel.
        publisher_alive: bool,
        /// Whether the last publisher closed the stream.
        closed: bool,
    },
    /// A blackboard.
    Blackboard {
        /// Version of the newest complete value (0: never written).
        version: u64,
        /// Length of that value.
        len: u64,
        /// Writer slot holding the write lock (0: none).
        writer: u32,
        /// Threads waiting for a newer version now.
        waiters: u32,
        /// Copies of the value the board keeps (readers copy a complete one while the
        /// writer fills another).
        copies: u32,
        /// Whether a write is under way now (or its writer died in the middle of it: the
        /// next write takes its place).
        writing: bool,
    },
    /// A keyed blackboard: each key's board.
    KeyedBlackboard {
        /// Copies of each value the board keeps.
        copies: u32,
        /// The keys, in creation order, with their state.
        keys: Vec<KeyState>,
    },
}

/// The state of one key of a keyed blackboard.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyState {
    /// The key.
    pub key: String,
    /// Version of its newest complete value (0: never written).
    pub version: u64,
    /// Length of that value.
    pub len: u64,
    /// Writer slot holding its write lock (0: none).
    pub writer: u32,
    /// Threads waiting for a newer version of it now.
    pub waiters: u32,
    /// Whether a write of it is under way now.
    pub writing: bool,
}

/// Lists every shmbus object in `namespace` (`None`: the unnamed default namespace).
///
/// ```
/// # shmbus::doctest_namespace();
/// let ns = std::env::var("SHMBUS_NAMESPACE").ok();
/// let _board = shmbus::Blackboard::create("doc.catalog.listed", 16)?;
/// let all = shmbus::list(ns.as_deref())?;
/// assert!(all.iter().any(|o| o.name.as_str() == "doc.catalog.listed"));
/// # Ok::<(), shmbus::Error>(())
/// ```
pub fn list(namespace: Option<&str>) -> Result<Vec<ObjectInfo>> {
    // Validate the namespace the same way names are.
    let probe = Name::with_namespace("x", namespace)?;
    let prefix = dir_prefix(probe.namespace());
    let entries = sys::list_shm_dir().map_err(|source| Error::Os {
        name: format!("`{}`", sys::SHM_DIR),
        action: "list",
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let Some(user) = entry.strip_prefix(&prefix) else {
            continue;
        };
        // Objects whose names we would not create (made by hand) are skipped.
        let Ok(name) = Name::with_namespace(user, namespace) else {
            continue;
        };
        match inspect(&name) {
            Ok(info) => out.push(info),
            Err(Error::NotFound { .. }) => {} // removed while we looked
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Describes one object. Only a missing object is an error; an unreadable or corrupt one
/// is described with [`ObjectInfo::problem`] set.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::{inspect, Event, EventMode, LiveState, Name};
/// let ev = Event::create("doc.catalog.ev", EventMode::AutoReset)?;
/// ev.set();
/// let info = inspect(ev.name())?;
/// let state = info.header.unwrap().state;
/// assert!(matches!(state, LiveState::Event { set: true, .. }));
/// # Ok::<(), shmbus::Error>(())
/// ```
pub fn inspect(name: &Name) -> Result<ObjectInfo> {
    let stat = sys::stat_shm(name.os_name()).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            name: name.describe(),
        },
        _ => Error::Os {
            name: name.describe(),
            action: "stat",
            source: e,
        },
    })?;
    // Looking is harmless whoever owns the object: `ls` shows everything, and says whose.
    // Another user's object gets no grace for a creation in progress: thousands planted
    // half-made must not make a listing crawl.
    let grace = if stat.uid == sys::euid() {
        Duration::from_millis(100)
    } else {
        Duration::ZERO
    };
    let opts = Options::new()
        .namespace(name.namespace())
        .open_timeout(grace)
        .allow_any_owner();
    // A planted FIFO, link or socket is described, never opened (`open` refuses it too).
    let opened = if stat.file_type == sys::FileType::Regular {
        Segment::open_kind(name.clone(), None, &opts, false)
    } else {
        Err(Error::NotRegularFile {
            name: name.describe(),
            found: stat.file_type.describe(),
        })
    };
    let (header, problem, alive) = match opened.and_then(|seg| Ok((header_info(&seg)?, seg))) {
        Ok((info, seg)) => {
            let alive = owner_alive(&seg, &info);
            (Some(info), None, Some(alive))
        }
        Err(e @ Error::NotFound { .. }) => return Err(e),
        Err(e) => (None, Some(e.to_string()), None),
    };
    Ok(ObjectInfo {
        name: name.clone(),
        size: stat.size,
        owner: stat.uid,
        mode: stat.mode,
        header,
        problem,
        alive,
    })
}

fn owner_alive(seg: &Segment, info: &HeaderInfo) -> bool {
    match info.state {
        LiveState::Channel {
            publisher_alive,
            subscribers,
            ..
        } => publisher_alive || subscribers > 0,
        _ => {
            let f = seg.header().fields;
            sys::process_alive(f.creator_pid, f.creator_start)
        }
    }
}

/// Why `gc` removes an object, if it should.
fn garbage_reason(o: &ObjectInfo) -> Option<&'static str> {
    match (&o.header, o.alive) {
        (Some(h), Some(false)) if h.kind == Kind::Channel => {
            Some("no live publisher or subscriber")
        }
        (Some(h), Some(false)) if !h.persistent => Some("its creator died"),
        (None, _)
            if o.problem
                .as_deref()
                .is_some_and(|p| p.contains("still being initialised")) =>
        {
            Some("its creator never finished creating it")
        }
        _ => None,
    }
}

/// Removes the objects in `namespace` whose owners are all dead: channels with no live
/// publisher or subscriber, other objects whose creator died without removing them (unless
/// created persistent), and objects whose creation never finished. Returns what it removed
/// (or, with `dry_run`, would remove) and why.
///
/// ```
/// # shmbus::doctest_namespace();
/// let ns = std::env::var("SHMBUS_NAMESPACE").ok();
/// let _live = shmbus::Blackboard::create("doc.gc.live", 8)?;
/// let removed = shmbus::gc(ns.as_deref(), false)?;
/// assert!(removed.is_empty()); // our own objects are alive
/// # Ok::<(), shmbus::Error>(())
/// ```
pub fn gc(namespace: Option<&str>, dry_run: bool) -> Result<Vec<(Name, &'static str)>> {
    let mut removed = Vec::new();
    for o in list(namespace)? {
        if let Some(reason) = garbage_reason(&o) {
            if !dry_run {
                match crate::segment::remove_name(&o.name) {
                    Ok(()) => {}
                    // Gone meanwhile, or another user's that we may not remove: not ours
                    // to collect (`ls` still shows it).
                    Err(Error::NotFound { .. } | Error::PermissionDenied { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            removed.push((o.name, reason));
        }
    }
    Ok(removed)
}

/// The header and live state of an opened object; an error when its live state is
/// unreadable (a keyed board's corrupt key table).
fn header_info(seg: &Segment) -> Result<HeaderInfo> {
    let h = seg.header();
    let state = match h.kind {
        Kind::Segment => LiveState::Segment,
        Kind::Event => match crate::objects::event::live_state(seg) {
            Some((mode, set, waiters, raw)) => LiveState::Event {
                mode,
                set,
                waiters,
                raw,
            },
            None => LiveState::Segment,
        },
        Kind::Channel => {
            let c = crate::objects::channel::live_state(seg);
            LiveState::Channel {
                mode: c.mode,
                max_message: c.max_message,
                max_subscribers: c.max_subscribers,
                published: c.published,
                tail: c.tail,
                subscribers: c.subscribers,
                publisher_alive: c.publisher_alive,
                closed: c.closed,
            }
        }
        Kind::Blackboard => {
            let b = crate::objects::blackboard::board_state(seg, 0);
            LiveState::Blackboard {
                version: b.version,
                len: b.len,
                writer: b.writer,
                waiters: b.waiters,
                copies: b.copies,
                writing: b.writing,
            }
        }
        Kind::KeyedBlackboard => {
            let keys = crate::objects::blackboard::keyed_live_state(seg)?;
            LiveState::KeyedBlackboard {
                copies: seg.header().fields.kind_flags(),
                keys: keys
                    .into_iter()
                    .map(|(key, b)| KeyState {
                        key,
                        version: b.version,
                        len: b.len,
                        writer: b.writer,
                        waiters: b.waiters,
                        writing: b.writing,
                    })
                    .collect(),
            }
        }
    };
    Ok(HeaderInfo {
        kind: h.kind,
        layout_version: h.fields.layout_version,
        capacity: h.fields.capacity,
        creator_pid: h.fields.creator_pid,
        created: UNIX_EPOCH + Duration::from_nanos(h.fields.created_unix_ns),
        persistent: h.fields.persistent(),
        state,
    })
}
