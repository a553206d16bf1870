"""やりとり履歴 as a PDF (the portal's download and the counter's print, R26).

A4 portrait with the Japanese font embedded (IPAex Gothic from Debian's
fonts-ipaexfont-gothic by default): a title, who and what it covers, a table
of the exchanges, the checkpoint they were verified against (or, in words, that
they were not), and on every page "page N / M" with the footer text.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TableCellFillMode, WrapMode
from fpdf.fonts import FontFace

from portal.history import JST, HistoryPage, HistoryRow

FONT = "ipaexg"
HEADINGS = ("通番", "日時", "法令の根拠", "照会機関", "提供機関", "情報の種類", "結果", "検証")
# mm, summing to the A4 page less its margins (210 - 2 * 12).
WIDTHS = (15, 29, 30, 26, 26, 26, 22, 12)


class _Report(FPDF):
    def __init__(self, footer_text: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._footer_text = footer_text

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.cell(0, 5, f"{self._footer_text}    page {self.page_no()} / {{nb}}", align="C")


def _cells(row: HistoryRow, said: str) -> tuple[str, ...]:
    status = row.verified_label
    problems = [p for p in row.problems if p != said]  # the checkpoint's is said above once
    if problems:
        status += "\n" + "\n".join(problems)
    if row.deferral is not None:
        until = row.deferral.until.astimezone(JST).strftime("%Y-%m-%d")
        text = f"開示延期中: {until} から表示（理由: {row.deferral.legal_reason}）"
        return (str(row.serial), "", text, "", "", "", "", status)
    basis = row.legal_basis_item + (f"\n{row.legal_basis_text}" if row.legal_basis_text else "")
    outcome = row.outcome_label + (f"（{row.reason_label}）" if row.reason else "")
    return (
        str(row.serial),
        row.logged_at_jst,
        basis,
        f"{row.requester_name}\n{row.requester_id}".strip(),
        f"{row.provider_name}\n{row.provider_id}".strip(),
        row.info_kind,
        outcome,
        status,
    )


def render_history_pdf(
    page: HistoryPage,
    *,
    title: str,
    subject_line: str,
    generated_at: datetime,
    footer: str,
    font_path: Path,
) -> bytes:
    pdf = _Report(footer)
    pdf.set_margins(12, 12, 12)
    pdf.set_auto_page_break(True, margin=16)
    pdf.add_font(FONT, fname=str(font_path))
    pdf.set_title(title)
    pdf.set_creator("renkei portal")
    pdf.add_page()
    pdf.set_font(FONT, size=15)
    pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=9)
    made = generated_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    pdf.multi_cell(
        0, 5, f"{subject_line}\n作成日時: {made}（日本時間）", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(2)
    _checkpoint(pdf, page)
    pdf.ln(3)
    pdf.set_font(FONT, size=7)
    if not page.rows:
        pdf.multi_cell(0, 5, "該当する記録はありません。", new_x="LMARGIN", new_y="NEXT")
    else:
        with pdf.table(
            col_widths=WIDTHS,
            width=sum(WIDTHS),
            text_align="LEFT",
            wrapmode=WrapMode.CHAR,
            line_height=3.6,
            padding=0.8,
            headings_style=FontFace(emphasis="", fill_color=(225, 230, 240)),
            cell_fill_mode=TableCellFillMode.NONE,
        ) as table:
            table.row(HEADINGS)
            for row in page.rows:
                table.row(_cells(row, page.checkpoint_error))
    return bytes(pdf.output())


def _checkpoint(pdf: FPDF, page: HistoryPage) -> None:
    pdf.set_font(FONT, size=9)
    if not page.checkpoints or page.checkpoint is None:
        text = "× この記録は検証できませんでした。記載の内容は確認されていません。"
        if page.checkpoint_error:
            text += f"\n{page.checkpoint_error}"
        pdf.multi_cell(0, 5, text, border=1, new_x="LMARGIN", new_y="NEXT")
        return
    lines = ["検証に用いたチェックポイント（情報提供ネットワークシステムの検証可能なログ）"]
    for cp in page.checkpoints:
        witnessed = "、".join(cp.witnesses) or "なし"
        if cp.time is not None:
            witnessed += f"（{cp.time.astimezone(JST).strftime('%Y-%m-%d %H:%M')} 署名）"
        lines += [
            f"ログ: {cp.origin}    記録数: {cp.size}",
            f"ルートハッシュ: {cp.root_hash_hex}",
            f"証人: {witnessed}",
        ]
    if not page.verified:
        lines.append("× 検証に失敗した記録があります（表の「検証」欄を参照）。")
    pdf.multi_cell(0, 5, "\n".join(lines), border=1, new_x="LMARGIN", new_y="NEXT")
