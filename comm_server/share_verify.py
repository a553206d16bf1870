"""``renkei comm log verify --own``: is this agency's share of the log as it was logged?

The chain is recomputed from the rows and compared, link by link, with the
stored links (each link against its stored predecessor, so that one changed
row is reported as that row, not as every row after it), with the chain's
head, and with every signed head: those kept in the store and those given
from outside (``--head``).

What a signed head proves, and what it does not. The operator of the agency's
database also holds the signing key: one who edits rows can recompute every
link and sign a new head, and nothing kept inside the agency can tell. A head
collected earlier by the oversight body (outside the operator's reach) fixes
the first ``count`` rows: no rewrite of them, no deletion or reordering among
them, no truncation below ``count`` can match it (that would need a SHA-256
second preimage), and two heads signed for the same count with different
digests are themselves proof that the key's holder equivocated. It proves
nothing about rows logged after it (collect heads often), nothing about rows
that predate the chain, and not that a row was true when it was logged; a key
replaced since is caught only if the verifier key is collected too
(``--key``). The hub's own verifiable log (issue 14, item 4) is the
independent check of what was exchanged.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from comm_server import share_chain
from comm_server.share_heads import HeadError, SignedHead, open_head
from comm_server.store import agency_log
from renkei.tlog import note

# Pairs of changed rows tried as swapped: quadratic, so only while few rows changed.
_MAX_SWAP_CANDIDATES = 200
_SNAPSHOT_TRIES = 3


class NoChain(Exception):
    """The store holds no chain at all: no server with the chain has opened it yet."""


@dataclass(frozen=True, slots=True)
class Finding:
    message: str
    problem: bool = True


@dataclass
class Report:
    rows: int = 0
    predating: int = 0
    heads_checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, message: str, *, problem: bool = True) -> None:
        self.findings.append(Finding(message, problem))


@dataclass(frozen=True)
class _Snapshot:
    head: share_chain.Head
    links: list[tuple[int, int, bytes]]  # position, log id, digest
    rows: dict[int, tuple[object, ...]]  # log id -> COLUMNS values
    stable: bool  # nothing was appended while reading: rows past the head are strays


def _read(engine: Engine) -> _Snapshot:
    """Head, links and rows as of one head: read again while appends move the head."""
    c = share_chain.chain_links.c
    columns = [agency_log.c[name] for name in share_chain.COLUMNS]
    for _ in range(_SNAPSHOT_TRIES):
        with engine.connect() as conn:
            head = _head(conn)
            links = [
                (int(p), int(i), bytes(d))
                for p, i, d in conn.execute(
                    sa.select(c.position, c.log_id, c.digest).order_by(c.position)
                )
            ]
            rows = {
                int(r[0]): tuple(r[1:])
                for r in conn.execute(
                    sa.select(agency_log.c.id, *columns).order_by(agency_log.c.id)
                )
            }
            after = share_chain.read_head(conn)
        if after == head:
            return _Snapshot(head, links, rows, stable=True)
    # Still moving: judge what the first head covers, ignore what came after it.
    return _Snapshot(
        head,
        [x for x in links if x[0] <= head.count],
        {i: v for i, v in rows.items() if i <= head.last_log_id},
        stable=False,
    )


class _HeadGone(Exception):
    pass


def _head(conn: sa.Connection) -> share_chain.Head:
    if not sa.inspect(conn).has_table(share_chain.chain_head.name):
        raise NoChain("this store has no chain yet (no server with the chain has opened it)")
    try:
        return share_chain.read_head(conn)
    except LookupError:
        raise _HeadGone from None


def _ranges(positions: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for p in positions:
        if out and out[-1][1] == p - 1:
            out[-1] = (out[-1][0], p)
        else:
            out.append((p, p))
    return out


def _rows_text(first: int, last: int) -> str:
    return f"row {first}" if first == last else f"rows {first}-{last}"


def verify_share(
    engine: Engine,
    agency_id: str,
    verifiers: list[note.Ed25519Verifier],
    collected: Sequence[tuple[str, bytes]] = (),
) -> Report:
    """Check the share in ``engine`` against its chain, its head, its signed heads and
    the ``collected`` ones ((where from, note)); every discrepancy as a Finding."""
    from comm_server.share_heads import HeadStore

    try:
        snap = _read(engine)
    except _HeadGone:
        with engine.connect() as conn:
            links = conn.execute(
                sa.select(sa.func.count()).select_from(share_chain.chain_links)
            ).scalar_one()
        if not links and not HeadStore(engine).all():
            raise NoChain("this store's chain was never started (no head)") from None
        report = Report()
        report.add(f"the chain's head is gone ({links} links remain): the share was rewritten")
        return report
    head = snap.head
    report = Report(rows=head.count, predating=head.predating)
    p0 = head.predating
    if p0:
        report.add(
            f"{_rows_text(1, p0)} predate the chain (logged before it started): not covered",
            problem=False,
        )

    by_position = {p: (i, d) for p, i, d in snap.links}
    positions_of: dict[int, list[int]] = {}
    for p, i, _ in snap.links:
        positions_of.setdefault(i, []).append(p)
    start = share_chain.genesis(p0, head.predating_last_id)

    def previous(pos: int) -> bytes | None:
        if pos == p0 + 1:
            return start
        before = by_position.get(pos - 1)
        return None if before is None else before[1]

    def encoded(log_id: int, values: tuple[object, ...]) -> bytes:
        return share_chain.encode_row(log_id, values)

    def serial_of(log_id: int) -> str:
        values = snap.rows[log_id]
        return str(values[0]) if values[0] is not None else "none"

    changed: list[int] = []
    missing: list[int] = []
    unlinked_positions: list[int] = []
    last_linked = max((p for p in by_position if p <= head.count), default=p0)
    for pos in range(p0 + 1, head.count + 1):
        at = by_position.get(pos)
        if at is None:
            if pos <= last_linked:
                unlinked_positions.append(pos)
            continue
        log_id, digest = at
        values = snap.rows.get(log_id)
        # An id linked again later: SQLite gives a deleted tail's ids out again, so
        # the row this link covered is gone and its id holds a later row.
        if values is None or positions_of[log_id][-1] != pos:
            missing.append(pos)
            continue
        prev = previous(pos)
        if prev is not None and share_chain.link(prev, encoded(log_id, values)) != digest:
            changed.append(pos)

    # Two changed rows that match each other's links: their contents changed places.
    swapped: set[int] = set()
    if len(changed) <= _MAX_SWAP_CANDIDATES:
        for a_index, a in enumerate(changed):
            if a in swapped:
                continue
            for b in changed[a_index + 1 :]:
                if b in swapped:
                    continue
                if _fits(snap, by_position, previous, a, b) and _fits(
                    snap, by_position, previous, b, a
                ):
                    swapped |= {a, b}
                    report.add(f"rows {a} and {b}: out of order (each holds the other's row)")
                    break

    # A link whose row is as logged but whose digest is not: the next row still
    # chains from the digest the link should hold.
    relinked: set[int] = set()
    for pos in changed:
        if pos in swapped or pos in relinked:
            continue
        log_id, _ = by_position[pos]
        prev = previous(pos)
        if prev is None:
            continue
        should = share_chain.link(prev, encoded(log_id, snap.rows[log_id]))
        following = by_position.get(pos + 1)
        if following is not None and following[0] in snap.rows:
            fits = (
                share_chain.link(should, encoded(following[0], snap.rows[following[0]]))
                == following[1]
            )
        else:
            fits = pos == head.count and should == head.digest
        if fits:
            relinked |= {pos, pos + 1}
            report.add(f"row {pos}: its link in the chain was rewritten (the row is as logged)")
    for pos in changed:
        if pos not in swapped and pos not in relinked:
            log_id = by_position[pos][0]
            report.add(f"row {pos} (serial {serial_of(log_id)}): changed since it was logged")

    for first, last in _ranges(missing):
        report.add(f"{_rows_text(first, last)}: missing")
    for first, last in _ranges(unlinked_positions):
        report.add(f"{_rows_text(first, last)}: no link in the chain (deleted from it)")

    actual = last_linked
    if actual < head.count:
        report.add(
            f"the share was truncated after row {actual} (the chain's head says {head.count} rows)"
        )
    elif actual > p0 and by_position[actual][1] != head.digest:
        report.add(f"the chain's head does not match the link of row {actual}")
    if snap.stable:
        beyond = [p for p in by_position if p > head.count]
        if beyond:
            report.add(f"{len(beyond)} links after the chain's head ({head.count} rows)")

    # Rows that no link covers: written outside the server.
    linked = sorted((i, p) for p, i, _ in snap.links)
    linked_ids = [i for i, _ in linked]
    for log_id in sorted(snap.rows):
        if log_id <= head.predating_last_id or log_id in positions_of:
            continue
        if not snap.stable and log_id > head.last_log_id:
            continue
        k = bisect.bisect_left(linked_ids, log_id)
        after = linked[k - 1][1] if k else p0
        report.add(
            f"row id {log_id} (serial {serial_of(log_id)}), after row {after}: not in the chain"
        )

    # Signed heads: those the server kept, then those collected from outside.
    heads: list[tuple[str, bytes]] = [
        (f"signed head #{hid}", data) for hid, data in HeadStore(engine).all()
    ]
    heads += list(collected)
    opened: list[tuple[str, SignedHead]] = []
    for where, data in heads:
        try:
            opened.append((where, open_head(data, agency_id, verifiers)))
        except HeadError as err:
            report.add(f"{where}: not a head signed by this agency's log key ({err})")
    report.heads_checked = len(opened)

    def digest_at(count: int) -> bytes | None:
        if count == p0:
            return start
        at = by_position.get(count)
        return None if at is None else at[1]

    told_truncated = False
    for where, sh in opened:
        if sh.count > actual:
            if not told_truncated:
                report.add(
                    f"the share was truncated after row {actual}"
                    f" (a signed head of {sh.count} rows exists: {where}, {sh.describe()})"
                )
                told_truncated = True
            continue
        if sh.count < p0 or digest_at(sh.count) != sh.digest:
            good = [
                o.count for _, o in opened if o.count < sh.count and digest_at(o.count) == o.digest
            ]
            since = f" after row {max(good)}" if good else ""
            report.add(
                f"{where} ({sh.describe()}) does not match the chain at row {sh.count}:"
                f" rows{since} up to {sh.count} were rewritten"
            )
    return report


def _fits(
    snap: _Snapshot,
    by_position: dict[int, tuple[int, bytes]],
    previous: Callable[[int], bytes | None],
    pos: int,
    other: int,
) -> bool:
    """Does the row now at ``other`` match the link of ``pos``?"""
    prev = previous(pos)
    if prev is None:
        return False
    log_id, digest = by_position[pos]
    values = snap.rows[by_position[other][0]]
    return bool(share_chain.link(prev, share_chain.encode_row(log_id, values)) == digest)
