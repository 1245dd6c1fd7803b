#!/usr/bin/env bash
# Builds Keycafe's four container images from the repository:
#
#   keycafe/keycafe-server:<version>     deploy/Containerfile.keycafe-server
#   keycafe/coordinate-server:<version>  deploy/Containerfile.coordinate-server
#   keycafe/auth-server:<version>        deploy/Containerfile.auth-server
#   keycafe/auth-web:<version>           deploy/Containerfile.auth-web
#
# <version> is the workspace's (Cargo.toml, [workspace.package]), which is
# also what compose.yaml runs. With docker or podman, whichever is on PATH
# (docker first); CONTAINER_ENGINE=podman chooses. Usage:
#
#   deploy/build-images.sh [NAME...]     (default: all four)
#
# Until the engine is found this script uses nothing but bash itself, so that
# it can say clearly what is missing on any machine.
set -euo pipefail

IMAGES=(keycafe-server coordinate-server auth-server auth-web)

# fail MESSAGE...: says what went wrong and what to do, and stops.
fail() {
    printf 'build-images.sh: %s\n' "$@" >&2
    exit 1
}

# find_engine: the container engine's name, or a clear refusal.
find_engine() {
    if [[ -n ${CONTAINER_ENGINE:-} ]]; then
        command -v "$CONTAINER_ENGINE" >/dev/null ||
            fail "CONTAINER_ENGINE=$CONTAINER_ENGINE is not on PATH"
        echo "$CONTAINER_ENGINE"
    elif command -v docker >/dev/null; then
        echo docker
    elif command -v podman >/dev/null; then
        echo podman
    else
        fail "neither docker nor podman is on PATH." \
            "Install one of them (Docker Engine with BuildKit, or Podman), then run this again."
    fi
}

# workspace_version ROOT: `version = "..."` from [workspace.package].
workspace_version() {
    local line section="" pattern='^version[[:space:]]*=[[:space:]]*"([^"]+)"'
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line =~ ^\[(.*)\] ]]; then
            section=${BASH_REMATCH[1]}
        elif [[ $section == workspace.package && $line =~ $pattern ]]; then
            echo "${BASH_REMATCH[1]}"
            return 0
        fi
    done <"$1/Cargo.toml"
    fail "no version under [workspace.package] in $1/Cargo.toml"
}

main() {
    local engine root version name
    engine=$(find_engine)
    # The repository root: the build context, one level above this script.
    local here=${BASH_SOURCE[0]}
    [[ $here == */* ]] && here=${here%/*} || here=.
    root=$here/..
    [[ -f $root/Cargo.toml ]] || fail "cannot find the repository root from ${BASH_SOURCE[0]}"
    version=$(workspace_version "$root")
    "$engine" info >/dev/null 2>&1 ||
        fail "$engine is installed but cannot reach its engine (is the daemon or service running?)." \
            "Check with: $engine info"

    local names=("$@")
    [[ ${#names[@]} -gt 0 ]] || names=("${IMAGES[@]}")
    for name in "${names[@]}"; do
        [[ -f $root/deploy/Containerfile.$name ]] ||
            fail "unknown image $name (known: ${IMAGES[*]})"
    done
    for name in "${names[@]}"; do
        echo "== keycafe/$name:$version ($engine)"
        "$engine" build \
            --file "$root/deploy/Containerfile.$name" \
            --build-arg "VERSION=$version" \
            --tag "keycafe/$name:$version" \
            "$root"
    done
    echo "built: ${names[*]/#/keycafe/} (tag $version)"
}

main "$@"
