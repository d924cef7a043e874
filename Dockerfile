# syntax=docker/dockerfile:1
# Build: the offline query data (.sqlx/) means no database is needed at build time.
FROM rust:1.95-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins \
 && mkdir -p /out \
 && cp target/release/cart-api target/release/cart-worker target/release/cart-migrate /out/

# Runtime: a small Debian image with CA certificates and an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app cart \
 && mkdir -p /app/var/outbox && chown -R cart /app
WORKDIR /app
COPY --from=build /out/ /usr/local/bin/
USER cart
ENV HOST=0.0.0.0 PORT=8080 WORKER_PORT=9090
EXPOSE 8080 9090
CMD ["cart-api", "serve"]
