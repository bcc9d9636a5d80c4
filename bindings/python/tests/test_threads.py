"""Objects shared by Python threads; blocking calls release the GIL."""

import threading
import time

import pytest

import shmbus

from helpers import thread_blocked, wait_until

def msg(i: int) -> bytes:
    return b"%016d" % i


def test_two_threads_share_one_subscriber():
    p = shmbus.Publisher("ss", mode="backpressure", capacity=4096)
    s = shmbus.Subscriber("ss")
    n = 3000
    got = {0: [], 1: []}
    errors = []

    def reader(k):
        try:
            while True:
                try:
                    got[k].append(int(s.recv(timeout=20)))
                except shmbus.Disconnected:
                    return
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(k,)) for k in got]
    for t in threads:
        t.start()
    for i in range(n):
        p.send(msg(i), timeout=20)
    p.close()
    for t in threads:
        t.join(30)
    assert not errors
    assert not any(t.is_alive() for t in threads)
    # Every message once, each thread in order.
    assert sorted(got[0] + got[1]) == list(range(n))
    for k in got:
        assert got[k] == sorted(got[k])


def test_two_threads_share_one_publisher():
    p = shmbus.Publisher("sp", capacity=1 << 18)
    s = shmbus.Subscriber("sp")
    n = 2000
    errors = []

    def writer(k):
        try:
            for i in range(n):
                p.send(b"%d:%06d" % (k, i))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert p.published == 2 * n
    received = [s.recv(timeout=5) for _ in range(2 * n)]
    assert s.try_recv() is None
    assert s.lost == 0
    for k in (0, 1):
        mine = [m for m in received if m.startswith(b"%d:" % k)]
        assert mine == [b"%d:%06d" % (k, i) for i in range(n)]


def test_shared_loans_and_sends_serialise():
    p = shmbus.Publisher("sl", mode="backpressure", capacity=1 << 16)
    s = shmbus.Subscriber("sl")
    n = 500
    errors = []

    def loaner():
        try:
            for i in range(n):
                while True:
                    try:
                        with p.loan(8, timeout=10) as v:
                            v[:] = b"L%07d" % i
                        break
                    except BufferError:
                        # The other thread's loan is open at this instant: retry.
                        continue
        except Exception as e:
            errors.append(e)

    def sender():
        try:
            for i in range(n):
                while True:
                    try:
                        p.send(b"S%07d" % i, timeout=10)
                        break
                    except BufferError:
                        continue
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=loaner), threading.Thread(target=sender)]
    for t in threads:
        t.start()
    got = [s.recv(timeout=10) for _ in range(2 * n)]
    for t in threads:
        t.join(30)
    assert not errors
    assert [m for m in got if m[:1] == b"L"] == [b"L%07d" % i for i in range(n)]
    assert [m for m in got if m[:1] == b"S"] == [b"S%07d" % i for i in range(n)]


def _blocking_cases():
    """name -> (make(): (call, release), ...)"""

    def recv_case(kind):
        def make():
            p = shmbus.Publisher("g", mode="backpressure")
            s = shmbus.Subscriber("g")
            calls = {
                "recv": lambda: s.recv(timeout=3),
                "recv_into": lambda: s.recv_into(bytearray(8), timeout=3),
                "recv_ref": lambda: bytes(s.recv_ref(timeout=3).view),
            }
            return calls[kind], lambda: p.send(b"go"), (p, s)

        return make

    def event():
        e = shmbus.Event.create("g")
        return lambda: e.wait(3), e.set, (e,)

    def board():
        b = shmbus.Blackboard.create("g", 8)
        return lambda: b.wait_newer(0, timeout=3), lambda: b.write(b"go"), (b,)

    def duplex():
        server = shmbus.Duplex.listen("g")
        client = shmbus.Duplex.connect("g")
        return lambda: server.recv(timeout=3), lambda: client.send(b"go"), (server, client)

    def wait_subscribers():
        p = shmbus.Publisher("g")
        subs = []
        return (
            lambda: p.wait_subscribers(1, timeout=3),
            lambda: subs.append(shmbus.Subscriber("g")),
            (p, subs),
        )

    def send_full(loan):
        def make():
            p = shmbus.Publisher("g", mode="backpressure", capacity=256)
            s = shmbus.Subscriber("g")
            while p.try_send(msg(0)):
                pass
            if loan:
                call = lambda: p.loan(16, timeout=3).commit()  # noqa: E731
            else:
                call = lambda: p.send(msg(1), timeout=3)  # noqa: E731
            return call, lambda: (s.recv(timeout=3), s.flush()), (p, s)

        return make

    return {
        "recv": recv_case("recv"),
        "recv_into": recv_case("recv_into"),
        "recv_ref": recv_case("recv_ref"),
        "Event.wait": event,
        "Blackboard.wait_newer": board,
        "Duplex.recv": duplex,
        "wait_subscribers": wait_subscribers,
        "send-full": send_full(False),
        "loan-full": send_full(True),
    }


