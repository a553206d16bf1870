"""Debian's nginx as a gRPC relay hop written in C: config, start, readiness, stop.

The harness writes a config into a folder of its own and runs nginx in the
foreground (``daemon off``) as a child it stops itself. Nothing under /etc or
/var is read or written: pid file, error log and temp paths all live in that
folder, so it also runs as a non-root user.

Two uses:
- the benchmark's **nginx** path: mutual TLS on both sides, the driver's
  certificate checked against the deployment's CA, and nginx presenting the
  hub's certificate to the provider (``grpc_ssl_certificate``);
- a **TLS bridge** for h2load, which cannot present a client certificate:
  plaintext h2c on loopback in, mutual TLS with an agency's certificate out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ops.deploy import free_port
from ops.processes import ProcessGroup, Started, StartupError, tail
from renkei.pki import TlsFiles, party_host
from renkei.runner import write_port_file

# Keep-alive limits far above any bench run: nginx's defaults (1000 requests per
# connection) would otherwise reconnect, TLS handshake included, in mid-run.
_MANY = 10_000_000


def find_nginx(explicit: str | None = None) -> str | None:
    """The nginx binary: ``explicit`` if given, else on PATH or in /usr/sbin (Debian's place)."""
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def version(binary: str) -> str:
    """'1.22.1' from ``nginx -v``, which prints on stderr."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10, check=False)
    text = (out.stderr or out.stdout).strip()
    return text.rsplit("/", 1)[-1] if "/" in text else text


@dataclass(frozen=True)
class Hop:
    """One nginx server block: where it listens, how, and where it forwards."""

    listen_port: int
    upstream_port: int
    # What nginx presents to its upstream and trusts there (the upstream is a renkei server).
    upstream_tls: TlsFiles
    # What nginx presents to its clients, with client certificates required, or None
    # for plaintext h2c (the h2load bridge).
    server_tls: TlsFiles | None
    workers: int = 1
    # The party the upstream is: nginx checks its certificate for that party's name.
    upstream_peer: str = "hub"


def config_text(hop: Hop, folder: Path) -> str:
    if hop.server_tls is None:
        listen = f"listen 127.0.0.1:{hop.listen_port} http2;"
        server_tls = ""
    else:
        listen = f"listen 127.0.0.1:{hop.listen_port} ssl http2;"
        server_tls = f"""
        ssl_certificate {hop.server_tls.cert.resolve()};
        ssl_certificate_key {hop.server_tls.key.resolve()};
        ssl_client_certificate {hop.server_tls.ca_cert.resolve()};
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;"""
    up = hop.upstream_tls
    tmp = folder / "tmp"
    return f"""# Written by ops.bench.nginx; loopback only.
daemon off;
master_process on;
worker_processes {hop.workers};
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {tmp / "body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};
    upstream renkei_upstream {{
        server 127.0.0.1:{hop.upstream_port};
        keepalive 256;
        keepalive_requests {_MANY};
        keepalive_timeout 600s;
    }}
    server {{
        {listen}
        keepalive_requests {_MANY};
        keepalive_timeout 600s;
        http2_max_concurrent_streams 256;
        client_max_body_size 8m;{server_tls}
        location / {{
            grpc_pass grpcs://renkei_upstream;
            grpc_ssl_certificate {up.cert.resolve()};
            grpc_ssl_certificate_key {up.key.resolve()};
            grpc_ssl_trusted_certificate {up.ca_cert.resolve()};
            grpc_ssl_verify on;
            grpc_ssl_name {party_host(hop.upstream_peer)};
            grpc_ssl_server_name on;
            grpc_ssl_session_reuse on;
            grpc_read_timeout 60s;
        }}
    }}
}}
"""


def write_config(hop: Hop, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    path = folder / "nginx.conf"
    path.write_text(config_text(hop, folder.resolve()), encoding="utf-8")
    return path


def argv(binary: str, config: Path) -> list[str]:
    # -e: the error log before the config is read (else /var/log/nginx/error.log).
    folder = config.parent.resolve()
    return [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config.resolve())]


def wait_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    """Until something accepts on 127.0.0.1:port; RuntimeError if nginx exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nginx not listening on {port} after {timeout:.0f} s")


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (nginx's workers), from /proc."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


@contextmanager
def running(hop: Hop, folder: Path, binary: str) -> Iterator[Started]:
    """nginx serving ``hop`` until the block ends (then stopped, whatever happened)."""
    config = write_config(hop, folder)
    with ProcessGroup(folder) as group:
        child = group.start("nginx", argv(binary, config), port_file_arg=False)
        try:
            wait_listening(child.process, hop.listen_port)
        except RuntimeError as err:
            raise StartupError(f"{err}:\n{tail(folder / 'error.log')}") from None
        yield child


def bridge_main(args: argparse.Namespace) -> int:
    """`renkei bench bridge`: an h2c -> mutual-TLS bridge for h2load, until SIGINT/SIGTERM."""
    binary = find_nginx(args.nginx)
    if binary is None:
        print("nginx not found (apt-get install nginx-light)")
        return 1
    hop = Hop(
        listen_port=args.port or free_port(),
        upstream_port=args.upstream_port,
        upstream_tls=TlsFiles(args.ca, args.cert, args.key),
        server_tls=None,
        upstream_peer=args.peer,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    folder = Path(tempfile.mkdtemp(prefix="renkei-bridge-"))
    try:
        with running(hop, folder, binary) as child:
            if args.port_file is not None:
                write_port_file(args.port_file, hop.listen_port)
            print(
                f"h2c on 127.0.0.1:{hop.listen_port} -> mutual TLS to"
                f" 127.0.0.1:{hop.upstream_port} as {args.cert}; Ctrl-C stops it",
                flush=True,
            )
            while not stop.wait(0.2):
                if child.process.poll() is not None:
                    print(f"nginx exited with {child.process.returncode}:\n{tail(child.log_path)}")
                    return 1
    except StartupError as err:
        print(err)
        return 1
    finally:
        if args.port_file is not None:
            args.port_file.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
    return 0
