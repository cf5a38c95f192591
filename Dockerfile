# The `pdp` binary in a small runtime image (deploy/README.md runs it with docker compose).
#
#   docker build -t pdp .
#   docker run --rm -v "$PWD/pdp.toml:/etc/pdp/pdp.toml:ro" -p 50051:50051 -p 8180:8180 pdp
#
# The image serves /etc/pdp/pdp.toml, which it does not contain: mount one (deploy/pdp/pdp.toml
# is the demo's). Its addresses must not be loopback (the defaults, 127.0.0.1:50051 and
# 127.0.0.1:8180, are unreachable from outside the container).

# Build: protox compiles the protos in Rust (no protoc); ring and mimalloc need only the C
# compiler the rust image ships; no -sys crate needs pkg-config or system libraries.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# CI builds the binary with exactly this command (server/tests/deploy.rs checks it).
RUN cargo build --release --locked -p pdp-server --bin pdp
# The release profile keeps line tables for profiling (114 MB); the image needs none of it
# (16 MB). Symbols stay, so backtraces still name functions.
RUN strip --strip-debug target/release/pdp

FROM debian:bookworm-slim
# ca-certificates: `identity.jwks_url`, `rediss://` and https OTLP endpoints verify servers
# against the system roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed non-root uid, so volume and secret permissions can be set for it. /var/log/pdp
# belongs to it: a named volume mounted there starts with this ownership, and the decision
# log can be written.
RUN groupadd --gid 10001 pdp \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin pdp \
    && install -d -o 10001 -g 10001 -m 0750 /var/log/pdp
COPY --from=build /src/target/release/pdp /usr/local/bin/pdp
# The example policy set, owned by root: the server reads it and cannot change it.
COPY policies/ /etc/pdp/policies/
USER 10001:10001
# gRPC (pdp.v1, envoy.service.auth.v3 ext_authz), then HTTP (/metrics, /healthz, /readyz,
# /ssf/push, AuthZEN).
EXPOSE 50051 8180
ENTRYPOINT ["pdp"]
CMD ["serve", "--config", "/etc/pdp/pdp.toml"]
