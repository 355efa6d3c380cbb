# The charla image: one `charla` binary that runs any service (`charla serve contact`, configured by
# CHARLA_* variables exactly like `charla serve contact --help` lists), or all three on SQLite for a
# try-out (`charla up`, the default command). From the repository root:
#
#   docker build -t charla .
#   docker run --rm -p 50051-50053:50051-50053 charla                    # charla up
#   docker run --rm -e CHARLA_DATABASE_URL=postgres://... charla serve contact
#
# CI builds this same file with buildah from the binary it has already compiled, instead of
# compiling again: `--target prebuilt`, with a context holding just `charla` (tests/deploy/image.sh).

ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim

# cargo-chef turns the workspace's manifests into a recipe, so the dependencies compile in a layer
# of their own that a change to charla's code leaves cached.
FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json -p charla
COPY . .
RUN cargo build --release --locked -p charla --bin charla \
    && install -D target/release/charla /out/charla

# The runtime: Debian's minimal base (glibc, which the binary links) and the binary, nothing else.
# It runs as an unprivileged user that owns only the data folder (`charla up`'s SQLite files and
# development key set); `charla serve` writes nothing, so a read-only root filesystem suits it.
FROM ${RUNTIME_IMAGE} AS runtime
RUN install -d -o 65532 -g 65532 -m 0750 /var/lib/charla
USER 65532:65532
WORKDIR /var/lib/charla
# `charla up` listens beyond the container; `charla serve` listens on 0.0.0.0 anyway.
ENV CHARLA_HOST=0.0.0.0
# gRPC (and gRPC-Web) of contact, conversation and metrics.
EXPOSE 50051 50052 50053
ENTRYPOINT ["charla"]
CMD ["up"]

# The image with a binary compiled elsewhere: the build context's `charla` (a glibc binary for
# Debian bookworm or older). Built only when asked for, with `--target prebuilt`.
FROM runtime AS prebuilt
COPY charla /usr/local/bin/charla

# The image, compiled from this repository: the default target.
FROM runtime
COPY --from=builder /out/charla /usr/local/bin/charla
