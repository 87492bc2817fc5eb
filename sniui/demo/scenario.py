"""The built-in demo: a loopback-only config whose upstreams run in this process.

`sniui` with no config, and `sniui --headless --demo`, call `build_demo()`,
hand `demo.config` to the engine, and show `demo.curl_lines_for(port)` so a
new user can paste one line and watch the connection appear.

The routes show each kind of pattern doing something visible:

- `shop.demo.localhost` (exact) → group `shop`, two servers taken in turn, so
  repeating the curl line alternates "shop-1" / "shop-2";
- `*.apps.demo.localhost` (leading wildcard) → one server named by address;
- `~^(?<env>prod|staging)\\.api\\.demo\\.localhost$` (regex) → `api-$env`: the
  capture picks the group `api-prod` or `api-staging`, and the answer says
  which, so the capture visibly matters;
- `web.demo.localhost` (terminate) → sniui ends TLS itself with a demo
  certificate and sends plain HTTP on (`terminate=False` leaves it out);
- anything else is rejected with a TLS `unrecognized_name` alert.

The config is produced as YAML text and loaded through the normal loader, so
the demo exercises the same validation as a user's file and the TUI can show
or save exactly what is running.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from sniui.config import Config, load_text
from sniui.demo.certs import DemoPKI
from sniui.demo.traffic import TrafficReport, demo_traffic
from sniui.demo.upstreams import DemoUpstreams

DEFAULT_PORT = 8443
LISTEN_HOST = "127.0.0.1"  # the demo never listens beyond loopback
DOMAIN = "demo.localhost"  # `.localhost` names never leave the machine (RFC 6761)
SOURCE = "<built-in demo>"


@dataclass(frozen=True, slots=True)
class DemoExample:
    """A name to try, what should happen, and the route that handles it."""

    name: str
    route: str | None          # None: no route, rejected
    explains: str


EXAMPLES = (
    DemoExample(f"shop.{DOMAIN}", "shop", "exact name → group shop (round robin: run it twice)"),
    DemoExample(f"www.apps.{DOMAIN}", "apps", "wildcard *.apps → one server by address"),
    DemoExample(f"prod.api.{DOMAIN}", "api", "regex: env=prod → group api-prod"),
    DemoExample(f"staging.api.{DOMAIN}", "api", "regex: env=staging → group api-staging"),
)
TERMINATE_EXAMPLE = DemoExample(f"web.{DOMAIN}", "web", "terminate: sniui ends TLS, plain HTTP upstream")
REJECT_EXAMPLES = (
    DemoExample(f"dev.api.{DOMAIN}", None, "no route (the regex takes prod|staging only) → TLS alert"),
    DemoExample(f"unknown.{DOMAIN}", None, "no route → TLS alert unrecognized_name"),
)


class Demo:
    """A running demo: its config, its upstreams and the files behind them."""

    def __init__(self, *, config: Config, yaml_text: str, pki: DemoPKI, upstreams: DemoUpstreams,
                 listen_port: int, examples: tuple[DemoExample, ...]):
        self.config = config
        self.yaml_text = yaml_text
        self.pki = pki
        self.upstreams = upstreams
        self.listen_port = listen_port       # as configured; 0 means the engine picks one
        self.examples = examples             # routed names, one or more per route
        self.reject_examples = REJECT_EXAMPLES

    @property
    def ca_path(self) -> Path:
        return self.pki.ca_path

    @property
    def directory(self) -> Path:
        return self.pki.directory

    @property
    def server_names(self) -> dict[str, str]:
        """`127.0.0.1:port` → demo server name (e.g. "shop-2"), so a UI can label upstream addresses."""
        return {server.address: server.name for server in self.upstreams.servers.values()}

    @property
    def names(self) -> tuple[str, ...]:
        """Names that route, in route order."""
        return tuple(e.name for e in self.examples)

    @property
    def traffic_names(self) -> tuple[str, ...]:
        """A mix for the traffic generator: every routed name, then one that is rejected."""
        return self.names + (self.reject_examples[-1].name,)

    # -- what to tell the user ------------------------------------------------

    @property
    def curl_lines(self) -> list[str]:
        return self.curl_lines_for(self.listen_port)

    def curl_line(self, name: str, port: int) -> str:
        _check_port(port)
        return shlex.join([
            "curl", "--cacert", str(self.ca_path),
            "--resolve", f"{name}:{port}:{LISTEN_HOST}",
            f"https://{name}:{port}/",
        ])

    def curl_lines_for(self, port: int) -> list[str]:
        """One ready-to-paste curl line per routed example, for the port sniui actually bound."""
        return [self.curl_line(example.name, port) for example in self.examples]

    def openssl_line_for(self, port: int, name: str | None = None) -> str:
        """An `openssl s_client` line that shows the handshake and the verified certificate."""
        _check_port(port)
        name = name or self.examples[0].name
        command = shlex.join([
            "openssl", "s_client", "-connect", f"{LISTEN_HOST}:{port}", "-servername", name,
            "-CAfile", str(self.ca_path), "-verify_return_error", "-brief",
        ])
        # stdin from /dev/null: s_client prints the handshake and exits instead of waiting for input.
        return command + " </dev/null"

    def instructions_for(self, port: int) -> str:
        """A few lines for a terminal or a TUI panel: where the demo listens and what to paste."""
        lines = [
            f"sniui demo: listening on {LISTEN_HOST}:{port} (loopback only); "
            f"its upstreams run inside this process. Try:",
            "",
        ]
        for example in self.examples:
            lines += [f"  # {example.name}: {example.explains}", f"  {self.curl_line(example.name, port)}"]
        reject = self.reject_examples[-1]
        lines += [f"  # {reject.name}: {reject.explains}", f"  {self.curl_line(reject.name, port)}"]
        lines += ["  # the TLS handshake and certificate, as the client sees them",
                  f"  {self.openssl_line_for(port)}"]
        return "\n".join(lines)

    # -- traffic and shutdown -------------------------------------------------

    async def traffic(self, port: int, *, count: int = 20, **options) -> TrafficReport:
        """Bounded demo traffic through sniui on `port`: routed names and a rejected one."""
        _check_port(port)
        names = options.pop("names", self.traffic_names)
        return await demo_traffic((LISTEN_HOST, port), self.pki.ca_pem, names=names, count=count, **options)

    async def close(self) -> None:
        """Stop the upstreams and remove the demo's files (idempotent)."""
        try:
            await self.upstreams.close()
        finally:
            self.pki.close()

    async def __aenter__(self) -> "Demo":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r}: pass the port sniui actually listens on (1-65535); "
                         "with listen_port=0 ask the engine which port it bound")


