"""Charts for answers with tabular data, when the person asked for one.

The model is good at tables and poor at pixels: it writes the numbers as a markdown table
(or a CSV block), and this module draws them with matplotlib as a PNG the Slack layer
attaches to the thread. Nothing here knows Slack.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

# Asked for in so many words; "show me the numbers" alone is not a chart request.
_ASKS = re.compile(
    r"\b(chart|graph|plot|visuali[sz]e|visuali[sz]ation|histogram|bar ?chart|line ?chart|pie)\b"
    r"|グラフ|チャート|図示|可視化",
    re.IGNORECASE,
)
_ROW = re.compile(r"^\s*\|(.+)\|\s*$")
_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_CSV_BLOCK = re.compile(r"```csv[^\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_NUMBER = re.compile(r"^[-+]?[$€£¥]?\s*[-+]?\d[\d,]*(\.\d+)?\s*[%kKmMbB]?$")
MAX_ROWS = 60  # more than this is not a readable chart


@dataclass(frozen=True)
class Table:
    """A header and rows of cells, as text."""

    header: list[str]
    rows: list[list[str]]


def wants_chart(question: str) -> bool:
    """Whether the person asked for a chart (English or Japanese)."""
    return bool(_ASKS.search(question or ""))


def first_table(text: str) -> Table | None:
    """The first markdown pipe table in `text`, else the first ```csv block, else None."""
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        if _ROW.match(lines[i]) and _SEPARATOR.match(lines[i + 1]):
            header = _cells(lines[i])
            rows = []
            for line in lines[i + 2 :]:
                if not _ROW.match(line):
                    break
                rows.append(_cells(line))
            rows = [r for r in rows if len(r) == len(header)]
            if rows:
                return Table(header, rows)
    block = _CSV_BLOCK.search(text)
    if block:
        parsed = [r for r in csv.reader(io.StringIO(block.group(1).strip())) if r]
        if len(parsed) >= 2:
            width = len(parsed[0])
            return Table(parsed[0], [r for r in parsed[1:] if len(r) == width])
    return None


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("*_`") for cell in _ROW.match(line).group(1).split("|")]


def number(cell: str) -> float | None:
    """`1,234`, `$5.2`, `12%`, `3.4k` → a float; anything else → None."""
    cell = cell.strip()
    if not _NUMBER.match(cell):
        return None
    scale = {"k": 1e3, "m": 1e6, "b": 1e9}.get(cell[-1].lower(), 1.0)
    digits = re.sub(r"[^\d.+-]", "", cell.rstrip("kKmMbB%"))
    try:
        return float(digits) * scale
    except ValueError:
        return None


def series(table: Table) -> tuple[list[str], dict[str, list[float]]]:
    """Labels from the first column; every column after it that is numeric in every row."""
    labels = [row[0] for row in table.rows[:MAX_ROWS]]
    columns: dict[str, list[float]] = {}
    for j, name in enumerate(table.header[1:], start=1):
        values = [number(row[j]) for row in table.rows[:MAX_ROWS]]
        if values and all(v is not None for v in values):
            columns[name or f"column {j}"] = values  # type: ignore[assignment]
    return labels, columns


def chart_png(table: Table, *, title: str = "") -> bytes | None:
    """A PNG chart of the table: bars for a few categories, lines for many or for time; None
    when the table has no numeric column to draw."""
    labels, columns = series(table)
    if not columns or len(labels) < 2:
        return None
    import matplotlib  # imported here: half a second, paid only when a chart is drawn

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    timeline = all(re.match(r"^\d{4}([-/]\d{1,2})?([-/]\d{1,2})?$|^Q[1-4]", x) for x in labels)
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    try:
        if timeline or len(labels) > 12:
            for name, values in columns.items():
                axes.plot(labels, values, marker="o", label=name)
        else:
            width = 0.8 / len(columns)
            for k, (name, values) in enumerate(columns.items()):
                offsets = [i + (k - (len(columns) - 1) / 2) * width for i in range(len(labels))]
                axes.bar(offsets, values, width=width, label=name)
            axes.set_xticks(range(len(labels)), labels)
        axes.set_xlabel(table.header[0])
        if len(columns) > 1:
            axes.legend()
        else:
            axes.set_ylabel(next(iter(columns)))
        if title:
            axes.set_title(title[:80])
        axes.grid(axis="y", alpha=0.3)
        if max(len(x) for x in labels) > 6:
            figure.autofmt_xdate(rotation=30)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
