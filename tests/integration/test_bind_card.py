"""BindCard (issue 15): a portal binds a person's card through the real registry binding
server and ID issuer, and the hub turns the sealed ID code into the portal's link code."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from support.aio import LoopThread
from support.refusals import Refusal, refusal_of
from support.topology import CITY, Topology, start_topology

from ops.cards import init_card_ca, issue_deployment_cards
from ops.deploy import AgencySpec
from portal.config import PortalConfig
from registry_binding.bootstrap import RegistryBindingServer, create_server
from registry_binding.cards import CardCa, CardStore, id_bases, issue_cards, revoke_card
from registry_binding.config import RegistryBindingConfig
from renkei import card
from renkei.grpcutil.client import channel
from renkei.hub.v1 import hub_pb2
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc

PORTAL = "portal"


@dataclass
class Setup:
    topo: Topology
    registry: RegistryBindingServer
    ca: CardCa
    cards: dict[str, tuple[ec.EllipticCurvePrivateKey, x509.Certificate]]


@pytest.fixture(scope="module")
def setup(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("bind-card")
    topo = loop.run(
        start_topology(root, extra=[AgencySpec(PORTAL, "マイポータル", ("民間事業者",))]),
        timeout=120,
    )
    ca = init_card_ca(topo.layout.root)
    config = replace(
        RegistryBindingConfig.load(topo.layout.registry_config),
        id_issuer_endpoint=f"127.0.0.1:{topo.id_issuer.port}",
        listen="127.0.0.1:0",
        tls=topo.layout.pki.service("registry"),
    )
    assert config.card_ca_dir is not None
    assert config.card_ca_dir.resolve() == ca.files.folder.resolve()
    registry = loop.run(create_server(config))
    codes = [p.resident_code for p in topo.people[:3]]
    bases = id_bases(registry.source, codes)
    issued = issue_cards(registry.store, ca, codes, root / "cards", id_basis=bases)
    cards = {}
    for c in issued:
        key = serialization.load_pem_private_key(c.key_file.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert c.key_file.stat().st_mode & 0o777 == 0o600
        cards[c.resident_code] = (key, x509.load_pem_x509_certificate(c.cert_file.read_bytes()))
    yield Setup(topo, registry, ca, cards)
    loop.run(registry.stop(0))
    loop.run(topo.stop())


def _bind(
    loop: LoopThread,
    s: Setup,
    code: str,
    *,
    as_agency: str = PORTAL,
    audience: str = PORTAL,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> registry_pb2.BindCardResponse | Refusal:
    own_key, cert = s.cards[code]
    _, challenge = card.new_challenge(audience, datetime.now(UTC))
    request = registry_pb2.BindCardRequest(
        card_certificate=cert.public_bytes(serialization.Encoding.DER),
        challenge=challenge,
        signature=card.sign_challenge(key or own_key, challenge),
    )

    async def go() -> registry_pb2.BindCardResponse | Refusal:
        ch = channel(
            f"127.0.0.1:{s.registry.port}",
            s.topo.layout.pki.agency(as_agency),
            peer="service:registry",
        )
        async with ch:
            stub = registry_pb2_grpc.BindingServiceStub(ch)
            try:
                response: registry_pb2.BindCardResponse = await stub.BindCard(request, timeout=20)
                return response
            except grpc.aio.AioRpcError as err:
                return refusal_of(err)

    return loop.run(go(), timeout=60)


def _link_code(loop: LoopThread, s: Setup, sealed: bytes) -> str:
    async def go() -> str:
        async with s.topo.channel("hub", PORTAL) as ch:
            response = await s.topo.hub_stub(ch).IssueLinkCode(
                hub_pb2.IssueLinkCodeRequest(sealed_id_code=sealed), timeout=20
            )
            return str(response.link_code)

    return loop.run(go(), timeout=60)


def test_a_portal_binds_a_card_to_its_own_link_code(loop: LoopThread, setup: Setup) -> None:
    s = setup
    first, second = (p.resident_code for p in s.topo.people[:2])
    one = _bind(loop, s, first)
    assert isinstance(one, registry_pb2.BindCardResponse)
    assert one.sealed_id_code
    code = _link_code(loop, s, one.sealed_id_code)
    # The same card again: the same person, so the same link code (sealing is fresh each time).
    again = _bind(loop, s, first)
    assert isinstance(again, registry_pb2.BindCardResponse)
    assert again.sealed_id_code != one.sealed_id_code
    assert _link_code(loop, s, again.sealed_id_code) == code
    # Another person's card: another link code; and not the city's code for the person.
    other = _bind(loop, s, second)
    assert isinstance(other, registry_pb2.BindCardResponse)
    assert _link_code(loop, s, other.sealed_id_code) != code
    assert code != s.topo.link_code(CITY, 0)
    attempts = CardStore(s.registry.store).attempts()
    assert [a.outcome for a in attempts[-3:]] == ["bound"] * 3
    assert attempts[-3].caller == f"agency:{PORTAL}"
    assert attempts[-3].card_serial == str(s.cards[first][1].serial_number)


def test_refusals_name_their_reason_and_are_logged(loop: LoopThread, setup: Setup) -> None:
    s = setup
    code = s.topo.people[0].resident_code
    not_portal = _bind(loop, s, code, as_agency=CITY, audience=CITY)
    assert isinstance(not_portal, Refusal)
    assert (not_portal.code, not_portal.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "CALLER_NOT_PORTAL",
    )
    foreign = _bind(loop, s, code, audience=CITY)
    assert isinstance(foreign, Refusal)
    assert (foreign.code, foreign.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "CARD_CHALLENGE_FOREIGN",
    )
    forged = _bind(loop, s, code, key=ec.generate_private_key(ec.SECP256R1()))
    assert isinstance(forged, Refusal)
    assert forged.reason == "CARD_SIGNATURE_INVALID"
    log = CardStore(s.registry.store).attempts()
    assert [a.outcome for a in log[-3:]] == [
        "CALLER_NOT_PORTAL",
        "CARD_CHALLENGE_FOREIGN",
        "CARD_SIGNATURE_INVALID",
    ]


def test_a_revoked_or_unknown_card_is_refused(
    loop: LoopThread, setup: Setup, tmp_path: Path
) -> None:
    s = setup
    code = s.topo.people[2].resident_code
    assert isinstance(_bind(loop, s, code), registry_pb2.BindCardResponse)
    revoke_card(s.registry.store, s.ca, s.cards[code][1].serial_number)
    revoked = _bind(loop, s, code)
    assert isinstance(revoked, Refusal)
    assert (revoked.code, revoked.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CARD_REVOKED")
    # A card of this CA that the store does not know (its row lost, or issued elsewhere).
    key = ec.generate_private_key(ec.SECP256R1())
    stray = card.build_card_certificate(s.ca.cert, s.ca.key, key.public_key(), datetime.now(UTC))
    s.cards["stray"] = (key, stray)
    unknown = _bind(loop, s, "stray")
    assert isinstance(unknown, Refusal)
    assert unknown.reason == "CARD_CERTIFICATE_INVALID"


def test_the_cards_cli_issues_and_revokes(
    loop: LoopThread, setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ops.cli import main

    s = setup
    code = s.topo.people[1].resident_code  # a second card (a reissue): a serial of its own
    config = str(s.topo.layout.registry_config)
    out = tmp_path / "cards"
    assert (
        main(["cards", "issue", "--registry-config", config, "--resident", code, "--out", str(out)])
        == 0
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    _, serial, cert_file, key_file = line.split("\t")
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    assert str(cert.serial_number) == serial
    # No personal data in the certificate: not the resident code, not the name.
    pem = Path(cert_file).read_bytes()
    assert code.encode() not in pem
    assert code.encode() not in cert.public_bytes(serialization.Encoding.DER)
    s.cards[code] = (key, cert)
    assert isinstance(_bind(loop, s, code), registry_pb2.BindCardResponse)
    assert main(["cards", "revoke", "--registry-config", config, "--serial", serial]) == 0
    crl = x509.load_pem_x509_crl(s.ca.files.crl.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(int(serial)) is not None
    revoked = _bind(loop, s, code)
    assert isinstance(revoked, Refusal)
    assert revoked.reason == "CARD_REVOKED"
    assert main(["cards", "revoke", "--registry-config", config, "--serial", "12345"]) == 1
    # The demo's way: the deployment's CA (kept, not remade) and a card next to the notices.
    [demo] = issue_deployment_cards(s.topo.layout.root, [code], tmp_path / "notices")
    assert demo.key_file == tmp_path / "notices" / f"{code}.card-key.pem"
    assert CardCa.load(s.ca.files.folder).cert == s.ca.cert
    assert (
        main(
            [
                "cards",
                "issue",
                "--registry-config",
                config,
                "--resident",
                "99999999999",
                "--out",
                str(out),
            ]
        )
        == 1
    )


def _real_portal(s: Setup, tmp_path: Path) -> PortalConfig:
    from support.portal_env import CardAuthority, portal_config

    authority = CardAuthority(s.ca.files.folder, s.ca.cert, s.ca.key)
    config, _ = portal_config(tmp_path, authority, (None, "real"))
    return replace(
        config,
        tls=s.topo.layout.pki.agency(PORTAL),
        hub_endpoint=f"127.0.0.1:{s.topo.hub.port}",
        registry_endpoint=f"127.0.0.1:{s.registry.port}",
    )


def _sign_in(loop: LoopThread, s: Setup, config: PortalConfig, code: str) -> str:
    """Signs in at a portal started on ``config`` with ``code``'s card: the kept link code."""
    import base64
    import ssl

    import aiohttp

    from portal.bootstrap import start
    from portal.store import PortalStore
    from renkei import db

    key, cert = s.cards[code]
    server = loop.run(start(config))

    async def sign_in() -> tuple[int, str]:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE  # the test's self-signed web certificate
        base = f"https://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as client:
            async with client.post(base + "/api/signin/challenge", json={}, ssl=tls) as r:
                challenge = base64.b64decode((await r.json())["challenge"])
            signature = card.der_to_p1363(card.sign_challenge(key, challenge))
            body = {
                "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "challenge": base64.b64encode(challenge).decode(),
                "signature": base64.b64encode(signature).decode(),
            }
            async with client.post(base + "/api/signin", json=body, ssl=tls) as r:
                return r.status, await r.text()

    try:
        status, text = loop.run(sign_in(), timeout=60)
    finally:
        loop.run(server.stop())
    assert status == 200, text
    store = PortalStore(db.create_engine(config.database_url))
    kept = store.link_code(str(cert.serial_number))
    store.engine.dispose()
    assert kept is not None
    return kept


