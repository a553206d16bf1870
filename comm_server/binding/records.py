"""The records a binding job reads: one per person of the agency's file, or one to review.

Their own module so that the readers (``person_file``) and the job (``bulk_bind``)
both import them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ReviewStatus = Literal["ambiguous", "none", "invalid", "failed"]


@dataclass(frozen=True, slots=True)
class LocalRecord:
    """One record of the agency's file: its own id and the four facts as it writes them."""

    local_person_id: str
    name: str
    address: str
    birth_date: str
    sex: str
    kana: str = ""
    municipality_hint: str = ""


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A record that did not bind, and why (for a person to look at)."""

    local_person_id: str
    status: ReviewStatus
    reason: str
