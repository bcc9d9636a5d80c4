"""Every shmbus exception that Python code can trigger, and the exception hierarchy."""

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

import shmbus
import shmbus._errors

from helpers import (
    BOARD_WRITER,
    HEADER_KIND,
    HEADER_LAYOUT_VERSION,
    read_u32,
    run_python,
    shm_path,
    write_u32,
)

# ---------------------------------------------------------------------------------------
# The hierarchy

BUILTIN_BASES = {
    "Timeout": TimeoutError,
    "NotFound": FileNotFoundError,
    "AlreadyExists": FileExistsError,
    "PermissionDenied": PermissionError,
    "InvalidName": ValueError,
    "InvalidConfig": ValueError,
    "TooLarge": ValueError,
    "Closed": ValueError,
    "UnknownKey": KeyError,
}


@pytest.mark.parametrize("name", shmbus._errors.__all__)
def test_every_error_is_a_shmbus_error_exported_by_the_package(name):
    cls = getattr(shmbus, name)
    assert cls is getattr(shmbus._errors, name)
    assert name in shmbus.__all__
    assert issubclass(cls, shmbus.Error)
    assert issubclass(cls, Exception)
    if name in BUILTIN_BASES:
        assert issubclass(cls, BUILTIN_BASES[name])
    # The others are not built-in exceptions of those kinds.
    for builtin in set(BUILTIN_BASES.values()) - {BUILTIN_BASES.get(name)}:
        assert not issubclass(cls, builtin), (name, builtin)


def test_error_classes_are_complete():
    expected = {
        "Error", "Timeout", "Disconnected", "PublisherGone", "Lagged", "NotFound",
        "AlreadyExists", "PermissionDenied", "InvalidName", "InvalidConfig", "TooLarge",
        "WrongKind", "WrongMode", "VersionMismatch", "Corrupt", "TooManySubscribers",
        "PublisherExists", "UnknownKey", "Busy", "ForeignProcess", "HandlerError", "Closed",
    }  # fmt: skip
    assert set(shmbus._errors.__all__) == expected


def test_lagged_carries_lost():
    e = shmbus.Lagged("lost some", lost=7)
    assert e.lost == 7
    assert str(e) == "lost some"
    assert shmbus.Lagged("x").lost == 0


def check(excinfo, builtin=None):
    """Every error has a message; those that are built-in exceptions too are."""
    assert str(excinfo.value).strip()
    assert isinstance(excinfo.value, shmbus.Error)
    if builtin is not None:
        assert isinstance(excinfo.value, builtin)


# ---------------------------------------------------------------------------------------
# NotFound

OPENERS = {
    "Subscriber": lambda name, **kw: shmbus.Subscriber(name, **kw),
    "Publisher.open": lambda name, **kw: shmbus.Publisher.open(name, **kw),
    "Blackboard.open": lambda name, **kw: shmbus.Blackboard.open(name, **kw),
    "KeyedBlackboard.open": lambda name, **kw: shmbus.KeyedBlackboard.open(name, **kw),
    "Event.open": lambda name, **kw: shmbus.Event.open(name, **kw),
    "Duplex.connect": lambda name, **kw: shmbus.Duplex.connect(name, **kw),
}

CREATORS = {
    "Subscriber": lambda name: shmbus.Publisher(name, persistent=True).close(),
    "Publisher.open": lambda name: shmbus.Publisher(name, persistent=True).close(),
    "Blackboard.open": lambda name: shmbus.Blackboard.create(name, 8, persistent=True).close(),
    "KeyedBlackboard.open": lambda name: shmbus.KeyedBlackboard.create(
        name, ["k"], 8, persistent=True
    ).close(),
    "Event.open": lambda name: shmbus.Event.create(name, persistent=True).close(),
    "Duplex.connect": None,  # a listening server must stay open: see the test
}


