"""Speaking other routers' languages: import an nginx `stream` config, export to nginx and HAProxy.

- `sniui.interop.nginx_parser`: nginx syntax → directive tree (file:line, include globs)
- `sniui.interop.nginx_stream`: directive tree → the stream block's maps, upstreams and servers
- `sniui.interop.nginx_import`: `import_nginx(path) -> ImportResult` (config, YAML, findings)
- `sniui.interop.nginx_export`: `export_nginx(config) -> ExportResult` (text, findings)
- `sniui.interop.haproxy_export`: `export_haproxy(config) -> ExportResult`

Every conversion returns `Finding`s for what it could not carry over exactly;
nothing is dropped or changed without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a conversion changed, approximated or left out, with where it came from."""

    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}: warning: {self.message}"
        if self.file:
            return f"{self.file}: warning: {self.message}"
        return f"warning: {self.message}"


@dataclass
class ExportResult:
    text: str
    findings: list[Finding] = field(default_factory=list)
