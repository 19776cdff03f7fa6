#!/usr/bin/env bash
# Builds the chart tools from the Go module proxy, pinned and cached like the Kubernetes toolchain, never committed:
#   helm       helm.sh/helm/v3/cmd/helm (no replace directives in its go.mod, so `go install` works directly);
#   kustomize  sigs.k8s.io/kustomize/kustomize/v5 at the version kubectl v1.35 embeds, so the chart test can render
#              manifests/ as `kubectl kustomize` does before (or without) the e2e toolchain build.
#
# Output: ${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni/{helm-<v>,kustomize-<v>}/bin/<tool>; skipped when present.
# Usage: helm.sh                    build (or reuse) both
#        helm.sh --path             print helm's path and exit (nothing is built)
#        helm.sh --kustomize-path   print kustomize's path and exit (nothing is built)
# Env:   ASM_HELM_VERSION, ASM_KUSTOMIZE_VERSION (defaults below), ASM_GO_BUILD_P (parallel packages, default 2)
set -euo pipefail

HELM_VERSION="${ASM_HELM_VERSION:-v3.22.0}"
KUSTOMIZE_VERSION="${ASM_KUSTOMIZE_VERSION:-v5.7.1}"   # k8s.io/kubernetes v1.35.4's go.mod
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/asm-cni"

case "${1:-}" in
  --path) echo "$CACHE_ROOT/helm-$HELM_VERSION/bin/helm"; exit 0 ;;
  --kustomize-path) echo "$CACHE_ROOT/kustomize-$KUSTOMIZE_VERSION/bin/kustomize"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--path|--kustomize-path]" >&2; exit 2 ;;
esac

log() { printf '[chart-tools %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf '[chart-tools] ERROR: %s\n' "$*" >&2; exit 1; }

# build NAME VERSION PACKAGE LDFLAGS: go install PACKAGE@VERSION into CACHE_ROOT/NAME-VERSION/bin.
build() {
  local name=$1 version=$2 pkg=$3 ldflags=$4
  local dir="$CACHE_ROOT/$name-$version" bin="$CACHE_ROOT/$name-$version/bin/$name"
  have() { [[ -x "$bin" && -f "$dir/bin/.complete" ]]; }
  if have; then log "cached: $bin ($(cat "$dir/bin/.complete"))"; return 0; fi
  command -v go >/dev/null 2>&1 || die "go is not on PATH; $name is built with Go from the module proxy"
  mkdir -p "$dir"
  # One build at a time per tool and version (a second caller waits, then finds the cache).
  exec 9>"$dir/.lock"
  if ! flock -n 9; then
    log "another build of $name $version is running; waiting for it"
    flock 9
    if have; then log "cached: $bin"; exec 9>&-; return 0; fi
  fi
  local out="$dir/bin.partial" t0
  t0=$(date +%s)
  rm -rf "$out"
  mkdir -p "$out"
  log "building $name $version with $(go version | awk '{print $3}') (a few minutes the first time)"
  CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= GOWORK=off GOBIN="$out" \
    go install -p "${ASM_GO_BUILD_P:-2}" -trimpath -ldflags "$ldflags" "$pkg@$version" \
    || die "go install $pkg@$version failed (see the compiler output above; GOPROXY=$(go env GOPROXY))"
  "$out/$name" version >/dev/null || die "the built $name does not run"
  echo "$name $version $(go version | awk '{print $3}')" > "$out/.complete"
  rm -rf "$dir/bin"
  mv "$out" "$dir/bin"
  exec 9>&-
  log "built $name in $(( $(date +%s) - t0 ))s: $bin"
}

[[ "$HELM_VERSION" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "ASM_HELM_VERSION must look like v3.22.0, got '$HELM_VERSION'"
[[ "$KUSTOMIZE_VERSION" =~ ^v5\.[0-9]+\.[0-9]+$ ]] || die "ASM_KUSTOMIZE_VERSION must look like v5.7.1, got '$KUSTOMIZE_VERSION'"
# As helm's own Makefile does: its version, and the Kubernetes version `helm template` and `helm lint` assume without a
# cluster (1.X for the k8s.io/client-go v0.X its go.mod requires).
# Without them helm assumes Kubernetes v1.20 and refuses the chart's kubeVersion.
helm_gomod="$(CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= go mod download -json "helm.sh/helm/v3@$HELM_VERSION" 2>/dev/null \
  | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')" || true
[[ -n "$helm_gomod" && -f "$helm_gomod" ]] || die "could not fetch helm.sh/helm/v3@$HELM_VERSION's go.mod from the module proxy"
client_go="$(sed -n 's#^[[:space:]]*k8s\.io/client-go[[:space:]]\+v0\.\([0-9]\+\)\..*#\1#p' "$helm_gomod" | head -1)"
[[ -n "$client_go" ]] || die "helm.sh/helm/v3@$HELM_VERSION's go.mod names no k8s.io/client-go version"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$client_go"
done
build helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$helm_ldflags"
build kustomize "$KUSTOMIZE_VERSION" sigs.k8s.io/kustomize/kustomize/v5 "-s -w"
