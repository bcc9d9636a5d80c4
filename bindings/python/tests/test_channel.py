"""Publisher, Loan, Subscriber and Borrowed within one process."""

import os
import threading
import time

import numpy as np
import pytest

import shmbus

# A record takes 16 bytes of header plus the payload rounded up to 16 (ChannelConfig docs):
# a 16-byte message takes 32 bytes, so a 256-byte ring holds exactly 8 of them.
MSG = 16
RING = 256
FITS = RING // (16 + MSG)


def msg(i: int) -> bytes:
    return b"%016d" % i


# ---------------------------------------------------------------------------------------
# Publisher: construction and properties


def test_publisher_properties(namespace):
    p = shmbus.Publisher(
        "chan", mode="backpressure", capacity=4096, max_message=1000, max_subscribers=3
    )
    assert p.name == "chan"
    assert p.namespace == namespace
    assert p.mode == "backpressure"
    assert p.capacity == 4096
    assert p.max_message == 1000
    assert p.max_subscribers == 3
    assert p.published == 0
    assert p.subscriber_count == 0
    assert p.closed is False
    assert "chan" in repr(p)

    s = shmbus.Subscriber("chan")
    assert (s.name, s.namespace, s.mode, s.capacity, s.max_message) == (
        "chan",
        namespace,
        "backpressure",
        4096,
        1000,
    )
    assert s.lost == 0
    assert s.closed is False
    assert p.subscriber_count == 1
    p.send(b"x")
    p.send(b"y")
    assert p.published == 2
    assert "chan" in repr(s)


def test_publisher_defaults():
    p = shmbus.Publisher("defaults")
    assert p.mode == "lossy"
    assert p.capacity == 65536
    assert p.max_subscribers == 16
    # The default 16 KiB, which fits in half of a 64 KiB ring.
    assert p.max_message == 16 * 1024
    # A small ring gets the largest message that fits: half the ring less 16.
    assert shmbus.Publisher("small", capacity=RING).max_message == RING // 2 - 16


def test_back_pressure_mode_spelling():
    assert shmbus.Publisher("a", mode="backpressure").mode == "backpressure"


def test_explicit_namespace(make_namespace):
    other = make_namespace()
    p = shmbus.Publisher("elsewhere", namespace=other)
    assert p.namespace == other
    # Not in the environment's namespace...
    with pytest.raises(shmbus.NotFound):
        shmbus.Subscriber("elsewhere", open_timeout=0)
    # ...but in the one given.
    s = shmbus.Subscriber("elsewhere", namespace=other, open_timeout=0)
    assert s.namespace == other
    p.send(b"hi")
    assert s.recv(timeout=5) == b"hi"
    assert [o.name for o in shmbus.list(other)] == ["elsewhere"]


def test_permissions_and_persistent():
    p = shmbus.Publisher("perm", permissions=0o640, persistent=True)
    (info,) = shmbus.list()
    assert info.permissions == 0o640
    assert info.persistent is True
    p.close()
    # Persistent: the channel outlives its publisher's close.
    (info,) = shmbus.list()
    assert info.name == "perm"
    q = shmbus.Publisher("gone")
    q.close()
    assert [o.name for o in shmbus.list()] == ["perm"]


# ---------------------------------------------------------------------------------------
# Publisher: open and create_or_open


def test_open_takes_over_a_persistent_channel():
    p = shmbus.Publisher("takeover", capacity=1024, mode="backpressure", persistent=True)
    p.send(b"one")
    p.close()
    q = shmbus.Publisher.open("takeover", open_timeout=0)
    assert (q.mode, q.capacity) == ("backpressure", 1024)
    assert q.published == 1
    s = shmbus.Subscriber("takeover")
    q.send(b"two")
    assert s.recv(timeout=5) == b"two"
    assert q.published == 2


def test_create_or_open():
    # Creates when missing.
    p = shmbus.Publisher.create_or_open("coo", capacity=2048, persistent=True)
    assert p.capacity == 2048
    p.send(b"a")
    p.close()
    # Opens when it exists with this configuration (the publisher has gone).
    q = shmbus.Publisher.create_or_open("coo", capacity=2048)
    assert q.published == 1
    # Another configuration is refused.
    q.close()
    with pytest.raises(shmbus.InvalidConfig):
        shmbus.Publisher.create_or_open("coo", capacity=4096)


