"""The XTA poller against the XTA simulator over real HTTPS with client certificates.

Most tests need no Kafka: the handover is a test callback. ``TestThroughTheBroker``
hands over to the broker of the integration suite (``hub_settings``): MTOM
messages and a message too large to fetch, each closed only after Kafka
acknowledged its records. Certificates (a CA, a server certificate for
127.0.0.1, a client certificate) are made per module with ``cryptography``; the
simulator listens on a free port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self, TypeVar

import pytest
import xmlschema
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from xmlschema import XMLResource

from connectors.xta import (
    PollReport,
    XtaError,
    XtaFaultError,
    XtaPoller,
    XtaSendRefusedError,
    XtaSettings,
    client_ssl_context,
)
from hub import context, kafka
from hub.config import Settings
from hub.core import pipeline, xmlsafe, xta_oversize
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import Emit
from hub.core.records import AuditEvent, DeadLetter, PortalReceipt, Received, decode, unb64
from hub.core.transport import xta
from hub.core.xta_oversize import Oversize
from hub.dlq import read_topic
from hub.sim.xta import ERROR_PAGE_BYTES, SOZIALPLATTFORM, XtaSimulator, mtom_message
from hub.stream import receipts
from hub.supervise import WorkerProcess
from hub.testing import SubmissionSpec, make_submission
from tests.shared_dir import XTA_WSDL, shared_dir

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")

OFFICE = "wgb010540880000"
PDF = b"%PDF-1.4\n" + bytes(range(64))


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    usage: x509.ObjectIdentifier | None = None,
    ip: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name = name if issuer is None else issuer[0].subject
    signing_key = key if issuer is None else issuer[1]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        ).add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if ip is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False,
            )
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("xta-pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("sozialhub test XTA CA", ca_key, None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        "xta.test", server_key, (ca, ca_key), usage=ExtendedKeyUsageOID.SERVER_AUTH, ip="127.0.0.1"
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("hub", client_key, (ca, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    return Pki(
        ca=_write(directory / "ca.pem", ca.public_bytes(pem)),
        server_cert=_write(directory / "server.pem", server.public_bytes(pem)),
        server_key=_write(directory / "server.key", _key_pem(server_key)),
        client_cert=_write(directory / "client.pem", client.public_bytes(pem)),
        client_key=_write(directory / "client.key", _key_pem(client_key)),
    )


def server_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(cafile=pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def settings(sim: XtaSimulator, context: ssl.SSLContext, **changes) -> XtaSettings:
    values = {
        "msgbox_url": sim.msgbox_url,
        "send_url": sim.send_url,
        "mailbox": OFFICE,
        "ssl_context": context,
        "max_items": 10,
        "poll_interval": 0.05,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "timeout": 10.0,
    }
    return XtaSettings(**{**values, **changes})


def client_context(pki: Pki) -> ssl.SSLContext:
    return client_ssl_context(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)


def submissions(count: int) -> list[bytes]:
    return [
        make_submission(SubmissionSpec(message_uuid=f"00000000-0000-4000-8000-00000000000{i}"))
        for i in range(count)
    ]


Scenario = Callable[[XtaSimulator], Awaitable[None]]


def run(pki: Pki, scenario: Scenario, *, mtom: bool = False) -> None:
    async def main() -> None:
        async with XtaSimulator(server_context(pki), mtom=mtom) as sim:
            await scenario(sim)

    asyncio.run(main())


class Recorder:
    """A handover that records what it got and what the simulator had closed at that moment."""

    def __init__(self, sim: XtaSimulator, fail: set[str] | None = None) -> None:
        self.sim = sim
        self.fail = fail or set()
        self.calls: list[str] = []
        self.originals: dict[str, list[bytes]] = {}
        self.closed_during: list[bool] = []

    async def __call__(self, original: bytes, message_id: str) -> None:
        self.calls.append(message_id)
        self.originals.setdefault(message_id, []).append(original)
        closed_before = message_id in self.sim.closed
        await asyncio.sleep(0.01)  # the poller must wait for us, not race ahead to close
        self.closed_during.append(closed_before or message_id in self.sim.closed)
        if message_id in self.fail:
            self.fail.discard(message_id)
            raise RuntimeError("broker unavailable")


class TestPoll:
    def test_delivers_every_message_and_closes_after_handover(self, pki):
        """Every listed message is handed over, and closed only after its handover returned."""

        async def scenario(sim: XtaSimulator) -> None:
            ids = [
                sim.add_message(payload, author=SOZIALPLATTFORM, reader=OFFICE)
                for payload in submissions(3)
            ]
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                report = await poller.poll_once()
            expected = (ids, [False, False, False], ids, [], PollReport(3, 3, 3, 0, 0, False))
            actual = (
                handover.calls,
                handover.closed_during,
                sim.closed,
                sim.pending(OFFICE),
                report,
            )
            assert expected == actual

        run(pki, scenario)

    def test_handed_over_bytes_unwrap_to_the_message(self, pki):
        """The handed-over original is the getMessage envelope: it unwraps to payload and attachment."""
        payload = submissions(1)[0]

        async def scenario(sim: XtaSimulator) -> None:
            attachment = xta.Content(PDF, "application/pdf", "nachweis.pdf")
            message_id = sim.add_message(
                payload, author=SOZIALPLATTFORM, reader=OFFICE, attachments=[attachment]
            )
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                await poller.poll_once()
            envelope = xta.unwrap(handover.originals[message_id][0])
            expected = (message_id, SOZIALPLATTFORM, OFFICE, payload, (PDF,))
            actual = (
                envelope.message_id,
                envelope.author,
                envelope.reader,
                envelope.payload,
                tuple(a.data for a in envelope.attachments),
            )
            assert expected == actual

        run(pki, scenario)

    def test_only_the_own_mailbox(self, pki):
        """Messages for another reader are neither listed nor fetched."""

        async def scenario(sim: XtaSimulator) -> None:
            other = sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader="wgb999999999999")
            own = sim.add_message(b"<b/>", author=SOZIALPLATTFORM, reader=OFFICE)
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                await poller.poll_once()
            assert ([own], [other]) == (handover.calls, sim.pending("wgb999999999999"))

        run(pki, scenario)

    def test_more_pending_than_one_list(self, pki):
        """With more messages than max_items, the pass reports more, and the next pass gets the rest."""

        async def scenario(sim: XtaSimulator) -> None:
            ids = [
                sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE) for _ in range(3)
            ]
            handover = Recorder(sim)
            async with XtaPoller(
                settings(sim, client_context(pki), max_items=2), handover
            ) as poller:
                first = await poller.poll_once()
                second = await poller.poll_once()
            expected = ((2, True), (1, False), ids)
            assert expected == (
                (first.closed, first.more),
                (second.closed, second.more),
                sim.closed,
            )

        run(pki, scenario)


class TestFailures:
    def test_failed_handover_is_not_closed_and_fetched_again(self, pki):
        """A handover that raises leaves the message in the mailbox; the next pass delivers it."""

        async def scenario(sim: XtaSimulator) -> None:
            ids = [
                sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE) for _ in range(3)
            ]
            handover = Recorder(sim, fail={ids[1]})
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                first = await poller.poll_once()
                after_first = (list(sim.closed), sim.pending(OFFICE))
                second = await poller.poll_once()
            expected = (
                (3, 2, 1),
                ([ids[0], ids[2]], [ids[1]]),
                (1, 1, 0),
                [ids[0], ids[2], ids[1]],
                2,
            )
            actual = (
                (first.listed, first.closed, first.failed),
                after_first,
                (second.listed, second.closed, second.failed),
                sim.closed,
                sim.fetched.count(ids[1]),
            )
            assert expected == actual

        run(pki, scenario)

    def test_dropped_close_is_retried_by_the_next_pass(self, pki):
        """The connection drops on close: the pass fails, the message stays and is delivered again.

        The second fetch is not byte-identical (the server's response header has a new
        wsa:MessageID), but it unwraps to the same XTA message id: the key to deduplicate by.
        """

        async def scenario(sim: XtaSimulator) -> None:
            message_id = sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE)
            sim.fail("close", "drop")
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                with pytest.raises(XtaError) as caught:
                    await poller.poll_once()
                pending = sim.pending(OFFICE)
                await poller.poll_once()
            first, second = handover.originals[message_id]
            expected = (
                "close",
                [message_id],
                [message_id, message_id],
                [message_id],
                True,
                message_id,
            )
            actual = (
                caught.value.operation,
                pending,
                handover.calls,
                sim.closed,
                first != second,
                xta.unwrap(second).message_id,
            )
            assert expected == actual

        run(pki, scenario)

    def test_client_without_certificate_is_refused(self, pki):
        """Without a client certificate the TLS handshake fails; no request reaches the server."""

        async def scenario(sim: XtaSimulator) -> None:
            sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE)
            anonymous = ssl.create_default_context(cafile=pki.ca)
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, anonymous), handover) as poller:
                with pytest.raises(XtaError) as caught:
                    await poller.poll_once()
            expected = ("getStatusList", [], [], 1)
            actual = (
                caught.value.operation,
                sim.requests,
                handover.calls,
                len(sim.pending(OFFICE)),
            )
            assert expected == actual

        run(pki, scenario)

    def test_server_with_untrusted_certificate_is_refused(self, pki, tmp_path):
        """The poller trusts only its configured CA: another CA's server certificate fails."""
        other_key = ec.generate_private_key(ec.SECP256R1())
        other_ca = _write(
            tmp_path / "other.pem",
            _certificate("other CA", other_key, None).public_bytes(serialization.Encoding.PEM),
        )

        async def scenario(sim: XtaSimulator) -> None:
            context = client_ssl_context(
                ca_file=other_ca, cert_file=pki.client_cert, key_file=pki.client_key
            )
            async with XtaPoller(settings(sim, context), Recorder(sim)) as poller:
                with pytest.raises(XtaError):
                    await poller.poll_once()
            assert [] == sim.requests

        run(pki, scenario)

    def test_status_list_fault(self, pki):
        """A SOAP fault on getStatusList is an XtaFaultError naming the XTA exception and its
        Fehlernummer."""

        async def scenario(sim: XtaSimulator) -> None:
            sim.fail("getStatusList", "fault")
            async with XtaPoller(settings(sim, client_context(pki)), Recorder(sim)) as poller:
                with pytest.raises(XtaFaultError) as caught:
                    await poller.poll_once()
            expected = xta.Fault("Receiver", "XTAWSTechnicalProblemException", "9030")
            assert expected == caught.value.fault

        run(pki, scenario)

    def test_oversized_message_is_skipped_not_closed(self, pki):
        """Without reject_oversize, a message above max_message_bytes is not fetched (its MsgSize
        says so), not handed over and not closed (TestOversize: with it, it is rejected)."""

        async def scenario(sim: XtaSimulator) -> None:
            big = sim.add_message(
                b"<a>" + b"x" * 20_000 + b"</a>", author=SOZIALPLATTFORM, reader=OFFICE
            )
            small = sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE)
            handover = Recorder(sim)
            limited = settings(sim, client_context(pki), max_message_bytes=10_000)
            async with XtaPoller(limited, handover) as poller:
                report = await poller.poll_once()
            expected = ([small], [small], [big], 1)
            assert expected == (handover.calls, sim.closed, sim.pending(OFFICE), report.skipped)

        run(pki, scenario)

    def test_malformed_message_is_handed_over_as_is(self, pki):
        """The poller does not judge content: a malformed container is handed over and closed.

        The hub dead-letters it (here: CONTAINER) from the original bytes it received.
        """

        async def scenario(sim: XtaSimulator) -> None:
            broken = b'<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope"><s12:Body/></s12:Envelope>'
            message_id = sim.add_raw(
                broken, message_id="urn:de:xta:messageid:sim:raw1", reader=OFFICE
            )
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                await poller.poll_once()
            with pytest.raises(Rejection) as caught:
                xta.unwrap(handover.originals[message_id][0])
            assert ([broken], [message_id], Reason.CONTAINER) == (
                handover.originals[message_id],
                sim.closed,
                caught.value.reason,
            )

        run(pki, scenario)


