"""The numbering agency as a real grpc.aio server over mutual TLS.

The registry (service:registry) may call it; an agency and the hub may not
(R6: nothing may lead from a Number to an ID code, so the hub can never look
one up). Refusals are read exactly as a caller gets them: code and ErrorInfo.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.aio import LoopThread
from support.directory_fakes import CodesOnly, start_directory
from support.refusals import Refusal, refused

from numbering import number
from numbering.bootstrap import SERVICE_NAME, NumberingServer, create_server
from numbering.config import NumberingConfig
from numbering.directory import GrpcResidentDirectory, call_deadline
from ops import pki as ops_pki
from ops.deploy import free_port
from ops.pki import PkiLayout
from renkei import db
from renkei.errors import RenkeiError
from renkei.grpcutil.caller import DEV_PARTY_HEADER
from renkei.grpcutil.client import peer_options
from renkei.grpcutil.server import ServerHandle
from renkei.numbering.v1 import numbering_pb2 as pb
from renkei.numbering.v1 import numbering_pb2_grpc
from renkei.pki import TlsFiles

AGENCY = "141003"
RESIDENTS = [f"{50_000_000_000 + i:011d}" for i in range(20)]
CALL_TIMEOUT = 5.0
if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    Stub = numbering_pb2_grpc.NumberingServiceAsyncStub


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return ops_pki.init_pki(
        tmp_path_factory.mktemp("pki"), [AGENCY], services=["numbering", "registry"]
    )


@pytest.fixture(scope="module")
def registry(loop: LoopThread, layout: PkiLayout) -> Iterator[tuple[CodesOnly, ServerHandle]]:
    """The registry's ResidentDirectoryService, knowing RESIDENTS."""
    source = CodesOnly(RESIDENTS)
    handle = loop.run(start_directory(source, layout.service("registry")))
    yield source, handle
    loop.run(handle.stop(0))


@pytest.fixture(scope="module")
def config(
    layout: PkiLayout,
    database: tuple[str | None, str],
    registry: tuple[CodesOnly, ServerHandle],
    tmp_path_factory: pytest.TempPathFactory,
) -> NumberingConfig:
    root = tmp_path_factory.mktemp("numbering")
    url, prefix = database
    return NumberingConfig(
        listen="127.0.0.1:0",
        database_url=url or db.sqlite_url(str(root / "numbering.db")),
        database_schema=None if url is None else f"{prefix}numbering",
        registry_endpoint=f"127.0.0.1:{registry[1].port}",
        tls=layout.service("numbering"),
        shutdown_grace_seconds=0.5,
    )


@pytest.fixture(scope="module")
def server(loop: LoopThread, config: NumberingConfig) -> Iterator[NumberingServer]:
    started = loop.run(create_server(config))
    yield started
    loop.run(started.stop(0))


def _call(
    loop: LoopThread,
    port: int,
    tls: TlsFiles | None,
    use: Callable[[Stub], Awaitable[Any]],
) -> Any:
    async def run() -> Any:
        target = f"127.0.0.1:{port}"
        channel = (
            grpc.aio.secure_channel(
                target, tls.channel_credentials(), peer_options("service:numbering")
            )
            if tls
            else grpc.aio.insecure_channel(target)
        )
        async with channel:
            stub: Stub = numbering_pb2_grpc.NumberingServiceStub(channel)
            return await use(stub)

    return loop.run(run())


def _as(
    party: str, loop: LoopThread, server: NumberingServer, layout: PkiLayout
) -> Callable[[Callable[[Stub], Awaitable[Any]]], Any]:
    tls = {
        "registry": layout.service("registry"),
        "agency": layout.agency(AGENCY),
        "hub": layout.hub(),
    }[party]
    return lambda use: _call(loop, server.port, tls, use)


# ------------------------------------------------------------------ as the registry


def test_registry_issues_and_looks_up(
    loop: LoopThread, server: NumberingServer, layout: PkiLayout
) -> None:
    registry = _as("registry", loop, server, layout)
    code = RESIDENTS[0]
    first: pb.IssueNumberResponse = registry(
        lambda s: s.IssueNumber(pb.IssueNumberRequest(resident_code=code), timeout=CALL_TIMEOUT)
    )
    assert number.is_valid(first.number)
    assert first.newly_issued
    assert number.format_number(first.number) in first.notice_html.decode("utf-8")
    again: pb.IssueNumberResponse = registry(
        lambda s: s.IssueNumber(pb.IssueNumberRequest(resident_code=code), timeout=CALL_TIMEOUT)
    )
    assert (again.number, again.newly_issued) == (first.number, False)
    assert again.issued_at == first.issued_at
    assert again.notice_html == first.notice_html
    found: pb.LookupNumberResponse = registry(
        lambda s: s.LookupNumber(pb.LookupNumberRequest(resident_code=code), timeout=CALL_TIMEOUT)
    )
    assert found.number == first.number
    back: pb.LookupResidentCodeResponse = registry(
        lambda s: s.LookupResidentCode(
            pb.LookupResidentCodeRequest(number=first.number), timeout=CALL_TIMEOUT
        )
    )
    assert back.resident_code == code