# ---------------------------------------------------------------------------------------
# send / try_send


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"bytes", b"bytes"),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"xxmemoryviewxx")[2:-2], b"memoryview"),
        (np.arange(5, dtype=np.uint32), np.arange(5, dtype=np.uint32).tobytes()),
        (np.array([[1.5, 2.5], [3.5, 4.5]]), np.array([[1.5, 2.5], [3.5, 4.5]]).tobytes()),
        (b"", b""),
    ],
    ids=["bytes", "bytearray", "memoryview", "numpy", "numpy2d", "empty"],
)
def test_send_buffer_types(data, expected):
    p = shmbus.Publisher("types")
    s = shmbus.Subscriber("types")
    p.send(data)
    assert p.try_send(data) is True
    assert s.recv(timeout=5) == expected
    assert s.recv(timeout=5) == expected
    assert p.published == 2


def test_send_rejects_what_is_not_a_contiguous_buffer():
    p = shmbus.Publisher("bad")
    s = shmbus.Subscriber("bad")
    with pytest.raises(TypeError):
        p.send("a str is not bytes")
    with pytest.raises((ValueError, BufferError)):
        p.send(np.arange(8, dtype=np.uint8)[::2])
    with pytest.raises(TypeError):
        p.try_send(12)
    assert p.published == 0
    assert s.try_recv() is None


def test_try_send_false_when_back_pressure_ring_is_full():
    p = shmbus.Publisher("full", mode="backpressure", capacity=RING)
    s = shmbus.Subscriber("full")
    for i in range(FITS):
        assert p.try_send(msg(i)) is True
    assert p.try_send(msg(FITS)) is False
    assert p.published == FITS
    with pytest.raises(shmbus.Timeout):
        p.send(msg(FITS), timeout=0)
    start = time.monotonic()
    with pytest.raises(shmbus.Timeout):
        p.send(msg(FITS), timeout=0.1)
    assert time.monotonic() - start >= 0.09
    assert p.published == FITS
    # Nothing was lost or duplicated.
    assert [s.recv(timeout=5) for _ in range(FITS)] == [msg(i) for i in range(FITS)]
    assert s.try_recv() is None


def test_lossy_try_send_never_refuses():
    p = shmbus.Publisher("lossyfull", capacity=RING)
    s = shmbus.Subscriber("lossyfull")
    assert all(p.try_send(msg(i)) for i in range(5 * FITS))
    assert p.published == 5 * FITS
    with pytest.raises(shmbus.Lagged):
        s.recv(timeout=5)


def test_back_pressure_send_waits_for_room():
    p = shmbus.Publisher("wait", mode="backpressure", capacity=RING)
    s = shmbus.Subscriber("wait")
    for i in range(FITS):
        p.send(msg(i))
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(p.send(b"last", timeout=10)))
    t.start()
    t.join(0.1)
    assert t.is_alive(), "send returned although the ring is full"
    received = [s.recv(timeout=5) for _ in range(FITS)]
    t.join(10)
    assert not t.is_alive()
    assert outcome == [None]
    assert received == [msg(i) for i in range(FITS)]
    assert s.recv(timeout=5) == b"last"


def test_flush_publishes_progress_at_once():
    # Receives publish progress in batches of an eighth of the ring: one 32-byte record of
    # a 4096-byte ring is not enough, flush() is.
    p = shmbus.Publisher("flush", mode="backpressure", capacity=4096)
    s = shmbus.Subscriber("flush")
    n = 0
    while p.try_send(msg(n)):
        n += 1
    assert n == 4096 // 32
    assert s.recv(timeout=5) == msg(0)
    assert p.try_send(b"x" * MSG) is False
    s.flush()
    assert p.try_send(b"y" * MSG) is True
    assert p.try_send(b"z" * MSG) is False


# ---------------------------------------------------------------------------------------
# Loans


