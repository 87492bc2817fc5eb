"""Semantic colours for Rich text inside tables and panels, taken from the current theme.

CSS classes colour whole widgets; cells of a DataTable are Rich `Text`, which
cannot use theme variables. This resolves the theme's colours once per theme,
so light and dark themes both stay readable.
"""

from __future__ import annotations

from rich.style import Style
from textual.app import App
from textual.color import Color, ColorParseError

_VARIABLES = {
    "error": ("text-error", "error"),
    "warning": ("text-warning", "warning"),
    "success": ("text-success", "success"),
    "accent": ("text-primary", "primary"),
    "muted": ("foreground-muted", "foreground"),
}


def tone_styles(app: App) -> dict[str, Style]:
    variables = app.theme_variables or app.get_css_variables()
    background = _parse(variables.get("background"), Color(0, 0, 0))
    out: dict[str, Style] = {"": Style()}
    for tone, names in _VARIABLES.items():
        for name in names:
            color = _parse(variables.get(name), None)
            if color is not None:
                # Variables may carry alpha (muted text); composite onto the background for Rich.
                out[tone] = Style(color=(background + color).rich_color, bold=tone == "accent")
                break
        else:
            out[tone] = Style()
    return out


def _parse(text: str | None, fallback: Color | None) -> Color | None:
    if not text:
        return fallback
    try:
        return Color.parse(text)
    except ColorParseError:
        return fallback
