"""Ctrl-C at the ``spectra chat`` prompt: a real subprocess gets a real SIGINT."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

pytestmark = pytest.mark.needs_plugins

#: The bound on waiting for the child: the test fails if it is reached, it never passes
#: because of time.
PATIENCE = 60.0


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"


def blocked(pid: int) -> bool:
    """The child's main thread sleeps in the kernel (after the prompt: in its read)."""
    stat = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "S"


@attrs.define
class Chat:
    proc: subprocess.Popen[bytes]
    output: int  # our end of the child's stdout and stderr
    seen: bytes = b""

    def read(self, timeout: float = 0.01) -> bool:
        """Read what the child wrote; False once it closed its end."""
        ready, _, _ = select.select([self.output], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.output, 4096)
        except OSError:  # a pty whose other side closed
            return False
        self.seen += data
        return bool(data)


@pytest.fixture(params=["pipe", "pty", "pipe, after a turn"])
def chat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chat]:
    """``spectra chat`` blocked at its prompt, its streams on pipes or on a terminal (where
    Python's ``input`` writes the prompt to stderr)."""
    env = {**os.environ, "SPECTRA_HOME": str(tmp_path), "SPECTRA_DISABLE_PLUGINS": ""}
    env.pop("SPECTRA_CONFIG", None)
    after_a_turn = request.param.endswith("after a turn")
    if request.param == "pty":
        ours, theirs = pty.openpty()
        stdin = theirs
        keep = -1
    else:
        stdin, keep = os.pipe()  # we hold the write end open: no end of input
        ours, theirs = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "spectra_core", "chat", "--user", "ann"],
        stdin=stdin,
        stdout=theirs,
        stderr=theirs,
        env=env,
        cwd=tmp_path,
    )
    os.close(theirs)
    if stdin != theirs:
        os.close(stdin)
    session = Chat(proc, ours)
    try:
        wait_until(lambda: session.read() and session.seen.endswith(b"> "), "the prompt")
        if after_a_turn:  # the loop, the store's connection and threads now exist
            os.write(keep, b"hello\n")
            wait_until(
                lambda: session.read() and session.seen.endswith(b"echo: hello\n> "),
                "the answer and the next prompt",
            )
        # (each look waits up to 10ms on the child's output, rather than spinning)
        wait_until(lambda: session.read() and blocked(proc.pid), "the read at the prompt")
        yield session
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(ours)
        if keep >= 0:
            os.close(keep)


def test_ctrl_c_at_the_prompt_exits_at_once_with_130(chat: Chat) -> None:
    chat.proc.send_signal(signal.SIGINT)
    try:
        status = chat.proc.wait(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        pytest.fail("spectra chat did not exit on Ctrl-C at its prompt")
    while chat.read():
        pass
    output = chat.seen.decode()
    assert status == 130, output
    assert "Traceback" not in output and "Error" not in output, output