def test_loan_context_manager_commits():
    p = shmbus.Publisher("loan", mode="backpressure")
    s = shmbus.Subscriber("loan")
    loan = p.loan(5)
    assert len(loan) == 5
    with loan as view:
        assert isinstance(view, memoryview)
        assert len(view) == 5 and not view.readonly
        view[:] = b"hello"
    assert s.recv(timeout=5) == b"hello"
    assert p.published == 1
    # The view is released with the loan.
    with pytest.raises(ValueError):
        view[0]


def test_loan_with_numpy_in_place():
    p = shmbus.Publisher("loannp")
    s = shmbus.Subscriber("loannp")
    with p.loan(16) as view:
        a = np.frombuffer(view, dtype=np.uint32)
        a[:] = [1, 2, 3, 4]
        del a
    assert np.frombuffer(s.recv(timeout=5), dtype=np.uint32).tolist() == [1, 2, 3, 4]


def test_loan_discarded_when_the_block_raises():
    p = shmbus.Publisher("loanraise")
    s = shmbus.Subscriber("loanraise")
    with pytest.raises(RuntimeError):
        with p.loan(3) as view:
            view[:] = b"bad"
            raise RuntimeError("oops")
    assert p.published == 0
    assert s.try_recv() is None
    p.send(b"next")
    assert s.recv(timeout=5) == b"next"


def test_loan_commit_and_discard():
    p = shmbus.Publisher("loancd")
    s = shmbus.Subscriber("loancd")
    loan = p.loan(2)
    loan.view[:] = b"ok"
    loan.commit()
    loan = p.loan(2)
    loan.view[:] = b"no"
    loan.discard()
    assert p.published == 1
    assert s.recv(timeout=5) == b"ok"
    assert s.try_recv() is None
    # A loan ends once.
    with pytest.raises(ValueError):
        loan.commit()


def test_loan_commit_refused_while_a_view_of_it_lives():
    p = shmbus.Publisher("loanview")
    s = shmbus.Subscriber("loanview")
    loan = p.loan(4)
    loan.view[:] = b"abcd"
    part = loan.view[1:3]
    with pytest.raises(BufferError):
        loan.commit()
    # The loan is still open: sending meanwhile is refused too.
    with pytest.raises(BufferError):
        p.send(b"other")
    assert p.published == 0
    del part
    loan.commit()
    assert s.recv(timeout=5) == b"abcd"


def test_loan_too_large_and_timeout():
    p = shmbus.Publisher("loanerr", mode="backpressure", capacity=RING)
    s = shmbus.Subscriber("loanerr")
    with pytest.raises(shmbus.TooLarge):
        p.loan(p.max_message + 1)
    for i in range(FITS):
        p.send(msg(i))
    with pytest.raises(shmbus.Timeout):
        p.loan(MSG, timeout=0.05)
    assert p.published == FITS
    assert s.recv(timeout=5) == msg(0)


# ---------------------------------------------------------------------------------------
# wait_subscribers


def test_wait_subscribers():
    p = shmbus.Publisher("ws", max_subscribers=2)
    p.wait_subscribers(0, timeout=0)
    start = time.monotonic()
    with pytest.raises(shmbus.Timeout):
        p.wait_subscribers(1, timeout=0.1)
    assert time.monotonic() - start >= 0.09
    t = threading.Timer(0.05, lambda: subs.append(shmbus.Subscriber("ws")))
    subs = []
    t.start()
    p.wait_subscribers(1, timeout=10)
    t.join()
    assert p.subscriber_count == 1


def test_wait_subscribers_impossible_count_fails_at_once():
    p = shmbus.Publisher("ws2", max_subscribers=2)
    start = time.monotonic()
    with pytest.raises(shmbus.InvalidConfig) as e:
        p.wait_subscribers(3)  # no timeout: must not wait forever
    assert time.monotonic() - start < 1
    assert str(e.value)


# ---------------------------------------------------------------------------------------
# close and context managers


