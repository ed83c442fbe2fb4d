"""Log set-up: libraries that quote payload content stay quiet even at DEBUG."""

from __future__ import annotations

import io
import logging

from hub import logging as hub_logging
from hub.core.receipt import Attestation


def test_signxml_debug_output_never_reaches_the_log(signer, now) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        hub_logging.configure("DEBUG", "json", stream)
        root.setLevel(logging.DEBUG)  # even with the root logger at DEBUG
        root.addHandler(logging.StreamHandler(stream))
        marker = "Zyprian-Quastenhoff-marker"
        signer.sign(Attestation("sub-" + "0" * 32, "0" * 64, marker, "1", "libxml2", now, "hub"))
        assert marker not in stream.getvalue()
        for name in hub_logging.QUIET_LIBRARIES:
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
