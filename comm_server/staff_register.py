"""The agency's staff register (R19): who may do exchange work, for what, from where.

A CSV file (UTF-8, a BOM is accepted; lines starting with ``#`` are comments),
one permission a row; a staff member may have several rows::

    staff_id,terminals,info_kinds,legal_basis_items,valid_from,valid_until,name
    Y-1203,YOK-TAX-07|YOK-TAX-08,年金給付関係情報,二十七,2026-04-01,2027-03-31,横浜 花子

``terminals``, ``info_kinds`` and ``legal_basis_items`` hold ``|``-separated
values, or ``*`` for any. ``valid_from`` and ``valid_until`` (inclusive, ISO
dates) may be empty. ``name`` and ``note`` are optional columns, kept for
people. A row permits a query when its staff id, a terminal, the kind of
information and the legal-basis item all match and the query's date is in
its validity. A malformed file is refused whole, naming file, line and column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from renkei import limits
from renkei.errors import PermissionDenied
from renkei.logs import event

_log = logging.getLogger("comm_server.staff_register")

ANY = "*"
SEPARATOR = "|"
REQUIRED_COLUMNS = ("staff_id", "terminals", "info_kinds", "legal_basis_items")
OPTIONAL_COLUMNS = ("valid_from", "valid_until", "name", "note")
MAX_ID = limits.MAX_ID


class RegisterError(ValueError):
    """A staff register that cannot be used; the message names file, line and column."""


@dataclass(frozen=True)
class Permission:
    staff_id: str
    terminals: frozenset[str]  # empty: any
    info_kinds: frozenset[str]  # empty: any
    legal_basis_items: frozenset[str]  # empty: any
    valid_from: date | None = None
    valid_until: date | None = None
    line: int = 0

    def in_force(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )

    def allows_terminal(self, terminal_id: str) -> bool:
        return not self.terminals or terminal_id in self.terminals

    def allows_affair(self, info_kind: str, item: str) -> bool:
        return (not self.info_kinds or info_kind in self.info_kinds) and (
            not self.legal_basis_items or item in self.legal_basis_items
        )


class StaffRegister:
    """Permissions by staff id; ``check`` refuses with the most specific reason."""

    def __init__(self, permissions: Iterable[Permission], source: str = "", digest: str = ""):
        self.by_staff: dict[str, list[Permission]] = {}
        for p in permissions:
            self.by_staff.setdefault(p.staff_id, []).append(p)
        self.source = source
        self.digest = digest

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_staff.values())

    def at_terminal(
        self, staff_id: str, terminal_id: str, day: date, *, work: str = "do exchange work"
    ) -> list[Permission]:
        """The staff member's registrations in force on ``day`` that allow the terminal;
        PermissionDenied naming the first check that fails (R19's reasons)."""
        meta = {"staff_id": staff_id}
        rows = self.by_staff.get(staff_id)
        if not rows:
            raise PermissionDenied(
                "STAFF_NOT_REGISTERED",
                f"staff {staff_id!r} is not in this agency's staff register",
                {**meta, "field": "staff_id"},
            )
        rows = [p for p in rows if p.in_force(day)]
        if not rows:
            raise PermissionDenied(
                "STAFF_REGISTRATION_NOT_IN_FORCE",
                f"staff {staff_id!r} has no registration in force on {day.isoformat()}",
                {**meta, "field": "staff_id"},
            )
        rows = [p for p in rows if p.allows_terminal(terminal_id)]
        if not rows:
            raise PermissionDenied(
                "TERMINAL_NOT_PERMITTED",
                f"staff {staff_id!r} may not {work} from terminal {terminal_id!r}",
                {**meta, "field": "terminal_id", "terminal_id": terminal_id},
            )
        return rows

    def check(
        self, staff_id: str, terminal_id: str, info_kind: str, item: str, day: date
    ) -> Permission:
        """The permission that allows this; raises PermissionDenied with a reason."""
        meta = {"staff_id": staff_id}
        rows = self.at_terminal(staff_id, terminal_id, day)
        for p in rows:
            if p.allows_affair(info_kind, item):
                return p
        raise PermissionDenied(
            "AFFAIR_NOT_PERMITTED",
            f"staff {staff_id!r} may not ask for {info_kind!r} under item {item!r}",
            {**meta, "info_kind": info_kind, "legal_basis_item": item},
        )


# str.splitlines also ends a line at these; the csv reader and an editor do
# not. Split there, one row became two and every message after named the wrong
# line; a cell may hold none of them (a quoted cell may still span lines).
LINE_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def lines(text: str) -> list[str]:
    """The file's lines as the csv reader counts them: ended by \\n, \\r\\n or \\r only."""
    return io.StringIO(text, newline="").readlines()


def _uncommented(text: str) -> Iterator[str]:
    # A comment becomes an empty line, so csv's line numbers stay those of the file.
    for line in lines(text):
        yield "\n" if line.lstrip().startswith("#") else line


def _values(cell: str, where: str) -> frozenset[str]:
    cell = cell.strip()
    if not cell:
        raise RegisterError(f"{where}: is empty; write {ANY!r} for any")
    if cell == ANY:
        return frozenset()
    values = [v.strip() for v in cell.split(SEPARATOR)]
    if any(not v for v in values):
        raise RegisterError(f"{where}: an empty value between {SEPARATOR!r}")
    if ANY in values:
        raise RegisterError(f"{where}: {ANY!r} must stand alone")
    for v in values:
        if len(v) > 200 or any(ord(c) < 32 for c in v):
            raise RegisterError(f"{where}: value {v[:40]!r} is too long or has control characters")
    return frozenset(values)


def _date(cell: str, where: str) -> date | None:
    cell = cell.strip()
    if not cell:
        return None
    try:
        return date.fromisoformat(cell)
    except ValueError:
        raise RegisterError(f"{where}: {cell!r} is not a date (YYYY-MM-DD)") from None


def parse(text: str, source: str = "<register>", digest: str = "") -> StaffRegister:
    """The register in ``text``; raises RegisterError naming ``source``, line and column."""
    reader = csv.reader(_uncommented(text.removeprefix("\ufeff")), strict=True)
    header: list[str] | None = None
    permissions: list[Permission] = []
    try:
        while True:
            line = reader.line_num + 1  # where the row starts, should a quoted cell span lines
            row = next(reader, None)
            if row is None:
                break
            if not row or all(not c.strip() for c in row):
                continue
            for n, cell in enumerate(row, start=1):
                if found := LINE_BREAKS.search(cell):
                    raise RegisterError(
                        f"{source}: line {line}, column {n}: a line separator"
                        f" (U+{ord(found.group()):04X}) inside a cell"
                    )
            if header is None:
                header = [c.strip() for c in row]
                known = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
                for n, name in enumerate(header, start=1):
                    if name not in known:
                        raise RegisterError(
                            f"{source}: line {line}, column {n}: unknown column {name!r};"
                            f" known: {', '.join(known)}"
                        )
                missing = [c for c in REQUIRED_COLUMNS if c not in header]
                if missing:
                    raise RegisterError(
                        f"{source}: line {line}: missing column(s) {', '.join(missing)}"
                    )
                if len(set(header)) != len(header):
                    raise RegisterError(f"{source}: line {line}: a column is named twice")
                continue
            if len(row) != len(header):
                raise RegisterError(
                    f"{source}: line {line}: {len(row)} cells; the header has {len(header)}"
                )
            cells = dict(zip(header, row, strict=True))

            def where(column: str, line: int = line, header: list[str] = header) -> str:
                return f"{source}: line {line}, column {header.index(column) + 1} ({column})"

            staff_id = cells["staff_id"].strip()
            if not staff_id or len(staff_id) > MAX_ID or any(ord(c) < 32 for c in staff_id):
                raise RegisterError(f"{where('staff_id')}: must be 1 to {MAX_ID} characters")
            permission = Permission(
                staff_id=staff_id,
                terminals=_values(cells["terminals"], where("terminals")),
                info_kinds=_values(cells["info_kinds"], where("info_kinds")),
                legal_basis_items=_values(cells["legal_basis_items"], where("legal_basis_items")),
                valid_from=_date(cells.get("valid_from", ""), where("valid_from"))
                if "valid_from" in cells
                else None,
                valid_until=_date(cells.get("valid_until", ""), where("valid_until"))
                if "valid_until" in cells
                else None,
                line=line,
            )
            if (
                permission.valid_from is not None
                and permission.valid_until is not None
                and permission.valid_until < permission.valid_from
            ):
                raise RegisterError(f"{where('valid_until')}: before valid_from")
            permissions.append(permission)
    except csv.Error as err:
        raise RegisterError(f"{source}: line {reader.line_num}: {err}") from None
    if header is None:
        raise RegisterError(f"{source}: no header line")
    return StaffRegister(permissions, source, digest)


def load(path: Path) -> StaffRegister:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise RegisterError(f"{path}: cannot read the staff register: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        # The line the bad byte is on, counted as the reader counts (the bytes before it decode).
        line = len(lines(raw[: err.start].decode("utf-8") + "?"))
        raise RegisterError(f"{path}: line {line}: not UTF-8 (byte {err.start})") from None
    return parse(text, str(path), hashlib.sha256(raw).hexdigest())


def fingerprint(path: Path) -> str:
    """Changes whenever the file's bytes do ("" when it cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


class RegisterFile:
    """The register as last loaded from ``path``; ``refresh`` picks up changes.

    A change that does not load is refused whole (logged), and the register
    in force stays: a typo must not lock every clerk out, nor let anyone in.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.register = load(path)

    def refresh(self) -> bool:
        """Reload if the file changed; True when a new register took effect."""
        if fingerprint(self.path) == self.register.digest:
            return False
        try:
            register = load(self.path)
        except RegisterError as err:
            event(
                _log,
                "staff register refused; the one in force stays",
                logging.ERROR,
                error=str(err),
            )
            # Remember the bad bytes so the error is logged once per change, not per poll.
            self.register = StaffRegister(
                (p for ps in self.register.by_staff.values() for p in ps),
                self.register.source,
                fingerprint(self.path),
            )
            return False
        self.register = register  # one assignment: a check in flight keeps the one it read
        event(_log, "staff register loaded", path=str(self.path), permissions=len(register))
        return True


@dataclass(frozen=True)
class Grant:
    """One row to write (deployments, tests)."""

    staff_id: str
    terminals: Sequence[str] = (ANY,)
    info_kinds: Sequence[str] = (ANY,)
    legal_basis_items: Sequence[str] = (ANY,)
    valid_from: date | None = None
    valid_until: date | None = None
    name: str = ""


def render(grants: Iterable[Grant], comment: str = "") -> str:
    out = io.StringIO()
    for line in comment.splitlines():
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*REQUIRED_COLUMNS, "valid_from", "valid_until", "name"))
    for g in grants:
        writer.writerow(
            [
                g.staff_id,
                SEPARATOR.join(g.terminals),
                SEPARATOR.join(g.info_kinds),
                SEPARATOR.join(g.legal_basis_items),
                g.valid_from.isoformat() if g.valid_from else "",
                g.valid_until.isoformat() if g.valid_until else "",
                g.name,
            ]
        )
    return out.getvalue()
