"""WaitSet: every kind of source, in one process, across threads, with Python children and
with the ``shmbus`` CLI (Rust); detaching, timeouts, errors, the GIL and Ctrl-C."""

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import shmbus

from helpers import interrupt_when_blocked, run_python, thread_blocked, wait_blocked, wait_until


def cli_run(cli, *args, timeout=30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([cli, *args], capture_output=True, timeout=timeout, **kw)


# ---------------------------------------------------------------------------------------
# The set itself


def test_empty_set():
    ws = shmbus.WaitSet()
    assert len(ws) == 0
    assert not ws
    assert repr(ws) == "<shmbus.WaitSet of 0 attachments>"
    assert ws.wait(0) == []
    assert ws.wait(0.01) == []
    assert isinstance(shmbus.WaitSet.MAX_OBJECTS, int) and shmbus.WaitSet.MAX_OBJECTS > 0
    assert "WaitSet" in shmbus.__all__


def test_keys_are_numbered_in_attachment_order_and_never_reused():
    ws = shmbus.WaitSet()
    e = shmbus.Event.create("numbers", manual_reset=True)
    keys = [ws.attach_event(e) for _ in range(3)]
    assert keys == [0, 1, 2]
    assert all(type(k) is int for k in keys)
    assert len(ws) == 3
    assert ws.detach(1) is True
    assert len(ws) == 2
    # The library reuses its slot; the Python key is new.
    assert ws.attach_timer(3600) == 3
    assert ws.attach_event(e) == 4
    assert len(ws) == 4
    e.set()
    assert ws.wait(0) == [0, 2, 4]  # ascending: the order of attachment
    assert repr(ws) == "<shmbus.WaitSet of 4 attachments>"


def test_detach():
    ws = shmbus.WaitSet()
    e = shmbus.Event.create("det", manual_reset=True)
    b = shmbus.Blackboard.create("detb", 8)
    ke = ws.attach_event(e)
    kb = ws.attach_blackboard(b)
    e.set()
    b.write(b"v")
    assert ws.wait(0) == [ke, kb]
    assert ws.detach(ke) is True
    assert ws.detach(ke) is False  # already detached
    assert len(ws) == 1
    b.write(b"w")
    assert ws.wait(0) == [kb]  # the set event is no longer looked at
    for never in (-1, 2, 10**6, 2**64, -(2**70)):
        assert ws.detach(never) is False
    assert len(ws) == 1
    with pytest.raises(TypeError):
        ws.detach("0")
    assert ws.detach(kb) is True
    assert len(ws) == 0
    assert ws.wait(0.01) == []


def test_wait_timeout_returns_an_empty_list():
    ws = shmbus.WaitSet()
    ws.attach_event(shmbus.Event.create("quiet"))
    ws.attach_blackboard(shmbus.Blackboard.create("quietb", 8))
    ws.attach_timer(3600)
    start = time.monotonic()
    assert ws.wait(0.2) == []
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 10
    assert ws.wait(0) == []
    # Longer than any wait can last: no limit, as other timeouts (here ready at once).
    e = shmbus.Event.create("loud", manual_reset=True)
    k = ws.attach_event(e)
    e.set()
    assert ws.wait(float("inf")) == [k]
    assert ws.wait(1e300) == [k]


def test_several_ready_at_once_in_one_wait():
    ws = shmbus.WaitSet()
    p = shmbus.Publisher("many")
    s = shmbus.Subscriber("many")
    b = shmbus.Blackboard.create("manyb", 16)
    e = shmbus.Event.create("manye", manual_reset=True)
    ks, kb, ke = ws.attach_subscriber(s), ws.attach_blackboard(b), ws.attach_event(e)
    p.send(b"tick")
    b.write(b"21.5")
    e.set()
    assert ws.wait(5) == [ks, kb, ke]
    assert s.recv(0) == b"tick"
    e.reset()
    assert ws.wait(0) == []


# ---------------------------------------------------------------------------------------
# Subscribers


def test_subscriber_ready_while_it_has_a_message():
    p = shmbus.Publisher("sub")
    s = shmbus.Subscriber("sub")
    ws = shmbus.WaitSet()
    k = ws.attach_subscriber(s)
    assert ws.wait(0) == []
    p.send(b"one")
    p.send(b"two")
    assert ws.wait(5) == [k]
    # Level-triggered: ready until everything is received.
    assert ws.wait(0) == [k]
    assert s.recv(0) == b"one"
    assert ws.wait(0) == [k]
    assert s.recv(0) == b"two"
    assert ws.wait(0) == []
    assert ws.wait(0.05) == []


def test_subscriber_ready_at_the_end_of_the_stream():
    p = shmbus.Publisher("eos")
    s = shmbus.Subscriber("eos")
    ws = shmbus.WaitSet()
    k = ws.attach_subscriber(s)
    p.send(b"last")
    p.close()
    assert ws.wait(5) == [k]
    assert s.recv(0) == b"last"
    assert ws.wait(5) == [k]  # the end of the stream, to receive
    with pytest.raises(shmbus.Disconnected):
        s.recv(0)
    assert ws.wait(0) == [k]  # and it stays the end
    assert ws.detach(k)
    assert ws.wait(0) == []


def test_subscriber_ready_with_a_loss_to_report():
    p = shmbus.Publisher("lossy", capacity=1024)
    s = shmbus.Subscriber("lossy")
    ws = shmbus.WaitSet()
    k = ws.attach_subscriber(s)
    for i in range(200):
        p.send(b"%064d" % i)
    assert ws.wait(5) == [k]
    with pytest.raises(shmbus.Lagged) as e:
        s.recv(0)
    assert e.value.lost > 0
    assert ws.wait(0) == [k]  # what is still in the ring
    while s.try_recv() is not None:
        pass
    assert ws.wait(0) == []


def test_subscriber_ready_with_a_message_a_cancelled_recv_async_gave_back():
    p = shmbus.Publisher("stash")
    s = shmbus.Subscriber("stash")
    ws = shmbus.WaitSet()
    k = ws.attach_subscriber(s)
    p.send(b"given back")

    async def cancelled_after_its_future_got_the_message():
        # What ``recv_async`` does when the cancellation comes after its future got the
        # message: the message goes back to the subscriber (not to the ring).
        fut, token = s._recv_future(None)
        assert fut.done()
        token.cancel(fut.result())

    asyncio.run(cancelled_after_its_future_got_the_message())
    assert ws.wait(5) == [k]
    assert ws.wait(0) == [k]
    assert s.recv(0) == b"given back"
    assert ws.wait(0) == []


def test_subscriber_dropped_while_attached():
    p = shmbus.Publisher("dropped", mode="backpressure", capacity=1024)
    s = shmbus.Subscriber("dropped")
    ws = shmbus.WaitSet()
    k = ws.attach_subscriber(s)
    assert p.subscriber_count == 1
    del s
    gc.collect()
    # The set does not keep the subscriber: it left the channel (a back-pressure publisher
    # does not wait for it).
    assert p.subscriber_count == 0
    for _ in range(100):
        p.send(b"x" * 64, timeout=5)
    assert len(ws) == 1
    ws.wait(0)  # whatever the set's own view says, it still works
    assert ws.detach(k)


def test_subscriber_woken_by_a_send_from_another_thread():
    p = shmbus.Publisher("thr")
    s = shmbus.Subscriber("thr")
    ws = shmbus.WaitSet()
    k = ws.attach_subscriber(s)
    sender = threading.Timer(0.1, lambda: p.send(b"late"))
    sender.start()
    try:
        assert ws.wait(20) == [k]
    finally:
        sender.join()
    assert s.recv(0) == b"late"


# ---------------------------------------------------------------------------------------
# Events


def test_manual_reset_event_ready_while_set():
    e = shmbus.Event.create("manual", manual_reset=True)
    ws = shmbus.WaitSet()
    k = ws.attach_event(e)
    assert ws.wait(0) == []
    threading.Timer(0.05, e.set).start()
    assert ws.wait(20) == [k]
    assert ws.wait(0) == [k]
    assert e.is_set()  # not consumed
    e.reset()
    assert ws.wait(0) == []


def test_auto_reset_event_release_taken_by_the_set():
    e = shmbus.Event.create("auto")
    ws = shmbus.WaitSet()
    k = ws.attach_event(e)
    e.set()
    assert ws.wait(5) == [k]
    # The set took the release for us: nobody else gets it, and it is not ready again.
    assert e.is_set() is False
    assert e.wait(0) is False
    assert ws.wait(0) == []
    threading.Timer(0.05, e.set).start()
    assert ws.wait(20) == [k]
    assert ws.wait(0.05) == []


def test_auto_reset_release_goes_to_one_of_two_threads_sharing_a_set():
    e = shmbus.Event.create("one-of-two")
    ws = shmbus.WaitSet()
    k = ws.attach_event(e)
    results = []
    threads = [threading.Thread(target=lambda: results.append(ws.wait(1.0))) for _ in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: all(t.native_id and thread_blocked(t.native_id) for t in threads))
    e.set()
    for t in threads:
        t.join(20)
    assert sorted(results) == [[], [k]]
    assert not e.is_set()


# ---------------------------------------------------------------------------------------
# Blackboards and keys


def test_blackboard_ready_once_per_version():
    b = shmbus.Blackboard.create("bb", 32)
    b.write(b"before")  # older than the attachment: not reported
    ws = shmbus.WaitSet()
    k = ws.attach_blackboard(b)
    assert ws.wait(0) == []
    b.write(b"v2")
    assert ws.wait(5) == [k]
    assert ws.wait(0) == []  # once per version
    b.write(b"v3")
    b.write(b"v4")
    assert ws.wait(5) == [k]  # both at once: the latest is what a read returns
    assert ws.wait(0) == []
    assert b.read() == (4, b"v4")
    reader = shmbus.Blackboard.open("bb")
    threading.Timer(0.05, lambda: reader.write(b"v5")).start()
    assert ws.wait(20) == [k]


def test_board_key_ready_for_its_own_key_only():
    kb = shmbus.KeyedBlackboard.create("kb", ["pose", "battery"], 32)
    ws = shmbus.WaitSet()
    pose = ws.attach_board_key(kb.key("pose"))
    battery = ws.attach_board_key(kb.key("battery"))
    kb.write("battery", b"87%")
    assert ws.wait(5) == [battery]
    assert ws.wait(0) == []
    kb.key("pose").write(b"x=1")
    assert ws.wait(5) == [pose]
    kb.write("pose", b"x=2")
    kb.write("battery", b"86%")
    assert ws.wait(5) == [pose, battery]
    assert ws.wait(0) == []


# ---------------------------------------------------------------------------------------
# Timers


def test_timer_ready_once_per_period():
    ws = shmbus.WaitSet()
    slow = ws.attach_timer(3600)
    fast = ws.attach_timer(0.02)
    start = time.monotonic()
    for _ in range(3):
        assert ws.wait(20) == [fast]
    elapsed = time.monotonic() - start
    assert elapsed >= 0.05  # three periods of 20 ms, give or take the clock
    assert ws.detach(fast)
    assert ws.wait(0.05) == []
    assert slow == 0


def test_timer_not_ready_before_its_period():
    ws = shmbus.WaitSet()
    ws.attach_timer(3600)
    assert ws.wait(0) == []
    assert ws.wait(0.05) == []


# ---------------------------------------------------------------------------------------
# Appearances


def test_appearance_of_an_object_created_later_by_another_thread():
    ws = shmbus.WaitSet()
    k = ws.attach_appearance("later")
    assert ws.wait(0) == []
    made = []
    maker = threading.Timer(0.1, lambda: made.append(shmbus.Blackboard.create("later", 8)))
    maker.start()
    try:
        assert ws.wait(20) == [k]
    finally:
        maker.join()
    # Once: it can be opened now, and it is not reported again.
    assert shmbus.Blackboard.open("later").capacity == 8
    assert ws.wait(0.05) == []
    assert len(ws) == 1


def test_appearance_of_an_existing_object_at_the_next_wait():
    e = shmbus.Event.create("there")
    ws = shmbus.WaitSet()
    k = ws.attach_appearance("there")
    assert ws.wait(0) == [k]
    assert ws.wait(0) == []
    assert e.name == "there"


def test_appearance_in_another_namespace(make_namespace):
    other = make_namespace()
    ws = shmbus.WaitSet()
    k = ws.attach_appearance("elsewhere", namespace=other)
    here = shmbus.Event.create("elsewhere")  # the test's namespace: not the one awaited
    assert ws.wait(0.05) == []
    there = shmbus.Event.create("elsewhere", namespace=other)
    assert ws.wait(20) == [k]
    assert here and there


def test_appearance_of_an_untrusted_owner_is_reported_once_for_the_open_to_refuse():
    ws = shmbus.WaitSet()
    untrusted = ws.attach_appearance("foreign", require_owner=os.geteuid() + 12345)
    trusted = ws.attach_appearance("foreign", allow_owner=[os.geteuid()])
    b = shmbus.Blackboard.create("foreign", 8)
    # Both are reported once: the trusted one can be opened, and the other one never can
    # (its open says why), so waiting for it any longer would be waiting forever.
    seen = set()
    while seen != {untrusted, trusted}:
        got = ws.wait(20)
        assert got, "both attachments within 20 s"
        seen.update(got)
    assert ws.wait(0.05) == []
    with pytest.raises(shmbus.Error):
        shmbus.Blackboard.open("foreign", require_owner=os.geteuid() + 12345)
    assert b.capacity == 8


def test_appearance_bad_arguments():
    ws = shmbus.WaitSet()
    with pytest.raises(shmbus.InvalidName):
        ws.attach_appearance("bad/name")
    with pytest.raises(shmbus.InvalidName):
        ws.attach_appearance("x", namespace="bad/ns")
    with pytest.raises(TypeError):
        ws.attach_appearance("x", allow_owner="root")
    with pytest.raises(TypeError):
        ws.attach_appearance("x", "ns")  # namespace is keyword-only
    assert len(ws) == 0


# ---------------------------------------------------------------------------------------
# The set keeps its own view; errors


def test_closing_an_attached_object_does_not_detach_it():
    e = shmbus.Event.create("kept", manual_reset=True)
    opened = shmbus.Event.open("kept")
    ws = shmbus.WaitSet()
    k = ws.attach_event(opened)
    opened.close()
    e.set()
    assert ws.wait(5) == [k]


def test_attaching_a_closed_object_is_closed():
    p = shmbus.Publisher("closed")
    s = shmbus.Subscriber("closed")
    handed = shmbus.Subscriber("closed")
    b = shmbus.Blackboard.create("closedb", 8)
    kb = shmbus.KeyedBlackboard.create("closedk", ["k"], 8)
    key = kb.key("k")
    e = shmbus.Event.create("closede")
    guard = handed.on_message(lambda m: None)  # the subscriber is the handler's now
    for obj in (s, b, kb, e):
        obj.close()
    ws = shmbus.WaitSet()
    for attach in (
        lambda: ws.attach_subscriber(s),
        lambda: ws.attach_subscriber(handed),
        lambda: ws.attach_blackboard(b),
        lambda: ws.attach_board_key(key),
        lambda: ws.attach_event(e),
    ):
        with pytest.raises(shmbus.Closed) as exc:
            attach()
        assert isinstance(exc.value, ValueError)
    assert len(ws) == 0
    guard.stop()
    assert p.name == "closed"


def test_attaching_the_wrong_type_is_a_type_error():
    e = shmbus.Event.create("typed")
    ws = shmbus.WaitSet()
    with pytest.raises(TypeError):
        ws.attach_subscriber(e)
    with pytest.raises(TypeError):
        ws.attach_blackboard(e)
    with pytest.raises(TypeError):
        ws.attach_board_key(shmbus.Blackboard.create("typedb", 8))
    with pytest.raises(TypeError):
        ws.attach_event(None)
    assert len(ws) == 0


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.001, float("nan")], ids=str)
def test_timer_period_must_be_above_zero(bad):
    ws = shmbus.WaitSet()
    with pytest.raises(ValueError, match="period"):
        ws.attach_timer(bad)
    assert len(ws) == 0


