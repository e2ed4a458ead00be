#!/usr/bin/env bash
# Builds the shardmatch image on a machine with no registry and no Docker engine:
# the static binaries are built on the host with the local Go toolchain, then
# `buildah bud` runs Dockerfile.prebuilt (FROM scratch: nothing is pulled).
#
#   deploy/image/build.sh                 # OCI archive + podman's local storage
#   deploy/image/build.sh --no-load       # OCI archive only
#   deploy/image/build.sh --run           # ... then smoke-run it with podman
#
# Environment: IMAGE (default shardmatch:dev), OUT (default
# /tmp/shardmatch-image.tar, an oci-archive), VERSION, REVISION (from git),
# GOFLAGS/GOPROXY as for any go build; for --run, PODMAN (default podman; e.g.
# "podman --runtime runc" where crun refuses hybrid cgroups) and
# PODMAN_RUN_FLAGS (e.g. "--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"
# where podman's default rlimits exceed the host's). It installs nothing: it
# says what is missing and stops.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

load=1 run=0
for a in "$@"; do
  case "$a" in
    --no-load) load=0 ;;
    --run) run=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument $a" >&2; usage >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
IMAGE=${IMAGE:-shardmatch:dev}
OUT=${OUT:-/tmp/shardmatch-image.tar}

need() { # need CMD PACKAGE WHY
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "build.sh: $1 not found: $3. On Debian: apt-get install $2" >&2
  return 1
}
missing=0
need go golang-go "builds the binaries (Go >= the go line of go.mod)" || missing=1
need buildah buildah "builds the image from scratch" || missing=1
if [ "$load" = 1 ] || [ "$run" = 1 ]; then
  need podman podman "loads the image into local storage and runs it (or pass --no-load)" || missing=1
fi
[ "$missing" = 0 ] || exit 1

cd "$repo"
if [ -z "${VERSION:-}" ]; then
  VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
fi
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

stage=$(mktemp -d /tmp/shardmatch-image-stage.XXXXXX)
trap 'rm -rf "$stage"' EXIT
rootfs=$stage/rootfs

t0=$SECONDS
echo "== go build (static, CGO_ENABLED=0), version $VERSION"
export CGO_ENABLED=0
go build -trimpath -ldflags "-s -w -X github.com/shardmatch/shardmatch/cmd/internal/cli.Version=$VERSION" -o "$rootfs/usr/local/bin/coordinator" ./cmd/coordinator
go build -trimpath -ldflags "-s -w -X github.com/shardmatch/shardmatch/cmd/internal/cli.Version=$VERSION" -o "$rootfs/usr/local/bin/shardsvc" ./cmd/shardsvc
for b in coordinator shardsvc; do
  # A dynamic binary would not start in a FROM scratch image.
  if ! go version -m "$rootfs/usr/local/bin/$b" | grep -q 'CGO_ENABLED=0'; then
    echo "build.sh: $b is not a CGO_ENABLED=0 build" >&2
    exit 1
  fi
done
t_go=$((SECONDS - t0))

echo "== rootfs skeleton"
cp -a "$here/rootfs/." "$rootfs/"
mkdir -p "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$rootfs/var/lib" "$stage/datadir/shardmatch"
chmod 1777 "$rootfs/tmp"
chmod 0750 "$stage/datadir/shardmatch" # copied --chown=65532:65532 to /var/lib/shardmatch
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
else
  echo "build.sh: no /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates):" \
    "the image will not trust public CAs for NATS/OTLP over TLS" >&2
fi
cp "$here/Dockerfile.prebuilt" "$stage/Dockerfile"

echo "== buildah bud -> oci-archive:$OUT"
t1=$SECONDS
rm -f "$OUT"
buildah bud --quiet --format oci --layers=false \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
  -t "$IMAGE" -f "$stage/Dockerfile" "$stage" >/dev/null
buildah push --quiet "$IMAGE" "oci-archive:$OUT:$IMAGE"
t_image=$((SECONDS - t1))

if [ "$load" = 1 ]; then
  echo "== podman load"
  podman load --quiet -i "$OUT" >/dev/null
  # podman load keeps the name stored in the archive; make sure IMAGE resolves.
  podman tag "$IMAGE" "$IMAGE" 2>/dev/null || true
fi

size=$(du -h "$OUT" | cut -f1)
echo "image $IMAGE: $OUT ($size), go build ${t_go}s, image ${t_image}s"

if [ "$run" = 1 ]; then
  PODMAN=${PODMAN:-podman}
  read -r -a pod <<<"$PODMAN"
  read -r -a flags <<<"${PODMAN_RUN_FLAGS:-}"
  echo "== $PODMAN run --rm ${PODMAN_RUN_FLAGS:+$PODMAN_RUN_FLAGS }$IMAGE coordinator version"
  "${pod[@]}" run --rm "${flags[@]}" "$IMAGE" coordinator version
  # As under Kubernetes with readOnlyRootFilesystem: nothing writable but the
  # tmpfs on /tmp (the chart's emptyDir).
  echo "== $PODMAN run --rm --read-only --read-only-tmpfs=false --tmpfs /tmp --network none ... coordinator dev --duration 5s"
  "${pod[@]}" run --rm "${flags[@]}" --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,mode=1777 \
    --network none "$IMAGE" coordinator dev --duration 5s
fi
