"""Hostile records (issue 12, finding 4): the XML and JSON limits of
``comm_server.mapping.documents``, every mapper's "MappingError and nothing else"
on any bytes, and ``renkei mapper check`` answering them in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comm_server.mapping import layout
from comm_server.mapping.documents import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_INT_DIGITS,
    DocumentError,
    parse_json,
    parse_xml,
)
from comm_server.mapping.errors import MappingError
from comm_server.mapping.mapper import SpecMapper
from comm_server.mapping.registry import load_mapper
from ops.cli import main
from renkei.layout.v1 import layout_pb2

FIXTURES = Path(__file__).parent / "fixtures" / "mappers"
FORMATS = ("fixed_tax", "soap_pension", "csv_insurer", "json_http")
PENSION = "年金給付関係情報"
NK = b'xmlns:nk="urn:renkei:stub:nenkin:v1"'

ENTITIES = '<!ENTITY a "aaaaaaaaaa">' + "".join(
    f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(7)
)
# 10^8 "a"s once expanded: expat alone spends 100-750 ms before its amplification limit.
LAUGHS = f'<?xml version="1.0" encoding="utf-16"?><!DOCTYPE a [{ENTITIES}]><a>&h;&h;</a>'
DTD_REFUSED = "a DTD (<!DOCTYPE>): DTDs and entity declarations are refused"


def _deep_xml(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def _deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# -- the limits, one place ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'<?xml version="" encoding="o"?><a/>', "unknown encoding: o"),
        (b'<?xml version="1.0" encoding="utf-7"?><a/>', "multi-byte encodings are not supported"),
        (b'<?xml version="1.0" encoding="cp932"?><a/>', "multi-byte encodings are not supported"),
        (LAUGHS.encode("utf-16"), DTD_REFUSED),
        (LAUGHS.encode("utf-16-be"), DTD_REFUSED),  # no BOM: expat guesses UTF-16 from "<"
        (LAUGHS.replace("utf-16", "utf-8").encode(), DTD_REFUSED),
        (LAUGHS.replace('encoding="utf-16"', 'encoding="latin-1"').encode(), DTD_REFUSED),
        (LAUGHS.split("?>", 1)[1].encode(), DTD_REFUSED),  # no declaration
        (b'<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>', DTD_REFUSED),
        (_deep_xml(1000), f"nested deeper than {MAX_DEPTH} levels"),
        (_deep_xml(MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
        ('<?xml version="1.0" encoding="utf-16"?>'.encode("utf-16") + b"x", "not well-formed"),
        (b"<a><b></a>", "not well-formed XML: mismatched tag"),
        (b"\x00\xff<<<not xml at all", "not well-formed XML"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_xml_refusals_name_the_problem(raw: bytes, words: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_xml(raw)
    assert words in str(caught.value)


def test_billion_laughs_is_refused_at_the_dtd_before_any_expansion() -> None:
    # Refused at <!DOCTYPE: no expansion happens, so expat's own amplification limit
    # ("limit on input amplification factor ... breached") is never what stops it.
    for raw in (LAUGHS.encode("utf-16"), LAUGHS.replace("utf-16", "utf-8").encode()):
        with pytest.raises(DocumentError) as caught:
            parse_xml(raw)
        assert str(caught.value) == DTD_REFUSED


@pytest.mark.parametrize(
    "raw",
    [
        _deep_xml(MAX_DEPTH),
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><a>\xe3\x81\x82</a>',
        b"\xef\xbb\xbf<a/>",
        '<?xml version="1.0" encoding="utf-16"?><a>あ</a>'.encode("utf-16"),
        '<?xml version="1.0" encoding="iso-8859-1"?><a>é</a>'.encode("latin-1"),
        b"<a><![CDATA[<!DOCTYPE is text here]]></a>"[:0] + b"<a>&lt;!DOCTYPE</a>",
        b"<a>" + b"<b/>" * 1000 + b"</a>",  # wide, not deep
    ],
)
def test_xml_within_the_limits_parses(raw: bytes) -> None:
    assert parse_xml(raw).tag == "a"


def test_an_oversized_document_is_refused_before_parsing() -> None:
    raw = b"<a>" + b" " * MAX_DOCUMENT_BYTES + b"</a>"
    with pytest.raises(DocumentError, match="over the limit"):
        parse_xml(raw)
    with pytest.raises(DocumentError, match="over the limit"):
        parse_json(b" " * (MAX_DOCUMENT_BYTES + 1))


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_deep_json(1000), f"nested deeper than {MAX_DEPTH} levels"),
        (_deep_json(100_000)[:100_000], f"nested deeper than {MAX_DEPTH} levels"),
        (_deep_json(MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "nested deeper"),
        (b'{"a": ' + b"1" * 4301 + b"}", "an integer of 4301 digits"),
        (b"-" + b"1" * (MAX_INT_DIGITS + 1), f"an integer of {MAX_INT_DIGITS + 1} digits"),
        (b'{"a": "\\ud800"}', "a lone surrogate"),
        (b'{"a": ["x", {"b": "\\udfff"}]}', "a lone surrogate"),
        (b'{"\\ud83d": 1}', "a lone surrogate"),
        (b'"\\ude00\\ud83d"', "a lone surrogate"),  # a pair in the wrong order
        (b"[NaN]", "NaN is not JSON"),
        (b"[-Infinity]", "-Infinity is not JSON"),
        (b"[1e999]", "a number out of range"),
        (b"\xff{}", "not valid utf-8 at byte 0"),
        (b"{", "not JSON"),
    ],
)
def test_json_refusals_name_the_problem(raw: bytes, words: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_json(raw)
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (_deep_json(MAX_DEPTH), _deep_json(MAX_DEPTH).decode()),
        (b"1" * MAX_INT_DIGITS, int("1" * MAX_INT_DIGITS)),
        (b'"\\ud83d\\ude00"', "\U0001f600"),
        (b'"\\\\ud800"', "\\ud800"),  # an escaped backslash, then plain text
        (b"[" + b"{}," * 500 + b"{}]", [{}] * 501),
        (b"1.5", 1.5),
    ],
)
def test_json_within_the_limits_parses(raw: bytes, value: object) -> None:
    parsed = parse_json(raw)
    if isinstance(value, str) and value.startswith("["):
        depth = 0
        while isinstance(parsed, list) and parsed:
            parsed, depth = parsed[0], depth + 1
        assert depth == MAX_DEPTH - 1
    else:
        assert parsed == value


# -- every mapper: a MappingError that names the problem ---------------------------------


def _refused(fmt: str, kind: str, raw: bytes) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_mapper(fmt).decode(kind, raw)
    assert caught.value.reason == "LEGACY_RECORD_INVALID"
    return caught.value


def _benefit(inner: bytes) -> bytes:
    return b"<nk:Benefit " + NK + b">" + inner + b"</nk:Benefit>"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'<?xml version="" encoding="o"?>', "unknown encoding: o"),
        (b'<?xml version="" encoding="o"?><a/>', "unknown encoding: o"),
        (b'<?xml version="1.0" encoding="utf-7"?><a/>', "multi-byte encodings"),
        (LAUGHS.encode("utf-16"), DTD_REFUSED),
        (LAUGHS.replace("utf-16", "utf-8").encode(), DTD_REFUSED),
        (_deep_xml(1000), "nested deeper than 64 levels"),
        (_benefit(b"<nk:NengakuYen>" + _deep_xml(1000) + b"</nk:NengakuYen>"), "nested deeper"),
    ],
    ids=[
        "empty-version",
        "empty-version-element",
        "utf-7",
        "laughs-utf16",
        "laughs-utf8",
        "deep",
        "deep-field",
    ],
)
@pytest.mark.parametrize("kind", [PENSION, layout.PERSON_KIND])
def test_soap_pension_refuses_hostile_xml(kind: str, raw: bytes, words: str) -> None:
    assert words in _refused("soap_pension", kind, raw).message


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (_deep_json(1000), "nested deeper than 64 levels"),
        (b'{"personId": ' + _deep_json(900) + b"}", "nested deeper than 64 levels"),
        (b'{"fiscalYear": ' + b"2" * 4301 + b"}", "an integer of 4301 digits"),
        (b'{"personId": "\\ud800", "name": "a"}', "a lone surrogate"),
        (b'{"\\udc00": 1}', "a lone surrogate"),
        (b'{"fiscalYear": NaN}', "NaN is not JSON"),
    ],
    ids=["deep", "deep-field", "4301-digits", "lone-surrogate", "surrogate-key", "nan"],
)
@pytest.mark.parametrize("kind", ["住民票関係情報", "地方税関係情報", layout.PERSON_KIND])
def test_json_http_refuses_hostile_json(kind: str, raw: bytes, words: str) -> None:
    assert words in _refused("json_http", kind, raw).message


def test_a_bug_below_the_mapper_is_still_a_mapping_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract holds even where a parser raises something nobody foresaw."""
    mapper = load_mapper("json_http")
    golden = (FIXTURES / "json_http" / "tax_loss.json").read_bytes()

    def broken(*args: object) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("comm_server.mapping.mapper.parse_json", broken)
    with pytest.raises(MappingError) as caught:
        mapper.decode("地方税関係情報", golden)
    assert "RecursionError" in caught.value.message
    assert isinstance(mapper, SpecMapper)
    with pytest.raises(MappingError):
        mapper.explain("地方税関係情報", golden)


