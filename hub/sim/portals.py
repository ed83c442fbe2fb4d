"""Both portal-side simulators in one background event loop, for the demo.

Runs the XTA server simulator (HTTPS, client certificates from a development
PKI) and the FIT-Connect Submission API simulator (HTTP on loopback) in a
thread, so synchronous code (the demo) can fill mailboxes, submit
applications and read back the receipts the hub sent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from joserfc.jwk import RSAKey

from hub.sim import fitconnect, pki
from hub.sim.xta import XtaSimulator

T = TypeVar("T")


class PortalSimulators:
    """Start with :meth:`start`, stop with :meth:`stop`; every method is thread-safe."""

    def __init__(
        self,
        directory: Path,
        *,
        destination_id: str,
        token: str,
        callback_secret: bytes,
        receiver_signing_key: RSAKey,
        callback_url: str,
    ) -> None:
        self.pki = pki.create(directory)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="portal-sims", daemon=True
        )
        self.xta = XtaSimulator(self.pki.server_context())
        self.fitconnect = fitconnect.SubmissionApiSimulator(
            destination_id,
            token=token,
            callback_secret=callback_secret,
            receiver_signing_key=receiver_signing_key,
            callback_url=callback_url,
        )

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self._run(self.xta.start())
        self._run(self.fitconnect.start())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self.xta.stop())
        self._run(self.fitconnect.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def add_xta_message(
        self, payload: bytes, *, author: str, reader: str, mtom: bool = False
    ) -> str:
        """Put a message into ``reader``'s mailbox (served as MTOM/XOP with ``mtom``); its id."""

        async def add() -> str:
            return self.xta.add_message(payload, author=author, reader=reader, mtom=mtom)

        return self._run(add())

    def submit_fitconnect(
        self,
        data: bytes,
        attachments: Sequence[tuple[str, str, bytes]],
        encryption_public: RSAKey,
        *,
        schema_uri: str,
        service_identifier: str,
        notify: bool = True,
    ) -> str:
        submission = self._run(
            self.fitconnect.submit(
                data,
                attachments,
                encryption_public,
                schema_uri=schema_uri,
                service_identifier=service_identifier,
                notify=notify,
            )
        )
        return submission.submission_id

    def xta_settings(self, mailbox: str, poll_seconds: float = 0.5) -> dict[str, Any]:
        """The worker settings that point its XTA connector at this simulator (``with_overrides``)."""
        return {
            "xta_msgbox_url": self.xta.msgbox_url,
            "xta_send_url": self.xta.send_url,
            "xta_mailbox": mailbox,
            "xta_client_cert": self.pki.client_cert,
            "xta_client_key": self.pki.client_key,
            "xta_ca_file": self.pki.ca,
            "xta_poll_seconds": poll_seconds,
        }

    def hold_xta_sends(self, seconds: float, times: int = 1) -> None:
        """The XTA server takes ``seconds`` for each of the next ``times`` receipts sent to it."""

        async def hold() -> None:
            self.xta.hold_sends(seconds, times)

        self._run(hold())

    def xta_requests(self) -> list[str]:
        """Every SOAP operation that reached the XTA simulator, in order."""

        async def read() -> list[str]:
            return list(self.xta.requests)

        return self._run(read())

    def xta_state(self) -> tuple[list[str], list[bytes]]:
        """(closed message ids, receipts received via sendMessage)."""

        async def read() -> tuple[list[str], list[bytes]]:
            return list(self.xta.closed), list(self.xta.receipts)

        return self._run(read())

    def fitconnect_status(self) -> dict[str, str]:
        """FIT-Connect submission id -> submitted | accepted | rejected."""

        async def read() -> dict[str, str]:
            return dict(self.fitconnect.status)

        return self._run(read())
