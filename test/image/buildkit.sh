#!/usr/bin/env bash
# Builds BuildKit (buildkitd, buildctl) at a pinned version from the Go module proxy into the user's cache, for the
# tiers that build the image from the Dockerfile. `go install` refuses BuildKit (its go.mod has exclude directives),
# so the module is downloaded, copied to a writable dir and built there.
# Output: ${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni/buildkit-<version>/bin/{buildkitd,buildctl}; skipped when present.
# Usage: buildkit.sh [--bin-dir]
set -euo pipefail
VERSION="${ASM_BUILDKIT_VERSION:-v0.34.2}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni/buildkit-$VERSION"
BIN_DIR="$CACHE_DIR/bin"
[[ "${1:-}" == "--bin-dir" ]] && { echo "$BIN_DIR"; exit 0; }
log() { printf '[buildkit %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
have() { [[ -f "$BIN_DIR/.complete" && -x "$BIN_DIR/buildkitd" && -x "$BIN_DIR/buildctl" ]]; }
if have; then log "cached: $BIN_DIR"; exit 0; fi
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
flock 9
if have; then log "cached: $BIN_DIR"; exit 0; fi
export GOTOOLCHAIN=local CGO_ENABLED=0
unset GOWORK
start=$(date +%s)
log "downloading github.com/moby/buildkit@$VERSION"
dir=$(go mod download -json "github.com/moby/buildkit@$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
[[ -n "$dir" && -d "$dir" ]] || { echo "buildkit: go mod download gave no module dir" >&2; exit 1; }
src="$CACHE_DIR/src"
rm -rf "$src" "$BIN_DIR.partial"
cp -r "$dir" "$src"
chmod -R u+w "$src"
mkdir -p "$BIN_DIR.partial"
log "building buildkitd and buildctl (about 5 minutes on 2 cores the first time)"
(cd "$src" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$BIN_DIR.partial/" ./cmd/buildkitd ./cmd/buildctl)
"$BIN_DIR.partial/buildctl" --version >/dev/null
echo "buildkit $VERSION $(go version | awk '{print $3}')" > "$BIN_DIR.partial/.complete"
rm -rf "$BIN_DIR" "$src"
mv "$BIN_DIR.partial" "$BIN_DIR"
log "done in $(( $(date +%s) - start ))s: $BIN_DIR"