# -- hypothesis: golden fixtures mutated, random bytes, hostile pieces spliced in ---------

GOLDEN = {
    fmt: sorted(
        p for p in (FIXTURES / fmt).iterdir() if p.suffix != ".txtpb" and ".encoded." not in p.name
    )
    for fmt in FORMATS
}
KIND_OF_PREFIX = {
    "tax": "地方税関係情報",
    "resident": "住民票関係情報",
    "pension": PENSION,
    "medical": "医療保険給付関係情報",
    "person": layout.PERSON_KIND,
}
HOSTILE = [
    b'<?xml version="" encoding="o"?>',
    b'<?xml version="1.0" encoding="utf-16"?>',
    b'<!DOCTYPE a [<!ENTITY a "aaaa">]>',
    b"&a;",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\x00",
    _deep_xml(200),
    _deep_json(200),
    b"\\ud800",
    b"9" * 5000,
    b"NaN",
    b'"\r\n\r\n',
    b'"',
    b",",
    b"\r\n",
    b"\x82\xa0",
    b"[/]",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_decode_raises_only_mapping_errors_on_mutated_golden_records(fmt: str) -> None:
    mapper = load_mapper(fmt)
    cases = [(KIND_OF_PREFIX[p.name.split("_")[0]], p.read_bytes()) for p in GOLDEN[fmt]]

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(cases), st.data())
    def fuzz(case: tuple[str, bytes], data: st.DataObject) -> None:
        kind, golden = case
        raw = bytearray(golden)
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(raw)))
            action = data.draw(
                st.sampled_from(["set", "cut", "insert", "hostile", "prefix", "random"])
            )
            if action == "set" and at < len(raw):
                raw[at] = data.draw(st.integers(0, 255))
            elif action == "cut":
                del raw[at : at + data.draw(st.integers(1, 16))]
            elif action == "insert":
                raw[at:at] = bytes([data.draw(st.integers(0, 255))])
            elif action == "hostile":
                raw[at:at] = data.draw(st.sampled_from(HOSTILE))
            elif action == "prefix":  # where an XML declaration or a BOM must stand
                raw[:0] = data.draw(st.sampled_from(HOSTILE))
            else:
                raw[:] = data.draw(st.binary(max_size=400))
        refused: MappingError | None = None
        try:
            mapper.decode(kind, bytes(raw))
        except MappingError as err:
            refused = err
        if refused is not None:
            assert refused.reason == "LEGACY_RECORD_INVALID"
            assert refused.message

    fuzz()


