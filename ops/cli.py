"""`renkei`: the one command operators use, with a subcommand per job."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from renkei import logs


def _agency_spec(text: str) -> object:
    """An agency of the registry by id or name ("141003", "横浜市"), or ID=NAME=CLASSES."""
    from ops.deploy import AgencySpec

    parts = text.split("=")
    if len(parts) == 1:
        from hub_server.agencies import AgencyRegistry
        from hub_server.agencies.registry import AmbiguousAgencyName, UnknownAgency

        registry = AgencyRegistry.load()
        try:
            found = registry.get(text) if text in registry else registry.find(text)
        except (UnknownAgency, AmbiguousAgencyName) as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return AgencySpec(found.agency_id, found.display_name, tuple(sorted(found.classes)))
    if len(parts) != 3 or not parts[0]:
        raise argparse.ArgumentTypeError(
            f"expected an agency of the registry or ID=NAME=CLASS[,CLASS...], got {text!r}"
        )
    return AgencySpec(parts[0], parts[1] or parts[0], tuple(c for c in parts[2].split(",") if c))


# --- renkei comm log: this agency's share of the hub's log (issue 14) -----------------------
# `verify` (exit 0 clean, 1 problems, 2 cannot run) and `status`; comm_server.log_commands.
# `--all` checks every receipt again; `--bundle` writes what was checked as a proof
# bundle for `renkei log verify`; `--own` (comm_server.share_chain) checks this
# agency's own share.


def _add_comm_log(group: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from comm_server import share_commands

    log = group.add_parser(
        "log", help="check this agency's share of the hub's log, and its own share"
    ).add_subparsers(dest="log_action", required=True)
    p = log.add_parser(
        "verify", help="the hub's log: checkpoint, proofs, entries (--own: this agency's share)"
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument(
        "--all", action="store_true", help="every receipt of the share, not only the new ones"
    )
    p.add_argument(
        "--bundle", type=Path, help="write the checked entries and proofs as a proof bundle"
    )
    share_commands.add_own_arguments(p)
    p = log.add_parser("status", help="the last check: when, the trusted size, problems found")
    p.add_argument("--config", type=Path, required=True)
    share_commands.add_commands(log)


def _comm_log(args: argparse.Namespace) -> int:
    from comm_server import log_commands, share_commands
    from comm_server.config import CommConfig

    if args.log_action in ("head", "key"):
        return share_commands.run(args)
    if args.log_action == "verify" and args.own:
        return share_commands.run_own(args)
    config = CommConfig.load(args.config)
    if args.log_action == "status":
        return log_commands.status(config)
    code, report = log_commands.verify(config, whole=args.all)
    if report is not None and args.bundle is not None:
        args.bundle.write_text(log_commands.bundle_of(report).to_json(), encoding="utf-8")
        print(f"proof bundle: {args.bundle} ({len(report.entries)} entries)")
    return code


# --- end of renkei comm log -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="renkei", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pki = sub.add_parser("pki", help="certificates").add_subparsers(dest="action", required=True)
    p = pki.add_parser(
        "init", help="make the three CAs (hub, agencies, services), the hub's and each agency's"
    )
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--agency", action="append", default=[], metavar="ID", required=True)
    p = pki.add_parser("ca", help="make one domain's CA alone in its folder (a ceremony)")
    p.add_argument("--dir", type=Path, required=True, help="the CA's folder (its key stays there)")
    p.add_argument("--kind", required=True, choices=("hub", "agency", "service", "oversight"))
    p.add_argument("--name", default="renkei", help="the CA's common name, before its kind")
    p.add_argument("--days", type=int, default=825)
    p = pki.add_parser("issue", help="sign a party's CSR with the CA of its domain")
    p.add_argument("--ca", type=Path, required=True, help="the CA's folder (ca.pem, ca.key)")
    p.add_argument("--csr", type=Path, required=True, help="the party's request.csr")
    p.add_argument("--out", type=Path, required=True, help="where the certificate goes")
    p.add_argument("--days", type=int, default=825, help="validity (capped by the CA's)")
    p = pki.add_parser("revoke", help="put certificates on their CA's revocation list")
    p.add_argument("--ca", type=Path, required=True, help="the CA's folder (crl.pem is there)")
    p.add_argument("--serial", type=int, action="append", default=[], help="repeatable")
    p.add_argument("--cert", type=Path, action="append", default=[], help="repeatable")
    p = pki.add_parser(
        "sign-exchange",
        help="the CA of agencies signs an agency's exchange CSR (renkei comm exchange-csr)",
    )
    p.add_argument(
        "--ca", type=Path, required=True, help="the agencies' CA folder (ca.pem, ca.key)"
    )
    p.add_argument("--agency", required=True, metavar="ID")
    p.add_argument("--csr", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)

    dep = sub.add_parser("deploy", help="deployment folders").add_subparsers(
        dest="action", required=True
    )
    p = dep.add_parser("init", help="PKI, keys, directory, policy and configs for every party")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument(
        "--agency",
        action="append",
        type=_agency_spec,
        metavar="AGENCY",
        help="an agency of the registry by id or name (横浜市, nenkin), or ID=NAME=CLASSES;"
        " repeatable; default: the demo's three",
    )
    p.add_argument(
        "--base-port",
        type=int,
        default=50051,
        help="hub port; comm servers from +1, legacy systems from +101,"
        " the ID issuer, numbering agency and registry at +201..203, the witness at +204,"
        " the hub's log over HTTPS at +205, the portal at +206",
    )
    p.add_argument("--database-url", help="one database for all parties, a schema each")
    p.add_argument(
        "--party",
        metavar="NAME",
        help="lay out only this party (hub, agency:ID, service:NAME, oversight) in --dir, for a"
        " real ceremony: its keys, a CSR for its CA, its config (docs/operations.md)",
    )
    p.add_argument("--roots", type=Path, help="with --party: the CAs' bundle (roots.pem)")
    p.add_argument("--crl", type=Path, action="append", default=[], help="with --party: a CRL")
    p.add_argument("--listen", default="0.0.0.0:50051", help="with --party: HOST:PORT")
    for peer in ("hub", "registry", "id-issuer"):
        p.add_argument(f"--{peer}-endpoint", help="with --party: HOST:PORT of that party")

    for party in ("hub", "comm"):
        group = sub.add_parser(party, help=f"the {party} server").add_subparsers(
            dest="action", required=True
        )
        p = group.add_parser("serve", help="run until SIGTERM")
        p.add_argument("--config", type=Path, required=True)
        p.add_argument("--port-file", type=Path, help="write the bound port here when serving")
        if party == "comm":
            p = group.add_parser("bind", help="bind records to link codes (JSON lines input)")
            p.add_argument("--config", type=Path, required=True)
            p.add_argument(
                "--input",
                type=Path,
                required=True,
                help='lines of {"local_person_id": ..., "sealed_id_code": base64}',
            )
            p = group.add_parser(
                "rekey", help="new link codes for the whole correspondence table (resumable)"
            )
            p.add_argument("--config", type=Path, required=True)
            p.add_argument("--batch", type=int, default=500)
            p = group.add_parser("follow", help="apply the registry's changes to bound persons")
            p.add_argument("--config", type=Path, required=True)
            p.add_argument("--every", type=float, help="repeat every N seconds until stopped")
            p = group.add_parser("facts", help="a bound person's current facts and municipality")
            p.add_argument("--config", type=Path, required=True)
            p.add_argument("local_person_id", nargs="+")
            p = group.add_parser("bind-consent", help="a private body binds with consent (R20)")
            p.add_argument("--config", type=Path, required=True)
            p.add_argument("--input", type=Path, required=True, help="JSON lines with consent")
            p.add_argument("--report", type=Path, help="also write the outcomes (JSON) here")
            p = group.add_parser(
                "exchange-csr",
                help="this agency's request for its exchange certificate (its keys stay here)",
            )
            p.add_argument("--config", type=Path, required=True)
            p.add_argument("--output", type=Path, required=True)
            _add_comm_log(group)
            from ops import disclosure_cli

            disclosure_cli.add_comm_parser(group)

    # The registry's own parser is built only when asked for: building it here
    # would import SQLAlchemy and the registry into every server process.
    p = sub.add_parser(
        "registry",
        help="the mocked resident registry (Juki-net): generate, show, changes, simulate, bench",
        add_help=False,
    )
    p.add_argument("registry_args", nargs=argparse.REMAINDER, metavar="...")

    rb = sub.add_parser(
        "registry-binding", help="the registry's binding service (four-fact matching)"
    ).add_subparsers(dest="action", required=True)
    p = rb.add_parser("serve", help="run it until SIGTERM")
    p.add_argument("--config", type=Path, required=True, help="registry/registry.toml")
    p.add_argument("--port-file", type=Path)

    p = sub.add_parser("bind", help="bind an agency's records by the four facts (resumable)")
    p.add_argument("--config", type=Path, required=True, help="the agency's comm.toml")
    p.add_argument(
        "--input",
        type=Path,
        help='JSON lines: {"local_person_id", "name", "kana", "address", "birth_date", "sex"};'
        " default: the person file of the agency's legacy system, read through its"
        " [legacy] client and format mapper",
    )
    p.add_argument("--batch", type=int, default=1000, help="records per MatchRecords call")
    p.add_argument("--report", type=Path, help="also write the report (review list included) here")

    num = sub.add_parser("numbering", help="the numbering agency").add_subparsers(
        dest="action", required=True
    )
    p = num.add_parser("serve", help="run the numbering agency until SIGTERM")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--port-file", type=Path)

    idi = sub.add_parser("id-issuer", help="the ID issuer").add_subparsers(
        dest="action", required=True
    )
    p = idi.add_parser("seal", help="seal ID codes to the hub for one agency (JSON lines)")
    p.add_argument("--config", type=Path, required=True, help="the issuer's issuer.toml")
    p.add_argument("--agency", required=True)
    p.add_argument(
        "--input", type=Path, required=True, help='lines of {"local_person_id", "resident_code"}'
    )
    p = idi.add_parser("rotate", help="a new ID key version; agencies then re-key to it")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument(
        "--window-days",
        type=float,
        required=True,
        help="how long codes from the old ID key stay accepted after every agency re-keyed",
    )
    p = idi.add_parser("serve", help="run the ID issuer until SIGTERM")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--port-file", type=Path)

    _add_witness_commands(sub)

    keys = sub.add_parser("keys", help="the hub's keys").add_subparsers(
        dest="action", required=True
    )
    p = keys.add_parser("list", help="key versions, their state and window (no material)")
    p.add_argument("--config", type=Path, required=True, help="hub.toml")
    p = keys.add_parser("rotate-link", help="prepare a new link-code key version for an agency")
    p.add_argument("--config", type=Path, required=True, help="hub.toml")
    p.add_argument("--agency", required=True)
    p.add_argument(
        "--window-days",
        type=float,
        required=True,
        help="how long old link codes stay accepted after the agency completes its re-key",
    )

    pol = sub.add_parser("policy", help="the legal-basis policy").add_subparsers(
        dest="action", required=True
    )
    p = pol.add_parser("explain", help="may this requester ask this provider for this?")
    p.add_argument("--requester", required=True, help="an agency's name or id, e.g. 厚生労働大臣")
    p.add_argument("--provider", required=True, help="e.g. 横浜市")
    p.add_argument("--info", required=True, help="a kind of information, e.g. 地方税関係情報")
    p.add_argument("--item", help="an item of the table, e.g. 一; default: any")
    p.add_argument("--policy", type=Path, help="a policy folder or file; default: the statute")
    p.add_argument("--at", help="judge as of this date (YYYY-MM-DD); default: now")
    p = pol.add_parser("report", help="compile Annex Table 2 and print what it could not resolve")

    audit = sub.add_parser(
        "audit", help="the oversight body's checks (without an action: configs, then stores)"
    )
    audit.add_argument("--deployment", type=Path, help="the deployment folder")
    audit.add_argument("--sample", type=int, default=500, help="known values per kind to look for")
    aud = audit.add_subparsers(dest="action")
    p = aud.add_parser("stores", help="which kinds of identifier every store of a deployment holds")
    p.add_argument("--deployment", type=Path, required=True, help="the deployment folder")
    p.add_argument("--sample", type=int, default=500, help="known values per kind to look for")
    p = aud.add_parser(
        "configs", help="that no party's config or credentials open another party's store"
    )
    p.add_argument("--deployment", type=Path, required=True, help="the deployment folder")

    mp = sub.add_parser("mapper", help="legacy-format mappers").add_subparsers(
        dest="action", required=True
    )
    p = mp.add_parser("check", help="decode and re-encode sample records; show fields, differences")
    p.add_argument("spec", metavar="SPEC_OR_FORMAT", help="a spec file (.toml) or a format name")
    p.add_argument("sample", type=Path, metavar="SAMPLE")
    p.add_argument("--kind", help="kind of information (default: the spec's first)")

    p = sub.add_parser("demo", help="run the whole system on loopback and print what happened")
    p.add_argument("--state-dir", type=Path, default=Path("demo-state"))
    p.add_argument(
        "--keep-serving",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="afterwards keep every party up this long (Ctrl-C stops sooner), with staff LOAD"
        " registered, so that `renkei load --deployment STATE_DIR` can drive it",
    )

    p = sub.add_parser(
        "load",
        help="load a hub, communication server or numbering agency (renkei load --help)",
        add_help=False,
    )
    p.add_argument("load_args", nargs=argparse.REMAINDER, metavar="...")

    p = sub.add_parser(
        "bench", help="linkages per second: direct, bare relay, nginx and hub (docs/benchmarks.md)"
    )
    p.add_argument("--state-dir", type=Path, default=Path("bench-state"))
    p.add_argument("--requests", type=int, default=3000, help="per path")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--time-budget", type=float, default=120.0, help="seconds for the whole load")
    p.add_argument("--nginx", help="the nginx binary (default: on PATH or in /usr/sbin)")
    p.add_argument("--output", type=Path, help="also write the table as JSON here")
    tools = p.add_subparsers(dest="tool", metavar="{frame,bridge}")
    f = tools.add_parser("frame", help="write one gRPC request frame for h2load/nghttp")
    f.add_argument("--type", default="renkei.hub.v1.ApproveRequest", help="full message name")
    f.add_argument("--json", required=True, help="the message in protobuf JSON")
    f.add_argument("--output", type=Path, required=True)
    b = tools.add_parser("bridge", help="h2c on loopback -> mutual TLS, via nginx (for h2load)")
    b.add_argument("--upstream-port", type=int, required=True, help="the server on 127.0.0.1")
    b.add_argument("--ca", type=Path, required=True, help="CA that signed the server")
    b.add_argument("--cert", type=Path, required=True, help="client certificate to present")
    b.add_argument("--key", type=Path, required=True)
    b.add_argument(
        "--peer", default="hub", help="the party the server is (hub, agency:ID, service:NAME)"
    )
    b.add_argument("--port", type=int, default=0, help="h2c port (default: a free one)")
    b.add_argument("--port-file", type=Path)
    b.add_argument("--nginx", help="the nginx binary")

    # --- renkei log: the verifiable log (ops/log_cli.py) ---
    from ops import log_cli

    log_cli.add_parser(sub)
    # --- issue 15's parties and jobs, each in its own module (ops/*_cli.py) ---
    for module in _issue15_clis():
        module.add_parser(sub)
    return parser


def _issue15_clis() -> tuple[Any, ...]:
    """The modules of `renkei portal`, `counter`, `oversight` and `logs`: each has
    ``COMMANDS``, ``add_parser(sub)`` and ``run(args)``."""
    from ops import counter_cli, oversight_cli, portal_cli, retention_cli

    return (portal_cli, counter_cli, oversight_cli, retention_cli)


def _config_refused(args: argparse.Namespace, run: Callable[[], int]) -> int:
    """``run()``, or one line and exit status 2 when a config file cannot be used.

    A ConfigError is the operator's to fix, not a bug: a traceback would bury
    the one line that says which file and key. Every command that reads a
    ``--config`` answers so, not only ``serve``.
    """
    from renkei.config_util import ConfigError

    try:
        return run()
    except ConfigError as err:
        problem = str(err)
        config: Path | None = getattr(args, "config", None)
        if config is not None and not problem.startswith(f"{config}: "):
            problem = f"{config}: {problem}"  # bootstrap's own few name no file
        command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
        print(f"renkei {command}: {problem}", file=sys.stderr)
        return 2


def _pki(args: argparse.Namespace) -> int:
    from ops import ceremony

    if args.action == "ca":
        made = ceremony.create_domain_ca(
            args.dir, args.kind, common_name=f"{args.name} {args.kind} CA", validity_days=args.days
        )
        print(f"CA for {args.kind} in {made.folder}: give {made.cert} to every party's roots.pem")
        return 0
    if args.action == "issue":
        cert = ceremony.issue(args.ca, args.csr, args.out, validity_days=args.days)
        print(f"{args.out}: serial {cert.serial_number}, until {cert.not_valid_after_utc:%Y-%m-%d}")
        return 0
    if args.action == "revoke":
        revoked = ceremony.revoke_certificates(args.ca, args.serial, args.cert)
        print(f"{args.ca / 'crl.pem'}: {len(revoked)} revoked certificate(s)")
        return 0
    from ops.pki import init_pki

    pki = init_pki(args.dir, args.agency)
    print(f"CAs in {pki.root} (bundle {pki.roots}); hub and {len(args.agency)} agency certificates")
    return 0


def _deploy_party(args: argparse.Namespace) -> int:
    from ops import ceremony
    from renkei.config_util import ConfigError

    if args.roots is None:
        raise ConfigError("--party needs --roots, the CAs' bundle (roots.pem)")
    endpoints = {
        f"{peer.replace('-', '_')}_endpoint": value
        for peer in ("hub", "registry", "id-issuer")
        if (value := getattr(args, f"{peer.replace('-', '_')}_endpoint"))
    }
    made = ceremony.init_party(
        args.dir,
        args.party,
        args.roots,
        args.crl,
        listen=args.listen,
        endpoints=endpoints,
        agency_ids=[a.agency_id for a in args.agency or ()],
    )
    print(f"{args.party} in {args.dir}: config {made.config}")
    print(f"send {made.csr} to the CA of its domain (renkei pki issue); put the certificate at")
    print(f"  {made.csr.with_name('cert.pem')}")
    for key, value in made.publish.items():
        print(f"publish {key} = {value}")
    return 0


def _serve(party: str, config: Path, port_file: Path | None) -> int:
    if party == "hub":
        from hub_server.bootstrap import serve as serve_hub
        from hub_server.config import HubConfig

        logs.configure("hub", HubConfig.load(config).log_level)
        asyncio.run(serve_hub(config, port_file))
    else:
        from comm_server.bootstrap import serve as serve_comm
        from comm_server.config import CommConfig

        cfg = CommConfig.load(config)
        logs.configure(f"comm:{cfg.agency_id}", cfg.log_level)
        asyncio.run(serve_comm(config, port_file))
    return 0


def _serve_binding(config: Path, port_file: Path | None) -> int:
    from registry_binding.bootstrap import serve as serve_binding

    logs.configure("registry-binding")
    asyncio.run(serve_binding(config, port_file))
    return 0


def _serve_numbering(config: Path, port_file: Path | None) -> int:
    from numbering.bootstrap import serve as serve_numbering
    from numbering.config import NumberingConfig

    logs.configure("numbering", NumberingConfig.load(config).log_level)
    asyncio.run(serve_numbering(config, port_file))
    return 0


def _serve_issuer(config: Path, port_file: Path | None) -> int:
    from id_issuer.bootstrap import serve as serve_issuer
    from id_issuer.config import IdIssuerConfig

    logs.configure("id-issuer", IdIssuerConfig.load(config).log_level)
    asyncio.run(serve_issuer(config, port_file))
    return 0


def _read_jsonl(path: Path, *, errors: str = "strict") -> list[dict[str, str]]:
    rows = []
    text = path.read_bytes().decode("utf-8", errors)
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise SystemExit(f"{path}:{n}: not JSON: {err}") from None
    return rows


def _bind(args: argparse.Namespace) -> int:
    import dataclasses

    from rich.progress import Progress

    from comm_server.binding.bulk_bind import bind_agency
    from comm_server.binding.records import LocalRecord
    from comm_server.config import CommConfig
    from renkei.config_util import ConfigError
    from renkei.errors import RenkeiError

    config = CommConfig.load(args.config)
    if not config.registry_endpoint:
        print(f"renkei bind: {args.config} sets no [comm] registry_endpoint", file=sys.stderr)
        return 2
    fields = {f.name for f in dataclasses.fields(LocalRecord)}
    records: list[LocalRecord] | None = None if args.input is None else []
    # Undecodable bytes stay in the text (surrogateescape) so that only their
    # record goes to review, with the field and byte offset named (bulk_bind).
    rows = _read_jsonl(args.input, errors="surrogateescape") if args.input else []
    for n, row in enumerate(rows, start=1):
        unknown = set(row) - fields
        if unknown or "local_person_id" not in row:
            print(
                f"renkei bind: {args.input}:{n}: fields {sorted(unknown)} unknown"
                " or local_person_id missing",
                file=sys.stderr,
            )
            return 2
        assert records is not None
        records.append(LocalRecord(**{k: str(v) for k, v in row.items()}))
    if records is None and not config.legacy.format:
        print(
            f"renkei bind: {args.config} sets no [legacy] format, so the person file"
            " cannot be read; give --input",
            file=sys.stderr,
        )
        return 2
    with Progress() as bar:
        source = "its legacy person file" if records is None else str(args.input)
        task = bar.add_task(
            f"binding {config.agency_id} ({source})",
            total=None if records is None else len(records),
        )
        try:
            report = asyncio.run(
                bind_agency(
                    config,
                    records,
                    batch=args.batch,
                    progress=lambda r: bar.update(
                        task,
                        completed=r.bound
                        + r.already_bound
                        + r.ambiguous
                        + r.none
                        + r.invalid
                        + r.failed,
                    ),
                )
            )
        except (RenkeiError, ConfigError) as err:
            print(f"renkei bind: {err}", file=sys.stderr)
            return 1
    print(
        f"bound {report.bound}, already bound {report.already_bound}, ambiguous"
        f" {report.ambiguous}, unmatched {report.none}, invalid {report.invalid},"
        f" failed {report.failed}"
    )
    for item in report.review[:20]:
        print(f"review: {item.local_person_id}: {item.status}: {item.reason}")
    if args.report is not None:
        args.report.write_text(
            json.dumps(dataclasses.asdict(report), ensure_ascii=False, indent=2), encoding="utf-8"
        )
    return 0


def _rekey(config_path: Path, batch: int) -> int:
    from rich.progress import Progress

    from comm_server.binding.rekey import rekey_agency
    from comm_server.config import CommConfig

    config = CommConfig.load(config_path)
    with Progress() as bar:
        task = bar.add_task(f"re-keying {config.agency_id}", total=None)
        report = asyncio.run(
            rekey_agency(
                config,
                batch=batch,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        )
    print(
        f"{report.rows} rows; {report.rekeyed} re-keyed to version {report.target_version}"
        f" in this run; {report.promoted} promoted"
    )
    for local_id, reason in sorted(report.refused.items()):
        print(f"refused: {local_id}: {reason}")
    return 0 if report.completed else 1


def _audit(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ops.audit import audit_configs, audit_deployment, breaches, render, render_configs

    if args.deployment is None:
        print("renkei audit: --deployment is required", file=sys.stderr)
        return 2
    console = Console(width=160)
    failed = False
    if args.action in (None, "configs"):
        configs = audit_configs(args.deployment)
        console.print(render_configs(configs))
        failed |= bool(configs.breaches)
    if args.action in (None, "stores"):
        report = audit_deployment(args.deployment, sample=args.sample)
        console.print(render(report))
        failed |= bool(breaches(report))
    return 1 if failed else 0


def _policy(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from hub_server.agencies import AgencyRegistry
    from hub_server.agencies.registry import AmbiguousAgencyName, UnknownAgency
    from hub_server.annex import compile_annex
    from hub_server.explain import explain
    from hub_server.policy_versions import JST, PolicySet, PolicyVersion, load_policy

    if args.action == "report":
        compiled = compile_annex()
        for name, count in compiled.counts().items():
            print(f"{name}: {count}")
        for line in compiled.report:
            print(line)
        print("report: empty" if not compiled.report else f"report: {len(compiled.report)} lines")
        return 1 if compiled.report else 0
    registry = AgencyRegistry.load()
    try:
        requester = registry.find(args.requester).to_agency()
        provider = registry.find(args.provider).to_agency()
    except (UnknownAgency, AmbiguousAgencyName) as err:
        print(f"renkei policy explain: {err}", file=sys.stderr)
        return 2
    if args.policy is not None:
        policy = load_policy(args.policy)
    else:
        compiled = compile_annex()
        start = datetime(2015, 10, 5, tzinfo=JST)
        policy = PolicySet([PolicyVersion(start, compiled.policy(), "annex-2015 (statute)")])
    at = datetime.fromisoformat(args.at).replace(tzinfo=JST) if args.at else datetime.now(UTC)
    answer = explain(policy, requester, provider, args.info, args.item, at)
    d = answer.decision
    print(answer.question)
    verdict = "APPROVED" if d.approved else f"DENIED ({d.reason})"
    cited = f" under item {d.item}" if d.approved else ""
    print(f"{verdict}{cited}: policy {d.policy_version} ({answer.version_source})")
    for line in answer.lines:
        print(f"  {line}")
    if len(answer.lawful_items) > 1:
        print(f"  also lawful under items {'、'.join(answer.lawful_items[1:])}")
    return 0 if d.approved else 1


def _keys(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from hub_server import keys
    from hub_server.config import HubConfig
    from renkei import db
    from renkei.keystore import KeyStore, load_master_key

    config = HubConfig.load(args.config)
    store = KeyStore(
        db.create_engine(config.database_url, schema=config.database_schema),
        load_master_key(config.master_key),
    )
    if args.action == "rotate-link":
        version = keys.rotate_link_key(store, args.agency, timedelta(days=args.window_days))
        print(
            f"link-code key version {version} made for {args.agency}; it becomes current when"
            f" the agency's re-key job completes, and version {version - 1} codes then stay"
            f" accepted for {args.window_days:g} days"
        )
        return 0
    for v in store.all():
        state = "current" if v.current else "next" if v.accept_until is None else "old"
        until = f" accepted until {v.accept_until.isoformat()}" if v.accept_until else ""
        window = f" window {v.window}" if v.window else ""
        print(f"{v.name} v{v.version}: {state}{until}{window}")
    return 0


def _exchange_certificate(args: argparse.Namespace) -> int:
    """The exchange-certificate ceremony in two steps, no private key leaving its party."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if args.action == "exchange-csr":
        from comm_server.config import CommConfig
        from comm_server.keys import exchange_csr
        from comm_server.keys import provision as comm_key_setup
        from comm_server.store import open_key_store

        config = CommConfig.load(args.config)
        store = open_key_store(config)
        try:
            comm_key_setup(store)
            csr = exchange_csr(store, config.agency_id)
        finally:
            store.engine.dispose()
        args.output.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        print(f"exchange CSR of agency {config.agency_id}: {args.output}")
        return 0
    from ops.pki import CaFiles, issue_exchange_certificate

    try:
        csr = x509.load_pem_x509_csr(args.csr.read_bytes())
        issue_exchange_certificate(CaFiles(args.ca), csr, args.agency, args.output)
    except (OSError, ValueError) as err:
        print(f"renkei pki sign-exchange: {args.csr}: {err}", file=sys.stderr)
        return 2
    print(f"exchange certificate of agency {args.agency}: {args.output}")
    return 0


