"""The mapper SDK's errors: a bad record, a bad spec, an unknown format or kind.

A bad record is the legacy system's fault or the peer's, never a crash: every
decoder raises ``MappingError`` and nothing else on any bytes, and its message
names the field, where it sits (byte offset, column or path) and the raw bytes.
"""

from __future__ import annotations

from renkei.errors import FailedPrecondition, InvalidArgument

RECORD_INVALID = "LEGACY_RECORD_INVALID"
"""A legacy record that does not follow its format (decode)."""
RECORD_UNENCODABLE = "STANDARD_RECORD_UNENCODABLE"
"""A standard-layout record the legacy format cannot carry (encode)."""
KIND_UNKNOWN = "MAPPER_KIND_UNKNOWN"
SPEC_INVALID = "MAPPER_SPEC_INVALID"
FORMAT_UNKNOWN = "MAPPER_FORMAT_UNKNOWN"


def show_raw(raw: bytes | str, limit: int = 80) -> str:
    """Raw bytes for a message: hex (so any byte shows), cut after ``limit`` bytes."""
    if isinstance(raw, str):
        return repr(raw if len(raw) <= limit else raw[:limit] + "...")
    if len(raw) <= 32:
        return f"{raw!r} (hex {raw.hex(' ')})"
    text = raw[:limit].hex(" ")
    return f"hex {text}{' ...' if len(raw) > limit else ''} ({len(raw)} bytes)"


class MappingError(InvalidArgument):
    """A record that cannot be mapped; ``field``, ``where`` and ``raw`` say which part."""

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        where: str = "",
        raw: bytes | str = b"",
        reason: str = RECORD_INVALID,
        mapper: str = "",
    ) -> None:
        parts = [p for p in (mapper, field, where) if p]
        head = " ".join(parts)
        text = f"{head}: {message}" if head else message
        if raw != b"":
            text += f"; raw {show_raw(raw)}"
        metadata = {"field": field, "where": where, "mapper": mapper}
        super().__init__(reason, text, {k: v for k, v in metadata.items() if v})
        self.problem = message
        self.field = field
        self.where = where
        self.raw = raw


class SpecError(FailedPrecondition):
    """A spec file that cannot be used: it names the file, the field and what is wrong."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(SPEC_INVALID, f"{source}: {message}", {"spec": source})
        self.source = source


class UnknownFormat(FailedPrecondition):
    def __init__(self, name: str, known: list[str]) -> None:
        listed = ", ".join(known) or "none installed"
        super().__init__(
            FORMAT_UNKNOWN,
            f"no mapper for format {name!r} in entry-point group renkei.mappers; known: {listed}",
            {"format": name},
        )
        self.known = known


def unknown_kind(mapper: str, kind: str, known: tuple[str, ...]) -> MappingError:
    return MappingError(
        f"no record layout for kind {kind!r}; this format carries {', '.join(known)}",
        reason=KIND_UNKNOWN,
        mapper=mapper,
    )
