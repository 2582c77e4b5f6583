# magnetar container image: one small image for every role (standalone, broker, bookie, perf).
#
#   scripts/image.sh                      builds it with podman, without a daemon (see there)
#   docker build -t magnetar .            or with Docker, where there is one
#   docker run -p 6650:6650 -p 8080:8080 magnetar            # standalone
#   docker run magnetar broker | bookie | config check | perf ...
#
# Configuration: conf/*.yaml under /magnetar/conf (the working directory, so each role finds
# its default file), every key overridable as MAGNETAR_<key>=value (e.g.
# MAGNETAR_advertisedAddress) or with --set key=value. The image sets
# MAGNETAR_bindAddress=0.0.0.0 so that the standalone default config listens beyond the
# container's loopback; being an environment variable it wins over a mounted YAML file, so
# override it with -e MAGNETAR_bindAddress=... rather than in the file.
# Data lives under the volume /magnetar/data (the relative dataDirectory, journal and ledger
# paths of conf/*.yaml all resolve there). The process runs as uid/gid 10000 (magnetar).

# ---- build stage: the README's build (scripts/setup.sh, then scripts/build.sh) ------------
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# setup.sh first, on its own: its layer (the build packages) stays cached while sources change
COPY scripts/setup.sh scripts/setup.sh
RUN scripts/setup.sh
COPY . .
# build.sh configures and builds out of tree and prints the binary. The runtime packages are
# derived from what the stripped binary links, plus libsnappy.so.1, which it loads on the
# first SNAPPY payload (broker/util/compress.c), so the runtime stage gets exactly those
# libraries and nothing else.
RUN true \
 && bin=$(BUILD_DIR=/src/build scripts/build.sh | tail -n 1) \
 && mkdir -p /out \
 && install -m 0755 -s "$bin" /out/magnetar \
 && /out/magnetar version \
 && : > /out/libs \
 && for lib in $(ldd /out/magnetar | awk '$2 == "=>" && $3 ~ /^\// { print $3 }') \
             $(ldconfig -p | awk '$1 == "libsnappy.so.1" { print $NF; exit }'); do \
      pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null \
            || dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "/usr$(readlink -f "$lib")" 2>/dev/null) \
        || { echo "no package ships $lib" >&2; exit 1; }; \
      echo "$pkg" | head -n 1 | cut -d: -f1 >> /out/libs; \
    done \
 && grep -vx libc6 /out/libs | sort -u > /out/runtime-packages \
 && echo "runtime packages: $(tr '\n' ' ' < /out/runtime-packages)"

# ---- runtime stage: the base image + the shared libraries the binary links + binary + conf --
FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN export DEBIAN_FRONTEND=noninteractive \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends $(cat /tmp/runtime-packages) >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
           /tmp/runtime-packages \
 && groupadd --system --gid 10000 magnetar \
 && useradd --system --uid 10000 --gid 10000 --home-dir /magnetar --no-create-home \
            --shell /usr/sbin/nologin magnetar \
 && mkdir -p /magnetar/conf /magnetar/data \
 && chown 10000:10000 /magnetar/data
COPY --from=build /out/magnetar /usr/local/bin/magnetar
COPY conf/standalone.yaml conf/broker.yaml conf/bookie.yaml conf/README.md /magnetar/conf/
RUN magnetar version && cd /magnetar && magnetar config check --config conf/standalone.yaml

WORKDIR /magnetar
ENV MAGNETAR_bindAddress=0.0.0.0
USER 10000:10000
VOLUME ["/magnetar/data"]
# 6650 Pulsar protocol, 6651 Pulsar protocol over TLS, 8080 admin HTTP, 8443 admin HTTPS,
# 3181 bookie
EXPOSE 6650 6651 8080 8443 3181
# GET /admin/v2/brokers/health must answer 200 "ok"; a bookie-only container (no admin HTTP)
# is healthy while its BookKeeper port accepts connections. Uses bash's /dev/tcp: the image
# has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "mapfile -d '' argv </proc/1/cmdline; if [[ ${argv[1]} == bookie ]]; then exec 3<>/dev/tcp/127.0.0.1/${MAGNETAR_bookiePort:-3181}; else exec 3<>/dev/tcp/127.0.0.1/${MAGNETAR_webServicePort:-8080} && printf 'GET /admin/v2/brokers/health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && r=$(timeout 4 cat <&3) && [[ $r == HTTP/1.?' 200'* && $r == *$'\\r\\n\\r\\nok'* ]]; fi"]
ENTRYPOINT ["magnetar"]
CMD ["standalone"]
