#!/usr/bin/env python3
"""The two side-by-side sections loadtest/run.sh appends to results/report.md.

    compare.py ghz GHZ.json OURS.json [GHZ_SERVER_CPU_SECONDS]
        the same load run by the real ghz and by pdp-loadtest (their JSON reports, ghz's
        format), as a markdown section on standard output.
    compare.py envoy OUT.json RUN...
        h2load through Envoy, ext_authz on and off; each RUN is
        MODE:INFLIGHT:H2LOAD_OUTPUT:H2LOAD_LOG:ENVOY_CPU_S:PDP_CPU_S (the log is h2load's
        --log-file: start, status, microseconds per request). Writes OUT.json (the figures)
        and the markdown section on standard output.

Only the standard library.
"""

import json
import re
import sys


def fmt_latency(us):
    return f"{us / 1000:.2f} ms" if abs(us) >= 1000 else f"{us:.0f} µs"


def fmt_int(n):
    return f"{n:,.0f}"


def ghz_figures(path):
    with open(path) as f:
        r = json.load(f)
    dist = {d["percentage"]: d["latency"] / 1000 for d in r.get("latencyDistribution") or []}
    ok = (r.get("statusCodeDistribution") or {}).get("OK", 0)
    return {
        "count": r["count"],
        "rps": r["rps"],
        "p50": dist.get(50, 0),
        "p90": dist.get(90, 0),
        "p99": dist.get(99, 0),
        "errors": r["count"] - ok,
        "cpu_us": (r.get("serverCpu") or {}).get("cpuPerCallMicros"),
    }


def ghz(args):
    g, ours = ghz_figures(args[0]), ghz_figures(args[1])
    if len(args) > 2 and g["count"]:
        g["cpu_us"] = float(args[2]) * 1e6 / g["count"]
    rows = [("ghz v0.121.0 (`ghz --config loadtest/ghz/check-mix.json`)", g),
            ("pdp-loadtest (same config)", ours)]
    print("## The same load from ghz and from pdp-loadtest\n")
    print("`check-mix.json` (32 in flight on 2 connections, cache off), the same server, one after "
          "the other, each generator pinned to CPU 1: ghz finds the service by reflection, as "
          "`loadtest/README.md` runs it. ghz's JSON report is `ghz-check-sat-nocache.json` "
          "(its per-call `details` removed); pdp-loadtest's is `check-sat-nocache.json`.\n")
    print("| generator | calls/s | p50 | p90 | p99 | errors | server CPU per call |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        cpu = f"{r['cpu_us']:.1f} µs" if r["cpu_us"] is not None else "—"
        print(f"| {name} | {fmt_int(r['rps'])} | {fmt_latency(r['p50'])} | {fmt_latency(r['p90'])} | "
              f"{fmt_latency(r['p99'])} | {fmt_int(r['errors'])} | {cpu} |")
    if g["rps"]:
        print(f"\npdp-loadtest drove {ours['rps'] / g['rps']:.2f}× ghz's calls/s from the same core; "
              "where the generator, not the server, is the bottleneck, its latencies include the "
              "generator's own queueing.")
    print()


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return float(sorted_values[i])


def envoy_run(spec):
    mode, inflight, output, log, envoy_cpu, pdp_cpu = spec.split(":")
    with open(output) as f:
        text = f.read()
    m = re.search(r"finished in ([0-9.]+)(m?s), ([0-9.]+) req/s", text)
    if not m:
        sys.exit(f"compare.py: {output}: no `finished in` line:\n{text}")
    seconds = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    latencies, errors = [], 0
    with open(log) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) < 3:
                continue
            if cols[1] != "200":
                errors += 1
            else:
                latencies.append(int(cols[2]))
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", text)
    failed = int(done.group(3)) if done else 0
    count = len(latencies) + errors
    latencies.sort()
    return {
        "mode": mode,
        "in_flight": int(inflight),
        "requests": count,
        "seconds": seconds,
        "rps": count / seconds if seconds else 0.0,
        "p50_us": percentile(latencies, 50),
        "p90_us": percentile(latencies, 90),
        "p99_us": percentile(latencies, 99),
        "errors": errors + failed,
        "envoy_cpu_us_per_request": float(envoy_cpu) * 1e6 / count if count else None,
        "pdp_cpu_us_per_request": float(pdp_cpu) * 1e6 / count if count else None,
    }


def envoy(args):
    out, runs = args[0], [envoy_run(s) for s in args[1:]]
    with open(out, "w") as f:
        json.dump({"runs": runs}, f, indent=2)
        f.write("\n")
    print("## Envoy with ext_authz on and off\n")
    print("HTTP/2 `GET /data/report-N.csv` (N over 1,000 values) with alice's token, from `h2load` "
          "through the real Envoy (`--concurrency 1`) to an upstream answering 200 (a second "
          "listener of the same Envoy, `direct_response`). The Envoy configuration is "
          "`deploy/envoy/envoy.yaml` as `loadtest/envoy-config.py` rewrites it (addresses; no "
          "tracing or access log); *off* is the same without the ext_authz filter. `pdp serve` "
          "(`--decision-cache off`, the JWT settings, the example policies with `127.0.0.0/8` "
          "added to the allowed source networks, as h2load connects from loopback) on CPU 0; "
          "Envoy and h2load on CPU 1. Latencies are h2load's per-request times (`--log-file`); "
          "errors are responses other than 200 and failed requests. Figures in "
          "`envoy-ext-authz.json`.\n")
    print("| ext_authz | in flight | requests/s | p50 | p90 | p99 | errors | Envoy CPU per request | PDP CPU per request |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        pdp = f"{r['pdp_cpu_us_per_request']:.1f} µs" if r["mode"] == "on" else "—"
        print(f"| {r['mode']} | {r['in_flight']} | {fmt_int(r['rps'])} | {fmt_latency(r['p50_us'])} | "
              f"{fmt_latency(r['p90_us'])} | {fmt_latency(r['p99_us'])} | {fmt_int(r['errors'])} | "
              f"{r['envoy_cpu_us_per_request']:.1f} µs | {pdp} |")
    print()
    by = {(r["mode"], r["in_flight"]): r for r in runs}
    for inflight in sorted({r["in_flight"] for r in runs}):
        on, off = by.get(("on", inflight)), by.get(("off", inflight))
        if not on or not off or not off["rps"]:
            continue
        print(f"- {inflight} in flight: ext_authz adds {fmt_latency(on['p50_us'] - off['p50_us'])} at p50 "
              f"and {fmt_latency(on['p99_us'] - off['p99_us'])} at p99 per request; requests/s "
              f"{on['rps'] / off['rps']:.2f}× the baseline's "
              f"({fmt_int(on['rps'])} against {fmt_int(off['rps'])}); Envoy's CPU per request "
              f"{on['envoy_cpu_us_per_request'] - off['envoy_cpu_us_per_request']:+.1f} µs.")
    print()


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("ghz", "envoy"):
        sys.exit(__doc__)
    {"ghz": ghz, "envoy": envoy}[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
