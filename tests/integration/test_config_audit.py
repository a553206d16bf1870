"""``renkei audit configs``: no party's config or credentials open another party's store.

The deployment as ``renkei deploy init`` lays it out passes, on SQLite files
and on one PostgreSQL database with a schema each. A config edited to reach
another party's store or key is reported, whether or not the party's own
loader would take it (issue 13, finding 2: numbering.toml once held the
registry's whole database).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w

from numbering.config import NumberingConfig
from ops import audit
from ops.deploy import DEMO_AGENCIES, Layout, Settings, init_deployment, pick_endpoints
from renkei.config_util import ConfigError, load_toml

pytestmark = pytest.mark.dishonest  # docs/separation.md, "The dishonest-operator suite"

CITY = DEMO_AGENCIES[0].agency_id


@pytest.fixture
def layout(database: tuple[str | None, str], tmp_path: Path) -> Layout:
    url, prefix = database
    settings = Settings(database_url=url, schema_prefix=f"{prefix}{tmp_path.name[-6:]}".lower())
    return init_deployment(tmp_path / "d", DEMO_AGENCIES, pick_endpoints(DEMO_AGENCIES), settings)


def _edit(path: Path, section: str, **values: str) -> None:
    data = load_toml(path)
    data[section].update(values)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


def _register(layout: Layout) -> dict[str, str]:
    """The registry's own [registry] database keys, as numbering.toml would carry them."""
    registry = load_toml(layout.registry_config)["registry"]
    url = str(registry["database_url"]).replace("{config_dir}", "{config_dir}/../registry")
    found = {"registry_database_url": url}
    if "database_schema" in registry:
        found["registry_database_schema"] = str(registry["database_schema"])
    return found


def kinds_of(result: audit.ConfigAudit) -> set[tuple[str, str]]:
    return {(r.party, r.kind) for r in result.references}


def test_the_deployment_as_laid_out_passes(
    layout: Layout, database: tuple[str | None, str]
) -> None:
    result = audit.audit_configs(layout.root)
    assert result.breaches == {}
    assert set(result.configs) == {
        "hub",
        "id-issuer",
        "numbering",
        "registry",
        "witness",
        *(f"agency:{a.agency_id}" for a in DEMO_AGENCIES),
    }
    assert ("witness", audit.MASTER_KEY) in kinds_of(result)
    kinds = {(r.party, r.kind) for r in result.references}
    # Everything each party opens was found: stores, master keys, TLS keys.
    assert ("numbering", audit.DATABASE) in kinds
    assert ("numbering", audit.PRIVATE_KEY) in kinds
    assert ("numbering", audit.MASTER_KEY) not in kinds  # it holds none
    assert (f"agency:{CITY}", audit.MASTER_KEY) in kinds
    assert ("hub", audit.MASTER_KEY) in kinds
    assert sum(1 for r in result.references if r.party == "registry" and r.kind == "database") == 2
    # The numbering agency opens exactly one store: its own.
    assert [
        r.where for r in result.references if r.party == "numbering" and r.kind == "database"
    ] == ["numbering.toml: [numbering] database_url"]
    url, _ = database
    if url is not None:  # one login for all: said, not a breach
        assert "shares a PostgreSQL login" in result.notes["numbering"][0]


def test_numbering_holding_the_registrys_database_is_a_breach(layout: Layout) -> None:
    _edit(layout.numbering_config, "numbering", **_register(layout))
    result = audit.audit_configs(layout.root)
    assert set(result.breaches) == {"numbering"}
    (line,) = result.breaches["numbering"]
    assert line.startswith("numbering.toml: [numbering] registry_database_url opens registry's")
    # ... and the numbering agency's own loader refuses the file, in one line.
    with pytest.raises(ConfigError) as exc:
        NumberingConfig.load(layout.numbering_config)
    assert "must not hold the registry's store" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_a_comm_server_on_the_hubs_database_is_a_breach(layout: Layout) -> None:
    hub = load_toml(layout.hub_config)["hub"]
    comm = layout.comm_config(CITY)
    values = {
        "database_url": str(hub["database_url"]).replace("{config_dir}", "{config_dir}/../../hub")
    }
    if "database_schema" in hub:
        values["database_schema"] = str(hub["database_schema"])
    _edit(comm, "comm", **values)
    result = audit.audit_configs(layout.root)
    (line,) = result.breaches[f"agency:{CITY}"]
    if "database_schema" in hub:
        # One PostgreSQL URL and schema, named by both configs' own sections: both are
        # reported, as the audit cannot tell which of the two is the wrong one.
        assert set(result.breaches) == {"hub", f"agency:{CITY}"}
        assert re.match(r"comm.toml: \[comm\] database_url: the same database is hub's own", line)
    else:  # a SQLite file in the hub's folder
        assert set(result.breaches) == {f"agency:{CITY}"}
        assert re.match(r"comm.toml: \[comm\] database_url opens hub's database", line)


def test_another_partys_master_key_or_private_key_is_a_breach(layout: Layout) -> None:
    _edit(layout.comm_config(CITY), "comm", master_key="file:../../hub/master.key")
    tls = load_toml(layout.numbering_config)
    tls["tls"]["key"] = "../registry/tls/key.pem"
    layout.numbering_config.write_text(tomli_w.dumps(tls), encoding="utf-8")
    result = audit.audit_configs(layout.root)
    assert set(result.breaches) == {f"agency:{CITY}", "numbering"}
    assert "opens hub's master key" in result.breaches[f"agency:{CITY}"][0]
    assert "opens registry's private key" in result.breaches["numbering"][0]


def test_a_config_naming_a_cas_key_is_a_breach(layout: Layout) -> None:
    """Issue 13, finding 3: no party holds a CA's key, not even the hub the agencies' CA's."""
    tls = load_toml(layout.hub_config)
    tls["tls"]["key"] = "../pki/agencies-ca/ca.key"
    layout.hub_config.write_text(tomli_w.dumps(tls), encoding="utf-8")
    result = audit.audit_configs(layout.root)
    assert set(result.breaches) == {"hub"}
    assert "opens ca:agency's private key" in result.breaches["hub"][0]


def test_the_cli_runs_configs_alone_and_exits_1_on_a_breach(layout: Layout) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ops.cli", "audit", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    ok = run("configs", "--deployment", str(layout.root))
    assert ok.returncode == 0, ok.stderr
    assert "numbering" in ok.stdout
    _edit(layout.numbering_config, "numbering", **_register(layout))
    bad = run("configs", "--deployment", str(layout.root))
    assert bad.returncode == 1
    assert "BREACH" in bad.stdout
