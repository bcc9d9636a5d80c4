"""The README's "From Python" example runs as written."""

import os
import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"


def readme_example() -> str:
    """The first ```python block after the "From Python" heading."""
    text = README.read_text()
    section = text.split("## From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's From Python section has no python example"
    return match.group(1)


def test_readme_python_example_runs() -> None:
    env = dict(os.environ, SHMBUS_NAMESPACE="readme-%d" % os.getpid())
    out = subprocess.run(
        [sys.executable, "-c", readme_example()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
