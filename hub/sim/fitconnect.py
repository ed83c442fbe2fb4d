"""A FIT-Connect Submission API for one destination, for demos and tests only.

It plays two partners of the hub:

- the **sender** (an online service): :func:`seal_submission` encrypts metadata,
  data and attachments with the destination's public key (RSA-OAEP-256 /
  A256GCM) and lists their SHA-512 hashes in the metadata, as a real sender
  does;
- the **delivery service** (Zustelldienst): :class:`SubmissionApiSimulator`
  stores submissions, fires the HMAC-signed ``new-submissions`` callback,
  serves the receiver endpoints (list pending submissions, get a submission,
  get an attachment) and keeps each case's event log, accepting only SETs that
  verify with the receiver's public signing key.

Faults for tests: :meth:`SubmissionApiSimulator.oversize` serves a part larger
than a receiver's bound, announced by ``Content-Length`` or only streamed;
:attr:`SubmissionApiSimulator.event_faults` loses an answer, keeps a submission
pending after its answer, or loses the acknowledgement of an answer.

Not simulated: OAuth (a static bearer token stands in), replies, routing,
destination management, the 14-day automatic rejection.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from joserfc import jwe
from joserfc.jwk import RSAKey

from hub.core.errors import Rejection
from hub.core.transport import fitconnect as fc

METADATA_SCHEMA_URI = "https://schema.fitko.de/fit-connect/metadata/1.4.0/metadata.schema.json"
_MAX_EVENT_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_FILLER = b"A" * _CHUNK  # base64url text: what an inflated JWE segment consists of

# What :attr:`SubmissionApiSimulator.event_faults` can do to the next posted event.
LOSE_EVENT = "lose"  # answer 201, record nothing: the answer is lost
KEEP_PENDING = "pending"  # record the event, but the submission stays listed as submitted
LOSE_ACK = "lose-ack"  # record the event and its status, then answer 503


@dataclass(frozen=True)
class Oversize:
    """A part served larger than it is: ``size`` bytes of filler in place of its JWE.

    ``announce``: the response carries the ``Content-Length`` of ``size``;
    otherwise it is sent chunked, announcing nothing, so only the bytes streamed
    tell the receiver how large it is. ``sent`` (default: all) bytes of filler
    are actually sent before the connection is closed: fewer than announced is
    a server that lies about the size.
    """

    part: str  # "metadata", "data" or "attachments/<n>" (position in the resource's list)
    size: int
    announce: bool = True
    sent: int | None = None


@dataclass(frozen=True)
class DemoKeys:
    """Throw-away 4096-bit keys: the destination's decryption key and the receiver's SET key."""

    encryption: RSAKey = field(repr=False)
    signing: RSAKey = field(repr=False)

    @property
    def encryption_public(self) -> RSAKey:
        return public_key(self.encryption)

    @property
    def signing_public(self) -> RSAKey:
        return public_key(self.signing)


@functools.cache
def demo_keys() -> DemoKeys:
    """Generate the demo keys once per process (4096-bit RSA generation takes a second or two)."""
    return DemoKeys(
        encryption=RSAKey.generate_key(
            4096, parameters={"kid": "demo-enc-1", "alg": fc.KEY_ALGORITHM, "use": "enc"}
        ),
        signing=RSAKey.generate_key(
            4096, parameters={"kid": "demo-sig-1", "alg": fc.SET_ALGORITHM, "use": "sig"}
        ),
    )


def public_key(key: RSAKey | Mapping[str, Any]) -> RSAKey:
    """The public half of a key (a sender only ever has the public JWK)."""
    loaded = key if isinstance(key, RSAKey) else RSAKey.import_key(dict(key))
    return RSAKey.import_key(loaded.as_dict(private=False))


def encrypt_part(
    plaintext: bytes,
    key: RSAKey | Mapping[str, Any],
    *,
    alg: str = fc.KEY_ALGORITHM,
    enc: str = fc.CONTENT_ALGORITHM,
    extra_header: Mapping[str, Any] | None = None,
) -> str:
    """Encrypt one part as a JWE compact serialisation (other algorithms only to build bad inputs)."""
    recipient = public_key(key)
    header: dict[str, Any] = {"alg": alg, "enc": enc, **(extra_header or {})}
    if recipient.kid and "kid" not in header:
        header["kid"] = recipient.kid
    allowed = [alg, enc, *([header["zip"]] if "zip" in header else [])]
    return jwe.encrypt_compact(header, plaintext, recipient, algorithms=allowed)


@dataclass(frozen=True)
class Submission:
    """One submission as the delivery service holds it: everything but the ids is encrypted."""

    submission_id: str
    case_id: str
    destination_id: str
    service_type: Mapping[str, str]
    encrypted_metadata: str = field(repr=False)
    encrypted_data: str = field(repr=False)
    attachments: Mapping[str, str] = field(repr=False)  # attachment id -> JWE

    def resource(self) -> dict[str, Any]:
        """The ``GET /v1/submissions/{id}`` body."""
        return {
            "submissionId": self.submission_id,
            "caseId": self.case_id,
            "destinationId": self.destination_id,
            "serviceType": dict(self.service_type),
            "encryptedMetadata": self.encrypted_metadata,
            "encryptedData": self.encrypted_data,
            "attachments": list(self.attachments),
        }

    def bundle(self) -> bytes:
        """The bundle a receiver assembles from the resource and the attachments."""
        return fc.bundle(
            submission_id=self.submission_id,
            case_id=self.case_id,
            destination_id=self.destination_id,
            service_type=self.service_type,
            encrypted_metadata=self.encrypted_metadata,
            encrypted_data=self.encrypted_data,
            attachments=self.attachments,
        )

    def replace(self, **changes: Any) -> Submission:
        return dataclasses.replace(self, **changes)


def seal_submission(
    data: bytes,
    attachments: Sequence[tuple[str, str, bytes]],
    encryption_public_jwk: RSAKey | Mapping[str, Any],
    *,
    destination_id: str,
    schema_uri: str,
    service_identifier: str,
    service_name: str = "Demo service",
    data_mime_type: str = "application/xml",
    edit_metadata: Callable[[dict[str, Any]], None] | None = None,
) -> Submission:
    """Encrypt a submission as a sender would: metadata with SHA-512 hashes, data, attachments.

    ``attachments`` are ``(filename, media type, content)``. ``edit_metadata``
    may change the metadata document before it is encrypted (to build bad
    inputs); the hashes it sees are the correct ones.
    """
    sealed: dict[str, str] = {}
    listed: list[dict[str, Any]] = []
    for filename, mime_type, content in attachments:
        attachment_id = str(uuid.uuid4())
        sealed[attachment_id] = encrypt_part(content, encryption_public_jwk)
        listed.append(
            {
                "attachmentId": attachment_id,
                "hash": {"type": fc.HASH_TYPE, "content": hashlib.sha512(content).hexdigest()},
                "purpose": "attachment",
                "filename": filename,
                "mimeType": mime_type,
            }
        )
    metadata: dict[str, Any] = {
        "$schema": METADATA_SCHEMA_URI,
        "contentStructure": {
            "data": {
                "hash": {"type": fc.HASH_TYPE, "content": hashlib.sha512(data).hexdigest()},
                "submissionSchema": {"schemaUri": schema_uri, "mimeType": data_mime_type},
            },
            "attachments": listed,
        },
        "publicServiceType": {"name": service_name, "identifier": service_identifier},
    }
    if edit_metadata is not None:
        edit_metadata(metadata)
    return Submission(
        submission_id=str(uuid.uuid4()),
        case_id=str(uuid.uuid4()),
        destination_id=destination_id,
        service_type={"name": service_name, "identifier": service_identifier},
        encrypted_metadata=encrypt_part(json.dumps(metadata).encode(), encryption_public_jwk),
        encrypted_data=encrypt_part(data, encryption_public_jwk),
        attachments=sealed,
    )


class SubmissionApiSimulator:
    """The delivery service's Submission API for one destination, on an aiohttp server.

    Receiver endpoints (bearer token required): ``GET /v1/submissions``
    (``destinationId``, ``offset``, ``limit``; only submissions not yet
    accepted or rejected), ``GET /v1/submissions/{id}``,
    ``GET /v1/submissions/{id}/attachments/{attachmentId}``,
    ``POST /v1/cases/{caseId}/events`` (a SET, verified with the receiver's
    public signing key; 201, or 422 if it does not verify) and
    ``GET /v1/cases/{caseId}/events`` (``{"eventLog": [SET, ...]}``).
    ``requests`` records ``(method, path)`` of every request.
    """

    def __init__(
        self,
        destination_id: str,
        *,
        token: str,
        callback_secret: bytes,
        receiver_signing_key: RSAKey | Mapping[str, Any],
        callback_url: str | None = None,
    ) -> None:
        self.destination_id = destination_id
        self.callback_url = callback_url
        self._token = token
        self._callback_secret = callback_secret
        self._verify_key = public_key(receiver_signing_key)
        self.submissions: dict[str, Submission] = {}
        self.status: dict[str, str] = {}  # submission id -> submitted | accepted | rejected
        self.events: dict[str, list[str]] = {}  # case id -> SETs
        self.requests: list[tuple[str, str]] = []
        self.oversized: dict[str, Oversize] = {}  # submission id -> the part served too large
        self.event_faults: list[str] = []  # consumed one per posted event: LOSE_EVENT, ...
        self._runner: web.AppRunner | None = None
        self.url = ""

    def __repr__(self) -> str:
        return f"SubmissionApiSimulator(destination_id={self.destination_id!r}, url={self.url!r})"

    # ----------------------------------------------------------------- server

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/v1/submissions", self._list)
        app.router.add_get("/v1/submissions/{submission_id}", self._get)
        app.router.add_get(
            "/v1/submissions/{submission_id}/attachments/{attachment_id}", self._attachment
        )
        app.router.add_post("/v1/cases/{case_id}/events", self._post_event)
        app.router.add_get("/v1/cases/{case_id}/events", self._event_log)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.url = f"http://{bound_host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _authenticate(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Any],
    ) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self._token}":
            return web.Response(status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def _list(self, request: web.Request) -> web.Response:
        if request.query.get("destinationId", "").lower() != self.destination_id.lower():
            return web.json_response({"count": 0, "offset": 0, "totalCount": 0, "submissions": []})
        try:
            offset = max(0, int(request.query.get("offset", "0")))
            limit = min(500, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return web.Response(status=400)
        pending = [
            s for s in self.submissions.values() if self.status[s.submission_id] == "submitted"
        ]
        page = pending[offset : offset + limit]
        entries = [
            {
                "destinationId": s.destination_id,
                "submissionId": s.submission_id,
                "caseId": s.case_id,
            }
            for s in page
        ]
        return web.json_response(
            {
                "count": len(page),
                "offset": offset,
                "totalCount": len(pending),
                "submissions": entries,
            }
        )

    async def _get(self, request: web.Request) -> web.StreamResponse:
        submission = self.submissions.get(request.match_info["submission_id"])
        if submission is None:
            return web.Response(status=404)
        oversize = self.oversized.get(submission.submission_id)
        member = {"metadata": "encryptedMetadata", "data": "encryptedData"}.get(
            oversize.part if oversize else ""
        )
        if oversize is None or member is None:
            return web.json_response(submission.resource())
        # The resource with the part's value left open: head, filler, tail, in that order.
        marker = "--inflated-part--"
        text = json.dumps({**submission.resource(), member: marker})
        head, tail = text.split(json.dumps(marker), 1)
        return await self._stream(
            request,
            (head + '"').encode(),
            oversize,
            ('"' + tail).encode(),
            "application/json",
        )

    async def _attachment(self, request: web.Request) -> web.StreamResponse:
        submission = self.submissions.get(request.match_info["submission_id"])
        attachment_id = request.match_info["attachment_id"]
        token = None if submission is None else submission.attachments.get(attachment_id)
        if submission is None or token is None:
            return web.Response(status=404)
        oversize = self.oversized.get(submission.submission_id)
        position = f"attachments/{list(submission.attachments).index(attachment_id)}"
        if oversize is not None and oversize.part == position:
            return await self._stream(request, b"", oversize, b"", "application/jose")
        return web.Response(text=token, content_type="application/jose")

    @staticmethod
    async def _stream(
        request: web.Request, head: bytes, oversize: Oversize, tail: bytes, content_type: str
    ) -> web.StreamResponse:
        """``head``, ``oversize.size`` bytes of filler, ``tail``; until the receiver hangs up."""
        response = web.StreamResponse(headers={"Content-Type": content_type})
        if oversize.announce:
            response.content_length = len(head) + oversize.size + len(tail)
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        sent = oversize.size if oversize.sent is None else min(oversize.sent, oversize.size)
        try:
            await response.write(head)
            for start in range(0, sent, _CHUNK):
                await response.write(_FILLER[: min(_CHUNK, sent - start)])
            if sent < oversize.size:
                if request.transport is not None:
                    request.transport.close()  # less than announced: hang up mid-body
                return response
            await response.write(tail)
            await response.write_eof()
        except ConnectionError:
            pass  # the receiver stopped reading at its bound and closed the connection
        return response

    async def _post_event(self, request: web.Request) -> web.Response:
        case_id = request.match_info["case_id"]
        raw = await request.content.read(_MAX_EVENT_BYTES + 1)
        if len(raw) > _MAX_EVENT_BYTES:
            return web.Response(status=413)
        try:
            claims = fc.verify_set(raw.decode("ascii"), self._verify_key)
        except (Rejection, UnicodeDecodeError):
            return web.Response(status=422)
        submission_id = claims["sub"].removeprefix("submission:")
        submission = self.submissions.get(submission_id)
        if (
            claims["txn"] != f"case:{case_id}"
            or submission is None
            or submission.case_id != case_id
        ):
            return web.Response(status=422)
        if claims["iss"] != self.destination_id:
            return web.Response(status=422)
        (event,) = claims["events"]
        fault = self.event_faults.pop(0) if self.event_faults else None
        if fault == LOSE_EVENT:
            return web.Response(status=201)
        if fault != KEEP_PENDING:
            self.status[submission_id] = "accepted" if event == fc.EVENT_ACCEPT else "rejected"
        self.events.setdefault(case_id, []).append(raw.decode("ascii"))
        return web.Response(status=503 if fault == LOSE_ACK else 201)

    async def _event_log(self, request: web.Request) -> web.Response:
        return web.json_response({"eventLog": self.events.get(request.match_info["case_id"], [])})

    # ----------------------------------------------------------------- sender side

    async def submit(
        self,
        data: bytes,
        attachments: Sequence[tuple[str, str, bytes]],
        encryption_public_jwk: RSAKey | Mapping[str, Any],
        *,
        schema_uri: str,
        service_identifier: str,
        notify: bool = True,
    ) -> Submission:
        """Encrypt, store and (unless ``notify`` is false) announce a submission by callback."""
        submission = seal_submission(
            data,
            attachments,
            encryption_public_jwk,
            destination_id=self.destination_id,
            schema_uri=schema_uri,
            service_identifier=service_identifier,
        )
        await self.deliver(submission, notify=notify)
        return submission

    async def deliver(self, submission: Submission, *, notify: bool = True) -> None:
        """Store a sealed (possibly deliberately broken) submission and announce it."""
        self.submissions[submission.submission_id] = submission
        self.status[submission.submission_id] = "submitted"
        if notify:
            await self.notify([submission])

    def oversize(
        self,
        submission_id: str,
        part: str,
        size: int,
        *,
        announce: bool = True,
        sent: int | None = None,
    ) -> None:
        """Serve ``part`` of a stored submission as ``size`` bytes (see :class:`Oversize`)."""
        if part not in ("metadata", "data") and not part.startswith("attachments/"):
            raise ValueError("part must be metadata, data or attachments/<n>")
        self.oversized[submission_id] = Oversize(part, size, announce, sent)

    def answers(self, case_id: str) -> list[dict[str, Any]]:
        """The verified claims of every SET in a case's event log, oldest first."""
        return [fc.verify_set(token, self._verify_key) for token in self.events.get(case_id, [])]

    async def notify(
        self, submissions: Sequence[Submission], *, secret: bytes | None = None
    ) -> int:
        """POST the ``new-submissions`` callback; returns the receiver's HTTP status."""
        body = json.dumps(
            {
                "type": fc.CALLBACK_NEW_SUBMISSIONS,
                "submissionIds": [s.submission_id for s in submissions],
                "submissions": [
                    {
                        "destinationId": s.destination_id,
                        "submissionId": s.submission_id,
                        "caseId": s.case_id,
                    }
                    for s in submissions
                ],
            }
        ).encode()
        return await self.callback(body, secret=secret)

    async def callback(self, body: bytes, *, secret: bytes | None = None) -> int:
        """POST ``body`` as an authenticated callback; returns the receiver's HTTP status."""
        if self.callback_url is None:
            raise RuntimeError("no callback URL configured")
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "callback-timestamp": timestamp,
            "callback-authentication": fc.callback_signature(
                body, timestamp, secret if secret is not None else self._callback_secret
            ),
        }
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self.callback_url, data=body, headers=headers) as response,
        ):
            return response.status
