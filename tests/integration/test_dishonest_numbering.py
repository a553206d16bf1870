"""A dishonest numbering operator, holding everything its folder holds, cannot open the register.

Issue 13, finding 2: numbering.toml once pointed at the registry's whole
database, so its operator could join ``conversion`` to ``residents`` and
print Number <-> name, birth date and address. Now the numbering agency's
folder (its config, its store) and its credentials (its TLS key; it has no
master key) name no store but its own, and what its certificate gets from
the registry is the existence of resident codes it sends: nothing about
anyone, and nothing from the binding service.

Caveat, on PostgreSQL: when every party logs in as one role (as these tests
and the demo do), schemas keep the stores apart by name only; the audit
notes it. A deployment gives each party its own role.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
import tomli_w
from support.aio import LoopThread
from support.refusals import Refusal, refused
from support.topology import Topology

from legacy_stubs.registry.store import RegistryStore
from numbering.config import NumberingConfig
from ops import audit
from ops.deploy import registry_engine
from renkei import db
from renkei.config_util import ConfigError, load_toml
from renkei.grpcutil.client import channel
from renkei.registry.v1 import registry_pb2, registry_pb2_grpc
from renkei.registry.v1 import resident_directory_pb2 as pb
from renkei.registry.v1 import resident_directory_pb2_grpc as pb_grpc

pytestmark = pytest.mark.dishonest  # docs/separation.md, "The dishonest-operator suite"

REGISTER_TABLES = {"residents", "history", "changes"}


def _folder_text(topo: Topology) -> bytes:
    """Every byte of the numbering agency's folder and of the files its config names."""
    config = topo.layout.numbering_config
    files = [p for p in config.parent.rglob("*") if p.is_file()]
    tls = NumberingConfig.load(config).tls
    assert tls is not None
    files += [tls.cert, tls.key, tls.ca_cert]
    return b"".join(p.read_bytes() for p in files)


def _register(topo: Topology) -> tuple[str, str | None, list[Any]]:
    """The register's URL, schema and a few residents (the oversight body's view)."""
    data = load_toml(topo.layout.registry_config)["registry"]
    store = RegistryStore(registry_engine(topo.layout))
    try:
        return str(data["database_url"]), data.get("database_schema"), store.sample(60)
    finally:
        store.engine.dispose()


def test_its_folder_names_no_store_but_its_own(topo: Topology) -> None:
    url, schema, residents = _register(topo)
    held = _folder_text(topo)
    config = load_toml(topo.layout.numbering_config)
    assert "master_key" not in config["numbering"]  # nothing wrapped: no key to steal either
    assert not {k for k in config["numbering"] if k.startswith("registry_database")}
    if url.startswith("sqlite"):
        assert b"registry.db" not in held
    else:
        assert schema is not None
        assert schema.encode() not in held
    # Nobody's four facts in anything it holds.
    for r in residents:
        assert r.name.kanji.encode() not in held
        assert r.address.text.encode() not in held
    # And the audit says so.
    result = audit.audit_configs(topo.layout.root)
    assert "numbering" not in result.breaches
    assert [r.kind for r in result.references if r.party == "numbering"] == [
        audit.DATABASE,
        audit.PRIVATE_KEY,
    ]


def test_its_own_database_url_opens_no_register(topo: Topology) -> None:
    """Every URL its config holds, opened: the numbering agency's own tables, nothing else."""
    config = NumberingConfig.load(topo.layout.numbering_config)
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    try:
        tables = set(sa.inspect(engine).get_table_names(schema=config.database_schema))
    finally:
        engine.dispose()
    assert {"numbers", "conversion"} <= tables
    assert not tables & REGISTER_TABLES


def test_its_certificate_gets_existence_of_codes_it_sends_and_nothing_else(
    loop: LoopThread, topo: Topology
) -> None:
    _, _, residents = _register(topo)
    held = set(topo.numbers)  # the codes in its conversion table
    others = [r.resident_code for r in residents if r.resident_code not in held][:5]
    tls = topo.layout.pki.service("numbering")
    target = f"127.0.0.1:{topo.registry.port}"

    async def run() -> tuple[pb.CheckResidentCodesResponse, Refusal, Refusal]:
        async with channel(target, tls, peer="service:registry") as ch:
            directory = pb_grpc.ResidentDirectoryServiceStub(ch)
            answer = await directory.CheckResidentCodes(
                pb.CheckResidentCodesRequest(resident_codes=sorted(held)), timeout=10
            )
            binding = registry_pb2_grpc.BindingServiceStub(ch)
            match = await refused(
                binding.MatchRecords(
                    registry_pb2.MatchRecordsRequest(
                        records=[
                            registry_pb2.Record(
                                local_person_id="x",
                                name=residents[0].name.kanji,
                                address=residents[0].address.text,
                                birth_date=residents[0].birth_date.isoformat(),
                                sex=residents[0].sex,
                            )
                        ]
                    ),
                    timeout=10,
                )
            )
            changes = await refused(
                binding.ListChanges(registry_pb2.ListChangesRequest(), timeout=10)
            )
            return answer, match, changes

    answer, match, changes = loop.run(run())
    assert set(answer.existing_resident_codes) == held
    assert [f.name for f, _ in answer.ListFields()] == ["existing_resident_codes"]
    raw = answer.SerializeToString()
    assert not any(code.encode() in raw for code in others)
    for r in residents:
        assert r.name.kanji.encode() not in raw
    # The binding service, which does hand out facts (to agencies), refuses it.
    for refusal in (match, changes):
        assert (refusal.code, refusal.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "CALLER_NOT_AGENCY",
        )


def test_a_config_given_the_registrys_database_is_refused(topo: Topology, tmp_path: Path) -> None:
    """Handing the agency the register's URL again is refused at start, and audited as a breach."""
    data = load_toml(topo.layout.numbering_config)
    url, schema, _ = _register(topo)
    data["numbering"]["registry_database_url"] = url.replace(
        "{config_dir}", str(topo.layout.registry_config.parent)
    )
    if schema is not None:
        data["numbering"]["registry_database_schema"] = schema
    edited = tmp_path / "numbering.toml"
    edited.write_text(tomli_w.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="must not hold the registry's store"):
        NumberingConfig.load(edited)
    refs = audit.references("numbering", edited)
    assert any("registry_database_url" in r.where for r in refs)
