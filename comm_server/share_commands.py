"""``renkei comm log verify --own``, ``renkei comm log head`` and ``renkei comm log key``.

The parser pieces are functions so that ``ops/cli.py`` can put them on the
``comm log`` parser it shares with the hub-log checks: ``add_own_arguments``
on ``verify``, ``add_commands`` for ``head`` and ``key``. Nothing heavy is
imported until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

OK, PROBLEMS, CANNOT_RUN = 0, 1, 2


def add_own_arguments(verify: argparse.ArgumentParser) -> None:
    """``--own`` and its options on the ``comm log verify`` parser (which has ``--config``)."""
    verify.add_argument(
        "--own",
        action="store_true",
        help="check this agency's own share of the log against its hash chain and signed heads",
    )
    verify.add_argument(
        "--head",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="with --own: a signed head collected earlier (renkei comm log head); repeatable",
    )
    verify.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="with --own: the verifier key collected earlier (renkei comm log key); default:"
        " the key store's, which the operator could have replaced",
    )


def add_commands(log: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``head`` and ``key`` under ``comm log``."""
    p = log.add_parser("head", help="the latest signed head of this agency's log share")
    p.add_argument("--config", type=Path, required=True, help="the agency's comm.toml")
    p.add_argument("--sign", action="store_true", help="sign the current head first")
    p = log.add_parser("key", help="the verifier key of this agency's log-share heads")
    p.add_argument("--config", type=Path, required=True, help="the agency's comm.toml")


def run(args: argparse.Namespace) -> int:
    """``head`` or ``key`` (``args.log_action``)."""
    from datetime import UTC, datetime

    from comm_server import share_heads
    from comm_server.config import CommConfig
    from comm_server.store import CommStore, open_key_store
    from renkei import db

    config = CommConfig.load(args.config)
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    try:
        CommStore(engine)  # the chain's tables, started if this store had none
        keys = open_key_store(config)
        try:
            signer = share_heads.signer(keys, config.agency_id)
        finally:
            keys.engine.dispose()
        if args.log_action == "key":
            print(signer.verifier().verifier_key())
            return OK
        heads = share_heads.HeadStore(engine)
        if args.sign:
            heads.sign(signer, config.agency_id, datetime.now(UTC))
        latest = heads.latest()
        if latest is None:
            print(
                f"renkei comm log head: no head of agency {config.agency_id}'s share signed yet"
                " (sign one with --sign)",
                file=sys.stderr,
            )
            return PROBLEMS
        sys.stdout.write(latest[1].decode())
        return OK
    finally:
        engine.dispose()


def run_own(args: argparse.Namespace) -> int:
    """``comm log verify --own``: 0 the share is as logged, 1 problems, 2 cannot run."""
    import sqlalchemy as sa

    from comm_server import share_heads
    from comm_server.config import CommConfig
    from comm_server.share_verify import NoChain, verify_share
    from comm_server.store import open_key_store
    from renkei import db
    from renkei.tlog import note

    def cannot(problem: str) -> int:
        print(f"renkei comm log verify --own: {problem}", file=sys.stderr)
        return CANNOT_RUN

    config = CommConfig.load(args.config)
    collected: list[tuple[str, bytes]] = []
    for path in args.head:
        try:
            collected.append((f"head {path}", path.read_bytes()))
        except OSError as err:
            return cannot(f"{path}: {err.strerror or err}")
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    try:
        if args.key is not None:
            try:
                verifiers = [note.parse_verifier_key(args.key.read_text(encoding="utf-8").strip())]
            except (OSError, UnicodeDecodeError, note.NoteError) as err:
                return cannot(f"{args.key}: not a verifier key ({err})")
        else:
            keys = open_key_store(config)
            try:
                verifiers = share_heads.verifiers(keys, config.agency_id)
            finally:
                keys.engine.dispose()
        report = verify_share(engine, config.agency_id, verifiers, collected)
    except NoChain as err:
        return cannot(str(err))
    except sa.exc.SQLAlchemyError as err:
        return cannot(
            f"the store cannot be read ({type(getattr(err, 'orig', None) or err).__name__})"
        )
    finally:
        engine.dispose()
    for finding in report.findings:
        print(("PROBLEM " if finding.problem else "note    ") + finding.message)
    problems = len(report.problems)
    verdict = "as logged" if not problems else f"{problems} problem{'s' * (problems != 1)}"
    heads = f"{report.heads_checked} signed head{'s' * (report.heads_checked != 1)}"
    print(
        f"share of agency {config.agency_id}: {report.rows} rows"
        f" ({report.predating} before the chain), {heads}: {verdict}"
    )
    return OK if not problems else PROBLEMS
