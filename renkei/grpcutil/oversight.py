"""The oversight body's services: admitted to its certificate only (R27).

The oversight body's certificate names it by the URI SAN
``renkei.pki.SAN_OVERSIGHT``; it is no hub, agency or service, so the
interceptor's caller (``renkei.grpcutil.caller``) is None for it and these
services read the URI from the verified connection themselves. grpc has
checked the certificate against the server's CAs before the call got here.
"""

from __future__ import annotations

from typing import Any

import grpc
from cryptography import x509

from renkei.errors import PermissionDenied
from renkei.pki import SAN_OVERSIGHT

Context = grpc.aio.ServicerContext[Any, Any]


def _values(auth: Any, key: str) -> list[bytes]:
    raw = auth.get(key)
    if raw is None:
        return []
    if isinstance(raw, bytes):
        return [raw]
    return [v for v in raw if isinstance(v, bytes)]


def _uris(context: Context) -> list[str]:
    auth = context.auth_context()
    if b"ssl" not in _values(auth, "transport_security_type"):
        return []
    pems = _values(auth, "x509_pem_cert")
    if not pems:  # TLS, but no client certificate
        return []
    uris = _values(auth, "peer_uri")
    if uris:
        return [u.decode("utf-8", "replace") for u in uris]
    try:  # grpc builds that do not list the URIs: the certificate itself
        san = x509.load_pem_x509_certificate(pems[0]).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except (ValueError, x509.ExtensionNotFound):
        return []
    return list(san.value.get_values_for_type(x509.UniformResourceIdentifier))


def is_oversight(context: Context) -> bool:
    """Did this call come with the oversight body's verified client certificate
    (its one renkei URI ``SAN_OVERSIGHT``)?"""
    uris = [u for u in _uris(context) if u.startswith("urn:renkei:")]
    return uris == [SAN_OVERSIGHT]


def require_oversight(context: Context) -> None:
    """PERMISSION_DENIED (CALLER_NOT_OVERSIGHT) for anyone but the oversight body."""
    if not is_oversight(context):
        raise PermissionDenied(
            "CALLER_NOT_OVERSIGHT", "only the oversight body's certificate may call this"
        )
