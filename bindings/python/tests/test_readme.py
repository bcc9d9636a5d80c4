"""The README's "From Python" example, and the package README's examples, run as written."""

import os
import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"
PACKAGE_README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def readme_example(readme: pathlib.Path = README, heading: str = "## From Python") -> str:
    """The first ```python block after ``heading``."""
    text = readme.read_text()
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "%s's %s section has no python example" % (readme, heading)
    return match.group(1)


def run_example(code: str, namespace: str) -> None:
    env = dict(os.environ, SHMBUS_NAMESPACE="%s-%d" % (namespace, os.getpid()))
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok", out.stdout


def test_readme_python_example_runs() -> None:
    run_example(readme_example(), "readme")


def test_package_readme_keyed_example_runs() -> None:
    run_example(readme_example(PACKAGE_README, "## Keyed blackboards"), "readme-pkg")


def test_package_readme_waitset_example_runs() -> None:
    run_example(readme_example(PACKAGE_README, "## WaitSet"), "readme-ws")
