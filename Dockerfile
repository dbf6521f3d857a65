# The ordinary way to build Tessera's image, for machines that can pull from a registry:
#
#   docker build -t tessera:dev .
#
# It is documentation: it is NOT what this project's scripts and tests build. They use
# scripts/build-image, which assembles the same kind of image FROM scratch out of the locally
# built binary and the host's shared libraries, with no registry (the development and CI
# machines have none). Both images run the same way: entrypoint `tessera`, user 10001, ports
# 9000 (S3), 9001 (admin) and 9100 (node RPC); see docker-compose.yml.

FROM rust:bookworm AS build
# bindgen (used by the rocksdb crate) needs libclang; RocksDB itself is Debian's 7.8, linked
# through ROCKSDB_LIB_DIR (set in .cargo/config.toml), not compiled from source.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev librocksdb-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build reads, so a large target/ or data/ folder is never copied in.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin tessera \
 && strip --strip-debug target/release/tessera

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends librocksdb7.8 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 tessera \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin tessera \
 && mkdir -p /etc/tessera /data/d0 /data/d1 /data/d2 /data/d3 \
 && chown -R 10001:10001 /data
COPY --from=build /src/target/release/tessera /usr/local/bin/tessera
USER 10001
WORKDIR /data
EXPOSE 9000 9001 9100
ENTRYPOINT ["/usr/local/bin/tessera"]
