"""Receive handlers (on_message, HandlerGuard) and recv_async with asyncio."""

import asyncio
import threading
import time

import pytest

import shmbus

from helpers import run_python, wait_until


def msg(i: int) -> bytes:
    return b"%016d" % i


# ---------------------------------------------------------------------------------------
# on_message / HandlerGuard


def test_on_message_delivers_every_message_in_order_on_a_thread():
    p = shmbus.Publisher("h", mode="backpressure", capacity=4096)
    s = shmbus.Subscriber("h")
    n = 500  # several times the ring: the handler must keep up
    got, threads = [], set()
    done = threading.Event()

    def callback(m):
        threads.add(threading.get_ident())
        got.append(m)
        if len(got) == n:
            done.set()

    guard = s.on_message(callback)
    assert guard.running
    assert "HandlerGuard" in repr(guard)
    for i in range(n):
        p.send(msg(i), timeout=10)
    assert done.wait(10)
    # Counted once the callback has returned.
    wait_until(lambda: guard.delivered == n, what="the last callback to return")
    assert guard.lost == 0
    stats = guard.stop()
    assert stats == shmbus.HandlerStats(delivered=n, lost=0)
    assert (stats.delivered, stats.lost) == (n, 0)
    assert not guard.running
    assert got == [msg(i) for i in range(n)]
    assert threads and threading.get_ident() not in threads
    # Stopping again is harmless.
    assert guard.stop() == stats


def test_subscriber_handed_to_on_message_is_closed():
    p = shmbus.Publisher("hc")
    s = shmbus.Subscriber("hc")
    guard = s.on_message(lambda m: None)
    try:
        assert s.closed
        with pytest.raises(shmbus.Closed):
            s.recv(timeout=0)
        with pytest.raises(shmbus.Closed):
            s.try_recv()
        with pytest.raises(shmbus.Closed):
            s.on_message(lambda m: None)
        # The handler's subscriber still counts.
        assert p.subscriber_count == 1
    finally:
        guard.stop()
    assert p.subscriber_count == 0


def test_handler_ends_at_end_of_stream():
    p = shmbus.Publisher("hend", mode="backpressure")
    s = shmbus.Subscriber("hend")
    got = []
    guard = s.on_message(got.append)
    for i in range(10):
        p.send(msg(i))
    p.close()
    wait_until(lambda: not guard.running, what="the handler to end with the stream")
    assert guard.stop() == (10, 0)
    assert got == [msg(i) for i in range(10)]


def test_handler_counts_losses():
    p = shmbus.Publisher("hlost", capacity=256)
    s = shmbus.Subscriber("hlost")
    for i in range(20):
        p.send(msg(i))  # 8 fit in the ring: 12 are lost before the handler starts
    p.close()
    got = []
    guard = s.on_message(got.append)
    wait_until(lambda: not guard.running)
    assert guard.lost == 12
    assert guard.stop() == (8, 12)
    assert got == [msg(i) for i in range(12, 20)]


def test_callback_exception_becomes_handler_error_cause():
    p = shmbus.Publisher("hraise")
    s = shmbus.Subscriber("hraise")
    raised = []
    called = threading.Event()

    def callback(m):
        exc = KeyError(m)
        raised.append(exc)
        called.set()
        raise exc

    guard = s.on_message(callback)
    p.send(b"boom")
    assert called.wait(10)
    wait_until(lambda: not guard.running, what="the failed handler to stop")
    with pytest.raises(shmbus.HandlerError) as e:
        guard.stop()
    assert isinstance(e.value, shmbus.Error)
    assert str(e.value)
    assert e.value.__cause__ is raised[0]
    assert guard.delivered == 0
    # Reported once; the guard is stopped.
    assert guard.stop() == (0, 0)


def test_handler_context_manager():
    p = shmbus.Publisher("hcm")
    s = shmbus.Subscriber("hcm")
    got = []
    one = threading.Event()
    with s.on_message(lambda m: (got.append(m), one.set())) as guard:
        p.send(b"x")
        assert one.wait(10)
    assert not guard.running
    assert got == [b"x"]


def test_handler_error_raised_by_context_manager_exit():
    p = shmbus.Publisher("hcmx")
    s = shmbus.Subscriber("hcmx")
    called = threading.Event()

    def callback(m):
        called.set()
        raise ValueError("bad message")

    with pytest.raises(shmbus.HandlerError) as e:
        with s.on_message(callback):
            p.send(b"x")
            assert called.wait(10)
    assert isinstance(e.value.__cause__, ValueError)


