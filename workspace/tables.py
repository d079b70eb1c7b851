"""One table model for the screen and the exports: the CSV and XLSX files carry exactly the figures on the page."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.http import HttpResponse


@dataclasses.dataclass
class Cell:
    value: Any  # what the files get: Decimal, int, date, str or None
    href: str = ""
    css: str = ""
    blank_zero: bool = False  # on screen only: the unused side of a debit/credit pair reads as blank
    note: str = ""  # on screen only: a second, smaller line (its figure is a column of its own in the files)

    @property
    def is_number(self) -> bool:
        return isinstance(self.value, int | Decimal) and not isinstance(self.value, bool)

    @property
    def shown(self) -> str:
        return "" if self.blank_zero and self.is_number and not self.value else self.text

    @property
    def text(self) -> str:
        if self.value is None:
            return ""
        if isinstance(self.value, Decimal):
            return f"{self.value:,}"
        if isinstance(self.value, datetime):
            return self.value.strftime("%Y-%m-%d %H:%M")
        return str(self.value)


@dataclasses.dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Cell]] = dataclasses.field(default_factory=list)
    totals: list[list[Cell]] = dataclasses.field(default_factory=list)
    groups: list[tuple[str, int]] = dataclasses.field(default_factory=list)  # header groups over columns
    screen_columns: int | None = (
        None  # the screen shows the first N columns (the rest are notes shown in cells)
    )

    @property
    def header(self) -> list[tuple[str, bool]]:
        """(column title, whether the column holds numbers) for right-aligned headers over right-aligned figures."""
        numeric = [any(row[i].is_number for row in self.rows + self.totals) for i in range(len(self.columns))]
        return list(zip(self.columns, numeric, strict=True))[: self.screen_columns]

    @property
    def screen_rows(self) -> list[list[Cell]]:
        return [row[: self.screen_columns] for row in self.rows]

    @property
    def screen_totals(self) -> list[list[Cell]]:
        return [row[: self.screen_columns] for row in self.totals]

    def records(self) -> list[list[Any]]:
        return [[c.value for c in row] for row in (*self.rows, *self.totals)]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else value


def csv_response(tables: list[Table], filename: str) -> HttpResponse:
    """One table: header and rows. Several (the dashboard): each after its title line, separated by a blank line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for n, table in enumerate(tables):
        if len(tables) > 1:
            if n:
                writer.writerow([])
            writer.writerow([table.title])
        writer.writerow(table.columns)
        for record in table.records():
            writer.writerow([_plain(v) for v in record])
    response = HttpResponse(buffer.getvalue().encode("utf-8-sig"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def xlsx_response(tables: list[Table], filename: str) -> HttpResponse:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    book.remove(book.active)
    for table in tables:
        sheet = book.create_sheet(title=table.title[:31])
        sheet.append(table.columns)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for record in table.records():
            row = []
            for value in record:
                if isinstance(value, datetime):
                    value = value.replace(tzinfo=None)
                row.append(value)
            sheet.append(row)
            for cell, value in zip(sheet[sheet.max_row], record, strict=False):
                if isinstance(value, Decimal):
                    exponent = value.as_tuple().exponent
                    places = max(0, -exponent) if isinstance(exponent, int) else 0
                    cell.number_format = "#,##0" + ("." + "0" * places if places else "")
                elif isinstance(value, date):
                    cell.number_format = (
                        "yyyy-mm-dd" if not isinstance(value, datetime) else "yyyy-mm-dd hh:mm"
                    )
        for row in sheet.iter_rows(min_row=sheet.max_row - len(table.totals) + 1):
            for cell in row:
                cell.font = Font(bold=True)
        for i, title in enumerate(table.columns, start=1):
            sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = max(10, len(title) + 2)
        sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    book.save(buffer)
    response = HttpResponse(
        buffer.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.xlsx"'
    return response