@pytest.mark.parametrize("opener", sorted(OPENERS))
@pytest.mark.parametrize("kw", [{}, {"open_timeout": 0}], ids=["default", "open_timeout=0"])
def test_not_found_at_once(opener, kw):
    # open_timeout defaults to 0: NotFound at once.
    start = time.monotonic()
    with pytest.raises(shmbus.NotFound) as e:
        OPENERS[opener]("missing", **kw)
    assert time.monotonic() - start < 0.5
    check(e, FileNotFoundError)
    assert "missing" in str(e.value)


@pytest.mark.parametrize("opener", sorted(OPENERS))
def test_not_found_after_open_timeout(opener):
    start = time.monotonic()
    with pytest.raises(shmbus.NotFound) as e:
        OPENERS[opener]("missing", open_timeout=0.2)
    assert 0.19 <= time.monotonic() - start < 2
    check(e, FileNotFoundError)


def test_remove_missing_is_not_found():
    with pytest.raises(shmbus.NotFound) as e:
        shmbus.remove("missing")
    check(e, FileNotFoundError)


@pytest.mark.parametrize("opener", sorted(OPENERS))
def test_open_waits_open_timeout_for_the_object_to_appear(opener):
    keep = []
    if CREATORS[opener] is None:
        create = lambda: keep.append(shmbus.Duplex.listen("late"))  # noqa: E731
    else:
        create = lambda: CREATORS[opener]("late")  # noqa: E731
    timer = threading.Timer(0.2, create)
    start = time.monotonic()
    timer.start()
    try:
        obj = OPENERS[opener]("late", open_timeout=10)
    finally:
        timer.join()
    assert time.monotonic() - start >= 0.15
    assert obj is not None
    if opener == "Subscriber":
        assert obj.name == "late"


# ---------------------------------------------------------------------------------------
# AlreadyExists

MAKERS = {
    "Publisher": lambda name: shmbus.Publisher(name),
    "Blackboard": lambda name: shmbus.Blackboard.create(name, 8),
    "KeyedBlackboard": lambda name: shmbus.KeyedBlackboard.create(name, ["k"], 8),
    "Event": lambda name: shmbus.Event.create(name),
    "Duplex": lambda name: shmbus.Duplex.listen(name),
}


@pytest.mark.parametrize("first", sorted(MAKERS))
@pytest.mark.parametrize("second", ["Publisher", "Blackboard", "KeyedBlackboard", "Event"])
def test_already_exists(first, second):
    keep = MAKERS[first]("taken")
    name = "taken.up" if first == "Duplex" else "taken"
    with pytest.raises(shmbus.AlreadyExists) as e:
        MAKERS[second](name)
    check(e, FileExistsError)
    assert keep is not None


def test_duplex_listen_twice_already_exists():
    server = shmbus.Duplex.listen("dup")
    with pytest.raises(shmbus.AlreadyExists) as e:
        shmbus.Duplex.listen("dup")
    check(e, FileExistsError)
    server.close()


# ---------------------------------------------------------------------------------------
# InvalidName

BAD_NAMES = ["../x", "", ".hidden", "a/b", "x" * 201, "sp ace", "nul\0"]

NAMED_CALLS = {
    "Publisher": lambda n, **kw: shmbus.Publisher(n, **kw),
    "Publisher.open": lambda n, **kw: shmbus.Publisher.open(n, open_timeout=0, **kw),
    "Publisher.create_or_open": lambda n, **kw: shmbus.Publisher.create_or_open(n, **kw),
    "Subscriber": lambda n, **kw: shmbus.Subscriber(n, open_timeout=0, **kw),
    "Blackboard.create": lambda n, **kw: shmbus.Blackboard.create(n, 8, **kw),
    "Blackboard.open": lambda n, **kw: shmbus.Blackboard.open(n, open_timeout=0, **kw),
    "Blackboard.create_or_open": lambda n, **kw: shmbus.Blackboard.create_or_open(n, 8, **kw),
    "KeyedBlackboard.create": lambda n, **kw: shmbus.KeyedBlackboard.create(n, ["k"], 8, **kw),
    "KeyedBlackboard.open": lambda n, **kw: shmbus.KeyedBlackboard.open(n, open_timeout=0, **kw),
    "KeyedBlackboard.create_or_open": lambda n, **kw: shmbus.KeyedBlackboard.create_or_open(
        n, ["k"], 8, **kw
    ),
    "Event.create": lambda n, **kw: shmbus.Event.create(n, **kw),
    "Event.open": lambda n, **kw: shmbus.Event.open(n, open_timeout=0, **kw),
    "Event.create_or_open": lambda n, **kw: shmbus.Event.create_or_open(n, **kw),
    "Duplex.listen": lambda n, **kw: shmbus.Duplex.listen(n, **kw),
    "Duplex.connect": lambda n, **kw: shmbus.Duplex.connect(n, open_timeout=0, **kw),
    "remove": lambda n, **kw: shmbus.remove(n, **kw),
}