class TestRun:
    def test_run_backs_off_and_stops(self, pki):
        """run() survives failed passes (backing off), delivers everything, and returns on stop()."""

        async def scenario(sim: XtaSimulator) -> None:
            ids = [
                sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE) for _ in range(2)
            ]
            sim.fail("getStatusList", "drop", times=2)
            delivered: list[str] = []
            all_delivered = asyncio.Event()

            async def handover(original: bytes, message_id: str) -> None:
                delivered.append(message_id)
                if len(delivered) == len(ids):
                    all_delivered.set()

            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                task = asyncio.create_task(poller.run())
                await asyncio.wait_for(all_delivered.wait(), timeout=5)
                poller.stop()  # during the last handover: that message is still closed
                await asyncio.wait_for(task, timeout=5)
            expected = (ids, ids, 3)  # two dropped lists, then one that delivers both
            assert expected == (delivered, sim.closed, sim.requests.count("getStatusList"))

        run(pki, scenario)

    def test_backoff_doubles_up_to_the_cap(self, pki):
        """Consecutive failures double the delay from backoff_initial up to backoff_max."""

        async def scenario(sim: XtaSimulator) -> None:
            poller = XtaPoller(
                settings(sim, client_context(pki), backoff_initial=1.0, backoff_max=5.0),
                Recorder(sim),
            )
            assert [1.0, 2.0, 4.0, 5.0, 5.0] == [poller.backoff(n) for n in (1, 2, 3, 4, 100)]

        run(pki, scenario)