def test_zero_timer_period_is_invalid_config():
    with pytest.raises(shmbus.InvalidConfig):
        shmbus.WaitSet().attach_timer(0)


@pytest.mark.parametrize("huge", [float("inf"), 1e300, 2.0**64])
def test_timer_period_too_long_is_invalid_config(huge):
    ws = shmbus.WaitSet()
    with pytest.raises(shmbus.InvalidConfig, match="too long"):
        ws.attach_timer(huge)
    assert len(ws) == 0


@pytest.mark.parametrize("bad", [-1, -0.001, float("nan")], ids=["-1", "-0.001", "nan"])
def test_negative_or_nan_timeout_is_value_error(bad):
    ws = shmbus.WaitSet()
    e = shmbus.Event.create("negt")
    ws.attach_event(e)
    e.set()
    with pytest.raises(ValueError, match="timeout") as exc:
        ws.wait(bad)
    assert not isinstance(exc.value, shmbus.Timeout)
    assert e.is_set()  # nothing was waited on: the release is still there


def test_max_objects():
    e = shmbus.Event.create("full", manual_reset=True)
    ws = shmbus.WaitSet()
    keys = [ws.attach_event(e) for _ in range(shmbus.WaitSet.MAX_OBJECTS)]
    with pytest.raises(shmbus.InvalidConfig):
        ws.attach_event(e)
    # Timers and appearances take no futex word: they still fit.
    timer = ws.attach_timer(3600)
    assert len(ws) == shmbus.WaitSet.MAX_OBJECTS + 1
    e.set()
    assert ws.wait(5) == keys
    assert ws.detach(keys[0])
    assert ws.attach_event(e) == timer + 1