@pytest.mark.parametrize("call", sorted(NAMED_CALLS))
@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_invalid_name(call, bad):
    if bad == "nul\0":
        # An embedded NUL cannot reach the OS: InvalidName or Python's own ValueError.
        with pytest.raises(ValueError):
            NAMED_CALLS[call](bad)
        return
    with pytest.raises(shmbus.InvalidName) as e:
        NAMED_CALLS[call](bad)
    check(e, ValueError)
    assert shmbus.list() == []


def test_longest_name_is_accepted():
    name = "n" * 200
    b = shmbus.Blackboard.create(name, 8)
    assert shmbus.Blackboard.open(name).name == name


@pytest.mark.parametrize("call", sorted(NAMED_CALLS))
@pytest.mark.parametrize("bad_ns", ["bad.ns", "x" * 33, "sl/ash"], ids=repr)
def test_invalid_namespace_argument(call, bad_ns):
    with pytest.raises(shmbus.InvalidName) as e:
        NAMED_CALLS[call]("ok", namespace=bad_ns)
    check(e, ValueError)


def test_invalid_namespace_from_environment(monkeypatch):
    monkeypatch.setenv("SHMBUS_NAMESPACE", "no.dots")
    with pytest.raises(shmbus.InvalidName) as e:
        shmbus.Blackboard.create("ok", 8)
    check(e, ValueError)
    with pytest.raises(shmbus.InvalidName):
        shmbus.list()


# ---------------------------------------------------------------------------------------
# InvalidConfig


@pytest.mark.parametrize(
    "kw",
    [
        dict(capacity=100),
        dict(capacity=32),
        dict(capacity=0),
        dict(max_message=0),
        dict(capacity=256, max_message=113),
        dict(max_subscribers=0),
        dict(max_subscribers=1025),
    ],
    ids=lambda kw: ",".join("%s=%s" % i for i in kw.items()),
)
def test_invalid_channel_config(kw):
    for make in (shmbus.Publisher, shmbus.Publisher.create_or_open):
        with pytest.raises(shmbus.InvalidConfig) as e:
            make("cfg", **kw)
        check(e, ValueError)
    assert shmbus.list() == []


def test_largest_valid_config_is_accepted():
    p = shmbus.Publisher("max", capacity=256, max_message=112, max_subscribers=1024)
    assert (p.max_message, p.max_subscribers) == (112, 1024)


def test_unknown_mode_is_a_value_error():
    with pytest.raises(ValueError):
        shmbus.Publisher("m", mode="sometimes")
    assert shmbus.list() == []


def test_config_mismatch_is_invalid_config():
    p = shmbus.Publisher("mm", capacity=1024, mode="backpressure", persistent=True)
    p.close()
    for kw in (dict(capacity=2048), dict(capacity=1024), dict(capacity=1024, max_subscribers=3)):
        with pytest.raises(shmbus.InvalidConfig) as e:
            shmbus.Publisher.create_or_open("mm", **kw)
        check(e, ValueError)
    shmbus.Event.create("ev", manual_reset=True)  # dropped: removed again
    e1 = shmbus.Event.create("ev2", manual_reset=True)
    with pytest.raises(shmbus.InvalidConfig):
        shmbus.Event.create_or_open("ev2", manual_reset=False)
    assert e1.manual_reset


