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
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from comm_server import share_chain
from comm_server.retention import purged_id_ranges
from comm_server.share_heads import HeadError, HeadStore, SignedHead, open_head
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
    purged: int = 0  # rows purged under retention (their links remain)
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
    # agency_log id ranges purged under retention (comm_server.retention).
    purged: list[tuple[int, int]] = field(default_factory=list)


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
            purged = purged_id_ranges(conn)
            after = share_chain.read_head(conn)
        if after == head:
            return _Snapshot(head, links, rows, stable=True, purged=purged)
    # Still moving: judge what the first head covers, ignore what came after it.
    return _Snapshot(
        head,
        [x for x in links if x[0] <= head.count],
        {i: v for i, v in rows.items() if i <= head.last_log_id},
        stable=False,
        purged=purged,
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
    check = _Check(snap)
    if check.p0:
        check.report.add(
            f"{_rows_text(1, check.p0)} predate the chain (logged before it started): not covered",
            problem=False,
        )
    changed = check.rows()
    swapped = check.swaps(changed)
    relinked = check.relinks(changed, swapped)
    for pos in changed:
        if pos not in swapped and pos not in relinked:
            serial = check.serial_of(check.by_position[pos][0])
            check.report.add(f"row {pos} (serial {serial}): changed since it was logged")
    check.tail()
    check.strays()
    stored = [(f"signed head #{hid}", data) for hid, data in HeadStore(engine).all()]
    check.heads([*stored, *collected], agency_id, verifiers)
    return check.report


class _Check:
    """One verification of one snapshot; each step adds its findings to ``report``."""

    def __init__(self, snap: _Snapshot) -> None:
        self.snap = snap
        self.head = snap.head
        self.p0 = snap.head.predating
        self.report = Report(rows=snap.head.count, predating=self.p0)
        self.by_position = {p: (i, d) for p, i, d in snap.links}
        self.positions_of: dict[int, list[int]] = {}
        for p, i, _ in snap.links:
            self.positions_of.setdefault(i, []).append(p)
        self.start = share_chain.genesis(self.p0, snap.head.predating_last_id)
        self.last_linked = max(
            (p for p in self.by_position if p <= snap.head.count), default=self.p0
        )

    def previous(self, pos: int) -> bytes | None:
        """The stored digest row ``pos`` chains from (None: that link is gone)."""
        if pos == self.p0 + 1:
            return self.start
        before = self.by_position.get(pos - 1)
        return None if before is None else before[1]

    def matches(self, pos: int, values: tuple[object, ...]) -> bool:
        """Do ``values``, as row ``pos``'s, give its stored link?"""
        prev = self.previous(pos)
        log_id, digest = self.by_position[pos]
        return (
            prev is not None
            and share_chain.link(prev, share_chain.encode_row(log_id, values)) == digest
        )

    def serial_of(self, log_id: int) -> str:
        serial = self.snap.rows[log_id][0]
        return "none" if serial is None else str(serial)

    def rows(self) -> list[int]:
        """Each linked row against its link; the changed ones (missing ones reported)."""
        changed: list[int] = []
        missing: list[int] = []
        purged: list[int] = []
        unlinked: list[int] = []
        starts = [a for a, _ in self.snap.purged]
        for pos in range(self.p0 + 1, self.head.count + 1):
            at = self.by_position.get(pos)
            if at is None:
                if pos <= self.last_linked:
                    unlinked.append(pos)
                continue
            values = self.snap.rows.get(at[0])
            # An id linked again later: SQLite gives a deleted tail's ids out again, so
            # the row this link covered is gone and its id holds a later row.
            if (
                values is None
                and self.positions_of[at[0]][-1] == pos
                and self._purged(at[0], starts)
            ):
                purged.append(pos)
            elif values is None or self.positions_of[at[0]][-1] != pos:
                missing.append(pos)
            elif self.previous(pos) is not None and not self.matches(pos, values):
                changed.append(pos)
        for first, last in _ranges(missing):
            self.report.add(f"{_rows_text(first, last)}: missing")
        self.report.purged = len(purged)
        for first, last in _ranges(purged):
            self.report.add(f"{_rows_text(first, last)}: purged under retention", problem=False)
        for first, last in _ranges(unlinked):
            self.report.add(f"{_rows_text(first, last)}: no link in the chain (deleted from it)")
        return changed

    def _purged(self, log_id: int, starts: list[int]) -> bool:
        """Is ``log_id`` among the ids the purges recorded?"""
        k = bisect.bisect_right(starts, log_id)
        return k > 0 and self.snap.purged[k - 1][0] <= log_id <= self.snap.purged[k - 1][1]

    def swaps(self, changed: list[int]) -> set[int]:
        """Two changed rows that match each other's links: their contents changed places."""
        swapped: set[int] = set()
        if len(changed) > _MAX_SWAP_CANDIDATES:
            return swapped
        rows = self.snap.rows
        for k, a in enumerate(changed):
            for b in changed[k + 1 :]:
                if a in swapped or b in swapped:
                    continue
                a_row, b_row = rows[self.by_position[a][0]], rows[self.by_position[b][0]]
                if self.matches(a, b_row) and self.matches(b, a_row):
                    swapped |= {a, b}
                    self.report.add(f"rows {a} and {b}: out of order (each holds the other's row)")
        return swapped

    def relinks(self, changed: list[int], swapped: set[int]) -> set[int]:
        """A link whose row is as logged but whose digest is not: the next row still
        chains from the digest the link should hold."""
        relinked: set[int] = set()
        for pos in changed:
            prev = self.previous(pos)
            if pos in swapped or pos in relinked or prev is None:
                continue
            log_id = self.by_position[pos][0]
            should = share_chain.link(prev, share_chain.encode_row(log_id, self.snap.rows[log_id]))
            following = self.by_position.get(pos + 1)
            if following is not None and following[0] in self.snap.rows:
                encoded = share_chain.encode_row(following[0], self.snap.rows[following[0]])
                fits = share_chain.link(should, encoded) == following[1]
            else:
                fits = pos == self.head.count and should == self.head.digest
            if fits:
                relinked |= {pos, pos + 1}
                self.report.add(
                    f"row {pos}: its link in the chain was rewritten (the row is as logged)"
                )
        return relinked

    def tail(self) -> None:
        """The last link against the chain's head; links past the head."""
        head, actual = self.head, self.last_linked
        if actual < head.count:
            self.report.add(
                f"the share was truncated after row {actual}"
                f" (the chain's head says {head.count} rows)"
            )
        elif actual > self.p0 and self.by_position[actual][1] != head.digest:
            self.report.add(f"the chain's head does not match the link of row {actual}")
        beyond = [p for p in self.by_position if p > head.count]
        if self.snap.stable and beyond:
            self.report.add(f"{len(beyond)} links after the chain's head ({head.count} rows)")

    def strays(self) -> None:
        """Rows that no link covers: written outside the server."""
        linked = sorted((i, p) for p, i, _ in self.snap.links)
        linked_ids = [i for i, _ in linked]
        for log_id in sorted(self.snap.rows):
            if log_id <= self.head.predating_last_id or log_id in self.positions_of:
                continue
            if not self.snap.stable and log_id > self.head.last_log_id:
                continue  # appended while we read: not ours to judge
            k = bisect.bisect_left(linked_ids, log_id)
            after = linked[k - 1][1] if k else self.p0
            self.report.add(
                f"row id {log_id} (serial {self.serial_of(log_id)}), after row {after}:"
                " not in the chain"
            )

    def digest_at(self, count: int) -> bytes | None:
        if count == self.p0:
            return self.start
        at = self.by_position.get(count)
        return None if at is None else at[1]

    def heads(
        self,
        heads: Sequence[tuple[str, bytes]],
        agency_id: str,
        verifiers: list[note.Ed25519Verifier],
    ) -> None:
        """Each signed head ((where from, note)) against the chain at its count."""
        opened: list[tuple[str, SignedHead]] = []
        for where, data in heads:
            try:
                opened.append((where, open_head(data, agency_id, verifiers)))
            except HeadError as err:
                self.report.add(f"{where}: not a head signed by this agency's log key ({err})")
        self.report.heads_checked = len(opened)
        told_truncated = False
        for where, sh in opened:
            if sh.count > self.last_linked:
                if not told_truncated:
                    self.report.add(
                        f"the share was truncated after row {self.last_linked}"
                        f" (a signed head of {sh.count} rows exists: {where}, {sh.describe()})"
                    )
                    told_truncated = True
            elif sh.count < self.p0 or self.digest_at(sh.count) != sh.digest:
                good = [
                    o.count
                    for _, o in opened
                    if o.count < sh.count and self.digest_at(o.count) == o.digest
                ]
                since = f" after row {max(good)}" if good else ""
                self.report.add(
                    f"{where} ({sh.describe()}) does not match the chain at row {sh.count}:"
                    f" rows{since} up to {sh.count} were rewritten"
                )
