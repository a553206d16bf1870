"""`renkei load`: the command line. Imported only when the command runs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.live import Live

from ops.load import report as reporting
from ops.load import runner, scenario, targets
from ops.load.endpoints import EndpointError, connections, is_loopback, parse_overrides
from renkei.pki import TlsFiles

HARD_CAP_SECONDS = 3600.0

EPILOG = """\
Examples (a deployment from `renkei deploy init`, its servers running):
  renkei load --target hub --deployment D --scenario ops/load/scenarios/demo.toml \\
      --mode closed --concurrency 32 --duration 30 --warmup 5 --json out.json --plot out.png
  renkei load --target comm --deployment D --scenario ops/load/scenarios/demo.toml \\
      --mode open --rate 500 --duration 30 --workers 2

Only loopback targets are accepted unless --allow-remote is given: a load test
is a deliberate overload carrying the deployment's real client certificates,
and aimed at a shared or production endpoint by a typo it would degrade the
service for everyone and fill its audit logs with test linkages.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="renkei load",
        description="Load a renkei gRPC endpoint (hub, communication server or numbering agency)"
        " with a scenario's request mix; report throughput, latency percentiles and errors.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--target", choices=sorted(targets.TARGETS), required=True)
    p.add_argument("--scenario", type=Path, required=True, help="a TOML request mix")
    p.add_argument("--deployment", type=Path, help="a `renkei deploy init` folder")
    p.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="[NAME=]HOST:PORT",
        help="override an address (NAME: hub, numbering or an agency id); repeatable",
    )
    p.add_argument("--ca", type=Path, help="CA certificate (with --cert and --key: one identity)")
    p.add_argument("--cert", type=Path)
    p.add_argument("--key", type=Path)
    p.add_argument("--mode", choices=("closed", "open"), default="closed")
    p.add_argument("--concurrency", type=int, default=16, help="closed loop: requests in flight")
    p.add_argument("--rate", type=float, help="open loop: requests per second, all workers")
    stop = p.add_mutually_exclusive_group(required=True)
    stop.add_argument("--duration", type=float, help="measured seconds (after the warm-up)")
    stop.add_argument("--requests", type=int, help="measured requests (after the warm-up)")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds sent but not measured")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--channels", type=int, default=2, help="channels per caller per worker")
    p.add_argument("--timeout", type=float, default=10.0, help="deadline of each call, seconds")
    p.add_argument(
        "--expected-interval-ms",
        type=float,
        default=0.0,
        help="closed loop: back-fill latencies longer than this, as HdrHistogram's"
        " record_corrected_value does (coordinated omission)",
    )
    p.add_argument("--max-in-flight", type=int, default=10_000, help="open loop, per worker")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help=f"hard cap on the run, warm-up included (at most {HARD_CAP_SECONDS:.0f})",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback target (see below for why this is off by default)",
    )
    p.add_argument("--json", type=Path, help="write the report here")
    p.add_argument("--plot", type=Path, help="write a PNG of latency and throughput over time")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    return p


def _plan(args: argparse.Namespace) -> runner.Plan:
    if args.mode == "open" and args.rate is None:
        raise ValueError("--mode open needs --rate")
    if args.mode == "closed" and args.rate is not None:
        raise ValueError("--rate is for --mode open; closed loop takes --concurrency")
    if args.duration is not None and not args.duration > 0:
        raise ValueError("--duration must be positive")
    if args.requests is not None and args.requests < 1:
        raise ValueError("--requests must be at least 1")
    if args.warmup < 0:
        raise ValueError("--warmup cannot be negative")
    if not 0 < args.max_seconds <= HARD_CAP_SECONDS:
        raise ValueError(f"--max-seconds must be in (0, {HARD_CAP_SECONDS:.0f}]")
    if not args.timeout > 0:
        raise ValueError("--timeout must be positive")
    return runner.Plan(
        mode=args.mode,
        concurrency=args.concurrency,
        rate=args.rate or 0.0,
        duration=args.duration,
        requests=args.requests,
        warmup=args.warmup,
        max_seconds=args.max_seconds,
        timeout=args.timeout,
        expected_interval=args.expected_interval_ms / 1000,
        max_in_flight=args.max_in_flight,
        workers=args.workers,
        channels=args.channels,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    err = Console(stderr=True, highlight=False)
    explicit = (args.ca, args.cert, args.key)
    if any(explicit) and not all(explicit):
        err.print("renkei load: --ca, --cert and --key go together")
        return 2
    try:
        plan = _plan(args)
        mix = scenario.load(args.scenario)
        target = targets.target(args.target)
        targets.check(target, mix)
        callers = mix.callers()
        conns = connections(
            callers,
            {c: target.endpoint_of(c) for c in callers},
            deployment=args.deployment,
            overrides=parse_overrides(args.endpoint),
            explicit_tls=TlsFiles(args.ca, args.cert, args.key) if args.ca else None,
        )
    except (ValueError, EndpointError) as e:  # ScenarioError is a ValueError
        err.print(f"renkei load: {e}")
        return 2
    remote = sorted({c.address for c in conns if not is_loopback(c.address)})
    if remote and not args.allow_remote:
        err.print(
            f"renkei load: {', '.join(remote)} is not a loopback address; a load test is an"
            " overload with real certificates, so it needs --allow-remote (see --help)"
        )
        return 2

    line = reporting.LiveLine()
    try:
        if args.quiet:
            run = runner.run(plan, mix, args.target, tuple(conns))
        else:
            with Live(line, console=err, refresh_per_second=4, transient=True):
                run = runner.run(plan, mix, args.target, tuple(conns), line.update)
    except ConnectionError as e:
        err.print(f"renkei load: {e}")
        return 1
    report = reporting.build(
        run, plan, args.target, str(args.scenario), {c.caller: c.address for c in conns}
    )
    reporting.print_report(Console(highlight=False, width=120), report)
    if args.json is not None:
        args.json.write_text(
            json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    if args.plot is not None:
        from ops.load.plot import plot

        plot(report, args.plot)
    failed = bool(run.failures) or report["requests"] == 0
    return 1 if failed or report["unexpected"] else 0


if __name__ == "__main__":
    sys.exit(main())
