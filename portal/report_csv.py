"""やりとり履歴 as CSV: UTF-8 with a BOM (so Excel in Japan opens it as UTF-8), Japanese headers."""

from __future__ import annotations

import csv
import io

from portal.history import HistoryPage, HistoryRow

HEADER = (
    "通番",
    "日時（日本時間）",
    "法令の根拠（項番）",
    "法令の根拠（事務）",
    "照会機関コード",
    "照会機関",
    "提供機関コード",
    "提供機関",
    "情報の種類",
    "結果",
    "理由",
    "検証",
    "検証の問題",
    "開示延期（表示開始）",
    "開示延期の理由",
)


def _cells(row: HistoryRow) -> list[str]:
    if row.deferral is not None:
        until = row.deferral.until.isoformat()
        return [
            str(row.serial),
            *[""] * 10,
            row.verified_label,
            "；".join(row.problems),
            until,
            row.deferral.legal_reason,
        ]
    return [
        str(row.serial),
        row.logged_at_jst,
        row.legal_basis_item,
        row.legal_basis_text,
        row.requester_id,
        row.requester_name,
        row.provider_id,
        row.provider_name,
        row.info_kind,
        row.outcome_label,
        row.reason_label if row.reason else "",
        row.verified_label,
        "；".join(row.problems),
        "",
        "",
    ]


def render_history_csv(page: HistoryPage, *, truncated_at: int | None = None) -> bytes:
    """One row per exchange, after the header; a last comment-like row when the page was cut."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for row in page.rows:
        writer.writerow(_cells(row))
    if page.checkpoint is None:
        writer.writerow(["# 検証できませんでした", page.checkpoint_error])
    if truncated_at is not None:
        writer.writerow([f"# 上限 {truncated_at} 件までを出力しました"])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
