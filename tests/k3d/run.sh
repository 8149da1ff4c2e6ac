#!/usr/bin/env bash
# `make k3d-test`: wasmhttp in a real (k3d) cluster, both install paths.
#   1. prebuilt node image: k3s with the static shim and the containerd
#      template baked in (built by the node installer itself);
#   2. stock k3s + `helm install charts/wasmhttp` (the installer DaemonSet).
# For each: apply the RuntimeClass and the hello-js example, wait for Ready,
# fetch through k3d's load balancer on 127.0.0.1, delete a pod (gone within
# 10 s), scale to 5 and fetch from every replica, then delete the cluster.
# Needs a Docker engine and k3d; stops at once without them. Every wait is
# bounded; every step is announced. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-wasmhttp-k3d-test}
K3S_IMAGE=${K3S_IMAGE:-docker.io/rancher/k3s:v1.31.5-k3s1}
NODE_IMAGE=wasmhttp/k3s-node:test
INSTALLER_IMAGE=docker.io/wasmhttp/node-installer:test
LB_PORT=${LB_PORT:-18080}
KUBECTL=${KUBECTL:-build/tools/bin/kubectl}
HELM=${HELM:-build/tools/bin/helm}

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'k3d-test: FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local status=$?
  if k3d cluster list "$CLUSTER" >/dev/null 2>&1; then
    step "deleting cluster $CLUSTER"
    k3d cluster delete "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}

step "checking prerequisites"
command -v docker >/dev/null || fail "docker is not installed; this suite needs a Docker engine and k3d"
docker info >/dev/null 2>&1 || fail "no Docker engine answers ('docker info' fails); this suite needs one"
command -v k3d >/dev/null || fail "k3d is not installed (https://k3d.io); this suite needs it"
# `make k3d-test` asks this first, so that nothing is built for nothing
if [ "${1:-}" = --preflight ]; then echo "docker and k3d: ok"; exit 0; fi
if [ ! -x "$KUBECTL" ] || [ ! -x "$HELM" ]; then
  fail "kubectl/helm missing under build/tools/bin: run 'make setup'"
fi
for artefact in build/static/containerd-shim-wasmhttp-v1 build/static/wasmhttp-node-installer \
                examples/hello-js/build/hello-js.tar; do
  [ -f "$artefact" ] || fail "$artefact is missing: run 'make examples static'"
done
WORK=$(mktemp -d)
export KUBECONFIG=$WORK/kubeconfig
trap cleanup EXIT

# waits up to $1 seconds for the command in the remaining arguments to succeed
wait_for() {
  local limit=$1; shift
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 2
  done
}

hello_through_lb() {
  curl -fsS --max-time 5 "http://127.0.0.1:$LB_PORT/" | grep -q "Hello"
}

exercise_cluster() {
  step "importing the hello-js image into the cluster"
  k3d image import -c "$CLUSTER" examples/hello-js/build/hello-js.tar

  step "applying the RuntimeClass, hello-js and a LoadBalancer service"
  "$KUBECTL" apply -f deploy/runtimeclass.yaml -f examples/hello-js/k8s.yaml -f tests/k3d/hello-js-lb.yaml

  step "waiting for hello-js to be Ready (up to 180 s)"
  "$KUBECTL" rollout status deployment/hello-js --timeout=180s \
    || { "$KUBECTL" describe pods -l app=hello-js; fail "hello-js did not become Ready"; }

  step "fetching through the load balancer at 127.0.0.1:$LB_PORT (up to 60 s)"
  wait_for 60 hello_through_lb || fail "no Hello through the load balancer"

  step "deleting a pod: it must be gone within 10 s"
  local pod
  pod=$("$KUBECTL" get pods -l app=hello-js -o jsonpath='{.items[0].metadata.name}')
  "$KUBECTL" delete pod "$pod" --wait=false
  local started=$SECONDS
  wait_for 10 bash -c "! '$KUBECTL' get pod '$pod'" || fail "pod $pod still exists after 10 s"
  echo "pod $pod gone after $((SECONDS - started)) s"

  step "scaling to 5 replicas (up to 180 s)"
  "$KUBECTL" scale deployment/hello-js --replicas=5
  "$KUBECTL" rollout status deployment/hello-js --timeout=180s || fail "5 replicas did not become Ready"

  step "fetching from every replica through port-forward on 127.0.0.1"
  local port=19100 name
  for name in $("$KUBECTL" get pods -l app=hello-js -o jsonpath='{.items[*].metadata.name}'); do
    "$KUBECTL" port-forward --address 127.0.0.1 "pod/$name" "$port:8080" >/dev/null 2>&1 &
    local forward=$!
    if ! wait_for 30 bash -c "curl -fsS --max-time 5 http://127.0.0.1:$port/ | grep -q Hello"; then
      kill "$forward" 2>/dev/null || true
      fail "replica $name does not answer"
    fi
    kill "$forward" 2>/dev/null || true
    wait "$forward" 2>/dev/null || true
    echo "replica $name answers"
    port=$((port + 1))
  done
}