BLOCKING = _blocking_cases()


@pytest.mark.parametrize("which", sorted(BLOCKING))
def test_blocking_call_releases_the_gil(which):
    call, release, keep = BLOCKING[which]()
    outcome = []
    tids = []

    def blocked():
        tids.append(threading.get_native_id())
        start = time.monotonic()
        try:
            outcome.append(("ok", call()))
        except Exception as e:
            outcome.append(("error", e))
        outcome.append(time.monotonic() - start)

    t = threading.Thread(target=blocked)
    start = time.monotonic()
    t.start()
    # Runs only if the blocked thread let go of the GIL.
    wait_until(lambda: tids and thread_blocked(tids[0]), 2.5, "the thread to block")
    x = 0
    for i in range(200000):
        x += i
    assert t.is_alive(), "the blocking call returned early: %r" % (outcome,)
    assert time.monotonic() - start < 2.5
    release()
    t.join(10)
    assert not t.is_alive()
    assert outcome[0][0] == "ok", outcome
    assert outcome[1] < 2.9  # released, not timed out
    assert keep


def test_property_of_shared_subscriber_while_another_thread_blocks():
    p = shmbus.Publisher("prop")
    s = shmbus.Subscriber("prop")
    got = []
    t = threading.Thread(target=lambda: got.append(s.recv(timeout=10)))
    t.start()
    t.join(0.05)
    start = time.monotonic()
    assert s.publisher_alive is True
    assert s.lost == 0
    assert s.closed is False
    assert time.monotonic() - start < 1
    p.send(b"done")
    t.join(10)
    assert got == [b"done"]


def test_closing_subscriber_while_another_thread_receives_raises_closed():
    p = shmbus.Publisher("closing")
    s = shmbus.Subscriber("closing")
    outcome = []

    def receive():
        try:
            s.recv(timeout=10)
            outcome.append("message")
        except Exception as e:
            outcome.append(e)

    t = threading.Thread(target=receive)
    t.start()
    t.join(0.05)
    s.close()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], shmbus.Closed), outcome
    assert p


def test_closing_publisher_while_another_thread_sends_raises_closed():
    p = shmbus.Publisher("closingp", mode="backpressure", capacity=256)
    s = shmbus.Subscriber("closingp")
    while p.try_send(msg(0)):
        pass
    outcome = []

    def send():
        try:
            p.send(msg(1), timeout=10)
            outcome.append("sent")
        except Exception as e:
            outcome.append(e)

    t = threading.Thread(target=send)
    t.start()
    t.join(0.1)
    p.close()
    t.join(10)
    assert s
    assert len(outcome) == 1 and isinstance(outcome[0], shmbus.Closed), outcome


def test_closing_duplex_while_another_thread_receives_raises_closed():
    server = shmbus.Duplex.listen("closingd")
    outcome = []

    def receive():
        try:
            server.recv(timeout=10)
            outcome.append("message")
        except Exception as e:
            outcome.append(e)

    t = threading.Thread(target=receive)
    t.start()
    t.join(0.1)
    server.close()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], shmbus.Closed), outcome


def test_closing_blackboard_while_another_thread_waits_raises_closed():
    b = shmbus.Blackboard.create("closingb", 8)
    outcome = []

    def wait():
        try:
            outcome.append(b.wait_newer(0, timeout=1.5))
        except Exception as e:
            outcome.append(e)

    t = threading.Thread(target=wait)
    t.start()
    t.join(0.1)
    start = time.monotonic()
    b.close()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], shmbus.Closed), outcome
    assert time.monotonic() - start < 1


def test_closing_event_while_another_thread_waits_raises_closed():
    e = shmbus.Event.create("closinge")
    outcome = []

    def wait():
        try:
            outcome.append(e.wait(1.5))
        except Exception as ex:
            outcome.append(ex)

    t = threading.Thread(target=wait)
    t.start()
    t.join(0.1)
    start = time.monotonic()
    e.close()
    t.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], shmbus.Closed), outcome
    assert time.monotonic() - start < 1


def test_recv_timeout_holds_on_a_shared_subscriber():
    p = shmbus.Publisher("sharedto")
    s = shmbus.Subscriber("sharedto")
    got = []
    t = threading.Thread(target=lambda: got.append(s.recv(timeout=10)))
    t.start()
    wait_until(lambda: bool(t.native_id) and thread_blocked(t.native_id))
    elapsed = []
    for _ in range(10):
        start = time.monotonic()
        with pytest.raises(shmbus.Timeout):
            s.recv(timeout=0.01)
        elapsed.append(time.monotonic() - start)
    p.send(b"done")
    t.join(10)
    assert got == [b"done"]
    assert max(elapsed) < 0.05, ["%.3f" % e for e in elapsed]
