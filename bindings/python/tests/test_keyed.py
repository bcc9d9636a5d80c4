"""KeyedBlackboard and BoardKey: in one process, across threads, with Python children and
with the ``shmbus`` CLI (Rust)."""

import json
import os
import pickle
import subprocess
import threading
import time

import numpy as np
import pytest

import shmbus

from helpers import KEY_TABLE, keyed_control, read_u32, shm_path, wait_until, write_u32

# Within a key's control block (keyed_control): the latch's `writer` and `waiters` words.
WRITER = 128
WAITERS = 132


def waiters(namespace: str, name: str, key: int, keys: int) -> int:
    """Threads (of any process) sleeping in a wait for key number ``key`` of board ``name``."""
    return read_u32(shm_path(name, namespace), keyed_control(key, keys) + WAITERS)


def cli_run(cli, *args, timeout=30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([cli, *args], capture_output=True, timeout=timeout, **kw)


# ---------------------------------------------------------------------------------------
# One process


def test_create_write_read_each_key(namespace):
    b = shmbus.KeyedBlackboard.create("robot", ["pose", "battery", "mode"], 32)
    assert b.name == "robot"
    assert b.namespace == namespace
    assert b.capacity == 32
    assert b.keys == ("pose", "battery", "mode")
    assert repr(b) == '<shmbus.KeyedBlackboard "robot" keys=3 capacity=32>'
    for key in b.keys:
        assert b.version(key) == 0
        assert b.read(key) == (0, b"")
    assert b.write("pose", b"x=1") == 1
    assert b.read("pose") == (1, b"x=1")
    assert b.version("pose") == 1
    # The other keys are untouched: each has its own value and version.
    assert b.read("battery") == (0, b"")
    assert b.version("mode") == 0
    assert b.write("pose", bytearray(b"x=2")) == 2
    assert b.write("battery", memoryview(b"87%")) == 1
    assert b.write("mode", np.array([1, 2], dtype=np.uint16)) == 1
    assert b.read("pose") == (2, b"x=2")
    assert b.read("battery") == (1, b"87%")
    assert b.read("mode") == (1, np.array([1, 2], dtype=np.uint16).tobytes())
    assert b.write("mode", b"m" * 32) == 2
    assert b.read("mode") == (2, b"m" * 32)
    assert b.write("mode", b"") == 3
    assert b.read("mode") == (3, b"")
    with pytest.raises(shmbus.TooLarge) as e:
        b.write("pose", b"x" * 33)
    assert isinstance(e.value, ValueError)
    assert "33" in str(e.value)
    assert b.read("pose") == (2, b"x=2")
    assert [b.version(k) for k in b.keys] == [2, 1, 3]


def test_open_shares_keys_and_values():
    b = shmbus.KeyedBlackboard.create("shared", ["b", "a", "c"], 16)
    b.write("a", b"one")
    o = shmbus.KeyedBlackboard.open("shared", open_timeout=0)
    assert o.keys == ("b", "a", "c")  # the creator's order
    assert o.capacity == 16
    assert o.read("a") == (1, b"one")
    assert o.write("c", b"two") == 1
    assert b.read("c") == (1, b"two")
    assert b.write("a", b"three") == 2
    assert o.read("a") == (2, b"three")
    assert [o.version(k) for k in o.keys] == [0, 2, 1]


def test_create_or_open_keeps_the_existing_keys_and_capacity():
    made = shmbus.KeyedBlackboard.create_or_open("coo", ["a", "b"], 16)
    assert (made.keys, made.capacity) == (("a", "b"), 16)
    made.write("b", b"v")
    opened = shmbus.KeyedBlackboard.create_or_open("coo", ["x", "y", "z"], 1000)
    assert (opened.keys, opened.capacity) == (("a", "b"), 16)
    assert opened.read("b") == (1, b"v")
    with pytest.raises(shmbus.UnknownKey):
        opened.read("x")
    with pytest.raises(shmbus.AlreadyExists) as e:
        shmbus.KeyedBlackboard.create("coo", ["a", "b"], 16)
    assert isinstance(e.value, FileExistsError)


def test_namespace_argument(make_namespace):
    ns = make_namespace()
    b = shmbus.KeyedBlackboard.create("elsewhere", ["a"], 8, namespace=ns)
    assert b.namespace == ns
    b.write("a", b"there")
    with pytest.raises(shmbus.NotFound):
        shmbus.KeyedBlackboard.open("elsewhere")  # $SHMBUS_NAMESPACE: another one
    assert shmbus.KeyedBlackboard.open("elsewhere", namespace=ns).read("a") == (1, b"there")
    assert [(o.name, o.kind) for o in shmbus.list(ns)] == [("elsewhere", "keyed-blackboard")]


def test_keys_from_any_iterable_of_str():
    made = [
        ("tuple", ("a", "b")),
        ("generator", (k for k in "ab")),
        ("dict", {"a": 1, "b": 2}),
        ("list", ["a", "b"]),
    ]
    for name, keys in made:
        assert shmbus.KeyedBlackboard.create(name, keys, 8).keys == ("a", "b")
    # Any UTF-8 without control characters, 1 to 60 bytes.
    odd = ["\u00e9" * 30, "k" * 60, "with space", "a.b/c:d", "\u65e5\u672c", "\U0001f600", "x"]
    b = shmbus.KeyedBlackboard.create("odd", odd, 8)
    assert b.keys == tuple(odd)
    for i, key in enumerate(odd):
        assert b.write(key, b"%d" % i) == 1
    o = shmbus.KeyedBlackboard.open("odd")
    assert o.keys == tuple(odd)
    assert [o.read(k) for k in odd] == [(1, b"%d" % i) for i in range(len(odd))]


@pytest.mark.parametrize("make", ["create", "create_or_open"])
def test_keys_must_be_an_iterable_of_str(make):
    with pytest.raises(TypeError, match="iterable of str"):
        getattr(shmbus.KeyedBlackboard, make)("s", "ab", 8)  # one str: not its letters
    for bad in ([b"a"], ["a", 1], None, 5):
        with pytest.raises(TypeError):
            getattr(shmbus.KeyedBlackboard, make)("s", bad, 8)
    assert shmbus.list() == []


BAD_KEY_SETS = {
    "no keys": ([], "0 keys"),
    "duplicate": (["a", "b", "a"], 'key "a" is given twice'),
    "empty key": (["a", ""], "1 to 60 bytes"),
    "61 bytes": (["k" * 61], "61 bytes long"),
    "62 bytes of UTF-8": (["\u00e9" * 31], "62 bytes long"),
    "newline": (["a\nb"], "control character"),
    "tab": (["\t"], "control character"),
    "NUL": (["a\0"], "control character"),
    "DEL": (["a\x7f"], "control character"),
    "C1 control": (["a\x85"], "control character"),
    "4097 keys": ([str(i) for i in range(4097)], "4097 keys"),
}


@pytest.mark.parametrize("what", sorted(BAD_KEY_SETS))
@pytest.mark.parametrize("make", ["create", "create_or_open"])
def test_invalid_key_sets_are_invalid_config(what, make):
    keys, message = BAD_KEY_SETS[what]
    with pytest.raises(shmbus.InvalidConfig) as e:
        getattr(shmbus.KeyedBlackboard, make)("bad", keys, 8)
    assert isinstance(e.value, ValueError)
    assert message in str(e.value)
    assert shmbus.list() == []


def test_most_keys_and_longest_keys_are_accepted():
    keys = ["key-%04d" % i for i in range(4096)]
    b = shmbus.KeyedBlackboard.create("many", keys, 8)
    assert len(b.keys) == 4096 and b.keys[-1] == "key-4095"
    assert b.write("key-4095", b"last") == 1
    o = shmbus.KeyedBlackboard.open("many")
    assert o.read("key-4095") == (1, b"last")
    assert o.read("key-0000") == (0, b"")
    assert "keys=4096" in repr(o)


def test_unknown_key_is_a_key_error_carrying_the_key():
    b = shmbus.KeyedBlackboard.create("uk", ["a"], 8)
    calls = {
        "read": lambda: b.read("speed"),
        "write": lambda: b.write("speed", b"x"),
        "version": lambda: b.version("speed"),
        "wait_newer": lambda: b.wait_newer("speed", 0, timeout=0),
        "key": lambda: b.key("speed"),
        "on_update": lambda: b.on_update("speed", lambda v, d: None),
    }
    for what, call in calls.items():
        with pytest.raises(shmbus.UnknownKey) as e:
            call()
        assert isinstance(e.value, KeyError), what
        assert isinstance(e.value, shmbus.Error), what
        assert e.value.key == "speed", what
        # The library's message, not quoted as a plain KeyError's is.
        assert str(e.value).startswith("`uk` in namespace"), str(e.value)
        assert 'no key "speed"' in str(e.value)
    # Keys are compared exactly.
    for near in ("A", "a ", " a", ""):
        try:
            b.read(near)
        except KeyError as e:  # the usual way to catch a missing key
            assert isinstance(e, shmbus.UnknownKey) and e.key == near
        else:
            raise AssertionError("read(%r) did not raise" % near)
    assert b.read("a") == (0, b"")


def test_unknown_key_class():
    e = shmbus.UnknownKey("no such key", key="k")
    assert (str(e), e.key, e.args) == ("no such key", "k", ("no such key",))
    assert shmbus.UnknownKey("x").key == ""
    assert shmbus.UnknownKey.__mro__[1:3] == (shmbus.Error, KeyError)
    # Survives pickling (multiprocessing sends exceptions that way).
    copy = pickle.loads(pickle.dumps(e))
    assert (type(copy), str(copy), copy.key) == (shmbus.UnknownKey, "no such key", "k")


def test_wait_newer_per_key(namespace):
    b = shmbus.KeyedBlackboard.create("wn", ["a", "b"], 16)
    start = time.monotonic()
    assert b.wait_newer("a", 0, timeout=0.1) is None  # a timeout is None, as Blackboard's
    assert time.monotonic() - start >= 0.09
    b.write("a", b"1")
    assert b.wait_newer("a", 0, timeout=0) == 1
    assert b.wait_newer("a", 1, timeout=0) is None
    assert b.wait_newer("b", 0, timeout=0) is None  # never written
    # A waiter on "a" sleeps through writes of "b".
    got = []
    t = threading.Thread(target=lambda: got.append(b.wait_newer("a", 1, timeout=20)))
    t.start()
    wait_until(lambda: waiters(namespace, "wn", 0, 2) > 0, 10, "the thread to wait on a")
    writer = shmbus.KeyedBlackboard.open("wn")
    for i in range(5):
        writer.write("b", b"%d" % i)
    t.join(0.3)
    assert t.is_alive() and got == []
    assert writer.write("a", b"2") == 2
    t.join(10)
    assert got == [2]
    assert b.read("a") == (2, b"2")
    assert b.read("b") == (5, b"4")
    # A timed wait on "a" also ends with None while only "b" changes.
    threading.Timer(0.02, writer.write, ("b", b"late")).start()
    start = time.monotonic()
    assert b.wait_newer("a", 2, timeout=0.2) is None
    assert time.monotonic() - start >= 0.19
    assert b.wait_newer("b", 5, timeout=10) == 6


def test_board_key_handles():
    b = shmbus.KeyedBlackboard.create("bk", ["pose", "speed"], 16)
    pose = b.key("pose")
    assert isinstance(pose, shmbus.BoardKey)
    assert pose.key == "pose"
    assert pose.board is b
    assert repr(pose) == '<shmbus.BoardKey "pose" of "bk">'
    assert pose.version == 0
    assert pose.read() == (0, b"")
    assert pose.write(b"x=1") == 1
    assert b.read("pose") == (1, b"x=1")
    assert pose.version == 1
    assert b.key("speed").version == 0
    # A handle of another board handle (another process, typically): the same key.
    other = shmbus.KeyedBlackboard.open("bk").key("pose")
    assert other.read() == (1, b"x=1")
    assert other.write(memoryview(b"x=2")) == 2
    assert pose.read() == (2, b"x=2")
    assert pose.wait_newer(1, timeout=0) == 2
    assert pose.wait_newer(2, timeout=0.05) is None
    threading.Timer(0.05, other.write, (b"x=3",)).start()
    assert pose.wait_newer(2, timeout=20) == 3
    with pytest.raises(shmbus.TooLarge):
        pose.write(b"x" * 17)
    assert pose.read() == (3, b"x=3")
    assert b.version("speed") == 0
    with pytest.raises(TypeError):
        shmbus.BoardKey()  # only KeyedBlackboard.key makes one


def test_on_update_per_key():
    b = shmbus.KeyedBlackboard.create("upd", ["a", "b", "c"], 16)
    writer = shmbus.KeyedBlackboard.open("upd")
    seen = {"a": [], "b": []}
    done = {key: threading.Event() for key in seen}
    main = threading.get_ident()
    threads = set()

    def handler(key):
        def on_update(version, value):
            threads.add(threading.get_ident())
            seen[key].append((version, value))
            if version == 3:
                done[key].set()

        return on_update

    guard_a = b.key("a").on_update(handler("a"))
    guard_b = b.on_update("b", handler("b"))
    assert guard_a.running and guard_b.running
    for i in (1, 2, 3):
        writer.write("c", b"c%d" % i)  # nobody's key
        writer.write("a", b"a%d" % i)
        writer.write("b", b"b%d" % i)
    assert done["a"].wait(10) and done["b"].wait(10)
    stats = {"a": guard_a.stop(), "b": guard_b.stop()}
    assert not guard_a.running and not guard_b.running
    for key in ("a", "b"):
        # Each callback gets a whole value of its own key, matching its version.
        assert all(d == b"%s%d" % (key.encode(), v) for v, d in seen[key]), seen
        versions = [v for v, _ in seen[key]]
        assert versions == sorted(set(versions))
        assert seen[key][-1] == (3, key.encode() + b"3")
        assert isinstance(stats[key], shmbus.HandlerStats)
        assert stats[key].delivered == len(seen[key])
        assert stats[key].delivered + stats[key].lost == 3
    assert main not in threads
    # Stopped: no more callbacks.
    writer.write("a", b"after")
    assert b.wait_newer("a", 3, timeout=0) == 4
    assert seen["a"][-1] == (3, b"a3")


def test_close_and_context_manager():
    with shmbus.KeyedBlackboard.create("cm", ["a", "b"], 8) as b:
        k = b.key("a")
        k.write(b"x")
    calls = {
        "read": lambda: b.read("a"),
        "write": lambda: b.write("a", b"y"),
        "version": lambda: b.version("a"),
        "wait_newer": lambda: b.wait_newer("a", 0, 0),
        "key": lambda: b.key("a"),
        "on_update": lambda: b.on_update("a", lambda v, d: None),
        "read of an unknown key": lambda: b.read("zz"),
        "BoardKey.read": k.read,
        "BoardKey.write": lambda: k.write(b"y"),
        "BoardKey.version": lambda: k.version,
        "BoardKey.wait_newer": lambda: k.wait_newer(0, 0),
        "BoardKey.on_update": lambda: k.on_update(lambda v, d: None),
    }
    for what, call in calls.items():
        with pytest.raises(shmbus.Closed) as e:
            call()
        assert isinstance(e.value, ValueError), what
    with pytest.raises(shmbus.Closed, match='key "a" of keyed blackboard `cm` is closed'):
        k.read()
    with pytest.raises(shmbus.Closed, match="keyed blackboard `cm` is closed"):
        b.read("a")
    # What never changes stays readable.
    assert (b.name, b.keys, b.capacity, k.key) == ("cm", ("a", "b"), 8, "a")
    assert k.board is b
    b.close()  # harmless
    assert shmbus.list() == []


@pytest.mark.parametrize("via", ["KeyedBlackboard", "BoardKey"])
def test_close_while_another_thread_waits_is_closed(namespace, via):
    b = shmbus.KeyedBlackboard.create("cw", ["a", "b"], 8)
    k = b.key("b")
    wait = (lambda: b.wait_newer("b", 0)) if via == "KeyedBlackboard" else (lambda: k.wait_newer(0))
    outcome = []

    def waiter():
        try:
            outcome.append(wait())
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=waiter, daemon=True)  # a daemon: a failure must not hang
    t.start()
    wait_until(lambda: waiters(namespace, "cw", 1, 2) > 0, 10, "the thread to wait on b")
    start = time.monotonic()
    b.close()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - start < 1  # within a wait slice (50 ms), give or take
    (e,) = outcome
    assert isinstance(e, shmbus.Closed), e
    # The waiter let go of its handle: the creator's close removed the board.
    assert shmbus.list() == []


