"""Type stubs for shmbus: inter-process communication through shared memory on Linux."""

import builtins
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import ClassVar, Literal, NamedTuple, Optional, Union

from typing_extensions import Buffer, Self, final

__version__: str
LAYOUT_VERSION: int

__all__ = [
    "Publisher",
    "Loan",
    "Subscriber",
    "Borrowed",
    "Blackboard",
    "KeyedBlackboard",
    "BoardKey",
    "Event",
    "Duplex",
    "WaitSet",
    "HandlerGuard",
    "HandlerStats",
    "ObjectInfo",
    "list",
    "gc",
    "remove",
    "LAYOUT_VERSION",
    "__version__",
    "Error",
    "Timeout",
    "Disconnected",
    "PublisherGone",
    "Lagged",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "InvalidName",
    "InvalidConfig",
    "TooLarge",
    "WrongKind",
    "WrongMode",
    "VersionMismatch",
    "Corrupt",
    "TooManySubscribers",
    "PublisherExists",
    "UnknownKey",
    "Busy",
    "ForeignProcess",
    "HandlerError",
    "Closed",
]

# ---------------------------------------------------------------------------------------------
# Exceptions: every error is a shmbus.Error; several are also the matching built-in exception.

class Error(Exception):
    """Base class of every shmbus error; ``str(e)`` is the library's message, which says what to do."""

class Timeout(Error, TimeoutError):
    """A wait ran out of time."""

class Disconnected(Error):
    """The publisher closed the channel and every message has been received."""

class PublisherGone(Error):
    """The publisher died (crashed or was killed) without closing the channel."""

class Lagged(Error):
    """Messages were overwritten before this subscriber read them (lossy channels)."""
    def __init__(self, message: str, lost: int = 0) -> None: ...
    lost: int
    """How many messages were lost; the next receive continues with the oldest kept."""

class NotFound(Error, FileNotFoundError):
    """No object of that name exists."""

class AlreadyExists(Error, FileExistsError):
    """An object of that name exists already."""

class PermissionDenied(Error, PermissionError):
    """The operating system refused access, or the object's owner is not trusted."""

class InvalidName(Error, ValueError):
    """A name or namespace that shmbus does not accept."""

class InvalidConfig(Error, ValueError):
    """Arguments that cannot work (sizes, modes, counts)."""

class TooLarge(Error, ValueError):
    """A message or value larger than the object can hold."""

class WrongKind(Error):
    """The name belongs to another kind of object (e.g. a blackboard opened as a channel)."""

class WrongMode(Error):
    """The call needs the other channel mode (e.g. zero-copy receive on a lossy channel)."""

class VersionMismatch(Error):
    """The object was made by an incompatible version of shmbus."""

class Corrupt(Error):
    """The object's shared memory is not valid: remove it and recreate it."""

class TooManySubscribers(Error):
    """Every subscriber slot of the channel is taken."""

class PublisherExists(Error):
    """The channel already has a live publisher."""

class UnknownKey(Error, KeyError):
    """A keyed blackboard has no such key (its keys are fixed when it is created)."""
    def __init__(self, message: str, key: str = "") -> None: ...
    key: str
    """The key asked for."""

class Busy(Error):
    """Another writer held the object for too long."""

class ForeignProcess(Error):
    """The object was opened by another process (this one is a fork child)."""

class HandlerError(Error):
    """A receive handler failed; the callback's exception is the ``__cause__``."""

class Closed(Error, ValueError):
    """The object was closed (or handed to a receive handler)."""

# ---------------------------------------------------------------------------------------------
# Options common to every constructor:
#   namespace    where the object lives (default: $SHMBUS_NAMESPACE, or none)
#   permissions  file mode bits of a created object (default 0o600)
#   persistent   keep a created object when its creator closes it
#   open_timeout when opening, wait up to this many seconds for the object to appear
#                (default 0: NotFound at once)
#   allow_owner  also trust objects owned by this uid (or list of uids); True trusts anyone
#   require_owner trust only objects owned by this uid
#   spin         seconds a blocking wait spins before it sleeps in the kernel (default
#                20 µs): spinning costs CPU but answers without a futex wake-up

_Owner = Union[int, builtins.list[int], bool, None]