class TestReceipt:
    def test_send_receipt(self, pki):
        """send_receipt delivers the receipt with sendMessage; the server records it verbatim."""
        original_id = "urn:de:xta:messageid:sop:4711"
        receipt = xta.receipt_message(
            original_message_id=original_id,
            portal=SOZIALPLATTFORM,
            hub=OFFICE,
            outcome="accepted",
            submission_id="sub-" + "ab" * 16,
        )

        async def scenario(sim: XtaSimulator) -> None:
            async with XtaPoller(settings(sim, client_context(pki)), Recorder(sim)) as poller:
                await poller.send_receipt(receipt)
            assert [receipt] == sim.receipts

        run(pki, scenario)

    def test_rejected_send_is_a_fault(self, pki):
        """The server refuses a non-XTA body with MessageSchemaViolationException."""

        async def scenario(sim: XtaSimulator) -> None:
            async with XtaPoller(settings(sim, client_context(pki)), Recorder(sim)) as poller:
                with pytest.raises(XtaFaultError) as caught:
                    await poller.send_receipt(b"<not-xta/>")
            expected = ("MessageSchemaViolationException", False, [])
            actual = (caught.value.fault.exception, caught.value.retriable, sim.receipts)
            assert expected == actual

        run(pki, scenario)

    def test_a_receipt_sent_again_is_present(self, pki):
        """The same receipt sent twice (a crash before it was audited): the server answers the
        second with ParameterIsNotValidException 9024, the id is taken; the receipt is there."""
        receipt = xta.receipt_message(
            original_message_id="urn:de:xta:messageid:sop:4712",
            portal=SOZIALPLATTFORM,
            hub=OFFICE,
            outcome="accepted",
        )

        async def scenario(sim: XtaSimulator) -> None:
            async with XtaPoller(settings(sim, client_context(pki)), Recorder(sim)) as poller:
                first = await poller.send_receipt(receipt)
                second = await poller.send_receipt(receipt)
            assert ("sent", "present", [receipt]) == (first, second, sim.receipts)

        run(pki, scenario)

    @pytest.mark.parametrize(
        ("mode", "error", "exception", "retriable"),
        [
            ("duplicate", None, None, None),
            ("invalid", XtaSendRefusedError, "ParameterIsNotValidException", False),
            ("denied", XtaSendRefusedError, "PermissionDeniedException", False),
            ("fault", XtaFaultError, "XTAWSTechnicalProblemException", True),
            ("fault-200", XtaFaultError, "XTAWSTechnicalProblemException", True),
            ("unavailable", XtaError, None, True),
            ("drop", XtaError, None, True),
        ],
    )
    def test_each_failure_kind_of_the_simulator(self, pki, mode, error, exception, retriable):
        """Each way the simulator fails sendMessage is classified: a taken id is present, a
        refusing fault is not retriable, a technical fault, 503 or dropped connection is."""
        receipt = xta.receipt_message(
            original_message_id="urn:de:xta:messageid:sop:4713",
            portal=SOZIALPLATTFORM,
            hub=OFFICE,
            outcome="accepted",
        )

        async def scenario(sim: XtaSimulator) -> None:
            sim.fail_message(xta.receipt_message_id("urn:de:xta:messageid:sop:4713"), mode)
            async with XtaPoller(settings(sim, client_context(pki)), Recorder(sim)) as poller:
                if error is None:
                    assert "present" == await poller.send_receipt(receipt)
                else:
                    with pytest.raises(XtaError) as caught:
                        await poller.send_receipt(receipt)
                    fault = getattr(caught.value, "fault", None)
                    assert (type(caught.value), exception, retriable) == (
                        error,
                        fault.exception if fault else None,
                        caught.value.retriable,
                    )
            assert [] == sim.receipts  # refused or failed: the server recorded nothing

        run(pki, scenario)