async def build_demo(listen_port: int = DEFAULT_PORT, directory: Path | None = None, *,
                     terminate: bool = True, idle_timeout: float | None = None) -> Demo:
    """Start the demo upstreams and return a Demo whose `.config` routes to them.

    `listen_port=0` lets the engine pick a port (tests). `directory`: where to
    create the demo's private folder (default: the system temp dir).
    `terminate` (default on) adds the terminating route `web.demo.localhost`:
    sniui presents a demo certificate and the upstream speaks plain HTTP.
    """
    if not isinstance(listen_port, int) or not 0 <= listen_port <= 65535:
        raise ValueError(f"listen_port {listen_port!r} is not a port number (0-65535)")
    pki = DemoPKI(directory)
    upstreams = DemoUpstreams(pki, **({"idle_timeout": idle_timeout} if idle_timeout is not None else {}))
    try:
        shop = [await upstreams.start(f"shop-{i}", names=[f"shop.{DOMAIN}"]) for i in (1, 2)]
        apps = await upstreams.start("apps", names=[f"*.apps.{DOMAIN}"])
        api = {env: await upstreams.start(f"api-{env}", names=[f"{env}.api.{DOMAIN}"]) for env in ("prod", "staging")}
        web = web_cert = None
        if terminate:
            web = await upstreams.start("web", tls=False)
            web_cert = pki.issue([TERMINATE_EXAMPLE.name])
        yaml_text = render_yaml(
            listen_port=listen_port,
            shop=[s.address for s in shop],
            apps=apps.address,
            api={env: s.address for env, s in api.items()},
            web=web.address if web else None,
            web_cert=(str(web_cert.cert_path), str(web_cert.key_path)) if web_cert else None,
        )
        config = load_text(yaml_text, file=SOURCE, base_dir=pki.directory).config
    except BaseException:
        await upstreams.close()
        pki.close()
        raise
    examples = EXAMPLES + ((TERMINATE_EXAMPLE,) if terminate else ())
    return Demo(config=config, yaml_text=yaml_text, pki=pki, upstreams=upstreams,
                listen_port=listen_port, examples=examples)


