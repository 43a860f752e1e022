# The operator image the Helm chart runs: a release build on Debian 12 (bookworm-slim),
# non-root (UID/GID 65532, as the chart's securityContext expects), with the pg_dump and
# pg_restore that backups run (PostgreSQL's own packages from apt.postgresql.org, of the
# newest major Landlord supports: PG_MAJOR) and tzdata for `spec.backup.timeZone`.
#
# pg_dump dumps servers of its own major and older (back to 9.2), never newer ones: with
# PG_MAJOR=17 the image backs up PostgreSQL 9.2 to 17.
#
# Build: docker build -t ghcr.io/landlord-dev/landlord:0.1.0 .
#        (--build-arg PG_MAJOR=18 for PostgreSQL 18 servers)
ARG PG_MAJOR=17

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin landlord
# The signing key of apt.postgresql.org, checked against its published fingerprint.
RUN curl -fsSL -o /pgdg.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && gpg --show-keys --with-colons /pgdg.asc \
      | grep -q '^fpr:*:B97B0AFCAA1A47F044F244A07FCC7D46ACCC4CF8:$'

FROM docker.io/library/debian:bookworm-slim
ARG PG_MAJOR
COPY --from=build /pgdg.asc /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc
# ca-certificates: the system roots for S3 and PostgreSQL TLS. The user 65532 gets a passwd
# entry (distroless's "nonroot"), since libpq looks up the user's home directory.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" tzdata; \
    rm -rf /var/lib/apt/lists/*; \
    "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump" --version; \
    groupadd --gid 65532 nonroot; \
    useradd --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
      --shell /usr/sbin/nologin nonroot
# The real binaries first, ahead of Debian's pg_wrapper in /usr/bin.
ENV PATH="/usr/lib/postgresql/${PG_MAJOR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COPY --from=build /src/target/release/landlord /usr/local/bin/landlord
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/landlord"]
CMD ["run"]
