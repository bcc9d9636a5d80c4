//! Options shared by every kind of object.

use std::time::Duration;

use crate::error::Result;
use crate::name::Name;

/// How to create or open an object: namespace, permissions, lifetime, waiting.
///
/// ```
/// # shmbus::doctest_namespace();
/// use shmbus::{Blackboard, Options};
/// let opts = Options::new().mode(0o640).persistent(false);
/// let board = Blackboard::create_with("doc.options.board", 128, &opts)?;
/// assert_eq!(board.capacity(), 128);
/// # Ok::<(), shmbus::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) namespace: Option<Option<String>>,
    pub(crate) mode: u32,
    pub(crate) persistent: bool,
    pub(crate) open_timeout: Duration,
    pub(crate) spin: Duration,
    pub(crate) owner: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: None,
            mode: 0o600,
            persistent: false,
            open_timeout: Duration::from_secs(1),
            spin: Duration::from_micros(20),
            owner: None,
        }
    }
}

impl Options {
    /// The defaults: namespace from `SHMBUS_NAMESPACE`, mode `0600`, removed when the creating
    /// handle is dropped, wait up to 1 s for a creator to finish, spin 20 µs before sleeping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `namespace` (`None`: the unnamed default one) instead of `SHMBUS_NAMESPACE`.
    pub fn namespace(mut self, namespace: Option<&str>) -> Self {
        self.namespace = Some(namespace.map(str::to_owned));
        self
    }

    /// Permission bits for objects this call creates (default `0o600`: owner only).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// When `true`, an object this handle creates outlives it (remove it with
    /// [`crate::Segment::remove`] or `shmbus rm`). Default `false`: the creator removes it
    /// on drop, as the last user of a Windows named object would.
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// How long `open` waits for a creator that is still initialising the object.
    pub fn open_timeout(mut self, timeout: Duration) -> Self {
        self.open_timeout = timeout;
        self
    }

    /// How long a blocking wait spins before it sleeps in the kernel. Spinning costs CPU but
    /// answers in nanoseconds; a futex sleep and wake costs microseconds.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Only open objects owned by `uid` ([`crate::Error::UntrustedOwner`] otherwise).
    ///
    /// Anyone allowed to write `/dev/shm` can create an object under a name you meant to
    /// create yourself and wait for you to open it; a process that handles sensitive data
    /// should insist on its own uid (or the uid of the creator it trusts).
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::{Blackboard, Options};
    /// let _mine = Blackboard::create("doc.options.owner", 8)?;
    /// let uid = shmbus::inspect(_mine.name())?.owner;
    /// Blackboard::open_with("doc.options.owner", &Options::new().require_owner(uid))?;
    /// let other = Blackboard::open_with("doc.options.owner", &Options::new().require_owner(uid + 1));
    /// assert!(matches!(other, Err(shmbus::Error::UntrustedOwner { .. })));
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn require_owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }

    /// Resolves `name` in the configured namespace.
    pub(crate) fn name(&self, name: &str) -> Result<Name> {
        match &self.namespace {
            Some(ns) => Name::with_namespace(name, ns.as_deref()),
            None => Name::new(name),
        }
    }
}