# -- renkei mapper check: one line, never a traceback ------------------------------------


@pytest.mark.parametrize(
    ("fmt", "kind", "sample", "words"),
    [
        ("json_http", "PERSONS", _deep_json(1000), "nested deeper than 64 levels"),
        ("json_http", "PERSONS", b'{"personId": "\\ud800"}', "a lone surrogate"),
        ("json_http", "PERSONS", b'{"a": 1}\n' + _deep_json(1000) + b"\n", "nested deeper"),
        ("json_http", "地方税関係情報", b'{"fiscalYear": ' + b"1" * 4301 + b"}", "4301 digits"),
        ("soap_pension", PENSION, _deep_xml(1000), "nested deeper than 64 levels"),
        ("soap_pension", PENSION, b'<?xml version="" encoding="o"?><a/>', "unknown encoding: o"),
        ("soap_pension", PENSION, b'<?xml version="1.0" encoding="utf-7"?><a/>', "multi-byte"),
        ("soap_pension", PENSION, LAUGHS.encode("utf-16"), DTD_REFUSED),
    ],
)
def test_mapper_check_refuses_a_hostile_sample_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
    kind: str,
    sample: bytes,
    words: str,
) -> None:
    path = tmp_path / "sample"
    path.write_bytes(sample)
    code = main(["mapper", "check", fmt, str(path), "--kind", kind])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.out.replace(str(path), "SAMPLE").splitlines() if line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("renkei mapper check: SAMPLE: ")
    assert words in " ".join(captured.out.split())


