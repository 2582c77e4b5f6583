#!/usr/bin/env bash
# image.sh - build magnetar's container image (the top-level Dockerfile) with podman, without
# a daemon and without a registry: the base image debian:bookworm-slim is made locally.
#
#   scripts/image.sh [build] [--tag TAG]  make the base if needed, build the image, print a
#                                         size report; the last line is the image's tag
#   scripts/image.sh base                 only make (or reuse) the base image
#   scripts/image.sh report [TAG]         size of TAG and what its runtime stage adds
#   scripts/image.sh podman ARGS...       podman with this script's storage options, e.g.
#                                         scripts/image.sh podman image mount magnetar:latest
#   scripts/image.sh in-ns CMD...         run CMD where podman works: as is, or inside a plain
#                                         chroot in a mount namespace whose root is a mount
#
# How (as root; podman and debootstrap are installed when missing):
#  1. base tree: `debootstrap --variant=minbase bookworm` into $IMAGE_BASE_DIR (cached: about
#     a minute, once), trimmed the way Debian's official slim images are (dpkg path excludes
#     for docs, man pages and locales; deb822 sources with bookworm, -updates and -security;
#     no apt lists or caches);
#  2. that tree is imported as docker.io/library/debian:bookworm-slim (once per storage);
#  3. podman build --pull=never --isolation chroot --network host --format docker (docker
#     format keeps the HEALTHCHECK). Layers are cached: an unchanged tree rebuilds in seconds.
# podman runs with its own storage under $IMAGE_STORAGE, no cgroups (cgroupfs manager, chroot
# isolation) and no event log, so it also works inside a plain chroot (a CI root made with
# debootstrap): there the storage driver falls back to vfs when overlay mounts fail.
#
# Environment: IMAGE_TAG (default magnetar:latest), IMAGE_BASE_DIR (default
# /var/tmp/magnetar-bookworm-base), IMAGE_STORAGE (default /var/tmp/magnetar-containers),
# IMAGE_STORAGE_DRIVER (overlay | vfs; default: overlay when it works, else vfs; remembered
# per storage), IMAGE_MIRROR (Debian mirror, default http://deb.debian.org/debian).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
base_dir=${IMAGE_BASE_DIR:-/var/tmp/magnetar-bookworm-base}
storage=${IMAGE_STORAGE:-/var/tmp/magnetar-containers}
mirror=${IMAGE_MIRROR:-http://deb.debian.org/debian}
base_ref=docker.io/library/debian:bookworm-slim
tag=${IMAGE_TAG:-magnetar:latest}

say() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }

ensure_tools() {
  local missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run as root, or apt-get install -y ${missing[*]}"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# podman with our own storage; the driver is chosen once per storage and remembered
driver=""
pick_driver() {
  [ -n "$driver" ] && return 0
  mkdir -p "$storage"
  if [ -n "${IMAGE_STORAGE_DRIVER:-}" ]; then
    driver=$IMAGE_STORAGE_DRIVER
  elif [ -s "$storage/driver" ]; then
    driver=$(cat "$storage/driver")
  else
    # overlay needs the kernel's overlayfs and a mount that allows it; try a real mount
    local t
    t=$(mktemp -d "$storage/.probe.XXXXXX")
    mkdir -p "$t/l" "$t/u" "$t/w" "$t/m"
    if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
      umount "$t/m"; driver=overlay
    else
      driver=vfs
    fi
    rm -rf "$t"
  fi
  case "$driver" in overlay|vfs) ;; *) die "IMAGE_STORAGE_DRIVER must be overlay or vfs" ;; esac
  [ -s "$storage/driver" ] || echo "$driver" >"$storage/driver"
  if [ "$(cat "$storage/driver")" != "$driver" ]; then
    die "$storage holds $(cat "$storage/driver") storage; remove it to switch to $driver"
  fi
}
pm() {
  pick_driver
  podman --root "$storage/root" --runroot "$storage/run" --storage-driver "$driver" \
    --cgroup-manager cgroupfs --events-backend none "$@"
}

# the debootstrap tree, trimmed like the official slim image
make_base_tree() {
  [ -f "$base_dir/.magnetar-base" ] && return 0
  [ "$(id -u)" = 0 ] || die "making the base tree needs root (debootstrap)"
  local t="$base_dir.tmp"
  say "making the base tree $base_dir with debootstrap (about a minute, once)"
  rm -rf --one-file-system "$t"
  debootstrap --variant=minbase bookworm "$t" "$mirror" >"$base_dir.log" 2>&1 \
    || { tail -n 20 "$base_dir.log" >&2; die "debootstrap failed (log: $base_dir.log)"; }
  mkdir -p "$t/etc/dpkg/dpkg.cfg.d" "$t/etc/apt/apt.conf.d"
  cat >"$t/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# as in Debian's official slim images: no documentation, manual pages or translations
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$t/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  rm -f "$t/etc/apt/sources.list"
  cat >"$t/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # what the excludes would have kept out, and what debootstrap leaves behind
  find "$t/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
  find "$t/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$t/usr/share/man/"* "$t/usr/share/groff/"* "$t/usr/share/info/"* \
         "$t/usr/share/lintian/"* "$t/usr/share/linda/"*
  find "$t/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  rm -rf "$t/var/lib/apt/lists/"* "$t/var/cache/apt/"*.bin "$t/var/cache/apt/archives/"*.deb \
         "$t/var/log/"*.log "$t/var/log/apt/"* "$t/etc/resolv.conf" "$t/etc/hostname"
  : >"$t/etc/resolv.conf"
  echo "bookworm minbase $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$t/.magnetar-base"
  rm -rf --one-file-system "$base_dir"
  mv "$t" "$base_dir"
}