# ---------------------------------------------------------------------------------------
# Threads


def test_wait_releases_the_gil():
    e = shmbus.Event.create("gil")
    ws = shmbus.WaitSet()
    k = ws.attach_event(e)
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(ws.wait(20)))
    t.start()
    # Runs only if the waiting thread let go of the GIL.
    wait_until(lambda: bool(t.native_id) and thread_blocked(t.native_id))
    x = 0
    for i in range(200000):
        x += i
    assert t.is_alive()
    e.set()
    t.join(20)
    assert outcome == [[k]]


def test_another_thread_attaches_and_detaches_while_one_waits():
    ws = shmbus.WaitSet()
    ws.attach_timer(3600)
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(ws.wait(20)))
    t.start()
    wait_until(lambda: bool(t.native_id) and thread_blocked(t.native_id))
    # The waiting thread lets go of the set between slices: these calls go through.
    assert len(ws) == 1
    e = shmbus.Event.create("attached-late", manual_reset=True)
    spare = ws.attach_timer(3600)
    assert ws.detach(spare)
    assert t.is_alive()
    k = ws.attach_event(e)
    e.set()
    t.join(20)
    assert outcome == [[k]]


def test_wait_zero_while_another_thread_waits_on_the_set():
    ws = shmbus.WaitSet()
    ws.attach_timer(3600)
    t = threading.Thread(target=lambda: ws.wait(1.0))
    t.start()
    wait_until(lambda: bool(t.native_id) and thread_blocked(t.native_id))
    try:
        for _ in range(5):
            assert ws.wait(0) == []
    finally:
        t.join(20)


