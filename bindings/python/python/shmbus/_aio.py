"""asyncio glue for the extension module."""

import asyncio
from typing import Any, Optional


async def recv_async(sub: Any, timeout: Optional[float]) -> bytes:
    """What ``Subscriber.recv_async`` returns: a coroutine, so it works with
    ``asyncio.run``, ``create_task``, ``wait_for`` and ``gather`` like any ``async def``.

    It starts receiving when it first runs: a helper thread waits and completes the future.
    When cancelled it tells the token at once, which puts back a message already received
    (or already set as the future's result, when the cancellation came after it), so
    cancelling loses nothing."""
    fut, token = sub._recv_future(timeout)
    try:
        result: bytes = await fut
        return result
    except asyncio.CancelledError:
        done = fut.done() and not fut.cancelled() and fut.exception() is None
        token.cancel(fut.result() if done else None)
        raise
