#!/usr/bin/env python3
"""Python <-> Python benchmark of shmbus against multiprocessing's transports, in one run.

Rows (every row runs as two spawned processes, pinned to two CPUs by default):

- ping-pong latency, 64 B: two one-way channels (one per direction), blocking receives;
  reported as one-way latency = round trip / 2 (as ``shmbus bench`` does), p50 and p99 over
  the rounds after the first 10 % (warm-up);
- one-way throughput, 64 B and 1 MiB: one producer, one consumer, the producer's clock from
  its first send to the consumer's receipt of the end of the stream.

Transports: shmbus ``send``/``recv`` (copy), shmbus ``loan``/``recv_ref`` (zero-copy), both on
back-pressure channels with the binding's blocking receives (spin 20 µs, then a futex), and
for throughput also zero-copy with a consumer that polls (``recv_ref(timeout=0)``), as the
busy-polling receivers of ``shmbus bench``'s throughput rows do; ``multiprocessing.Queue``
(bounded, so it pushes back too); ``multiprocessing.Pipe`` (``send_bytes``/``recv_bytes``);
``multiprocessing.shared_memory`` with a single-slot handoff guarded by a
``multiprocessing.Condition`` over a ``Lock``.

Every message is numbered: the producer writes the number into the first 8 bytes and its low
byte into the last byte. The consumer's work, the same for every transport, is to read those
two fields and the length and compare them with what it expects; a zero-length message ends
the stream. Producers of the copy transports restamp one prepared buffer and hand it over
(``multiprocessing.Queue`` gets an immutable ``bytes`` copy: it pickles later, in its feeder
thread); the zero-copy producer writes every byte of the loan in place (a 64 B template copy,
or ``memset`` for large messages, like the Rust bench's ``fill``), then the stamp. A wrong
count or content fails the run (exit status 1).

Each row runs ``--repeat`` times (repetitions interleaved) and the best run is reported. The
conditions are printed with the table: pinning, the CPU time other processes took during the
runs, hypervisor steal, and with ``--rust-cli`` the cross-core floor before and after.

``--rust-cli PATH`` also runs the matching rows of ``shmbus bench`` (the Rust API, same
machine, same pinning) in the same run, just before each group of Python rows, and prints the
ratio Python / Rust.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import json
import multiprocessing
import os
import platform
import queue
import secrets
import shlex
import struct
import subprocess
import sys
import time
import traceback
from multiprocessing import shared_memory
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import shmbus

SMALL = 64
LARGE = 1 << 20
STAMP = struct.Struct("<Q")
# The shared-memory slot's header: a "full" flag, then the message's length.
SLOT_HEADER = struct.Struct("<QQ")
# Messages at least this large are filled in place with memset, smaller ones by copying a
# template (cheaper from Python for a few bytes; both write every byte once).
MEMSET_FROM = 4096
WARMUP_FRACTION = 0.1
OPEN_TIMEOUT = 20.0
# How long past its planned duration a run may take (spawning, draining) before it is killed.
RUN_GRACE = 60.0
RUST_TIMEOUT = 300.0
LATENCY = "latency"
THROUGHPUT = "throughput"
# (test, message size), in the order of the table.
TESTS = ((LATENCY, SMALL), (THROUGHPUT, SMALL), (THROUGHPUT, LARGE))
SHMBUS_COPY = "shmbus send/recv (copy)"
SHMBUS_ZERO_COPY = "shmbus loan/recv_ref (zero-copy)"
SHMBUS_ZERO_COPY_POLL = "shmbus loan/recv_ref (zero-copy), polling consumer"
MP_QUEUE = "multiprocessing.Queue"
MP_PIPE = "multiprocessing.Pipe"
MP_SHM = "shared_memory + Condition"
# The `shmbus bench` row each shmbus row compares with: (test, transport) -> Rust row name.
# Latency: the Rust row with the binding's wait (default options: spin 20 µs, then futex);
# it paces rounds 1 µs apart, shorter than a round, so they run back to back.
RUST_ROWS = {
    (LATENCY, SHMBUS_COPY): "shmbus blocking, a message every 1 µs",
    (LATENCY, SHMBUS_ZERO_COPY): "shmbus blocking, a message every 1 µs",
    (THROUGHPUT, SHMBUS_COPY): "shmbus send (copy)",
    (THROUGHPUT, SHMBUS_ZERO_COPY): "shmbus loan (zero-copy)",
    (THROUGHPUT, SHMBUS_ZERO_COPY_POLL): "shmbus loan (zero-copy)",
}
# The `--only` filters of the `shmbus bench` runs that produce RUST_ROWS, per test.
RUST_FILTERS = {
    LATENCY: ("a message every 1 µs",),
    THROUGHPUT: ("shmbus send (copy)", "shmbus loan (zero-copy)"),
}
RUST_FLOOR = "floor: two atomics"


# ---------------------------------------------------------------------------------------------
# Messages


def template(size: int) -> bytes:
    """The body every message of ``size`` bytes starts from."""
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def inspect(message: Any) -> Optional[Tuple[int, int, int]]:
    """The consumer's work: ``(number, last byte, length)`` of a message; ``None`` for the
    empty message that ends the stream. Message ``seq`` of ``size`` bytes must give
    ``(seq, seq & 0xFF, size)`` (compared inline in the loops: a function call per message
    would weigh on the 64 B rows)."""
    n = len(message)
    if n == 0:
        return None
    return STAMP.unpack_from(message, 0)[0], message[n - 1], n


class Sender:
    """Sends numbered messages of one size over a transport; ``end`` sends the empty message."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.staging = bytearray(template(size))

    def stage(self, seq: int) -> bytearray:
        """The prepared buffer, stamped with ``seq``."""
        STAMP.pack_into(self.staging, 0, seq)
        self.staging[-1] = seq & 0xFF
        return self.staging

    def wait_ready(self) -> None:
        """Returns once a message sent now reaches the receiver."""

    def send(self, seq: int) -> None:
        """Sends message ``seq`` (waits while the transport is full)."""
        raise NotImplementedError

    def end(self) -> None:
        """Sends the empty message that ends the stream."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases the transport (after ``end``)."""