nodes_ready_for_wasmhttp() {
  local all labelled
  all=$("$KUBECTL" get nodes --no-headers | wc -l)
  labelled=$("$KUBECTL" get nodes -l wasmhttp.dev/ready=true --no-headers | wc -l)
  [ "$all" -gt 0 ] && [ "$all" = "$labelled" ]
}

# --- 1. prebuilt node image -------------------------------------------------
step "building the k3s node image with the shim and the containerd template"
node_root=$WORK/node
mkdir -p "$node_root/var/lib/rancher/k3s/agent/etc/containerd"
# k3s 1.31 generates a version 2 config; the installer writes the template
# that extends it, exactly as it would on a live node
echo 'version = 2' > "$node_root/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
build/static/wasmhttp-node-installer install --host-root "$node_root" --flavour k3s \
  --restart never --shim build/static/containerd-shim-wasmhttp-v1
rm "$node_root/var/lib/rancher/k3s/agent/etc/containerd/config.toml"
docker build -q -t "$NODE_IMAGE" --build-arg "K3S_IMAGE=$K3S_IMAGE" -f tests/k3d/node.Dockerfile "$node_root"

step "creating cluster $CLUSTER from the node image (up to 180 s)"
k3d cluster create "$CLUSTER" --image "$NODE_IMAGE" --agents 1 \
  --port "$LB_PORT:8080@loadbalancer" \
  --k3s-node-label "wasmhttp.dev/ready=true@server:*;agent:*" \
  --wait --timeout 180s
k3d kubeconfig get "$CLUSTER" > "$KUBECONFIG"
exercise_cluster
step "deleting cluster $CLUSTER"
k3d cluster delete "$CLUSTER"

# --- 2. stock k3s + Helm chart ----------------------------------------------
step "building the node installer image"
docker build -q -t "$INSTALLER_IMAGE" -f deploy/installer.Dockerfile .

step "creating cluster $CLUSTER from stock k3s (up to 180 s)"
k3d cluster create "$CLUSTER" --image "$K3S_IMAGE" --agents 1 \
  --port "$LB_PORT:8080@loadbalancer" --wait --timeout 180s
k3d kubeconfig get "$CLUSTER" > "$KUBECONFIG"
k3d image import -c "$CLUSTER" "$INSTALLER_IMAGE"

step "helm install charts/wasmhttp (the installer restarts each k3s node once)"
"$HELM" install wasmhttp charts/wasmhttp --namespace kube-system \
  --set image.tag=test --set image.pullPolicy=Never --set installer.flavour=k3s

step "waiting until every node is labelled wasmhttp.dev/ready=true (up to 300 s)"
# k3d nodes come back by their restart policy after the installer's SIGTERM;
# the API server may be briefly away meanwhile, so this only polls
wait_for 300 nodes_ready_for_wasmhttp \
  || { "$KUBECTL" -n kube-system logs -l app.kubernetes.io/name=wasmhttp-installer --tail=50 || true
       fail "not every node was labelled ready"; }
exercise_cluster

step "helm uninstall: the nodes are unlabelled (up to 300 s)"
"$HELM" uninstall wasmhttp --namespace kube-system --wait --timeout 300s
nodes_unlabelled() { [ "$("$KUBECTL" get nodes -l wasmhttp.dev/ready=true --no-headers | wc -l)" = 0 ]; }
wait_for 300 nodes_unlabelled || fail "nodes are still labelled after helm uninstall"

step "k3d-test: both install paths passed"
