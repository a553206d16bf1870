"""Reading TOML config files into dataclasses, with errors that name the file and key.

Every key goes through one typed reader (``boolean``, ``number``, ``integer``,
``text``, ``optional_text``, ``path``, ``text_list``, ``table``): a value of the
wrong TOML type is a ``ConfigError`` naming the file, the table and the key,
never a ``TypeError`` or, worse, a silent conversion (``bool("false")`` is True,
so a quoted "false" would turn TLS off). ``where`` is ``"<file>: [<table>]"``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from renkei import validate
from renkei.pki import DEFAULT_CRL_RELOAD_SECONDS, TlsFiles


class ConfigError(ValueError):
    """A config file that cannot be used; the message starts with the file's path."""


def load_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not UTF-8 (byte {err.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{path}: arrays or tables nested too deeply") from None


def _kind(value: object) -> str:
    """How the file wrote ``value``, for messages (TOML's names, not Python's)."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    for cls, name in names.items():
        if type(value) is cls:
            return f"{name} ({value!r})" if cls is not str else f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _wrong(where: str, key: str, wanted: str, value: object) -> ConfigError:
    return ConfigError(f"{where} {key}: must be {wanted}, not {_kind(value)}")


def table(data: Mapping[str, Any], key: str, where: Path | str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table, not {_kind(value)}")
    return value


def required(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing key {key!r}")
    return data[key]


def boolean(data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):  # "false" in quotes is a string, and truthy
        raise _wrong(where, key, "true or false (unquoted)", value)
    return value


def number(
    data: Mapping[str, Any], key: str, where: str, default: float, *, positive: bool = True
) -> float:
    """A finite number of seconds or the like: > 0, or >= 0 when not ``positive``."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(where, key, "a number", value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ConfigError(f"{where} {key}: must be a number {'>' if positive else '>='} 0")
    return float(value)


def integer(
    data: Mapping[str, Any],
    key: str,
    where: str,
    default: int | None = None,
    *,
    minimum: int = 0,
    maximum: int = validate.INT64_MAX,
) -> int:
    """An integer within ``minimum..maximum``; required when ``default`` is None."""
    value = required(data, key, where) if default is None else data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(where, key, "an integer", value)
    if not minimum <= value <= maximum:
        raise ConfigError(f"{where} {key}: must be an integer from {minimum} to {maximum}")
    return value


def text(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    """A string; required when ``default`` is None."""
    value = required(data, key, where) if default is None else data.get(key, default)
    if not isinstance(value, str):
        raise _wrong(where, key, "a string", value)
    return value


def optional_text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    return text(data, key, where) if key in data else None


def text_list(
    data: Mapping[str, Any], key: str, where: str, default: tuple[str, ...] = ()
) -> tuple[str, ...]:
    value = data.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(where, key, "an array of strings", value)
    return tuple(value)


def resolve(base: Path, value: str) -> Path:
    """Paths in a config file are relative to the file's folder."""
    path = Path(value)
    return path if path.is_absolute() else (base / path)


def path(data: Mapping[str, Any], key: str, where: str, base: Path) -> Path:
    """A required path, relative to ``base`` (the config file's folder)."""
    value = text(data, key, where)
    if not value or "\x00" in value:
        raise ConfigError(f"{where} {key}: must be a path")
    return resolve(base, value)


def optional_path(data: Mapping[str, Any], key: str, where: str, base: Path) -> Path | None:
    return path(data, key, where, base) if key in data else None


def database_url(data: Mapping[str, Any], where: str, base: Path) -> str:
    """``database_url``, with ``{config_dir}`` standing for the config file's folder."""
    return text(data, "database_url", where).replace("{config_dir}", str(base))


def master_key_spec(spec: str, base: Path) -> str:
    """A ``file:`` master-key spec relative to the config file becomes absolute."""
    if spec.startswith("file:"):
        return "file:" + str(resolve(base, spec.removeprefix("file:")))
    return spec


def tls_files(data: Mapping[str, Any], path_: Path) -> TlsFiles | None:
    """The ``[tls]`` table, or None when the file has none.

    ``ca_cert`` (one CA or a bundle such as ``roots.pem``), ``cert``, ``key``;
    optionally ``crls`` (the CAs' revocation lists a server checks callers
    against) and ``crl_reload_seconds`` (how often it looks at them, default 5).
    """
    tls = table(data, "tls", path_)
    if not tls:
        return None
    where = f"{path_}: [tls]"
    ca_cert, cert, key = (path(tls, k, where, path_.parent) for k in ("ca_cert", "cert", "key"))
    crls = tuple(resolve(path_.parent, p) for p in text_list(tls, "crls", where))
    reload_s = number(tls, "crl_reload_seconds", where, DEFAULT_CRL_RELOAD_SECONDS)
    return TlsFiles(ca_cert, cert, key, crls, reload_s)
