"""Run the bot as a real subprocess (`python -m bot run`) against a FakeBotApi.

Why a subprocess: end-to-end tests should exercise the real entry point, signal handling and
restarts (state must survive in the database, unconfirmed updates must be re-delivered).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from tests.e2e.fake_bot_api import FakeBotApi

REPO_ROOT = Path(__file__).resolve().parents[2]


class BotProcess:
    """One bot subprocess; `env` (token, base URL, DATABASE_URL, DATA_DIR...) comes from
    the caller and is merged onto a minimal clean environment so the developer's shell
    settings don't leak in. Note: the bot still reads a `.env` file in REPO_ROOT, but real
    environment variables take precedence over it."""

    def __init__(
        self,
        env: Mapping[str, str],
        log_dir: Path | str | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        self.env = dict(env)
        self.argv = list(argv) if argv else [sys.executable, "-m", "bot", "run"]
        self.log_path = Path(log_dir or tempfile.mkdtemp(prefix="bot-e2e-")) / "bot.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._log: IO[bytes] | None = None
        self._starts = 0

    def _clean_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONIOENCODING": "utf-8",
        }
        env.update(self.env)
        return env

    def start(self) -> BotProcess:
        assert not self.running, "bot process already running"
        self._starts += 1
        self._log = self.log_path.open("ab")
        self._log.write(f"===== start #{self._starts}: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env=self._clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def restart(self, timeout: float = 10) -> BotProcess:
        self.stop(timeout)
        return self.start()

    def wait_until_polling(self, api: FakeBotApi, timeout: float = 30) -> None:
        """Wait for a getUpdates call made since the last start(); fail fast if the bot dies."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                api.wait_for_call("getUpdates", timeout=0.2, since=self.started_at)
                return
            except AssertionError:
                pass
            if not self.running:
                code = self.proc.returncode if self.proc else None
                raise AssertionError(f"bot exited with {code} before polling:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"bot not polling after {timeout}s:\n{self.log_text()}")

    def log_text(self, tail: int = 20000) -> str:
        """Combined stdout/stderr of every start so far (the last `tail` characters)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]
        except FileNotFoundError:
            return "<no log>"

    def __enter__(self) -> BotProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