def test_publisher_close_ends_the_stream():
    p = shmbus.Publisher("end")
    s = shmbus.Subscriber("end")
    assert s.publisher_alive is True
    p.send(b"last")
    p.close()
    assert p.closed is True
    p.close()  # harmless
    assert s.recv(timeout=5) == b"last"
    with pytest.raises(shmbus.Disconnected):
        s.recv(timeout=5)
    with pytest.raises(shmbus.Disconnected):
        s.try_recv()
    assert s.publisher_alive is False
    # Not persistent: removed.
    assert shmbus.list() == []
    with pytest.raises(shmbus.Closed):
        p.send(b"x")
    with pytest.raises(shmbus.Closed):
        p.try_send(b"x")
    with pytest.raises(shmbus.Closed):
        p.loan(1)
    with pytest.raises(shmbus.Closed):
        p.published
    with pytest.raises(shmbus.Closed):
        p.subscriber_count


def test_wait_subscribers_on_closed_publisher_raises_closed():
    p = shmbus.Publisher("wsclosed")
    p.close()
    with pytest.raises(shmbus.Closed):
        p.wait_subscribers(0, timeout=1)


def test_publisher_context_manager():
    with shmbus.Publisher("cm") as p:
        s = shmbus.Subscriber("cm")
        p.send(b"in")
    assert p.closed
    assert s.recv(timeout=5) == b"in"
    with pytest.raises(shmbus.Disconnected):
        s.recv(timeout=5)


def test_publisher_context_manager_closes_on_exception():
    with pytest.raises(KeyError):
        with shmbus.Publisher("cmx") as p:
            raise KeyError
    assert p.closed
    assert shmbus.list() == []


def test_subscriber_close_and_context_manager():
    p = shmbus.Publisher("subcm", max_subscribers=1)
    with shmbus.Subscriber("subcm") as s:
        assert p.subscriber_count == 1
        with pytest.raises(shmbus.TooManySubscribers):
            shmbus.Subscriber("subcm")
    assert s.closed
    assert p.subscriber_count == 0
    for call in (s.recv, s.try_recv, s.flush, lambda: s.lost, lambda: s.publisher_alive):
        with pytest.raises(shmbus.Closed):
            call()
    s.close()  # harmless
    # The slot is free again.
    t = shmbus.Subscriber("subcm")
    t.close()
    assert p.subscriber_count == 0


# ---------------------------------------------------------------------------------------
# Subscriber: receiving


def test_recv_and_try_recv():
    p = shmbus.Publisher("rx")
    s = shmbus.Subscriber("rx")
    assert s.try_recv() is None
    start = time.monotonic()
    with pytest.raises(shmbus.Timeout):
        s.recv(timeout=0.1)
    assert time.monotonic() - start >= 0.09
    p.send(b"a")
    p.send(b"b")
    assert s.try_recv() == b"a"
    assert s.recv(timeout=0) == b"b"
    assert s.try_recv() is None
    # A blocking recv returns when a message comes.
    threading.Timer(0.05, p.send, (b"later",)).start()
    assert s.recv() == b"later"


def test_subscriber_starts_with_the_next_message_or_from_oldest():
    p = shmbus.Publisher("oldest", capacity=4096)
    for i in range(3):
        p.send(msg(i))
    new = shmbus.Subscriber("oldest")
    old = shmbus.Subscriber("oldest", from_oldest=True)
    p.send(msg(3))
    assert new.recv(timeout=5) == msg(3)
    assert new.try_recv() is None
    assert [old.recv(timeout=5) for _ in range(4)] == [msg(i) for i in range(4)]
    assert old.try_recv() is None


def test_recv_into():
    p = shmbus.Publisher("into", mode="backpressure")
    s = shmbus.Subscriber("into")
    p.send(b"0123456789")
    buf = bytearray(64)
    assert s.recv_into(buf, timeout=5) == 10
    assert buf[:10] == b"0123456789"

    arr = np.zeros(4, dtype=np.uint32)
    p.send(np.array([7, 8, 9, 10], dtype=np.uint32))
    assert s.recv_into(arr) == 16
    assert arr.tolist() == [7, 8, 9, 10]

    with pytest.raises(shmbus.Timeout):
        s.recv_into(buf, timeout=0.05)