def _q(value: str) -> str:
    # YAML single quotes take everything literally (regex backslashes included) except '' for '.
    return "'" + value.replace("'", "''") + "'"


def render_yaml(*, listen_port: int, shop: list[str], apps: str, api: dict[str, str],
                web: str | None = None, web_cert: tuple[str, str] | None = None) -> str:
    """The demo config as a user would write it, comments included."""
    regex = r"~^(?<env>prod|staging)\.api\.demo\.localhost$"
    out = [
        "# sniui built-in demo. Loopback only; the upstreams are small servers inside this",
        "# process with certificates from a throwaway demo CA. Ports are chosen at start-up.",
        "listen:",
        f"  - address: {_q(f'{LISTEN_HOST}:{listen_port}')}",
        "",
        "timeouts:",
        "  client_hello: 5s",
        "  connect: 1s",
        "  idle: 2m",
        "",
        "limits:                      # a demo needs few; 1000 fits any open-file limit",
        "  max_connections: 1000",
        "",
        "upstreams:",
        "  shop:                      # two servers: repeat a request to see them alternate",
        f"    servers: [{', '.join(_q(s) for s in shop)}]",
        "    balance: round_robin",
        "  api-prod:",
        f"    servers: [{_q(api['prod'])}]",
        "  api-staging:",
        f"    servers: [{_q(api['staging'])}]",
    ]
    if web_cert:
        out += [
            "",
            "certificates:               # used by the terminating route",
            "  web:",
            f"    cert: {_q(web_cert[0])}",
            f"    key: {_q(web_cert[1])}",
        ]
    out += [
        "",
        "routes:",
        "  - name: shop",
        "    description: exact name → a group of two servers, taken in turn",
        f"    sni: shop.{DOMAIN}",
        "    upstream: shop",
        "  - name: apps",
        "    description: any name below apps.demo.localhost → one server, by address",
        f"    sni: {_q(f'*.apps.{DOMAIN}')}",
        f"    upstream: {_q(apps)}",
        "  - name: api",
        "    description: the env capture picks the upstream group api-prod or api-staging",
        f"    sni: {_q(regex)}",
        "    upstream: api-$env",
    ]
    if web:
        out += [
            "  - name: web",
            "    description: sniui terminates TLS here and sends plain HTTP to the upstream",
            f"    sni: {TERMINATE_EXAMPLE.name}",
            "    mode: terminate",
            "    certificate: web",
            f"    upstream: {_q(web)}",
        ]
    out += [
        "",
        "default:                    # no route matched (this also covers a hello without SNI)",
        "  action: reject",
        "  reject_with: alert        # TLS unrecognized_name",
        "",
        "tests:                      # `sniui check` runs these; the demo's own tests check them too",
        f"  - sni: shop.{DOMAIN}",
        "    expect: shop",
        f"  - sni: SHOP.{DOMAIN}.",
        "    expect: shop",
        "    description: names compare lowercased, without the trailing dot",
        f"  - sni: www.apps.{DOMAIN}",
        f"    expect: {_q(apps)}",
        f"  - sni: a.b.apps.{DOMAIN}",
        f"    expect: {_q(apps)}",
        "    description: a leading wildcard matches at any depth, as in nginx",
        f"  - sni: apps.{DOMAIN}",
        "    expect: reject",
        "    description: \"*.apps covers the names below apps, not apps itself\"",
        f"  - sni: prod.api.{DOMAIN}",
        "    expect: api-prod",
        f"  - sni: staging.api.{DOMAIN}",
        "    expect: api-staging",
        f"  - sni: dev.api.{DOMAIN}",
        "    expect: reject",
        "    description: the regex only admits prod and staging",
    ]
    if web:
        out += [f"  - sni: {TERMINATE_EXAMPLE.name}", f"    expect: {_q(web)}"]
    out += [
        "  - sni: example.com",
        "    expect: reject",
        "  - sni: null",
        "    expect: reject",
        "    description: a hello without SNI",
        "",
    ]
    return "\n".join(out)
