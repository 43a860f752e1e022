# The operator image the Helm chart runs: a static-enough release build on a distroless,
# non-root base (UID/GID 65532, as the chart's securityContext expects).
# Build: docker build -t ghcr.io/landlord-dev/landlord:0.1.0 .
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin landlord

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/landlord /usr/local/bin/landlord
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/landlord"]
CMD ["run"]