def test_recv_into_too_small_keeps_the_message():
    p = shmbus.Publisher("intosmall")
    s = shmbus.Subscriber("intosmall")
    p.send(b"twelve bytes")
    small = bytearray(4)
    with pytest.raises(shmbus.TooLarge) as e:
        s.recv_into(small, timeout=5)
    assert "12" in str(e.value)
    assert small == bytearray(4)
    # Still unread: again too small, then received whole.
    with pytest.raises(shmbus.TooLarge):
        s.recv_into(small)
    big = bytearray(12)
    assert s.recv_into(big) == 12
    assert big == b"twelve bytes"
    assert s.try_recv() is None


def test_recv_into_read_only_buffer_refused():
    p = shmbus.Publisher("intoro")
    s = shmbus.Subscriber("intoro")
    p.send(b"data")
    with pytest.raises((TypeError, BufferError)):
        s.recv_into(b"read-only")
    assert s.recv(timeout=5) == b"data"


# ---------------------------------------------------------------------------------------
# recv_ref: borrowed messages


def bp_channel(name, **kw):
    kw.setdefault("capacity", 4096)
    p = shmbus.Publisher(name, mode="backpressure", **kw)
    return p, shmbus.Subscriber(name)


def test_recv_ref_with_numpy_view():
    p, s = bp_channel("ref")
    p.send(np.arange(6, dtype=np.int16))
    p.send(b"second")
    borrowed = s.recv_ref(timeout=5)
    assert len(borrowed) == 12
    with borrowed as view:
        assert isinstance(view, memoryview)
        assert view.readonly
        a = np.frombuffer(view, dtype=np.int16)
        assert a.tolist() == [0, 1, 2, 3, 4, 5]
        assert not a.flags.writeable
        with pytest.raises(TypeError):
            view[0] = 1
        del a
    # Released on exit: the view is gone, the next message comes.
    with pytest.raises(ValueError):
        view[0]
    assert s.recv(timeout=5) == b"second"


def test_borrowed_bytes_stay_intact_while_publisher_continues():
    p, s = bp_channel("refstable", capacity=RING)
    p.send(msg(0))
    with s.recv_ref(timeout=5) as view:
        # The publisher cannot reuse the borrowed bytes: it fills the rest and stops.
        sent = 0
        while p.try_send(b"Z" * MSG):
            sent += 1
        assert sent == FITS - 1
        assert bytes(view) == msg(0)
    # Released: room again.
    assert p.try_send(b"Z" * MSG) is True


def test_view_kept_past_the_block_raises_buffer_error():
    p, s = bp_channel("refkept")
    p.send(b"first!")
    p.send(b"second")
    with pytest.raises(BufferError):
        with s.recv_ref(timeout=5) as view:
            kept = np.frombuffer(view, dtype=np.uint8)
    # The borrow stays open: every receive refuses until the array is deleted.
    for call in (s.recv, s.try_recv, lambda: s.recv_into(bytearray(10)), s.recv_ref, s.close):
        with pytest.raises(BufferError):
            call()
    assert bytes(kept) == b"first!"
    del kept
    assert s.recv(timeout=5) == b"second"  # the borrowed message is not received again
    assert s.try_recv() is None


def test_slice_of_view_raises_buffer_error():
    p, s = bp_channel("refslice")
    p.send(b"abcdef")
    p.send(b"next")
    b = s.recv_ref(timeout=5)
    part = b.view[1:3]
    with pytest.raises(BufferError):
        b.release()
    with pytest.raises(BufferError):
        s.recv(timeout=0)
    assert bytes(part) == b"bc"
    del part
    b.release()
    b.release()  # harmless
    assert s.recv(timeout=5) == b"next"


def test_recv_ref_timeout_and_next_receive_ends_borrow():
    p, s = bp_channel("refnext")
    with pytest.raises(shmbus.Timeout):
        s.recv_ref(timeout=0.05)
    p.send(b"1")
    p.send(b"2")
    b = s.recv_ref(timeout=5)
    view = b.view
    assert bytes(view) == b"1"
    # Without views besides its own, the next receive ends the borrow.
    assert s.recv(timeout=5) == b"2"
    with pytest.raises(ValueError):
        bytes(view)


