"""Reading TOML config files into dataclasses, with errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from renkei.pki import TlsFiles


class ConfigError(ValueError):
    pass


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None


def table(data: dict[str, Any], key: str, where: Path) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def required(data: dict[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing key {key!r}")
    return data[key]


def resolve(base: Path, value: str) -> Path:
    """Paths in a config file are relative to the file's folder."""
    path = Path(value)
    return path if path.is_absolute() else (base / path)


def master_key_spec(spec: str, base: Path) -> str:
    """A ``file:`` master-key spec relative to the config file becomes absolute."""
    if spec.startswith("file:"):
        return "file:" + str(resolve(base, spec.removeprefix("file:")))
    return spec


def tls_files(data: dict[str, Any], path: Path) -> TlsFiles | None:
    """The ``[tls]`` table (ca_cert, cert, key), or None when the file has none."""
    tls = table(data, "tls", path)
    if not tls:
        return None
    where = f"{path}: [tls]"
    return TlsFiles(
        *(resolve(path.parent, str(required(tls, k, where))) for k in ("ca_cert", "cert", "key"))
    )