class Receiver:
    """Receives messages and returns what :func:`inspect` sees in them."""

    def recv(self) -> Optional[Tuple[int, int, int]]:
        """Waits for the next message; what :func:`inspect` sees in it."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases the transport."""


class InPlaceWriter:
    """Writes message ``seq`` into a writable memoryview, every byte once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.template = template(size)
        self.block = ctypes.c_char * size if size >= MEMSET_FROM else None

    def __call__(self, view: memoryview, seq: int) -> None:
        if self.block is None:
            view[:] = self.template
            view[-1] = seq & 0xFF
        else:
            block = self.block.from_buffer(view)
            ctypes.memset(block, seq & 0xFF, self.size)
            # The view must have no export left when the loan is committed.
            del block
        STAMP.pack_into(view, 0, seq)


# ---------------------------------------------------------------------------------------------
# Transports: a spec is made in the parent, pickled to the children, opened there.


@dataclasses.dataclass
class ShmbusSpec:
    """A shmbus back-pressure channel; the sender creates it (as its publisher)."""

    namespace: str
    name: str
    size: int
    capacity: int
    zero_copy: bool
    poll: bool = False

    def sender(self) -> Sender:
        return ShmbusLoanSender(self) if self.zero_copy else ShmbusSender(self)

    def receiver(self) -> Receiver:
        if not self.zero_copy:
            return ShmbusReceiver(self)
        return ShmbusPollingBorrowReceiver(self) if self.poll else ShmbusBorrowReceiver(self)

    def cleanup(self) -> None:
        """Nothing: the publisher removes the channel when it closes."""


class ShmbusSender(Sender):
    """``Publisher.send``: one copy into the ring."""

    def __init__(self, spec: ShmbusSpec) -> None:
        super().__init__(spec.size)
        self.publisher = shmbus.Publisher(
            spec.name,
            mode="backpressure",
            capacity=spec.capacity,
            max_message=spec.size,
            namespace=spec.namespace,
        )

    def wait_ready(self) -> None:
        self.publisher.wait_subscribers(1, timeout=OPEN_TIMEOUT)

    def send(self, seq: int) -> None:
        self.publisher.send(self.stage(seq))

    def end(self) -> None:
        self.publisher.send(b"")

    def close(self) -> None:
        self.publisher.close()


class ShmbusLoanSender(ShmbusSender):
    """``Publisher.loan``: the message is written in place in the ring."""

    def __init__(self, spec: ShmbusSpec) -> None:
        super().__init__(spec)
        self.write = InPlaceWriter(spec.size)

    def send(self, seq: int) -> None:
        with self.publisher.loan(self.size) as view:
            self.write(view, seq)


def open_subscriber(spec: ShmbusSpec) -> shmbus.Subscriber:
    """Subscribes, waiting up to ``OPEN_TIMEOUT`` for the publisher's process to create the
    channel."""
    return shmbus.Subscriber(spec.name, namespace=spec.namespace, open_timeout=OPEN_TIMEOUT)


class ShmbusReceiver(Receiver):
    """``Subscriber.recv``: one copy out of the ring into a ``bytes``."""

    def __init__(self, spec: ShmbusSpec) -> None:
        self.subscriber = open_subscriber(spec)

    def recv(self) -> Optional[Tuple[int, int, int]]:
        return inspect(self.subscriber.recv())

    def close(self) -> None:
        self.subscriber.close()


class ShmbusBorrowReceiver(ShmbusReceiver):
    """``Subscriber.recv_ref``: the message is read in place in the ring."""

    def recv(self) -> Optional[Tuple[int, int, int]]:
        with self.subscriber.recv_ref() as view:
            return inspect(view)


class ShmbusPollingBorrowReceiver(ShmbusReceiver):
    """``Subscriber.recv_ref(timeout=0)`` in a loop: a consumer that never sleeps, as the
    receivers of ``shmbus bench``'s throughput rows (the binding cannot set the Rust
    option ``spin``; its blocking receives spin 20 µs, then sleep on a futex)."""

    def recv(self) -> Optional[Tuple[int, int, int]]:
        recv_ref = self.subscriber.recv_ref
        while True:
            try:
                borrowed = recv_ref(timeout=0)
                break
            except shmbus.Timeout:
                pass
        with borrowed as view:
            return inspect(view)


@dataclasses.dataclass
class QueueSpec:
    """A bounded ``multiprocessing.Queue``."""

    queue: Any
    size: int

    def sender(self) -> Sender:
        return QueueSender(self)

    def receiver(self) -> Receiver:
        return QueueReceiver(self)

    def cleanup(self) -> None:
        self.queue.close()
        self.queue.join_thread()


class QueueSender(Sender):
    """``Queue.put`` of an immutable copy (the feeder thread pickles it later)."""

    def __init__(self, spec: QueueSpec) -> None:
        super().__init__(spec.size)
        self.queue = spec.queue

    def send(self, seq: int) -> None:
        self.queue.put(bytes(self.stage(seq)))

    def end(self) -> None:
        self.queue.put(b"")

    def close(self) -> None:
        self.queue.close()
        self.queue.join_thread()


class QueueReceiver(Receiver):
    """``Queue.get``."""

    def __init__(self, spec: QueueSpec) -> None:
        self.queue = spec.queue

    def recv(self) -> Optional[Tuple[int, int, int]]:
        return inspect(self.queue.get())


@dataclasses.dataclass
class PipeSpec:
    """A one-way ``multiprocessing.Pipe`` (an OS pipe)."""

    reader: Any
    writer: Any
    size: int

    def sender(self) -> Sender:
        return PipeSender(self)

    def receiver(self) -> Receiver:
        return PipeReceiver(self)

    def cleanup(self) -> None:
        self.reader.close()
        self.writer.close()


class PipeSender(Sender):
    """``Connection.send_bytes``."""

    def __init__(self, spec: PipeSpec) -> None:
        super().__init__(spec.size)
        self.conn = spec.writer

    def send(self, seq: int) -> None:
        self.conn.send_bytes(self.stage(seq))

    def end(self) -> None:
        self.conn.send_bytes(b"")

    def close(self) -> None:
        self.conn.close()


class PipeReceiver(Receiver):
    """``Connection.recv_bytes``."""

    def __init__(self, spec: PipeSpec) -> None:
        self.conn = spec.reader

    def recv(self) -> Optional[Tuple[int, int, int]]:
        return inspect(self.conn.recv_bytes())

    def close(self) -> None:
        self.conn.close()


@dataclasses.dataclass
class SlotSpec:
    """One message slot in ``SharedMemory`` (header, then payload) and the ``Condition``
    that guards it. The producer waits until the slot is empty, writes, marks it full; the
    consumer waits until it is full, copies the message out, marks it empty."""

    memory: shared_memory.SharedMemory
    condition: Any
    size: int

    def sender(self) -> Sender:
        return SlotSender(self)

    def receiver(self) -> Receiver:
        return SlotReceiver(self)

    def cleanup(self) -> None:
        self.memory.close()
        self.memory.unlink()


def slot_buffer(memory: shared_memory.SharedMemory) -> memoryview:
    """The bytes of an open ``SharedMemory``."""
    buf = memory.buf
    assert buf is not None, "the shared memory is closed"
    return buf


class SlotSender(Sender):
    """Fills the slot once the consumer has taken the previous message."""

    def __init__(self, spec: SlotSpec) -> None:
        super().__init__(spec.size)
        self.memory = spec.memory
        self.buf = slot_buffer(spec.memory)
        self.condition = spec.condition

    def send(self, seq: int) -> None:
        self.put(self.stage(seq))

    def end(self) -> None:
        self.put(b"")

    def put(self, data: Any) -> None:
        """Waits for an empty slot, then fills it."""
        start = SLOT_HEADER.size
        with self.condition:
            while SLOT_HEADER.unpack_from(self.buf, 0)[0]:
                self.condition.wait()
            self.buf[start : start + len(data)] = data
            SLOT_HEADER.pack_into(self.buf, 0, 1, len(data))
            self.condition.notify()

    def close(self) -> None:
        del self.buf
        self.memory.close()


class SlotReceiver(Receiver):
    """Takes the message from the slot (a copy into a ``bytes``) and empties it."""

    def __init__(self, spec: SlotSpec) -> None:
        self.memory = spec.memory
        self.buf = slot_buffer(spec.memory)
        self.condition = spec.condition

    def recv(self) -> Optional[Tuple[int, int, int]]:
        start = SLOT_HEADER.size
        with self.condition:
            while not SLOT_HEADER.unpack_from(self.buf, 0)[0]:
                self.condition.wait()
            length = SLOT_HEADER.unpack_from(self.buf, 0)[1]
            message = bytes(self.buf[start : start + length])
            SLOT_HEADER.pack_into(self.buf, 0, 0, 0)
            self.condition.notify()
        return inspect(message)

    def close(self) -> None:
        del self.buf
        self.memory.close()


def ring_capacity(size: int, test: str) -> int:
    """The ring size ``shmbus bench`` uses: 64 KiB for ping-pong, at least 1 MiB and four
    messages for throughput."""
    floor = 64 << 10 if test == LATENCY else 1 << 20
    need = 4 * (size + 64)
    return max(floor, 1 << (need - 1).bit_length())


def make_shmbus(zero_copy: bool, poll: bool = False) -> Callable[..., ShmbusSpec]:
    """A factory of shmbus channel specs (copy or zero-copy; a polling consumer or not)."""

    def make(ctx: Any, namespace: str, name: str, size: int, test: str) -> ShmbusSpec:
        return ShmbusSpec(namespace, name, size, ring_capacity(size, test), zero_copy, poll)

    return make


def make_queue(ctx: Any, namespace: str, name: str, size: int, test: str) -> QueueSpec:
    """A Queue bounded to about as many messages as the shmbus ring holds."""
    bound = max(2, ring_capacity(size, test) // (size + 64))
    return QueueSpec(ctx.Queue(bound), size)


def make_pipe(ctx: Any, namespace: str, name: str, size: int, test: str) -> PipeSpec:
    """A one-way Pipe."""
    reader, writer = ctx.Pipe(duplex=False)
    return PipeSpec(reader, writer, size)


def make_slot(ctx: Any, namespace: str, name: str, size: int, test: str) -> SlotSpec:
    """A shared-memory slot with its Condition."""
    memory = shared_memory.SharedMemory(create=True, size=SLOT_HEADER.size + size)
    return SlotSpec(memory, ctx.Condition(ctx.Lock()), size)


class Transport(NamedTuple):
    """A row label, its channel factory, and the tests it takes part in."""

    label: str
    factory: Callable[..., Any]
    tests: Tuple[str, ...] = (LATENCY, THROUGHPUT)


# In the order of the table; the Queue is the reference of the ratios.
TRANSPORTS = (
    Transport(SHMBUS_COPY, make_shmbus(False)),
    Transport(SHMBUS_ZERO_COPY, make_shmbus(True)),
    # Like the Rust rows' busy-polling receivers; ping-pong rounds are shorter than the
    # binding's 20 µs spin anyway.
    Transport(SHMBUS_ZERO_COPY_POLL, make_shmbus(True, poll=True), (THROUGHPUT,)),
    Transport(MP_QUEUE, make_queue),
    Transport(MP_PIPE, make_pipe),
    Transport(MP_SHM, make_slot),
)


def transports_for(test: str) -> List[Transport]:
    """The transports of one test."""
    return [t for t in TRANSPORTS if test in t.tests]


# ---------------------------------------------------------------------------------------------
# The child processes


@dataclasses.dataclass
class RunParams:
    """What a child needs besides its channels."""

    size: int
    duration: float


def check_clock_every(size: int) -> int:
    """A mask: the producer looks at the clock when ``seq & mask == 0``."""
    return 255 if size < MEMSET_FROM else 0


def producer(specs: Sequence[Any], params: RunParams, barrier: Any) -> Dict[str, Any]:
    """Throughput: sends numbered messages for ``params.duration`` seconds, then the end."""
    tx = specs[0].sender()
    tx.wait_ready()
    barrier.wait(OPEN_TIMEOUT)
    clock, send, mask = time.perf_counter, tx.send, check_clock_every(params.size)
    start = clock()
    deadline = start + params.duration
    seq = 0
    while True:
        send(seq)
        seq += 1
        if not seq & mask and clock() >= deadline:
            break
    tx.end()
    tx.close()
    return {"sent": seq, "start": start}


def consumer(specs: Sequence[Any], params: RunParams, barrier: Any) -> Dict[str, Any]:
    """Throughput: receives and checks every message until the end of the stream."""
    rx = specs[0].receiver()
    barrier.wait(OPEN_TIMEOUT)
    recv, size = rx.recv, params.size
    count = errors = 0
    first_error = ""
    while True:
        got = recv()
        if got is None:
            break
        if got != (count, count & 0xFF, size):
            errors += 1
            first_error = first_error or f"message {count}: got {got}"
        count += 1
    end = time.perf_counter()
    rx.close()
    return {"received": count, "errors": errors, "first_error": first_error, "end": end}


def initiator(specs: Sequence[Any], params: RunParams, barrier: Any) -> Dict[str, Any]:
    """Ping-pong: sends message ``i``, waits for its echo, times the round trip."""
    tx, rx = specs[0].sender(), specs[1].receiver()
    tx.wait_ready()
    barrier.wait(OPEN_TIMEOUT)
    clock, send, recv, size = time.perf_counter_ns, tx.send, rx.recv, params.size
    deadline = clock() + int(params.duration * 1e9)
    rounds: List[int] = []
    errors = 0
    first_error = ""
    seq = 0
    while True:
        t0 = clock()
        send(seq)
        got = recv()
        t1 = clock()
        rounds.append(t1 - t0)
        if got != (seq, seq & 0xFF, size):
            errors += 1
            first_error = first_error or f"reply {seq}: got {got}"
        seq += 1
        if t1 >= deadline:
            break
    tx.end()
    tx.close()
    rx.close()
    p50, p99 = one_way_percentiles(rounds)
    return {"sent": seq, "received": seq, "errors": errors, "first_error": first_error,
            "p50_ns": p50, "p99_ns": p99}


def echo(specs: Sequence[Any], params: RunParams, barrier: Any) -> Dict[str, Any]:
    """Ping-pong: answers every message with the same number until the end of the stream."""
    rx, tx = specs[0].receiver(), specs[1].sender()
    tx.wait_ready()
    barrier.wait(OPEN_TIMEOUT)
    recv, send, size = rx.recv, tx.send, params.size
    count = errors = 0
    first_error = ""
    while True:
        got = recv()
        if got is None:
            break
        if got != (count, count & 0xFF, size):
            errors += 1
            first_error = first_error or f"message {count}: got {got}"
        send(got[0])
        count += 1
    tx.close()
    rx.close()
    return {"received": count, "errors": errors, "first_error": first_error}


def one_way_percentiles(rounds: List[int]) -> Tuple[float, float]:
    """p50 and p99 of round trip / 2, in ns, after the warm-up."""
    kept = sorted(rounds[int(len(rounds) * WARMUP_FRACTION) :]) or [0]
    last = len(kept) - 1
    return kept[last // 2] / 2, kept[round(last * 0.99)] / 2


ROLES = {
    "producer": producer,
    "consumer": consumer,
    "initiator": initiator,
    "echo": echo,
}


def child_main(role: str, specs: Sequence[Any], params: RunParams, cpu: Optional[int],
               barrier: Any, results: Any) -> None:
    """Entry point of a child process: pins itself, plays ``role``, reports to ``results``."""
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        outcome = ROLES[role](specs, params, barrier)
        results.put({"role": role, **outcome})
    except BaseException as e:  # reported to the parent, which fails the run
        barrier.abort()
        results.put({"role": role, "error": f"{type(e).__name__}: {e}",
                     "traceback": traceback.format_exc()})


# ---------------------------------------------------------------------------------------------
# The parent: runs, rows, the Rust reference


@dataclasses.dataclass
class Settings:
    """How this run measures."""

    namespace: str
    cpus: Tuple[Optional[int], Optional[int]]
    pin: str
    repeat: int
    latency_seconds: float
    throughput_seconds: float
    quick: bool


@dataclasses.dataclass
class Run:
    """One measurement of one (test, size, transport)."""

    test: str
    size: int
    transport: str
    ok: bool
    problem: str = ""
    messages: int = 0
    p50_ns: Optional[float] = None
    p99_ns: Optional[float] = None
    msgs_per_s: Optional[float] = None
    # CPUs' worth of time other processes used during the run, and the share stolen by the
    # hypervisor: the run's disturbance.
    others_cpu: float = 0.0
    steal: float = 0.0


@dataclasses.dataclass
class CpuTimes:
    """The machine's CPU time (``/proc/stat``) and ours (this process and its reaped
    children), in seconds, at one moment."""

    busy: float
    steal: float
    total: float
    ours: float
    wall: float

    @staticmethod
    def now() -> "CpuTimes":
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        hz = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
        t = os.times()
        return CpuTimes(
            busy=(user + nice + system + irq + softirq) / hz,
            steal=steal / hz,
            total=sum(ticks) / hz,
            ours=t.user + t.system + t.children_user + t.children_system,
            wall=time.monotonic(),
        )

    def since(self, before: "CpuTimes") -> Tuple[float, float]:
        """(CPUs used by other processes, share of time stolen) between ``before`` and this."""
        wall = max(self.wall - before.wall, 1e-9)
        others = max(0.0, (self.busy - before.busy) - (self.ours - before.ours)) / wall
        total = self.total - before.total
        return others, ((self.steal - before.steal) / total if total > 0 else 0.0)


def make_specs(ctx: Any, factory: Callable[..., Any], settings: Settings, test: str,
               size: int, tag: str) -> List[Any]:
    """The channels of one run: one for throughput, two (ping, pong) for ping-pong."""
    names = [f"{tag}.ping", f"{tag}.pong"] if test == LATENCY else [f"{tag}.data"]
    return [factory(ctx, settings.namespace, name, size, test) for name in names]


def run_children(ctx: Any, roles: Sequence[str], specs: Sequence[Any], params: RunParams,
                 settings: Settings) -> Dict[str, Dict[str, Any]]:
    """Runs the two roles in two processes; their reports by role (``error`` on failure)."""
    results = ctx.Queue()
    barrier = ctx.Barrier(len(roles))
    procs = [
        ctx.Process(target=child_main, daemon=True,
                    args=(role, specs, params, cpu, barrier, results))
        for role, cpu in zip(roles, settings.cpus)
    ]
    for p in procs:
        p.start()
    reports: Dict[str, Dict[str, Any]] = {}
    deadline = time.monotonic() + params.duration + RUN_GRACE
    try:
        while len(reports) < len(roles):
            left = deadline - time.monotonic()
            report = results.get(timeout=max(left, 0.01))
            reports[report["role"]] = report
            if "error" in report:
                # The other side may wait forever for a message that will not come.
                deadline = min(deadline, time.monotonic() + 5)
    except queue.Empty:
        for role in roles:
            reports.setdefault(role, {"role": role, "error": "timed out"})
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
            p.join()
    results.close()
    results.join_thread()
    return reports


def failure(reports: Dict[str, Dict[str, Any]]) -> str:
    """Why a run failed (child errors, wrong counts, wrong contents), or ``""``."""
    problems = [f"{r['role']}: {r['error']}" for r in reports.values() if "error" in r]
    for r in reports.values():
        if "traceback" in r:
            progress(f"{r['role']} failed:\n{r['traceback']}")
    if problems:
        return "; ".join(problems)
    for r in reports.values():
        if r.get("errors"):
            problems.append(f"{r['role']}: {r['errors']} wrong messages ({r['first_error']})")
    sent = next(r["sent"] for r in reports.values() if "sent" in r)
    for r in reports.values():
        if r.get("received") is not None and r["received"] != sent:
            problems.append(f"{r['role']}: received {r['received']} of {sent} messages")
    return "; ".join(problems)


def measure(ctx: Any, test: str, size: int, transport: str, factory: Callable[..., Any],
            settings: Settings, tag: str) -> Run:
    """One run of one row."""
    before = CpuTimes.now()
    run = measure_once(ctx, test, size, transport, factory, settings, tag)
    run.others_cpu, run.steal = CpuTimes.now().since(before)
    return run


def measure_once(ctx: Any, test: str, size: int, transport: str, factory: Callable[..., Any],
                 settings: Settings, tag: str) -> Run:
    """One run of one row, without the disturbance."""
    specs = make_specs(ctx, factory, settings, test, size, tag)
    try:
        if test == LATENCY:
            roles = ("initiator", "echo")
            params = RunParams(size, settings.latency_seconds)
        else:
            roles = ("producer", "consumer")
            params = RunParams(size, settings.throughput_seconds)
        reports = run_children(ctx, roles, specs, params, settings)
    finally:
        for spec in specs:
            spec.cleanup()
    problem = failure(reports)
    if problem:
        return Run(test, size, transport, ok=False, problem=problem)
    if test == LATENCY:
        r = reports["initiator"]
        return Run(test, size, transport, ok=True, messages=r["sent"],
                   p50_ns=r["p50_ns"], p99_ns=r["p99_ns"])
    sent, start = reports["producer"]["sent"], reports["producer"]["start"]
    elapsed = max(reports["consumer"]["end"] - start, 1e-9)
    return Run(test, size, transport, ok=True, messages=sent, msgs_per_s=sent / elapsed)


def run_rust(cli: str, only: str, settings: Settings) -> List[Dict[str, Any]]:
    """The JSON rows of ``shmbus bench --only ONLY`` (the same pinning, quick if we are)."""
    cmd = [cli, "--namespace", "rs" + secrets.token_hex(3), "bench", "--json",
           "--only", only, "--pin", settings.pin]
    if settings.quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=RUST_TIMEOUT)
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({out.returncode}): {out.stderr.strip()}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def rust_floor(cli: Optional[str], settings: Settings) -> Optional[int]:
    """The cross-core ping-pong floor (two atomics, one-way p50 ns) now: near or far cores."""
    if cli is None:
        return None
    rows = run_rust(cli, RUST_FLOOR, dataclasses.replace(settings, quick=True))
    return rows[0]["p50_ns"] if rows else None


def progress(line: str) -> None:
    """A progress line on stderr."""
    print(line, file=sys.stderr, flush=True)


def describe(run: Run) -> str:
    """A short summary of a run for the progress lines."""
    if not run.ok:
        return "FAILED: " + run.problem
    noise = f"others {run.others_cpu:.2f} CPU, steal {run.steal:.0%}"
    if run.test == LATENCY:
        p50, p99 = fmt(micros(run.p50_ns), ".2f"), fmt(micros(run.p99_ns), ".2f")
        return f"p50 {p50} µs, p99 {p99} µs ({run.messages} rounds; {noise})"
    return f"{fmt(run.msgs_per_s, ',.0f')} msgs/s ({run.messages} messages; {noise})"


def rust_group(rust_cli: str, test: str, size: int, settings: Settings) -> List[Dict[str, Any]]:
    """The ``shmbus bench`` rows that the Python rows of (test, size) compare with."""
    rows: List[Dict[str, Any]] = []
    for only in RUST_FILTERS[test]:
        rows.extend(r for r in run_rust(rust_cli, only, settings) if r["size"] == size)
    return rows


def run_all(settings: Settings, rust_cli: Optional[str]) -> Tuple[List[Run], List[Dict[str, Any]]]:
    """Every row ``settings.repeat`` times, interleaved (repetition by repetition), each
    group of rows just after the Rust rows it compares with (conditions drift)."""
    ctx = multiprocessing.get_context("spawn")
    runs: List[Run] = []
    rust: List[Dict[str, Any]] = []
    total = settings.repeat * sum(len(transports_for(test)) for test, _ in TESTS)
    for rep in range(settings.repeat):
        for t, (test, size) in enumerate(TESTS):
            if rust_cli:
                group = rust_group(rust_cli, test, size, settings)
                rust.extend(group)
                progress(f"[rep {rep + 1}] Rust: " + ", ".join(
                    f"{r['name']} {r['p50_ns'] or round(r['msgs_per_s'])}" for r in group))
            for k, (transport, factory, _) in enumerate(transports_for(test)):
                tag = f"r{rep}t{t}k{k}"
                run = measure(ctx, test, size, transport, factory, settings, tag)
                runs.append(run)
                progress(f"[{len(runs)}/{total}] {test} {size_label(size)} {transport}: "
                         f"{describe(run)}")
    return runs, rust


# ---------------------------------------------------------------------------------------------
# The report


@dataclasses.dataclass
class Row:
    """The best run of one (test, size, transport), or of one Rust row."""

    test: str
    size: int
    transport: str
    ok: bool
    problem: str
    messages: int
    p50_ns: Optional[float]
    p99_ns: Optional[float]
    msgs_per_s: Optional[float]
    samples: List[float]
    vs_queue: Optional[float] = None
    vs_rust: Optional[float] = None


def merit(run: Run) -> float:
    """The higher, the better: msgs/s, or minus the p50 latency."""
    if run.test == LATENCY:
        return -(run.p50_ns or float("inf"))
    return run.msgs_per_s or 0.0


def best(runs: List[Run]) -> Row:
    """The best of the runs of one row (lowest p50, or highest rate); a row fails when any
    run of it failed."""
    first = runs[0]
    good = [r for r in runs if r.ok]
    failed = [r for r in runs if not r.ok]
    problem = "; ".join(r.problem for r in failed)
    if not good:
        return Row(first.test, first.size, first.transport, False, problem, 0,
                   None, None, None, [])
    top = max(good, key=merit)
    samples = [(r.p50_ns if r.test == LATENCY else r.msgs_per_s) or 0.0 for r in good]
    return Row(top.test, top.size, top.transport, not failed, problem, top.messages,
               top.p50_ns, top.p99_ns, top.msgs_per_s, samples)


def best_rust(rust: List[Dict[str, Any]], name: str, test: str, size: int) -> Optional[Row]:
    """The best run of one ``shmbus bench`` row, if it was run."""
    runs = [r for r in rust if r["name"] == name and r["size"] == size]
    if not runs:
        return None
    label = f"Rust API: {name}"
    if test == LATENCY:
        top = min(runs, key=lambda r: r["p50_ns"])
        return Row(test, size, label, True, "", 0, top["p50_ns"], top["p99_ns"], None,
                   [r["p50_ns"] for r in runs])
    top = max(runs, key=lambda r: r["msgs_per_s"])
    return Row(test, size, label, True, "", 0, None, None, top["msgs_per_s"],
               [r["msgs_per_s"] for r in runs])


def speedup(row: Row, reference: Optional[Row]) -> Optional[float]:
    """How many times faster ``row`` is than ``reference`` (rate ratio, or inverse p50
    ratio); ``None`` when either is missing."""
    if reference is None or not row.ok or not reference.ok:
        return None
    if row.test == LATENCY:
        if row.p50_ns and reference.p50_ns:
            return reference.p50_ns / row.p50_ns
        return None
    if row.msgs_per_s and reference.msgs_per_s:
        return row.msgs_per_s / reference.msgs_per_s
    return None


def build_rows(runs: List[Run], rust: List[Dict[str, Any]]) -> List[Row]:
    """The table's rows: per test, the transports (best runs) then the Rust references."""
    rows: List[Row] = []
    for test, size in TESTS:
        group = [best([r for r in runs if (r.test, r.size, r.transport) == (test, size, t.label)])
                 for t in transports_for(test)]
        queue_row = next(r for r in group if r.transport == MP_QUEUE)
        references: Dict[str, Row] = {}
        for row in group:
            row.vs_queue = speedup(row, queue_row)
            name = RUST_ROWS.get((test, row.transport))
            if name is None:
                continue
            ref = best_rust(rust, name, test, size)
            row.vs_rust = speedup(row, ref)
            if ref is not None:
                references[name] = ref
        rows.extend(group)
        rows.extend(references.values())
    return rows