def test_wait_subscribers_impossible_is_invalid_config():
    p = shmbus.Publisher("ws", max_subscribers=4)
    with pytest.raises(shmbus.InvalidConfig) as e:
        p.wait_subscribers(5, timeout=10)
    check(e, ValueError)


def test_bad_permissions_and_owner_arguments():
    with pytest.raises(ValueError):
        shmbus.Blackboard.create("perm", 8, permissions=0o4755)
    with pytest.raises(TypeError):
        shmbus.Blackboard.create("perm", 8, allow_owner="root")
    assert shmbus.list() == []


# ---------------------------------------------------------------------------------------
# TooLarge


def test_too_large():
    p = shmbus.Publisher("big", capacity=1024, max_message=100, mode="backpressure")
    s = shmbus.Subscriber("big")
    for call in (
        lambda: p.send(b"x" * 101),
        lambda: p.try_send(b"x" * 101),
        lambda: p.loan(101),
    ):
        with pytest.raises(shmbus.TooLarge) as e:
            call()
        check(e, ValueError)
    p.send(b"x" * 100)
    with pytest.raises(shmbus.TooLarge) as e:
        s.recv_into(bytearray(99))
    check(e, ValueError)
    assert s.recv(timeout=5) == b"x" * 100
    b = shmbus.Blackboard.create("bigb", 10)
    with pytest.raises(shmbus.TooLarge) as e:
        b.write(b"x" * 11)
    check(e, ValueError)
    assert b.version == 0
    kb = shmbus.KeyedBlackboard.create("bigk", ["k"], 10)
    for call in (lambda: kb.write("k", b"x" * 11), lambda: kb.key("k").write(b"x" * 11)):
        with pytest.raises(shmbus.TooLarge) as e:
            call()
        check(e, ValueError)
    assert kb.version("k") == 0


# ---------------------------------------------------------------------------------------
# WrongKind, WrongMode


def test_wrong_kind():
    board = shmbus.Blackboard.create("board", 8)
    event = shmbus.Event.create("event")
    chan = shmbus.Publisher("chan", persistent=True)
    cases = [
        lambda: shmbus.Subscriber("board", open_timeout=0),
        lambda: shmbus.Publisher.open("event", open_timeout=0),
        lambda: shmbus.Blackboard.open("chan", open_timeout=0),
        lambda: shmbus.Event.open("board", open_timeout=0),
        lambda: shmbus.Publisher.create_or_open("board"),
        lambda: shmbus.Blackboard.create_or_open("event", 8),
        lambda: shmbus.Event.create_or_open("chan"),
        lambda: shmbus.KeyedBlackboard.open("board", open_timeout=0),
        lambda: shmbus.KeyedBlackboard.create_or_open("chan", ["k"], 8),
    ]
    for call in cases:
        with pytest.raises(shmbus.WrongKind) as e:
            call()
        check(e)
    assert board and event and chan


def test_wrong_kind_for_a_file_that_is_not_shmbus(namespace):
    path = shm_path("junk", namespace)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.write(fd, b"this is not a shmbus object at all" * 10)
    finally:
        os.close(fd)
    with pytest.raises(shmbus.WrongKind) as e:
        shmbus.Blackboard.open("junk", open_timeout=0)
    check(e)


def test_wrong_mode():
    p = shmbus.Publisher("lossy")
    s = shmbus.Subscriber("lossy")
    p.send(b"x")
    with pytest.raises(shmbus.WrongMode) as e:
        s.recv_ref(timeout=1)
    check(e)
    # Nothing was consumed.
    assert s.recv(timeout=5) == b"x"


# ---------------------------------------------------------------------------------------
# Timeout, Disconnected, TooManySubscribers, PublisherExists, Closed


