"""The one place a ``[legacy]`` config becomes a client."""

from __future__ import annotations

from comm_server.config import LegacyConfig

from . import LegacyClient
from .csv_dropbox_client import CsvDropboxClient
from .fixed_tax_client import FixedTaxClient
from .json_http_client import JsonHttpClient
from .jsonl_client import JsonlLegacyClient
from .soap_client import SoapPensionClient


def open_legacy_client(config: LegacyConfig) -> LegacyClient:
    """The client for ``config.kind``; connections are made on first use."""
    if config.kind == "jsonl":
        return JsonlLegacyClient(config.host, config.port)
    if config.kind == "fixed_tax":
        return FixedTaxClient(config.host, config.port)
    if config.kind == "soap":
        return SoapPensionClient(config.url)
    if config.kind == "json_http":
        return JsonHttpClient(config.url)
    if config.kind == "csv_dropbox" and config.folder is not None:
        return CsvDropboxClient(config.folder, poll_interval=config.poll_interval_seconds)
    raise ValueError(f"legacy kind {config.kind!r} is unknown or incompletely configured")
