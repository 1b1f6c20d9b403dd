# syntax=docker/dockerfile:1
# The cryptoflow image: one binary, every command (`run`, `serve`, `execute`, `replay`, `migrate`…).
#
#   docker build -t cryptoflow:0.1.0 .
#   docker build -t cryptoflow:0.1.0-onnx --build-arg ONNX=true .   # with the transformer scorer
#   docker run --rm cryptoflow:0.1.0                                 # replays the bundled sample
#
# The runtime image is Debian slim with what the binary links (glibc, libgcc, OpenSSL, zlib) and CA
# certificates; it runs as the unprivileged user 10001 and works with a read-only root filesystem
# (writable: /tmp and /var/lib/cryptoflow, the working directory and the pollers' state).

# true: build with the `sentiment-onnx` feature and ship ONNX Runtime's shared library (from the
# `onnxruntime` wheel; the model directory is mounted at run time, see the README).
ARG ONNX=false

# --- build -------------------------------------------------------------------------------------
# Rust 1.95 (the toolchain the project is tested with; rust-version in Cargo.toml is the floor).
# The full image carries the C toolchain, pkg-config and the OpenSSL and zlib headers the
# dependencies build against (librdkafka is compiled from source).
FROM rust:1.95-bookworm AS builder
ARG ONNX
WORKDIR /src
COPY . .
RUN --mount=type=cache,id=cryptoflow-cargo,target=/usr/local/cargo/registry \
    --mount=type=cache,id=cryptoflow-target,target=/src/target \
    features=""; \
    if [ "$ONNX" = "true" ]; then features="sentiment-onnx"; fi; \
    cargo build --release --locked --bin cryptoflow --features "$features" \
    && install -m 0755 target/release/cryptoflow /usr/local/bin/cryptoflow

# --- ONNX Runtime (only built when ONNX=true) ----------------------------------------------------
FROM python:3.11-slim-bookworm AS onnxruntime
RUN pip install --no-cache-dir onnxruntime==1.31.1 \
    && mkdir -p /ort \
    && for lib in /usr/local/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.*; do \
         cp "$lib" /ort/libonnxruntime.so; break; \
       done

# --- run ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# Debian's security updates of these libraries should be picked up by a rebuild: not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 cryptoflow \
    && useradd --system --uid 10001 --gid cryptoflow --home-dir /var/lib/cryptoflow \
       --no-create-home --shell /usr/sbin/nologin cryptoflow \
    && mkdir -p /var/lib/cryptoflow /etc/cryptoflow \
    && chown cryptoflow:cryptoflow /var/lib/cryptoflow

FROM runtime AS runtime-onnx-false

FROM runtime AS runtime-onnx-true
COPY --from=onnxruntime /ort/libonnxruntime.so /usr/local/lib/onnxruntime/libonnxruntime.so
ENV ORT_DYLIB_PATH=/usr/local/lib/onnxruntime/libonnxruntime.so

# The stage of the ONNX choice above (a stage of this file, not an image: it has no tag).
# checkov:skip=CKV_DOCKER_7: the FROM is a local stage chosen by the ONNX build argument, not an image
# hadolint ignore=DL3006
FROM runtime-onnx-${ONNX}
COPY --from=builder /usr/local/bin/cryptoflow /usr/local/bin/cryptoflow
WORKDIR /var/lib/cryptoflow
USER 10001:10001
# 8080: HTTP API, WebSocket, /health, /ready, /metrics (`run`, `serve`); 8091: the executor's
# control API; 2101: the multi-process cluster port.
EXPOSE 8080 8091 2101
# The commands serve different things (an HTTP API, a control API, nothing); Kubernetes and
# compose.yaml probe each its own way.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/cryptoflow"]
CMD ["replay"]
