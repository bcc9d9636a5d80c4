"""Blackboard, Event and Duplex within one process."""

import threading
import time

import numpy as np
import pytest

import shmbus

from helpers import wait_until

# ---------------------------------------------------------------------------------------
# Blackboard


def test_blackboard_create_write_read(namespace):
    b = shmbus.Blackboard.create("board", 64)
    assert b.name == "board"
    assert b.namespace == namespace
    assert b.capacity == 64
    assert "board" in repr(b)
    assert b.version == 0
    assert b.read() == (0, b"")
    assert b.write(b"hello") == 1
    assert b.version == 1
    assert b.read() == (1, b"hello")
    assert b.write(bytearray(b"ba")) == 2
    assert b.write(memoryview(b"mv")) == 3
    assert b.write(np.array([1, 2], dtype=np.uint16)) == 4
    assert b.read() == (4, np.array([1, 2], dtype=np.uint16).tobytes())
    assert b.write(b"x" * 64) == 5
    assert b.read() == (5, b"x" * 64)
    assert b.write(b"") == 6
    assert b.read() == (6, b"")
    with pytest.raises(shmbus.TooLarge):
        b.write(b"x" * 65)
    assert b.read() == (6, b"")


def test_blackboard_open_shares_the_value():
    b = shmbus.Blackboard.create("shared", 32)
    b.write(b"one")
    o = shmbus.Blackboard.open("shared", open_timeout=0)
    assert o.capacity == 32
    assert o.read() == (1, b"one")
    assert o.write(b"two") == 2
    assert b.read() == (2, b"two")
    assert b.version == 2


def test_blackboard_create_or_open():
    made = shmbus.Blackboard.create_or_open("coo", 16)
    assert made.capacity == 16
    made.write(b"v")
    # Exists: keeps its own capacity.
    opened = shmbus.Blackboard.create_or_open("coo", 1000)
    assert opened.capacity == 16
    assert opened.read() == (1, b"v")
    with pytest.raises(shmbus.AlreadyExists):
        shmbus.Blackboard.create("coo", 16)


def test_blackboard_wait_newer():
    b = shmbus.Blackboard.create("wn", 16)
    start = time.monotonic()
    assert b.wait_newer(0, timeout=0.1) is None
    assert time.monotonic() - start >= 0.09
    b.write(b"a")
    assert b.wait_newer(0, timeout=0) == 1
    assert b.wait_newer(1, timeout=0) is None
    writer = shmbus.Blackboard.open("wn")
    threading.Timer(0.05, writer.write, (b"b",)).start()
    assert b.wait_newer(1) == 2
    assert b.read() == (2, b"b")


def test_blackboard_persistent_and_removal():
    b = shmbus.Blackboard.create("keep", 8, persistent=True, permissions=0o644)
    b.write(b"kept")
    (info,) = shmbus.list()
    assert (info.kind, info.persistent, info.permissions) == ("blackboard", True, 0o644)
    b.close()
    assert shmbus.Blackboard.open("keep").read() == (1, b"kept")

    t = shmbus.Blackboard.create("temp", 8)
    other = shmbus.Blackboard.open("temp")
    t.close()
    # The creator's close removes it; the other handle keeps working.
    assert [o.name for o in shmbus.list()] == ["keep"]
    assert other.write(b"still") == 1
    assert other.read() == (1, b"still")


def test_blackboard_close_and_context_manager():
    with shmbus.Blackboard.create("cm", 8) as b:
        b.write(b"x")
    for call in (b.read, lambda: b.write(b"y"), lambda: b.version, lambda: b.wait_newer(0, 0)):
        with pytest.raises(shmbus.Closed):
            call()
    with pytest.raises(shmbus.Closed):
        b.on_update(lambda v, d: None)
    b.close()  # harmless
    assert shmbus.list() == []


def test_blackboard_on_update():
    b = shmbus.Blackboard.create("upd", 16)
    seen = []
    last = threading.Event()
    main = threading.get_ident()
    threads = set()

    def on_update(version, value):
        threads.add(threading.get_ident())
        seen.append((version, value))
        if version == 3:
            last.set()

    guard = b.on_update(on_update)
    assert guard.running
    for v in (b"1", b"22", b"333"):
        b.write(v)
    assert last.wait(10)
    stats = guard.stop()
    assert not guard.running
    assert isinstance(stats, shmbus.HandlerStats)
    values = {1: b"1", 2: b"22", 3: b"333"}
    # Each callback gets a whole, matching value; versions increase; skipped ones count.
    assert all(values[v] == d for v, d in seen)
    assert [v for v, _ in seen] == sorted({v for v, _ in seen})
    assert seen[-1] == (3, b"333")
    assert stats.delivered == len(seen)
    assert stats.delivered + stats.lost == 3
    assert main not in threads
    # Stopped: no more callbacks.
    b.write(b"after")
    assert b.wait_newer(3, timeout=0) == 4
    assert seen[-1] == (3, b"333")


# ---------------------------------------------------------------------------------------
# Event


