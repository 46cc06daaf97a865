# lethed, the Lethe control plane: built from this repository on Debian 12, run on
# debian:12-slim as the numeric non-root user 10001 (the UID k8s/ runs it as).
# From the repository root (docker/README.md):
#   docker build -f docker/lethed.Dockerfile -t ghcr.io/lethe-privacy/lethed:0.1.0 .

# Build: tests/scripts/deps.sh's packages, less those only the tests run (postgresql-15,
# kcat, openssl, python3-*, git); GoogleTest and Google Benchmark stay, as the top-level
# CMakeLists.txt needs them to configure, and lld, which it links with when it is there
# (tests/k8s/dockerfile_test.py checks this list against deps.sh's). The same stage in all
# three Dockerfiles, so a builder installs the packages once.
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ make cmake ninja-build pkgconf lld \
      libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libabsl-dev \
      librdkafka-dev libpqxx-dev libssl-dev libcurl4-openssl-dev libexpat1-dev \
      libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev \
      libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libsodium-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG JOBS=2
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && ninja -C /build -j"${JOBS}" lethed \
 && strip --strip-debug /build/controlplane/lethed

# Run: only the shared libraries lethed links (its ELF NEEDED entries, mapped to their
# Debian packages with dpkg -S), and CA certificates for Kafka over TLS.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libabsl20220623 libfmt9 libgrpc++1.51 libgrpc29 libprometheus-cpp-pull1.0 \
      libprotobuf32 librdkafka1 libsodium23 libspdlog1.10 libssl3 libyaml-cpp0.7 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 lethe \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin lethe
COPY --from=build /build/controlplane/lethed /usr/local/bin/lethed
USER 10001:10001
# gRPC (mutual TLS), grpc.health.v1 (plaintext), Prometheus metrics: as in k8s/base/lethed.
EXPOSE 7411 8081 9464
ENTRYPOINT ["/usr/local/bin/lethed"]
