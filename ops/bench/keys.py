"""Benchmarks of the key lifecycle (``make bench-keys``): translations, and re-keying 1M rows.

- Code translations per second: requester link code -> ID code -> provider
  link code, in process (what the hub does per exchange, without the RPC).
- What issue 13's exchange certificates add per linkage at each communication
  server, in process: the requester signs its sealed query and checks the
  provider's certificate (cached) and answer signature; the provider checks the
  requester's certificate (cached) and query signature and signs its answer.
  HPKE's seal and open, which were there before, are shown for scale.
- Re-keying a correspondence table: ``rows`` link codes in an agency's SQLite
  store, rotated and re-keyed by the real job against a real hub on loopback
  (mutual TLS), batch by batch, then promoted.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from comm_server.binding.rekey import rekey
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.store import correspondence, open_store
from hub_server import bootstrap as hub_bootstrap
from hub_server import keys as hub_keys
from hub_server.config import HubConfig
from ops.deploy import DEMO_AGENCIES, Endpoints, init_deployment
from renkei import codes

CITY, PENSION = DEMO_AGENCIES[0].agency_id, DEMO_AGENCIES[1].agency_id


def translations_per_second(count: int = 200_000) -> float:
    ring = {a: codes.AgencyKeys(1, {1: codes.new_key()}) for a in (CITY, PENSION)}
    codec = codes.LinkCodec(ring)
    issuer = codes.IdCodeIssuer({1: codes.new_key()}, 1)
    rng = random.Random(7)
    links = [codec.encode(CITY, issuer.issue(f"{rng.randrange(10**11):011d}")) for _ in range(1000)]
    started = time.perf_counter()
    for i in range(count):
        id_code, _ = codec.decode(CITY, links[i % 1000])
        codec.encode(PENSION, id_code)
    return count / (time.perf_counter() - started)


def exchange_signing_us(root: Path, count: int = 5000) -> dict[str, float]:
    """Microseconds per linkage of the exchange-certificate work at each side."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

    from comm_server.seal_info import answer_info, query_info
    from ops.pki import init_pki, sign_exchange_csr
    from renkei import exchange_cert, sealing
    from renkei.exchange_cert import ExchangeVerifier

    pki = init_pki(root / "exchange-pki", [CITY, PENSION])
    ca = pki.agencies_ca.load()
    own: dict[str, tuple[ed25519.Ed25519PrivateKey, x25519.X25519PrivateKey]] = {}
    ders: dict[str, bytes] = {}
    for agency in (CITY, PENSION):
        signing, seal_key = ed25519.Ed25519PrivateKey.generate(), sealing.generate_private_key()
        csr = exchange_cert.build_csr(agency, signing, sealing.public_key_bytes(seal_key))
        cert = sign_exchange_csr(ca.key, ca.cert, csr, agency)
        own[agency] = (signing, seal_key)
        ders[agency] = exchange_cert.certificate_der(cert.public_bytes(serialization.Encoding.PEM))
    kind, item = "年金給付関係情報", "二十七"
    requester_peers, provider_peers = ExchangeVerifier(ca.cert), ExchangeVerifier(ca.cert)
    city_sign, city_seal = own[CITY]
    pension_sign, pension_seal = own[PENSION]
    timings = {"requester": 0.0, "provider": 0.0, "hpke": 0.0}
    for serial in range(1, count + 1):
        t0 = time.perf_counter()
        provider = requester_peers.peer(ders[PENSION], PENSION)
        t1 = time.perf_counter()
        sealed_query = sealing.seal(
            b"q" * 64, provider.sealing_key, query_info(CITY, PENSION, kind, item)
        )
        t2 = time.perf_counter()
        query_sig = city_sign.sign(
            exchange_cert.query_context(CITY, PENSION, kind, item, sealed_query)
        )
        # -- at the provider
        t3 = time.perf_counter()
        requester = provider_peers.peer(ders[CITY], CITY)
        exchange_cert.check_signature(
            requester,
            query_sig,
            exchange_cert.query_context(CITY, PENSION, kind, item, sealed_query),
            reason="QUERY_SIGNATURE_INVALID",
            field="query_signature",
        )
        t4 = time.perf_counter()
        sealing.open_sealed(
            sealed_query, pension_seal, query_info(CITY, PENSION, kind, item), field="q"
        )
        sealed_answer = sealing.seal(
            b"a" * 256, requester.sealing_key, answer_info(serial, CITY, PENSION, kind, item)
        )
        t5 = time.perf_counter()
        answer_sig = pension_sign.sign(
            exchange_cert.answer_context(serial, CITY, PENSION, kind, item, sealed_answer)
        )
        # -- back at the requester
        t6 = time.perf_counter()
        exchange_cert.check_signature(
            provider,
            answer_sig,
            exchange_cert.answer_context(serial, CITY, PENSION, kind, item, sealed_answer),
            reason="ANSWER_SIGNATURE_INVALID",
            field="answer_signature",
        )
        t7 = time.perf_counter()
        sealing.open_sealed(
            sealed_answer, city_seal, answer_info(serial, CITY, PENSION, kind, item), field="a"
        )
        t8 = time.perf_counter()
        timings["requester"] += (t1 - t0) + (t3 - t2) + (t7 - t6)
        timings["provider"] += (t4 - t3) + (t6 - t5)
        timings["hpke"] += (t2 - t1) + (t5 - t4) + (t8 - t7)
    return {k: v * 1e6 / count for k, v in timings.items()}


