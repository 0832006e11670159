#!/usr/bin/env bash
# Builds, once, a real GitOps engine for the test bed: Flux's source-controller and
# kustomize-controller from the Go module proxy, into <cache>/testbed/flux/, beside the
# test bed's other binaries (build.sh, build-tools.sh). test/e2e/gitops.test.ts runs
# them as processes against the test bed's kube-apiserver.
#
# Why not `go install …@version`: both modules' go.mod carry `replace … => ./api`, which
# `go install` refuses. So the downloaded module is copied into a writable directory,
# that one replace line is dropped (the published `api` module is required anyway) and
# it is built with `GOFLAGS=-mod=mod` (TESTBED.md, "Facts checked for the next work").
#   kustomize-controller v1.7.3: v1.9+ need Go 1.27 and fluxcd/pkg versions the proxy
#     refuses (403).
#   source-controller v1.8.5 (the oldest the proxy serves) with
#     github.com/fluxcd/pkg/artifact pinned to v0.8.0 (v0.8.1 is refused).
# Their CRDs are copied from the module's config/crd/bases next to each binary.
#
# Also hack/kstatus, the kstatus rules as a command (`build-flux.sh kstatus` builds only
# that). stdout carries only `name=/absolute/path` lines (test/testbed/flux.ts parses them);
# progress and timings go to stderr. Cold: about 2.5 minutes each on a warm Go module
# cache, much longer on a cold one; warm: milliseconds.
#
# Environment: REMEDIATOR_CACHE_DIR and GO, as for build.sh.
set -euo pipefail

dir="${REMEDIATOR_CACHE_DIR:-${HOME}/.cache/remediator}/testbed/flux"
mkdir -p "${dir}"

# One place to bump: the cache directory names follow them, so a bump rebuilds.
KUSTOMIZE_CONTROLLER_VERSION=v1.7.3
SOURCE_CONTROLLER_VERSION=v1.8.5
SOURCE_ARTIFACT_PIN=v0.8.0

log() { printf 'testbed-flux: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
secs_since() { local t=$(( $(now_ms) - $1 )); printf '%d.%03ds' $(( t / 1000 )) $(( t % 1000 )); }

# The kstatus tool alone, already built: no need to wait behind a controller build.
ks_src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../kstatus" && pwd)"
ks_hash="$(cat "${ks_src}/go.mod" "${ks_src}/go.sum" "${ks_src}/main.go" | sha256sum | cut -c1-12)"
ks_bin="${dir}/kstatus-${ks_hash}"
if [[ "${1:-}" == "kstatus" && -x "${ks_bin}" ]]; then
  echo "kstatus=${ks_bin}"
  exit 0
fi

exec 9>"${dir}/.build.lock"
if ! flock -n 9; then
  log "another build holds ${dir}/.build.lock; waiting for it"
  flock 9
fi
trap 'exit 130' INT
trap 'exit 143' TERM
rm -rf "${dir}"/*.tmp.*

find_go() {
  if [[ -n "${GO:-}" ]]; then echo "${GO}"; return; fi
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  log "no Go toolchain found (set GO or put go on PATH)"; exit 1
}

# build_controller <name> <version> [<go mod edit args>...]
# Into <dir>/<name>-<version>/{<name>,crds/}: built in a temp directory, renamed into
# place when complete, so a half-built one is never found under the final name.
build_controller() {
  local name="$1" version="$2"; shift 2
  local out="${dir}/${name}-${version}"
  if [[ -x "${out}/${name}" ]]; then
    log "${name}: cached (${out})"
    return
  fi
  local go; go="$(find_go)"
  local tmp="${out}.tmp.$$"
  local start; start="$(now_ms)"
  log "${name} ${version}: downloading and building with $("${go}" version) (minutes)"
  trap "rm -rf '${tmp}'" EXIT
  mkdir -p "${tmp}"
  local src
  src="$("${go}" mod download -json "github.com/fluxcd/${name}@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "${src}" ]] || { log "${name}: go mod download gave no module directory"; exit 1; }
  cp -r "${src}" "${tmp}/src"
  chmod -R u+w "${tmp}/src"
  sed -i '/^replace .*=> \.\/api/d' "${tmp}/src/go.mod"
  if [[ $# -gt 0 ]]; then (cd "${tmp}/src" && "${go}" mod edit "$@"); fi
  # In the background plus `wait`: a signal stops the build now, not when it ends.
  # Plain flags (no -trimpath, the default CGO setting): the Go build cache then serves
  # every dependency a previous plain `go build` of the same module compiled.
  (cd "${tmp}/src" && GOFLAGS="-mod=mod" exec nice -n 10 "${go}" build -ldflags "-s -w" -o "${tmp}/${name}" .) &
  local pid=$!
  trap "kill -TERM ${pid} 2>/dev/null || true; rm -rf '${tmp}'" EXIT
  wait "${pid}"
  cp -r "${tmp}/src/config/crd/bases" "${tmp}/crds"
  rm -rf "${tmp}/src"
  rm -rf "${out}"
  mv "${tmp}" "${out}"
  trap - EXIT
  log "${name}: built in $(secs_since "${start}")"
}

# kstatus (hack/kstatus): the status rules Flux runs, as a command; seconds to build.
# Named after a hash of its sources, so editing it or bumping a module rebuilds.
if [[ -x "${ks_bin}" ]]; then
  log "kstatus: cached (${ks_bin})"
else
  go="$(find_go)"
  start="$(now_ms)"
  (cd "${ks_src}" && GOFLAGS="-mod=readonly" exec "${go}" build -ldflags "-s -w" -o "${ks_bin}.tmp.$$" .)
  mv -f "${ks_bin}.tmp.$$" "${ks_bin}"
  log "kstatus: built in $(secs_since "${start}")"
fi
echo "kstatus=${ks_bin}"
# `build-flux.sh kstatus`: that tool only (a test of the rules needs no controllers).
if [[ "${1:-}" == "kstatus" ]]; then exit 0; fi

# One after the other: two Go builds at once would starve a 2-core machine.
build_controller source-controller "${SOURCE_CONTROLLER_VERSION}" \
  -replace "github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@${SOURCE_ARTIFACT_PIN}"
build_controller kustomize-controller "${KUSTOMIZE_CONTROLLER_VERSION}"

echo "source-controller=${dir}/source-controller-${SOURCE_CONTROLLER_VERSION}/source-controller"
echo "source-controller-crds=${dir}/source-controller-${SOURCE_CONTROLLER_VERSION}/crds"
echo "kustomize-controller=${dir}/kustomize-controller-${KUSTOMIZE_CONTROLLER_VERSION}/kustomize-controller"
echo "kustomize-controller-crds=${dir}/kustomize-controller-${KUSTOMIZE_CONTROLLER_VERSION}/crds"