def test_the_portal_signs_a_person_in_through_the_real_registry_and_hub(
    loop: LoopThread, setup: Setup, tmp_path: Path
) -> None:
    s = setup
    code = s.topo.people[0].resident_code
    kept = _sign_in(loop, s, _real_portal(s, tmp_path), code)
    # The same link code the hub gives the portal for this person by any other sealing.
    again = _bind(loop, s, code)
    assert isinstance(again, registry_pb2.BindCardResponse)
    assert kept == _link_code(loop, s, again.sealed_id_code)


def test_a_rotation_of_the_portals_key_completes_and_the_next_sign_in_binds_under_it(
    loop: LoopThread, setup: Setup, tmp_path: Path
) -> None:
    from hub_server import keys
    from portal.rekey import rekey

    s = setup
    code = s.topo.people[0].resident_code
    config = _real_portal(s, tmp_path)
    assert _sign_in(loop, s, config, code).startswith("1.")
    admin = s.topo.hub.key_admin
    assert keys.rotate_link_key(admin.store, PORTAL, timedelta(days=30)) == 2
    s.topo.hub.hub.codec = loop.run(admin.codec())
    done = loop.run(rekey(config), timeout=30)
    # The portal held no code worth re-keying: it forgot them and completed at once.
    assert (done.forgotten, done.key_version) == (1, 2)
    assert s.topo.hub.hub.codec.current_version(PORTAL) == 2
    assert _sign_in(loop, s, config, code).startswith("2.")
