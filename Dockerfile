# Build: docker build -t cdc .   Run: docker run --rm cdc --help
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The bundled librdkafka is built with cmake (ssl, zlib and curl headers come with this image).
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked && strip target/release/cdc

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/cdc /usr/local/bin/cdc
RUN mkdir -p /var/lib/cdc && chown 65534:65534 /var/lib/cdc
USER 65534
EXPOSE 8080
ENTRYPOINT ["cdc"]