class TestSettings:
    def test_repr_shows_no_tls_material(self, pki):
        """Neither the settings nor the poller print the TLS context (it holds the private key)."""
        context = client_context(pki)
        config = XtaSettings(
            msgbox_url="https://xta.example/MsgBoxPort",
            send_url="https://xta.example/SendXtaPort",
            mailbox=OFFICE,
            ssl_context=context,
        )

        async def noop(original: bytes, message_id: str) -> None:
            return None

        text = repr(config) + repr(XtaPoller(config, noop))
        assert ("SSLContext" in text, "ssl_context" in text, OFFICE in text) == (False, False, True)

    @pytest.mark.parametrize(
        "url",
        [
            "http://xta.example/MsgBoxPort",
            "https://user:secret@xta.example/MsgBoxPort",
            "xta.example",
        ],
    )
    def test_refuses_insecure_urls(self, pki, url):
        """Endpoints must be https:// without credentials in the URL."""
        with pytest.raises(ValueError, match="XTA endpoint"):
            XtaSettings(
                msgbox_url=url, send_url=url, mailbox=OFFICE, ssl_context=client_context(pki)
            )

    def test_refuses_unverified_server(self, pki):
        """A TLS context that does not verify the server is refused."""
        context = client_context(pki)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with pytest.raises(ValueError, match="CERT_REQUIRED"):
            XtaSettings(
                msgbox_url="https://xta.example/a",
                send_url="https://xta.example/b",
                mailbox=OFFICE,
                ssl_context=context,
            )


class TestMtom:
    def test_mtom_messages_are_handed_over_as_mime_and_closed_after(self, pki):
        """MTOM responses are handed over as MIME entities (Content-Type line, body) and
        closed only after the handover returned; they unwrap to payload and attachments."""
        payloads = submissions(2)

        async def scenario(sim: XtaSimulator) -> None:
            attachment = xta.Content(PDF, "application/pdf", "nachweis.pdf")
            ids = [
                sim.add_message(p, author=SOZIALPLATTFORM, reader=OFFICE, attachments=[attachment])
                for p in payloads
            ]
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                report = await poller.poll_once()
            originals = [handover.originals[i][0] for i in ids]
            envelopes = [xta.unwrap(o) for o in originals]
            expected = (
                ids,
                [False, False],
                ids,
                [True, True],
                [(i, p, (PDF,)) for i, p in zip(ids, payloads, strict=True)],
                (2, 2, 0),
            )
            actual = (
                handover.calls,
                handover.closed_during,
                sim.closed,
                [o.startswith(b"Content-Type: multipart/related;") for o in originals],
                [
                    (e.message_id, e.payload, tuple(a.data for a in e.attachments))
                    for e in envelopes
                ],
                (report.handed_over, report.closed, report.failed),
            )
            assert expected == actual

        run(pki, scenario, mtom=True)

    def test_inline_and_mtom_side_by_side(self, pki):
        """One server may answer some messages inline and others as MTOM: both are read."""

        async def scenario(sim: XtaSimulator) -> None:
            inline = sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE, mtom=False)
            packed = sim.add_message(b"<b/>", author=SOZIALPLATTFORM, reader=OFFICE)
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                await poller.poll_once()
            kinds = [xta.is_mime(handover.originals[i][0]) for i in (inline, packed)]
            payloads = [xta.unwrap(handover.originals[i][0]).payload for i in (inline, packed)]
            assert ([False, True], [b"<a/>", b"<b/>"]) == (kinds, payloads)

        run(pki, scenario, mtom=True)

    def test_hostile_package_is_handed_over_as_is(self, pki):
        """The poller does not judge content: a package with a dangling cid is handed over
        and closed; the hub refuses it (CONTAINER) and can still answer its author (peek)."""
        metadata = xta.message_metadata(
            xta.OutboundMetadata(
                message_id="urn:de:xta:messageid:sim:mtom-bad",
                author=SOZIALPLATTFORM,
                reader=OFFICE,
                service="urn:x:service",
                message_type=xta.RECEIPT_MESSAGE_TYPE,
                payload_schema="urn:x:schema",
                business_scenario="test",
            )
        )
        content_type, body = mtom_message(metadata, xta.Content(b"<a/>", "application/xml"))
        dangling = body.replace(b'href="cid:part1.', b'href="cid:gone.')

        async def scenario(sim: XtaSimulator) -> None:
            message_id = sim.add_raw(
                dangling,
                message_id="urn:de:xta:messageid:sim:mtom-bad",
                reader=OFFICE,
                content_type=content_type,
            )
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                await poller.poll_once()
            original = handover.originals[message_id][0]
            with pytest.raises(Rejection) as caught:
                xta.unwrap(original)
            expected = (
                [message_id],
                Reason.CONTAINER,
                "GenericContentContainer/ContentContainer/Message/Include/@href",
                SOZIALPLATTFORM,
            )
            actual = (
                sim.closed,
                caught.value.reason,
                caught.value.path,
                xta.peek(original).author,
            )
            assert expected == actual

        run(pki, scenario)

    def test_mtom_status_list_is_read(self, pki):
        """A server that answers getStatusList with MTOM too: the poller reads the list."""

        async def scenario(sim: XtaSimulator) -> None:
            message_id = sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE)
            handover = Recorder(sim)
            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                request = xta.get_status_list_request(OFFICE, 10)
                plain = await poller._call("getStatusList", sim.msgbox_url, request)
                boundary = "uuid:status-list"
                packed = (
                    (
                        f'Content-Type: multipart/related; type="application/xop+xml"; '
                        f'boundary="{boundary}"; start-info="application/soap+xml"\r\n\r\n'
                        f"--{boundary}\r\n"
                        'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
                        "Content-ID: <root@x>\r\n\r\n"
                    ).encode()
                    + plain
                    + f"\r\n--{boundary}--\r\n".encode()
                )
            assert xta.status_list(packed).message_ids == (message_id,)

        run(pki, scenario)


