"""Markdown tables, the one way reports, audits and experiment summaries lay out their numbers.

A leaf module like ``config``: any package may import it.
"""

from __future__ import annotations

from typing import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence], align: str | None = None) -> list[str]:
  """Returns the lines of a markdown table: header, alignment row, one line per row of cells.

  Args:
    align: one character per column, ``l`` (left) or ``r`` (right, for
      numbers); default: the first column left, the others right.
  """
  align = align or "l" + "r" * (len(header) - 1)
  if len(align) != len(header):
    raise ValueError(f"{len(align)} alignments for {len(header)} columns")
  return [row(header), "|" + "".join("---|" if a == "l" else "---:|" for a in align),
          *(row(cells) for cells in rows)]


def row(cells: Sequence) -> str:
  """Formats one table line: ``| a | b |`` (an empty cell ``| |``)."""
  return "|" + "".join(f" {cell} |" if str(cell) else " |" for cell in cells)
