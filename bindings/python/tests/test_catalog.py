"""shmbus.list, shmbus.gc and shmbus.remove."""

import os
import signal
import time

import pytest

import shmbus


def test_list_describes_every_object(namespace):
    start = time.time()
    p = shmbus.Publisher("chan", capacity=4096, max_subscribers=2, persistent=True)
    b = shmbus.Blackboard.create("board", 64, permissions=0o640)
    e = shmbus.Event.create("event")
    objects = {o.name: o for o in shmbus.list()}
    assert set(objects) == {"chan", "board", "event"}
    for o in objects.values():
        assert isinstance(o, shmbus.ObjectInfo)
        assert o.namespace == namespace
        assert o.owner == os.geteuid()
        assert o.creator_pid == os.getpid()
        assert start - 1 <= o.created <= time.time() + 1
        assert o.alive is True
        assert o.problem is None
    chan, board, event = objects["chan"], objects["board"], objects["event"]
    assert (chan.kind, board.kind, event.kind) == ("channel", "blackboard", "event")
    # Sizes from LAYOUT.md: header 128, then the kind's state.
    assert chan.size == 128 + 384 + 128 * 2 + 4096
    assert board.size == 128 + 256 + 4 * 64  # four copies of the value
    assert event.size == 128 + 256
    assert (chan.permissions, board.permissions, event.permissions) == (0o600, 0o640, 0o600)
    assert (chan.persistent, board.persistent, event.persistent) == (True, False, False)
    # Named fields and tuple order agree.
    assert chan == shmbus.ObjectInfo(*chan)
    assert chan._fields == (
        "name", "namespace", "kind", "size", "owner", "permissions", "creator_pid",
        "created", "persistent", "alive", "problem",
    )  # fmt: skip
    p.close()
    (chan,) = [o for o in shmbus.list() if o.name == "chan"]
    assert chan.alive is False  # persistent, publisher gone
    assert b and e


def test_list_by_namespace(make_namespace, namespace):
    other = make_namespace()
    shmbus.Blackboard.create("here", 8, persistent=True).close()
    shmbus.Blackboard.create("there", 8, namespace=other, persistent=True).close()
    assert [o.name for o in shmbus.list()] == ["here"]
    assert [o.name for o in shmbus.list(namespace)] == ["here"]
    assert [(o.name, o.namespace) for o in shmbus.list(other)] == [("there", other)]
    assert shmbus.list(make_namespace()) == []


def test_remove():
    b = shmbus.Blackboard.create("doomed", 16)
    b.write(b"before")
    other = shmbus.Blackboard.open("doomed")
    shmbus.remove("doomed")
    assert shmbus.list() == []
    with pytest.raises(shmbus.NotFound):
        shmbus.Blackboard.open("doomed", open_timeout=0)
    # Open handles keep working.
    assert other.write(b"after") == 2
    assert b.read() == (2, b"after")
    # The name is free again.
    again = shmbus.Blackboard.create("doomed", 16)
    assert again.read() == (0, b"")
    with pytest.raises(shmbus.NotFound):
        shmbus.remove("never-existed")


def test_remove_in_namespace(make_namespace):
    other = make_namespace()
    shmbus.Event.create("ev", namespace=other, persistent=True).close()
    with pytest.raises(shmbus.NotFound):
        shmbus.remove("ev")  # not in $SHMBUS_NAMESPACE
    shmbus.remove("ev", namespace=other)
    assert shmbus.list(other) == []


def test_gc_removes_what_dead_creators_left(procs):
    code = """
import sys, shmbus
keep = [
    shmbus.Publisher("dead-chan"),
    shmbus.Blackboard.create("dead-board", 8),
    shmbus.Event.create("dead-event"),
    shmbus.Blackboard.create("dead-but-persistent", 8, persistent=True),
]
print("ready", flush=True)
sys.stdin.read()
"""
    live = shmbus.Blackboard.create("live-board", 8)
    live_chan = shmbus.Publisher("live-chan")
    child = procs.python(code)
    assert child.stdout.readline().strip() == "ready"
    # While the creator lives, nothing is garbage.
    assert shmbus.gc(dry_run=True) == []
    child.send_signal(signal.SIGKILL)  # no chance to clean up
    child.wait(10)
    names = {o.name for o in shmbus.list()}
    assert names == {
        "dead-chan", "dead-board", "dead-event", "dead-but-persistent", "live-board", "live-chan",
    }  # fmt: skip
    garbage = {"dead-chan", "dead-board", "dead-event"}

    found = shmbus.gc(dry_run=True)
    assert {name for name, _ in found} == garbage
    assert all(isinstance(why, str) and why for _, why in found)
    assert {o.name for o in shmbus.list()} == names  # dry run: nothing removed

    removed = shmbus.gc()
    assert {name for name, _ in removed} == garbage
    assert {o.name for o in shmbus.list()} == names - garbage
    assert shmbus.gc() == []
    assert live.write(b"alive") == 1
    assert live_chan.published == 0


def test_gc_in_namespace(make_namespace, procs):
    other = make_namespace()
    code = (
        "import sys, shmbus\n"
        "b = shmbus.Blackboard.create('x', 8, namespace=%r)\n"
        "print('ready', flush=True)\n"
        "sys.stdin.read()\n" % other
    )
    child = procs.python(code)
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert shmbus.gc() == []  # $SHMBUS_NAMESPACE holds nothing
    assert [name for name, _ in shmbus.gc(namespace=other)] == ["x"]
    assert shmbus.list(other) == []
