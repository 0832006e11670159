#!/usr/bin/env bash
# Builds, once, the tools that test what the repository ships besides the controller:
#   promtool      from github.com/prometheus/prometheus (the chart's PrometheusRule is
#                 checked and unit-tested with `promtool check rules` / `test rules`)
#   argocd-lua    hack/argocd-lua, which runs Argo CD health scripts with gopher-lua,
#                 the Lua 5.1 interpreter Argo CD embeds
# into <cache>/testbed/tools/, beside the test bed's binaries (hack/testbed/build.sh).
# A subdirectory with its own lock: build.sh sweeps `<cache>/testbed/*.tmp.*` when it
# starts, and must not delete this script's half-built files, nor wait ~12 minutes for
# promtool when it only needs etcd.
#
# stdout carries only `name=/absolute/path` lines (test/testbed/extra-tools.ts parses
# them); progress and timings go to stderr. `make testbed` runs it, so CI pays the cold
# build (about 12 minutes for promtool on 2 cores) before the tests start.
#
# Environment: REMEDIATOR_CACHE_DIR and GO, as for build.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${here}/../.." && pwd)"
tools="${REMEDIATOR_CACHE_DIR:-${HOME}/.cache/remediator}/testbed/tools"
mkdir -p "${tools}"

# One place to bump: the cache file name follows it, so a bump rebuilds.
PROMTOOL_VERSION=v0.316.0

log() { printf 'testbed-tools: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
secs_since() { local t=$(( $(now_ms) - $1 )); printf '%d.%03ds' $(( t / 1000 )) $(( t % 1000 )); }

exec 9>"${tools}/.build.lock"
if ! flock -n 9; then
  log "another build holds ${tools}/.build.lock; waiting for it"
  flock 9
fi
trap 'exit 130' INT
trap 'exit 143' TERM
rm -rf "${tools}"/*.tmp.*

find_go() {
  if [[ -n "${GO:-}" ]]; then echo "${GO}"; return; fi
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  log "no Go toolchain found (set GO or put go on PATH)"; exit 1
}

# Runs a build command in the background and waits, so a signal stops it at once (bash
# defers a trapped signal until a foreground child ends); the temp path is removed on
# failure and renamed into place on success.
build_into() { # <name> <output> <tmp> <command...>
  local name="$1" out="$2" tmp="$3"; shift 3
  local start; start="$(now_ms)"
  log "${name}: building (minutes on a cold Go cache)"
  ("$@") &
  local pid=$!
  trap "kill -TERM ${pid} 2>/dev/null || true; rm -rf '${tmp}'" EXIT
  wait "${pid}"
  trap - EXIT
  log "${name}: built in $(secs_since "${start}")"
}

# argocd-lua first: seconds to build, where promtool takes minutes.
# Named after a hash of its sources, so editing main.go or bumping gopher-lua rebuilds.
lua_src="${repo}/hack/argocd-lua"
lua_hash="$(cat "${lua_src}/go.mod" "${lua_src}/go.sum" "${lua_src}/main.go" | sha256sum | cut -c1-12)"
lua_bin="${tools}/argocd-lua-${lua_hash}"
if [[ -x "${lua_bin}" ]]; then
  log "argocd-lua: cached (${lua_bin})"
else
  go="$(find_go)"
  tmp="${lua_bin}.tmp.$$"
  build_into argocd-lua "${lua_bin}" "${tmp}" bash -c 'cd "$1" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
    exec "$2" build -trimpath -ldflags "-s -w" -o "$3" .' _ "${lua_src}" "${go}" "${tmp}"
  mv -f "${tmp}" "${lua_bin}"
fi

promtool_bin="${tools}/promtool-${PROMTOOL_VERSION}"
if [[ -x "${promtool_bin}" ]]; then
  log "promtool: cached (${promtool_bin})"
else
  go="$(find_go)"
  tmp="${tools}/promtool.tmp.$$"
  mkdir -p "${tmp}"
  # `go install pkg@version` builds with Prometheus's own go.mod and go.sum: the
  # versions it pins are the ones it was released and tested with.
  build_into promtool "${promtool_bin}" "${tmp}" env GOBIN="${tmp}" CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" \
    "${go}" install -trimpath -ldflags "-s -w" "github.com/prometheus/prometheus/cmd/promtool@${PROMTOOL_VERSION}"
  mv -f "${tmp}/promtool" "${promtool_bin}"
  rm -rf "${tmp}"
fi

echo "promtool=${promtool_bin}"
echo "argocd-lua=${lua_bin}"
