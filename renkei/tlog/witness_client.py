"""The log's side of c2sp.org/tlog-witness: ask a witness to cosign a checkpoint.

    client = WitnessClient("https://127.0.0.1:8443", roots=Path("roots.pem"),
                           server_name="witness.service.renkei.internal")
    lines = await client.add_checkpoint(old_size, proof, signed_checkpoint)
    cosigned = checkpoint.add_cosignatures(signed_checkpoint, lines.decode())

A 409 is ``WitnessConflict(known_size)``: the caller sends again from that size
(with a proof from it); ``cosign`` does that once, for a log that keeps no note of
the witness's size or lost it. Any other refusal is ``WitnessRefused(status, message)``;
no answer in time, or no connection, ``WitnessUnavailable``. The witness's
certificate is checked against the roots and the witness's DNS name, not only
against the CA. Nothing is verified in the answer beyond its form: the caller
verifies the cosignature with the witness's vkey (``checkpoint.verify_checkpoint``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import aiohttp

from renkei.tlog import note
from renkei.tlog import witness_protocol as wire

DEFAULT_TIMEOUT_SECONDS = 5.0
# Cosignature lines are short; an answer past this is not one.
MAX_ANSWER_BYTES = 64 * 1024


class WitnessClientError(Exception):
    """A witness did not cosign; the subclass says why."""


class WitnessConflict(WitnessClientError):
    """409: the witness's latest size for the log is ``known_size``, not the old size sent."""

    def __init__(self, known_size: int) -> None:
        super().__init__(f"the witness's size is {known_size}")
        self.known_size = known_size


class WitnessRefused(WitnessClientError):
    """The witness answered with another refusal (400, 403, 404, 422, ...), or garbage."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"witness answered {status}: {message}")
        self.status = status
        self.message = message


class WitnessUnavailable(WitnessClientError):
    """No answer: connection refused or reset, TLS handshake failed, the timeout passed,
    or a server error (5xx); worth trying again later."""


def client_context(
    roots: Path, *, cert: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    """Trust ``roots`` only, check the host name, and present ``cert`` when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(roots))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


class WitnessClient:
    """One witness at ``url`` (its submission prefix); keeps its connections (keep-alive).

    ``server_name`` is the DNS name the witness's certificate must carry, for
    when ``url`` names an address (``renkei.pki.party_host("service:witness")``).
    Give ``ssl_context`` or ``roots`` (with ``cert``/``key`` to present a client
    certificate); an ``http://`` URL takes neither (development only).
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        roots: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        server_name: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._url = url.rstrip("/") + wire.ADD_CHECKPOINT_PATH
        if url.startswith("https://"):
            if ssl_context is None:
                if roots is None:
                    raise ValueError("an https witness needs ssl_context or roots")
                ssl_context = client_context(roots, cert=cert, key=key)
        elif url.startswith("http://"):
            if ssl_context is not None or roots is not None:
                raise ValueError("TLS settings given for a plain http:// witness URL")
        else:
            raise ValueError(f"witness URL {url!r}: want https://host:port[/prefix]")
        self._ssl = ssl_context
        self._server_name = server_name
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WitnessClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:  # made inside the running loop, on first use
            self._session = aiohttp.ClientSession(auto_decompress=False)
        return self._session

    async def add_checkpoint(
        self, old_size: int, proof: Sequence[bytes], signed_checkpoint: bytes
    ) -> bytes:
        """The witness's cosignature line(s) for ``signed_checkpoint``."""
        body = wire.format_request(old_size, proof, signed_checkpoint)
        session = self._open()
        try:
            async with asyncio.timeout(self._timeout):
                async with session.post(
                    self._url,
                    data=body,
                    ssl=self._ssl if self._ssl is not None else True,
                    server_hostname=self._server_name,
                    headers={"Content-Type": "text/plain"},
                ) as response:
                    status = response.status
                    media = response.content_type
                    answer = bytearray()
                    async for chunk in response.content.iter_any():
                        answer += chunk
                        if len(answer) > MAX_ANSWER_BYTES:
                            break
        except TimeoutError:
            raise WitnessUnavailable(f"no answer from {self._url} in {self._timeout} s") from None
        except (aiohttp.ClientError, OSError) as err:
            raise WitnessUnavailable(f"{self._url}: {type(err).__name__}: {err}") from None
        if len(answer) > MAX_ANSWER_BYTES:
            raise WitnessRefused(status, f"answer over {MAX_ANSWER_BYTES} bytes")
        if status == 409:
            if media != wire.SIZE_MEDIA_TYPE:
                raise WitnessRefused(status, f"409 with media type {media!r}, not a tlog size")
            try:
                known = wire.parse_size(bytes(answer))
            except wire.WireFormatError as err:
                raise WitnessRefused(status, f"409 body: {err}") from None
            raise WitnessConflict(known)
        if status >= 500:  # 503 while it shuts down: try again later, as with no answer
            raise WitnessUnavailable(
                f"{self._url} answered {status}: {answer.decode('utf-8', 'replace').strip()[:200]}"
            )
        if status != 200:
            raise WitnessRefused(status, answer.decode("utf-8", "replace").strip()[:500])
        try:
            note.parse_signature_lines(answer.decode("utf-8"))
        except (UnicodeDecodeError, note.MalformedNoteError) as err:
            raise WitnessRefused(status, f"200 without cosignature lines: {err}") from None
        return bytes(answer)


class WitnessAhead(WitnessClientError):
    """The witness has accepted a bigger tree than the one offered: the log went back."""

    def __init__(self, known_size: int, size: int) -> None:
        super().__init__(f"the witness has size {known_size}, above the checkpoint's {size}")
        self.known_size = known_size
        self.size = size


async def cosign(
    client: WitnessClient,
    signed_checkpoint: bytes,
    size: int,
    old_size: int,
    proof: Callable[[int, int], Sequence[bytes]],
) -> tuple[bytes, int]:
    """(cosignature lines, the old size that worked) for a checkpoint of ``size`` leaves.

    ``old_size`` is the size the log believes the witness has (0 if it does not
    know); ``proof(old, new)`` gives the consistency proof between two sizes
    (empty from 0). On a 409 it asks once more from the witness's own size; a
    witness ahead of the log is ``WitnessAhead``, a second 409 (another writer of
    the same log) ``WitnessConflict``.
    """

    def proof_from(old: int) -> list[bytes]:
        return [] if old in (0, size) else list(proof(old, size))

    try:
        return await client.add_checkpoint(
            old_size, proof_from(old_size), signed_checkpoint
        ), old_size
    except WitnessConflict as conflict:
        known = conflict.known_size
    if known > size:
        raise WitnessAhead(known, size)
    return await client.add_checkpoint(known, proof_from(known), signed_checkpoint), known
