# Build the single `sportello` binary, then ship it on a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sportello

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/sportello /usr/local/bin/sportello
USER nobody
ENTRYPOINT ["sportello"]
CMD ["up"]
