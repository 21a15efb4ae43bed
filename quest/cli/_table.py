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
    console: Any, title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]
) -> str | None:
    """The text of the table, or ``None`` when rich must render it.

    Cells are rich console markup, as :meth:`rich.table.Table.add_row` takes them (a cell that
    is not text is left to rich).
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

    def plain(markup: Any) -> str | None:
        if type(markup) is not str:
            return None
        try:
            return seen[markup]
        except KeyError:
            found = seen[markup] = _plain(markup)
            return found

    caption = plain(title)
    if caption is None:
        return None
    lines: list[list[str]] = []
    for row in (headers, *rows):
        cells = [plain(cell) for cell in row]
        if len(cells) != len(headers):
            return None
        texts = [cell for cell in cells if cell is not None]
        if len(texts) != len(cells):
            return None
        lines.append(texts)
    widths = [max(cell_len(line[index]) for line in lines) for index in range(len(headers))]
    # a column is its widest cell plus one space each side; the edges and separators add
    # one character each
    count = len(widths)
    table_width = sum(widths) + 2 * count + count + 1
    if table_width > console.width or cell_len(caption) > table_width:
        return None
    text = [caption + " " * (table_width - cell_len(caption))] if title else []
    text.append(_rule("┏", "━", "┳", "┓", widths))
    text.append(_cells("┃", "┃", lines[0], widths))
    text.append(_rule("┡", "━", "╇", "┩", widths))
    text.extend(_cells("│", "│", row, widths) for row in lines[1:])
    text.append(_rule("└", "─", "┴", "┘", widths))
    text.append("")
    return "\n".join(text)


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
