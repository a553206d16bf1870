"""The built-in mappers for the four legacy systems of docs/legacy-formats.md.

Each is a factory registered under its format name in pyproject.toml
(``[project.entry-points."renkei.mappers"]``); the specs are package data.
"""

from __future__ import annotations

from .mapper import SpecMapper
from .registry import builtin_spec


def fixed_tax() -> SpecMapper:
    """Municipal tax: 256-byte cp932 tax and resident records (persons: resident records)."""
    return builtin_spec("fixed_tax.toml")


def soap_pension() -> SpecMapper:
    """Pension body: <nk:Benefit> and <nk:Person> elements."""
    return builtin_spec("soap_pension.toml")


def csv_insurer() -> SpecMapper:
    """Health insurer: one cp932 answer line (benefits, or the PERSONS file)."""
    return builtin_spec("csv_insurer.toml")


def json_http() -> SpecMapper:
    """Modern system: the answer's record object, or one person object."""
    return builtin_spec("json_http.toml")
