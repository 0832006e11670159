#!/usr/bin/env bash
# `make deploy` / `make undeploy`: config/ (kustomize) to the current kubectl context.
#
#   hack/chart/deploy.sh apply  IMAGE   server-side apply of config/ with the controller image IMAGE
#   hack/chart/deploy.sh render IMAGE   print what apply would apply
#   hack/chart/deploy.sh delete         remove the controller, its RBAC and admission policy;
#                                       the CRDs (and so every Runbook, AlertPolicy and
#                                       RemediationRequest) and the namespace (the ledger, the
#                                       intake token Secret) stay
#
# Environment: KUBECTL (default kubectl), DRY_RUN (server or client: apply as a dry run).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
kubectl="${KUBECTL:-kubectl}"
chart_image="ghcr.io/remediator-dev/remediator"

usage() { echo "usage: $0 apply IMAGE | render IMAGE | delete" >&2; exit 2; }

# A throwaway overlay over a copy of config/ that only swaps the image: kustomize's
# images transformer, so the Deployment keeps everything else the chart rendered.
overlay() {
  local image="$1" name tag digest
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' EXIT
  cp -r "${repo}/config" "${tmp}/config"
  if [[ "${image}" == *@* ]]; then
    name="${image%@*}"; digest="${image#*@}"; tag=""
  elif [[ "${image##*/}" == *:* ]]; then
    name="${image%:*}"; tag="${image##*:}"; digest=""
  else
    name="${image}"; tag="latest"; digest=""
  fi
  {
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources: [config]"
    echo "images:"
    echo "  - name: ${chart_image}"
    echo "    newName: ${name}"
    if [[ -n "${digest}" ]]; then echo "    digest: ${digest}"; else echo "    newTag: \"${tag}\""; fi
  } > "${tmp}/kustomization.yaml"
}

case "${1:-}" in
  apply)
    [[ $# -eq 2 ]] || usage
    overlay "$2"
    args=(apply --server-side --field-manager=remediator-deploy -k "${tmp}")
    [[ -n "${DRY_RUN:-}" ]] && args+=("--dry-run=${DRY_RUN}")
    "${kubectl}" "${args[@]}"
    ;;
  render)
    [[ $# -eq 2 ]] || usage
    overlay "$2"
    "${kubectl}" kustomize "${tmp}"
    ;;
  delete)
    [[ $# -eq 1 ]] || usage
    # Admission first (so nothing is refused on the way out), then the controller, then
    # the cluster-wide RBAC. config/crd is left alone on purpose, and so is the namespace:
    # it holds the execution ledger (cooldowns, rate limits, open circuit breakers) and
    # the intake token Secret, which a later deploy must find again.
    "${kubectl}" delete --ignore-not-found -k "${repo}/config/admission"
    for f in "${repo}"/config/manager/*.yaml; do
      case "${f##*/}" in kustomization.yaml | namespace_*) continue ;; esac
      "${kubectl}" delete --ignore-not-found -f "${f}"
    done
    "${kubectl}" delete --ignore-not-found -k "${repo}/config/rbac"
    echo "CRDs and namespace remediator-system (the execution ledger, the intake token Secret) kept." >&2
    echo "To remove them too: ${kubectl} delete -f ${repo}/config/crd/bases (every Runbook, AlertPolicy and RemediationRequest) and ${kubectl} delete namespace remediator-system" >&2
    ;;
  *) usage ;;
esac
