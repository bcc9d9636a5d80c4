"""Small helpers shared by the test modules (plain functions; fixtures are in conftest.py)."""

import os
import signal
import struct
import subprocess
import sys
import time
from typing import Callable

# Syscalls a thread blocked in shmbus sleeps in: futex (waits), futex_waitv (449: a wait on
# several words at once, as a subscriber on its ring and its close watch, or a WaitSet),
# clock_nanosleep/nanosleep (the polls of wait_subscribers and of opens waiting for an
# object), epoll (an asyncio loop).
SLEEP_SYSCALLS = {
    "x86_64": {202, 449, 230, 35, 232, 281, 441},
    "aarch64": {98, 449, 115, 101, 22, 441},
}.get(os.uname().machine, set())


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Waits for a condition nobody signals (e.g. a handler thread ending), looking every
    millisecond; fails the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + (what or repr(condition)))
        time.sleep(0.001)


def run_python(code: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """Runs ``code`` in a Python child (``$SHMBUS_NAMESPACE`` inherited) to completion."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, **kw
    )


def shm_path(name: str, namespace: str) -> str:
    """The file of object ``name`` in ``namespace`` (LAYOUT.md section 2.1)."""
    return "/dev/shm/shmbus@%s.%s" % (namespace, name)


def read_u32(path: str, offset: int) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return struct.unpack("<I", os.pread(fd, 4, offset))[0]
    finally:
        os.close(fd)


def write_u32(path: str, offset: int, value: int) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        assert os.pwrite(fd, struct.pack("<I", value), offset) == 4
    finally:
        os.close(fd)


# LAYOUT.md: header fields, and the blackboard's control words.
HEADER_LAYOUT_VERSION = 8
HEADER_KIND = 12
BOARD_WRITER = 256  # 128 + 128: the write lock, on the line readers do not poll
BOARD_WAITERS = 260


def keyed_control(key: int, keys: int) -> int:
    """Offset of the control block of key number ``key`` in a keyed blackboard of ``keys``
    keys (LAYOUT.md 6.1): after the header and the key table. Its ``writer`` word is at +128,
    its ``waiters`` word at +132, as a plain board's (``BOARD_WRITER``, ``BOARD_WAITERS``)."""
    table = (64 * keys + 127) // 128 * 128
    return 128 + table + 256 * key


KEY_TABLE = 128  # entry k at 128 + 64 k: `len` (u32), then the key's bytes


def _sleeping(proc_dir: str) -> bool:
    """Whether the thread at ``proc_dir`` (/proc/PID or /proc/self/task/TID) sleeps in a
    blocking syscall."""
    try:
        with open(proc_dir + "/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(proc_dir + "/syscall") as f:
            nr = f.read().split()[0]
    except FileNotFoundError:
        return False
    return state == "S" and nr.isdigit() and int(nr) in SLEEP_SYSCALLS


def wait_blocked(pid: int, timeout: float = 10.0) -> None:
    """Waits until the main thread of process ``pid`` sleeps in a blocking syscall: how we
    know that a child entered its blocking call (nothing else signals it)."""
    wait_until(lambda: _sleeping("/proc/%d" % pid), timeout, "process %d to block" % pid)


def interrupt_when_blocked(
    code: str, timeout: float
) -> "tuple[subprocess.Popen[str], str, str, float]":
    """Runs ``code`` in a Python child, waits for its "ready" line and for it to block, sends
    it SIGINT and collects its output: ``(child, stdout, stderr, when the signal was
    sent)``."""
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        wait_blocked(child.pid)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return child, out, err, sent


def thread_blocked(tid: int) -> bool:
    """Whether thread ``tid`` (a native id) of this process sleeps in a blocking syscall."""
    return _sleeping("/proc/self/task/%d" % tid)
