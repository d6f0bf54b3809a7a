"""A billing document as a PDF (fpdf2, pure Python: no system libraries, no browser).

Rendered from the stored snapshot on each download, never stored: the document row is the
record, the PDF one view of it. The built-in Helvetica font keeps files small and needs no font
files; it covers Windows-1252 (every Western European name, and the € sign), and anything
outside it is replaced rather than failing the download.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fpdf import FPDF

from api.billing.tariffs import money, unit_money
from schema.document_models import DocumentKind

ENCODING = "windows-1252"
TITLES = {DocumentKind.RECEIPT.value: "Receipt", DocumentKind.INVOICE.value: "Invoice"}


def _text(value: Any) -> str:
    return str(value).encode(ENCODING, "replace").decode(ENCODING)


def _local(iso: str | None, time_zone: str | None) -> str:
    if not iso:
        return "-"
    at = datetime.fromisoformat(iso)
    try:
        at = at.astimezone(ZoneInfo(time_zone or "UTC"))
    except ZoneInfoNotFoundError:
        pass
    return at.strftime("%Y-%m-%d %H:%M %Z")


def _kwh(wh: int | None) -> str:
    return "-" if wh is None else f"{wh / 1000:,.3f} kWh"


def render(doc: Any) -> bytes:
    """The PDF of one `invoice` row (receipt or invoice)."""
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = ENCODING
    title = TITLES.get(doc.kind, "Document")
    pdf.set_title(_text(f"{title} {doc.number}"))
    pdf.set_author(_text(doc.seller.get("legal_name") or doc.seller.get("name") or ""))
    pdf.add_page()
    pdf.set_auto_page_break(auto=True, margin=15)
    width = pdf.epw

    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(width, 10, _text(f"{title} {doc.number}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(
        width,
        6,
        _text(f"Issued {doc.issued_at.strftime('%Y-%m-%d %H:%M')} UTC"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(4)

    _parties(pdf, width, doc.seller, doc.buyer)
    details = doc.details or {}
    if doc.kind == DocumentKind.RECEIPT.value and details:
        _session(pdf, width, details)
    elif doc.period_start is not None and doc.period_end is not None:
        pdf.set_font("Helvetica", "", 10)
        period = f"Period {doc.period_start:%Y-%m-%d} to {doc.period_end:%Y-%m-%d}"
        pdf.cell(width, 6, _text(period), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    _lines(pdf, width, doc)
    _totals(pdf, width, doc)
    return bytes(pdf.output())


def _parties(pdf: FPDF, width: float, seller: dict[str, Any], buyer: dict[str, Any]) -> None:
    half = width / 2
    seller_lines = [
        seller.get("legal_name") or seller.get("name") or "",
        *(seller.get("address") or "").splitlines(),
        f"VAT ID {seller['vat_id']}" if seller.get("vat_id") else "",
        seller.get("email") or "",
    ]
    buyer_lines = [
        buyer.get("name") or "",
        buyer.get("email") or "",
        f"Card {buyer['id_tag']}" if buyer.get("id_tag") else "",
        *(buyer.get("address") or "").splitlines(),
        f"VAT ID {buyer['vat_id']}" if buyer.get("vat_id") else "",
    ]
    top = pdf.get_y()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(half, 6, "From", new_x="RIGHT", new_y="TOP")
    pdf.cell(half, 6, "To", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    left = "\n".join(_text(x) for x in seller_lines if x)
    right = "\n".join(_text(x) for x in buyer_lines if x)
    pdf.multi_cell(half, 5, left, new_x="RIGHT", new_y="TOP")
    pdf.multi_cell(half, 5, right, new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(pdf.get_y(), top + 6 + 5 * max(len(left.splitlines()), len(right.splitlines()))) + 4)


def _session(pdf: FPDF, width: float, d: dict[str, Any]) -> None:
    tz = d.get("time_zone")
    facts = [
        ("Station", f"{d.get('charge_point_id')} / connector {d.get('connector_id')}"),
        ("Location", ", ".join(x for x in (d.get("location_name"), d.get("address")) if x) or "-"),
        ("Start", _local(d.get("started_at"), tz)),
        ("End", _local(d.get("stopped_at"), tz)),
        ("Energy", _kwh(d.get("energy_wh"))),
        ("Meter start / stop", f"{_kwh(d.get('meter_start_wh'))} / {_kwh(d.get('meter_stop_wh'))}"),
    ]
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(width, 7, "Charging session", new_x="LMARGIN", new_y="NEXT")
    for label, value in facts:
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(45, 5, _text(label), new_x="RIGHT", new_y="TOP")
        pdf.cell(width - 45, 5, _text(value), new_x="LMARGIN", new_y="NEXT")


def _lines(pdf: FPDF, width: float, doc: Any) -> None:
    cols = (width * 0.40, width * 0.15, width * 0.17, width * 0.10, width * 0.18)
    pdf.set_font("Helvetica", "B", 10)
    for w, head, align in zip(
        cols, ("Item", "Quantity", "Unit price", "Tax", "Amount"), "LRRRR", strict=True
    ):
        pdf.cell(w, 7, head, border="B", align=align)  # type: ignore[arg-type]
    pdf.ln()
    pdf.set_font("Helvetica", "", 10)
    for li in doc.lines:
        unit_price = li.get("unit_price")
        cells = (
            li.get("description", ""),
            f"{li.get('quantity', '')} {li.get('unit', '')}".strip(),
            "-"
            if unit_price is None
            else f"{unit_money(Decimal(unit_price), doc.currency)}/{li.get('unit', '')}",
            f"{li.get('tax_basis_points', 0) / 100:g} %",
            money(int(li.get("amount", 0)), doc.currency),
        )
        for w, value, align in zip(cols, cells, "LRRRR", strict=True):
            pdf.cell(w, 6, _text(value), align=align)  # type: ignore[arg-type]
        pdf.ln()


def _totals(pdf: FPDF, width: float, doc: Any) -> None:
    label_w, value_w = width * 0.82, width * 0.18
    taxes = [
        (f"Tax {t['tax_basis_points'] / 100:g} % on {money(t['net'], doc.currency)}", t["tax"], False)
        for t in doc.tax_breakdown
    ]
    rows: list[tuple[str, int, bool]]
    if doc.sponsor_amount:
        # The sponsor is invoiced its share with its tax; this document states the tax in what
        # the buyer pays (see api.invoicing.receipts.driver_tax_share).
        rows = [
            ("Session price", doc.total, False),
            ("Covered by sponsor", -doc.sponsor_amount, False),
            ("Amount due", doc.amount_due, True),
            *[(f"included: {label}", amount, bold) for label, amount, bold in taxes],
        ]
    else:
        rows = [("Net", doc.net, False), *taxes, ("Total", doc.total, True)]
    pdf.ln(2)
    for label, amount, bold in rows:
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.cell(label_w, 6, _text(label), align="R")
        pdf.cell(value_w, 6, _text(money(amount, doc.currency)), align="R", new_x="LMARGIN", new_y="NEXT")