def test_timeout_is_timeout_error():
    p = shmbus.Publisher("t", mode="backpressure", capacity=256)
    s = shmbus.Subscriber("t")
    server = shmbus.Duplex.listen("td")
    client = shmbus.Duplex.connect("td")
    calls = [
        lambda: s.recv(timeout=0.01),
        lambda: s.recv_into(bytearray(8), timeout=0.01),
        lambda: s.recv_ref(timeout=0.01),
        lambda: p.wait_subscribers(2, timeout=0.01),
        lambda: server.recv(timeout=0.01),
        lambda: client.request(b"?", timeout=0.01),
    ]
    for call in calls:
        with pytest.raises(shmbus.Timeout) as e:
            call()
        check(e, TimeoutError)
    while p.try_send(b"fill"):
        pass
    for call in (lambda: p.send(b"x", timeout=0.01), lambda: p.loan(4, timeout=0.01)):
        with pytest.raises(TimeoutError):
            call()


def test_disconnected():
    p = shmbus.Publisher("disc")
    s = shmbus.Subscriber("disc")
    p.close()
    for call in (lambda: s.recv(timeout=5), s.try_recv, lambda: s.recv_into(bytearray(4))):
        with pytest.raises(shmbus.Disconnected) as e:
            call()
        check(e)


def test_too_many_subscribers():
    p = shmbus.Publisher("tms", max_subscribers=2)
    a, b = shmbus.Subscriber("tms"), shmbus.Subscriber("tms")
    with pytest.raises(shmbus.TooManySubscribers) as e:
        shmbus.Subscriber("tms")
    check(e)
    assert p.subscriber_count == 2
    a.close()
    shmbus.Subscriber("tms").close()
    assert b


def test_publisher_exists():
    p = shmbus.Publisher("pe")
    for call in (
        lambda: shmbus.Publisher.open("pe", open_timeout=0),
        lambda: shmbus.Publisher.create_or_open("pe"),
    ):
        with pytest.raises(shmbus.PublisherExists) as e:
            call()
        check(e)
    p.send(b"still mine")
    assert p.published == 1


def test_closed_is_value_error():
    p = shmbus.Publisher("c")
    s = shmbus.Subscriber("c")
    b = shmbus.Blackboard.create("cb", 8)
    kb = shmbus.KeyedBlackboard.create("ckb", ["k"], 8)
    key = kb.key("k")
    ev = shmbus.Event.create("ce")
    d = shmbus.Duplex.listen("cd")
    for obj in (p, s, b, kb, ev, d):
        obj.close()
    for call in (
        lambda: p.send(b"x"),
        lambda: s.recv(timeout=0),
        b.read,
        lambda: kb.read("k"),
        key.read,
        ev.set,
        lambda: d.send(b"x"),
    ):
        with pytest.raises(shmbus.Closed) as e:
            call()
        check(e, ValueError)


# ---------------------------------------------------------------------------------------
# Negative timeouts: ValueError


