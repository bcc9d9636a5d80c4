"""asyncio glue for the extension module."""

import asyncio
from typing import Any


async def await_future(fut: "asyncio.Future[Any]", token: Any) -> Any:
    """What ``Subscriber.recv_async`` returns: a coroutine (so it works with
    ``asyncio.create_task``, ``wait_for`` and ``gather`` like any ``async def``) awaiting
    the future a helper thread completes. When cancelled, it tells the token at once, which
    puts back a message already received: cancelling loses nothing."""
    try:
        return await fut
    except asyncio.CancelledError:
        token.cancel()
        raise
