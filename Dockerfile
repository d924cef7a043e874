# syntax=docker/dockerfile:1
# Build: the offline query data (.sqlx/) means no database is needed at build time.
FROM rust:1.95-bookworm AS build
WORKDIR /src
ENV SQLX_OFFLINE=true
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cart-api -p cart-worker -p cart-migrations --bins \
 && mkdir -p /out \
 && cp target/release/cart-api target/release/cart-worker target/release/cart-migrate /out/

# Runtime: a small Debian image with CA certificates and an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cart \
 && useradd --system --uid 10001 --gid 10001 --home /app cart \
 && mkdir -p /app/var/outbox && chown -R 10001:10001 /app
WORKDIR /app
COPY --from=build /out/ /usr/local/bin/
# Numeric, so that platforms which refuse root images can check it without reading /etc/passwd.
USER 10001:10001
# One port for either role: platforms give each process a PORT, and the worker takes it when
# WORKER_PORT is unset.
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
# The API (`cart-api serve`) and the worker (`cart-worker run`) both answer /health on PORT, or
# the worker on WORKER_PORT when that is set. Fly and Railway ignore this and use their own
# checks (fly.toml, railway/*.json); docker and compose use it.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT:-8080}/health" >/dev/null \
   || { [ -n "${WORKER_PORT:-}" ] && curl -fsS "http://127.0.0.1:${WORKER_PORT}/health" >/dev/null; }
CMD ["cart-api", "serve"]
