"""An Envoy ext_authz v3 client built from the envoy-data-plane package (grpcio stubs, not
generated from this repository): reads a JSON list of CheckRequests (proto3 JSON) on stdin,
calls envoy.service.auth.v3.Authorization/Check at ADDR for each, and prints a JSON list of
{"code": grpc status code of the call, "response": the CheckResponse as proto3 JSON}."""

import json
import sys

import grpc
from envoy_data_plane.envoy.service.auth.v3 import AuthorizationSyncStub, CheckRequest


def main() -> None:
    addr = sys.argv[1]
    cases = json.load(sys.stdin)
    results = []
    with grpc.insecure_channel(addr) as channel:
        stub = AuthorizationSyncStub(channel)
        for case in cases:
            try:
                response = stub.check(CheckRequest.from_dict(case))
                results.append({"code": 0, "response": json.loads(response.to_json())})
            except grpc.RpcError as e:
                results.append({"code": e.code().value[0], "message": e.details()})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
