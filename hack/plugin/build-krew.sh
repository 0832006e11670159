#!/usr/bin/env bash
# Builds, once, krew and its manifest validator from the Go module proxy into
# <cache>/plugin/krew-<version>/, so the plugin's test installs the archives `make plugin`
# builds with krew itself (`krew install --manifest --archive`, per platform through
# KREW_OS/KREW_ARCH) and checks the manifest with the krew index's own rules
# (`validate-krew-manifest -skip-install`; its install step would download the URIs).
#
# stdout carries only `name=/absolute/path` lines; progress goes to stderr. About a minute
# on a warm Go cache, a few on a cold one. Environment: REMEDIATOR_CACHE_DIR, GO.
set -euo pipefail

# One place to bump: the cache directory follows it, so a bump rebuilds.
KREW_VERSION=v0.4.3

dir="${REMEDIATOR_CACHE_DIR:-${HOME}/.cache/remediator}/plugin/krew-${KREW_VERSION}"
mkdir -p "${dir}"
log() { printf 'plugin-krew: %s\n' "$*" >&2; }

exec 9>"${dir}/.build.lock"
flock 9
if [[ ! -x "${dir}/krew" || ! -x "${dir}/validate-krew-manifest" ]]; then
  go="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
  tmp="$(mktemp -d "${dir}/tmp.XXXXXX")"
  trap 'rm -rf "${tmp}"' EXIT
  start=$(date +%s)
  log "building krew ${KREW_VERSION} and validate-krew-manifest"
  # `go install pkg@version` builds with krew's own go.mod: the versions it released with.
  GOBIN="${tmp}" CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" \
    "${go}" install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/krew/cmd/krew@${KREW_VERSION}" "sigs.k8s.io/krew/cmd/validate-krew-manifest@${KREW_VERSION}"
  mv -f "${tmp}/krew" "${tmp}/validate-krew-manifest" "${dir}/"
  log "built in $(( $(date +%s) - start ))s"
fi
echo "krew=${dir}/krew"
echo "validate-krew-manifest=${dir}/validate-krew-manifest"
