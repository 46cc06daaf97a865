# lethe-agent, the sidecar that purges one domain's data on signed commands: built from this
# repository on Debian 12, run on debian:12-slim as the numeric non-root user 10001 (the UID
# k8s/base/agent runs it as).
# From the repository root (docker/README.md):
#   docker build -f docker/lethe-agent.Dockerfile -t ghcr.io/lethe-privacy/lethe-agent:0.1.0 .

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
 && ninja -C /build -j"${JOBS}" lethe-agent \
 && strip --strip-debug /build/agents/lethe-agent

# Run: the shared libraries lethe-agent links (its ELF NEEDED entries, mapped to their
# Debian packages with dpkg -S; libpqxx-6.4 brings libpq5), gRPC for the grpc.health.v1
# service of --health-listen, libcurl and expat for S3, and CA certificates for Kafka,
# PostgreSQL and S3 over TLS.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libabsl20220623 libfmt9 libgrpc++1.51 libgrpc29 libpqxx-6.4 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprotobuf32 librdkafka1 \
      libsodium23 libspdlog1.10 libssl3 libyaml-cpp0.7 libcurl4 libexpat1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 lethe \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin lethe
COPY --from=build /build/agents/lethe-agent /usr/local/bin/lethe-agent
USER 10001:10001
# grpc.health.v1 (plaintext) and Prometheus metrics: as in k8s/base/agent.
EXPOSE 7412 9465
ENTRYPOINT ["/usr/local/bin/lethe-agent"]