# ---------------------------------------------------------------------------------------
# Other processes


def test_sources_written_by_the_cli(cli, procs):
    b = shmbus.Blackboard.create("clib", 64)
    kb = shmbus.KeyedBlackboard.create("clik", ["a", "b"], 64)
    e = shmbus.Event.create("clie")
    ws = shmbus.WaitSet()
    kboard = ws.attach_blackboard(b)
    kkey = ws.attach_board_key(kb.key("b"))
    kev = ws.attach_event(e)
    kappear = ws.attach_appearance("cli-made")
    kchan = ws.attach_appearance("cli-chan")

    assert cli_run(cli, "board", "write", "clib", "from the cli").returncode == 0
    assert ws.wait(20) == [kboard]
    assert b.read() == (1, b"from the cli")

    assert cli_run(cli, "board", "write", "clik", "--key", "a", "x").returncode == 0
    assert cli_run(cli, "board", "write", "clik", "--key", "b", "y").returncode == 0
    assert ws.wait(20) == [kkey]

    assert cli_run(cli, "event", "set", "clie").returncode == 0
    assert ws.wait(20) == [kev]
    assert not e.is_set()  # an auto-reset release, taken by the set

    assert cli_run(cli, "event", "create", "cli-made").returncode == 0
    assert ws.wait(20) == [kappear]
    assert shmbus.Event.open("cli-made").name == "cli-made"

    # A channel made by a CLI publisher, found by appearance, then its messages.
    pub = procs.popen([cli, "pub", "cli-chan", "--wait-subscribers", "1", "--timeout", "20"])
    assert ws.wait(20) == [kchan]
    s = shmbus.Subscriber("cli-chan")
    ksub = ws.attach_subscriber(s)
    pub.stdin.write("hello\nworld\n")
    pub.stdin.close()
    got = []
    while True:
        assert ksub in ws.wait(20)
        try:
            got.append(s.recv(0))
        except shmbus.Disconnected:
            break
    assert got == [b"hello", b"world"]
    assert pub.wait(20) == 0, pub.stderr.read()