class RejectRecorder:
    """A reject_oversize callback: records what it got and what was closed at that moment."""

    def __init__(self, sim: XtaSimulator, fail_times: int = 0) -> None:
        self.sim = sim
        self.fail_times = fail_times
        self.calls: list[Oversize] = []
        self.closed_during: list[bool] = []

    async def __call__(self, oversize: Oversize) -> None:
        self.calls.append(oversize)
        closed_before = oversize.message_id in self.sim.closed
        await asyncio.sleep(0.01)  # the poller must wait for us before it closes
        self.closed_during.append(closed_before or oversize.message_id in self.sim.closed)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("broker unavailable")


LIMIT = 10_000


class TestOversize:
    def test_declared_too_large_is_rejected_unread_then_closed(self, pki):
        """MsgSize above the limit: never fetched; the rejection is handed over, then close."""

        async def scenario(sim: XtaSimulator) -> None:
            big = sim.add_message(
                b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE, msg_size=LIMIT + 1
            )
            small = sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE)
            handover, reject = Recorder(sim), RejectRecorder(sim)
            limited = settings(sim, client_context(pki), max_message_bytes=LIMIT)
            async with XtaPoller(limited, handover, reject) as poller:
                report = await poller.poll_once()
            (call,) = reject.calls
            expected = (
                (big, LIMIT + 1, xta.DECLARED_SIZE, LIMIT, SOZIALPLATTFORM),
                [False],
                [small],
                [big, small],
                [small],
                (2, 1, 1, 0, 0),
            )
            actual = (
                (call.message_id, call.declared_size, call.path, call.limit, call.metadata.author),
                reject.closed_during,
                handover.calls,
                sim.closed,
                sim.fetched,
                (report.closed, report.rejected, report.handed_over, report.skipped, report.failed),
            )
            assert expected == actual

        run(pki, scenario)

    def test_response_too_large_is_rejected_then_closed(self, pki):
        """No MsgSize, but the response is above the limit: rejected from the list's metadata,
        with the response's Content-Length as the declared size."""

        async def scenario(sim: XtaSimulator) -> None:
            big = sim.add_message(
                b"<a>" + b"x" * 20_000 + b"</a>",
                author=SOZIALPLATTFORM,
                reader=OFFICE,
                msg_size=None,
            )
            handover, reject = Recorder(sim), RejectRecorder(sim)
            limited = settings(sim, client_context(pki), max_message_bytes=LIMIT)
            async with XtaPoller(limited, handover, reject) as poller:
                report = await poller.poll_once()
            (call,) = reject.calls
            expected = (big, xta.RESPONSE_SIZE, True, [big], [big], [], 1)
            actual = (
                call.message_id,
                call.path,
                (call.declared_size or 0) > LIMIT,
                sim.fetched,
                sim.closed,
                handover.calls,
                report.rejected,
            )
            assert expected == actual

        run(pki, scenario, mtom=True)

    def test_large_error_page_is_a_failed_call_not_an_oversize_message(self, pki):
        """A getMessage answered with HTTP 502 and an error page above the message bound: the
        call fails (retriable, body unread), the message is neither rejected nor closed, and
        the next pass fetches and hands it over."""

        async def scenario(sim: XtaSimulator) -> None:
            message = sim.add_message(b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE, msg_size=None)
            sim.fail("getMessage", "error-page")
            handover, reject = Recorder(sim), RejectRecorder(sim)
            limited = settings(sim, client_context(pki), max_message_bytes=LIMIT)
            async with XtaPoller(limited, handover, reject) as poller:
                with pytest.raises(XtaError) as caught:
                    await poller.poll_once()
                failed = (type(caught.value), caught.value.retriable, str(caught.value))
                after_failure = (list(reject.calls), list(sim.closed), list(handover.calls))
                report = await poller.poll_once()
            assert ERROR_PAGE_BYTES > LIMIT
            expected = (
                (XtaError, True, "getMessage: HTTP 502"),
                ([], [], []),
                ([message], [message], 1, 0),
            )
            actual = (
                failed,
                after_failure,
                (handover.calls, sim.closed, report.handed_over, report.rejected),
            )
            assert expected == actual

        run(pki, scenario)

    def test_keep_leaves_it_in_the_mailbox(self, pki):
        """oversize="keep": no rejection, no close; logged and skipped on every pass."""

        async def scenario(sim: XtaSimulator) -> None:
            big = sim.add_message(
                b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE, msg_size=LIMIT + 1
            )
            reject = RejectRecorder(sim)
            kept = settings(sim, client_context(pki), max_message_bytes=LIMIT, oversize="keep")
            async with XtaPoller(kept, Recorder(sim), reject) as poller:
                first = await poller.poll_once()
                second = await poller.poll_once()
            expected = ([], [], [big], (1, 1), (0, 0))
            actual = (
                reject.calls,
                sim.closed,
                sim.pending(OFFICE),
                (first.skipped, second.skipped),
                (first.rejected, second.rejected),
            )
            assert expected == actual

        run(pki, scenario)

    def test_failed_rejection_is_not_closed_and_retried(self, pki):
        """The rejection's handover raises: the message stays; the next pass rejects and closes."""

        async def scenario(sim: XtaSimulator) -> None:
            big = sim.add_message(
                b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE, msg_size=LIMIT + 1
            )
            reject = RejectRecorder(sim, fail_times=1)
            limited = settings(sim, client_context(pki), max_message_bytes=LIMIT)
            async with XtaPoller(limited, Recorder(sim), reject) as poller:
                first = await poller.poll_once()
                pending = sim.pending(OFFICE)
                second = await poller.poll_once()
            expected = ((1, 0), [big], (0, 1), 2, [big])
            actual = (
                (first.failed, first.closed),
                pending,
                (second.failed, second.rejected),
                len(reject.calls),
                sim.closed,
            )
            assert expected == actual

        run(pki, scenario)

    def test_failed_close_closes_next_pass_without_a_second_rejection(self, pki):
        """close drops after the rejection was acknowledged: the next pass only closes."""

        async def scenario(sim: XtaSimulator) -> None:
            big = sim.add_message(
                b"<a/>", author=SOZIALPLATTFORM, reader=OFFICE, msg_size=LIMIT + 1
            )
            sim.fail("close", "drop")
            reject = RejectRecorder(sim)
            limited = settings(sim, client_context(pki), max_message_bytes=LIMIT)
            async with XtaPoller(limited, Recorder(sim), reject) as poller:
                with pytest.raises(XtaError) as caught:
                    await poller.poll_once()
                second = await poller.poll_once()
            expected = ("close", 1, [big], 1)
            actual = (caught.value.operation, len(reject.calls), sim.closed, second.rejected)
            assert expected == actual

        run(pki, scenario)

    def test_unanswerable_listing_keeps_it(self, pki):
        """Listed without metadata (MsgAttributes): no author to answer, so it stays."""

        async def scenario(sim: XtaSimulator) -> None:
            raw = sim.add_raw(
                b"<x/>" * 5_000, message_id="urn:de:xta:messageid:sim:raw-big", reader=OFFICE
            )
            reject = RejectRecorder(sim)
            limited = settings(sim, client_context(pki), max_message_bytes=LIMIT)
            async with XtaPoller(limited, Recorder(sim), reject) as poller:
                report = await poller.poll_once()
            assert ([], [raw], 1) == (reject.calls, sim.pending(OFFICE), report.skipped)

        run(pki, scenario)


