"""Shared fixtures of the shmbus test suite.

Every test runs in its own shmbus namespace (``$SHMBUS_NAMESPACE``, inherited by the child
processes it starts), and whatever it leaves there is removed afterwards. Child processes
started through the ``procs`` fixture are killed if a test leaves them running.
"""

import itertools
import os
import pathlib
import signal
import subprocess
import sys

import pytest

import shmbus

REPO = pathlib.Path(__file__).resolve().parents[3]

_counter = itertools.count(1)


def _new_namespace() -> str:
    ns = "pytest-%d-%d" % (os.getpid(), next(_counter))
    assert len(ns) <= 32
    return ns


def _clean(namespace: str) -> None:
    try:
        objects = shmbus.list(namespace)
    except shmbus.Error:
        return
    for info in objects:
        try:
            shmbus.remove(info.name, namespace=namespace)
        except shmbus.NotFound:
            pass


@pytest.fixture(autouse=True)
def namespace(monkeypatch):
    """This test's namespace, set as ``$SHMBUS_NAMESPACE``; emptied after the test."""
    ns = _new_namespace()
    monkeypatch.setenv("SHMBUS_NAMESPACE", ns)
    yield ns
    _clean(ns)


@pytest.fixture
def make_namespace():
    """Makes more unique namespaces, each emptied after the test."""
    made = []

    def make() -> str:
        ns = _new_namespace()
        made.append(ns)
        return ns

    yield make
    for ns in made:
        _clean(ns)


@pytest.fixture(scope="session")
def cli() -> str:
    """The path of the ``shmbus`` command: ``$SHMBUS_CLI``, else ``target/debug/shmbus``
    of the repository (built once if missing)."""
    path = os.environ.get("SHMBUS_CLI")
    if path:
        assert os.access(path, os.X_OK), "SHMBUS_CLI=%s is not an executable" % path
        return path
    path = REPO / "target" / "debug" / "shmbus"
    if not path.exists():
        build = subprocess.run(
            ["cargo", "build", "-q", "-p", "shmbus-cli"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if build.returncode != 0:
            pytest.fail("building the shmbus CLI failed:\n" + build.stderr)
    assert path.exists()
    return str(path)


class Procs:
    """Starts child processes and makes sure none outlives the test."""

    def __init__(self):
        self.started = []

    def popen(self, args, **kw) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.PIPE)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        p = subprocess.Popen(args, **kw)
        self.started.append(p)
        return p

    def python(self, code: str, **kw) -> subprocess.Popen:
        """A Python child running ``code`` (with ``$SHMBUS_NAMESPACE`` inherited)."""
        return self.popen([sys.executable, "-c", code], **kw)

    def cleanup(self):
        for p in self.started:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            try:
                p.communicate(timeout=10)
            except Exception:
                pass


@pytest.fixture
def procs():
    p = Procs()
    yield p
    p.cleanup()
