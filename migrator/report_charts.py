"""Charts for the HTML report as inline SVG, drawn here so the report fetches nothing and prints as
it shows. Every value is escaped; colours are fixed per item state so charts and legend agree."""

from __future__ import annotations

from html import escape
from typing import Any

# The order bars stack in: done first, then what is still open, then what went wrong.
STATE_COLOURS = {
    "verified": "#2e7d32",
    "copied": "#1e88e5",
    "planned": "#b0bec5",
    "skipped": "#8e24aa",
    "removed": "#6d4c41",
    "deleted": "#9e9e9e",
    "mismatch": "#f9a825",
    "failed": "#c62828",
}
LABEL_WIDTH = 230
BAR_WIDTH = 520
ROW_HEIGHT = 26
FONT = 'font-family="sans-serif" font-size="12"'


def _text(x: float, y: float, content: str, anchor: str = "start", weight: str = "normal") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-weight="{weight}" {FONT}>{escape(content)}</text>'


def _clip(label: str, length: int = 34) -> str:
    return label if len(label) <= length else label[: length - 1] + "…"


def stacked_bars(title: str, rows: list[tuple[str, dict[str, Any]]]) -> str:
    """One 100 % bar per row, split by item state; the row's item count and share verified at the right."""
    height = 30 + ROW_HEIGHT * len(rows) + 34
    width = LABEL_WIDTH + BAR_WIDTH + 140
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             f"<title>{escape(title)}</title>", _text(0, 16, title, weight="bold")]
    for index, (label, counts) in enumerate(rows):
        y = 30 + index * ROW_HEIGHT
        total = counts["items"]
        parts.append(_text(LABEL_WIDTH - 8, y + 15, _clip(label), anchor="end"))
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{BAR_WIDTH}" height="{ROW_HEIGHT - 6}" fill="#eceff1"/>')
        x = float(LABEL_WIDTH)
        for state, colour in STATE_COLOURS.items():
            if not total or not counts[state]:
                continue
            span = BAR_WIDTH * counts[state] / total
            parts.append(f'<rect x="{x:.2f}" y="{y}" width="{span:.2f}" height="{ROW_HEIGHT - 6}" fill="{colour}">'
                         f"<title>{escape(label)}: {counts[state]} {state}</title></rect>")
            x += span
        done = counts["verified"] / total if total else 0.0
        parts.append(_text(LABEL_WIDTH + BAR_WIDTH + 8, y + 15, f"{total} items, {done:.0%} verified"))
    parts.append(_legend(30 + ROW_HEIGHT * len(rows) + 10))
    parts.append("</svg>")
    return "".join(parts)


def _legend(y: float) -> str:
    parts, x = [], float(LABEL_WIDTH)
    for state, colour in STATE_COLOURS.items():
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(x + 16, y + 10, state))
        x += 16 + 8 * len(state) + 14
    return "".join(parts)


def cause_bars(title: str, causes: list[dict[str, Any]], limit: int = 12) -> str:
    """Items per cause (state and reason), longest bar first, coloured by state."""
    shown = causes[:limit]
    if not shown:
        return ""
    most = max(c["items"] for c in shown)
    label_width = 380
    width = label_width + BAR_WIDTH // 2 + 80
    height = 30 + ROW_HEIGHT * len(shown) + (26 if len(causes) > limit else 8)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
             f"<title>{escape(title)}</title>", _text(0, 16, title, weight="bold")]
    for index, cause in enumerate(shown):
        y = 30 + index * ROW_HEIGHT
        label = f"{cause['state']}: {cause['reason'] or '(no reason given)'}"
        span = (BAR_WIDTH // 2) * cause["items"] / most
        parts.append(_text(label_width - 8, y + 15, _clip(label, 58), anchor="end"))
        parts.append(f'<rect x="{label_width}" y="{y}" width="{span:.2f}" height="{ROW_HEIGHT - 6}" fill="{STATE_COLOURS.get(cause["state"], "#546e7a")}">'
                     f"<title>{escape(label)}: {cause['items']} items</title></rect>")
        parts.append(_text(label_width + span + 6, y + 15, str(cause["items"])))
    if len(causes) > limit:
        parts.append(_text(0, height - 6, f"and {len(causes) - limit} more causes in the table below"))
    parts.append("</svg>")
    return "".join(parts)
