"""The exceptions shmbus raises: every one is a :class:`Error`; several are also the
matching built-in exception, so ``except TimeoutError`` or ``except FileNotFoundError`` work."""




class Error(Exception):
    """Base class of every shmbus error; ``str(e)`` is the library's message, which says
    what to do."""


class Timeout(Error, TimeoutError):
    """A wait ran out of time."""


class Disconnected(Error):
    """The publisher closed the channel and every message has been received."""


class PublisherGone(Error):
    """The publisher (or a blackboard's writer) died without closing: crashed or killed."""


class Lagged(Error):
    """Messages were overwritten before this subscriber read them (lossy channels).

    ``lost`` says how many; the next receive continues with the oldest message kept.
    """

    def __init__(self, message: str, lost: int = 0) -> None:
        super().__init__(message)
        self.lost: int = lost


class NotFound(Error, FileNotFoundError):
    """No object of that name exists."""


class AlreadyExists(Error, FileExistsError):
    """An object of that name exists already."""


class PermissionDenied(Error, PermissionError):
    """The operating system refused access, or the object's owner is not trusted
    (pass ``allow_owner=uid``)."""


class InvalidName(Error, ValueError):
    """A name or namespace that shmbus does not accept."""


class InvalidConfig(Error, ValueError):
    """Arguments that cannot work together (sizes, modes, counts), or an existing object
    with another configuration."""


class TooLarge(Error, ValueError):
    """A message or value larger than the object (or the buffer given) can hold."""


class WrongKind(Error):
    """The name belongs to another kind of object, or to no shmbus object at all."""


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
    """A keyed blackboard has no such key: its keys are fixed when it is created.

    Also a :class:`KeyError`, as a missing key of a mapping is. ``key`` is the key asked
    for; ``str(e)`` is the library's message (not quoted, as a plain ``KeyError``'s is).
    """

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key: str = key

    def __str__(self) -> str:
        return Exception.__str__(self)


class Busy(Error):
    """Another writer held the object for too long."""


class ForeignProcess(Error):
    """The object was opened by another process (this one is a fork child): open your own."""


class HandlerError(Error):
    """A receive handler failed; the callback's exception is the ``__cause__``."""


class Closed(Error, ValueError):
    """The object was closed (or handed to a receive handler)."""


__all__ = [
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

