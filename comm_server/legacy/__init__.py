"""Clients for the agencies' legacy systems, behind one interface.

A communication server holds one ``LegacyClient`` per legacy system, made by
``factory.open_legacy_client`` from the ``[legacy]`` config. One
implementation per transport (docs/legacy-formats.md):

* ``JsonlLegacyClient``: JSON lines over TCP (``kind = "jsonl"``);
* ``FixedTaxClient``: fixed-width cp932 records over TCP (``"fixed_tax"``);
* ``SoapPensionClient``: SOAP 1.1 over HTTP (``"soap"``);
* ``CsvDropboxClient``: CSV batches through a drop folder (``"csv_dropbox"``), a
  ``BatchLegacyClient`` (answer later, by ticket);
* ``JsonHttpClient``: JSON over HTTP (``"json_http"``).

Clients move the record as the legacy system wrote it and check the framing
(length prefix and header, SOAP envelope, JSON, cp932 CSV and its columns);
reading the fields is the mapper's job. ``query`` is UTF-8 ``key=value&...``;
each client documents the keys it maps onto its request (e.g. ``fiscal_year``
to 課税年度) and refuses any other key, naming it. All of them turn failures
into ``renkei.errors`` with these reasons:

* ``LEGACY_QUERY_INVALID`` (InvalidArgument): the query cannot be sent (unknown
  or ill-formed query key, a local id or limit the format cannot carry);
* ``LEGACY_TIMEOUT`` (DeadlineExceeded): no answer within the timeout (for the
  drop folder, the metadata carries the ``ticket`` to collect the answer later);
* ``LEGACY_UNAVAILABLE`` (Unavailable): cannot connect, or the connection
  dropped, or the batch system dropped the request;
* ``LEGACY_GARBAGE`` (Unavailable): an answer out of protocol, or one its parser
  refuses (``comm_server.mapping.documents``: a DTD, an odd encoding, nesting,
  size, long integers, lone surrogates) or fails on in any way: every client
  parses behind ``common.read_answer``, so no answer raises anything else;
* ``LEGACY_ERROR`` (Unavailable): the legacy system refused the request;
* ``RECORD_NOT_FOUND`` (NotFound): no such person or no record of that kind
  (also: an info kind this legacy system does not keep);
* ``LEGACY_LIST_UNSUPPORTED`` (FailedPrecondition): the JSON-lines system has
  no person file to list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class LegacyClient(Protocol):
    async def lookup(
        self,
        local_person_id: str,
        info_kind: str,
        query: bytes,
        *,
        timeout: float,
    ) -> bytes:
        """The record as the legacy system wrote it.

        fixed-width: the 256-byte record; SOAP: the ``<nk:Benefit>`` element
        serialized standalone with its ``xmlns:nk`` declaration; CSV: the one
        answer data line, cp932, without CRLF; JSON over HTTP: the ``record``
        object; JSON lines: the record. (JSON as canonical JSON: sorted keys,
        compact, UTF-8.) ``timeout`` (seconds) bounds the whole call.
        """
        ...

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        """One page of the person file: up to ``limit`` (1..1000) persons whose
        local id sorts after ``after`` (``None``: from the start); empty = the end.

        Same raw conventions: the fixed-width resident record, ``<nk:Person>``,
        a PERSONS data line, a person object.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; later calls fail with LEGACY_UNAVAILABLE."""
        ...


@runtime_checkable
class BatchLegacyClient(LegacyClient, Protocol):
    """A legacy system that answers later, by ticket (the CSV drop folder)."""

    async def submit(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> str:
        """Hand the request over; the ticket to collect its answer with."""
        ...

    async def collect(self, ticket: str, *, timeout: float) -> bytes | None:
        """The answer (as ``lookup`` would give it), or ``None`` if not ready yet."""
        ...


@runtime_checkable
class ManyLegacyClient(LegacyClient, Protocol):
    """A legacy system that looks many persons up in one call (bulk queries).

    Optional: a bulk query asks any other client once per person, concurrently.
    Worth it where the per-person call is cheap next to the task that would
    carry it (an in-memory or local table).
    """

    async def lookup_many(
        self, requests: Sequence[tuple[str, str, bytes]], *, timeout: float
    ) -> list[bytes | Exception]:
        """Per (local_person_id, info_kind, query), in order: what ``lookup`` would
        return, or the exception it would raise (that person's error alone)."""
        ...


from .csv_dropbox_client import CsvDropboxClient  # noqa: E402 - after the protocols they implement
from .fixed_tax_client import FixedTaxClient  # noqa: E402
from .json_http_client import JsonHttpClient  # noqa: E402
from .jsonl_client import JsonlLegacyClient  # noqa: E402
from .soap_client import SoapPensionClient  # noqa: E402

__all__ = [
    "BatchLegacyClient",
    "CsvDropboxClient",
    "FixedTaxClient",
    "JsonHttpClient",
    "JsonlLegacyClient",
    "LegacyClient",
    "ManyLegacyClient",
    "SoapPensionClient",
]