@final
class Publisher:
    """The one writer of a broadcast channel.

    A channel is a ring of messages in shared memory. ``mode="lossy"`` (the default) never
    waits: a subscriber that falls a whole ring behind loses the oldest messages and is told
    exactly how many (:class:`Lagged`). ``mode="backpressure"`` never loses: ``send`` waits
    for the slowest subscriber.

    Thread safety: a publisher may be shared by threads; calls are serialised.
    """

    def __new__(
        cls,
        name: str,
        *,
        mode: Literal["lossy", "backpressure"] = "lossy",
        capacity: int = 65536,
        max_message: Optional[int] = None,
        max_subscribers: int = 16,
        namespace: Optional[str] = None,
        permissions: Optional[int] = None,
        persistent: bool = False,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Self:
        """Creates channel ``name`` and becomes its publisher."""
    @staticmethod
    def open(
        name: str,
        *,
        namespace: Optional[str] = None,
        open_timeout: float = 0.0,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Publisher:
        """Becomes the publisher of an existing channel whose publisher has gone."""
    @staticmethod
    def create_or_open(
        name: str,
        *,
        mode: Literal["lossy", "backpressure"] = "lossy",
        capacity: int = 65536,
        max_message: Optional[int] = None,
        max_subscribers: int = 16,
        namespace: Optional[str] = None,
        permissions: Optional[int] = None,
        persistent: bool = False,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Publisher:
        """Opens the channel when it exists with this configuration, else creates it."""
    @property
    def name(self) -> str:
        """The channel's name."""
    @property
    def namespace(self) -> Optional[str]:
        """The channel's namespace."""
    @property
    def mode(self) -> Literal["lossy", "backpressure"]: ...
    @property
    def capacity(self) -> int: ...
    @property
    def max_message(self) -> int: ...
    @property
    def max_subscribers(self) -> int: ...
    @property
    def published(self) -> int:
        """Messages published so far."""
    @property
    def subscriber_count(self) -> int:
        """Subscribers attached now."""
    @property
    def closed(self) -> bool: ...
    def send(self, data: Buffer, timeout: Optional[float] = None) -> None:
        """Publishes ``data`` (bytes, bytearray, memoryview, numpy array: any contiguous buffer).

        Back-pressure: waits for room, at most ``timeout`` seconds (:class:`Timeout`).
        """
    def try_send(self, data: Buffer) -> bool:
        """Publishes ``data`` if there is room now; ``False`` when the ring is full."""
    def loan(self, size: int, timeout: Optional[float] = None) -> Loan:
        """Room for a ``size``-byte message in the ring, written in place (zero-copy).

        Use it as a context manager: the ``with`` target is a writable memoryview, committed
        on a normal exit and discarded when the block raises.
        """
    def wait_subscribers(self, count: int, timeout: Optional[float] = None) -> None:
        """Waits until at least ``count`` subscribers are attached (:class:`Timeout`)."""
    def close(self) -> None:
        """Ends the stream (subscribers get :class:`Disconnected` after the last message)."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class Loan:
    """Room for one message in the ring; see :meth:`Publisher.loan`."""

    @property
    def view(self) -> memoryview:
        """The writable bytes of the message (released on commit or discard)."""
    def __len__(self) -> int: ...
    def commit(self) -> None:
        """Publishes the message. :class:`BufferError` while a view of it is still exported."""
    def discard(self) -> None:
        """Gives the room back without publishing anything."""
    def __enter__(self) -> memoryview: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class Subscriber:
    """One reader of a broadcast channel; every subscriber gets every message.

    Thread safety: a subscriber may be shared by threads; receives are serialised.
    """

    def __new__(
        cls,
        name: str,
        *,
        from_oldest: bool = False,
        namespace: Optional[str] = None,
        open_timeout: float = 0.0,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Self:
        """Subscribes to channel ``name``: from the next message, or with ``from_oldest``
        from the oldest message still in the ring."""
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> Optional[str]: ...
    @property
    def mode(self) -> Literal["lossy", "backpressure"]: ...
    @property
    def capacity(self) -> int: ...
    @property
    def max_message(self) -> int: ...
    @property
    def lost(self) -> int:
        """Messages lost so far (the sum of every :class:`Lagged`)."""
    @property
    def publisher_alive(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def recv(self, timeout: Optional[float] = None) -> bytes:
        """The next message, waiting at most ``timeout`` seconds (forever if ``None``).

        Raises :class:`Timeout`, :class:`Disconnected` (end of stream), :class:`PublisherGone`,
        or :class:`Lagged` (then call again: the next receive continues).
        """
    def try_recv(self) -> Optional[bytes]:
        """The next message if one is waiting, else ``None``."""
    def recv_into(self, buffer: Buffer, timeout: Optional[float] = None) -> int:
        """Receives into a writable buffer and returns the length; a message longer than the
        buffer stays unread (:class:`TooLarge` says how long it is)."""
    def recv_ref(self, timeout: Optional[float] = None) -> Borrowed:
        """The next message without a copy (back-pressure channels): a context manager whose
        target is a read-only memoryview into the ring, released on exit."""
    async def recv_async(self, timeout: Optional[float] = None) -> bytes:
        """:meth:`recv` for asyncio: waits without blocking the event loop; cancelling it
        loses no message."""
    def flush(self) -> None:
        """Publishes this subscriber's progress at once (back-pressure)."""
    def on_message(self, callback: Callable[[bytes], object]) -> HandlerGuard:
        """Calls ``callback(message)`` on a background thread for each message, until the
        stream ends or the guard is stopped. The subscriber is handed to the handler."""
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[bytes]:
        """Messages until the end of the stream; losses are counted in :attr:`lost`."""
    def __next__(self) -> bytes: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class Borrowed:
    """A message borrowed in place; see :meth:`Subscriber.recv_ref`."""

    @property
    def view(self) -> memoryview: ...
    def __len__(self) -> int: ...
    def release(self) -> None:
        """Ends the borrow. :class:`BufferError` while a view of it is still exported
        (e.g. a numpy array made from it: delete that first)."""
    def __enter__(self) -> memoryview: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

class HandlerStats(NamedTuple):
    delivered: int
    lost: int

@final
class HandlerGuard:
    """Keeps a receive handler running; :meth:`stop` ends it and joins its thread."""

    @property
    def running(self) -> bool: ...
    @property
    def delivered(self) -> int: ...
    @property
    def lost(self) -> int: ...
    def stop(self) -> HandlerStats:
        """Stops the handler and waits for its thread; raises :class:`HandlerError` if the
        callback raised (the callback's exception is the ``__cause__``)."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class Blackboard:
    """The latest value of something: one writer at a time, any number of torn-read-free readers."""

    @staticmethod
    def create(
        name: str,
        capacity: int,
        *,
        namespace: Optional[str] = None,
        permissions: Optional[int] = None,
        persistent: bool = False,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Blackboard: ...
    @staticmethod
    def open(
        name: str,
        *,
        namespace: Optional[str] = None,
        open_timeout: float = 0.0,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Blackboard: ...
    @staticmethod
    def create_or_open(
        name: str,
        capacity: int,
        *,
        namespace: Optional[str] = None,
        permissions: Optional[int] = None,
        persistent: bool = False,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Blackboard: ...
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> Optional[str]: ...
    @property
    def capacity(self) -> int: ...
    @property
    def version(self) -> int:
        """The version of the current value (0: never written)."""
    def write(self, data: Buffer) -> int:
        """Replaces the value; returns its new version."""
    def read(self) -> tuple[int, bytes]:
        """The current ``(version, value)``, never torn."""
    def wait_newer(self, version: int, timeout: Optional[float] = None) -> Optional[int]:
        """Waits until the version exceeds ``version``; the new version, or ``None`` on timeout."""
    def on_update(self, callback: Callable[[int, bytes], object]) -> HandlerGuard:
        """Calls ``callback(version, value)`` on a background thread for each new value."""
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class KeyedBlackboard:
    """A fixed set of named keys, each its own latest-value board (as a :class:`Blackboard`):
    its own version, writer, waiters and handler; writers of different keys never contend.

    Keys (1 to 4096 per board, all different, each 1 to 60 bytes of UTF-8 without control
    characters) are chosen at creation and never change; a key the board does not have
    raises :class:`UnknownKey` (also a ``KeyError``). Thread safety: threads may share it.
    """

    @staticmethod
    def create(
        name: str,
        keys: Iterable[str],
        capacity: int,
        *,
        namespace: Optional[str] = None,
        permissions: Optional[int] = None,
        persistent: bool = False,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> KeyedBlackboard:
        """Creates keyed blackboard ``name`` with ``keys``, each holding values of up to
        ``capacity`` bytes; an invalid key set is :class:`InvalidConfig`."""
    @staticmethod
    def open(
        name: str,
        *,
        namespace: Optional[str] = None,
        open_timeout: float = 0.0,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> KeyedBlackboard: ...
    @staticmethod
    def create_or_open(
        name: str,
        keys: Iterable[str],
        capacity: int,
        *,
        namespace: Optional[str] = None,
        permissions: Optional[int] = None,
        persistent: bool = False,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> KeyedBlackboard:
        """Opens the board when it exists (it keeps its own keys and capacity), else creates it."""
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> Optional[str]: ...
    @property
    def capacity(self) -> int:
        """The largest value of each key, in bytes."""
    @property
    def keys(self) -> tuple[str, ...]:
        """The keys, in the order they were given at creation."""
    def key(self, key: str) -> BoardKey:
        """A handle to one key (no lookup per call), closed with this board."""
    def write(self, key: str, data: Buffer) -> int:
        """Replaces the value of ``key``; returns its new version."""
    def read(self, key: str) -> tuple[int, bytes]:
        """The current ``(version, value)`` of ``key``, never torn; ``(0, b"")`` before its first write."""
    def version(self, key: str) -> int:
        """The version of ``key``'s current value (0: never written)."""
    def wait_newer(self, key: str, version: int, timeout: Optional[float] = None) -> Optional[int]:
        """Waits until ``key``'s version exceeds ``version``; the new version, or ``None`` on timeout."""
    def on_update(self, key: str, callback: Callable[[int, bytes], object]) -> HandlerGuard:
        """Calls ``callback(version, value)`` on a background thread for each new value of ``key``."""
    def close(self) -> None:
        """Closes this handle and every :class:`BoardKey` made from it."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class BoardKey:
    """One key of a :class:`KeyedBlackboard`, with the operations of a :class:`Blackboard`;
    see :meth:`KeyedBlackboard.key`. Closed when its board is closed."""

    @property
    def key(self) -> str: ...
    @property
    def board(self) -> KeyedBlackboard: ...
    @property
    def version(self) -> int:
        """The version of the current value (0: never written)."""
    def write(self, data: Buffer) -> int:
        """Replaces the value; returns its new version."""
    def read(self) -> tuple[int, bytes]:
        """The current ``(version, value)``, never torn."""
    def wait_newer(self, version: int, timeout: Optional[float] = None) -> Optional[int]:
        """Waits until the version exceeds ``version``; the new version, or ``None`` on timeout."""
    def on_update(self, callback: Callable[[int, bytes], object]) -> HandlerGuard:
        """Calls ``callback(version, value)`` on a background thread for each new value of this key."""

@final
class Event:
    """A cross-process event that never loses a wake-up."""

    @staticmethod
    def create(
        name: str,
        *,
        manual_reset: bool = False,
        namespace: Optional[str] = None,
        permissions: Optional[int] = None,
        persistent: bool = False,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Event: ...
    @staticmethod
    def open(
        name: str,
        *,
        namespace: Optional[str] = None,
        open_timeout: float = 0.0,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Event: ...
    @staticmethod
    def create_or_open(
        name: str,
        *,
        manual_reset: bool = False,
        namespace: Optional[str] = None,
        permissions: Optional[int] = None,
        persistent: bool = False,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
        spin: Optional[float] = None,
    ) -> Event: ...
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> Optional[str]: ...
    @property
    def manual_reset(self) -> bool: ...
    def set(self) -> None: ...
    def reset(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until set (an auto-reset event is consumed); ``False`` on timeout."""
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class Duplex:
    """One end of a two-way link: a server ``listen``s, one client ``connect``s."""

    @staticmethod
    def listen(name: str, *, namespace: Optional[str] = None, permissions: Optional[int] = None) -> Duplex: ...
    @staticmethod
    def connect(name: str, *, namespace: Optional[str] = None, open_timeout: float = 0.0) -> Duplex: ...
    def send(self, data: Buffer, timeout: Optional[float] = None) -> None: ...
    def recv(self, timeout: Optional[float] = None) -> tuple[bytes, Optional[int]]:
        """The next ``(message, request_id)``; ``request_id`` is set when the peer waits for a reply."""
    def reply(self, request_id: int, data: Buffer, timeout: Optional[float] = None) -> None: ...
    def request(self, data: Buffer, timeout: float) -> bytes:
        """Sends a request and waits for its reply."""
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class WaitSet:
    """Waits on many objects at once, in one thread: subscribers, events, blackboards, keys of
    keyed blackboards, timers, and objects that do not exist yet.

    Each ``attach_*`` method returns a key: an ``int``, numbered from 0 in the order of
    attachment and never reused by the set. :meth:`wait` returns the keys of the ready
    attachments; the caller then receives, reads or opens as usual. Subscribers (a message, a
    loss, the end of the stream, a dead publisher) and manual-reset events are ready for as
    long as that holds; a blackboard or board key once per new version; an auto-reset event
    when the set took a release for the caller; a timer once per period; an awaited object
    once, when it can be opened.

    The set keeps its own view of each attached object: closing the object does not detach
    it (:meth:`detach` does; a closed subscriber is never ready again). Thread safety: threads may
    share a set; a waiting thread holds it for at most 50 ms at a time, so what another
    thread attaches is waited on from then on.
    """

    MAX_OBJECTS: ClassVar[int]
    """Most subscribers, events, blackboards and board keys one set waits on (timers and
    awaited objects do not count); :class:`InvalidConfig` beyond."""

    def __new__(cls) -> Self:
        """An empty set."""
    def attach_subscriber(self, sub: Subscriber) -> int:
        """Ready while ``sub`` has something to receive, or its publisher died.
        :class:`Closed` if the subscriber is closed."""
    def attach_event(self, ev: Event) -> int:
        """Ready while set (manual reset), or once per release the set took for the caller
        (auto reset: :meth:`wait` consumed it). :class:`Closed` if the event is closed."""
    def attach_blackboard(self, board: Blackboard) -> int:
        """Ready once per new version (the first: newer than the version when attached)."""
    def attach_board_key(self, key: BoardKey) -> int:
        """One key of a keyed blackboard, as :meth:`attach_blackboard`."""
    def attach_timer(self, period: float) -> int:
        """Ready every ``period`` seconds from now (missed periods are skipped, not queued);
        ``ValueError`` unless ``period`` is above zero."""
    def attach_appearance(
        self,
        name: str,
        *,
        namespace: Optional[str] = None,
        allow_owner: _Owner = None,
        require_owner: Optional[int] = None,
    ) -> int:
        """Ready once, when object ``name`` exists and can be opened (at the next wait if it
        exists already)."""
    def detach(self, key: int) -> bool:
        """Detaches ``key``; whether it was attached."""
    def wait(self, timeout: Optional[float] = None) -> builtins.list[int]:
        """The ready keys in ascending order, waiting at most ``timeout`` seconds (forever if
        ``None``); ``[]`` after the timeout. Releases the GIL, reacts to Ctrl-C."""
    def __len__(self) -> int:
        """How many attachments the set has."""

class ObjectInfo(NamedTuple):
    """One object in the shared-memory directory, as :func:`list` finds it."""

    name: str
    namespace: Optional[str]
    kind: Optional[Literal["segment", "event", "blackboard", "keyed-blackboard", "channel"]]
    size: int
    owner: int
    permissions: int
    creator_pid: Optional[int]
    created: Optional[float]
    persistent: Optional[bool]
    alive: Optional[bool]
    problem: Optional[str]

def list(namespace: Optional[str] = None) -> builtins.list[ObjectInfo]:
    """Every shmbus object in ``namespace`` (default: $SHMBUS_NAMESPACE, or none)."""

def gc(namespace: Optional[str] = None, dry_run: bool = False) -> builtins.list[tuple[str, str]]:
    """Removes objects whose creator died and which nobody uses; ``(name, reason)`` pairs."""

def remove(name: str, *, namespace: Optional[str] = None) -> None:
    """Removes the object ``name`` (open handles keep working until closed)."""
