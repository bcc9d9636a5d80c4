//! Options shared by every kind of object.

use std::time::Duration;

use crate::error::Result;
use crate::segment::name::Name;

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
    pub(crate) wait_for_creation: Duration,
    pub(crate) spin: Duration,
    pub(crate) owners: Owners,
}

/// Whose objects an open accepts (see [`Options::allow_owner`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Owners {
    /// Our effective uid, and these.
    #[default]
    Me,
    /// Our effective uid, and these.
    MeAnd(Vec<u32>),
    /// Exactly these uids ([`Options::require_owner`], then [`Options::allow_owner`]).
    Only(Vec<u32>),
    /// Anyone (read-only inspection: `ls`, `info`).
    Any,
}

impl Owners {
    /// Whether an object owned by `owner` may be opened by a process with effective uid `me`.
    pub(crate) fn accepts(&self, owner: u32, me: u32) -> bool {
        match self {
            Owners::Me => owner == me,
            Owners::MeAnd(uids) => owner == me || uids.contains(&owner),
            Owners::Only(uids) => uids.contains(&owner),
            Owners::Any => true,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: None,
            mode: 0o600,
            persistent: false,
            open_timeout: Duration::from_secs(1),
            wait_for_creation: Duration::ZERO,
            spin: Duration::from_micros(20),
            owners: Owners::Me,
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

    /// How long `open` waits for an object that does not exist yet to be created (and
    /// finished) by another process, before it reports [`Error::NotFound`]. Zero (the
    /// default): report it at once. The wait is an inotify watch on the shared-memory
    /// directory: no polling, and the open returns as soon as the creator finishes.
    /// `create_or_open` never waits for creation (it creates).
    ///
    /// [`Error::NotFound`]: crate::Error::NotFound
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::{Blackboard, Options};
    /// use std::time::Duration;
    ///
    /// let opts = Options::new().wait_for_creation(Duration::from_secs(5));
    /// let writer = std::thread::spawn(|| {
    ///     std::thread::sleep(Duration::from_millis(50));
    ///     let board = Blackboard::create("doc.options.later", 64)?;
    ///     board.write(b"here")?;
    ///     std::thread::sleep(Duration::from_millis(200)); // keep it alive a while
    ///     Ok::<(), shmbus::Error>(())
    /// });
    /// let board = Blackboard::open_with("doc.options.later", &opts)?; // waits for it
    /// assert_eq!(board.capacity(), 64);
    /// writer.join().unwrap()?;
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn wait_for_creation(mut self, timeout: Duration) -> Self {
        self.wait_for_creation = timeout;
        self
    }

    /// How long a blocking wait spins before it sleeps in the kernel. Spinning costs CPU but
    /// answers in nanoseconds; a futex sleep and wake costs microseconds.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin;
        self
    }

    /// Also open (and create-or-open) objects owned by `uid`, besides our own. May be given
    /// several times.
    ///
    /// By default every open refuses an object that another user owns
    /// ([`crate::Error::UntrustedOwner`]): anyone allowed to write `/dev/shm` can create an
    /// object under a name you meant to create yourself, wait for you to open it and read
    /// (or forge) what you exchange through it. Allow the uid of a creator you trust, e.g. a
    /// service account whose channel you subscribe to.
    ///
    /// ```
    /// # shmbus::doctest_namespace();
    /// use shmbus::{Blackboard, Options};
    /// let mine = Blackboard::create("doc.options.allow", 8)?;
    /// // Our own objects are always accepted; uid 4242 is accepted too from now on.
    /// let opts = Options::new().allow_owner(4242);
    /// Blackboard::open_with("doc.options.allow", &opts)?;
    /// # drop(mine);
    /// # Ok::<(), shmbus::Error>(())
    /// ```
    pub fn allow_owner(mut self, uid: u32) -> Self {
        self.owners = match self.owners {
            Owners::Me => Owners::MeAnd(vec![uid]),
            Owners::MeAnd(mut uids) => {
                uids.push(uid);
                Owners::MeAnd(uids)
            }
            Owners::Only(mut uids) => {
                uids.push(uid);
                Owners::Only(uids)
            }
            Owners::Any => Owners::Any,
        };
        self
    }

    /// Open objects whoever owns them: the check [`allow_owner`](Self::allow_owner)
    /// describes is off. For tools that only look (the CLI's `ls` and `info` use it) or
    /// for objects in a directory only trusted users can write.
    pub fn allow_any_owner(mut self) -> Self {
        self.owners = Owners::Any;
        self
    }

    /// Only open objects owned by `uid` ([`crate::Error::UntrustedOwner`] otherwise), not
    /// even our own: for a process that must talk to exactly one trusted creator.
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
        self.owners = Owners::Only(vec![uid]);
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