async def rekey_seconds(root: Path, rows: int, batch: int) -> dict[str, float]:
    ids = [a.agency_id for a in DEMO_AGENCIES]
    layout = init_deployment(
        root, DEMO_AGENCIES, Endpoints(0, dict.fromkeys(ids, 0), dict.fromkeys(ids, 1))
    )
    # No ID issuer runs here: this measures a link-code key rotation.
    hub = await hub_bootstrap.create_server(
        replace(HubConfig.load(layout.hub_config), id_issuer_endpoint=None)
    )
    config = CommConfig.load(layout.comm_config(CITY))
    store = open_store(config)
    client = HubClient(f"127.0.0.1:{hub.port}", config.tls)
    try:
        codec = hub.hub.codec
        issuer = codes.IdCodeIssuer({1: codes.new_key()}, 1)
        started = time.perf_counter()
        now = datetime.now(UTC)
        with store.store.engine.begin() as conn:
            for start in range(0, rows, 20_000):
                conn.execute(
                    correspondence.insert(),
                    [
                        {
                            "local_person_id": f"L{n:08d}",
                            "link_code": codec.encode(CITY, issuer.issue(f"{n:011d}")),
                            "key_version": 1,
                            "bound_at": now,
                        }
                        for n in range(start, min(rows, start + 20_000))
                    ],
                )
        load = time.perf_counter() - started
        hub_keys.rotate_link_key(hub.key_admin.store, CITY, timedelta(days=30))
        hub.hub.codec = await hub.key_admin.codec()
        started = time.perf_counter()
        report = await rekey(store, client, batch=batch)
        elapsed = time.perf_counter() - started
        if not report.completed:
            raise RuntimeError(f"re-key refused: {report.refused}")
        with store.store.engine.connect() as conn:
            left = conn.execute(
                sa.select(sa.func.count()).where(correspondence.c.key_version != 2)
            ).scalar()
        if left or report.promoted != rows:
            raise RuntimeError(f"re-key incomplete: {left} rows left, {report.promoted} promoted")
        return {"rows": rows, "load_s": load, "rekey_s": elapsed, "rows_per_s": rows / elapsed}
    finally:
        await client.close()
        store.close()
        await hub.stop(0)


def main(state_dir: Path, rows: int = 1_000_000, batch: int = 1000) -> int:
    import shutil

    console = Console(width=120)
    if state_dir.exists():
        shutil.rmtree(state_dir)
    tps = translations_per_second()
    signing = exchange_signing_us(state_dir)
    result = asyncio.run(rekey_seconds(state_dir, rows, batch))
    table = Table("measure", "value", title=f"key lifecycle ({os.cpu_count()} cores)")
    table.add_row("code translations / s (link -> ID -> link, in process)", f"{tps:,.0f}")
    table.add_row(
        "exchange certificates + signatures, requester (µs per linkage)",
        f"{signing['requester']:.0f}",
    )
    table.add_row(
        "exchange certificates + signatures, provider (µs per linkage)",
        f"{signing['provider']:.0f}",
    )
    table.add_row(
        "HPKE seal and open, both sides, for scale (µs per linkage)", f"{signing['hpke']:.0f}"
    )
    table.add_row(f"re-key {rows:,} rows: table load (s)", f"{result['load_s']:.1f}")
    table.add_row(f"re-key {rows:,} rows: job incl. promote (s)", f"{result['rekey_s']:.1f}")
    table.add_row("re-key rows / s", f"{result['rows_per_s']:,.0f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path("bench-state/keys"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    options = parser.parse_args()
    raise SystemExit(main(options.state_dir, options.rows, options.batch))
