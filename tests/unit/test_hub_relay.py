"""The hub's one relay path (linkage.Hub.relay) and answer-later fetch, on in-memory fakes.

Each test drives the Hub directly: no database, no socket, no sleep. The
journal of the fakes shows the order of log writes and provider calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import grpc
import pytest
from support.hub_fakes import (
    CITY,
    ITEM,
    PENSION,
    PENSION_INFO,
    TAX,
    HubRig,
    answer_all,
    hub_rig,
    item_error,
)

from hub_server.exchange import ProvideCall, Provided, RelayRequest, RelayResult
from hub_server.id_issuer_client import IdKeyState
from hub_server.log_store import ANSWER_PENDING, DENIED, OK, PENDING
from renkei import codes
from renkei.errors import DeadlineExceeded, RenkeiError, Unavailable

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def refusal(coro: Coroutine[Any, Any, object]) -> RenkeiError:
    with pytest.raises(RenkeiError) as caught:
        run(coro)
    return caught.value


def single(code: str, provider: str = PENSION, info: str = PENSION_INFO) -> RelayRequest:
    return RelayRequest(provider, info, ITEM, (code,), b"sealed-query", single=True)


def bulk(codes_: Sequence[str], provider: str = PENSION) -> RelayRequest:
    return RelayRequest(provider, PENSION_INFO, ITEM, list(codes_), b"sealed-queries")


def relay(rig: HubRig, req: RelayRequest, time_remaining: float | None = 5.0) -> RelayResult:
    return run(rig.hub.relay(rig.city, req, time_remaining))


def altered(code: str) -> str:
    version, _, body = code.partition(".")
    return f"{version}.{'B' if body[0] == 'A' else 'A'}{body[1:]}"


# -- lawful ------------------------------------------------------------------


def test_a_lawful_single_relay_is_durably_pending_before_the_provider_is_asked() -> None:
    rig = hub_rig()
    result = relay(rig, single(rig.link_code(1)))

    assert rig.journal.events == [("begin", [1]), ("provide", [1]), ("finish", [1])]
    (asked,) = rig.gateway.asked
    assert asked.rows_then == [PENDING]
    assert asked.timeout == pytest.approx(5.0 - 0.05)  # the caller's time less the log margin
    call = asked.call
    assert call.single
    assert (call.item_count, call.sealed_queries) == (1, b"sealed-query")
    assert (call.requester_agency_id, call.info_kind, call.legal_basis_item) == (
        CITY,
        PENSION_INFO,
        ITEM,
    )
    (item,) = call.items
    assert (item.serial, item.index) == (1, 0)
    # The provider gets its own link code for the same person, never the requester's.
    assert rig.hub.codec.decode(PENSION, item.link_code)[0] == rig.person(1)

    assert result.results == [(1, None)]
    assert (result.sealed_answers, result.ticket) == (b"sealed-answers", "")
    assert result.decision.approved
    assert result.time == rig.clock.now
    (row,) = rig.log.rows()
    assert (row.outcome, row.reason, row.entry.person_key) == (OK, "", rig.person_key(1))
    assert row.entry.policy_version == result.decision.policy_version


def test_a_lawful_bulk_relay_begins_every_row_in_one_write_and_completes_them_after() -> None:
    rig = hub_rig()
    result = relay(rig, bulk([rig.link_code(n) for n in (1, 2, 3)]), time_remaining=10.0)

    assert rig.journal.events == [
        ("begin", [1, 2, 3]),
        ("provide", [1, 2, 3]),
        ("finish", [1, 2, 3]),
    ]
    (asked,) = rig.gateway.asked
    assert asked.rows_then == [PENDING] * 3
    # A bulk request keeps back a tenth of its time for its way back (at least its margin).
    assert asked.timeout == pytest.approx(9.0)
    assert not asked.call.single
    assert [(i.serial, i.index) for i in asked.call.items] == [(1, 0), (2, 1), (3, 2)]
    assert result.results == [(1, None), (2, None), (3, None)]
    assert rig.log.outcomes() == [(OK, "")] * 3
    assert [r.entry.person_key for r in rig.log.rows()] == [rig.person_key(n) for n in (1, 2, 3)]


def test_without_a_deadline_each_size_gets_its_own_ceiling() -> None:
    rig = hub_rig(relay_ceiling=3.0, bulk_relay_ceiling=7.0)
    relay(rig, single(rig.link_code(1)), time_remaining=None)
    relay(rig, bulk([rig.link_code(2), rig.link_code(3)]), time_remaining=None)
    assert [a.timeout for a in rig.gateway.asked] == [3.0, 7.0]


def test_a_bulk_of_one_keeps_back_only_the_single_margin() -> None:
    # deadline.margin: one person keeps back the fixed floor, whatever the RPC.
    rig = hub_rig()
    relay(rig, bulk([rig.link_code(1)]), time_remaining=10.0)
    (asked,) = rig.gateway.asked
    assert asked.timeout == pytest.approx(10.0 - 0.05)
    assert not asked.call.single


# -- unlawful ----------------------------------------------------------------


def test_an_unlawful_single_relay_is_logged_denied_with_its_person_and_refused() -> None:
    rig = hub_rig()
    err = refusal(rig.hub.relay(rig.city, single(rig.link_code(1), provider=TAX), 5.0))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PROVIDER_NOT_IN_ITEM")
    assert err.metadata["serial"] == "1"
    assert err.metadata["legal_basis_item"] == ITEM
    assert err.metadata["policy_version"].startswith("sha256:")
    assert rig.log.outcomes() == [(DENIED, "PROVIDER_NOT_IN_ITEM")]
    assert rig.log.rows()[0].entry.person_key == rig.person_key(1)
    assert rig.log.rows()[0].completed_at is not None
    assert rig.gateway.asked == []


def test_an_unlawful_bulk_relay_is_refused_whole_every_person_logged_denied() -> None:
    rig = hub_rig()
    codes_ = [rig.link_code(1), altered(rig.link_code(2)), rig.link_code(3)]
    err = refusal(rig.hub.relay(rig.city, bulk(codes_, provider=TAX), 5.0))
    assert (err.code, err.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PROVIDER_NOT_IN_ITEM")
    assert err.metadata["serials"] == "1-3"
    assert "serial" not in err.metadata
    # The damaged code's person is denied too (without a person key: none is known).
    assert rig.log.outcomes() == [(DENIED, "PROVIDER_NOT_IN_ITEM")] * 3
    assert [r.entry.person_key for r in rig.log.rows()] == [
        rig.person_key(1),
        None,
        rig.person_key(3),
    ]
    assert rig.gateway.asked == []


# -- foreign and altered link codes ------------------------------------------


@pytest.mark.parametrize(
    ("make", "code", "reason"),
    [
        (lambda rig: rig.link_code(1, agency=TAX), "PERMISSION_DENIED", "LINK_CODE_FOREIGN"),
        (lambda rig: altered(rig.link_code(1)), "INVALID_ARGUMENT", "LINK_CODE_CORRUPT"),
        (lambda rig: "not-a-link-code", "INVALID_ARGUMENT", "LINK_CODE_MALFORMED"),
    ],
)
def test_a_single_relay_with_a_bad_link_code_is_refused_as_its_status_and_logged(
    make: Any, code: str, reason: str
) -> None:
    rig = hub_rig()
    err = refusal(rig.hub.relay(rig.city, single(make(rig)), 5.0))
    assert (err.code.name, err.reason) == (code, reason)
    assert err.metadata["serial"] == "1"
    (row,) = rig.log.rows()
    assert (row.outcome, row.reason, row.entry.person_key) == (code, reason, None)
    assert rig.gateway.asked == []


def test_a_single_relay_refuses_a_bad_link_code_before_judging_the_exchange() -> None:
    rig = hub_rig()
    err = refusal(rig.hub.relay(rig.city, single(altered(rig.link_code(1)), provider=TAX), 5.0))
    assert err.reason == "LINK_CODE_CORRUPT"
    assert rig.log.outcomes() == [("INVALID_ARGUMENT", "LINK_CODE_CORRUPT")]


def test_a_bulk_relay_refuses_bad_link_codes_per_person_and_relays_the_rest() -> None:
    rig = hub_rig()
    codes_ = [rig.link_code(1), rig.link_code(2, agency=TAX), altered(rig.link_code(3)), ""]
    codes_.append(rig.link_code(5))
    result = relay(rig, bulk(codes_))

    (asked,) = rig.gateway.asked
    assert [(i.serial, i.index) for i in asked.call.items] == [(1, 0), (5, 4)]
    assert asked.call.item_count == 5
    # Every row was durable before the provider was asked: refused ones complete.
    by_serial = {r.serial: r.outcome for r in rig.log.rows()}
    assert asked.rows_then == [PENDING, PENDING]
    assert rig.journal.kinds() == ["begin", "provide", "finish"]
    assert [(s, e.reason if e else None) for s, e in result.results] == [
        (1, None),
        (2, "LINK_CODE_FOREIGN"),
        (3, "LINK_CODE_CORRUPT"),
        (4, "INVALID_FIELD"),
        (5, None),
    ]
    assert rig.log.outcomes() == [
        (OK, ""),
        ("PERMISSION_DENIED", "LINK_CODE_FOREIGN"),
        ("INVALID_ARGUMENT", "LINK_CODE_CORRUPT"),
        ("INVALID_ARGUMENT", "INVALID_FIELD"),
        (OK, ""),
    ]
    assert by_serial[2] != PENDING


def test_a_bulk_relay_of_only_refused_persons_never_asks_the_provider() -> None:
    rig = hub_rig()
    result = relay(rig, bulk([altered(rig.link_code(1)), rig.link_code(2, agency=TAX)]))
    assert rig.gateway.asked == []
    assert [e.reason for _, e in result.results if e] == ["LINK_CODE_CORRUPT", "LINK_CODE_FOREIGN"]
    assert result.sealed_answers == b""


def test_a_retired_id_key_version_is_refused_as_a_status_or_per_person() -> None:
    rig = hub_rig()
    old = rig.link_code(1)  # made from ID key version 1, retired below
    rig.hub.id_state = IdKeyState(2, 2, {1: rig.clock.now - timedelta(seconds=1)})
    err = refusal(rig.hub.relay(rig.city, single(old), 5.0))
    assert (err.reason, err.metadata["id_key_version"], err.metadata["serial"]) == (
        "ID_CODE_KEY_RETIRED",
        "1",
        "1",
    )
    result = relay(rig, bulk([old, old]))
    assert [e.reason for _, e in result.results if e] == ["ID_CODE_KEY_RETIRED"] * 2
    assert rig.gateway.asked == []


# -- the provider fails --------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [
        (Unavailable("PROVIDER_UNAVAILABLE", "down"), ("UNAVAILABLE", "PROVIDER_UNAVAILABLE")),
        (
            DeadlineExceeded("PROVIDER_DEADLINE_EXCEEDED", "late"),
            ("DEADLINE_EXCEEDED", "PROVIDER_DEADLINE_EXCEEDED"),
        ),
    ],
)
def test_a_single_relay_whose_provider_fails_logs_the_outcome_under_its_serial(
    failure: RenkeiError, outcome: tuple[str, str]
) -> None:
    rig = hub_rig()
    rig.gateway.script = lambda call: failure
    err = refusal(rig.hub.relay(rig.city, single(rig.link_code(1)), 5.0))
    assert err is failure
    assert err.metadata == {"serial": "1"}
    assert rig.journal.kinds() == ["begin", "provide", "finish"]
    assert rig.log.outcomes() == [outcome]


def test_a_bulk_relay_whose_provider_fails_completes_every_relayed_row() -> None:
    rig = hub_rig()
    rig.gateway.script = lambda call: Unavailable("PROVIDER_UNAVAILABLE", "down")
    codes_ = [rig.link_code(1), altered(rig.link_code(2)), rig.link_code(3)]
    err = refusal(rig.hub.relay(rig.city, bulk(codes_), 5.0))
    assert err.metadata == {"serials": "1-3"}
    assert rig.log.outcomes() == [
        ("UNAVAILABLE", "PROVIDER_UNAVAILABLE"),
        ("INVALID_ARGUMENT", "LINK_CODE_CORRUPT"),
        ("UNAVAILABLE", "PROVIDER_UNAVAILABLE"),
    ]


def test_a_bulk_relay_takes_the_providers_per_person_errors_and_notices_omissions() -> None:
    rig = hub_rig()

    def answer_some(call: ProvideCall) -> Provided:
        first, second, _ = call.items  # the third is left out
        return Provided(
            {first.serial: None, second.serial: item_error("NOT_FOUND", "NO_RECORD")}, b"a"
        )

    rig.gateway.script = answer_some
    result = relay(rig, bulk([rig.link_code(n) for n in (1, 2, 3)]))
    assert [(s, e.reason if e else None) for s, e in result.results] == [
        (1, None),
        (2, "NO_RECORD"),
        (3, "PROVIDER_RESULT_MISSING"),
    ]
    assert rig.log.outcomes() == [
        (OK, ""),
        ("NOT_FOUND", "NO_RECORD"),
        ("UNAVAILABLE", "PROVIDER_RESULT_MISSING"),
    ]


@pytest.mark.parametrize(
    ("failure", "outcome"),
    [
        (asyncio.CancelledError(), ("CANCELLED", "CALLER_CANCELLED")),
        (RuntimeError("a bug"), ("INTERNAL", "HUB_FAILURE")),
    ],
)
def test_a_relay_cancelled_or_broken_midway_still_completes_its_row(
    failure: BaseException, outcome: tuple[str, str]
) -> None:
    rig = hub_rig()
    rig.gateway.script = lambda call: failure
    with pytest.raises(type(failure)):
        relay(rig, single(rig.link_code(1)))
    assert rig.log.outcomes() == [outcome]


def test_a_deadline_too_short_to_ask_the_provider_is_logged_and_refused() -> None:
    rig = hub_rig()
    err = refusal(rig.hub.relay(rig.city, single(rig.link_code(1)), 0.04))
    assert (err.code, err.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_TOO_SHORT")
    assert err.metadata == {"serial": "1"}
    assert rig.log.outcomes() == [("DEADLINE_EXCEEDED", "DEADLINE_TOO_SHORT")]
    assert rig.gateway.asked == []

    err = refusal(rig.hub.relay(rig.city, bulk([rig.link_code(2), rig.link_code(3)]), 0.05))
    assert (err.reason, err.metadata) == ("DEADLINE_TOO_SHORT", {"serials": "2-3"})
    assert rig.log.outcomes()[1:] == [("DEADLINE_EXCEEDED", "DEADLINE_TOO_SHORT")] * 2


def test_a_provider_without_a_link_code_key_is_refused_before_any_row() -> None:
    rig = hub_rig()
    del rig.keyring[PENSION]
    rig.hub.codec = codes.LinkCodec(rig.keyring, rig.clock)
    for req in (single(rig.link_code(1)), bulk([rig.link_code(1), rig.link_code(2)])):
        err = refusal(rig.hub.relay(rig.city, req, 5.0))
        assert err.reason == "AGENCY_HAS_NO_KEY"
    assert rig.log.rows() == []


# -- fields --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (RelayRequest(PENSION, PENSION_INFO, ITEM, ("",), b"", single=True), "link_code"),
        (RelayRequest(PENSION, "", ITEM, ("1.x",), b"", single=True), "info_kind"),
        (RelayRequest(PENSION, PENSION_INFO, ITEM, ("1.x",), b"q" * 300_000, True), "sealed_query"),
        (RelayRequest(PENSION, PENSION_INFO, ITEM, [], b"q"), "link_codes"),
        (RelayRequest(PENSION, PENSION_INFO, ITEM, ["1.x"], b""), "sealed_queries"),
        (RelayRequest(PENSION, PENSION_INFO, "9" * 40, ["1.x"], b"q"), "legal_basis_item"),
        (RelayRequest("no such agency!", PENSION_INFO, ITEM, ["1.x"], b"q"), "provider_agency_id"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named_before_anything_is_logged(
    req: RelayRequest, field: str
) -> None:
    rig = hub_rig()
    err = refusal(rig.hub.relay(rig.city, req, 5.0))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.metadata["field"] == field
    assert rig.log.rows() == []


# -- answer later --------------------------------------------------------------


def _pending(rig: HubRig, ticket: str = "T-1") -> int:
    rig.gateway.script = lambda call: Provided({call.items[0].serial: None}, b"", ticket)
    result = relay(rig, single(rig.link_code(1)))
    assert result.ticket == ticket
    return result.results[0][0]


def test_a_ticket_leaves_the_exchange_answer_pending_and_fetch_collects_it_once() -> None:
    rig = hub_rig()
    serial = _pending(rig)
    assert rig.log.outcomes() == [(ANSWER_PENDING, "")]

    fetched = run(rig.hub.fetch_answer(rig.city, serial, "T-1", 5.0))
    assert (fetched.serial, fetched.sealed_answer, fetched.legal_basis_item) == (
        serial,
        b"late",
        ITEM,
    )
    ((call, timeout),) = rig.gateway.collected
    assert (call.serial, call.ticket, call.requester_agency_id) == (serial, "T-1", CITY)
    assert timeout == pytest.approx(5.0 - 0.05)
    assert [o for _, o, _ in run(rig.log.fetches(serial))] == [OK]

    again = refusal(rig.hub.fetch_answer(rig.city, serial, "T-1", 5.0))
    assert (again.reason, again.metadata["serial"]) == ("ANSWER_ALREADY_FETCHED", str(serial))


def test_an_invalid_ticket_from_the_provider_is_its_failure() -> None:
    rig = hub_rig()
    rig.gateway.script = lambda call: Provided({call.items[0].serial: None}, b"", "bad\nticket")
    err = refusal(rig.hub.relay(rig.city, single(rig.link_code(1)), 5.0))
    assert (err.reason, err.metadata) == ("PROVIDER_TICKET_INVALID", {"serial": "1"})
    assert rig.log.outcomes() == [("UNAVAILABLE", "PROVIDER_TICKET_INVALID")]


def test_a_fetch_that_fails_is_logged_under_the_exchange_serial() -> None:
    rig = hub_rig()
    serial = _pending(rig)
    rig.gateway.collect_script = lambda call: Unavailable("ANSWER_NOT_READY", "not yet")
    err = refusal(rig.hub.fetch_answer(rig.city, serial, "T-1", 5.0))
    assert (err.reason, err.metadata) == ("ANSWER_NOT_READY", {"serial": str(serial)})

    short = refusal(rig.hub.fetch_answer(rig.city, serial, "T-1", 0.01))
    assert (short.reason, short.metadata) == ("DEADLINE_TOO_SHORT", {"serial": str(serial)})
    assert [(o, r) for _, o, r in run(rig.log.fetches(serial))] == [
        ("UNAVAILABLE", "ANSWER_NOT_READY"),
        ("DEADLINE_EXCEEDED", "DEADLINE_TOO_SHORT"),
    ]
    assert rig.log.outcomes() == [(ANSWER_PENDING, "")]  # still pending: fetch again later


def test_only_the_requester_may_fetch_and_only_a_pending_exchange() -> None:
    rig = hub_rig()
    serial = _pending(rig)
    other = rig.hub.directory.get(TAX)
    err = refusal(rig.hub.fetch_answer(other, serial, "T-1", 5.0))
    assert err.reason == "NOT_EXCHANGE_REQUESTER"
    assert [r for _, _, r in run(rig.log.fetches(serial))] == ["NOT_EXCHANGE_REQUESTER"]
    rig.gateway.script = answer_all
    relay(rig, single(rig.link_code(2)))  # answered at once: nothing to fetch
    assert refusal(rig.hub.fetch_answer(rig.city, 2, "T-1", 5.0)).reason == "EXCHANGE_NOT_PENDING"
    assert refusal(rig.hub.fetch_answer(rig.city, 99, "T-1", 5.0)).reason == "EXCHANGE_UNKNOWN"
    assert rig.gateway.collected == []


# -- re-keying after an ID-key rotation ---------------------------------------


def test_rekeying_reissues_stale_id_codes_and_keeps_the_persons_rows_findable() -> None:
    rig = hub_rig()
    old = rig.person(1)
    code = rig.hub.codec.encode(CITY, old)
    rig.id_codes.current = 2  # the ID issuer rotates: version 2 is newest, 1 still current
    rig.hub.id_state = IdKeyState(1, 2)

    answer = run(rig.hub.rekey_link_codes(rig.city, [code, "garbage"]))
    fresh, bad = answer.results
    new_id = rig.hub.codec.decode(CITY, fresh.link_code)[0]
    assert (new_id[0], rig.id_codes.resident_code(new_id)) == (2, "00000000001")
    assert bad.error_reason == "LINK_CODE_MALFORMED"
    assert rig.log.aliases == [(rig.hub.person_key(old), rig.hub.person_key(new_id))]
    assert answer.newest_id_key_version == 2


def test_the_rotation_completes_only_once_every_agency_has_rekeyed() -> None:
    rig = hub_rig()
    rig.hub.id_state = IdKeyState(1, 2)
    for agency in (CITY, PENSION):
        done = run(rig.hub.complete_rekey(rig.hub.directory.get(agency), 1, 2))
        assert done == (1, None, False)
    assert rig.id_issuer.completed == []
    assert run(rig.hub.complete_rekey(rig.hub.directory.get(TAX), 1, 2)) == (1, None, True)
    assert rig.id_issuer.completed == [2]
    assert rig.hub.id_state.current == 2


def test_a_new_link_code_key_made_current_retires_the_old_one_after_its_window() -> None:
    rig = hub_rig()
    old_code = rig.link_code(1)
    rig.keyring[CITY].keys[2] = codes.new_key()  # the re-key job's version
    rig.hub.codec = codes.LinkCodec(rig.keyring, rig.clock)

    current, until, may_promote = run(rig.hub.complete_rekey(rig.city, 2, 1))
    assert (current, may_promote) == (2, True)
    assert until is not None
    assert rig.hub.codec.current_version(CITY) == 2
    relay(rig, single(old_code))  # still accepted within the window

    rig.clock.now = until
    err = refusal(rig.hub.relay(rig.city, single(old_code), 5.0))
    assert (err.reason, err.metadata["key_version"]) == ("LINK_CODE_KEY_RETIRED", "1")
    assert rig.log.outcomes()[-1] == ("FAILED_PRECONDITION", "LINK_CODE_KEY_RETIRED")


# -- the log under cancellation and failure (issue 12, findings 5 and 6) -------


def _log_down() -> Unavailable:
    # What the real log (log_store.AsyncHubLog) raises for a failed or late write.
    return Unavailable("HUB_LOG_UNAVAILABLE", "the hub cannot write its log: scripted")


async def _cancelled_while_stalled(rig: HubRig, req: RelayRequest, where: str) -> None:
    rig.log.stall = where
    task = asyncio.ensure_future(rig.hub.relay(rig.city, req, 5.0))
    await rig.log.stalled.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("size", [1, 3])
def test_a_caller_gone_while_its_pending_rows_are_written_leaves_them_closed_not_relayed(
    size: int,
) -> None:
    rig = hub_rig()
    codes_ = [rig.link_code(n) for n in range(1, size + 1)]
    req = single(codes_[0]) if size == 1 else bulk(codes_)
    run(_cancelled_while_stalled(rig, req, "begin"))
    assert rig.gateway.asked == []
    assert rig.log.outcomes() == [("CANCELLED", "NOT_RELAYED")] * size


def test_a_caller_gone_while_the_outcome_is_written_still_gets_its_row_completed() -> None:
    rig = hub_rig()
    run(_cancelled_while_stalled(rig, single(rig.link_code(1)), "finish"))
    assert len(rig.gateway.asked) == 1
    assert rig.log.outcomes() == [(OK, "")]


def test_a_log_that_cannot_begin_fails_closed_and_never_relays() -> None:
    rig = hub_rig()
    rig.log.fail_next = _log_down()
    err = refusal(rig.hub.relay(rig.city, single(rig.link_code(1)), 5.0))
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "HUB_LOG_UNAVAILABLE")
    assert rig.gateway.asked == []
    assert rig.log.rows() == []


@pytest.mark.parametrize("size", [1, 3])
def test_an_outcome_the_log_cannot_write_is_never_answered_ok(size: int) -> None:
    rig = hub_rig()
    codes_ = [rig.link_code(n) for n in range(1, size + 1)]
    req = single(codes_[0]) if size == 1 else bulk(codes_)

    def answer_then_log_down(call: ProvideCall) -> Provided:
        rig.log.fail_next = _log_down()
        return answer_all(call)

    rig.gateway.script = answer_then_log_down
    err = refusal(rig.hub.relay(rig.city, req, 5.0))
    assert (err.code, err.reason) == (grpc.StatusCode.UNAVAILABLE, "HUB_LOG_UNAVAILABLE")
    assert err.metadata == ({"serial": "1"} if size == 1 else {"serials": f"1-{size}"})
    assert rig.log.outcomes() == [(PENDING, "")] * size  # until the database is back:
    rig.log.recover()
    assert rig.log.outcomes() == [(OK, "")] * size


def test_a_provider_refusal_whose_outcome_cannot_be_written_is_hub_log_unavailable() -> None:
    rig = hub_rig()

    def refuse_then_log_down(call: ProvideCall) -> BaseException:
        rig.log.fail_next = _log_down()
        return Unavailable("PROVIDER_UNAVAILABLE", "down")

    rig.gateway.script = refuse_then_log_down
    err = refusal(rig.hub.relay(rig.city, single(rig.link_code(1)), 5.0))
    assert (err.reason, err.metadata) == ("HUB_LOG_UNAVAILABLE", {"serial": "1"})
    rig.log.recover()
    assert rig.log.outcomes() == [("UNAVAILABLE", "PROVIDER_UNAVAILABLE")]


def test_each_log_write_gets_the_callers_time_left_less_the_answer_and_no_more() -> None:
    rig = hub_rig()
    rig.log.slow = 0.1  # each write takes 100 ms of the caller's 0.5 s
    relay(rig, single(rig.link_code(1)), time_remaining=0.5)
    (asked,) = rig.gateway.asked
    # The provider gets what the begin write left, less the log margin.
    assert asked.timeout == pytest.approx(0.5 - 0.1 - 0.05)
    assert rig.log.timeouts == [
        ("begin", pytest.approx(0.5 - 0.005)),
        ("finish", pytest.approx(0.5 - 0.1 - 0.005)),
    ]
    relay(rig, single(rig.link_code(2)), time_remaining=None)
    assert rig.log.timeouts[2:] == [("begin", 2.0), ("finish", 2.0)]  # the log's own ceiling


def test_a_begin_too_slow_for_the_provider_is_logged_deadline_too_short() -> None:
    rig = hub_rig()
    rig.log.slow = 0.2
    err = refusal(rig.hub.relay(rig.city, single(rig.link_code(1)), 0.22))
    assert (err.reason, err.metadata) == ("DEADLINE_TOO_SHORT", {"serial": "1"})
    assert rig.gateway.asked == []
    assert rig.log.outcomes() == [("DEADLINE_EXCEEDED", "DEADLINE_TOO_SHORT")]


def test_every_log_read_and_write_of_a_fetch_gets_the_callers_time_left() -> None:
    rig = hub_rig()
    serial = _pending(rig)
    rig.log.timeouts.clear()
    rig.log.slow = 0.1  # each log call takes 100 ms of the caller's second
    run(rig.hub.fetch_answer(rig.city, serial, "T-1", 1.0))
    assert [what for what, _ in rig.log.timeouts] == ["row", "fetches", "fetch"]
    assert [t for _, t in rig.log.timeouts] == pytest.approx([0.995, 0.895, 0.795])


def test_a_fetched_answer_is_passed_on_when_its_fetch_cannot_be_logged_in_time() -> None:
    # The provider's ticket is single-use: refusing now would lose the answer for good.
    rig = hub_rig()
    serial = _pending(rig)

    def answer_then_log_down(call: object) -> bytes:
        rig.log.fail_next = _log_down()
        return b"late"

    rig.gateway.collect_script = answer_then_log_down
    fetched = run(rig.hub.fetch_answer(rig.city, serial, "T-1", 5.0))
    assert fetched.sealed_answer == b"late"
    assert fetched.answer_signature == b"signature of late"  # relayed as the provider gave it
    assert run(rig.log.fetches(serial)) == []
    rig.log.recover()
    assert [(o, r) for _, o, r in run(rig.log.fetches(serial))] == [(OK, "")]


def test_a_fetch_whose_log_cannot_be_read_is_hub_log_unavailable_and_asks_nobody() -> None:
    rig = hub_rig()
    serial = _pending(rig)
    rig.log.fail_next = _log_down()
    err = refusal(rig.hub.fetch_answer(rig.city, serial, "T-1", 5.0))
    assert (err.reason, err.metadata) == ("HUB_LOG_UNAVAILABLE", {"serial": str(serial)})
    assert rig.gateway.collected == []