class KafkaSender:
    """Produces emits to the test's topics and waits for the broker's acknowledgement of each,
    as the worker's Sender does; records which message ids the broker had acknowledged."""

    def __init__(self, settings_: Settings) -> None:
        self.settings = settings_
        self.producer = kafka.producer(settings_)
        self.acknowledged: list[str] = []

    async def send_all(self, emits: tuple[Emit, ...], message_id: str) -> None:
        errors: list[object] = []

        def delivered(error: object, _message: object) -> None:
            if error is not None:
                errors.append(error)

        for emit in emits:
            self.producer.produce(
                self.settings.topic(emit.topic),
                key=emit.key.encode("ascii"),
                value=emit.value,
                on_delivery=delivered,
            )
        remaining = await asyncio.to_thread(self.producer.flush, 30)
        if remaining or errors:
            raise RuntimeError("not acknowledged")
        self.acknowledged.append(message_id)


def _records(settings_: Settings, topic: str, cls, count: int) -> list:  # type: ignore[no-untyped-def]
    found: list = []
    stop = lambda: len(found) >= count  # noqa: E731
    found.extend(decode(m.value(), cls) for m in kafka.follow(settings_, topic, stop, timeout=30))
    return found


class TestThroughTheBroker:
    def test_mtom_and_oversize_through_kafka(self, pki, hub_settings):
        """MTOM messages are produced to Kafka, accepted by intake, and closed only after the
        broker acknowledged them; a message too large to fetch gets its SIZE dead letter and
        rejection receipt on Kafka, and only then is it closed."""
        hub = context.build(hub_settings)
        now = dt.datetime.now(dt.UTC)
        sender = KafkaSender(hub_settings)
        closed_before_ack: list[bool] = []
        limit = hub_settings.max_submission_bytes
        payloads = submissions(2)

        async def scenario(sim: XtaSimulator) -> None:
            attachment = xta.Content(PDF, "application/pdf", "nachweis.pdf")
            ids = [
                sim.add_message(p, author=SOZIALPLATTFORM, reader=OFFICE, attachments=[attachment])
                for p in payloads
            ]
            big = sim.add_message(
                payloads[0], author=SOZIALPLATTFORM, reader=OFFICE, msg_size=limit + 1
            )

            async def handover(original: bytes, message_id: str) -> None:
                result = pipeline.ingest(original, "xta", "xta2", hub, now, message_id)
                closed_before_ack.append(message_id in sim.closed)
                await sender.send_all(result.emits, message_id)

            async def reject(oversize: Oversize) -> None:
                result = xta_oversize.reject(oversize, hub, now)
                closed_before_ack.append(oversize.message_id in sim.closed)
                await sender.send_all(result.emits, oversize.message_id)

            config = settings(sim, client_context(pki), max_message_bytes=limit)
            async with XtaPoller(config, handover, reject) as poller:
                report = await poller.poll_once()
            assert (report.handed_over, report.rejected, report.closed) == (2, 1, 3)
            assert sim.closed == sender.acknowledged == [*ids, big]
            assert closed_before_ack == [False, False, False]
            assert big not in sim.fetched

            received = _records(hub_settings, pipeline.RECEIVED, Received, 2)
            assert sorted(r.transport_message_id or "" for r in received) == sorted(ids)
            outcomes = []
            for record in received:
                assert xta.is_mime(unb64(record.payload_b64))  # the original as it came
                result = pipeline.intake(record, None, hub, now)
                answer = next(e for e in result.emits if e.topic == pipeline.RECEIPTS)
                outcomes.append((result.outcome, decode(answer.value, PortalReceipt).outcome))
            assert outcomes == [("accepted", "accepted")] * 2

            (letter,) = _records(hub_settings, pipeline.DEAD_LETTER, DeadLetter, 1)
            (receipt,) = _records(hub_settings, pipeline.RECEIPTS, PortalReceipt, 1)
            assert (
                letter.reason,
                letter.path,
                letter.transport_message_id,
                letter.declared_size,
                letter.payload_sha256,
            ) == ("SIZE", xta.DECLARED_SIZE, big, limit + 1, None)
            assert (receipt.channel, receipt.outcome, receipt.reason) == (
                "xta2",
                "rejected",
                "SIZE",
            )
            assert xta.receipt_outcome(unb64(receipt.body_b64 or "")) == (big, "rejected")

        run(pki, scenario, mtom=True)


