"""The JSON-lines legacy protocol, the record store, and the client's decoding (no sockets)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from comm_server.legacy import JsonlLegacyClient, LegacyClient, jsonl_client
from comm_server.legacy.jsonl_client import canonical_json, decode_response
from legacy_stubs.jsonl_records import protocol
from legacy_stubs.jsonl_records.protocol import (
    LookupRequest,
    PingRequest,
    ProtocolError,
    SetFaultsRequest,
    parse_request,
)
from legacy_stubs.jsonl_records.store import RecordStore, load_records, write_records
from renkei.errors import InvalidArgument, NotFound, Unavailable


def line(body: Any) -> bytes:
    return json.dumps(body).encode() + b"\n"


# --- requests ---------------------------------------------------------------


def test_parse_lookup() -> None:
    req = parse_request(
        line(
            {
                "op": "lookup",
                "id": "r1",
                "local_person_id": "P1",
                "info_kind": "tax",
                "query": "年度=2024",
            }
        )
    )
    assert req == LookupRequest("r1", "P1", "tax", "年度=2024")


def test_parse_lookup_without_query_means_empty() -> None:
    req = parse_request(line({"op": "lookup", "id": "r", "local_person_id": "P", "info_kind": "k"}))
    assert isinstance(req, LookupRequest)
    assert req.query == ""


def test_parse_control_requests() -> None:
    assert parse_request(line({"op": "ping", "id": "p"})) == PingRequest("p")
    assert parse_request(
        line({"op": "set_faults", "id": "f", "delay_ms": 5, "drop": True, "garbage": False})
    ) == SetFaultsRequest("f", 5, True, False)
    assert parse_request(line({"op": "set_faults", "id": "f"})) == SetFaultsRequest("f")


@pytest.mark.parametrize(
    ("raw", "request_id", "problem"),
    [
        (b"not json\n", None, "not JSON"),
        (b"\xff\xfe\n", None, "UTF-8"),
        (b"[1, 2]\n", None, "JSON object"),
        (line({"op": "lookup", "local_person_id": "P", "info_kind": "k"}), None, "id"),
        (line({"op": "lookup", "id": 7, "local_person_id": "P", "info_kind": "k"}), None, "id"),
        (line({"op": "lookup", "id": "r", "info_kind": "k"}), "r", "local_person_id"),
        (line({"op": "lookup", "id": "r", "local_person_id": "", "info_kind": "k"}), "r", "local"),
        (line({"op": "lookup", "id": "r", "local_person_id": "P"}), "r", "info_kind"),
        (
            line({"op": "lookup", "id": "r", "local_person_id": "P", "info_kind": "k", "query": 1}),
            "r",
            "query",
        ),
        (line({"op": "delete", "id": "r"}), "r", "unknown operation"),
        (line({"id": "r"}), "r", "unknown operation"),
        (line({"op": "set_faults", "id": "r", "delay_ms": -1}), "r", "delay_ms"),
        (line({"op": "set_faults", "id": "r", "delay_ms": 1.5}), "r", "delay_ms"),
        (line({"op": "set_faults", "id": "r", "delay_ms": True}), "r", "delay_ms"),
        (line({"op": "set_faults", "id": "r", "drop": "yes"}), "r", "drop"),
        (line({"op": "set_faults", "id": "r", "garbage": 1}), "r", "garbage"),
    ],
)
def test_malformed_requests(raw: bytes, request_id: str | None, problem: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request(raw)
    assert caught.value.request_id == request_id
    assert problem in caught.value.message


def test_oversize_line_is_refused() -> None:
    with pytest.raises(ProtocolError, match="longer than"):
        parse_request(b" " * protocol.MAX_LINE + b"{}\n")


def test_encode_is_one_line() -> None:
    data = protocol.ok_response("r", {"text": "a\nb", "名前": "山田"})
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 1
    assert json.loads(data) == {
        "id": "r",
        "status": "ok",
        "record": {"text": "a\nb", "名前": "山田"},
    }
    assert "山田".encode() in data  # UTF-8, not \u escapes


def test_request_line_round_trips() -> None:
    for req in (
        LookupRequest("r", "P", "k", "q"),
        SetFaultsRequest("f", delay_ms=3),
        SetFaultsRequest("f", drop=True, garbage=False),
        PingRequest("p"),
    ):
        assert parse_request(protocol.request_line(req)) == req


def test_error_response_may_have_null_id() -> None:
    assert json.loads(protocol.error_response(None, "bad")) == {
        "id": None,
        "status": "error",
        "message": "bad",
    }


def test_garbage_is_not_json() -> None:
    with pytest.raises(UnicodeDecodeError):
        json.loads(protocol.GARBAGE)


def test_client_and_stub_agree_on_the_line_limit() -> None:
    assert jsonl_client.MAX_LINE == protocol.MAX_LINE == 64 * 1024


# --- store ------------------------------------------------------------------


RECORDS: dict[str, dict[str, dict[str, Any]]] = {
    "P1": {"tax": {"year": 2024, "income": 5_000_000}, "address": {"pref": "東京都"}},
    "P2": {"tax": {"year": 2024, "income": 0}},
}


def test_store_lookup() -> None:
    store = RecordStore(RECORDS)
    assert store.lookup("P1", "tax") == {"year": 2024, "income": 5_000_000}
    assert store.lookup("P1", "pension") is None
    assert store.lookup("P9", "tax") is None
    assert store.has_person("P2")
    assert not store.has_person("P9")
    assert len(store) == 2


def test_store_lookup_returns_a_copy() -> None:
    store = RecordStore(RECORDS)
    record = store.lookup("P1", "tax")
    assert record is not None
    record["income"] = 1
    assert store.lookup("P1", "tax") == {"year": 2024, "income": 5_000_000}


def test_write_records_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    write_records(path, RECORDS)
    assert load_records(path) == RECORDS
    assert RecordStore.from_file(path).lookup("P1", "address") == {"pref": "東京都"}
    assert RecordStore(path).lookup("P2", "tax") == {"year": 2024, "income": 0}
    write_records(path, {"P3": {"k": {}}})  # overwrites in place
    assert load_records(path) == {"P3": {"k": {}}}
    assert [p.name for p in tmp_path.iterdir()] == ["records.json"]  # no temp files left


@pytest.mark.parametrize(
    "bad",
    [[], {"P": []}, {"P": {"k": "not an object"}}, {"": {"k": {}}}, {"P": {"": {}}}],
)
def test_store_rejects_wrong_shapes(bad: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be"):
        RecordStore(bad)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"bad\.json: .*must be"):
        RecordStore.from_file(path)


def test_store_rejects_non_json_file(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_bytes(b"{nope")
    with pytest.raises(ValueError, match="not a UTF-8 JSON"):
        load_records(path)


def test_write_records_validates_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    write_records(path, RECORDS)
    with pytest.raises(ValueError, match="record must be a JSON object"):
        write_records(path, {"P": {"k": 1}})  # type: ignore[dict-item]
    assert load_records(path) == RECORDS


# --- client decoding --------------------------------------------------------


def test_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "東京"}}) == (
        '{"a":{"c":"東京","d":[1,2]},"b":1}'.encode()
    )


def test_decode_ok() -> None:
    answer = protocol.ok_response("r", {"z": 1, "a": "名"})
    assert decode_response(answer, "r") == canonical_json({"a": "名", "z": 1})


def test_decode_not_found() -> None:
    with pytest.raises(NotFound) as caught:
        decode_response(protocol.not_found_response("r", "no person P1"), "r")
    assert caught.value.reason == "RECORD_NOT_FOUND"
    assert "P1" not in caught.value.message  # the legacy message is not passed on


@pytest.mark.parametrize("request_id", ["r", None])
def test_decode_error(request_id: str | None) -> None:
    with pytest.raises(Unavailable) as caught:
        decode_response(protocol.error_response(request_id, "bad"), "r")
    assert caught.value.reason == "LEGACY_ERROR"


@pytest.mark.parametrize(
    "answer",
    [
        protocol.GARBAGE,
        b"\xff\xff\n",
        b"[]\n",
        line({"id": "other", "status": "ok", "record": {}}),
        line({"id": "r", "status": "ok"}),
        line({"id": "r", "status": "ok", "record": [1]}),
        line({"id": "r", "status": "maybe"}),
        line({"status": "ok", "record": {}}),
    ],
)
def test_decode_garbage(answer: bytes) -> None:
    with pytest.raises(Unavailable) as caught:
        decode_response(answer, "r")
    assert caught.value.reason == "LEGACY_GARBAGE"
    assert repr(answer[:40]) in caught.value.message


def test_client_refuses_non_utf8_query_without_connecting() -> None:
    client = JsonlLegacyClient("127.0.0.1", 9)  # never contacted

    async def scenario() -> None:
        with pytest.raises(InvalidArgument) as caught:
            await client.lookup("P1", "tax", b"\xff\xfe", timeout=1.0)
        assert caught.value.reason == "LEGACY_QUERY_INVALID"
        await client.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_client_refuses_oversize_query() -> None:
    client = JsonlLegacyClient("127.0.0.1", 9)

    async def scenario() -> None:
        with pytest.raises(InvalidArgument) as caught:
            await client.lookup("P1", "tax", b"q" * protocol.MAX_LINE, timeout=1.0)
        assert caught.value.reason == "LEGACY_QUERY_INVALID"

    asyncio.run(asyncio.wait_for(scenario(), 5))


def test_client_implements_the_interface() -> None:
    assert isinstance(JsonlLegacyClient("127.0.0.1", 9), LegacyClient)