PUBLISHER_CHILD = """
import sys, shmbus
p = shmbus.Publisher("child-pub")
print("created", flush=True)
p.wait_subscribers(1, timeout=20)
sys.stdin.readline()
p.send(b"from the child")
print("sent", flush=True)
sys.stdin.read()  # until killed
"""


def test_subscriber_of_a_python_child_and_its_death(procs):
    child = procs.python(PUBLISHER_CHILD)
    assert child.stdout.readline().strip() == "created", child.stderr.read()
    s = shmbus.Subscriber("child-pub")
    ws = shmbus.WaitSet()
    k = ws.attach_subscriber(s)
    assert ws.wait(0.05) == []
    child.stdin.write("go\n")
    child.stdin.flush()
    assert ws.wait(20) == [k]
    assert s.recv(0) == b"from the child"
    assert child.stdout.readline().strip() == "sent"
    assert ws.wait(0) == []
    child.send_signal(signal.SIGKILL)
    child.wait(20)
    # The dead publisher is noticed (its process closed the channel's file).
    assert ws.wait(20) == [k]
    with pytest.raises(shmbus.PublisherGone):
        s.recv(0)


WAITING_CHILD = """
import shmbus
ws = shmbus.WaitSet()
e = shmbus.Event.open("to-child", open_timeout=20)
k = ws.attach_event(e)
print("waiting", flush=True)
print("ready", ws.wait(20) == [k], flush=True)
"""