class SimulatorThread:
    """The XTA simulator on an event loop in a background thread, for a worker process."""

    def __init__(self, sim: XtaSimulator) -> None:
        self.sim = sim
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def call(self, function: Callable[[], T]) -> T:
        """``function()`` on the simulator's loop (it is not thread-safe)."""

        async def inside() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(inside(), self._loop).result(30)

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def until(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.3)


@pytest.mark.timeout(300)
def test_a_taken_or_refused_receipt_does_not_block_a_later_one(pki, hub_settings):
    """Through a worker and the broker: the XTA receipt sender meets a receipt whose message id
    the XTA server holds already (sent just before a crash, so never audited) and one the server
    refuses for good (ParameterIsNotValidException 9022). Neither blocks the receipt after
    them: each is tried once and audited, the first as sent, the second as refused. A
    FIT-Connect receipt on the same topic is left to the FIT-Connect group: this XTA-only
    worker's group passes over it and commits past it."""
    sim = XtaSimulator(server_context(pki))
    with SimulatorThread(sim) as background:

        def fill() -> list[str]:
            ids = [
                sim.add_message(p, author=SOZIALPLATTFORM, reader=OFFICE) for p in submissions(3)
            ]
            sim.fail_reply(ids[0], "duplicate")
            sim.fail_reply(ids[1], "invalid")
            return ids

        ids = background.call(fill)
        worker_settings = hub_settings.with_overrides(
            xta_msgbox_url=sim.msgbox_url,
            xta_send_url=sim.send_url,
            xta_mailbox=OFFICE,
            xta_client_cert=pki.client_cert,
            xta_client_key=pki.client_key,
            xta_ca_file=pki.ca,
            xta_poll_seconds=0.5,
        )

        def decisions() -> dict[str, str]:
            """Transport message id -> the receipt's audited decision."""
            receipts = [
                decode(m.value(), PortalReceipt)
                for m in read_topic(hub_settings, hub_settings.topic(pipeline.RECEIPTS))
            ]
            by_submission = {r.submission_id: r.transport_message_id or "" for r in receipts}
            events = [
                decode(m.value(), AuditEvent)
                for m in read_topic(hub_settings, hub_settings.topic(pipeline.AUDIT))
            ]
            return {
                by_submission[e.submission_id]: e.decision
                for e in events
                if e.stage == "receipt" and e.submission_id in by_submission
            }

        # A FIT-Connect receipt, which is not this XTA-only worker's to send.
        foreign = PortalReceipt(
            receipt_id="rcp-" + "0" * 32,
            submission_id="sub-" + "f" * 32,
            transport="fitconnect",
            channel="fitconnect",
            outcome="accepted",
            at="2026-11-22T10:00:00.000Z",
            case_id="7d6c3b4e-2f1a-4c5d-9e8f-0a1b2c3d4e5f",
        )
        producer = kafka.producer(hub_settings)
        emit = Emit.of(hub_settings.topic(pipeline.RECEIPTS), foreign.submission_id, foreign)
        producer.produce(emit.topic, key=emit.key.encode(), value=emit.value)
        assert 0 == producer.flush(30)
        log_file = hub_settings.data_dir / "worker.log"
        worker = WorkerProcess(worker_settings, log_file=log_file, args=("--no-outbound",)).start()
        try:
            worker.wait_ready()
            until(lambda: len(decisions()) == 3)
            until(lambda: xta2_group_is_past_every_receipt(hub_settings))
        finally:
            worker.stop()
        sends = background.call(lambda: sim.requests.count("sendMessage"))
        recorded = background.call(lambda: [xta.receipt_outcome(r)[0] for r in sim.receipts])
    assert {ids[0]: "sent", ids[1]: "refused", ids[2]: "sent"} == decisions()
    assert (3, [ids[2]]) == (sends, recorded)  # each receipt tried once; the server kept one
    assert foreign.submission_id not in log_file.read_text(errors="replace")


def xta2_group_is_past_every_receipt(settings: Settings) -> bool:
    """Whether the ``receipts-xta2`` group committed past the last record of every partition."""
    from confluent_kafka import TopicPartition

    topic = settings.topic(pipeline.RECEIPTS)
    ends: dict[int, int] = {}
    for message in read_topic(settings, topic):
        ends[message.partition()] = message.offset() + 1
    reader = kafka.consumer(settings, receipts.group(settings, "xta2"))
    try:
        found = reader.committed([TopicPartition(topic, p) for p in ends], 30)
    finally:
        reader.close()
    return {tp.partition: tp.offset for tp in found} == ends


# --- the simulator speaks the official schema ------------------------------------------------


SHARED = shared_dir(XTA_WSDL)  # the official XTA XSDs


@pytest.fixture(scope="module")
def official_schema():
    assert SHARED is not None
    directory = SHARED / "schemas" / "xta-2.1.1"
    imports = [(xta.XTA, "XTA-Webservice-Globale-Elemente.xsd"), (xta.OSCI, "OSCI2_02.xsd")]
    wrapper = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:sozialhub:test:xta">'
        + "".join(
            f'<xs:import namespace="{ns}" schemaLocation="{(directory / name).as_uri()}"/>'
            for ns, name in imports
        )
        + "</xs:schema>"
    )
    return xmlschema.XMLSchema(wrapper, base_url=str(directory), allow="local", defuse="always")


