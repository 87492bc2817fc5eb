"""The built-in demo: a loopback-only config, its in-process upstreams, a demo CA and a traffic generator.

Used by `sniui` when there is no config and by `sniui --headless --demo`:

    demo = await build_demo(8443)          # or 0: the engine picks the port
    await engine.apply(demo.config)
    print(demo.instructions_for(port))    # curl / openssl lines with the bound port
    await demo.traffic(port, count=20)    # optional: bounded live traffic
    await demo.close()                    # stops the upstreams, removes the files
"""

from sniui.demo.certs import DemoPKI, IssuedCert
from sniui.demo.scenario import DEFAULT_PORT, Demo, DemoExample, build_demo
from sniui.demo.traffic import TrafficReport, TrafficResult, demo_traffic, generate_traffic
from sniui.demo.upstreams import DemoServer, DemoUpstreams, SeenRequest

__all__ = [
    "DEFAULT_PORT", "Demo", "DemoExample", "DemoPKI", "DemoServer", "DemoUpstreams", "IssuedCert",
    "SeenRequest", "TrafficReport", "TrafficResult", "build_demo", "demo_traffic", "generate_traffic",
]