def test_registry_changes_number_and_resident_code(
    loop: LoopThread, server: NumberingServer, layout: PkiLayout
) -> None:
    registry = _as("registry", loop, server, layout)
    old_code, new_code = RESIDENTS[1], RESIDENTS[2]
    issued: pb.IssueNumberResponse = registry(
        lambda s: s.IssueNumber(pb.IssueNumberRequest(resident_code=old_code))
    )
    changed: pb.ChangeNumberResponse = registry(
        lambda s: s.ChangeNumber(
            pb.ChangeNumberRequest(number=issued.number, reason="漏えいのおそれ"),
            timeout=CALL_TIMEOUT,
        )
    )
    assert changed.number != issued.number
    assert number.is_valid(changed.number)
    assert number.format_number(changed.number) in changed.notice_html.decode()
    moved: pb.ChangeResidentCodeResponse = registry(
        lambda s: s.ChangeResidentCode(
            pb.ChangeResidentCodeRequest(old_resident_code=old_code, new_resident_code=new_code),
            timeout=CALL_TIMEOUT,
        )
    )
    assert moved.number == changed.number
    history: pb.GetHistoryResponse = registry(
        lambda s: s.GetHistory(pb.GetHistoryRequest(resident_code=new_code), timeout=CALL_TIMEOUT)
    )
    assert [
        (e.kind, e.resident_code, e.old_number, e.new_number, e.old_resident_code)
        for e in history.events
    ] == [
        (pb.EVENT_KIND_ISSUE, old_code, "", issued.number, ""),
        (pb.EVENT_KIND_CHANGE, old_code, issued.number, changed.number, ""),
        (pb.EVENT_KIND_RESIDENT_CODE_CHANGE, new_code, "", changed.number, old_code),
    ]
    assert all(e.time.seconds > 0 for e in history.events)
    retired = registry(
        lambda s: refused(
            s.LookupResidentCode(
                pb.LookupResidentCodeRequest(number=issued.number), timeout=CALL_TIMEOUT
            )
        )
    )
    assert retired == Refusal(
        grpc.StatusCode.FAILED_PRECONDITION, "NUMBER_RETIRED", {"field": "number"}, retired.message
    )


