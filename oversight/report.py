"""The oversight body's report: one self-contained HTML file (R27).

Plots (matplotlib, Agg, embedded as base64 PNG) of exchanges per agency and
day and of denial rates by reason; the reconcile findings; the anomalies; the
checkpoint the hub's entries were verified against; the consent log's
outcomes. Labels are Japanese when the IPAex Gothic font is installed,
English otherwise. Every value is escaped: the shares are the parties' word,
and a staff id is text anybody at an agency could have typed.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import matplotlib
from matplotlib import font_manager, ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from oversight.anomalies import JST, Anomaly
from oversight.model import ConsentRow, HubEntry
from oversight.readers import HubRead
from oversight.reconcile import TRANSPORT_FAILURES, ReconcileReport
from renkei.tlog import entry as tlog_entry
from renkei.tlog import note

JAPANESE_FONT = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")
MAX_ROWS = 2000  # findings shown in the table; the counts cover them all
MAX_SERIALS = 20
_SUCCESS = frozenset({"OK", "PENDING", "ANSWER_PENDING"})


@dataclass(frozen=True)
class Labels:
    per_day: str
    day: str
    exchanges: str
    denials: str
    rate: str

    @classmethod
    def japanese(cls) -> Labels:
        return cls(
            "機関別・日別の情報照会・提供件数",
            "日付（日本時間）",
            "件数",
            "拒否・エラーの理由別の割合",
            "全やりとりに対する割合",
        )

    @classmethod
    def english(cls) -> Labels:
        return cls(
            "Exchanges per agency and day",
            "day (JST)",
            "exchanges",
            "Refusals by reason",
            "share of all exchanges",
        )


def _font(path: Path) -> str | None:
    """The font's family name once matplotlib knows it, or None when it is absent."""
    if not path.is_file():
        return None
    font_manager.fontManager.addfont(str(path))
    return font_manager.FontProperties(fname=str(path)).get_name()


def _figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no display, nothing global."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _finals(entries: Iterable[HubEntry]) -> dict[int, tuple[HubEntry, str, str]]:
    """Each exchange's entry and its latest outcome and reason."""
    out: dict[int, tuple[HubEntry, str, str]] = {}
    later: list[HubEntry] = []
    for e in entries:
        if e.kind == tlog_entry.EXCHANGE:
            out[e.serial] = (e, e.outcome, e.reason)
        elif e.kind in (tlog_entry.OUTCOME, tlog_entry.FETCH):
            later.append(e)
    for e in later:
        if e.serial in out:
            out[e.serial] = (out[e.serial][0], e.outcome, e.reason)
    return out


def per_agency_day(entries: Iterable[HubEntry]) -> dict[str, Counter[date]]:
    """Exchanges each agency took part in (as requester or provider), per day in Japan."""
    counts: dict[str, Counter[date]] = defaultdict(Counter)
    for e in entries:
        if e.kind == tlog_entry.EXCHANGE:
            day = e.logged_at.astimezone(JST).date()
            counts[e.requester][day] += 1
            if e.provider != e.requester:
                counts[e.provider][day] += 1
    return counts


def refusal_rates(entries: Iterable[HubEntry]) -> tuple[int, Counter[str]]:
    """(exchanges, refusals per "OUTCOME REASON")."""
    finals = _finals(entries)
    refused: Counter[str] = Counter()
    for _, outcome, reason in finals.values():
        if outcome not in _SUCCESS:
            refused[f"{outcome} {reason}".strip()] += 1
    return len(finals), refused


def _plot_days(counts: dict[str, Counter[date]], labels: Labels, family: str | None) -> str:
    with matplotlib.rc_context({"font.family": family} if family else {}):
        fig = _figure(9, 4)
        ax = fig.subplots()
        days = sorted({d for per_day in counts.values() for d in per_day})
        for agency in sorted(counts):
            ax.plot(
                [d.isoformat() for d in days],
                [counts[agency][d] for d in days],
                marker="o",
                label=agency,
            )
        ax.set_title(labels.per_day)
        ax.set_xlabel(labels.day)
        ax.set_ylabel(labels.exchanges)
        if counts:
            ax.legend(fontsize="small")
        fig.autofmt_xdate()
        return _png(fig)


def _plot_refusals(total: int, refused: Counter[str], labels: Labels, family: str | None) -> str:
    with matplotlib.rc_context({"font.family": family} if family else {}):
        top = refused.most_common(15)[::-1]
        fig = _figure(9, max(2.0, 0.4 * len(top) + 1))
        ax = fig.subplots()
        ax.barh([k for k, _ in top], [v / total if total else 0 for _, v in top])
        ax.set_title(labels.denials)
        ax.set_xlabel(labels.rate)
        ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        return _png(fig)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _checkpoint(hub: HubRead) -> str:
    cp = hub.checkpoint
    try:
        _, sigs = note.parse(hub.note)
        signers = ", ".join(sorted({s.name for s in sigs}))
    except note.NoteError:
        signers = "?"
    state = (
        "検証済み: すべての記録がこのチェックポイントの木に含まれます / verified: every entry"
        " is in this checkpoint's tree"
        if hub.verified
        else f"検証できない記録 {len(hub.unverified)} 件 / {len(hub.unverified)} entries do not"
        " verify"
    )
    rows = [
        ("origin", cp.origin),
        ("tree size", cp.size),
        ("root hash", base64.b64encode(cp.root_hash).decode("ascii")),
        ("signatures", signers),
        ("state", state),
    ]
    out = _table(("", ""), rows)
    if hub.unverified:
        out += _table(
            ("leaf index", "problem"),
            ((u.leaf_index, u.problem) for u in hub.unverified[:MAX_ROWS]),
        )
    out += "<pre>" + _e(hub.note.decode("utf-8", "replace")) + "</pre>"
    return out


