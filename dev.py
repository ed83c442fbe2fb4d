#!/usr/bin/env python3
"""Set up a virtual environment from the hash-pinned locks and run a task. Standard library only.

    python3 dev.py demo   # install runtime dependencies, run `sozialhub demo`
    python3 dev.py test   # install dev dependencies, run ruff, mypy and the whole test suite

The environment lives in .venv (override with SOZIALHUB_VENV). A lock is
re-installed only when it changed. Extra arguments go to the task, e.g.
``python3 dev.py test -k crash`` (pytest) or ``python3 dev.py demo --json``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SOZIALHUB_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def run(*command: str | Path) -> None:
    print("+", " ".join(str(c) for c in command), flush=True)
    subprocess.run([str(c) for c in command], cwd=ROOT, check=True)


def ensure(lock: str) -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"sozialhub needs Python 3.11, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        run(sys.executable, "-m", "venv", VENV)
    lock_path = ROOT / "requirements" / lock
    digest = hashlib.sha256(
        lock_path.read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    ).hexdigest()[:16]
    stamp = VENV / f".installed-{lock}-{digest}"
    if stamp.exists():
        return
    pip = (BIN / "python", "-m", "pip", "--disable-pip-version-check", "install", "--quiet")
    run(*pip, "--require-hashes", "--no-deps", "-r", lock_path)
    run(*pip, "--no-deps", "--no-build-isolation", "--editable", ROOT)
    for old in VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()


def main(argv: list[str]) -> int:
    task, extra = (argv[0], argv[1:]) if argv else ("", [])
    if task == "demo":
        ensure("run.lock")
        run(BIN / "sozialhub", "demo", *extra)
    elif task == "test":
        ensure("dev.lock")
        run(BIN / "ruff", "check", ".")
        run(BIN / "ruff", "format", "--check", ".")
        run(BIN / "mypy")
        run(BIN / "python", "-m", "pytest", *extra)
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as failed:
        sys.exit(failed.returncode)