ensure_base() {
  ensure_tools
  if pm image exists "$base_ref" 2>/dev/null; then return 0; fi
  make_base_tree
  say "importing $base_dir as $base_ref (storage $storage, driver $driver)"
  tar --numeric-owner --exclude=./.magnetar-base -C "$base_dir" -cf - . \
    | pm import --quiet \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$base_ref" >/dev/null \
    || die "podman import of the base tree failed"
}

# Inside a plain chroot (a CI root made with debootstrap) "/" is not a mount point, and
# containers/storage's chrooted untar then fails ("remount /, flags: 0x44000: invalid
# argument"). There, run CMD in a new mount namespace whose root is a recursive bind mount of
# this root: the same files, but a mount point. Mounts made inside (podman's) stay there and
# vanish with it; should the bind propagate out (a shared root), it is unmounted afterwards.
in_ns() {
  if mountpoint -q / || [ -n "${IMAGE_NS:-}" ]; then exec "$@"; fi
  [ "$(id -u)" = 0 ] || die "podman in a chroot needs root"
  local nr=/run/magnetar-image-ns.$$ rc=0
  mkdir -p "$nr"
  say "/ is not a mount point (a chroot): running in a mount namespace rooted at a bind mount"
  IMAGE_NS=1 unshare --mount --propagation unchanged /bin/sh -c \
    'cwd=$1; shift; mount --rbind / "$0" && mount --make-rprivate "$0" && exec chroot "$0" /usr/bin/env -C "$cwd" "$@"' \
    "$nr" "$PWD" "$@" || rc=$?
  umount -R -l "$nr" 2>/dev/null || true
  rmdir "$nr" 2>/dev/null || true
  exit $rc
}

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

report() {
  local ref=${1:-$tag} size bsize mnt bmnt
  size=$(pm image inspect --format '{{.Size}}' "$ref") || die "no image $ref"
  bsize=$(pm image inspect --format '{{.Size}}' "$base_ref")
  echo "image $ref: $(mib "$size") uncompressed; base $base_ref $(mib "$bsize"); the runtime stage adds $(mib $((size - bsize)))"
  echo "layers (newest first):"
  pm history --format '{{.Size}}\t{{.CreatedBy}}' "$ref" | awk -F'\t' '{ c = $2; if (length(c) > 110) c = substr(c, 1, 107) "..."; printf "  %10s  %s\n", $1, c }'
  mnt=$(pm image mount "$ref")
  bmnt=$(pm image mount "$base_ref")
  echo "packages the runtime stage adds (installed size):"
  join -v1 <(dpkg-query --admindir="$mnt/var/lib/dpkg" -W -f '${Package} ${Installed-Size}\n' | sort) \
           <(dpkg-query --admindir="$bmnt/var/lib/dpkg" -W -f '${Package} ${Installed-Size}\n' | sort) \
    | awk '{ printf "  %-28s %6d KiB\n", $1, $2; t += $2 } END { printf "  %-28s %6d KiB\n", "total", t }'
  echo "files: /usr/local/bin/magnetar $(mib "$(stat -c %s "$mnt/usr/local/bin/magnetar")") (stripped)," \
       "/magnetar/conf: $(ls "$mnt/magnetar/conf" | tr '\n' ' ')"
  local gz
  gz=$(pm save --format docker-archive "$ref" 2>/dev/null | gzip -6 | wc -c)
  echo "image $ref as a gzip-compressed archive (roughly a registry's transfer size): $(mib "$gz")"
  pm image unmount "$ref" >/dev/null || true
  pm image unmount "$base_ref" >/dev/null || true
}

build() {
  ensure_base
  say "building $tag from $top/Dockerfile (driver $driver)"
  local t0=$SECONDS
  pm build --pull=never --isolation chroot --network host --format docker --layers \
    -t "$tag" -f "$top/Dockerfile" "$top" >&2 || die "podman build failed"
  say "built $tag in $((SECONDS - t0)) s"
  report "$tag" >&2
  echo "$tag"
}

cmd=${1:-build}
[ $# -gt 0 ] && shift
case "$cmd" in
  in-ns) [ $# -gt 0 ] || die "usage: $0 in-ns CMD..."; in_ns "$@" ;;
  build|base|report|podman) mountpoint -q / || [ -n "${IMAGE_NS:-}" ] || in_ns "$0" "$cmd" "$@" ;;
esac
case "$cmd" in
  in-ns) ;;
  build)
    while [ $# -gt 0 ]; do
      case "$1" in
        --tag) tag=${2:?--tag needs a value}; shift 2 ;;
        *) die "usage: $0 build [--tag TAG]" ;;
      esac
    done
    build ;;
  base) ensure_base; echo "$base_ref" ;;
  report) ensure_tools; report "${1:-$tag}" ;;
  podman) ensure_tools; pm "$@" ;;
  *) die "usage: $0 [build [--tag TAG] | base | report [TAG] | podman ARGS...]" ;;
esac
