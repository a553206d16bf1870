"""`renkei bench frame`: one gRPC message as it travels in an HTTP/2 DATA frame, to a file.

A gRPC request body is a 1-byte compressed flag (0), a 4-byte big-endian
length and the serialized protobuf message. Tools written elsewhere (h2load,
nghttp, curl) can post such a file as the body of
``POST /<package>.<Service>/<Method>`` with ``content-type: application/grpc``
and ``te: trailers``.

    renkei bench frame --type renkei.hub.v1.ApproveRequest \\
        --json '{"provider_agency_id": "nenkin", ...}' --output approve.grpc
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

# Importing them registers every renkei message type in the default pool.
from renkei.comm.v1 import comm_pb2  # noqa: F401  # registers renkei.comm.v1 types
from renkei.hub.v1 import hub_pb2  # noqa: F401  # registers renkei.hub.v1 types

HEADER = struct.Struct(">BI")


def message(type_name: str, json_text: str) -> Message:
    """A message of ``type_name`` (e.g. ``renkei.hub.v1.ApproveRequest``) from its JSON form."""
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError:
        raise ValueError(f"--type: no message type {type_name!r} is known") from None
    msg = message_factory.GetMessageClass(descriptor)()
    try:
        json_format.Parse(json_text, msg)
    except json_format.ParseError as err:
        raise ValueError(f"--json: not a {type_name}: {err}") from None
    return msg


def encode(msg: Message) -> bytes:
    body = msg.SerializeToString()
    return HEADER.pack(0, len(body)) + body


def decode(frame: bytes) -> bytes:
    """The message bytes of one uncompressed frame; ValueError naming the byte offset."""
    if len(frame) < HEADER.size:
        raise ValueError(f"frame: {len(frame)} bytes, shorter than the 5-byte header")
    flag, length = HEADER.unpack_from(frame)
    if flag != 0:
        raise ValueError(f"frame: byte 0 is {flag}, only uncompressed frames (0) are written")
    if len(frame) != HEADER.size + length:
        raise ValueError(
            f"frame: bytes 1-4 give length {length} but {len(frame) - HEADER.size} follow"
        )
    return frame[HEADER.size :]


def main(args: argparse.Namespace) -> int:
    try:
        msg = message(args.type, args.json)
    except ValueError as err:
        print(err)
        return 2
    data = encode(msg)
    Path(args.output).write_bytes(data)
    print(f"{args.output}: {args.type}, {len(data)} bytes (5-byte header + {len(data) - 5})")
    return 0
