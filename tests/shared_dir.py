"""Where the project's shared reference material is: code lists and official schemas.

``$SOZIALHUB_SHARED_DIR``, else ``../shared`` beside the clone, else ``/work/shared``;
the first that holds the file a test needs. Tests that need it skip with a reason
naming the variable when none does.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
XTA_WSDL = Path("schemas") / "xta-2.1.1" / "XTA.wsdl"
LEIKA = Path("data") / "leika.csv"


def shared_dir(marker: Path) -> Path | None:
    """The shared directory that holds ``marker`` (a path relative to it), or None."""
    for candidate in (
        os.environ.get("SOZIALHUB_SHARED_DIR"),
        REPO_ROOT.parent / "shared",
        "/work/shared",
    ):
        if candidate and (Path(candidate) / marker).is_file():
            return Path(candidate)
    return None
