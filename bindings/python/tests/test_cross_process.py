"""Real processes: Python children, the ``shmbus`` CLI (Rust), signals, handle leaks."""

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

import shmbus

from helpers import (
    BOARD_WAITERS,
    interrupt_when_blocked,
    read_u32,
    run_python,
    shm_path,
    wait_blocked,
    wait_until,
)


def cli_run(cli, *args, timeout=30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([cli, *args], capture_output=True, timeout=timeout, **kw)


# ---------------------------------------------------------------------------------------
# Channels: Python <-> CLI


def test_python_publisher_to_cli_sub(cli, procs):
    p = shmbus.Publisher("py2cli")
    sub = procs.popen([cli, "sub", "py2cli", "--count", "3", "--timeout", "20"])
    p.wait_subscribers(1, timeout=20)
    messages = [b"hello", "h\u00e9llo w\u00f6rld".encode(), b"x" * 1000]
    for m in messages:
        p.send(m)
    out, err = sub.communicate(timeout=20)
    assert sub.returncode == 0, err
    assert out.encode() == b"".join(m + b"\n" for m in messages)


def test_cli_sub_ends_with_the_stream(cli, procs):
    p = shmbus.Publisher("py2cli-end", mode="backpressure", capacity=4096)
    sub = procs.popen([cli, "sub", "py2cli-end", "--timeout", "20"], stdout=subprocess.PIPE)
    p.wait_subscribers(1, timeout=20)
    n = 2000  # many times the ring: back-pressure across languages
    for i in range(n):
        p.send(b"%d" % i, timeout=20)
    p.close()
    out, err = sub.communicate(timeout=20)
    assert sub.returncode == 0, err
    assert out.splitlines() == [str(i) for i in range(n)]


@pytest.mark.parametrize("backpressure", [False, True], ids=["lossy", "backpressure"])
def test_cli_pub_to_python_subscriber(cli, procs, backpressure):
    lines = ["line %d" % i for i in range(500)] + ["", "last line"]
    args = [cli, "pub", "cli2py", "--wait-subscribers", "1", "--timeout", "20"]
    if backpressure:
        args += ["--backpressure", "--capacity", "1024"]
    pub = procs.popen(args)
    pub.stdin.write("\n".join(lines) + "\n")
    pub.stdin.close()
    s = shmbus.Subscriber("cli2py", open_timeout=10)
    assert s.mode == ("backpressure" if backpressure else "lossy")
    if backpressure:
        assert s.capacity == 1024
    received = list(s)  # until the end of the stream
    assert s.lost == 0
    assert [m.decode() for m in received] == lines
    pub.wait(20)
    assert pub.returncode == 0, pub.stderr.read()


def test_python_subscriber_and_cli_subscriber_get_the_same_messages(cli, procs):
    p = shmbus.Publisher("both", max_subscribers=2)
    s = shmbus.Subscriber("both")
    sub = procs.popen([cli, "sub", "both", "--count", "50", "--timeout", "20"])
    p.wait_subscribers(2, timeout=20)
    for i in range(50):
        p.send(b"m%d" % i)
    out, err = sub.communicate(timeout=20)
    assert sub.returncode == 0, err
    assert out.splitlines() == ["m%d" % i for i in range(50)]
    assert [s.recv(timeout=5) for _ in range(50)] == [b"m%d" % i for i in range(50)]


# ---------------------------------------------------------------------------------------
# Channels: Python <-> Python


def test_python_child_publisher_back_pressure_to_parent():
    code = """
import shmbus
p = shmbus.Publisher("child", mode="backpressure", capacity=1024)
print("created", flush=True)
p.wait_subscribers(1, timeout=20)
for i in range(3000):
    p.send(b"%05d" % i, timeout=20)
"""
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "created"
        s = shmbus.Subscriber("child")
        assert s.publisher_alive
        got = list(s)
        assert got == [b"%05d" % i for i in range(3000)]
        assert child.wait(20) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()


def test_publisher_killed_with_sigkill_is_publisher_gone(procs):
    code = """
import sys, shmbus
p = shmbus.Publisher("victim")
p.wait_subscribers(1, timeout=20)
p.send(b"before death")
print("sent", flush=True)
sys.stdin.read()  # until killed
"""
    child = procs.python(code)
    s = shmbus.Subscriber("victim", open_timeout=10)
    assert child.stdout.readline().strip() == "sent"
    assert s.recv(timeout=10) == b"before death"
    assert s.publisher_alive is True
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    start = time.monotonic()
    with pytest.raises(shmbus.PublisherGone) as e:
        s.recv(timeout=10)
    assert time.monotonic() - start < 5
    assert str(e.value)
    assert s.publisher_alive is False
    # Iteration raises it too (it is not the end of a stream).
    with pytest.raises(shmbus.PublisherGone):
        next(iter(s))


def test_publisher_killed_while_subscriber_blocks(procs):
    code = """
import sys, shmbus
p = shmbus.Publisher("victim2")
p.wait_subscribers(1, timeout=20)
print("ready", flush=True)
sys.stdin.read()
"""
    child = procs.python(code)
    s = shmbus.Subscriber("victim2", open_timeout=10)
    assert child.stdout.readline().strip() == "ready"
    outcome = []

    def blocked_recv():
        try:
            s.recv(timeout=20)
            outcome.append("message")
        except shmbus.PublisherGone:
            outcome.append("gone")
        except Exception as e:  # pragma: no cover - reported by the assertion
            outcome.append(repr(e))

    t = threading.Thread(target=blocked_recv)
    t.start()
    t.join(0.05)
    assert t.is_alive()
    child.send_signal(signal.SIGKILL)
    t.join(10)
    assert outcome == ["gone"]


# ---------------------------------------------------------------------------------------
# Blackboards: Python <-> CLI


def test_cli_board_write_python_read(cli):
    r = cli_run(cli, "board", "write", "cb", "from the cli")
    assert r.returncode == 0, r.stderr
    b = shmbus.Blackboard.open("cb", open_timeout=0)
    assert b.capacity == 4096
    assert b.read() == (1, b"from the cli")
    version = b.version
    r = cli_run(cli, "board", "write", "cb", input=b"\x00binary\xff\n")  # stdin
    assert r.returncode == 0, r.stderr
    assert b.wait_newer(version, timeout=10) == version + 1
    assert b.read() == (version + 1, b"\x00binary\xff\n")
    (info,) = shmbus.list()
    assert info.persistent is True and info.kind == "blackboard"


def test_python_board_write_cli_read(cli):
    b = shmbus.Blackboard.create("pb", 64)
    value = bytes(range(256))[:64]
    b.write(value)
    r = cli_run(cli, "board", "read", "pb")
    assert r.returncode == 0, r.stderr
    assert r.stdout == value
    # The CLI writes into the existing board (it keeps its capacity).
    r = cli_run(cli, "board", "write", "pb", "cli")
    assert r.returncode == 0, r.stderr
    assert b.read() == (2, b"cli")
    r = cli_run(cli, "board", "write", "pb", "x" * 65)
    assert r.returncode != 0
    assert b.read() == (2, b"cli")


def test_cli_board_watch_sees_python_writes(cli, procs, namespace):
    b = shmbus.Blackboard.create("watched", 64)
    watch = procs.popen([cli, "board", "watch", "watched", "--count", "3", "--timeout", "20"])
    # The watcher sleeps in wait_newer once it is registered in the board's waiters word.
    path = shm_path("watched", namespace)
    wait_until(lambda: read_u32(path, BOARD_WAITERS) > 0, 10, "the CLI to watch")
    values = [b"first", b"second", b"third"]
    for v in values:
        version = b.write(v)
        # One at a time: wait for the line, then for the watcher to wait again.
        assert watch.stdout.readline() == v.decode() + "\n"
        if v != values[-1]:
            wait_until(lambda: read_u32(path, BOARD_WAITERS) > 0, 10, "the CLI to watch")
    out, err = watch.communicate(timeout=20)
    assert watch.returncode == 0, err
    assert out == ""
    assert version == 3


# ---------------------------------------------------------------------------------------
# Events: Python <-> CLI


def test_python_event_set_releases_cli_wait(cli, procs):
    e = shmbus.Event.create("pe", manual_reset=True)
    waiter = procs.popen([cli, "event", "wait", "pe", "--timeout", "20"])
    wait_blocked(waiter.pid)
    assert waiter.poll() is None
    e.set()
    assert waiter.wait(20) == 0


def test_cli_event_wait_times_out(cli):
    e = shmbus.Event.create("quiet")
    start = time.monotonic()
    r = cli_run(cli, "event", "wait", "quiet", "--timeout", "0.2")
    assert r.returncode == 3
    assert time.monotonic() - start >= 0.2
    assert not e.is_set()


def test_cli_event_commands_drive_python_event(cli):
    r = cli_run(cli, "event", "create", "ce", "--auto-reset")
    assert r.returncode == 0, r.stderr
    e = shmbus.Event.open("ce", open_timeout=0)
    assert e.manual_reset is False
    assert e.wait(0) is False
    assert cli_run(cli, "event", "set", "ce").returncode == 0
    assert e.wait(10) is True
    assert e.wait(0) is False  # consumed

    assert cli_run(cli, "event", "create", "cm").returncode == 0
    m = shmbus.Event.open("cm")
    assert m.manual_reset is True
    assert cli_run(cli, "event", "set", "cm").returncode == 0
    assert m.is_set() and m.wait(0) and m.is_set()
    assert cli_run(cli, "event", "reset", "cm").returncode == 0
    assert not m.is_set()


def test_cli_event_set_wakes_blocked_python_wait(cli, procs):
    assert cli_run(cli, "event", "create", "wake").returncode == 0
    e = shmbus.Event.open("wake")
    setter = procs.popen([cli, "event", "set", "wake"])
    assert e.wait(20) is True
    assert setter.wait(20) == 0


def test_python_sets_auto_reset_event_for_cli(cli):
    e = shmbus.Event.create("auto")
    e.set()  # kept for the next waiter: no wake-up is lost
    assert cli_run(cli, "event", "wait", "auto", "--timeout", "5").returncode == 0
    assert e.is_set() is False
    assert cli_run(cli, "event", "wait", "auto", "--timeout", "0.05").returncode == 3


# ---------------------------------------------------------------------------------------
# Duplex: Python <-> CLI


def test_python_client_cli_echo_server(cli, procs):
    server = procs.popen([cli, "duplex", "serve", "echo"])
    client = shmbus.Duplex.connect("echo", open_timeout=10)
    assert client.request(b"ping", timeout=20) == b"ping"
    assert client.request(b"\x00\x01", timeout=20) == b"\x00\x01"
    server.send_signal(signal.SIGINT)
    assert server.wait(20) in (0, 130)


def test_cli_client_python_server(cli, procs):
    server = shmbus.Duplex.listen("srv")
    client = procs.popen([cli, "duplex", "request", "srv", "question", "--timeout", "20"])
    data, request_id = server.recv(timeout=20)
    assert data == b"question" and request_id is not None
    server.reply(request_id, b"answer")
    out, err = client.communicate(timeout=20)
    assert client.returncode == 0, err
    assert out.strip() == "answer"


# ---------------------------------------------------------------------------------------
# Ctrl-C during a blocking call

SIGINT_SETUP = """
import asyncio, shmbus
p = shmbus.Publisher("sig", mode="{mode}", capacity=256)
s = shmbus.Subscriber("sig")
b = shmbus.Blackboard.create("sigb", 8)
kb = shmbus.KeyedBlackboard.create("sigk", ["a", "b"], 8)
e = shmbus.Event.create("sige")
server = shmbus.Duplex.listen("sigd")
"""

BLOCKING_CALLS = {
    "recv": ("lossy", "s.recv()"),
    "recv-backpressure": ("backpressure", "s.recv()"),
    "recv_into": ("lossy", "s.recv_into(bytearray(64))"),
    "recv_ref": ("backpressure", "s.recv_ref()"),
    "iteration": ("lossy", "next(s)"),
    "recv_async": ("lossy", "asyncio.run(s.recv_async())"),
    "send-full": ("backpressure", "[p.send(b'x' * 16) for _ in range(100)]"),
    "loan-full": ("backpressure", "[p.loan(16).commit() for _ in range(100)]"),
    "wait_subscribers": ("lossy", "p.wait_subscribers(2)"),
    "Event.wait": ("lossy", "e.wait()"),
    "Blackboard.wait_newer": ("lossy", "b.wait_newer(0)"),
    "KeyedBlackboard.wait_newer": ("lossy", "kb.wait_newer('a', 0)"),
    "BoardKey.wait_newer": ("lossy", "kb.key('b').wait_newer(0)"),
    "Duplex.recv": ("lossy", "server.recv()"),
}

CHILD = """
import sys, time
{setup}
print("ready", flush=True)
try:
    {call}
    print("returned", flush=True)
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    raise
"""


@pytest.mark.parametrize("which", sorted(BLOCKING_CALLS))
def test_ctrl_c_interrupts_a_blocking_call_within_100ms(which):
    mode, call = BLOCKING_CALLS[which]
    code = CHILD.format(setup=SIGINT_SETUP.format(mode=mode), call=call)
    child, out, err, sent = interrupt_when_blocked(code, timeout=10)
    words = out.split()
    assert words[:1] == ["interrupted"], (out, err)
    delay = float(words[1]) - sent
    assert 0 <= delay <= 0.1, "KeyboardInterrupt %.3f s after SIGINT" % delay
    assert "KeyboardInterrupt" in err
    assert child.returncode == -signal.SIGINT


# ---------------------------------------------------------------------------------------
# No leaked handles

LEAK_CHECK = r"""
import json, os, shmbus

def counts():
    with open("/proc/self/maps") as f:
        return len(os.listdir("/proc/self/fd")), len(f.read().splitlines())

p = shmbus.Publisher("leak", mode="backpressure", capacity=4096)
b = shmbus.Blackboard.create("leakb", 64)
b.write(b"v")
e = shmbus.Event.create("leake")
kb = shmbus.KeyedBlackboard.create("leakk", ["a", "b"], 64)
kb.write("a", b"v")

def subscriber():
    s = shmbus.Subscriber("leak")
    s.close()

def subscriber_with():
    with shmbus.Subscriber("leak") as s:
        p.send(b"m")
        with s.recv_ref(timeout=5) as view:
            assert bytes(view) == b"m"

def subscriber_dropped():
    shmbus.Subscriber("leak")

def board():
    o = shmbus.Blackboard.open("leakb")
    assert o.read() == (1, b"v")
    o.close()

def board_with():
    with shmbus.Blackboard.open("leakb") as o:
        o.version

def keyed():
    o = shmbus.KeyedBlackboard.open("leakk")
    assert o.read("a") == (1, b"v")
    assert o.key("b").version == 0
    o.close()

def keyed_with():
    with shmbus.KeyedBlackboard.open("leakk") as o:
        o.key("a").read()

def keyed_created():
    shmbus.KeyedBlackboard.create("leakkc", ["x", "y"], 8).close()

def keyed_handler():
    kb.key("b").on_update(lambda v, d: None).stop()

def event():
    o = shmbus.Event.open("leake")
    o.is_set()
    o.close()

def event_with():
    with shmbus.Event.open("leake") as o:
        o.is_set()

def publisher():
    shmbus.Publisher("leakp", capacity=256).close()

def board_created():
    shmbus.Blackboard.create("leakc", 8).close()

def duplex():
    with shmbus.Duplex.listen("leakd") as d:
        shmbus.Duplex.connect("leakd").close()

def handler():
    shmbus.Subscriber("leak").on_message(lambda m: None).stop()

cycles = {
    "subscriber": (subscriber, 10000),
    "subscriber_with": (subscriber_with, 10000),
    "subscriber_dropped": (subscriber_dropped, 10000),
    "board": (board, 10000),
    "board_with": (board_with, 10000),
    "keyed": (keyed, 10000),
    "keyed_with": (keyed_with, 10000),
    "event": (event, 10000),
    "event_with": (event_with, 10000),
    "publisher": (publisher, 2000),
    "board_created": (board_created, 2000),
    "keyed_created": (keyed_created, 2000),
    "duplex": (duplex, 1000),
    "handler": (handler, 1000),
    "keyed_handler": (keyed_handler, 1000),
}
result = {}
for name, (cycle, n) in cycles.items():
    for _ in range(5):  # warm-up: lazily allocated things
        cycle()
    before = counts()
    for _ in range(n):
        cycle()
    result[name] = [before, counts()]
print(json.dumps(result))
"""


def test_no_leaked_handles_after_open_close_cycles():
    r = run_python(LEAK_CHECK, timeout=60)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for name, (before, after) in result.items():
        assert after == before, "%s: fds/maps %s before, %s after" % (name, before, after)
    # The child's objects went with it.
    assert shmbus.list() == []