def test_threads_write_their_own_keys():
    keys = ["k%d" % i for i in range(4)]
    b = shmbus.KeyedBlackboard.create("thr", keys, 32)
    n = 2000

    def writer(key):
        handle = b.key(key)
        for i in range(1, n + 1):
            value = b"%s:%d" % (key.encode(), i)
            assert (b.write(key, value) if i % 2 else handle.write(value)) == i

    threads = [threading.Thread(target=writer, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [b.read(k) for k in keys] == [(n, b"%s:%d" % (k.encode(), n)) for k in keys]


def test_list_persistence_and_removal(namespace):
    b = shmbus.KeyedBlackboard.create("keep", ["a"], 8, persistent=True, permissions=0o644)
    b.write("a", b"kept")
    (info,) = shmbus.list()
    assert (info.name, info.namespace, info.kind) == ("keep", namespace, "keyed-blackboard")
    assert (info.persistent, info.permissions, info.alive, info.problem) == (True, 0o644, True, None)
    assert info.creator_pid == os.getpid()
    b.close()
    assert shmbus.KeyedBlackboard.open("keep").read("a") == (1, b"kept")
    shmbus.remove("keep")
    assert shmbus.list() == []

    t = shmbus.KeyedBlackboard.create("temp", ["a"], 8)
    other = shmbus.KeyedBlackboard.open("temp")
    t.close()
    # The creator's close removes it; the other handle keeps working.
    assert shmbus.list() == []
    assert other.write("a", b"still") == 1
    assert other.read("a") == (1, b"still")


def test_plain_and_keyed_boards_are_different_kinds():
    plain = shmbus.Blackboard.create("plain", 8)
    keyed = shmbus.KeyedBlackboard.create("keyed", ["a"], 8)
    event = shmbus.Event.create("event")
    cases = {
        "KeyedBlackboard.open(plain)": lambda: shmbus.KeyedBlackboard.open("plain"),
        "KeyedBlackboard.create_or_open(plain)": lambda: shmbus.KeyedBlackboard.create_or_open(
            "plain", ["a"], 8
        ),
        "Blackboard.open(keyed)": lambda: shmbus.Blackboard.open("keyed"),
        "Blackboard.create_or_open(keyed)": lambda: shmbus.Blackboard.create_or_open("keyed", 8),
        # open_timeout waits for a missing object only.
        "KeyedBlackboard.open(event)": lambda: shmbus.KeyedBlackboard.open("event", open_timeout=5),
        "Event.open(keyed)": lambda: shmbus.Event.open("keyed"),
        "Subscriber(keyed)": lambda: shmbus.Subscriber("keyed"),
    }
    for what, call in cases.items():
        start = time.monotonic()
        with pytest.raises(shmbus.WrongKind) as e:
            call()
        assert time.monotonic() - start < 2, what
        assert "keyed-blackboard" in str(e.value), what
    assert keyed.write("a", b"k") == 1 and plain.write(b"p") == 1
    assert event is not None
    assert sorted((o.name, o.kind) for o in shmbus.list()) == [
        ("event", "event"),
        ("keyed", "keyed-blackboard"),
        ("plain", "blackboard"),
    ]


def test_scribbled_key_table_is_corrupt(namespace):
    shmbus.KeyedBlackboard.create("scribbled", ["a", "b"], 8, persistent=True).close()
    path = shm_path("scribbled", namespace)
    second = KEY_TABLE + 64  # the entry of key "b"
    assert (read_u32(path, KEY_TABLE), read_u32(path, second)) == (1, 1)
    for length in (0, 61):
        write_u32(path, second, length)
        with pytest.raises(shmbus.Corrupt, match="claims %d bytes" % length):
            shmbus.KeyedBlackboard.open("scribbled")
    write_u32(path, second, 1)
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, b"a", second + 4)  # now "a" twice
        with pytest.raises(shmbus.Corrupt, match="appears twice"):
            shmbus.KeyedBlackboard.open("scribbled")
        os.pwrite(fd, b"b", second + 4)
    finally:
        os.close(fd)
    assert shmbus.KeyedBlackboard.open("scribbled").keys == ("a", "b")


def test_a_busy_key_does_not_hold_up_the_others(namespace):
    first = shmbus.KeyedBlackboard.create("busy", ["a", "b"], 8)
    first.write("a", b"1")  # claims writer slot 1, held while `first` lives
    second = shmbus.KeyedBlackboard.open("busy")
    path = shm_path("busy", namespace)
    writer_a = keyed_control(0, 2) + WRITER
    assert read_u32(path, writer_a) == 0
    # As if `first` were stuck inside a write of "a": the key's lock names its live slot.
    write_u32(path, writer_a, 1)
    try:
        assert second.write("b", b"free") == 1  # writers of other keys never contend
        start = time.monotonic()
        with pytest.raises(shmbus.Busy) as e:
            second.write("a", b"2")
        assert time.monotonic() - start >= 0.5
        assert '"a"' in str(e.value)
        assert second.read("a") == (1, b"1")  # readers never wait for a writer
    finally:
        write_u32(path, writer_a, 0)
    assert second.write("a", b"3") == 2


# ---------------------------------------------------------------------------------------
# Python children

CHILD_WRITER = r"""
import sys, shmbus
b = shmbus.KeyedBlackboard.open("multi", open_timeout=10)
handles = [b.key(k) for k in ("a", "b", "c")]
print("ready", flush=True)
sys.stdin.readline()
for i in range(1, WRITES + 1):
    for h in handles:
        h.write(("%s:%d:" % (h.key, i)).encode().ljust(SIZE, b"."))
print("done", flush=True)
"""


def test_python_child_writes_keys_while_the_parent_reads(procs):
    writes, size = 2000, 48
    b = shmbus.KeyedBlackboard.create("multi", ["a", "b", "c", "idle"], size)
    code = CHILD_WRITER.replace("WRITES", str(writes)).replace("SIZE", str(size))
    child = procs.python(code)
    assert child.stdout.readline().strip() == "ready", child.stderr.read()
    child.stdin.write("go\n")
    child.stdin.flush()
    last = dict.fromkeys("abc", 0)
    while True:
        finished = child.poll() is not None
        for key in "abc":
            version, value = b.read(key)
            assert version >= last[key], (key, version, last[key])
            if version:
                # Never torn, never another key's value: the value of exactly that version.
                expected = ("%s:%d:" % (key, version)).encode().ljust(size, b".")
                assert value == expected, (key, version, value)
            last[key] = version
        if finished:
            break
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out.strip() == "done"
    assert last == dict.fromkeys("abc", writes)
    assert b.read("idle") == (0, b"")


CHILD_WAITER = r"""
import shmbus
b = shmbus.KeyedBlackboard.open("wake", open_timeout=10)
version = b.wait_newer("a", 0, timeout=30)
print(version, b.read("a"), flush=True)
"""


def test_python_child_waiting_on_a_key_wakes_only_for_that_key(procs, namespace):
    b = shmbus.KeyedBlackboard.create("wake", ["a", "b"], 16)
    child = procs.python(CHILD_WAITER)
    wait_until(lambda: waiters(namespace, "wake", 0, 2) > 0, 10, "the child to wait on a")
    for i in range(3):
        b.write("b", b"b%d" % i)
    time.sleep(0.2)
    assert child.poll() is None, child.communicate()
    assert b.write("a", b"for you") == 1
    out, err = child.communicate(timeout=20)
    assert child.returncode == 0, err
    assert out.strip() == "1 (1, b'for you')"


# ---------------------------------------------------------------------------------------
# The CLI: shmbus board write/read/watch --key


def test_cli_creates_a_keyed_board_python_reads_and_writes(cli):
    r = cli_run(cli, "board", "write", "ck", "--key", "b", "--keys", "a,b,c", "from the cli")
    assert r.returncode == 0, r.stderr
    b = shmbus.KeyedBlackboard.open("ck", open_timeout=0)
    assert b.keys == ("a", "b", "c")
    assert b.capacity == 4096
    assert b.read("b") == (1, b"from the cli")
    assert b.read("a") == (0, b"") and b.read("c") == (0, b"")
    r = cli_run(cli, "board", "write", "ck", "--key", "c", input=b"\x00binary\xff\n")  # stdin
    assert r.returncode == 0, r.stderr
    assert b.wait_newer("c", 0, timeout=10) == 1
    assert b.read("c") == (1, b"\x00binary\xff\n")
    assert b.version("b") == 1
    (info,) = shmbus.list()
    assert info.kind == "keyed-blackboard" and info.persistent is True
    # Python writes, the CLI reads the exact bytes.
    assert b.key("a").write(b"from python\n") == 1
    r = cli_run(cli, "board", "read", "ck", "--key", "a")
    assert (r.returncode, r.stdout) == (0, b"from python\n"), r.stderr


def test_python_keyed_board_cli_reads_and_writes(cli):
    b = shmbus.KeyedBlackboard.create("pk", ["x", "y"], 64)
    value = bytes(range(64))
    b.write("x", value)
    r = cli_run(cli, "board", "read", "pk", "--key", "x")
    assert r.returncode == 0, r.stderr
    assert r.stdout == value
    r = cli_run(cli, "board", "read", "pk", "--key", "y")
    assert (r.returncode, r.stdout) == (0, b""), r.stderr
    r = cli_run(cli, "board", "write", "pk", "--key", "y", "cli")
    assert r.returncode == 0, r.stderr
    assert b.read("y") == (1, b"cli")
    assert b.read("x") == (1, value)
    # --keys only serves to create: the existing board keeps its own keys.
    r = cli_run(cli, "board", "write", "pk", "--key", "y", "--keys", "y,z", "again")
    assert r.returncode == 0, r.stderr
    assert b.read("y") == (2, b"again")
    # The CLI sees each key's version and length.
    r = cli_run(cli, "info", "pk", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["kind"] == "keyed-blackboard" and info["capacity"] == 64
    keys = [(k["key"], k["version"], k["len"]) for k in info["state"]["keys"]]
    assert keys == [("x", 1, 64), ("y", 2, 5)]
    # Refused by the CLI, and nothing changes.
    r = cli_run(cli, "board", "write", "pk", "--key", "y", "x" * 65)
    assert r.returncode != 0
    r = cli_run(cli, "board", "read", "pk", "--key", "speed")
    assert r.returncode != 0 and b'no key "speed"' in r.stderr
    r = cli_run(cli, "board", "write", "pk", "--key", "speed", "x")
    assert r.returncode != 0 and b'no key "speed"' in r.stderr
    r = cli_run(cli, "board", "read", "pk")  # without --key: a plain blackboard
    assert r.returncode != 0 and b"keyed-blackboard" in r.stderr
    assert (b.read("x"), b.read("y")) == ((1, value), (2, b"again"))


def test_cli_watch_of_a_key_sees_only_that_keys_python_writes(cli, procs, namespace):
    b = shmbus.KeyedBlackboard.create("kw", ["a", "b"], 64)
    watch = procs.popen([cli, "board", "watch", "kw", "--key", "b", "--count", "2", "--timeout", "20"])
    # The watcher sleeps in wait_newer once it is registered in key b's waiters word.
    wait_until(lambda: waiters(namespace, "kw", 1, 2) > 0, 10, "the CLI to watch b")
    for value in ("first", "second"):
        b.write("a", b"not for the watcher")
        b.write("b", value.encode())
        # One at a time: wait for the line, then for the watcher to wait again.
        assert watch.stdout.readline() == value + "\n"
        if value == "first":
            wait_until(lambda: waiters(namespace, "kw", 1, 2) > 0, 10, "the CLI to watch b")
    out, err = watch.communicate(timeout=20)
    assert watch.returncode == 0, err
    assert (out, err) == ("", "")
    assert (b.version("a"), b.version("b")) == (2, 2)
