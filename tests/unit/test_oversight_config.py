"""oversight.toml: every table read with strict types; mistakes name the file and key."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from oversight.anomalies import JST, working
from oversight.config import OversightConfig
from renkei.config_util import ConfigError
from renkei.tlog import checkpoint as tlog_checkpoint
from renkei.tlog import note

LOG_KEY = note.Ed25519Signer.generate("renkei.hub/log").verifier().verifier_key()
_W = note.Ed25519Signer.generate("witness")
WITNESS_KEY = tlog_checkpoint.CosignatureVerifier(
    "witness", _W.verifier().public_key
).verifier_key()

BASE = f"""
[tls]
ca_cert = "roots.pem"
cert = "oversight.crt"
key = "oversight.key"

[hub]
endpoint = "127.0.0.1:50051"
log_key = "{LOG_KEY}"
witness_keys = ["{WITNESS_KEY}"]
"""


def _load(tmp_path: Path, extra: str = "", base: str = BASE) -> OversightConfig:
    path = tmp_path / "oversight.toml"
    path.write_text(base + extra, encoding="utf-8")
    return OversightConfig.load(path)


def test_defaults(tmp_path: Path) -> None:
    c = _load(tmp_path)
    assert c.tls.cert == tmp_path / "oversight.crt"
    assert c.agencies == ()
    assert c.registry is None
    assert c.portal is None
    assert c.output_dir == tmp_path / "out"
    assert c.max_skew == timedelta(minutes=5)
    assert (c.working_hours.start, c.working_hours.end) == (time(8, 30), time(18, 0))
    assert c.working_hours.weekdays == frozenset({1, 2, 3, 4, 5})
    assert c.thresholds.repeat_count == 5
    assert c.hub.witness_verifiers()[0].name == "witness"


def test_everything(tmp_path: Path) -> None:
    c = _load(
        tmp_path,
        """
[[agency]]
id = "141003"
endpoint = "127.0.0.1:50061"

[[agency]]
id = "nenkin"
endpoint = "nenkin.example:443"

[registry]
endpoint = "127.0.0.1:50071"

[portal]
endpoint = "127.0.0.1:50207"

[output]
dir = "/var/oversight"

[reconcile]
max_skew_seconds = 30

[working_hours]
start = "09:00"
end = "17:15"
weekdays = [1, 2, 3, 4, 5, 6]
holidays = ["2027-01-11"]

[anomalies]
volume_ratio = 4
repeat_count = 3
repeat_window_seconds = 3600
denial_count = 10
off_hours = false
""",
    )
    assert [a.id for a in c.agencies] == ["141003", "nenkin"]
    assert c.agency("nenkin").party == "agency:nenkin"
    assert c.registry is not None
    assert c.registry.party == "service:registry"
    assert c.portal is not None
    assert (c.portal.endpoint, c.portal.party) == ("127.0.0.1:50207", "agency:portal")
    assert c.output_dir == Path("/var/oversight")
    assert c.max_skew == timedelta(seconds=30)
    assert c.working_hours.end == time(17, 15)
    assert c.working_hours.holidays == frozenset({date(2027, 1, 11)})
    assert c.thresholds.volume_ratio == 4.0
    assert c.thresholds.repeat_window == timedelta(hours=1)
    assert c.thresholds.off_hours is False


def test_working_hours_may_end_at_midnight(tmp_path: Path) -> None:
    """ "24:00" ends the day: every time of day is within 00:00-24:00 (the demo's hours)."""
    hours = _load(tmp_path, '[working_hours]\nstart = "00:00"\nend = "24:00"\n').working_hours
    assert hours.end == time.max
    assert working(datetime(2026, 12, 7, 23, 59, 59, tzinfo=JST), hours)
    assert working(datetime(2026, 12, 7, 0, 0, tzinfo=JST), hours)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[reconcile]\nmax_skew_seconds = "30"\n', "max_skew_seconds: must be a number"),
        ('[anomalies]\noff_hours = "false"\n', "off_hours: must be true or false"),
        ('[working_hours]\nstart = "9h"\n', "start: '9h' is not HH:MM"),
        ('[working_hours]\nstart = "18:00"\nend = "09:00"\n', "is not after start"),
        ("[working_hours]\nweekdays = [0]\n", "weekdays"),
        ('[[agency]]\nid = "a b"\nendpoint = "h:1"\n', "invalid agency id"),
        ('[[agency]]\nid = "x"\nendpoint = "nohost"\n', "is not host:port"),
        (
            '[[agency]]\nid = "x"\nendpoint = "h:1"\n[[agency]]\nid = "x"\nendpoint = "h:2"\n',
            "listed twice",
        ),
        ('[registry]\nendpoint = "h:1"\nparty = "nobody"\n', "party"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        _load(tmp_path, extra)
    assert str(tmp_path / "oversight.toml") in str(err.value)


def test_tls_and_witness_are_required(tmp_path: Path) -> None:
    without_tls = BASE[BASE.index("[hub]") :]
    with pytest.raises(ConfigError, match=r"\[tls\] is required"):
        _load(tmp_path, base=without_tls)
    no_witness = BASE.replace(f'witness_keys = ["{WITNESS_KEY}"]', "")
    with pytest.raises(ConfigError, match="witness_keys: none given"):
        _load(tmp_path, base=no_witness)
    assert _load(tmp_path, base=no_witness.replace("[hub]", "[hub]\nrequire_witness = false"))
    with pytest.raises(ConfigError, match="log_key"):
        _load(tmp_path, base=BASE.replace(LOG_KEY, "nonsense"))
