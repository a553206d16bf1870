"""The notification of a Number to its holder (個人番号通知書, R10).

The numbering agency renders the document and hands it to its caller, the
resident registry / municipality, which prints it and mails it to the holder
in a sealed envelope to the address on the resident record. The numbering
agency holds none of the four facts (name, address, date of birth, sex), so
the document carries none of them: the municipality addresses the envelope.
Nor does it carry the resident code: the holder needs only the Number.

The markup is polyglot (well-formed XML as well as HTML5), so it can be
checked with an XML parser and printed by any browser.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from html import escape

from numbering.number import format_number

# Dates on the notice are Japanese calendar days (JST has no DST).
JST = timezone(timedelta(hours=9), "JST")

_STYLE = """
body { font-family: "Noto Serif JP", "Yu Mincho", serif; margin: 0; color: #000; }
main { max-width: 170mm; margin: 0 auto; padding: 12mm; }
h1 { font-size: 20pt; text-align: center; letter-spacing: 0.5em; margin: 0 0 8mm; }
.addressee { border: 1px dashed #888; min-height: 30mm; padding: 3mm; margin-bottom: 8mm; }
.addressee p { color: #555; font-size: 9pt; margin: 0; }
dl { display: grid; grid-template-columns: 30mm 1fr; gap: 3mm 4mm; margin: 0 0 8mm; }
dt { font-weight: bold; }
dd { margin: 0; }
.number { font-family: "Noto Sans Mono", monospace; font-size: 22pt; letter-spacing: 0.15em; }
section p { font-size: 10.5pt; line-height: 1.7; margin: 0 0 3mm; }
footer { border-top: 1px solid #000; margin-top: 10mm; padding-top: 3mm; font-size: 9pt; }
@media print {
  @page { size: A4 portrait; margin: 15mm; }
  main { max-width: none; padding: 0; }
  .addressee { border-color: #000; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def render_notice(number: str, issued_at: datetime) -> bytes:
    """The printable notice for ``number``, issued at ``issued_at`` (aware)."""
    day = issued_at.astimezone(JST).date()
    iso = day.isoformat()
    label = f"{day.year}年{day.month}月{day.day}日"
    shown = escape(format_number(number))
    page = f"""<!DOCTYPE html>
<html lang="ja" xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta charset="utf-8" />
<meta name="robots" content="noindex" />
<title>個人番号通知書</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<section class="addressee" aria-label="宛先">
<p>宛先の住所・氏名は、送付する市区町村が住民票に基づいて記入します。</p>
</section>
<h1>個人番号通知書</h1>
<p>あなたの個人番号、マイナンバーを次のとおりお知らせします。</p>
<dl>
<dt>個人番号</dt>
<dd class="number" data-number="{escape(number)}">{shown}</dd>
<dt>付番日</dt>
<dd><time datetime="{iso}">{label}</time></dd>
</dl>
<section aria-label="説明">
<p>個人番号は、社会保障・税・災害対策の分野で、法律に定められた行政手続にだけ使われます。</p>
<p>個人番号は原則として生涯変わりません。漏えいして不正に用いられるおそれがあるときは、
お住まいの市区町村に請求して変更できます。</p>
<p>この通知書は大切に保管してください。法律で定められた場合を除き、他人に個人番号を
教えたり、提供を求められて応じたりしないでください。この通知書は本人確認書類としては使えません。</p>
</section>
<footer>
<p>番号生成機関 発行。この通知書には氏名・住所・生年月日・性別は記載していません。</p>
</footer>
</main>
</body>
</html>
"""
    return page.encode("utf-8")
