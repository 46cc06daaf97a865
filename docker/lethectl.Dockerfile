# lethectl, the command line of operators, admins and auditors: built from this repository
# on Debian 12, run on debian:12-slim as the numeric non-root user 10001. It keeps no state:
# mount the certificates and keys it needs, e.g.
#   docker run --rm -v "$PWD/olga:/certs:ro" ghcr.io/lethe-privacy/lethectl:0.1.0 \
#     --certs-dir /certs --addr lethed.example.org:7411 request list
# From the repository root (docker/README.md):
#   docker build -f docker/lethectl.Dockerfile -t ghcr.io/lethe-privacy/lethectl:0.1.0 .

# Build: the same stage as docker/lethed.Dockerfile (see there).
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
 && ninja -C /build -j"${JOBS}" lethectl \
 && strip --strip-debug /build/cli/lethectl

# Run: only the shared libraries lethectl links (its ELF NEEDED entries, mapped to their
# Debian packages with dpkg -S; libpqxx-6.4, which brings libpq5, for `domain init`);
# tests/k8s/dockerfile_test.py checks the list against the binary.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libfmt9 libgrpc++1.51 libgrpc29 libpqxx-6.4 libprotobuf32 libsodium23 \
      libspdlog1.10 libssl3 libyaml-cpp0.7 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 lethe \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin lethe
COPY --from=build /build/cli/lethectl /usr/local/bin/lethectl
USER 10001:10001
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/lethectl"]
