"""The README's commands and code stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_quick_start_block_is_the_example_file() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert (ROOT / "contrib/examples/quickstart.py").read_text() in blocks


@pytest.mark.needs_plugins
def test_quick_start_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "contrib/examples/quickstart.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.splitlines() == ["echo: What is Rust?", "echo: Explain React"]


def test_ci_runs_the_readme_test_command() -> None:
    marker = README.index("<!-- test-command -->")
    command = README[marker:].split("```bash\n", 1)[1].split("\n", 1)[0]
    assert command == "uvx nox"
    assert "test-command" in (ROOT / ".ci/run").read_text()


def test_readme_links_point_to_files() -> None:
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to missing {target}"
