"""Regression tests named after what they guard (findings of the binding's review)."""

import threading
import time

import pytest

import shmbus


def test_abandoned_loan_does_not_wedge_its_publisher():
    p = shmbus.Publisher("abandoned", mode="backpressure")
    s = shmbus.Subscriber("abandoned")
    loan = p.loan(8)
    loan.view[:3] = b"old"
    del loan  # neither committed nor discarded, and no view of it is left
    p.send(b"next")
    assert s.recv(timeout=1) == b"next"
    assert s.try_recv() is None  # the abandoned loan published nothing
    p.close()


def test_open_loan_still_refuses_a_send():
    p = shmbus.Publisher("openloan", mode="backpressure")
    loan = p.loan(8)
    with pytest.raises(BufferError):
        p.send(b"x")
    loan.discard()
    p.send(b"x")


def test_flush_does_not_free_a_borrowed_message_still_viewed():
    p = shmbus.Publisher("flushborrow", mode="backpressure", capacity=1024)
    s = shmbus.Subscriber("flushborrow")
    p.send(b"A" * 100)
    borrowed = s.recv_ref()
    view = borrowed.view
    part = view[10:20]
    with pytest.raises(BufferError):
        s.flush()
    # The ring still holds the borrowed message: the publisher cannot overwrite it.
    while p.try_send(b"B" * 100):
        pass
    assert bytes(part) == b"A" * 10
    del part, view
    borrowed.release()
    s.flush()


def test_stop_from_the_handlers_own_callback_raises_runtime_error():
    p = shmbus.Publisher("selfstop")
    s = shmbus.Subscriber("selfstop")
    seen = []
    done = threading.Event()
    holder = {}

    def callback(msg):
        try:
            holder["guard"].stop()
        except RuntimeError as e:
            seen.append(e)
        done.set()

    holder["guard"] = s.on_message(callback)
    p.send(b"x")
    assert done.wait(5)
    assert len(seen) == 1 and "own callback" in str(seen[0])
    stats = holder["guard"].stop()
    assert stats.delivered == 1


def test_recv_ref_on_a_lossy_channel_is_wrong_mode_even_with_a_stash():
    p = shmbus.Publisher("lossyref")
    s = shmbus.Subscriber("lossyref")
    p.send(b"x")
    with pytest.raises(shmbus.WrongMode):
        s.recv_ref(timeout=1)
    assert s.recv(timeout=1) == b"x"


def test_blackboard_read_and_write_release_the_gil():
    b = shmbus.Blackboard.create("gilboard", 1 << 20)
    value = bytes(1 << 20)
    stop = time.monotonic() + 0.3
    ticks = []

    def ticker():
        while time.monotonic() < stop:
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    while time.monotonic() < stop:
        b.write(value)
        assert b.read()[1] == value
    t.join()
    assert len(ticks) > 10