@pytest.mark.skipif(
    SHARED is None,
    reason="official XTA 2.1.1 XSDs not found: set SOZIALHUB_SHARED_DIR to the shared/ directory",
)
class TestSimulatorMatchesTheStandard:
    def test_responses_and_receipt_validate(self, pki, official_schema):
        """getStatusList and getMessage responses and the receipt sent validate against XTA 2.1.1."""
        captured: dict[str, bytes] = {}

        async def scenario(sim: XtaSimulator) -> None:
            attachment = xta.Content(PDF, "application/pdf", "nachweis.pdf")
            message_id = sim.add_message(
                submissions(1)[0], author=SOZIALPLATTFORM, reader=OFFICE, attachments=[attachment]
            )

            async def handover(original: bytes, mid: str) -> None:
                captured["getMessage"] = original

            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                request = xta.get_status_list_request(OFFICE, 10)
                captured["getStatusList"] = await poller._call(
                    "getStatusList", sim.msgbox_url, request
                )
                await poller.poll_once()
                envelope = xta.unwrap(captured["getMessage"])
                await poller.send_receipt(
                    xta.receipt_message(
                        original_message_id=message_id,
                        portal=envelope.author or "",
                        hub=OFFICE,
                        outcome="rejected",
                        reason=Reason.XSD,
                        now=dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC),
                    )
                )
            captured["sendMessage"] = sim.receipts[0]

        run(pki, scenario)
        tags = {
            f"{{{xta.OSCIMETA}}}MessageMetaData",
            f"{{{xta.OSCI}}}MsgBoxResponse",
            f"{{{xta.XTA}}}GenericContentContainer",
            f"{{{xta.OSCI}}}MsgStatusList",
        }
        validated = []
        for name, document in sorted(captured.items()):
            root = xmlsafe.parse(document)
            for part in root:
                for element in part:
                    if element.tag in tags:
                        official_schema.validate(XMLResource(element, allow="none"))
                        validated.append((name, element.tag.rpartition("}")[2]))
        expected = [
            ("getMessage", "MessageMetaData"),
            ("getMessage", "MsgBoxResponse"),
            ("getMessage", "GenericContentContainer"),
            ("getStatusList", "MsgBoxResponse"),
            ("getStatusList", "MsgStatusList"),
            ("sendMessage", "MessageMetaData"),
            ("sendMessage", "GenericContentContainer"),
        ]
        assert expected == validated

    def test_faults_validate(self, pki):
        """Each SOAP fault the simulator answers sendMessage with carries an XTA exception that
        validates against XTA-Webservice-Exceptions.xsd (``xta:errorCode`` with a Fehlernummer),
        and is classified as intended."""
        assert SHARED is not None
        exceptions = xmlschema.XMLSchema(
            str(SHARED / "schemas" / "xta-2.1.1" / "XTA-Webservice-Exceptions.xsd"),
            allow="local",
            defuse="always",
        )
        bodies: dict[str, bytes] = {}

        async def scenario(sim: XtaSimulator) -> None:
            async with XtaPoller(settings(sim, client_context(pki)), Recorder(sim)) as poller:
                session = poller._open()
                for mode in ("fault", "duplicate", "invalid", "denied"):
                    sim.fail("sendMessage", mode)
                    headers = {"Content-Type": "application/soap+xml"}
                    async with session.post(sim.send_url, data=b"<x/>", headers=headers) as answer:
                        bodies[mode] = await answer.read()

        run(pki, scenario)
        verdicts = {}
        for mode, body in bodies.items():
            detail = xmlsafe.parse(body).find(f".//{{{xta.SOAP12}}}Detail")
            assert detail is not None
            exceptions.validate(XMLResource(detail[0], allow="none"))
            fault = xta.parse_fault(body)
            assert fault is not None
            verdicts[mode] = (fault.error_code, xta.send_verdict(fault))
        assert {
            "fault": ("9030", xta.SEND_TRANSIENT),
            "duplicate": (xta.MESSAGE_ID_TAKEN, xta.SEND_PRESENT),
            "invalid": ("9022", xta.SEND_REFUSED),
            "denied": ("9011", xta.SEND_REFUSED),
        } == verdicts

    def test_mtom_response_validates_after_xop_resolution(self, pki, official_schema):
        """An MTOM getMessage response, its includes resolved, validates against XTA 2.1.1; so
        does the status list that declares its size (MsgSize in MessageMetaData)."""
        captured: dict[str, bytes] = {}

        async def scenario(sim: XtaSimulator) -> None:
            attachment = xta.Content(PDF, "application/pdf", "nachweis.pdf")
            sim.add_message(
                submissions(1)[0], author=SOZIALPLATTFORM, reader=OFFICE, attachments=[attachment]
            )

            async def handover(original: bytes, mid: str) -> None:
                captured["getMessage"] = original

            async with XtaPoller(settings(sim, client_context(pki)), handover) as poller:
                request = xta.get_status_list_request(OFFICE, 10)
                captured["getStatusList"] = await poller._call(
                    "getStatusList", sim.msgbox_url, request
                )
                await poller.poll_once()

        run(pki, scenario, mtom=True)
        assert xta.is_mime(captured["getMessage"])
        tags = {
            f"{{{xta.OSCIMETA}}}MessageMetaData",
            f"{{{xta.OSCI}}}MsgBoxResponse",
            f"{{{xta.XTA}}}GenericContentContainer",
            f"{{{xta.OSCI}}}MsgStatusList",
        }
        roots = {
            "getMessage": xta.resolved_envelope(captured["getMessage"]),
            "getStatusList": xmlsafe.parse(captured["getStatusList"]),
        }
        validated = []
        for name, root in sorted(roots.items()):
            for part in root:
                for element in part:
                    if element.tag in tags:
                        official_schema.validate(XMLResource(element, allow="none"))
                        validated.append((name, element.tag.rpartition("}")[2]))
        sizes = roots["getStatusList"].findall(f".//{{{xta.OSCIMETA}}}MsgSize")
        expected = [
            ("getMessage", "MessageMetaData"),
            ("getMessage", "MsgBoxResponse"),
            ("getMessage", "GenericContentContainer"),
            ("getStatusList", "MsgBoxResponse"),
            ("getStatusList", "MsgStatusList"),
        ]
        assert (expected, [str(len(captured["getMessage"]) - _prefix(captured["getMessage"]))]) == (
            validated,
            [s.text for s in sizes],
        )


def _prefix(original: bytes) -> int:
    """Length of the header block the poller puts before an MTOM body."""
    return original.index(b"\r\n\r\n") + 4
