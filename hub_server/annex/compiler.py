"""Compile Annex Table 2 (別表第二) of the My Number Act into the hub's approval rules.

The table has one row per (item, requester, affair, provider, info). Requester and
provider cells describe *classes* of bodies in legal Japanese; info cells name
*kinds* of information, often by a short name that an earlier row defined. This
module reads those cells and produces ``hub_server.policy.Item`` values, one per
item, with one ``Provision`` per row.

Requester and provider cells ("parties")
  * enumerations "A又はB", "A若しくはB又はC", "A、B又はC" are split at the separators
    outside parentheticals; a cut that leaves a left part that cannot end a party
    ("健康保険法第五十五条" 又は "第百二十八条に規定する…者") is undone;
  * "T（Xをいう。以下同じ。）" defines the term T as the parties X, wherever the
    table uses T later (医療保険者); terms the table uses but defines elsewhere in the
    Act (都道府県知事等, 共済組合等, 社会福祉協議会) come from ``data/definitions.toml``;
  * a qualifying clause before an enumeration ("…に規定する事業主体である都道府県知事又は
    市町村長", "…の支給を行う全国健康保険協会、健康保険組合、…") qualifies every member;
    it is kept as a note and does not create a class;
  * "（…に限る。）" is kept as a note, "（…を含む。）" adds the included parties,
    "（昭和…年法律第…号）" is dropped;
  * a plain body name ("厚生労働大臣", "後期高齢者医療広域連合") is its own class;
    "Xに規定するY" with Y a plain body name is the class Y (noted as defined in X);
  * a description by function ("…の支給を行うこととされている者") or by reference to
    another law ("…に規定する事業主") is a *described* class, named by its text: the
    statute does not enumerate its members, so the agency registry decides who is in it.
    "Aその他の…者" adds the classes of A as well (A is named as a member).

Info cells ("kinds")
  * the trailing "であって主務省令で定めるもの" is dropped;
  * the cell is split after each "…情報" / "…事項" at an enumeration separator;
  * "…（以下「N」という。）" makes N the kind's name, recognised wherever later rows use N;
    a kind without a short name is named by its description.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

from hub_server.annex.text import (
    DEFINITION_RE,
    INCLUSION_RE,
    LAW_NUMBER_RE,
    LIMITATION_RE,
    MINISTERIAL_SUFFIX,
    SHORT_NAME_RE,
    Paren,
    Piece,
    item_key,
    joined,
    kanji_number,
    merge,
    split_top_level,
    strip_suffix,
    tokenize,
)
from hub_server.policy import Item, Provision, TablePolicy, items_version

PACKAGE = "hub_server.annex"
TABLE_RESOURCE = "data/annex_table_2_2015.tsv"
DEFINITIONS_RESOURCE = "data/definitions.toml"
EXPLANATIONS_RESOURCE = "data/report_explanations.toml"
COLUMNS = ("item", "requester", "affair", "provider", "info")

Column = Literal["item", "requester", "affair", "provider", "info"]
ClassKind = Literal["body", "described"]

# What a member of a party enumeration can end with.
_PARTY_END_RE = re.compile(
    r"(者|長|大臣|知事|機構|協会|組合|事業団|連合会|広域連合|基金|委員会|協議会|共済会|センター|事業主|等)$"
)
# A plain body name ends with one of these and cites no law.
_BODY_SUFFIX_RE = re.compile(
    r"(大臣|知事|長|機構|協会|組合|事業団|連合会|広域連合|基金|委員会|協議会|共済会|センター)$"
)
_LAW_MARKER_RE = re.compile(
    r"法第|第[一二三四五六七八九十百千]+条|に規定する|に掲げる|による|により|において|その他|[（）「」]"
)
# A clause qualifying the first member of an enumeration, e.g. "…事業主体である".
_QUALIFIER_RE = re.compile(r"^(?P<qualifier>.*(?:である|を行う))(?P<rest>.+)$")
_REFERENCE_RE = re.compile(r"^(?P<source>.+)に規定する(?P<body>[^、]+)$")
_DESCRIBED_RE = re.compile(r"に規定する|に掲げる")
_FUNCTIONAL_SUFFIX = "こととされている者"
_KIND_END_RE = re.compile(r"(情報|事項)$")
_SHORT_NAME_LIKE_RE = re.compile(r"^[^（）、]*関係情報$")
_DESCRIPTION_MARKER_RE = re.compile(r"による|に関する|に規定する")


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class ClassInfo:
    """A class of agencies the compiled table uses."""

    name: str
    kind: ClassKind  # "body": a plain body name; "described": by function or reference
    defined: str  # where the name first arises: a table cell or a term's definition
    used: tuple[str, ...]  # "item 一 requester", ... in statute order
    notes: tuple[str, ...]  # qualifications the table attaches to it


@dataclass(frozen=True)
class TermInfo:
    """A defined term: 医療保険者 (in the table), 共済組合等 (definitions.toml), ..."""

    name: str
    text: str  # the defining words
    source: str
    kind: Literal["parties", "laws"]
    classes: frozenset[str]  # parties: the classes it stands for; laws: the laws
    notes: tuple[str, ...]


@dataclass(frozen=True)
class KindInfo:
    """A kind of information: a short name the table defines, or a description."""

    name: str
    description: str
    short_name: bool
    item: str  # the item that defines it (or first names it)
    row: int
    used_in: tuple[str, ...]  # items


@dataclass(frozen=True)
class Affair:
    item: str
    text: str  # without "であって主務省令で定めるもの"
    original: str


@dataclass(frozen=True)
class CompiledRow:
    row: int  # 1-based data row (the header is row 0)
    item: str
    requester: frozenset[str]
    provider: frozenset[str]
    kinds: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Finding:
    row: int
    item: str
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row} (item {self.item}) {self.column}: {self.message}"


@dataclass(frozen=True)
class Compiled:
    items: list[Item]
    report: list[str]  # unresolved and unexplained, one line per row and column
    explained: list[tuple[str, str]]  # (report line, explanation) filtered out of ``report``
    classes: dict[str, ClassInfo]
    kinds: dict[str, KindInfo]
    terms: dict[str, TermInfo]
    affairs: dict[str, Affair]
    rows: list[CompiledRow]
    rules: frozenset[tuple[str, str, str, str]]  # (item, requester class, provider class, kind)
    version: str

    def policy(self) -> TablePolicy:
        return TablePolicy(self.items, self.version)

    def item(self, item: str) -> Item:
        for entry in self.items:
            if entry.item == item:
                return entry
        raise KeyError(item)

    def counts(self) -> dict[str, int]:
        return {
            "rows": len(self.rows),
            "items": len(self.items),
            "classes": len(self.classes),
            "kinds": len(self.kinds),
            "terms": len(self.terms),
            "rules": len(self.rules),
        }


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class Definition:
    """A term the table uses but the Act defines elsewhere (data/definitions.toml)."""

    name: str
    text: str
    source: str


@dataclass(frozen=True)
class Explanation:
    row: int
    column: str
    explanation: str


@dataclass(frozen=True)
class Row:
    row: int
    item: str
    requester: str
    affair: str
    provider: str
    info: str


def _resource_text(name: str) -> str:
    return resources.files(PACKAGE).joinpath(name).read_text(encoding="utf-8")


def table_text() -> str:
    return _resource_text(TABLE_RESOURCE)


def parse_table(text: str) -> list[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ValueError(f"annex table: header must be {'/'.join(COLUMNS)}, got {header!r}")
    rows = []
    for n, cells in enumerate(reader, start=1):
        if len(cells) != len(COLUMNS):
            raise ValueError(f"annex table row {n}: {len(cells)} columns, want {len(COLUMNS)}")
        if not all(c.strip() for c in cells):
            raise ValueError(f"annex table row {n}: empty cell")
        rows.append(Row(n, *(c.strip() for c in cells)))
    if not rows:
        raise ValueError("annex table: no rows")
    return rows


def parse_definitions(text: str, source: str = DEFINITIONS_RESOURCE) -> list[Definition]:
    data = tomllib.loads(text)
    out = []
    for n, entry in enumerate(data.get("term", [])):
        try:
            out.append(Definition(str(entry["name"]), str(entry["text"]), str(entry["source"])))
        except KeyError as err:
            raise ValueError(f"{source}: term[{n}] lacks {err}") from None
    return out


def parse_explanations(text: str, source: str = EXPLANATIONS_RESOURCE) -> list[Explanation]:
    data = tomllib.loads(text)
    out = []
    for n, entry in enumerate(data.get("explained", [])):
        try:
            out.append(
                Explanation(int(entry["row"]), str(entry["column"]), str(entry["explanation"]))
            )
        except KeyError as err:
            raise ValueError(f"{source}: explained[{n}] lacks {err}") from None
    return out


# ------------------------------------------------------------------ parties


@dataclass
class _Parsed:
    """One party cell (or term definition), read but not yet resolved."""

    names: list[str] = field(default_factory=list)  # members, parentheticals removed
    inclusions: list[str] = field(default_factory=list)  # "（Xを含む。）": X, to resolve
    definitions: list[tuple[str, str]] = field(default_factory=list)  # (term, defining text)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _ends_party(piece: Piece) -> bool:
    return bool(_PARTY_END_RE.search(piece.plain))


def _is_body(name: str) -> bool:
    return bool(_BODY_SUFFIX_RE.search(name)) and not _LAW_MARKER_RE.search(name)


def parse_parties(text: str) -> _Parsed:
    """Split a party description into members; collect its definitions and notes."""
    out = _Parsed()
    try:
        tokens = tokenize(text)
    except ValueError as err:
        out.errors.append(str(err))
        return out
    merged: list[Piece] = []
    for piece in split_top_level(tokens):
        if merged and not _ends_party(merged[-1]):
            merged[-1] = merge(merged[-1], piece)
        else:
            merged.append(piece)
    for piece in merged:
        before = ""
        for token in piece.tokens:
            if isinstance(token, str):
                before += token
                continue
            if m := DEFINITION_RE.match(token.text):
                out.definitions.append((before, m["body"]))
            elif m := INCLUSION_RE.match(token.text):
                out.inclusions.append(m["body"])
                out.notes.append(f"{before}: including {m['body']}")
            elif m := LIMITATION_RE.match(token.text):
                out.notes.append(f"{before}: limited to {m['body']}")
            elif LAW_NUMBER_RE.match(token.text):
                pass
            else:
                out.errors.append(f"unrecognised parenthetical {token.text!r}")
        name = piece.plain
        if not name:
            out.errors.append(f"empty member in {text!r}")
            continue
        out.names.append(name)
    if len(out.names) >= 2:
        m = _QUALIFIER_RE.match(out.names[0])
        if m and _is_body(m["rest"]):
            out.names[0] = m["rest"]
            out.notes.append(f"{'、'.join(out.names)}: qualified by {m['qualifier']}")
    return out


@dataclass
class _ClassRecord:
    kind: ClassKind
    defined: str
    notes: set[str] = field(default_factory=set)
    used: set[str] = field(default_factory=set)


class _Resolver:
    """Resolves party descriptions to class names, expanding defined terms."""

    def __init__(self) -> None:
        self.term_texts: dict[str, tuple[str, str]] = {}  # party term -> (text, source)
        self.law_terms: dict[str, tuple[str, str]] = {}
        self.term_classes: dict[str, frozenset[str]] = {}
        self.term_notes: dict[str, tuple[str, ...]] = {}
        self._resolving: set[str] = set()
        self.classes: dict[str, _ClassRecord] = {}
        self.referenced_by: dict[str, str] = {}  # body class -> the law defining it
        self.errors: list[tuple[str, str]] = []  # (where, message) found while expanding terms

    # -- definitions (pass 1)

    def define(self, term: str, text: str, source: str) -> str | None:
        """Register a definition; return an error message on a conflicting redefinition."""
        if not term or _LAW_MARKER_RE.search(term):
            return f"cannot tell what term {text!r} defines (got {term!r})"
        target = self.law_terms if term.endswith("法") else self.term_texts
        existing = target.get(term)
        if existing is not None and existing[0] != text:
            return f"term {term!r} defined twice: {existing[1]} and {source}"
        if existing is None:
            target[term] = (text, source)
            for nested, nested_text in parse_parties(text).definitions:
                if error := self.define(nested, nested_text, f"{source}, inside {term}"):
                    return error
        return None

    # -- resolution (pass 2)

    def _record(self, name: str, kind: ClassKind, where: str) -> None:
        if name not in self.classes:
            self.classes[name] = _ClassRecord(kind, where)

    def term(self, name: str) -> frozenset[str]:
        if name in self.term_classes:
            return self.term_classes[name]
        if name in self._resolving:
            self.errors.append((name, f"term {name!r} is defined in terms of itself"))
            return frozenset()
        self._resolving.add(name)
        text, source = self.term_texts[name]
        classes, notes, errors = self.resolve(text, f"term {name} ({source})")
        for message in errors:
            self.errors.append((source, f"in the definition of {name}: {message}"))
        self._resolving.discard(name)
        self.term_classes[name] = classes
        self.term_notes[name] = tuple(notes)
        return classes

    def resolve(self, text: str, where: str) -> tuple[frozenset[str], list[str], list[str]]:
        """Classes, notes and errors for one party description."""
        parsed = parse_parties(text)
        classes: set[str] = set()
        notes = list(parsed.notes)
        errors = list(parsed.errors)
        for name in parsed.names:
            found, note, error = self._name(name, where)
            classes |= found
            if note:
                notes.append(note)
            if error:
                errors.append(error)
        for note in parsed.notes:
            for name in classes:
                self.classes[name].notes.add(f"{where}: {note}")
        for included in parsed.inclusions:
            found, more_notes, more_errors = self.resolve(included, where)
            classes |= found
            notes += more_notes
            errors += more_errors
        if not classes and not errors:
            errors.append(f"could not resolve {text!r}")
        return frozenset(classes), notes, errors

    def _name(self, name: str, where: str) -> tuple[frozenset[str], str, str]:
        if name in self.term_texts:
            return self.term(name), "", ""
        if _is_body(name):
            self._record(name, "body", where)
            return frozenset({name}), "", ""
        if name.endswith(_FUNCTIONAL_SUFFIX):
            self._record(name, "described", where)
            found = {name}
            note = ""
            head = name.split("その他の", 1)[0] if "その他の" in name else ""
            if head and (head in self.term_texts or _is_body(head)):
                found |= self._name(head, where)[0]
                note = f"{name}: includes {head}, which it names"
            return frozenset(found), note, ""
        m = _REFERENCE_RE.match(name)
        if m and _is_body(m["body"]):
            body, source = m["body"], m["source"]
            previous = self.referenced_by.setdefault(body, source)
            if previous != source:
                return (
                    frozenset(),
                    "",
                    f"{body!r} is defined by both {previous!r} and {source!r}",
                )
            self._record(body, "body", where)
            self.classes[body].notes.add(f"as defined in {source}")
            return frozenset({body}), "", ""
        if _DESCRIBED_RE.search(name) and _PARTY_END_RE.search(name):
            self._record(name, "described", where)
            return frozenset({name}), "", ""
        return frozenset(), "", f"could not resolve {name!r}"


# ------------------------------------------------------------------ kinds of information


@dataclass(frozen=True)
class _KindPiece:
    name: str
    description: str
    defines: bool  # this piece defines ``name`` as a short name


def _ends_kind(piece: Piece) -> bool:
    last = piece.tokens[-1] if piece.tokens else ""
    if isinstance(last, Paren):
        return bool(SHORT_NAME_RE.match(last.text))
    return bool(_KIND_END_RE.search(piece.plain))


def split_kinds(text: str) -> tuple[list[_KindPiece], list[str]]:
    """The kinds an info cell names (short names as written, not yet looked up)."""
    body, _ = strip_suffix(text)
    try:
        tokens = tokenize(body)
    except ValueError as err:
        return [], [str(err)]
    merged: list[Piece] = []
    for piece in split_top_level(tokens):
        if merged and not _ends_kind(merged[-1]):
            merged[-1] = merge(merged[-1], piece)
        else:
            merged.append(piece)
    kinds: list[_KindPiece] = []
    errors: list[str] = []
    for piece in merged:
        last = piece.tokens[-1] if piece.tokens else ""
        if isinstance(last, Paren) and (m := SHORT_NAME_RE.match(last.text)):
            kinds.append(_KindPiece(m["name"], joined(list(piece.tokens[:-1])), True))
        elif _ends_kind(piece):
            kinds.append(_KindPiece(piece.text, piece.text, False))
        else:
            errors.append(f"not a kind of information: {piece.text!r}")
    return kinds, errors


# ------------------------------------------------------------------ compile


def compile_annex() -> Compiled:
    """Compile the shipped statute with the shipped definitions and explanations."""
    return compile_table(
        table_text(),
        parse_definitions(_resource_text(DEFINITIONS_RESOURCE)),
        parse_explanations(_resource_text(EXPLANATIONS_RESOURCE)),
    )


def compile_table(
    text: str,
    definitions: Iterable[Definition] = (),
    explanations: Iterable[Explanation] = (),
) -> Compiled:
    rows = parse_table(text)
    findings: list[Finding] = []
    resolver = _Resolver()

    def where(row: Row, column: str) -> str:
        return f"row {row.row} (item {row.item}) {column}"

    # Pass 1: every definition, wherever it is, so later (or earlier) rows can use it.
    for d in definitions:
        if error := resolver.define(d.name, d.text, f"definitions.toml: {d.source}"):
            findings.append(Finding(0, "-", "definitions", error))
    short_names: dict[str, tuple[str, Row]] = {}
    for row in rows:
        for column in ("requester", "provider"):
            cell = getattr(row, column)
            for term, defining in parse_parties(cell).definitions:
                if error := resolver.define(term, defining, where(row, column)):
                    findings.append(Finding(row.row, row.item, column, error))
        for piece in split_kinds(row.info)[0]:
            if not piece.defines:
                continue
            seen = short_names.get(piece.name)
            if seen is not None and seen[0] != piece.description:
                findings.append(
                    Finding(
                        row.row,
                        row.item,
                        "info",
                        f"short name {piece.name!r} already defined differently "
                        f"in row {seen[1].row}",
                    )
                )
            else:
                short_names.setdefault(piece.name, (piece.description, row))
    by_description = {desc: name for name, (desc, _row) in short_names.items()}

    # Pass 2: resolve every cell.
    compiled_rows: list[CompiledRow] = []
    kinds: dict[str, tuple[str, bool, Row]] = {}  # name -> (description, short, defining row)
    kind_use: dict[str, set[str]] = defaultdict(set)
    affairs: dict[str, Affair] = {}
    for row in rows:
        try:
            item_key(row.item)
        except ValueError as err:
            findings.append(Finding(row.row, row.item, "item", str(err)))
        notes: list[str] = []
        sides: dict[str, frozenset[str]] = {}
        for column in ("requester", "provider"):
            classes, cell_notes, errors = resolver.resolve(getattr(row, column), where(row, column))
            sides[column] = classes
            notes += [f"{column}: {n}" for n in cell_notes]
            findings += [Finding(row.row, row.item, column, e) for e in errors]
            for name in classes:
                resolver.classes[name].used.add(f"{row.item}\t{column}")

        pieces, errors = split_kinds(row.info)
        findings += [Finding(row.row, row.item, "info", e) for e in errors]
        row_kinds: list[str] = []
        for piece in pieces:
            if piece.defines:
                name, description, short = piece.name, piece.description, True
            elif piece.name in short_names:
                name, description, short = piece.name, short_names[piece.name][0], True
            elif piece.name in by_description:
                name = by_description[piece.name]
                description, short = piece.name, True
                notes.append(f"info: {piece.name!r} is the description of {name}")
            elif _SHORT_NAME_LIKE_RE.match(piece.name) and not _DESCRIPTION_MARKER_RE.search(
                piece.name
            ):
                findings.append(
                    Finding(
                        row.row,
                        row.item,
                        "info",
                        f"could not resolve {piece.name!r}: no row defines this short name",
                    )
                )
                continue
            else:
                name, description, short = piece.name, piece.description, False
            if name not in kinds:
                if short:
                    kinds[name] = (short_names[name][0], True, short_names[name][1])
                else:
                    kinds[name] = (description, False, row)
            kind_use[name].add(row.item)
            if name not in row_kinds:
                row_kinds.append(name)
        if not row.info.endswith(MINISTERIAL_SUFFIX):
            notes.append("info: no closing であって主務省令で定めるもの")

        affair_text, had_suffix = strip_suffix(row.affair)
        if not had_suffix:
            notes.append("affair: no closing であって主務省令で定めるもの")
        previous_affair = affairs.get(row.item)
        if previous_affair is None:
            affairs[row.item] = Affair(row.item, affair_text, row.affair)
        elif previous_affair.original != row.affair:
            findings.append(
                Finding(row.row, row.item, "affair", "differs from the item's earlier rows")
            )
        compiled_rows.append(
            CompiledRow(
                row.row,
                row.item,
                sides["requester"],
                sides["provider"],
                tuple(row_kinds),
                tuple(notes),
            )
        )
        if not (sides["requester"] and sides["provider"] and row_kinds):
            findings.append(Finding(row.row, row.item, "row", "yields no rule"))

    for where_, message in resolver.errors:
        findings.append(Finding(0, "-", "definitions", f"{where_}: {message}"))

    items, rules, item_findings = _items(compiled_rows, affairs)
    findings += item_findings

    report, explained = _apply_explanations(findings, list(explanations))
    return Compiled(
        items=items,
        report=report,
        explained=explained,
        classes=_class_infos(resolver),
        kinds={
            name: KindInfo(
                name=name,
                description=description,
                short_name=short,
                item=definer.item,
                row=definer.row,
                used_in=tuple(sorted(kind_use[name], key=_safe_item_key)),
            )
            for name, (description, short, definer) in kinds.items()
        },
        terms=_term_infos(resolver),
        affairs=affairs,
        rows=compiled_rows,
        rules=frozenset(rules),
        version=policy_version(items),
    )


def _safe_item_key(item: str) -> tuple[int, ...]:
    try:
        return item_key(item)
    except ValueError:
        return (10**9,)


def _items(
    rows: list[CompiledRow], affairs: Mapping[str, Affair]
) -> tuple[list[Item], set[tuple[str, str, str, str]], list[Finding]]:
    grouped: dict[str, list[CompiledRow]] = {}
    for row in rows:
        grouped.setdefault(row.item, []).append(row)
    items = []
    rules: set[tuple[str, str, str, str]] = set()
    findings = []
    for item, group in grouped.items():
        requester = group[0].requester
        for row in group[1:]:
            if row.requester != requester:
                findings.append(
                    Finding(row.row, item, "requester", "differs from the item's first row")
                )
        provisions = tuple(
            Provision(row.provider, frozenset(row.kinds))
            for row in group
            if row.provider and row.kinds
        )
        items.append(Item(item, affairs[item].text, requester, provisions))
        for p in provisions:
            for r in requester:
                for pr in p.provider_classes:
                    for k in p.info_kinds:
                        rules.add((item, r, pr, k))
    return items, rules, findings


def _class_infos(resolver: _Resolver) -> dict[str, ClassInfo]:
    out = {}
    for name, rec in sorted(resolver.classes.items()):
        used = sorted(
            (u.split("\t") for u in rec.used),
            key=lambda pair: (_safe_item_key(pair[0]), pair[1]),
        )
        out[name] = ClassInfo(
            name=name,
            kind=rec.kind,
            defined=rec.defined,
            used=tuple(f"item {i} {c}" for i, c in used),
            notes=tuple(sorted(rec.notes)),
        )
    return out


def _term_infos(resolver: _Resolver) -> dict[str, TermInfo]:
    out: dict[str, TermInfo] = {}
    for name, (text, source) in resolver.term_texts.items():
        classes = resolver.term(name)
        out[name] = TermInfo(
            name, text, source, "parties", classes, resolver.term_notes.get(name, ())
        )
    for name, (text, source) in resolver.law_terms.items():
        laws = frozenset(p.plain for p in split_top_level(tokenize(text)) if p.plain.endswith("法"))
        out[name] = TermInfo(name, text, source, "laws", laws, ())
    return out


def _apply_explanations(
    findings: list[Finding], explanations: list[Explanation]
) -> tuple[list[str], list[tuple[str, str]]]:
    index = {(e.row, e.column): e for e in explanations}
    used: set[tuple[int, str]] = set()
    report: list[str] = []
    explained: list[tuple[str, str]] = []
    for finding in findings:
        key = (finding.row, finding.column)
        if key in index:
            used.add(key)
            explained.append((str(finding), index[key].explanation))
        else:
            report.append(str(finding))
    for key, e in index.items():
        if key not in used:
            report.append(
                f"report_explanations.toml: row {e.row} {e.column} explains nothing "
                "(the compiler no longer reports it; remove the entry)"
            )
    return report, explained


def policy_version(items: Iterable[Item]) -> str:
    """The policy version, the same scheme as any other table's (``items_version``)."""
    return items_version(items)


__all__ = [
    "Affair",
    "ClassInfo",
    "Compiled",
    "CompiledRow",
    "Definition",
    "Explanation",
    "KindInfo",
    "TermInfo",
    "compile_annex",
    "compile_table",
    "kanji_number",
    "parse_parties",
    "policy_version",
    "split_kinds",
]
