"""Tables printed without styles, built directly: the text rich prints, thousands of rows faster.

A console that prints no styles (output piped or redirected) gets the same characters from
:func:`plain_table` as from rich's :class:`~rich.table.Table` with the heavy-head box, a
left-justified title and cells that fit on one line each; anything else (colours, a cell rich
would fold or wrap, a title wider than the table, control characters) is left to rich, which is
what :func:`plain_table` returning ``None`` means.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def plain_table(
    console: Any, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]
) -> str | None:
    """The text of the table, or ``None`` when rich must render it.

    Cells are rich console markup, as :meth:`rich.table.Table.add_row` takes them.
    """
    if (
        console.color_system is not None
        or console.is_jupyter
        or console.record
        or console.legacy_windows
        or console.options.ascii_only
    ):
        return None
    seen: dict[str, str | None] = {}  # many rows repeat a schedule, a zone, an outcome

    def plain(markup: str) -> str | None:
        try:
            return seen[markup]
        except KeyError:
            found = seen[markup] = _plain(markup)
            return found

    head = [plain(cell) for cell in headers]
    body = [[plain(cell) for cell in row] for row in rows]
    caption = plain(title)
    if caption is None or any(cell is None for cell in head):
        return None
    widths = [cell_len(cell) for cell in head]  # type: ignore[arg-type]
    count = len(widths)
    for row in body:
        if len(row) != count:
            return None
        for index, cell in enumerate(row):
            if cell is None:
                return None
            size = cell_len(cell)
            if size > widths[index]:
                widths[index] = size
    # a column is its widest cell plus one space each side; the edges and separators add
    # one character each
    table_width = sum(widths) + 2 * count + count + 1
    if table_width > console.width or cell_len(caption) > table_width:
        return None
    lines = [caption + " " * (table_width - cell_len(caption))] if title else []
    lines.append(_rule("┏", "━", "┳", "┓", widths))
    lines.append(_cells("┃", "┃", head, widths))
    lines.append(_rule("┡", "━", "╇", "┩", widths))
    lines.extend(_cells("│", "│", row, widths) for row in body)  # type: ignore[arg-type]
    lines.append(_rule("└", "─", "┴", "┘", widths))
    lines.append("")
    return "\n".join(lines)


def _rule(left: str, line: str, cross: str, right: str, widths: list[int]) -> str:
    return left + cross.join(line * (width + 2) for width in widths) + right


def _cells(edge: str, separator: str, cells: Sequence[str], widths: list[int]) -> str:
    parts = [
        f" {cell}{' ' * (width - cell_len(cell))} "
        for cell, width in zip(cells, widths, strict=True)
    ]
    return edge + separator.join(parts) + edge


def cell_len(text: str) -> int:
    """The columns *text* takes in a terminal (printable ASCII: one each)."""
    if text.isascii():
        return len(text)
    from rich.cells import cell_len as columns

    return columns(text)


def _plain(markup: str) -> str | None:
    """The characters rich prints for *markup* in a cell, or ``None`` if rich must lay it out
    (it holds line breaks, tabs or other characters that are not plainly printable)."""
    if "[" in markup or ":" in markup:  # console markup, emoji codes
        from rich.markup import render

        markup = render(markup).plain
    if not markup.isprintable():
        return None
    return markup
