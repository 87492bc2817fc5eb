"""Short human formats for numbers the screens show: bytes, rates, ages, milliseconds."""

from __future__ import annotations

_UNITS = ("B", "K", "M", "G", "T", "P")


def human_bytes(n: float) -> str:
    """1536 → '1.5K': compact, base 1024, at most 5 characters for table cells."""
    n = float(n)
    for unit in _UNITS:
        if abs(n) < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(n)}B"
            return f"{n:.1f}{unit}" if abs(n) < 10 else f"{n:.0f}{unit}"
        n /= 1024
    return f"{n:.0f}P"  # pragma: no cover - the loop always returns


def human_rate(bytes_per_second: float) -> str:
    if bytes_per_second <= 0:
        return "-"
    return human_bytes(bytes_per_second) + "/s"


def human_count(n: float) -> str:
    if n < 1000:
        return f"{n:g}" if isinstance(n, float) and n != int(n) else f"{int(n)}"
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def human_age(seconds: float) -> str:
    """Like kubectl's AGE column: 42s, 3m10s, 2h5m, 3d4h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s" if m < 10 else f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h}h"


def human_duration(seconds: float) -> str:
    """A connection's lifetime: milliseconds matter below a second, then like an age."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    return human_age(seconds)


def human_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.2f}s"


def clip(text: str, width: int) -> str:
    """Cut to `width` cells with an ellipsis, keeping the end of long host names readable."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


TLS_VERSIONS = {0x0304: "1.3", 0x0303: "1.2", 0x0302: "1.1", 0x0301: "1.0", 0x0300: "SSL3"}


def tls_versions(codes: tuple[int, ...]) -> str:
    names = [TLS_VERSIONS.get(c, f"0x{c:04x}") for c in codes if (c & 0x0F0F) != 0x0A0A]  # drop GREASE
    return ", ".join(names) if names else "-"