def test_a_child_waits_on_a_set_for_the_parent(procs):
    e = shmbus.Event.create("to-child")
    child = procs.python(WAITING_CHILD)
    assert child.stdout.readline().strip() == "waiting", child.stderr.read()
    wait_blocked(child.pid)
    e.set()
    out, err = child.communicate(timeout=20)
    assert out.strip() == "ready True", err
    assert child.returncode == 0


def test_a_set_inherited_through_fork_is_foreign_process():
    code = r"""
import os, shmbus
e = shmbus.Event.create("forked", manual_reset=True)
ws = shmbus.WaitSet()
k = ws.attach_event(e)
pid = os.fork()
if pid == 0:
    out = []
    try:
        ws.wait(0)
        out.append("ok")
    except shmbus.ForeignProcess as ex:
        out.append("ForeignProcess:" + str(bool(str(ex))))
    except BaseException as ex:
        out.append(type(ex).__name__)
    own = shmbus.WaitSet()  # a set made in the child works
    t = own.attach_timer(0.01)
    out.append(str(own.wait(10) == [t]))
    print(" ".join(out), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
e.set()
assert ws.wait(5) == [k]
print("parent ok", flush=True)
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["ForeignProcess:True True", "parent ok"]


# ---------------------------------------------------------------------------------------
# Ctrl-C

SIGINT_CHILD = """
import time, shmbus
ws = shmbus.WaitSet()
if {objects}:
    p = shmbus.Publisher("sig")
    ws.attach_subscriber(shmbus.Subscriber("sig"))
    ws.attach_event(shmbus.Event.create("sige"))
    ws.attach_blackboard(shmbus.Blackboard.create("sigb", 8))
    ws.attach_timer(3600)
    ws.attach_appearance("never")
print("ready", flush=True)
try:
    ws.wait({timeout})
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    raise
"""


@pytest.mark.parametrize("objects", [False, True], ids=["empty", "objects"])
@pytest.mark.parametrize("timeout", [None, 60], ids=["forever", "timeout"])
def test_ctrl_c_interrupts_wait(objects, timeout):
    child, out, err, sent = interrupt_when_blocked(
        SIGINT_CHILD.format(objects=objects, timeout=timeout), timeout=20
    )
    words = out.split()
    assert words[:1] == ["interrupted"], (out, err)
    assert 0 <= float(words[1]) - sent < 5
    assert "KeyboardInterrupt" in err
    assert child.returncode == -signal.SIGINT
