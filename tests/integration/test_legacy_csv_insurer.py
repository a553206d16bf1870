"""The insurer's drop-folder stub as a process, with the CSV client (legacy-formats §3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.legacy import StubProcess, refused, run, start_stub
from support.polling import until

from comm_server.legacy import BatchLegacyClient, CsvDropboxClient, LegacyClient
from renkei.errors import DeadlineExceeded, InvalidArgument, NotFound, RenkeiError, Unavailable
from renkei.files import atomic_write

MEDICAL = "医療保険給付関係情報"
POLL = 0.05

# Written from docs/legacy-formats.md by hand: a batch of three requests and its answer.
GOLDEN_REQUEST = (
    "要求番号,被保険者番号,情報種別,診療年月\r\n"
    "R1,K-0001,医療保険給付関係情報,202603\r\n"
    "R2,K-0003,医療保険給付関係情報,\r\n"
    "R3,K-0001,年金給付関係情報,\r\n"
).encode("cp932")
GOLDEN_ANSWER = (
    "要求番号,結果,保険者番号,被保険者番号,給付種別,自己負担割合,給付額,診療年月\r\n"
    "R1,0,01140016,K-0001,01,30,12450,202603\r\n"
    "R2,1,,,,,,\r\n"
    "R3,9,,,,,,\r\n"
).encode("cp932")


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubProcess]:
    tmp = tmp_path_factory.mktemp("csv")
    process = start_stub(
        "csv_insurer", tmp, "--generated", "12", "--poll-interval", str(POLL), folder=tmp / "drop"
    )
    yield process
    process.stop()


def folder(stub: StubProcess) -> Path:
    assert stub.folder is not None
    return stub.folder


def set_faults(stub: StubProcess, **faults: Any) -> None:
    body = {"delay_ms": 0, "drop": False, "garbage": False, **faults}
    atomic_write(folder(stub) / "control" / "faults.json", json.dumps(body).encode())


@pytest.fixture(autouse=True)
def no_faults(stub: StubProcess) -> Iterator[None]:
    yield
    set_faults(stub)


def client(stub: StubProcess) -> CsvDropboxClient:
    return CsvDropboxClient(folder(stub), poll_interval=POLL)


def test_golden_batch(stub: StubProcess) -> None:
    async def scenario() -> bytes:
        atomic_write(folder(stub) / "inbox" / "golden-1.csv", GOLDEN_REQUEST)
        answer = folder(stub) / "outbox" / "golden-1.csv"
        # The insurer is another process: its files are all there is to watch.
        await until(answer.exists, timeout=10, every=POLL, what="the insurer's answer file")
        request = folder(stub) / "inbox" / "golden-1.csv"
        await until(
            lambda: not request.exists(),
            timeout=10,
            every=POLL,
            what="the insurer to take the request file away",
        )
        data = answer.read_bytes()
        answer.unlink()
        return data

    assert run(scenario) == GOLDEN_ANSWER


def test_unreadable_request_file_gets_a_9(stub: StubProcess) -> None:
    async def scenario() -> bytes:
        atomic_write(folder(stub) / "inbox" / "bad.csv", b"\x81\x00not,cp932\r\n")
        answer = folder(stub) / "outbox" / "bad.csv"
        await until(answer.exists, timeout=10, every=POLL, what="the insurer's answer file")
        data = answer.read_bytes()
        answer.unlink()
        return data

    assert run(scenario).endswith(b"\r\n,9,,,,,,\r\n")


def test_client_golden_request_file(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "outbox").mkdir()

    async def scenario() -> str:
        dropbox = CsvDropboxClient(tmp_path)
        ticket = await dropbox.submit("K-0001", MEDICAL, b"treatment_month=202603", timeout=5)
        assert await dropbox.collect(ticket, timeout=5) is None  # nobody answers here
        return ticket

    ticket = run(scenario)
    assert [p.name for p in (tmp_path / "inbox").iterdir()] == [f"{ticket}.csv"]
    assert (tmp_path / "inbox" / f"{ticket}.csv").read_bytes() == (
        "要求番号,被保険者番号,情報種別,診療年月\r\n"
        f"{ticket},K-0001,医療保険給付関係情報,202603\r\n"
    ).encode("cp932")


def test_lookups(stub: StubProcess) -> None:
    async def scenario() -> None:
        dropbox = client(stub)
        assert isinstance(dropbox, LegacyClient)
        assert isinstance(dropbox, BatchLegacyClient)
        latest = await dropbox.lookup("K-0001", MEDICAL, b"", timeout=5)
        assert latest.split(b",")[1:] == [
            b"0",
            b"01140016",
            b"K-0001",
            b"02",
            b"30",
            b"80100",
            b"202604",
        ]
        march = await dropbox.lookup("K-0001", MEDICAL, b"treatment_month=202603", timeout=5)
        assert march.endswith(b",0,01140016,K-0001,01,30,12450,202603")
        for person, query in [
            ("K-0003", b""),
            ("K-9999", b""),
            ("K-0001", b"treatment_month=202501"),
        ]:
            await refused(
                dropbox.lookup(person, MEDICAL, query, timeout=5), NotFound, "RECORD_NOT_FOUND"
            )
        await refused(
            dropbox.lookup("K-0001", "地方税関係情報", b"", timeout=5), NotFound, "RECORD_NOT_FOUND"
        )
        await dropbox.aclose()
        await refused(
            dropbox.lookup("K-0001", MEDICAL, b"", timeout=5), Unavailable, "LEGACY_UNAVAILABLE"
        )

    run(scenario)
    assert list((folder(stub) / "outbox").iterdir()) == []  # every answer collected


@pytest.mark.parametrize(
    ("person", "query", "key"),
    [
        ("K-0001", b"fiscal_year=2026", "fiscal_year"),
        ("K-0001", b"treatment_month=202613", "treatment_month"),
        ("K-0001", b"treatment_month=2026-03", "treatment_month"),
        ("K,0001", b"", None),
        ("K-0001\r\n", b"", None),
        ("K-0001🙂", b"", None),
    ],
)
def test_query_refusals(stub: StubProcess, person: str, query: bytes, key: str | None) -> None:
    async def scenario() -> None:
        error = await refused(
            client(stub).lookup(person, MEDICAL, query, timeout=5),
            InvalidArgument,
            "LEGACY_QUERY_INVALID",
        )
        if key is not None:
            assert error.metadata["key"] == key

    run(scenario)
    assert list((folder(stub) / "inbox").iterdir()) == []  # nothing half-sent


def test_answer_later_by_ticket(stub: StubProcess) -> None:
    set_faults(stub, delay_ms=800)

    async def scenario() -> None:
        dropbox = client(stub)
        error = await refused(
            dropbox.lookup("K-0002", MEDICAL, b"", timeout=0.2), DeadlineExceeded, "LEGACY_TIMEOUT"
        )
        ticket = error.metadata["ticket"]
        assert await dropbox.collect(ticket, timeout=5) is None  # not ready yet
        answer = await until(
            lambda: dropbox.collect(ticket, timeout=5),
            timeout=10,
            every=POLL,
            what="the late answer to be collectable",
        )
        assert answer == f"{ticket},0,01140016,K-0002,01,30,5230,202604".encode("cp932")
        # Collected once; then the ticket is gone.
        await refused(dropbox.collect(ticket, timeout=5), Unavailable, "LEGACY_UNAVAILABLE")
        # submit / collect directly.
        second = await dropbox.submit("K-0004", MEDICAL, b"", timeout=5)
        assert second != ticket
        assert await dropbox.collect(second, timeout=5) is None
        answer = await until(
            lambda: dropbox.collect(second, timeout=5),
            timeout=10,
            every=POLL,
            what="the second answer to be collectable",
        )
        assert answer.endswith(b",0,01140016,K-0004,01,10,3300,202602")

    run(scenario)


@pytest.mark.parametrize("ticket", ["", "../x", "a" * 65, "票"])
def test_collect_refuses_bad_tickets(stub: StubProcess, ticket: str) -> None:
    async def scenario() -> None:
        error = await refused(
            client(stub).collect(ticket, timeout=5), InvalidArgument, "LEGACY_QUERY_INVALID"
        )
        assert error.metadata["field"] == "ticket"

    run(scenario)


def test_list_persons_pages_to_the_end(stub: StubProcess) -> None:
    async def scenario() -> list[bytes]:
        dropbox = client(stub)
        seen: list[bytes] = []
        after = None
        while page := await dropbox.list_persons(after, 5, timeout=5):
            assert len(page) <= 5
            seen.extend(page)
            after = page[-1].split(b",")[0].decode("cp932")
        return seen

    seen = run(scenario)
    assert len(seen) == 16
    yamada = (
        "K-0001,山田\u3000太郎,ヤマダ\u3000タロウ,1958/05/14,男,"
        + "神奈川県横浜市中区港町１丁目２番３号"
    )
    assert seen[0] == yamada.encode("cp932")


@pytest.mark.parametrize(
    ("faults", "error", "reason"),
    [
        ({"delay_ms": 1500}, DeadlineExceeded, "LEGACY_TIMEOUT"),
        ({"drop": True}, Unavailable, "LEGACY_UNAVAILABLE"),
        ({"garbage": True}, Unavailable, "LEGACY_GARBAGE"),
    ],
)
def test_faults_and_recovery(
    stub: StubProcess, faults: dict[str, Any], error: type[RenkeiError], reason: str
) -> None:
    timeout = 0.3 if "delay_ms" in faults else 5.0

    async def scenario() -> None:
        dropbox = client(stub)
        set_faults(stub, **faults)
        await refused(dropbox.lookup("K-0001", MEDICAL, b"", timeout=timeout), error, reason)
        await refused(dropbox.list_persons(None, 5, timeout=timeout), error, reason)
        set_faults(stub)
        assert await dropbox.lookup("K-0001", MEDICAL, b"", timeout=5)

    run(scenario)


def test_missing_folder_is_unavailable(tmp_path: Path) -> None:
    async def scenario() -> None:
        dropbox = CsvDropboxClient(tmp_path / "nowhere")
        await refused(
            dropbox.lookup("K-0001", MEDICAL, b"", timeout=2), Unavailable, "LEGACY_UNAVAILABLE"
        )

    run(scenario)