def test_event_auto_reset(namespace):
    e = shmbus.Event.create("auto")
    assert e.manual_reset is False
    assert e.name == "auto" and e.namespace == namespace
    assert "auto" in repr(e)
    assert e.is_set() is False
    assert e.wait(0) is False
    e.set()
    assert e.is_set() is True
    assert e.wait(0) is True
    # Consumed by the wait.
    assert e.is_set() is False
    start = time.monotonic()
    assert e.wait(0.1) is False
    assert time.monotonic() - start >= 0.09
    e.set()
    e.reset()
    assert e.wait(0) is False


def test_event_manual_reset():
    e = shmbus.Event.create("manual", manual_reset=True)
    assert e.manual_reset is True
    e.set()
    assert e.wait(0) is True
    assert e.wait(1) is True
    assert e.is_set() is True
    e.reset()
    assert e.is_set() is False
    assert e.wait(0.01) is False


def test_event_open_shares_state():
    e = shmbus.Event.create("shared", manual_reset=True)
    o = shmbus.Event.open("shared", open_timeout=0)
    assert o.manual_reset is True
    o.set()
    assert e.is_set()
    e.reset()
    assert not o.is_set()


def test_event_wait_wakes_on_set():
    e = shmbus.Event.create("wake")
    o = shmbus.Event.open("wake")
    threading.Timer(0.05, o.set).start()
    start = time.monotonic()
    assert e.wait() is True
    assert time.monotonic() - start < 5


def test_auto_reset_set_releases_one_waiter():
    e = shmbus.Event.create("one")
    results = []

    def waiter():
        results.append(e.wait(10))

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    e.set()
    wait_until(lambda: len(results) == 1, what="one waiter released")
    still = [t for t in threads if t.is_alive()]
    assert len(still) == 1
    still[0].join(0.1)
    assert still[0].is_alive(), "a single set released two waiters"
    e.set()
    for t in threads:
        t.join(10)
    assert results == [True, True]


def test_event_create_or_open():
    e = shmbus.Event.create_or_open("coo", manual_reset=True)
    assert e.manual_reset
    again = shmbus.Event.create_or_open("coo", manual_reset=True)
    again.set()
    assert e.is_set()
    with pytest.raises(shmbus.InvalidConfig):
        shmbus.Event.create_or_open("coo", manual_reset=False)
    with pytest.raises(shmbus.AlreadyExists):
        shmbus.Event.create("coo")


def test_event_close_and_context_manager():
    with shmbus.Event.create("cm") as e:
        e.set()
    for call in (e.set, e.reset, e.is_set, e.wait):
        with pytest.raises(shmbus.Closed):
            call()
    e.close()
    assert shmbus.list() == []


# ---------------------------------------------------------------------------------------
# Duplex


def test_duplex_send_recv_both_ways():
    server = shmbus.Duplex.listen("link")
    client = shmbus.Duplex.connect("link", open_timeout=0)
    assert "link" in repr(server)
    client.send(b"up")
    client.send(np.array([1, 2], dtype=np.uint8))
    assert server.recv(timeout=5) == (b"up", None)
    assert server.recv(timeout=5) == (b"\x01\x02", None)
    server.send(bytearray(b"down"))
    assert client.recv(timeout=5) == (b"down", None)
    with pytest.raises(shmbus.Timeout):
        server.recv(timeout=0.05)
    with pytest.raises(shmbus.Timeout):
        client.recv(timeout=0.05)


def test_duplex_request_reply():
    server = shmbus.Duplex.listen("rpc")
    client = shmbus.Duplex.connect("rpc")
    ids = []

    def serve():
        for _ in range(3):
            data, request_id = server.recv(timeout=10)
            ids.append(request_id)
            server.reply(request_id, data.upper())

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert client.request(b"ping", timeout=10) == b"PING"
        assert client.request(memoryview(b"abc"), timeout=10) == b"ABC"
        assert client.request(b"", timeout=10) == b""
    finally:
        t.join(10)
    assert all(isinstance(i, int) for i in ids)
    assert len(set(ids)) == 3
    # Nobody answers: Timeout.
    start = time.monotonic()
    with pytest.raises(shmbus.Timeout):
        client.request(b"unanswered", timeout=0.1)
    assert time.monotonic() - start >= 0.09
    data, request_id = server.recv(timeout=5)
    assert data == b"unanswered" and request_id is not None


def test_duplex_errors_and_close():
    server = shmbus.Duplex.listen("d")
    with pytest.raises(shmbus.AlreadyExists):
        shmbus.Duplex.listen("d")
    with shmbus.Duplex.connect("d") as client:
        with pytest.raises(shmbus.PublisherExists):
            shmbus.Duplex.connect("d", open_timeout=0)
        client.send(b"bye")
    for call in (lambda: client.send(b"x"), client.recv, lambda: client.request(b"x", 1)):
        with pytest.raises(shmbus.Closed):
            call()
    with pytest.raises(shmbus.Closed):
        client.reply(1, b"x")
    assert server.recv(timeout=5) == (b"bye", None)
    # A new client may connect once the first one has gone.
    client2 = shmbus.Duplex.connect("d")
    server.close()
    server.close()  # harmless
    with pytest.raises(shmbus.Disconnected):
        client2.recv(timeout=5)
    with pytest.raises(shmbus.Closed):
        server.recv(timeout=0)
    client2.close()
    assert shmbus.list() == []