def size_label(size: int) -> str:
    """64 B, 1 MiB."""
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size} B"


def micros(ns: Optional[float]) -> Optional[float]:
    """Nanoseconds as microseconds."""
    return None if ns is None else ns / 1e3


def fmt(value: Optional[float], spec: str) -> str:
    """A number for the table, ``-`` when absent."""
    return "-" if value is None else format(value, spec).replace(",", " ")


def table(rows: List[Row]) -> str:
    """The Markdown table."""
    lines = [
        "| test | size | transport | p50 µs | p99 µs | msgs/s | MB/s | × mp.Queue | × Rust API "
        "| check |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        mbps = r.msgs_per_s * r.size / 1e6 if r.msgs_per_s else None
        p50, p99 = micros(r.p50_ns), micros(r.p99_ns)
        if r.transport.startswith("Rust API"):
            check = "reference"
        else:
            check = f"ok ({r.messages:,})".replace(",", " ") if r.ok else "**FAILED**"
        lines.append(
            f"| {r.test} | {size_label(r.size)} | {r.transport} | {fmt(p50, '.2f')} | "
            f"{fmt(p99, '.2f')} | {fmt(r.msgs_per_s, ',.0f')} | {fmt(mbps, ',.1f')} | "
            f"{fmt(r.vs_queue, '.2f')} | {fmt(r.vs_rust, '.2f')} | {check} |"
        )
    return "\n".join(lines)


def legend(settings: Settings) -> str:
    """What the table's columns mean."""
    stat = f"best of {settings.repeat}" if settings.repeat > 1 else "one run"
    return (
        f"Each row: {stat} (lowest p50 / highest msgs/s), two processes. Latency = one-way "
        "(round trip / 2), 64 B ping-pong over two channels, blocking receives, first 10 % "
        "of rounds dropped. Throughput: one producer, one consumer, the producer's first send "
        "to the consumer's receipt of the end of the stream; MB = 10^6 bytes. The consumer "
        "reads each message's 8-byte number, last byte and length and checks them; `check` "
        "counts the messages (or rounds) verified. × columns: times faster than the "
        "reference (msgs/s ratio, or inverse p50 ratio); × Rust API compares with the "
        "`shmbus bench` row listed under the group (same run, same pinning), whose "
        "throughput receivers busy-poll; the Python receivers block (the binding's wait: "
        "spin 20 µs, then a futex), except the polling consumer's row. The zero-copy "
        "producer writes every byte in place (memset from 4 KiB on, as the Rust row's fill)."
    )


def verdict(ratio: Optional[float], goal: float, missing: str) -> str:
    """``2.5× (met)``, ``0.5× (NOT met)``, or why it was not measured."""
    if ratio is None:
        return missing
    return f"{ratio:.2f}× ({'met' if ratio >= goal else 'NOT met'})"


def goals(rows: List[Row]) -> List[str]:
    """The issue's two goals, read off the table."""
    def find(test: str, size: int, transport: str) -> Row:
        return next(r for r in rows if (r.test, r.size, r.transport) == (test, size, transport))

    lines = []
    for name in (SHMBUS_COPY, SHMBUS_ZERO_COPY):
        x = find(THROUGHPUT, SMALL, name).vs_queue
        lines.append(f"- 64 B throughput ≥ 10× multiprocessing.Queue, {name}: "
                     + verdict(x, 10, "not measured (a run failed)"))
    for name in (SHMBUS_ZERO_COPY, SHMBUS_ZERO_COPY_POLL):
        x = find(THROUGHPUT, LARGE, name).vs_rust
        lines.append(f"- 1 MiB zero-copy throughput ≥ 0.8× the Rust API's, {name}: "
                     + verdict(x, 0.8, "not measured (needs --rust-cli)"))
    return lines


def cpu_model() -> str:
    """The CPU's model name."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def conditions(settings: Settings, floors: Tuple[Optional[int], Optional[int]],
               load: Tuple[Tuple[float, ...], Tuple[float, ...]], seconds: float,
               runs: List[Run]) -> Dict[str, Any]:
    """What the run ran on and how."""
    others = [r.others_cpu for r in runs] or [0.0]
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cpus_online": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "shmbus": shmbus.__version__,
        "start_method": "spawn",
        "pin": settings.pin,
        "cpus": list(settings.cpus),
        "namespace": settings.namespace,
        "repeat": settings.repeat,
        "latency_seconds": settings.latency_seconds,
        "throughput_seconds": settings.throughput_seconds,
        "cross_core_floor_ns_before_after": list(floors),
        "loadavg_before_after": [[round(x, 2) for x in load[0]], [round(x, 2) for x in load[1]]],
        "other_processes_cpu_mean_max": [round(sum(others) / len(others), 3),
                                         round(max(others), 3)],
        "steal_mean": round(sum(r.steal for r in runs) / max(len(runs), 1), 4),
        "wall_seconds": round(seconds, 1),
    }


def conditions_text(c: Dict[str, Any]) -> str:
    """The conditions as Markdown bullet points."""
    floors = c["cross_core_floor_ns_before_after"]
    floor = ("not measured (needs --rust-cli)" if floors[0] is None else
             f"{floors[0]} ns before, {floors[1]} ns after (one-way p50 of `shmbus bench`'s "
             "\"floor: two atomics\": about 50-65 ns when the vCPUs are near, 170-260 ns far)")
    pin = ("none" if c["pin"] == "none" else
           f"{c['pin']}: initiator/producer on CPU {c['cpus'][0]}, "
           f"echo/consumer on CPU {c['cpus'][1]}")
    return "\n".join([
        f"- {c['date']}, {c['cpu']}, {c['cpus_online']} CPUs online, Linux {c['kernel']}, "
        f"Python {c['python']}, shmbus {c['shmbus']}, multiprocessing start method "
        f"{c['start_method']}",
        f"- pinning {pin}",
        f"- {c['repeat']} repetition(s), {c['latency_seconds']} s per latency run, "
        f"{c['throughput_seconds']} s per throughput run; wall time {c['wall_seconds']} s",
        f"- cross-core floor: {floor}",
        f"- other processes during the runs: {c['other_processes_cpu_mean_max'][0]:.2f} CPU on "
        f"average, {c['other_processes_cpu_mean_max'][1]:.2f} at most; hypervisor steal "
        f"{c['steal_mean']:.1%}; load average before {c['loadavg_before_after'][0]}, after "
        f"{c['loadavg_before_after'][1]}",
        f"- namespace {c['namespace']}",
    ])


def pick_cpus(pin: str) -> Tuple[Optional[int], Optional[int]]:
    """The CPUs of the two processes of a row."""
    allowed = sorted(os.sched_getaffinity(0))
    if pin == "none":
        return None, None
    if pin == "same" or len(allowed) < 2:
        return allowed[0], allowed[0]
    return allowed[0], allowed[1]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a smoke run (< 60 s): short runs, one repetition unless --repeat")
    p.add_argument("--repeat", type=int, default=None,
                   help="runs of each row, best reported (default 3, or 1 with --quick)")
    p.add_argument("--rust-cli", metavar="PATH",
                   help="the shmbus CLI: also run the matching `shmbus bench` rows")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (conditions, rows, goals) instead of Markdown")
    p.add_argument("--pin", choices=("split", "same", "none"), default="split",
                   help="split: one CPU per process (default); same: both on one; none")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds per run (default 2, or 0.25 with --quick)")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    """The run's settings; sets a fresh $SHMBUS_NAMESPACE (the children inherit it)."""
    namespace = f"pybench-{os.getpid()}-{secrets.token_hex(2)}"
    os.environ["SHMBUS_NAMESPACE"] = namespace
    seconds = args.seconds if args.seconds is not None else (0.25 if args.quick else 2.0)
    return Settings(namespace=namespace, cpus=pick_cpus(args.pin), pin=args.pin,
                    repeat=args.repeat, latency_seconds=seconds, throughput_seconds=seconds,
                    quick=args.quick)


def print_report(command: str, cond: Dict[str, Any], rows: List[Row], settings: Settings,
                 as_json: bool) -> None:
    """The Markdown report (or the JSON object) on stdout."""
    if as_json:
        print(json.dumps({
            "command": command,
            "conditions": cond,
            "rows": [dataclasses.asdict(r) for r in rows],
            "goals": goals(rows),
            "ok": all(r.ok for r in rows),
        }, indent=2))
        return
    print(f"`{command}`\n")
    print(conditions_text(cond) + "\n")
    print(table(rows) + "\n")
    print(legend(settings) + "\n")
    print("\n".join(goals(rows)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the benchmark; 1 when a transport lost or garbled a message (or a run failed),
    2 when ``shmbus bench`` failed."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    settings = settings_from(args)
    command = shlex.join(["python", sys.argv[0], *argv])
    started = time.monotonic()
    load_before = os.getloadavg()
    status = 0
    try:
        floor_before = rust_floor(args.rust_cli, settings)
        runs, rust = run_all(settings, args.rust_cli)
        floor_after = rust_floor(args.rust_cli, settings)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        progress(f"the Rust reference (shmbus bench) failed: {e}")
        return 2
    finally:
        shmbus.gc(namespace=settings.namespace)
    rows = build_rows(runs, rust)
    cond = conditions(settings, (floor_before, floor_after), (load_before, os.getloadavg()),
                      time.monotonic() - started, runs)
    print_report(command, cond, rows, settings, args.json)
    for row in rows:
        if not row.ok:
            status = 1
            progress(f"FAILED: {row.test} {size_label(row.size)} {row.transport}: {row.problem}")
    return status


if __name__ == "__main__":
    sys.exit(main())
