#!/usr/bin/env bash
# setup.sh - install what building (and, with --test, testing) magnetar needs on Debian 12.
#
#   scripts/setup.sh          build dependencies
#   scripts/setup.sh --test   build + test dependencies (node/npm for pulsar-flex, clang for the
#                             fuzzer, zookeeper for the metadata-store tests)
#
# Installs only what is missing; as root it runs apt-get, otherwise it prints the command.
set -euo pipefail

want_test=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    *) echo "usage: $0 [--test]" >&2; exit 64 ;;
  esac
done

pkgs=(build-essential autoconf automake pkg-config libevent-dev libssl-dev libprotobuf-c-dev
      protobuf-c-compiler libcyaml-dev libyaml-dev libjansson-dev libpcre2-dev liblmdb-dev libzookeeper-st-dev check
      liblz4-dev zlib1g-dev libzstd-dev libsnappy-dev libisal-dev
      ca-certificates procps)
if [ "$want_test" = 1 ]; then
  # clang: the fuzzer and the clang build; clang-format: scripts/check-format.sh; zookeeper +
  # a JRE: the metadata-store and cluster tests run a real ZooKeeper server; util-linux:
  # setsid for process groups; universal-ctags: scripts/check-prefixes.sh; git: the format
  # and prefix checks list the tracked files; iproute2: ss (which addresses a process listens on);
  # jq: tests/integration/cli.test.sh reads the JSON `magnetar admin` prints; chromium (and a
  # font for its screenshots): tests/integration/console.test.sh drives the web console in it
  # (puppeteer-core from npm, tests/console).
  pkgs+=(clang clang-format libclang-rt-14-dev curl zookeeper default-jre-headless util-linux podman debootstrap
         universal-ctags git iproute2 jq chromium fonts-dejavu-core)
  # Node and npm: any node >= 18 with npm will do; Debian 12 ships node 18.19.
  if ! command -v node >/dev/null 2>&1; then pkgs+=(nodejs); fi
  if ! command -v npm >/dev/null 2>&1; then pkgs+=(npm); fi
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup: missing packages: ${missing[*]}" >&2
  echo "setup: run as root:  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
