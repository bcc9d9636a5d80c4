"""shmbus: inter-process communication through shared memory on Linux.

Named objects in POSIX shared memory, shared with Rust, C, C++ and the ``shmbus`` CLI:

- :class:`Publisher` / :class:`Subscriber`: broadcast channels, lossy (with exact loss
  counts) or back-pressure, with zero-copy loans and borrowed messages;
- :class:`Blackboard`: the latest value of something, never torn;
- :class:`KeyedBlackboard`: a fixed set of named keys, each its own latest value
  (:class:`BoardKey`: one key);
- :class:`Event`: a cross-process event that never loses a wake-up;
- :class:`Duplex`: a two-way link between two processes;
- :class:`WaitSet`: waits on many of them at once (and on timers and objects to appear);
- :func:`list`, :func:`gc`, :func:`remove`: the objects that exist.

Blocking calls release the GIL and react to Ctrl-C. Objects may be shared by threads. After
``os.fork()`` a child must open its own objects (or use the ``spawn``/``forkserver``
start methods of ``multiprocessing``): handles it inherited are inert there.
"""

import atexit
import builtins
import weakref
from typing import NamedTuple, Optional

from ._errors import *  # noqa: F401,F403
from ._errors import __all__ as _error_names
from ._shmbus import (
    LAYOUT_VERSION,
    Blackboard,
    BoardKey,
    Borrowed,
    Duplex,
    Event,
    HandlerGuard,
    KeyedBlackboard,
    Loan,
    Publisher,
    Subscriber,
    WaitSet,
    __version__,
    gc,
    list,
    remove,
)


class HandlerStats(NamedTuple):
    """What a stopped receive handler did."""

    delivered: int
    """Callbacks that returned normally."""
    lost: int
    """Messages lost (lossy channels) or blackboard versions skipped before delivery."""


class ObjectInfo(NamedTuple):
    """One object in the shared-memory directory, as :func:`list` finds it."""

    name: str
    namespace: Optional[str]
    kind: Optional[str]
    """``"segment"``, ``"event"``, ``"blackboard"``, ``"keyed-blackboard"``, ``"channel"``;
    ``None`` if unreadable."""
    size: int
    owner: int
    permissions: int
    creator_pid: Optional[int]
    created: Optional[float]
    """Seconds since the epoch."""
    persistent: Optional[bool]
    alive: Optional[bool]
    """Whether its creator (or publisher) lives; ``None`` when that cannot be told."""
    problem: Optional[str]
    """Why the object could not be read, if it could not."""


# Receive handlers still running when the interpreter exits are stopped first, so that no
# handler thread calls into an interpreter that is shutting down.
# (The extension module adds every guard it makes to this set.)
_guards: "weakref.WeakSet[HandlerGuard]" = weakref.WeakSet()


def _stop_all() -> None:
    for guard in builtins.list(_guards):
        try:
            guard.stop()
        except Exception:
            pass


atexit.register(_stop_all)

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
    *_error_names,
]
