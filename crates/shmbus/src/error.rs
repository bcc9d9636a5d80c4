//! The crate's one error type.

use std::io;
use std::time::Duration;

use crate::kind::Kind;

/// Shorthand for `Result<T, shmbus::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, each with a message that says what to do about it.
///
/// `name` fields hold the object's name quoted as messages show it, with its namespace
/// when there is one: `` `imu` `` or `` `imu` in namespace `test` ``. The errors a busy
/// loop meets (`Empty`, `Full`, `Timeout`, `Lagged`) carry no name, so returning them costs
/// nothing: the caller knows which handle it asked.
///
/// ```
/// # shmbus::doctest_namespace();
/// let err = shmbus::Blackboard::open("doc.error.missing").unwrap_err();
/// assert!(matches!(err, shmbus::Error::NotFound { .. }));
/// assert!(err.to_string().contains("shmbus ls"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name breaks the naming rules.
    #[error(
        "invalid name {name}: {reason} (names are 1 to 200 characters of A-Z a-z 0-9 . _ - \
         and do not start with `.`)"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// The namespace breaks the naming rules.
    #[error(
        "invalid namespace `{namespace}`: {reason} (namespaces are 1 to 32 characters of \
         A-Z a-z 0-9 _ -; check SHMBUS_NAMESPACE)"
    )]
    InvalidNamespace {
        /// The rejected namespace.
        namespace: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// No object of that name exists.
    #[error(
        "no shmbus object {name}: create it first, or check the name and SHMBUS_NAMESPACE \
         (`shmbus ls` lists what exists)"
    )]
    NotFound {
        /// The missing object.
        name: String,
    },

    /// `create` found an object of that name already.
    #[error("{name} already exists: open it instead, or remove it first with `shmbus rm`")]
    AlreadyExists {
        /// The existing object.
        name: String,
    },

    /// The operating system refused access.
    #[error(
        "permission denied to {action} {name}: it belongs to uid {owner} with mode {mode:04o}; \
         run as that user, or have the creator pass a wider mode (e.g. --mode 0666)"
    )]
    PermissionDenied {
        /// The object.
        name: String,
        /// What was attempted ("open", "remove", ...).
        action: &'static str,
        /// Owner uid of the object, when known (`u32::MAX` otherwise).
        owner: u32,
        /// Permission bits of the object, when known.
        mode: u32,
    },

    /// The object belongs to a user this process does not trust: by default only objects
    /// of our own effective uid are opened (see [`crate::Options::allow_owner`]).
    #[error(
        "{name} belongs to uid {owner}, not to uid {expected}: someone else may have created \
         it first (check with `shmbus ls`); if you trust uid {owner}, allow it with \
         `Options::allow_owner({owner})` (`shmbus_options_allow_owner` in C) or \
         `--allow-owner {owner}`"
    )]
    UntrustedOwner {
        /// The object.
        name: String,
        /// Its owner.
        owner: u32,
        /// The uid we accept (our own, or the one [`crate::Options::require_owner`] names).
        expected: u32,
    },

    /// Something other than a regular file sits under the object's name: a symbolic link,
    /// FIFO or socket someone planted. It is never followed or opened for use.
    #[error(
        "{name} is {found}, not a shmbus object: shmbus never follows or uses one (someone \
         may be trying to redirect you); remove it with `shmbus rm` if it is yours, or pick \
         another name"
    )]
    NotRegularFile {
        /// The object.
        name: String,
        /// What it is ("a symbolic link", "a FIFO", ...).
        found: &'static str,
    },

    /// The shared-memory filesystem has no room for the object.
    #[error(
        "no room in /dev/shm for {name} ({size} bytes): free space (`shmbus gc`, `df -h \
         /dev/shm`), create it smaller, or enlarge /dev/shm (`mount -o remount,size=...`)"
    )]
    NoSpace {
        /// The object.
        name: String,
        /// The size it needs, in bytes.
        size: u64,
    },

    /// The object's memory is not all allocated (a sparse file): using it could allocate
    /// pages when /dev/shm is full, which kills the process with `SIGBUS`. shmbus allocates
    /// every page at creation, so such an object was made by something else or damaged.
    #[error(
        "{name} is sparse ({allocated} of {size} bytes allocated): it was not made by this \
         shmbus (or was truncated), and using it could crash with SIGBUS; remove it with \
         `shmbus rm` and recreate it"
    )]
    Sparse {
        /// The object.
        name: String,
        /// Its size.
        size: u64,
        /// Bytes allocated to it.
        allocated: u64,
    },

    /// The handle was created or opened by another process (this one is a `fork()` child
    /// of it): it is inert here, so that two processes never drive one participant.
    #[error(
        "{what} belongs to process {owner}, and this is process {pid} (a fork() child): open \
         your own handle in the child (after the fork), or start children with spawn"
    )]
    ForeignProcess {
        /// What the handle is ("the publisher of `imu`", ...).
        what: String,
        /// The process that owns the handle.
        owner: u32,
        /// This process.
        pid: u32,
    },

    /// The object is another kind of shmbus object.
    #[error("{name} is of kind {found}, not {expected}: use the matching command or type")]
    WrongKind {
        /// The object.
        name: String,
        /// The kind asked for.
        expected: Kind,
        /// The kind it is.
        found: Kind,
    },

    /// The object was made by a shmbus with another memory layout.
    #[error(
        "{name} has layout version {found} but this shmbus speaks version {expected}: use the \
         same shmbus version on both sides, or remove and recreate the object"
    )]
    VersionMismatch {
        /// The object.
        name: String,
        /// Layout version in its header.
        found: u32,
        /// Layout version of this library.
        expected: u32,
    },

    /// The object does not start with the shmbus magic number.
    #[error("{name} is not a shmbus object (wrong magic number): pick another name, or remove it")]
    NotShmbus {
        /// The object.
        name: String,
    },

    /// The object is too small to hold what its header promises (or any header at all).
    #[error(
        "{name} is {size} bytes, too small for {needed} bytes of shmbus header and data: it is \
         damaged or still being created; remove it with `shmbus rm` if this persists"
    )]
    TooSmall {
        /// The object.
        name: String,
        /// Its size in bytes.
        size: u64,
        /// The size it needs.
        needed: u64,
    },

    /// The header or the live state holds impossible values.
    #[error("{name} is corrupt: {reason}; remove it with `shmbus rm` and recreate it")]
    Corrupt {
        /// The object.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// The creator has not finished initialising the object.
    #[error(
        "{name} is still being initialised after {waited:?}: if its creator crashed, remove it \
         with `shmbus rm`"
    )]
    NotReady {
        /// The object.
        name: String,
        /// How long we waited.
        waited: Duration,
    },

    /// An existing object was created with another configuration than the one asked for.
    #[error("{name} exists with {found}, not {requested}: open it without options, or remove it")]
    ConfigMismatch {
        /// The object.
        name: String,
        /// The configuration asked for.
        requested: String,
        /// The configuration it has.
        found: String,
    },

    /// A message does not fit.
    #[error(
        "a message of {len} bytes does not fit in {name}, whose capacity is {capacity} bytes: \
         send less, or recreate it with a larger capacity"
    )]
    TooLarge {
        /// The object.
        name: String,
        /// Length of the message.
        len: usize,
        /// What fits.
        capacity: usize,
    },

    /// The caller's buffer is smaller than the value.
    #[error("the value of {name} is {needed} bytes but the buffer holds only {len}: pass a larger buffer")]
    BufferTooSmall {
        /// The object.
        name: String,
        /// The value's length.
        needed: usize,
        /// The buffer's length.
        len: usize,
    },

    /// A writer died in the middle of writing the value, which is therefore lost.
    ///
    /// Not returned since layout version 2: a blackboard keeps the previous value whole in
    /// its own copy while a write is under way, so a dead writer costs readers nothing. The
    /// variant stays so that code (and the C status code) matching on it keeps working.
    #[error(
        "the writer of {name} died in the middle of a write and the value is lost: write a \
         new value"
    )]
    WriterDied {
        /// The object.
        name: String,
    },

    /// A keyed blackboard has no such key.
    #[error(
        "{name} has no key {key:?}: its keys are fixed when it is created (`shmbus info` \
         lists them)"
    )]
    UnknownKey {
        /// The object.
        name: String,
        /// The key asked for.
        key: String,
    },

    /// Another writer holds the object longer than the timeout.
    #[error("{name} stayed busy with another writer for {waited:?}: try again")]
    Busy {
        /// The object.
        name: String,
        /// How long we waited.
        waited: Duration,
    },

    /// A receive handler panicked; its thread stopped.
    #[error("the receive handler of {name} panicked: {message}")]
    HandlerPanicked {
        /// The object the handler listened to.
        name: String,
        /// The panic's message.
        message: String,
    },

    /// A configuration that cannot work (channel shape, object size).
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// The channel already has a live publisher.
    #[error(
        "{name} already has a live publisher: a channel has one publisher at a time (it is \
         taken over automatically if that process dies)"
    )]
    PublisherExists {
        /// The channel.
        name: String,
    },

    /// Every subscriber slot of the channel is taken by a live subscriber.
    #[error("{name} has no free subscriber slot (all {slots} are in use): recreate it with more")]
    TooManySubscribers {
        /// The channel.
        name: String,
        /// Slots it has.
        slots: u32,
    },

    /// [`crate::Publisher::commit_held`] found no held loan.
    #[error(
        "the publisher of {name} holds no loan to commit: take one first (hold_loan, \
         shmbus_publisher_loan); a send or another loan in between discards it"
    )]
    NoLoan {
        /// The channel.
        name: String,
    },

    /// A back-pressure channel is full: a subscriber has not consumed what would be
    /// overwritten.
    #[error(
        "the channel is full: its slowest subscriber has not caught up; retry, or use send to wait"
    )]
    Full,

    /// No message is waiting (non-blocking receive).
    #[error("no message is waiting")]
    Empty,

    /// A blocking call gave up.
    #[error("timed out")]
    Timeout,

    /// The publisher closed the stream and every message has been received.
    #[error("{name} was closed by its publisher and every message has been received")]
    Disconnected {
        /// The channel.
        name: String,
    },

    /// The publisher died (without closing) and every message it sent has been received.
    #[error(
        "the publisher of {name} died: every message it sent has been received; a new \
         publisher may take over"
    )]
    PublisherGone {
        /// The channel.
        name: String,
    },

    /// The subscriber fell behind a lossy channel by more than the ring holds.
    #[error("lagged: {lost} messages lost; the next receive continues with the oldest kept")]
    Lagged {
        /// Exactly how many messages were overwritten before they could be read.
        lost: u64,
    },

    /// The operation needs the other channel mode.
    #[error("{name} is a {mode} channel; {what}")]
    WrongMode {
        /// The channel.
        name: String,
        /// Its mode.
        mode: &'static str,
        /// What needed the other mode.
        what: &'static str,
    },

    /// An operating-system call failed for another reason.
    #[error("{action} {name} failed: {source}")]
    Os {
        /// The object.
        name: String,
        /// What was attempted.
        action: &'static str,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}
