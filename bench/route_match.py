"""Micro-benchmark: RouteTable.match on 10,000-route tables.

Reports the median cost per match for exact, wildcard, trailing-wildcard,
regex and miss lookups, and, as the reference measured in the same run, the
cost of a bare `dict.get` + `str.lower()` on the same names, so the numbers
can be compared across noisy shared machines as a ratio.

    python bench/route_match.py [--routes 10000] [--repeat 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

from sniui.config import load_text
from sniui.routing import RouteTable


def build_table(count: int, regexes: int) -> RouteTable:
    lines = ["routes:"]
    for i in range(count // 2):
        lines.append(f'  - {{sni: "host{i}.example.com", upstream: "h{i}.internal:443"}}')
    for i in range(count // 2 - regexes):
        lines.append(f'  - {{sni: "*.zone{i}.example.net", upstream: "z{i}.internal:443"}}')
    for i in range(regexes):
        lines.append(f'  - {{sni: "~^(?<app>[a-z]+)-{i}\\\\.k8s\\\\.example\\\\.org$", upstream: "$app.ns{i}.svc:443"}}')
    lines.append('  - {sni: "www.trailing.*", upstream: "t.internal:443"}')
    return RouteTable(load_text("\n".join(lines)).config)


def per_call_us(fn, names: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for name in names:
            fn(name)
        samples.append((time.perf_counter() - start) / len(names) * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=10_000)
    parser.add_argument("--regexes", type=int, default=20, help="regex routes in the table (consulted last, in order)")
    parser.add_argument("--names", type=int, default=20_000, help="lookups per sample")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)

    built = time.perf_counter()
    table = build_table(args.routes, args.regexes)
    compile_s = time.perf_counter() - built
    rng = random.Random(7)
    half = args.routes // 2
    workloads = {
        "exact": [f"host{rng.randrange(half)}.example.com" for _ in range(args.names)],
        "wildcard": [f"a.b.zone{rng.randrange(half - args.regexes)}.example.net" for _ in range(args.names)],
        "trailing": ["www.trailing.example.com"] * args.names,
        "regex (last)": [f"shop-{args.regexes - 1}.k8s.example.org"] * args.names,
        "miss": [f"nothing{rng.randrange(1000)}.example.io" for _ in range(args.names)],
    }
    reference_map = {f"host{i}.example.com": i for i in range(half)}
    reference = per_call_us(lambda n: reference_map.get(n.lower()), workloads["exact"], args.repeat)
    results = {}
    print(f"RouteTable.match on {len(table)} routes ({args.regexes} regexes); compiled in {compile_s * 1000:.0f} ms")
    print(f"reference dict.get(name.lower()): {reference:.3f} µs")
    print(f"{'workload':<14} {'median µs':>10} {'× reference':>12}")
    for label, names in workloads.items():
        cost = per_call_us(table.match, names, args.repeat)
        results[label] = {"median_us": round(cost, 3), "ratio_to_dict_get": round(cost / reference, 1)}
        print(f"{label:<14} {cost:>10.3f} {cost / reference:>12.1f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"routes": len(table), "reference_us": reference, "results": results,
                       "python": sys.version.split()[0]}, out, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
