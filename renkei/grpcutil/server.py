"""Starting and stopping an aio gRPC server with health, reflection and mTLS."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AioHealthServicer  # what health.aio names
from grpc_reflection.v1alpha import reflection

from renkei.grpcutil.interceptor import RpcInterceptor
from renkei.limits import MAX_MESSAGE_BYTES
from renkei.logs import event
from renkei.pki import TlsFiles

_log = logging.getLogger("renkei.server")

__all__ = ["MAX_MESSAGE_BYTES", "InsecurePortRefused", "ServerHandle", "start_server"]


class InsecurePortRefused(RuntimeError):
    pass


def require_tls(name: str, tls: TlsFiles | None, insecure_development: bool) -> None:
    """Refuse plaintext unless development was asked for explicitly (R30)."""
    if tls is None and not insecure_development:
        raise InsecurePortRefused(
            f"{name}: no TLS files configured; a plaintext port needs the explicit "
            "insecure development flag"
        )


@dataclass
class ServerHandle:
    server: grpc.aio.Server
    port: int
    health: AioHealthServicer
    services: tuple[str, ...]
    name: str

    async def stop(self, grace: float) -> None:
        """Graceful shutdown: health goes NOT_SERVING first, then in-flight calls get ``grace``."""
        await self.health.enter_graceful_shutdown()
        event(_log, "stopping", server=self.name, grace_s=grace)
        await self.server.stop(grace)


async def start_server(
    *,
    name: str,
    bind: str,
    tls: TlsFiles | None,
    register: Callable[[grpc.aio.Server], None],
    services: Sequence[str],
    insecure_development: bool = False,
    require_client_auth: bool = True,
) -> ServerHandle:
    """Serve ``register``'s services on ``bind`` (``host:port``, port 0 picks one).

    Without ``tls`` the port is plaintext, which is refused unless the caller
    explicitly asks for ``insecure_development``.
    """
    server = grpc.aio.server(
        # The caller's certificate is checked against the CA of its kind and the CRLs.
        interceptors=[
            RpcInterceptor(
                insecure_development=insecure_development,
                trust=tls.trust() if tls is not None else None,
            )
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    register(server)
    health_servicer = AioHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (*services, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    require_tls(name, tls, insecure_development)
    if tls is not None:
        port = server.add_secure_port(
            bind, tls.server_credentials(require_client_auth=require_client_auth)
        )
    else:
        port = server.add_insecure_port(bind)
    if port == 0:
        raise OSError(f"{name}: could not bind {bind}")
    await server.start()
    for service in ("", *services):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    event(_log, "serving", server=name, bind=bind, port=port, tls=tls is not None)
    return ServerHandle(server, port, health_servicer, tuple(services), name)