def _timeout_calls():
    p = shmbus.Publisher("neg", mode="backpressure")
    s = shmbus.Subscriber("neg")
    b = shmbus.Blackboard.create("negb", 8)
    e = shmbus.Event.create("nege")
    server = shmbus.Duplex.listen("negd")
    client = shmbus.Duplex.connect("negd")
    kb = shmbus.KeyedBlackboard.create("negk", ["k"], 8)
    keep = (p, s, b, e, server, client, kb)
    return keep, {
        "Subscriber.recv": lambda t: s.recv(timeout=t),
        "Subscriber.recv_into": lambda t: s.recv_into(bytearray(8), timeout=t),
        "Subscriber.recv_ref": lambda t: s.recv_ref(timeout=t),
        "Publisher.send": lambda t: p.send(b"x", timeout=t),
        "Publisher.loan": lambda t: p.loan(1, timeout=t),
        "Publisher.wait_subscribers": lambda t: p.wait_subscribers(1, timeout=t),
        "Blackboard.wait_newer": lambda t: b.wait_newer(0, timeout=t),
        "KeyedBlackboard.wait_newer": lambda t: kb.wait_newer("k", 0, timeout=t),
        "BoardKey.wait_newer": lambda t: kb.key("k").wait_newer(0, timeout=t),
        "Event.wait": lambda t: e.wait(t),
        "Duplex.send": lambda t: client.send(b"x", timeout=t),
        "Duplex.recv": lambda t: server.recv(timeout=t),
        "Duplex.reply": lambda t: server.reply(1, b"x", timeout=t),
        "Duplex.request": lambda t: client.request(b"x", timeout=t),
        "Subscriber(open_timeout)": lambda t: shmbus.Subscriber("neg", open_timeout=t),
        "Publisher.open(open_timeout)": lambda t: shmbus.Publisher.open("x", open_timeout=t),
        "Blackboard.open(open_timeout)": lambda t: shmbus.Blackboard.open("x", open_timeout=t),
        "KeyedBlackboard.open(open_timeout)": lambda t: shmbus.KeyedBlackboard.open(
            "x", open_timeout=t
        ),
        "Event.open(open_timeout)": lambda t: shmbus.Event.open("x", open_timeout=t),
        "Duplex.connect(open_timeout)": lambda t: shmbus.Duplex.connect("x", open_timeout=t),
    }


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan")], ids=["-1", "-0.001", "nan"])
def test_negative_or_nan_timeout_is_value_error(bad):
    keep, calls = _timeout_calls()
    for what, call in calls.items():
        with pytest.raises(ValueError, match="timeout") as e:
            call(bad)
        assert not isinstance(e.value, shmbus.Timeout), what
    # Nothing happened.
    p, s, b, ev = keep[:4]
    assert p.published == 0 and b.version == 0 and not ev.is_set()
    assert keep[-1].version("k") == 0


# ---------------------------------------------------------------------------------------
# PermissionDenied: an object owned by another uid

NOBODY = 65534


@pytest.fixture
def nobody_objects(namespace):
    """A blackboard, a keyed blackboard, an event and a channel created (persistent, mode
    0644) by uid 65534."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to create objects as another user")
    code = """
