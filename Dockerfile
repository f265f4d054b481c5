# syntax=docker/dockerfile:1
# One image for all of Keyward's in-cluster binaries:
#   /keyward-operator           the operator (Deployment)
#   /keyward-webhook serve      the admission webhook and unseal API (Deployment)
#   /keyward-webhook inject     the init container the webhook injects
#   /keyward-csi                the CSI node plugin (DaemonSet, `csi.enabled`)
#   /keyward                    the CLI (handy for `kubectl debug` and CI jobs)
#
#   docker build -t ghcr.io/keyward/keyward:0.1.0 .                 # static, distroless/static
#   docker build --target pkcs11 -t ghcr.io/keyward/keyward:0.1.0-pkcs11 .
#
# The default image is fully static (musl) on distroless/static: no shell,
# no libc, uid 65532. A static binary cannot dlopen() a vendor's PKCS#11
# module, so the `pkcs11` target builds against glibc on distroless/cc.

ARG RUST_VERSION=1.89
ARG BINARIES="-p keyward-operator -p keyward-webhook -p keyward-csi -p keyward"

# ---- static (musl) build -------------------------------------------------
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build-static
ARG BINARIES
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools cmake clang \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl ${BINARIES} \
 && mkdir /out \
 && cp target/x86_64-unknown-linux-musl/release/keyward-operator \
       target/x86_64-unknown-linux-musl/release/keyward-webhook \
       target/x86_64-unknown-linux-musl/release/keyward-csi \
       target/x86_64-unknown-linux-musl/release/keyward /out/

# ---- glibc build (for PKCS#11 modules) -------------------------------------
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build-glibc
ARG BINARIES
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked ${BINARIES} \
 && mkdir /out \
 && cp target/release/keyward-operator target/release/keyward-webhook target/release/keyward-csi \
       target/release/keyward /out/

# ---- PKCS#11-capable image: glibc + libgcc, mount the vendor module ---------
FROM gcr.io/distroless/cc-debian12:nonroot AS pkcs11
COPY --from=build-glibc /out/ /
USER 65532:65532
ENTRYPOINT ["/keyward-webhook"]

# ---- default image ---------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot AS static
LABEL org.opencontainers.image.source="https://github.com/keyward/keyward" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Keyward operator, webhook and injector"
COPY --from=build-static /out/ /
USER 65532:65532
# The chart sets the command of each Deployment; the injected init container
# only passes arguments (`inject ...`), so the entrypoint is the webhook binary.
ENTRYPOINT ["/keyward-webhook"]
