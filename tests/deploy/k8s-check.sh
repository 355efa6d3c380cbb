#!/usr/bin/env bash
# Checks the Kubernetes manifests without a cluster: `kubectl kustomize` renders each overlay,
# every object validates against the Kubernetes schemas (the oldest release the manifests need,
# 1.27 for gRPC probes, and the newest), and k8s_check.py checks what schemas can't (probes,
# resources, security contexts, scaling, disruption budgets, network policies, grace periods).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
here="$repo/tests/deploy"

python3 -m venv --help >/dev/null 2>&1 || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
}
venv="${CHARLA_DEPLOY_VENV:-$HOME/.cache/charla/deploy-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"

rendered=$(mktemp -d /tmp/charla-k8s.XXXXXX)
trap 'rm -rf "$rendered"' EXIT
# Secrets that the prod overlay references and the operator creates (k8s/overlays/prod).
declare -A external=([dev]="" [prod]="charla-database charla-auth")
for overlay in dev prod; do
  "$venv/bin/kubectl" kustomize "$repo/k8s/overlays/$overlay" >"$rendered/$overlay.yaml"
  for version in 1.27.0 1.37.0; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered/$overlay.yaml"
  done
  echo "  $overlay: renders, and every object validates against Kubernetes 1.27 and 1.37"
  # shellcheck disable=SC2086 # a list of names
  "$venv/bin/python" "$here/k8s_check.py" "$overlay" "$rendered/$overlay.yaml" ${external[$overlay]}
done
