#!/usr/bin/env bash
# Builds the container image from the repository's Dockerfile and proves it runs: the image's own
# command (`charla up`) starts inside it as its unprivileged user, and every service answers
# SERVING to gRPC health checks from the host.
#
# No registry image can be pulled here, so this uses buildah (chroot isolation, no daemon) with:
# - the runtime base, docker.io/library/debian:bookworm-slim, made locally by debootstrap (Debian
#   bookworm, minbase) and stored under that name, once per machine;
# - the Dockerfile's `prebuilt` target, fed the `charla` binary that CI already compiled
#   (CHARLA_IMAGE_BINARY, or the debug build in CARGO_TARGET_DIR), so nothing compiles twice: the
#   compiling stages are not built. `docker build .` compiles in the image instead (README "Deploy").
# Safe to run again; leaves the base image for the next run and removes everything else.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/tests/deploy"

root=(); [ "$(id -u)" = 0 ] || root=(sudo)
as_root() { "${root[@]}" "$@"; }
apt_install() {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v buildah >/dev/null || apt_install buildah
command -v debootstrap >/dev/null || apt_install debootstrap
python3 -m venv --help >/dev/null 2>&1 || apt_install python3 python3-venv python3-pip
bah() { as_root buildah "$@"; }

base=docker.io/library/debian:bookworm-slim
image=localhost/charla:ci-$$
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/charla/target}"
binary="${CHARLA_IMAGE_BINARY:-$target_dir/debug/charla}"
if [ ! -x "$binary" ]; then
  (cd "$repo" && cargo build --locked -p charla --bin charla)
fi

work=$(mktemp -d /tmp/charla-image.XXXXXX)
container= runner=
# What this run adds to buildah's storage (the image, the stages it keeps, their containers) is
# removed at the end: whatever is there now stays.
containers_before= images_before=
new_ids() { comm -13 <(sort <<<"$1") <(sort <<<"$2"); }
cleanup() {
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then kill "$runner" 2>/dev/null || true; fi
  if [ -n "$images_before" ]; then
    for id in $(new_ids "$containers_before" "$(bah containers -q)"); do bah rm "$id" >/dev/null 2>&1 || true; done
    for id in $(new_ids "$images_before" "$(bah images -q)"); do bah rmi -f "$id" >/dev/null 2>&1 || true; done
  fi
  as_root rm -rf "$work"
}
trap cleanup EXIT

if ! bah inspect --type image "$base" >/dev/null 2>&1; then
  echo "making $base with debootstrap (Debian bookworm, minbase)"
  rootfs="$work/rootfs"
  as_root debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # What the slim image leaves out: downloaded packages, package lists, documentation.
  as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  as_root tar -C "$rootfs" -cf "$work/rootfs.tar" .
  as_root rm -rf "$rootfs"
  scratch=$(bah from scratch)
  bah add "$scratch" "$work/rootfs.tar" / >/dev/null
  bah config --cmd bash "$scratch"
  bah commit -q "$scratch" "$base" >/dev/null
  bah rm "$scratch" >/dev/null
  rm -f "$work/rootfs.tar"
fi

containers_before=$(bah containers -q) images_before=$(bah images -q)
echo "building the image from the Dockerfile with the prebuilt $binary"
mkdir "$work/context"
cp "$binary" "$work/context/charla"
started=$(date +%s)
bah build --quiet --isolation chroot --pull=never --target prebuilt \
  -f "$repo/Dockerfile" -t "$image" "$work/context" >/dev/null
echo "built in $(($(date +%s) - started)) s: $(bah images --format '{{.Size}}' "$image")"

venv="${CHARLA_DEPLOY_VENV:-$HOME/.cache/charla/deploy-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
py() { "$venv/bin/python" "$@"; }

bah inspect --type image "$image" >"$work/image.json"
config() { py -c 'import json, sys; print(json.load(open(sys.argv[1]))["OCIv1"]["config"].get(sys.argv[2]) or "")' "$work/image.json" "$1"; }
user=$(config User)
# The image's own command, one word a line: the entrypoint, then the default arguments.
mapfile -t command < <(py -c '
import json, sys
config = json.load(open(sys.argv[1]))["OCIv1"]["config"]
print(*(config.get("Entrypoint") or []) + (config.get("Cmd") or []), sep="\n")' "$work/image.json")
echo "entrypoint $(config Entrypoint), command $(config Cmd), user $user"
[ "${command[0]}" = charla ] || { echo "the entrypoint must be charla"; exit 1; }
case "$user" in "" | 0 | 0:* | root | root:*) echo "the image must not run as root"; exit 1 ;; esac

ports=($(py -c '
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in sockets])'))

# chroot isolation shares the host's network: the services listen on loopback, on free ports.
container=$(bah from --pull=never "$image")
echo "running the image's command (${command[*]}) as $user on ports ${ports[*]}"
# Started directly (not through a shell function) so that $! is buildah, which passes SIGTERM on.
"${root[@]}" buildah run --isolation chroot --user "$user" \
  --env CHARLA_HOST=127.0.0.1 --env CHARLA_CONTACT_PORT="${ports[0]}" \
  --env CHARLA_CONVERSATION_PORT="${ports[1]}" --env CHARLA_METRICS_PORT="${ports[2]}" \
  "$container" -- "${command[@]}" >"$work/up.log" 2>&1 &
runner=$!

if ! py "$here/health_probe.py" --wait 60 \
  "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[0]}=charla.contact.v1.ContactService" \
  "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[1]}=charla.conversation.v1.ConversationService" \
  "127.0.0.1:${ports[2]}" "127.0.0.1:${ports[2]}=charla.metrics.v1.MetricsService"; then
  echo "the services in the image are not SERVING; their output:"
  cat "$work/up.log"
  exit 1
fi

# The services wrote their SQLite files as the image's user, in its data folder.
owner=$(as_root stat -c %u:%g "$(bah mount "$container")/var/lib/charla/charla-data/contact.db")
bah umount "$container" >/dev/null
echo "data written as $owner"
[ "$owner" = "$user" ] || { echo "expected the data to belong to $user"; exit 1; }

# SIGTERM, as Kubernetes sends it, to charla itself (buildah run would SIGKILL it): it drains and
# exits 0, and so does buildah run.
descendants() { local child; for child in $(ps -o pid= --ppid "$1"); do echo "$child"; descendants "$child"; done; }
charla_pid=$(for pid in $(descendants "$runner"); do
  [ "$(ps -o comm= -p "$pid")" = charla ] && echo "$pid"; done)
[ -n "$charla_pid" ] || { echo "no charla process under buildah run"; exit 1; }
as_root kill -TERM "$charla_pid"
if wait "$runner"; then echo "stopped cleanly on SIGTERM"; else
  echo "charla up did not exit 0 on SIGTERM; its output:"; cat "$work/up.log"; exit 1
fi
runner=
echo "image check passed"