def test_mapper_check_shows_a_bad_record_with_markup_in_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Record bytes such as ``[/]`` are shown as text, not read as the console's markup."""
    golden = (FIXTURES / "json_http" / "person_yamada.json").read_bytes()
    path = tmp_path / "sample.json"
    path.write_bytes(golden.replace("山田 太郎".encode(), b"[/] [bold]"))
    code = main(["mapper", "check", "json_http", str(path), "--kind", "PERSONS"])
    captured = capsys.readouterr()
    assert code == 0, captured.out
    assert "[/] [bold]" in captured.out
    assert "Traceback" not in captured.err


# -- encode keeps the contract too: any record of the kind, any field values ------------

_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
_INT_RANGES = {3: (-(2**63), 2**63 - 1), 5: (-(2**31), 2**31 - 1)}  # int64, int32


def _message(target: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(target, name, value)


def _records(kind: str) -> st.SearchStrategy[layout.Record]:
    message = layout.message_type(kind)
    if kind == layout.PERSON_KIND:
        fields = message.DESCRIPTOR.fields
        return st.fixed_dictionaries({f.name: _TEXT for f in fields}).map(
            lambda values: message(**values)
        )
    case = layout.INFO_KINDS[kind]
    info = layout_pb2.StandardRecord.DESCRIPTOR.fields_by_name[case].message_type
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    for f in info.fields:
        if f.enum_type is not None:
            strategies[f.name] = st.sampled_from([v.number for v in f.enum_type.values])
        elif f.type == f.TYPE_BOOL:
            strategies[f.name] = st.booleans()
        elif f.type in _INT_RANGES:
            strategies[f.name] = st.integers(*_INT_RANGES[f.type])
        else:
            strategies[f.name] = _TEXT

    def build(pid: str, values: dict[str, Any]) -> layout.Record:
        record = layout.new_record(kind)
        assert isinstance(record, layout_pb2.StandardRecord)
        record.local_person_id = pid
        _message(getattr(record, case), values)
        return record

    return st.builds(build, _TEXT, st.fixed_dictionaries(strategies))


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_raises_only_mapping_errors_on_any_record(fmt: str) -> None:
    mapper = load_mapper(fmt)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(mapper.kinds).flatmap(lambda k: st.tuples(st.just(k), _records(k))))
    def fuzz(case: tuple[str, layout.Record]) -> None:
        kind, record = case
        refused: MappingError | None = None
        try:
            mapper.encode(kind, record)
        except MappingError as err:
            refused = err
        if refused is not None:
            assert refused.reason == "STANDARD_RECORD_UNENCODABLE"
            assert refused.message

    fuzz()
