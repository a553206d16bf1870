"""The deadline budget: how much of a caller's time each hop spends and keeps back.

Every hop (requester's server, hub, provider's server) gets what is left of
one deadline and hands on what is left of it less what it keeps back to write
its log rows and answer. A bulk request keeps back more on its way back than
a single one: a fixed margin plus a little per person, or a share of the time
it was given, whichever is larger. A single request is a batch of one, so the
same function serves both; the numbers live here and nowhere else.
"""

from __future__ import annotations

from renkei.errors import DeadlineExceeded

# Kept back by the requester's server, and by the hub, to log the outcome and answer.
REQUESTER_MARGIN_SECONDS = 0.05
HUB_LOG_MARGIN_SECONDS = 0.05
# Kept back by the provider's server to seal, log and answer.
PROVIDER_MARGIN_SECONDS = 0.02
# Kept back by the numbering agency when it asks the registry which resident codes
# exist, to write its tables and answer.
NUMBERING_MARGIN_SECONDS = 0.02
# Time kept back per person of a bulk request to complete its log row.
LOG_SECONDS_PER_ITEM = 20e-6
# Each hop keeps back at least this share of a bulk request's time for its way back.
RETURN_SHARE = 0.1
# Kept back from the caller's deadline by a requester waiting for its own log row,
# so a row the database does not take in time is refused before the caller gives up.
REQUESTER_ANSWER_SECONDS = 0.02
# How long past its own deadline a requester waits for the hub's (serial-carrying)
# refusal before its own safety net fires.
SAFETY_NET_SECONDS = 0.05


def margin(time_remaining: float | None, floor: float, count: int = 1) -> float:
    """Seconds a hop keeps back from ``time_remaining`` for its way back.

    One person keeps back exactly ``floor``; a bulk request of ``count``
    persons keeps back ``floor`` plus a per-person share, and at least
    ``RETURN_SHARE`` of its time.
    """
    if count <= 1:
        return floor
    floor += LOG_SECONDS_PER_ITEM * count
    return floor if time_remaining is None else max(floor, RETURN_SHARE * time_remaining)


def budget(
    ceiling: float,
    time_remaining: float | None,
    keep_back: float,
    *,
    for_what: str = "for this exchange",
) -> float:
    """The time this hop may spend: its own ceiling, or what the caller left less ``keep_back``.

    Raises DEADLINE_TOO_SHORT when nothing is left.
    """
    timeout = ceiling if time_remaining is None else min(ceiling, time_remaining - keep_back)
    if timeout <= 0:
        raise DeadlineExceeded("DEADLINE_TOO_SHORT", f"no time left {for_what}")
    return timeout
