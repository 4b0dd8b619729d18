#!/bin/sh
# Drop-in edgetpu_compiler that runs Coral's compiler in Docker or Podman, on any host.
#
#   export EDGEKIT_EDGETPU_COMPILER=/path/to/scripts/edgetpu-compiler/edgetpu_compiler.sh
#   edgekit edgetpu compile model_int8.tflite
#
# The current directory is mounted at /work, so model paths must be relative to it (edgekit
# always calls it that way). The image is built on first use from the Containerfile beside this
# script. Environment: EDGEKIT_CONTAINER_ENGINE=docker|podman, EDGEKIT_EDGETPU_IMAGE=name:tag.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
image=${EDGEKIT_EDGETPU_IMAGE:-edgekit/edgetpu-compiler:16}
engine=${EDGEKIT_CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
    for candidate in docker podman; do
        if command -v "$candidate" >/dev/null 2>&1; then engine=$candidate; break; fi
    done
fi
if [ -z "$engine" ]; then
    echo "edgetpu_compiler.sh: neither docker nor podman is installed" >&2
    exit 127
fi

if ! "$engine" image inspect "$image" >/dev/null 2>&1; then
    echo "edgetpu_compiler.sh: building $image (once)..." >&2
    "$engine" build --platform linux/amd64 -t "$image" -f "$here/Containerfile" "$here" >&2
fi

# --platform linux/amd64: the compiler exists only for x86-64; arm64 hosts emulate it.
# --user: outputs belong to the caller, not root (podman rootless maps this itself).
user_flag="--user $(id -u):$(id -g)"
if [ "$engine" = podman ]; then user_flag="--userns=keep-id"; fi
# shellcheck disable=SC2086
exec "$engine" run --rm --platform linux/amd64 $user_flag -v "$PWD:/work" -w /work "$image" "$@"
