#!/usr/bin/env python3
"""Writes the Envoy configuration loadtest/run.sh measures, from deploy/envoy/envoy.yaml.

The demo's file is the one source of truth: the listener, ext_authz's settings (v3, fail
closed, 0.5 s timeout), the HTTP connection manager's path handling and the router are used as
they are. What changes, and why:

- the ingress listener listens on 127.0.0.1:LISTEN instead of 0.0.0.0:8000;
- the `pdp` cluster points at PDP (HOST:PORT) instead of `pdp:50051`;
- the `orders` cluster points at 127.0.0.1:UPSTREAM, and a second listener there answers
  every request with a 200 from Envoy itself (`direct_response`): the protected service,
  at the least cost a service can have;
- the tracing provider and its `jaeger` cluster are removed (no collector in the run), and so
  is the access log (a line on stdout per request): the run measures the authorization, not
  the demo's telemetry;
- with `--ext-authz off` the ext_authz filter is removed, and nothing else: the baseline.

    loadtest/envoy-config.py --pdp 127.0.0.1:50108 --listen 10000 --upstream 10001 > on.yaml
    loadtest/envoy-config.py --pdp 127.0.0.1:50108 --listen 10000 --upstream 10001 \
        --ext-authz off > off.yaml

Needs PyYAML (`pip install pyyaml`).
"""

import argparse
import os
import sys

import yaml

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "envoy", "envoy.yaml")
EXT_AUTHZ = "envoy.filters.http.ext_authz"


def fail(message):
    sys.exit(f"envoy-config.py: {SOURCE}: {message}")


def one(items, name, what):
    found = [i for i in items if i.get("name") == name]
    if len(found) != 1:
        fail(f"expected one {what} named `{name}`, found {len(found)}")
    return found[0]


def point(cluster, host, port):
    endpoints = cluster["load_assignment"]["endpoints"]
    if len(endpoints) != 1 or len(endpoints[0]["lb_endpoints"]) != 1:
        fail(f"cluster `{cluster['name']}` should have exactly one endpoint")
    endpoints[0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] = {
        "address": host,
        "port_value": port,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pdp", required=True, help="the PDP's gRPC address, HOST:PORT")
    p.add_argument("--listen", type=int, required=True, help="the ingress port on 127.0.0.1")
    p.add_argument("--upstream", type=int, required=True, help="the echo upstream's port on 127.0.0.1")
    p.add_argument("--ext-authz", choices=["on", "off"], default="on")
    args = p.parse_args()
    pdp_host, _, pdp_port = args.pdp.rpartition(":")
    if not pdp_host or not pdp_port.isdigit():
        sys.exit(f"envoy-config.py: --pdp `{args.pdp}`: expected HOST:PORT")

    with open(SOURCE) as f:
        config = yaml.safe_load(f)
    resources = config["static_resources"]

    ingress = one(resources["listeners"], "ingress", "listener")
    ingress["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": args.listen}
    chains = ingress["filter_chains"]
    if len(chains) != 1:
        fail("the ingress listener should have one filter chain")
    hcm = one(chains[0]["filters"], "envoy.filters.network.http_connection_manager", "network filter")
    manager = hcm["typed_config"]
    manager.pop("tracing", None)
    manager.pop("access_log", None)
    one(manager["http_filters"], EXT_AUTHZ, "HTTP filter")
    if args.ext_authz == "off":
        manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] != EXT_AUTHZ]

    clusters = resources["clusters"]
    point(one(clusters, "pdp", "cluster"), pdp_host, int(pdp_port))
    point(one(clusters, "orders", "cluster"), "127.0.0.1", args.upstream)
    resources["clusters"] = [c for c in clusters if c["name"] != "jaeger"]

    resources["listeners"].append({
        "name": "upstream",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": args.upstream}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": manager["@type"],
                "stat_prefix": "upstream",
                "route_config": {"virtual_hosts": [{
                    "name": "echo",
                    "domains": ["*"],
                    "routes": [{
                        "match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
                    }],
                }]},
                "http_filters": [one(manager["http_filters"], "envoy.filters.http.router", "HTTP filter")],
            },
        }]}],
    })

    yaml.safe_dump(config, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