# ---------------------------------------------------------------------------------------
# Iteration, losses


def test_iteration_until_end_of_stream():
    p = shmbus.Publisher("iter", mode="backpressure")
    s = shmbus.Subscriber("iter")
    sent = [msg(i) for i in range(10)]
    for m in sent:
        p.send(m)
    p.close()
    assert iter(s) is s
    assert list(s) == sent
    with pytest.raises(StopIteration):
        next(s)


def test_lossy_lagged_exact_count():
    p = shmbus.Publisher("lag", capacity=RING)
    s = shmbus.Subscriber("lag")
    n = 20
    for i in range(n):
        p.send(msg(i))
    # The ring keeps the newest FITS messages: the others are lost, and exactly counted.
    with pytest.raises(shmbus.Lagged) as e:
        s.recv(timeout=5)
    assert e.value.lost == n - FITS
    assert isinstance(e.value.lost, int)
    assert str(e.value)
    assert s.lost == n - FITS
    assert [s.recv(timeout=5) for _ in range(FITS)] == [msg(i) for i in range(n - FITS, n)]
    assert s.try_recv() is None
    # Losses add up.
    for i in range(n):
        p.send(msg(i))
    with pytest.raises(shmbus.Lagged) as e:
        s.try_recv()
    assert e.value.lost == n - FITS
    assert s.lost == 2 * (n - FITS)
    assert s.try_recv() == msg(n - FITS)


def test_iteration_skips_losses_and_counts_them():
    p = shmbus.Publisher("iterlag", capacity=RING)
    s = shmbus.Subscriber("iterlag")
    for i in range(20):
        p.send(msg(i))
    p.close()
    assert list(s) == [msg(i) for i in range(20 - FITS, 20)]
    assert s.lost == 20 - FITS


def test_large_messages_round_trip():
    p = shmbus.Publisher("large", mode="backpressure", capacity=1 << 20)
    s = shmbus.Subscriber("large")
    data = os.urandom(p.max_message)
    p.send(data)
    assert s.recv(timeout=5) == data
    with pytest.raises(shmbus.TooLarge):
        p.send(data + b"!")


# ---------------------------------------------------------------------------------------
# Views outliving their objects; close with a loan open


def test_publisher_close_refused_while_a_loan_view_lives():
    p = shmbus.Publisher("closeloan")
    s = shmbus.Subscriber("closeloan")
    loan = p.loan(4)
    part = loan.view[:2]
    with pytest.raises(BufferError):
        p.close()
    assert p.closed is False
    del part
    loan.discard()
    p.close()
    assert p.closed
    with pytest.raises(shmbus.Disconnected):
        s.recv(timeout=5)


def test_borrowed_view_outlives_its_subscriber():
    import gc

    p = shmbus.Publisher("outlive", mode="backpressure")
    s = shmbus.Subscriber("outlive")
    p.send(np.arange(4, dtype=np.int32))
    b = s.recv_ref(timeout=5)
    a = np.frombuffer(b.view, dtype=np.int32)
    del b, s
    gc.collect()
    # The mapping (and the slot, so the bytes are not overwritten) stay while `a` lives.
    assert p.subscriber_count == 1
    p.send(b"x" * 100)
    assert a.tolist() == [0, 1, 2, 3]
    del a
    gc.collect()
    assert p.subscriber_count == 0


def test_loan_view_outlives_its_publisher():
    import gc

    p = shmbus.Publisher("outlivep")
    s = shmbus.Subscriber("outlivep")
    loan = p.loan(4)
    w = np.frombuffer(loan.view, dtype=np.uint8)
    del loan, p
    gc.collect()
    w[:] = 7  # still mapped and writable
    assert s.publisher_alive is True
    assert w.tolist() == [7, 7, 7, 7]
    del w
    gc.collect()
    # The loan was never committed: the stream just ends.
    with pytest.raises(shmbus.Disconnected):
        s.recv(timeout=5)
