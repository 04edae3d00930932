#!/usr/bin/env bash
# Builds the cluster's images from Debian's packages alone, for a Docker host
# that cannot pull images from a registry (and for make test-deploy):
#
#   alloc-debian:bookworm   Debian 12 minbase (debootstrap), stands in for debian:bookworm-slim
#   alloc-postgres:15       deploy/images/postgres, stands in for postgres:15
#   alloc-rabbitmq:3.10     deploy/images/rabbitmq, stands in for rabbitmq:3.10
#   alloc-redis:7           deploy/images/redis, stands in for redis:7
#   alloc:latest            deploy/Dockerfile on alloc-debian:bookworm (ALLOC_IMAGE_TAG)
#   alloc-build:latest      its build stage, kept as the cache of the next build
#
#   deploy/images/build.sh [base|servers|alloc|all]   (default all)
#
# Then point deploy/docker-compose.yml at them with the variables it reads
# (deploy/images/build.sh env prints them):
#   ALLOC_PG_IMAGE=alloc-postgres:15 ALLOC_RABBITMQ_IMAGE=alloc-rabbitmq:3.10
#   ALLOC_REDIS_IMAGE=alloc-redis:7 ALLOC_DEBIAN_IMAGE=alloc-debian:bookworm
#
# The base image is built once (about a minute: debootstrap, run as root) and
# reused while it exists; the others are `docker build`s, which reuse their
# cached layers. The builds use the host's network (--network host): apt-get
# in them reaches Debian's archive as the host does, with no NAT for a bridge.
# Needs: docker (the engine in DOCKER_HOST), debootstrap for the base image.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
images=$repo/deploy/images
DOCKER=${DOCKER:-docker}
base=${ALLOC_DEBIAN_IMAGE:-alloc-debian:bookworm}
tag=${ALLOC_IMAGE_TAG:-latest}

say() { printf 'images: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

have_image() { $DOCKER image inspect "$1" >/dev/null 2>&1; }

# build_base: debootstrap --variant=minbase bookworm, slimmed as the official
# slim image is (no apt lists or cached packages, no documentation, man pages
# or translations, now or in what later images install), imported as $base.
build_base() {
    if have_image "$base"; then say "$base exists: reused"; return; fi
    command -v debootstrap >/dev/null || die "debootstrap is not installed"
    local root
    work=$(mktemp -d "${TMPDIR:-/tmp}/alloc-debian.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    root=$work/rootfs
    say "debootstrap --variant=minbase bookworm (log: $work/debootstrap.log)"
    if ! debootstrap --variant=minbase bookworm "$root" >"$work/debootstrap.log" 2>&1; then
        tail -n 5 "$work/debootstrap.log" >&2
        die "debootstrap failed"
    fi
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
    cat >"$root/etc/dpkg/dpkg.cfg.d/alloc-slim" <<'EOT'
# as in the official slim images: no documentation, man pages or translations
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOT
    # dpkg without fsync: a build that dies is thrown away anyway (and fsync on
    # a fresh copy of every file is what makes apt-get slow on vfs).
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/alloc-unsafe-io"
    # Packages installed in a build must not try to start their services.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    # apt-get keeps no downloaded packages in the image.
    cat >"$root/etc/apt/apt.conf.d/alloc-clean" <<'EOT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOT
    : >"$root/etc/hostname"
    tar -C "$root" -c . | $DOCKER import --change 'CMD ["bash"]' - "$base" >/dev/null
    say "$base built ($(du -sh "$root" | cut -f1))"
    rm -rf "$work"
}

# build NAME DOCKERFILE CONTEXT [FLAGS...]: docker build on $base, with the host's network.
build() {
    local name=$1 dockerfile=$2 context=$3
    shift 3
    say "building $name"
    $DOCKER build -q --network host --build-arg DEBIAN_IMAGE="$base" "$@" \
        -f "$dockerfile" -t "$name" "$context" >/dev/null ||
        die "docker build of $name failed"
}

build_servers() {
    build alloc-postgres:15 "$images/postgres/Dockerfile" "$images/postgres"
    build alloc-rabbitmq:3.10 "$images/rabbitmq/Dockerfile" "$images/rabbitmq"
    build alloc-redis:7 "$images/redis/Dockerfile" "$images/redis"
}

# The build stage gets a name too (alloc-build), so that pruning the images
# no name holds keeps it: its compiler layer is then reused by the next build.
build_alloc() {
    build "alloc-build:$tag" "$repo/deploy/Dockerfile" "$repo" --target build
    build "alloc:$tag" "$repo/deploy/Dockerfile" "$repo"
}

print_env() {
    cat <<EOT
export ALLOC_DEBIAN_IMAGE=$base
export ALLOC_PG_IMAGE=alloc-postgres:15
export ALLOC_RABBITMQ_IMAGE=alloc-rabbitmq:3.10
export ALLOC_REDIS_IMAGE=alloc-redis:7
EOT
}

case "${1:-all}" in
base) build_base ;;
servers) build_base && build_servers ;;
alloc) build_base && build_alloc ;;
all) build_base && build_servers && build_alloc ;;
env) print_env ;;
*)
    echo "usage: $0 [base|servers|alloc|all|env]" >&2
    exit 2
    ;;
esac
