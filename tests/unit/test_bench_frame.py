"""`renkei bench frame`: the gRPC length-prefixed message that h2load and nghttp post."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ops.bench import frame
from renkei.hub.v1 import hub_pb2

LAWFUL = {
    "provider_agency_id": "nenkin",
    "info_kind": "年金給付関係情報",
    "legal_basis_item": "二十七",
}


def test_a_frame_is_flag_length_and_message() -> None:
    msg = frame.message("renkei.hub.v1.ApproveRequest", json.dumps(LAWFUL))
    body = msg.SerializeToString()

    data = frame.encode(msg)

    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == len(body)
    assert data[5:] == body
    assert hub_pb2.ApproveRequest.FromString(frame.decode(data)).legal_basis_item == "二十七"


def test_an_unknown_type_is_named() -> None:
    with pytest.raises(ValueError, match=r"--type: no message type 'renkei.hub.v1.Nope'"):
        frame.message("renkei.hub.v1.Nope", "{}")


def test_json_that_does_not_fit_the_type_is_refused() -> None:
    with pytest.raises(ValueError, match=r"--json: not a renkei.hub.v1.ApproveRequest"):
        frame.message("renkei.hub.v1.ApproveRequest", '{"no_such_field": 1}')


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00\x00", "frame: 2 bytes, shorter than the 5-byte header"),
        (b"\x01\x00\x00\x00\x00", "frame: byte 0 is 1, only uncompressed frames"),
        (b"\x00\x00\x00\x00\x03ab", "frame: bytes 1-4 give length 3 but 2 follow"),
    ],
)
def test_decode_refuses_a_broken_frame(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        frame.decode(data)


def test_the_command_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "approve.grpc"
    args = argparse.Namespace(
        type="renkei.hub.v1.ApproveRequest", json=json.dumps(LAWFUL), output=out
    )

    assert frame.main(args) == 0

    assert hub_pb2.ApproveRequest.FromString(frame.decode(out.read_bytes())).provider_agency_id == (
        "nenkin"
    )
    assert "renkei.hub.v1.ApproveRequest" in capsys.readouterr().out


def test_the_command_refuses_bad_json_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(
        type="renkei.hub.v1.ApproveRequest", json="{", output=tmp_path / "x.grpc"
    )

    assert frame.main(args) == 2
    assert "--json: not a renkei.hub.v1.ApproveRequest" in capsys.readouterr().out
    assert not (tmp_path / "x.grpc").exists()
