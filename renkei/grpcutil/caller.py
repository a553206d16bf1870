"""Who is calling: read once per call, from the certificate, by the server's interceptor.

A party is known by the URI SAN of its verified client certificate
(``renkei.pki.peer_identity``). On a server started with the explicit
insecure development flag (a plaintext port, never in a deployment) the
caller may instead name itself in one header, ``x-renkei-dev-party``:
``hub``, ``agency:<id>`` or ``service:<name>``. Servicers ask ``caller()``
or one of the ``require_*`` helpers; none reads certificates itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

import grpc

from renkei.errors import PermissionDenied, Unauthenticated
from renkei.pki import PeerIdentity, Trust, peer_identity, validate_agency_id

DEV_PARTY_HEADER = "x-renkei-dev-party"

_current: ContextVar[PeerIdentity | None] = ContextVar("renkei_caller", default=None)


def parse_party(text: str) -> PeerIdentity:
    """``"hub"``, ``"agency:<id>"``, ``"service:<name>"`` or ``"oversight"``; ValueError
    otherwise."""
    if text == "hub":
        return PeerIdentity("hub", "hub")
    if text == "oversight":
        return PeerIdentity("oversight", "oversight")
    kind, sep, name = text.partition(":")
    if not sep or kind not in ("agency", "service"):
        raise ValueError(f"party {text!r} is not 'hub', 'agency:<id>' or 'service:<name>'")
    validate_agency_id(name)
    return PeerIdentity("agency" if kind == "agency" else "service", name)


def callers(names: Iterable[str], where: str, *, hub_never: str) -> frozenset[str]:
    """An ``[authorize]`` list of parties, as labels; ConfigError naming ``where`` for a
    name that is no party, or for the hub (``hub_never`` says why it may not call)."""
    from renkei.config_util import ConfigError  # config, not the hot path

    parsed = set()
    for name in names:
        try:
            identity = parse_party(name)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
        if identity.kind == "hub":
            raise ConfigError(f"{where}: {hub_never}")
        parsed.add(label(identity))
    return frozenset(parsed)


def label(identity: PeerIdentity) -> str:
    """The party as ``parse_party`` reads it back: ``hub``, ``agency:<id>``, ``service:<name>``."""
    if identity.kind in ("hub", "oversight"):
        return identity.kind
    return f"{identity.kind}:{identity.party_id}"


def resolve(
    context: grpc.aio.ServicerContext[Any, Any],
    claimed: str | None,
    *,
    insecure_development: bool,
    trust: Trust | None = None,
) -> PeerIdentity | None:
    """The caller of this call: its certificate, else (development only) the header's claim.

    With ``trust``, a certificate from the wrong domain's CA names no one, and
    a revoked one raises UNAUTHENTICATED (CERTIFICATE_REVOKED).
    """
    identity = peer_identity(context, trust)
    if identity is None and insecure_development and claimed:
        try:
            identity = parse_party(claimed)
        except ValueError:
            identity = None
    return identity


def caller() -> PeerIdentity | None:
    """The current call's caller, as the interceptor found it (None: unknown)."""
    return _current.get()


def caller_was_read() -> bool:
    """Whether an interceptor set this call's caller (None included: it read no one)."""
    return _current.get(_UNREAD) is not _UNREAD


_UNREAD = object()


def set_caller(identity: PeerIdentity | None) -> Any:
    """For the interceptor (and tests): make ``identity`` this call's caller; a reset token."""
    return _current.set(identity)


def reset_caller(token: Any) -> None:
    _current.reset(token)


def require_caller(who: str = "this server") -> PeerIdentity:
    """The caller, or UNAUTHENTICATED (CLIENT_CERT_REQUIRED) when none could be read."""
    identity = _current.get()
    if identity is None:
        raise Unauthenticated(
            "CLIENT_CERT_REQUIRED", f"{who} knows callers only by client certificate"
        )
    return identity


def caller_agency() -> str | None:
    """The calling agency's id; None when the caller is unknown or not an agency."""
    identity = _current.get()
    return identity.party_id if identity is not None and identity.kind == "agency" else None


def require_hub(
    reason: str = "CALLER_NOT_HUB", message: str = "only the hub may call this"
) -> None:
    if require_caller().kind != "hub":
        raise PermissionDenied(reason, message)
