"""Start and stop ``sozialhub run`` worker processes (demo, benchmark, tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from hub.broker import dies_with_parent
from hub.config import Settings, to_environment


def worker_environment(settings: Settings) -> dict[str, str]:
    """This process's environment plus the settings a parent chose for its worker."""
    env = {**os.environ, **to_environment(settings), "SOZIALHUB_LOG_FORMAT": "json"}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class WorkerProcess:
    def __init__(
        self,
        settings: Settings,
        *,
        log_file: Path | None = None,
        args: tuple[str, ...] = (),
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.log_file = log_file
        self.args = args
        # Secret settings travel only through the child's environment (to_environment leaves
        # them out): variable name -> value, e.g. the demo's throw-away FIT-Connect token.
        self._secrets = dict(secrets or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[Any] | None = None

    def start(self) -> WorkerProcess:
        args = list(self.args)
        if self.settings.signing_key_file is None:
            args.append("--ephemeral-signing-key")  # demo, benchmark and tests only
        if self.settings.pseudonym_keys_file is None:
            args.append("--development-pseudonym-key")  # demo, benchmark and tests only
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            dies_with_parent([sys.executable, "-m", "hub", "run", *args]),
            env={**worker_environment(self.settings), **self._secrets},
            stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
        )
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.pid

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Poll ``/readyz`` until the worker has its partitions; fail early if it died."""
        url = f"http://{self.settings.web_host}:{self.settings.web_port}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("worker exited before it became ready")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError("worker did not become ready")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash a power cut or OOM killer would cause."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, grace: float = 25.0) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return process.returncode