def test_on_message_refused_while_a_borrowed_view_lives():
    p = shmbus.Publisher("hborrow", mode="backpressure")
    s = shmbus.Subscriber("hborrow")
    p.send(b"a")
    b = s.recv_ref(timeout=5)
    part = b.view[:1]
    with pytest.raises(BufferError):
        s.on_message(lambda m: None)
    assert not s.closed
    del part
    guard = s.on_message(lambda m: None)
    guard.stop()


def test_running_handler_does_not_hang_interpreter_exit():
    code = """
import shmbus
p = shmbus.Publisher("exit")
s = shmbus.Subscriber("exit")
g = s.on_message(lambda m: None)
b = shmbus.Blackboard.create("exitb", 8)
g2 = b.on_update(lambda v, d: None)
p.send(b"x")
print("ok")
"""
    start = time.monotonic()
    r = run_python(code, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    assert time.monotonic() - start < 10
    assert shmbus.list() == []


# ---------------------------------------------------------------------------------------
# recv_async


def test_recv_async_returns_message_and_does_not_block_the_loop():
    p = shmbus.Publisher("a")
    s = shmbus.Subscriber("a")

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                if ticks == 10:
                    # Only sent if the loop runs while recv_async waits.
                    p.send(b"from the loop")
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        try:
            m = await s.recv_async(timeout=10)
        finally:
            t.cancel()
        return m, ticks

    m, ticks = asyncio.run(main())
    assert m == b"from the loop"
    assert ticks >= 10


def test_recv_async_with_message_waiting_and_errors():
    p = shmbus.Publisher("a2")
    s = shmbus.Subscriber("a2")

    async def main():
        p.send(b"ready")
        assert await s.recv_async() == b"ready"
        start = time.monotonic()
        with pytest.raises(shmbus.Timeout):
            await s.recv_async(timeout=0.1)
        assert time.monotonic() - start >= 0.09
        with pytest.raises(ValueError):
            await s.recv_async(timeout=-1)
        p.send(b"last")
        p.close()
        assert await s.recv_async(timeout=5) == b"last"
        with pytest.raises(shmbus.Disconnected):
            await s.recv_async(timeout=5)
        s.close()
        with pytest.raises(shmbus.Closed):
            await s.recv_async(timeout=5)

    asyncio.run(main())


def test_recv_async_in_tasks_and_wait_for():
    p = shmbus.Publisher("a3")
    s = shmbus.Subscriber("a3")

    async def main():
        task = asyncio.create_task(s.recv_async(timeout=10))
        await asyncio.sleep(0)
        p.send(b"via task")
        assert await task == b"via task"
        p.send(b"via wait_for")
        assert await asyncio.wait_for(s.recv_async(), timeout=10) == b"via wait_for"

    asyncio.run(main())


def _cancelled_then(next_receive):
    """Cancels a pending recv_async, sends a message, and returns what ``next_receive``
    (an async function taking the subscriber) gets; the publisher stays open."""
    p = shmbus.Publisher("cancel")
    s = shmbus.Subscriber("cancel")

    async def main():
        task = asyncio.ensure_future(s.recv_async())
        await asyncio.sleep(0)  # one loop step: the task starts and awaits its message
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        p.send(b"after cancel")
        p.send(b"and another")
        return await next_receive(s)

    return asyncio.run(main()), s, p


def test_cancelled_recv_async_loses_nothing_next_recv_async():
    async def nxt(s):
        return [await s.recv_async(timeout=5), await s.recv_async(timeout=5)]

    got, s, p = _cancelled_then(nxt)
    assert got == [b"after cancel", b"and another"]
    assert s.try_recv() is None


def test_cancelled_recv_async_loses_nothing_next_sync_recv():
    async def nxt(s):
        return [s.recv(timeout=5), s.recv(timeout=5)]

    got, s, p = _cancelled_then(nxt)
    assert got == [b"after cancel", b"and another"]
    assert s.try_recv() is None


def test_cancelled_recv_async_loses_nothing_after_the_loop():
    async def nxt(s):
        return None

    _, s, p = _cancelled_then(nxt)
    assert s.recv(timeout=5) == b"after cancel"
    assert s.recv(timeout=5) == b"and another"
    assert s.try_recv() is None


def test_repeatedly_cancelled_recv_async_loses_and_duplicates_nothing():
    p = shmbus.Publisher("stress", capacity=1 << 20)
    s = shmbus.Subscriber("stress")
    n = 300
    sent = [msg(i) for i in range(n)]

    def publish():
        for i, m in enumerate(sent):
            p.send(m)
            # Sometimes faster, sometimes slower than the receiver's 1 ms patience.
            time.sleep(0.004 if i % 5 == 0 else 0.0002)

    async def main():
        got, timeouts = [], 0
        end = time.monotonic() + 30
        while len(got) < n and time.monotonic() < end:
            try:
                got.append(await asyncio.wait_for(s.recv_async(), timeout=0.001))
            except asyncio.TimeoutError:
                timeouts += 1
        return got, timeouts

    t = threading.Thread(target=publish)
    t.start()
    try:
        got, timeouts = asyncio.run(main())
    finally:
        t.join()
    assert timeouts > 0  # cancellations did happen
    assert got == sent
    assert s.try_recv() is None


def test_recv_async_coroutine_made_outside_a_running_loop():
    p = shmbus.Publisher("outside")
    s = shmbus.Subscriber("outside")
    p.send(b"waiting")
    assert asyncio.run(s.recv_async(timeout=5)) == b"waiting"


@pytest.mark.parametrize("how", ["message-waiting", "message-after-cancel", "wait_for-0"])
def test_recv_async_cancelled_before_it_runs_loses_nothing(how):
    p = shmbus.Publisher("early")
    s = shmbus.Subscriber("early")

    async def main():
        if how == "wait_for-0":
            p.send(b"m1")
            try:
                return [await asyncio.wait_for(s.recv_async(), timeout=0)]
            except asyncio.TimeoutError:
                return []
        if how == "message-waiting":
            p.send(b"m1")
        task = asyncio.create_task(s.recv_async())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        if how == "message-after-cancel":
            p.send(b"m1")
            # The loop keeps running a while, as an application's would.
            await asyncio.sleep(0.1)
        return []

    got = asyncio.run(main())
    p.send(b"m2")
    while True:
        m = s.recv(timeout=1)
        got.append(m)
        if m == b"m2":
            break
    assert got == [b"m1", b"m2"]


def test_cancelling_recv_async_does_not_stall_the_loop():
    p = shmbus.Publisher("stall")
    s = shmbus.Subscriber("stall")

    async def main():
        max_gap, stop = 0.0, False

        async def ticker():
            nonlocal max_gap
            last = time.monotonic()
            while not stop:
                await asyncio.sleep(0.001)
                now = time.monotonic()
                max_gap, last = max(max_gap, now - last), now

        tick = asyncio.create_task(ticker())
        for i in range(12):
            task = asyncio.create_task(s.recv_async())
            await asyncio.sleep(0.005 + 0.004 * i)  # cancel at various points of a wait
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        stop = True
        await tick
        return max_gap

    max_gap = asyncio.run(main())
    assert p.published == 0
    assert max_gap < 0.02, "the loop stalled %.3f s" % max_gap


def test_dropped_guard_reports_callback_error_as_unraisable(monkeypatch):
    import gc
    import sys

    p = shmbus.Publisher("unraisable")
    s = shmbus.Subscriber("unraisable")
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    called = threading.Event()

    def callback(m):
        called.set()
        raise LookupError("lost in the handler")

    guard = s.on_message(callback)
    p.send(b"x")
    assert called.wait(10)
    wait_until(lambda: not guard.running)
    del guard
    gc.collect()
    assert [type(u.exc_value) for u in reported] == [LookupError]
    assert str(reported[0].exc_value) == "lost in the handler"


def test_recv_async_lagged():
    p = shmbus.Publisher("alag", capacity=256)
    s = shmbus.Subscriber("alag")
    for i in range(20):
        p.send(msg(i))

    async def main():
        with pytest.raises(shmbus.Lagged) as e:
            await s.recv_async(timeout=5)
        assert e.value.lost == 12
        return await s.recv_async(timeout=5)

    assert asyncio.run(main()) == msg(12)
    assert s.lost == 12


def test_never_awaited_recv_async_takes_nothing():
    import gc
    import warnings

    p = shmbus.Publisher("lazy")
    s = shmbus.Subscriber("lazy")

    async def main():
        p.send(b"kept")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "never awaited"
            coro = s.recv_async()
            del coro
            gc.collect()
        return s.try_recv()

    assert asyncio.run(main()) == b"kept"