def render(
    hub: HubRead,
    reconciled: ReconcileReport,
    anomalies: Sequence[Anomaly],
    consent: Sequence[ConsentRow] = (),
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    font: Path = JAPANESE_FONT,
    now: datetime | None = None,
) -> str:
    """The report as one HTML document."""
    family = _font(font)
    labels = Labels.japanese() if family else Labels.english()
    entries = [
        e
        for e in hub.entries
        if (start is None or e.logged_at >= start) and (end is None or e.logged_at < end)
    ]
    total, refused = refusal_rates(entries)
    days_png = _plot_days(per_agency_day(entries), labels, family)
    refusals_png = _plot_refusals(total, refused, labels, family)
    generated = (now or datetime.now(UTC)).astimezone(JST).isoformat(timespec="seconds")
    window = f"{start.isoformat() if start else '…'} – {end.isoformat() if end else '…'}"
    findings = reconciled.findings
    counts = reconciled.counts()
    summary = _table(
        ("", ""),
        [
            ("作成 / generated", generated),
            ("期間 / period", window),
            ("読んだ機関 / agencies read", ", ".join(reconciled.agencies)),
            ("やりとり / exchanges", reconciled.exchanges),
            ("機関の記録 / agency rows", reconciled.rows),
            ("ハブ前の拒否 / refused before the hub", reconciled.local_refusals),
            ("不整合 / findings", len(findings)),
            ("異常 / anomalies", len(anomalies)),
            ("同意ログ / consent attempts", len(consent)),
        ],
    )
    finding_rows = (
        (f.kind, f.serial, f.agency, f.field, f.ours, f.theirs) for f in findings[:MAX_ROWS]
    )
    more = (
        f"<p>{_e(len(findings) - MAX_ROWS)} more findings: see the JSON output.</p>"
        if len(findings) > MAX_ROWS
        else ""
    )
    anomaly_rows = (
        (
            a.kind,
            a.agency,
            a.staff,
            a.terminal,
            a.count,
            " ".join(str(s) for s in a.serials[:MAX_SERIALS])
            + (" …" if len(a.serials) > MAX_SERIALS else ""),
            a.ja,
            a.en,
        )
        for a in anomalies
    )
    consent_counts = Counter((c.caller, c.outcome) for c in consent)
    transport = sum(v for k, v in refused.items() if k.split(" ")[0] in TRANSPORT_FAILURES)
    parts = [
        "<!doctype html>",
        '<html lang="ja"><head><meta charset="utf-8">',
        "<title>第三者機関 報告 / oversight report</title>",
        "<style>body{font-family:'IPAexGothic',sans-serif;margin:2em;max-width:80em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #999;"
        "padding:.2em .5em;text-align:left;vertical-align:top}th{background:#eee}"
        "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow-x:auto}</style>",
        "</head><body>",
        "<h1>第三者機関 報告 <small>oversight report</small></h1>",
        summary,
        "<h2>チェックポイント / checkpoint</h2>",
        _checkpoint(hub),
        "<h2>やりとりの件数 / exchanges</h2>",
        f'<img alt="{_e(labels.per_day)}" src="data:image/png;base64,{days_png}">',
        "<h2>拒否の理由 / refusals by reason</h2>",
        f'<img alt="{_e(labels.denials)}" src="data:image/png;base64,{refusals_png}">',
        _table(
            ("理由 / reason", "件数 / count", "割合 / rate"),
            ((k, v, f"{v / total:.2%}" if total else "") for k, v in refused.most_common()),
        ),
        f"<p>通信障害 / transport failures: {_e(transport)}</p>",
        "<h2>突合の結果 / reconcile findings</h2>",
        _table(("kind", "件数 / count"), sorted(counts.items()))
        if counts
        else "<p>なし / none</p>",
        _table(
            ("kind", "serial", "agency", "field", "hub / requester", "agency / provider"),
            finding_rows,
        )
        if findings
        else "",
        more,
        "<h2>異常 / anomalies</h2>",
        _table(
            ("kind", "agency", "staff", "terminal", "count", "serials", "説明", "explanation"),
            anomaly_rows,
        )
        if anomalies
        else "<p>なし / none</p>",
        "<h2>同意ログ / consent log</h2>",
        _table(
            ("caller", "outcome", "count"),
            ((c, o, n) for (c, o), n in sorted(consent_counts.items())),
        )
        if consent_counts
        else "<p>なし / none</p>",
        "</body></html>",
    ]
    return "\n".join(parts)