# --- renkei witness (issue 14): the witness party's commands -------------------------


def _add_witness_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wit = sub.add_parser(
        "witness", help="the witness that cosigns the hub's checkpoints"
    ).add_subparsers(dest="action", required=True)
    p = wit.add_parser("serve", help="run the witness until SIGTERM")
    p.add_argument("--config", type=Path, required=True, help="its witness.toml")
    p.add_argument("--port-file", type=Path)
    p = wit.add_parser("key", help="print the witness's cosignature verifier key (vkey)")
    p.add_argument("--config", type=Path, required=True, help="its witness.toml")


def _witness(args: argparse.Namespace) -> int:
    from witness import keys
    from witness.config import WitnessConfig

    try:
        if args.action == "key":
            print(keys.verifier_key(args.config))
            return 0
        from witness.bootstrap import serve as serve_witness

        logs.configure("witness", WitnessConfig.load(args.config).log_level)
        asyncio.run(serve_witness(args.config, args.port_file))
    except keys.MissingKeyError as err:
        print(f"renkei witness {args.action}: {args.config}: {err}", file=sys.stderr)
        return 2
    return 0


# --- end of renkei witness ------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["registry"]:
        # Handed over whole, --help included, to the registry's own parser.
        if argv[1:2] == ["bench"]:  # a benchmark: tooling, not the mock's own command
            from ops.bench import registry as registry_bench

            return registry_bench.main(argv[2:])
        from legacy_stubs.registry import cli as registry_cli

        return registry_cli.main(argv[1:])
    if argv[:1] == ["load"]:
        # Its own parser, and matplotlib, multiprocessing and the rest only when it runs.
        from ops.load import cli as load_cli

        return load_cli.main(argv[1:])
    args = build_parser().parse_args(argv)
    return _config_refused(args, lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "log":  # the verifiable log (ops/log_cli.py)
        from ops import log_cli

        return log_cli.run(args)
    for module in _issue15_clis():
        if args.command in module.COMMANDS:
            return int(module.run(args))
    if args.command == "comm" and args.action == "disclosure":  # ops/disclosure_cli.py
        from ops import disclosure_cli

        return disclosure_cli.run(args)
    if args.command in ("pki", "comm") and args.action in ("sign-exchange", "exchange-csr"):
        return _exchange_certificate(args)
    if args.command == "pki":
        return _pki(args)
    if args.command == "deploy" and args.party:
        return _deploy_party(args)
    if args.command == "deploy":
        from ops.deploy import DEMO_AGENCIES, Settings, endpoints_from, init_deployment

        agencies = args.agency or list(DEMO_AGENCIES)
        endpoints = endpoints_from(args.base_port, agencies)
        layout = init_deployment(
            args.dir, agencies, endpoints, Settings(database_url=args.database_url)
        )
        print(f"deployment in {layout.root}: hub config {layout.hub_config}")
        return 0
    if args.command in ("hub", "comm") and args.action == "serve":
        return _serve(args.command, args.config, args.port_file)
    if args.command == "comm" and args.action == "bind":
        from comm_server.binding.bind import bind_all
        from comm_server.config import CommConfig

        items = [
            (r["local_person_id"], base64.b64decode(r["sealed_id_code"]))
            for r in _read_jsonl(args.input)
        ]
        outcomes = asyncio.run(bind_all(CommConfig.load(args.config), items))
        fresh = sum(o.newly_bound for o in outcomes)
        print(f"bound {fresh} new, {len(outcomes) - fresh} already bound")
        return 0
    if args.command == "policy":
        return _policy(args)
    if args.command == "audit":
        return _audit(args)
    if args.command == "registry-binding":
        return _serve_binding(args.config, args.port_file)
    if args.command == "bind":
        return _bind(args)
    if args.command == "numbering":
        return _serve_numbering(args.config, args.port_file)
    if args.command == "comm" and args.action in ("follow", "facts", "bind-consent"):
        from comm_server import commands

        return commands.run(args)
    if args.command == "comm" and args.action == "log":
        return _comm_log(args)
    if args.command == "comm" and args.action == "rekey":
        return _rekey(args.config, args.batch)
    if args.command == "id-issuer":
        from id_issuer import issuer as id_issuer

        if args.action == "serve":
            return _serve_issuer(args.config, args.port_file)
        if args.action == "rotate":
            from datetime import timedelta

            store, _ = id_issuer.open_key_store(args.config)
            version = id_issuer.rotate(store, timedelta(days=args.window_days))
            print(
                f"ID key version {version} made; agencies re-key to it (renkei comm rekey), and it"
                " becomes current when the last one has"
            )
            return 0
        issuer = id_issuer.IdIssuer.load(args.config)
        for r in _read_jsonl(args.input):
            sealed = issuer.sealed_id_code(r["resident_code"], args.agency)
            print(
                json.dumps(
                    {
                        "local_person_id": r["local_person_id"],
                        "sealed_id_code": base64.b64encode(sealed).decode(),
                    }
                )
            )
        return 0
    if args.command == "witness":
        return _witness(args)
    if args.command == "keys":
        return _keys(args)
    if args.command == "mapper":
        from comm_server.mapping.check import run_check

        return run_check(args.spec, args.sample, args.kind)
    if args.command == "demo":
        from ops.demo import main as demo_main

        return demo_main(args.state_dir, args.keep_serving)
    if args.command == "bench":
        if args.tool == "frame":
            from ops.bench.frame import main as frame_main

            return frame_main(args)
        if args.tool == "bridge":
            from ops.bench.nginx import bridge_main

            return bridge_main(args)
        from ops.bench.linkage import main as bench_main

        return int(bench_main(args))
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