@pytest.mark.parametrize(
    ("request_", "code", "reason", "field"),
    [
        (
            pb.IssueNumberRequest(resident_code="99999999999"),
            grpc.StatusCode.NOT_FOUND,
            "RESIDENT_UNKNOWN",
            "resident_code",
        ),
        (
            pb.IssueNumberRequest(resident_code="5000000000"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            "resident_code",
        ),
        (
            pb.IssueNumberRequest(
                resident_code="".join(chr(0xFF10 + int(d)) for d in RESIDENTS[3])
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            "resident_code",
        ),
        (
            pb.LookupResidentCodeRequest(number="123456789019"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            "number",
        ),
        (
            pb.LookupResidentCodeRequest(number="123456789018"),
            grpc.StatusCode.NOT_FOUND,
            "NUMBER_UNKNOWN",
            "number",
        ),
        (
            pb.ChangeNumberRequest(number="12345678901", reason="x"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            "number",
        ),
        (
            pb.LookupNumberRequest(resident_code=RESIDENTS[19]),
            grpc.StatusCode.NOT_FOUND,
            "RESIDENT_HAS_NO_NUMBER",
            "resident_code",
        ),
        (
            pb.ChangeResidentCodeRequest(
                old_resident_code=RESIDENTS[18], new_resident_code=RESIDENTS[18]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FIELD",
            "new_resident_code",
        ),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    loop: LoopThread,
    server: NumberingServer,
    layout: PkiLayout,
    request_: Any,
    code: grpc.StatusCode,
    reason: str,
    field: str,
) -> None:
    method = {
        pb.IssueNumberRequest: "IssueNumber",
        pb.LookupResidentCodeRequest: "LookupResidentCode",
        pb.ChangeNumberRequest: "ChangeNumber",
        pb.LookupNumberRequest: "LookupNumber",
        pb.ChangeResidentCodeRequest: "ChangeResidentCode",
    }[type(request_)]
    got: Refusal = _as("registry", loop, server, layout)(
        lambda s: refused(getattr(s, method)(request_, timeout=CALL_TIMEOUT))
    )
    assert (got.code, got.reason, got.metadata) == (code, reason, {"field": field})
    assert field in got.message


# ------------------------------------------------------------------ everyone else

ALL_CALLS: list[tuple[str, Callable[[Stub], Awaitable[Any]]]] = [
    ("IssueNumber", lambda s: s.IssueNumber(pb.IssueNumberRequest(resident_code=RESIDENTS[0]))),
    (
        "ChangeNumber",
        lambda s: s.ChangeNumber(pb.ChangeNumberRequest(number="123456789018", reason="x")),
    ),
    (
        "ChangeResidentCode",
        lambda s: s.ChangeResidentCode(
            pb.ChangeResidentCodeRequest(
                old_resident_code=RESIDENTS[0], new_resident_code=RESIDENTS[5]
            )
        ),
    ),
    ("LookupNumber", lambda s: s.LookupNumber(pb.LookupNumberRequest(resident_code=RESIDENTS[0]))),
    (
        "LookupResidentCode",
        lambda s: s.LookupResidentCode(pb.LookupResidentCodeRequest(number="123456789018")),
    ),
    ("GetHistory", lambda s: s.GetHistory(pb.GetHistoryRequest(resident_code=RESIDENTS[0]))),
]
GROUP = {
    "IssueNumber": "issue",
    "ChangeNumber": "change",
    "ChangeResidentCode": "change",
    "LookupNumber": "lookup",
    "LookupResidentCode": "lookup",
    "GetHistory": "lookup",
}


async def _refused(call: Callable[[Stub], Awaitable[Any]], stub: Stub) -> Refusal:
    return await refused(call(stub))


@pytest.mark.parametrize(("party", "name"), [("agency", f"agency:{AGENCY}"), ("hub", "hub")])
def test_others_are_not_authorized(
    loop: LoopThread, server: NumberingServer, layout: PkiLayout, party: str, name: str
) -> None:
    caller = _as(party, loop, server, layout)
    for method, call in ALL_CALLS:
        got: Refusal = caller(functools.partial(_refused, call))
        assert (got.code, got.reason, got.metadata) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_NOT_AUTHORIZED",
            {"caller": name, "operation": GROUP[method]},
        ), method


def test_no_client_certificate_no_connection(
    loop: LoopThread, server: NumberingServer, layout: PkiLayout
) -> None:
    async def run() -> grpc.StatusCode:
        creds = grpc.ssl_channel_credentials(root_certificates=layout.ca_cert.read_bytes())
        target, options = f"127.0.0.1:{server.port}", peer_options("service:numbering")
        async with grpc.aio.secure_channel(target, creds, options) as channel:
            stub: Stub = numbering_pb2_grpc.NumberingServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await stub.LookupNumber(
                    pb.LookupNumberRequest(resident_code=RESIDENTS[0]), timeout=CALL_TIMEOUT
                )
            return exc.value.code()

    assert loop.run(run()) == grpc.StatusCode.UNAVAILABLE


def test_health_reports_the_service(
    loop: LoopThread, server: NumberingServer, layout: PkiLayout
) -> None:
    async def run() -> int:
        tls = layout.service("registry")
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{server.port}",
            tls.channel_credentials(),
            peer_options("service:numbering"),
        ) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=CALL_TIMEOUT
            )
            return int(reply.status)

    assert loop.run(run()) == health_pb2.HealthCheckResponse.SERVING


# ------------------------------------------------------------------ development port


def test_development_port_honours_the_party_header(
    loop: LoopThread, config: NumberingConfig, tmp_path: Path
) -> None:
    dev = replace(
        config,
        tls=None,
        insecure_development=True,
        database_url=db.sqlite_url(str(tmp_path / "dev.db")),
        database_schema=None,
    )
    started = loop.run(create_server(dev))
    try:

        def ask(party: str | None) -> Any:
            metadata = ((DEV_PARTY_HEADER, party),) if party else ()
            return _call(
                loop,
                started.port,
                None,
                lambda s: refused(
                    s.LookupNumber(
                        pb.LookupNumberRequest(resident_code=RESIDENTS[0]),
                        metadata=metadata,
                        timeout=CALL_TIMEOUT,
                    )
                ),
            )

        assert ask("service:registry").reason == "RESIDENT_HAS_NO_NUMBER"  # got past the check
        assert ask("hub").code == grpc.StatusCode.PERMISSION_DENIED
        assert ask("agency:141003").reason == "CALLER_NOT_AUTHORIZED"
        none = ask(None)
        assert (none.code, none.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "CLIENT_CERT_REQUIRED",
        )
    finally:
        loop.run(started.stop(0))


# ------------------------------------------------------------------ the registry's directory


def test_an_unreachable_registry_is_registry_unavailable(
    loop: LoopThread, config: NumberingConfig, layout: PkiLayout, tmp_path: Path
) -> None:
    down = replace(
        config,
        registry_endpoint=f"127.0.0.1:{free_port()}",
        database_url=db.sqlite_url(str(tmp_path / "down.db")),
        database_schema=None,
    )
    started = loop.run(create_server(down))
    try:
        got: Refusal = _call(
            loop,
            started.port,
            layout.service("registry"),
            lambda s: refused(
                s.IssueNumber(pb.IssueNumberRequest(resident_code=RESIDENTS[4]), timeout=5)
            ),
        )
    finally:
        loop.run(started.stop(0))
    assert (got.code, got.reason) == (grpc.StatusCode.UNAVAILABLE, "REGISTRY_UNAVAILABLE")
    assert "resident registry" in got.message


def test_the_directory_hands_on_the_callers_deadline(loop: LoopThread, layout: PkiLayout) -> None:
    """A stalled registry costs the caller its own deadline, not the directory's 30 s."""
    source = CodesOnly(RESIDENTS, delay=2.0)
    handle = loop.run(start_directory(source, layout.service("registry")))

    async def make() -> GrpcResidentDirectory:
        return GrpcResidentDirectory(
            f"127.0.0.1:{handle.port}", layout.service("numbering"), timeout=30.0
        )

    directory = loop.run(make())
    try:

        def ask(seconds_left: float) -> RenkeiError:
            token = call_deadline.set(time.monotonic() + seconds_left)
            try:
                with pytest.raises(RenkeiError) as exc:
                    directory.existing(RESIDENTS[:3])
            finally:
                call_deadline.reset(token)
            return exc.value

        started = time.monotonic()
        stalled = ask(0.3)
        assert time.monotonic() - started < 1.5
        assert (stalled.code, stalled.reason) == (
            grpc.StatusCode.UNAVAILABLE,
            "REGISTRY_UNAVAILABLE",
        )
        assert "DEADLINE_EXCEEDED" in stalled.message
        late = ask(0.01)  # less than the margin the numbering agency keeps back
        assert (late.code, late.reason) == (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "DEADLINE_TOO_SHORT",
        )
        source.delay = 0.0
        assert directory.existing([*RESIDENTS[:3], "99999999999"]) == set(RESIDENTS[:3])
        with pytest.raises(RuntimeError, match="worker thread"):
            loop.run(_on_the_loop(directory))
    finally:
        loop.run(directory.close())
        loop.run(handle.stop(0))


async def _on_the_loop(directory: GrpcResidentDirectory) -> bool:
    return directory.exists(RESIDENTS[0])


def test_stopping_while_the_registry_is_asked_does_not_hang(
    loop: LoopThread, config: NumberingConfig, layout: PkiLayout, tmp_path: Path
) -> None:
    """A worker blocked on the registry needs the loop: stop() must not block it."""
    source = CodesOnly(RESIDENTS, delay=1.0)
    handle = loop.run(start_directory(source, layout.service("registry")))
    slow = replace(
        config,
        registry_endpoint=f"127.0.0.1:{handle.port}",
        database_url=db.sqlite_url(str(tmp_path / "slow.db")),
        database_schema=None,
    )
    started = loop.run(create_server(slow))

    async def issue_then_stop() -> float:
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{started.port}", layout.service("registry").channel_credentials()
        ) as ch:
            stub: Stub = numbering_pb2_grpc.NumberingServiceStub(ch)
            call = asyncio.ensure_future(
                refused(
                    stub.IssueNumber(pb.IssueNumberRequest(resident_code=RESIDENTS[6]), timeout=5)
                )
            )
            for _ in range(500):  # until the registry is being asked (a thread of its own)
                if source.asked:
                    break
                await asyncio.sleep(0.01)
            begun = time.monotonic()
            await asyncio.wait_for(started.stop(0), 10)
            took = time.monotonic() - begun
            await call
            return took

    try:
        assert loop.run(issue_then_stop()) < 5
    finally:
        loop.run(handle.stop(0))