import shmbus
b = shmbus.Blackboard.create("owned", 32, permissions=0o644, persistent=True)
b.write(b"written by nobody")
kb = shmbus.KeyedBlackboard.create("owned-kb", ["k"], 32, permissions=0o644, persistent=True)
kb.write("k", b"keyed by nobody")
shmbus.Event.create("owned-ev", permissions=0o644, persistent=True, manual_reset=True).set()
shmbus.Publisher("owned-ch", permissions=0o644, persistent=True).send(b"x")
print("created")
"""
    r = subprocess.run(
        ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
         sys.executable, "-c", code],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "created"
    owners = {o.name: (o.owner, o.permissions) for o in shmbus.list()}
    assert owners == {n: (NOBODY, 0o644) for n in ("owned", "owned-kb", "owned-ev", "owned-ch")}
    return namespace


OWNED_OPENERS = {
    "Blackboard": lambda **kw: shmbus.Blackboard.open("owned", open_timeout=0, **kw),
    "Event": lambda **kw: shmbus.Event.open("owned-ev", open_timeout=0, **kw),
    "Subscriber": lambda **kw: shmbus.Subscriber("owned-ch", open_timeout=0, **kw),
    "Blackboard.create_or_open": lambda **kw: shmbus.Blackboard.create_or_open("owned", 32, **kw),
    "KeyedBlackboard": lambda **kw: shmbus.KeyedBlackboard.open("owned-kb", open_timeout=0, **kw),
    "KeyedBlackboard.create_or_open": lambda **kw: shmbus.KeyedBlackboard.create_or_open(
        "owned-kb", ["k"], 32, **kw
    ),
}


@pytest.mark.parametrize("opener", sorted(OWNED_OPENERS))
def test_permission_denied_for_another_owner(nobody_objects, opener):
    open_ = OWNED_OPENERS[opener]
    for kw in ({}, dict(allow_owner=1234), dict(allow_owner=False), dict(require_owner=0)):
        with pytest.raises(shmbus.PermissionDenied) as e:
            open_(**kw)
        check(e, PermissionError)
        assert str(NOBODY) in str(e.value)
    for kw in (
        dict(allow_owner=NOBODY),
        dict(allow_owner=[1234, NOBODY]),
        dict(allow_owner=True),
        dict(require_owner=NOBODY),
    ):
        obj = open_(**kw)
        obj.close()


def test_allowed_owner_object_works(nobody_objects):
    b = shmbus.Blackboard.open("owned", open_timeout=0, allow_owner=NOBODY)
    assert b.read() == (1, b"written by nobody")
    assert b.write(b"root was here") == 2
    ev = shmbus.Event.open("owned-ev", allow_owner=NOBODY)
    assert ev.manual_reset and ev.is_set()
    kb = shmbus.KeyedBlackboard.open("owned-kb", allow_owner=NOBODY)
    assert kb.read("k") == (1, b"keyed by nobody")
    assert kb.key("k").write(b"root was here") == 2


# ---------------------------------------------------------------------------------------
# VersionMismatch, Corrupt, Busy: objects tampered with through their file


def test_version_mismatch(namespace):
    shmbus.Blackboard.create("vm", 8, persistent=True).close()
    path = shm_path("vm", namespace)
    assert read_u32(path, HEADER_LAYOUT_VERSION) == shmbus.LAYOUT_VERSION
    write_u32(path, HEADER_LAYOUT_VERSION, shmbus.LAYOUT_VERSION + 1)
    with pytest.raises(shmbus.VersionMismatch) as e:
        shmbus.Blackboard.open("vm", open_timeout=0)
    check(e)


def test_corrupt(namespace):
    shmbus.Event.create("bad", persistent=True).close()
    path = shm_path("bad", namespace)
    assert read_u32(path, HEADER_KIND) == 2  # event
    write_u32(path, HEADER_KIND, 99)
    with pytest.raises(shmbus.Corrupt) as e:
        shmbus.Event.open("bad", open_timeout=0)
    check(e)
    (info,) = [o for o in shmbus.list() if o.name == "bad"]
    assert info.problem or info.kind is None


def test_busy_when_another_live_writer_holds_the_blackboard(namespace):
    first = shmbus.Blackboard.create("busy", 8)
    first.write(b"1")  # claims writer slot 1, held while `first` lives
    second = shmbus.Blackboard.open("busy")
    path = shm_path("busy", namespace)
    assert read_u32(path, BOARD_WRITER) == 0
    # As if `first` were stuck inside a write: the write lock names its live slot.
    write_u32(path, BOARD_WRITER, 1)
    start = time.monotonic()
    try:
        with pytest.raises(shmbus.Busy) as e:
            second.write(b"2")
    finally:
        write_u32(path, BOARD_WRITER, 0)
    assert time.monotonic() - start >= 0.5
    check(e)
    assert second.write(b"3") == 2


# ---------------------------------------------------------------------------------------
# ForeignProcess: handles inherited through fork()


def test_foreign_process_after_fork():
    code = r"""
import os, shmbus
p = shmbus.Publisher("fork")
s = shmbus.Subscriber("fork")
b = shmbus.Blackboard.create("forkb", 8)
b.write(b"parent")
pid = os.fork()
if pid == 0:
    out = []
    for what, call in [("recv", lambda: s.recv(timeout=0)), ("send", lambda: p.send(b"x")),
                       ("write", lambda: b.write(b"child"))]:
        try:
            call()
            out.append(what + ":ok")
        except shmbus.ForeignProcess as e:
            out.append(what + ":ForeignProcess:" + str(bool(str(e))))
        except BaseException as e:
            out.append(what + ":" + type(e).__name__)
    print(" ".join(out), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
p.send(b"from parent")
assert s.recv(timeout=5) == b"from parent"
assert b.read() == (1, b"parent")
print("parent ok", flush=True)
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == [
        "recv:ForeignProcess:True send:ForeignProcess:True write:ForeignProcess:True",
        "parent ok",
    ]
