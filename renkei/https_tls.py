"""HTTPS for renkei's HTTP servers (the witness, the hub's tlog-tiles): client certs optional.

tlog-witness authenticates requests by the log's signature on the checkpoint
alone, and tlog-tiles readers are anybody, so by default a client needs no
certificate; one that presents a certificate must present a valid one of the
deployment's CAs. ``require_client_cert`` makes
one mandatory (then checked against the CAs' revocation lists too).
"""

from __future__ import annotations

import ssl

from renkei.pki import TlsFiles


def server_context(tls: TlsFiles, *, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca_cert))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.cert), str(tls.key))
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        for crl in tls.crls:
            context.load_verify_locations(cafile=str(crl))
        if tls.crls:
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    else:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
