"""renkei load's scenario files, targets' needs and the command's refusals."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ops.load import cli, scenario, targets
from ops.load.endpoints import is_loopback, parse_overrides
from ops.load.stats import Expectation

LAWFUL = '[[lawful]]\nrequester = "141003"\nprovider = "nenkin"\ninfo_kind = "k"\nitem = "i"\n'


def parse(text: str) -> scenario.Scenario:
    import tomllib

    return scenario.parse(tomllib.loads(text), "s.toml")


@pytest.mark.parametrize("name", ["demo.toml", "numbering.toml"])
def test_the_bundled_scenarios_load(name: str) -> None:
    mix = scenario.load(scenario.bundled(name))
    assert mix.lawful
    assert mix.unlawful


def test_the_demo_scenario_suits_the_hub_and_comm_targets() -> None:
    mix = scenario.load(scenario.bundled("demo.toml"))
    targets.check(targets.target("hub"), mix)
    targets.check(targets.target("comm"), mix)
    assert mix.callers() == ["141003", "mhlw", "nenkin"]


def test_the_picker_keeps_the_shares_and_is_deterministic() -> None:
    mix = parse(
        "[mix]\nunlawful = 0.2\nmalformed = 0.1\n"
        + LAWFUL
        + 'persons = ["a", "b"]\n'
        + '[[unlawful]]\nrequester = "nenkin"\nexpect_reason = "R"\n'
    )
    picker = mix.picker(0)
    picks = [picker() for _ in range(20_000)]
    shares = Counter(p.klass for p in picks)

    assert shares["unlawful"] / 20_000 == pytest.approx(0.2, abs=0.015)
    assert shares["malformed"] / 20_000 == pytest.approx(0.1, abs=0.015)
    assert {p.person for p in picks if p.klass != "unlawful"} == {"a", "b"}
    assert {p.expect for p in picks if p.klass == "unlawful"} == {Expectation(None, "R")}
    assert {p.expect for p in picks if p.klass == "malformed"} == {
        Expectation("INVALID_ARGUMENT", None)
    }
    again, other = mix.picker(0), mix.picker(1)
    assert picks[:50] == [again() for _ in range(50)]
    assert picks[:50] != [other() for _ in range(50)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "s.toml: at least one [[lawful]] entry is needed"),
        ("colour = 1\n" + LAWFUL, "s.toml: unknown keys ['colour']"),
        (
            "[mix]\nunlawful = 0.5\n" + LAWFUL,
            "s.toml: [mix] unlawful > 0 but no [[unlawful]] entries",
        ),
        (
            "[mix]\nmalformed = 1.5\n" + LAWFUL,
            "s.toml: [mix] malformed must be a share between 0 and 1, got 1.5",
        ),
        (
            "[mix]\nunlawful = 0.6\nmalformed = 0.6\n"
            + LAWFUL
            + '[[unlawful]]\nrequester = "x"\nexpect_code = "NOT_FOUND"\n',
            "s.toml: [mix] unlawful + malformed is more than 1",
        ),
        ('[[lawful]]\nprovider = "p"\n', "s.toml: [[lawful]] #1: requester is required"),
        (LAWFUL + "weight = 0\n", "s.toml: [[lawful]] #1: weight must be a positive number, got 0"),
        (
            LAWFUL + "persons = [1]\n",
            "s.toml: [[lawful]] #1: persons must be a list of non-empty strings",
        ),
        (
            LAWFUL + 'expect_reason = "R"\n',
            "s.toml: [[lawful]] #1: unknown keys ['expect_reason']; allowed: ['info_kind',"
            " 'item', 'persons', 'provider', 'requester', 'weight']",
        ),
        (
            LAWFUL + '[[unlawful]]\nrequester = "x"\n',
            "s.toml: [[unlawful]] #1: an unlawful request needs expect_reason or expect_code",
        ),
        (
            LAWFUL + '[[unlawful]]\nrequester = "x"\nexpect_code = "OK"\n',
            "s.toml: [[unlawful]] #1: expect_code OK is not a refusal",
        ),
    ],
)
def test_bad_scenarios_are_refused_naming_the_entry_and_field(text: str, message: str) -> None:
    with pytest.raises(scenario.ScenarioError, match=f"^{re.escape(message)}$"):
        parse(text)


def test_a_target_refuses_a_scenario_missing_what_it_needs() -> None:
    mix = parse(LAWFUL)  # no persons
    targets.check(targets.target("hub"), mix)
    with pytest.raises(
        scenario.ScenarioError, match=r"^s\.toml: \[\[lawful\]\] #1: the comm target needs persons$"
    ):
        targets.check(targets.target("comm"), mix)


def test_endpoint_overrides_and_loopback() -> None:
    assert parse_overrides(["hub=127.0.0.1:1", "[::1]:2"]) == {"hub": "127.0.0.1:1", "*": "[::1]:2"}
    assert is_loopback("127.0.0.1:50051")
    assert is_loopback("127.3.4.5:1")
    assert is_loopback("[::1]:50051")
    assert is_loopback("localhost:50051")
    assert not is_loopback("192.0.2.10:50051")
    assert not is_loopback("0.0.0.0:50051")


def _certs(tmp_path: Path) -> list[str]:
    for name in ("ca.pem", "me.pem", "me.key"):
        (tmp_path / name).write_text("not used before the refusal\n")
    return [
        "--ca",
        str(tmp_path / "ca.pem"),
        "--cert",
        str(tmp_path / "me.pem"),
        "--key",
        str(tmp_path / "me.key"),
    ]


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, " ".join(capsys.readouterr().err.split())


COMMON = ["--target", "hub", "--scenario", str(scenario.bundled("demo.toml")), "--requests", "5"]


def test_a_remote_target_is_refused_without_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main(capsys, *COMMON, *_certs(tmp_path), "--endpoint", "192.0.2.10:50051")
    assert code == 2
    assert err == (
        "renkei load: 192.0.2.10:50051 is not a loopback address; a load test is an overload"
        " with real certificates, so it needs --allow-remote (see --help)"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--mode", "open"], "renkei load: --mode open needs --rate"),
        (
            ["--rate", "5"],
            "renkei load: --rate is for --mode open; closed loop takes --concurrency",
        ),
        (["--max-seconds", "99999"], "renkei load: --max-seconds must be in (0, 3600]"),
        (["--warmup", "-1"], "renkei load: --warmup cannot be negative"),
    ],
)
def test_bad_plans_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, err = _main(capsys, *COMMON, *_certs(tmp_path), "--endpoint", "127.0.0.1:1", *extra)
    assert (code, err) == (2, message)


def test_half_an_explicit_identity_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main(capsys, *COMMON, "--ca", str(tmp_path / "ca.pem"))
    assert (code, err) == (2, "renkei load: --ca, --cert and --key go together")


def test_no_address_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = _main(capsys, *COMMON, *_certs(tmp_path))
    assert (code, err) == (2, "renkei load: no address for hub: give --deployment or --endpoint")


def test_a_deployment_with_port_zero_needs_endpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = tmp_path / "hub" / "hub.toml"
    hub.parent.mkdir()
    hub.write_text('[hub]\nlisten = "127.0.0.1:0"\n')
    code, err = _main(capsys, *COMMON, "--deployment", str(tmp_path))
    assert code == 2
    assert err == (
        f"renkei load: {hub}: listen '127.0.0.1:0' has no fixed port;"
        " give --endpoint NAME=HOST:PORT"
    )


def test_nothing_listening_is_reported_not_hung(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    from ops.load import runner

    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", 0.5)
    from ops.deploy import free_port

    port = free_port()
    code, err = _main(
        capsys, *COMMON, *_certs(tmp_path), "--endpoint", f"127.0.0.1:{port}", "--quiet"
    )
    assert code == 1
    assert err == (
        f"renkei load: no connection within 0.5 s to 141003: 127.0.0.1:{port}, mhlw:"
        f" 127.0.0.1:{port}, nenkin: 127.0.0.1:{port} (not serving, or the TLS handshake"
        " failed: wrong CA or certificate)"
    )
