#!/usr/bin/env bash
# `make k8s-test`: the two-node cluster of tests/k8s/cluster.py and every
# scenario of tests/k8s/test_*.py against it, with real kubectl and helm.
#   tests/k8s/run.sh [pytest args]   e.g. -k rollout
#   K8S_KEEP=1 tests/k8s/run.sh      leave the cluster up afterwards
#   tests/k8s/run.sh --down          remove a cluster K8S_KEEP=1 left up
set -euo pipefail
cd "$(dirname "$0")/../.."
python=build/tools/venv/bin/python
if [ "${1:-}" = --down ]; then exec "$python" tests/k8s/cluster.py down build/k8s; fi
if [ "$(id -u)" != 0 ]; then echo "k8s-test: needs root (network and mount namespaces, cgroups)" >&2; exit 1; fi
scripts/debian-extras.sh etcd
tests/k8s/build.sh >/dev/null
status=0
"$python" -m pytest -v -p no:cacheprovider --durations=0 tests/k8s "$@" || status=$?
if [ "${K8S_KEEP:-}" = 1 ] && [ -f build/k8s/state.json ]; then
  netns=$("$python" -c 'import json; print(json.load(open("build/k8s/state.json"))["netns"])')
  kubectl=$("$python" -c 'import json; print(json.load(open("build/k8s/state.json"))["bin"])')/kubectl
  echo "k8s-test: K8S_KEEP=1: the cluster stays up in the network namespace $netns:"
  echo "  export KUBECONFIG=$PWD/build/k8s/admin.kubeconfig"
  echo "  nsenter --net=/run/netns/$netns $kubectl get pods -A"
  echo "remove it with: tests/k8s/run.sh --down"
fi
exit "$status"
