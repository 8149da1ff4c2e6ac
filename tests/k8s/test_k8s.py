"""wasmhttp on a real two-node Kubernetes cluster (tests/k8s/cluster.py),
driven with kubectl and helm from the repository's own chart, manifests and
examples. The scenarios build on each other and run in this file's order:
the chart is installed first and uninstalled last."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from cluster import ROOT, eventually, run
from conftest import TOOLS_IMAGE

NODE_A, NODE_B = "node-a", "node-b"
POOL_LABEL = "wasmhttp.test/pool"
READY_LABEL = "wasmhttp.dev/ready"
RELEASE, RELEASE_NAMESPACE = "wasmhttp", "wasmhttp-system"
LOAD = Path(__file__).parent / "load.py"


# -- helpers --------------------------------------------------------------------
def apply(cluster, manifest: str):
    return cluster.kubectl("apply", "-f", "-", input=manifest)


def rollout(cluster, deployment: str, timeout: int = 240):
    cluster.kubectl("rollout", "status", f"deployment/{deployment}", f"--timeout={timeout}s",
                    timeout=timeout + 30)


def pods(cluster, selector: str, namespace: str = "default") -> list:
    return cluster.json("get", "pods", "-n", namespace, "-l", selector)["items"]


def service_url(cluster, service: str, path: str = "/") -> str:
    ip = cluster.kubectl("get", "service", service, "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
    assert ip, f"service {service} has no cluster IP"
    return f"http://{ip}{path}"


def events(cluster, name: str, namespace: str = "default") -> list:
    return cluster.json("get", "events", "-n", namespace,
                        "--field-selector", f"involvedObject.name={name}")["items"]


def node_labels(cluster, node: str) -> dict:
    return cluster.json("get", "node", node)["metadata"].get("labels", {})


def start_load(cluster, url: str, seconds: float, workers: int = 4, pause_ms: float = 20):
    return subprocess.Popen(cluster.inside([sys.executable, LOAD, url, "--seconds", str(seconds),
                                            "--workers", str(workers), "--pause-ms", str(pause_ms)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_load(process, timeout: float = 30) -> dict:
    """Ends a load early (SIGTERM) and returns its counts."""
    process.send_signal(signal.SIGTERM)
    return load_result(process, timeout)


def load_result(process, timeout: float) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"the load generator failed: {err}"
    return json.loads(out)


def described_once_it_says(cluster, pod: str, text: str, timeout: float) -> str:
    """`kubectl describe pod`, once it shows `text` (an event, a status)."""
    def said():
        described = cluster.kubectl("describe", "pod", pod).stdout
        return described if text in described else None
    return eventually(f"kubectl describe pod {pod} says {text!r}", said, timeout, 2)


def wait_answer(cluster, url: str, expected: str, timeout: float = 60) -> str:
    def answered():
        result = cluster.curl(url, check=False, timeout=15)
        return result.stdout if expected in result.stdout else None
    return eventually(f"{url} answers with {expected!r}", answered, timeout, 1)


def example(name: str) -> str:
    return (ROOT / f"examples/{name}/k8s.yaml").read_text()


def shim_in(node) -> Path:
    return node.dir / "opt/wasmhttp/bin/containerd-shim-wasmhttp-v1"


# -- the chart --------------------------------------------------------------------
def test_helm_install_puts_the_shim_on_the_selected_node_only(cluster):
    a, b = cluster.nodes
    config_a_before = (a.dir / "etc-containerd/config.toml").read_text()
    config_b_before = (b.dir / "etc-containerd/config.toml").read_text()
    cluster.config_before = {NODE_A: config_a_before, NODE_B: config_b_before}
    cluster.kubectl("label", "node", NODE_A, f"{POOL_LABEL}=wasm")
    cluster.helm("install", RELEASE, ROOT / "charts/wasmhttp", "--namespace", RELEASE_NAMESPACE,
                 "--create-namespace", "--set", "installer.restart=signal",
                 "--set-json", f"nodeSelector={json.dumps({POOL_LABEL: 'wasm'})}",
                 "--wait", "--timeout", "3m")

    installers = pods(cluster, "app.kubernetes.io/name=wasmhttp-installer", RELEASE_NAMESPACE)
    assert [p["spec"]["nodeName"] for p in installers] == [NODE_A], installers
    eventually("node-a is labelled ready", lambda: node_labels(cluster, NODE_A).get(READY_LABEL) == "true", 90)

    def installer_said() -> bool:
        # (the kubelet cannot read logs for a moment while containerd restarts)
        log = cluster.kubectl("logs", "-n", RELEASE_NAMESPACE, installers[0]["metadata"]["name"]).stdout
        return "restarted containerd" in log and f"labelled node {NODE_A}" in log
    eventually("the installer's log says what it did", installer_said, 30)
    # the harness, as systemd, brought node A's containerd back; B's never stopped
    assert a.containerd.restarts() >= 1 and b.containerd.restarts() == 0
    config_a = (a.dir / "etc-containerd/config.toml").read_text()
    assert 'runtimes.wasmhttp]' in config_a and 'io.containerd.wasmhttp.v1' in config_a, config_a
    assert shim_in(a).read_bytes() == (ROOT / "build/static/containerd-shim-wasmhttp-v1").read_bytes()
    # node B: untouched and unlabelled
    assert (b.dir / "etc-containerd/config.toml").read_text() == config_b_before
    assert not shim_in(b).exists()
    assert READY_LABEL not in node_labels(cluster, NODE_B)
    # what deploy/ says is what the chart installed
    assert cluster.kubectl("diff", "-f", ROOT / "deploy/runtimeclass.yaml", check=False).returncode == 0


# -- scheduling, probes, serving ------------------------------------------------------
def test_runtimeclass_schedules_wasm_pods_where_the_shim_is(cluster):
    apply(cluster, example("hello-js"))
    rollout(cluster, "hello-js")
    cluster.kubectl("scale", "deployment/hello-js", "--replicas=4")
    rollout(cluster, "hello-js")
    running = pods(cluster, "app=hello-js")
    assert len(running) == 4
    for pod in running:
        assert pod["spec"]["nodeName"] == NODE_A, pod["metadata"]["name"]
        # Ready through the kubelet's probes on the admin port
        ready = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", pod["status"]
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, pod["status"]

    apply(cluster, f"""
apiVersion: v1
kind: Pod
metadata: {{name: wasm-on-b}}
spec:
  runtimeClassName: wasmhttp
  nodeSelector: {{kubernetes.io/hostname: {NODE_B}}}
  containers:
    - {{name: app, image: docker.io/library/hello-js:latest, imagePullPolicy: Never}}
""")

    def refused():
        return [e for e in events(cluster, "wasm-on-b") if e["reason"] == "FailedScheduling"]
    event = eventually("the pod pinned to node-b is refused by the scheduler", refused, 60)[0]
    assert "didn't match Pod's node affinity/selector" in event["message"], event["message"]
    assert cluster.json("get", "pod", "wasm-on-b")["status"]["phase"] == "Pending"
    cluster.kubectl("delete", "pod", "wasm-on-b", "--wait=false")


def test_serving_through_the_service_port_forward_and_a_pod(cluster):
    url = service_url(cluster, "hello-js", "/through-the-service")
    assert "You asked for /through-the-service" in wait_answer(cluster, url, "Hello from JavaScript")

    forward = subprocess.Popen(cluster.inside([cluster.bin / "kubectl", "--kubeconfig", cluster.admin,
                                               "port-forward", "service/hello-js", "18080:80"]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_answer(cluster, "http://127.0.0.1:18080/forwarded", "You asked for /forwarded", 30)
    finally:
        forward.terminate()
        forward.wait(10)

    ip = service_url(cluster, "hello-js").split("/")[2]
    request = r"printf 'GET /from-a-pod HTTP/1.1\\r\\nHost: hello-js\\r\\nConnection: close\\r\\n\\r\\n'"
    apply(cluster, f"""
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  restartPolicy: Never
  nodeSelector: {{kubernetes.io/hostname: {NODE_B}}}
  containers:
    - name: wget
      image: {TOOLS_IMAGE}
      imagePullPolicy: Never
      # Debian's static busybox wget crashes, so nc speaks the HTTP; its
      # stdin stays open until the answer is in (nc stops reading at its EOF)
      command: ["/bin/busybox", "sh", "-c", "({request}; sleep 5) | /bin/busybox nc -w 10 {ip} 80"]
""")
    eventually("the client pod finishes",
               lambda: cluster.json("get", "pod", "client")["status"]["phase"] in ("Succeeded", "Failed"), 60)
    client_log = cluster.kubectl("logs", "client").stdout
    assert cluster.json("get", "pod", "client")["status"]["phase"] == "Succeeded", client_log
    assert "You asked for /from-a-pod" in client_log, client_log
    cluster.kubectl("delete", "pod", "client", "--wait=false")

    # the guest's console.log reaches `kubectl logs` (one of the pods served it)
    def logged():
        return any("hello-js: GET /through-the-service" in cluster.kubectl("logs", p["metadata"]["name"]).stdout
                   for p in pods(cluster, "app=hello-js"))
    eventually("kubectl logs shows the guest's line", logged, 30)

    # what metrics-server and `kubectl top` read
    def stats():
        summary = json.loads(cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE_A}/proxy/stats/summary").stdout)
        found = [c for p in summary["pods"] if p["podRef"]["name"].startswith("hello-js-")
                 for c in p.get("containers", []) if c["name"] == "hello-js"]
        ok = [c for c in found if c.get("cpu", {}).get("usageCoreNanoSeconds", 0) > 0
              and c.get("memory", {}).get("workingSetBytes", 0) > 0]
        return ok if len(ok) == 4 else None
    eventually("/stats/summary has CPU and memory for every hello-js container", stats, 60, 2)


def test_rolling_update_under_load_fails_no_request(cluster):
    load = start_load(cluster, service_url(cluster, "hello-js", "/during-rollout"), seconds=60)
    time.sleep(3)
    cluster.kubectl("set", "env", "deployment/hello-js", "ROLLOUT=2")
    rollout(cluster, "hello-js", 120)
    result = load_result(load, 120)
    assert result["sent"] > 100, result
    assert result["errors"] == {} and set(result["statuses"]) == {"200"}, result
    assert all(p["spec"]["containers"][0]["env"][-1] == {"name": "ROLLOUT", "value": "2"}
               for p in pods(cluster, "app=hello-js"))


def test_deleting_a_pod_finishes_its_requests_and_exits_0(cluster):
    pod = pods(cluster, "app=hello-js")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    watch = subprocess.Popen(cluster.inside([cluster.bin / "kubectl", "--kubeconfig", cluster.admin, "get",
                                             "pod", name, "--watch", "-o", "json"]),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    slow = start_load(cluster, f"http://{ip}:8080/in-flight?sleep=3000", seconds=1, workers=4, pause_ms=0)
    time.sleep(1)
    started = time.monotonic()
    cluster.kubectl("delete", "pod", name, "--wait=false")
    eventually(f"{name} is gone", lambda: cluster.kubectl("get", "pod", name, check=False).returncode != 0,
               grace + 10, 0.5)
    gone_after = time.monotonic() - started
    result = load_result(slow, 30)
    assert result["errors"] == {} and result["statuses"] == {"200": 4}, result
    assert gone_after < grace, f"{name} took {gone_after:.1f} s, its grace period is {grace} s"
    watch.terminate()
    seen, _ = watch.communicate(timeout=10)
    exits = [int(m) for m in re.findall(r'"exitCode":\s*(\d+)', seen)]
    assert exits and set(exits) == {0}, f"exit codes seen while the pod ended: {exits}"


def container_state(cluster, selector: str) -> dict:
    """pod name -> (its app container's restart count, container ID)."""
    return {p["metadata"]["name"]: (p["status"]["containerStatuses"][0]["restartCount"],
                                    p["status"]["containerStatuses"][0].get("containerID"))
            for p in pods(cluster, selector)}


def test_pods_serve_on_while_the_kubelet_restarts_and_are_adopted(cluster):
    node = cluster.nodes[0]
    before = container_state(cluster, "app=hello-js")
    load = start_load(cluster, service_url(cluster, "hello-js", "/kubelet-restart"), seconds=25)
    time.sleep(3)
    node.kubelet.stop()
    time.sleep(5)
    node.kubelet.start()
    result = load_result(load, 120)
    assert result["sent"] > 100, result
    assert result["errors"] == {} and set(result["statuses"]) == {"200"}, result
    eventually(f"{node.name} is Ready again", lambda: cluster._ready(node.name), 60, 1)
    rollout(cluster, "hello-js")
    # the same containers, not restarted: the kubelet adopted them
    assert container_state(cluster, "app=hello-js") == before


def test_a_containerd_restart_under_load_fails_no_request(cluster):
    node = cluster.nodes[0]
    before = container_state(cluster, "app=hello-js")
    restarts = node.containerd.restarts()
    load = start_load(cluster, service_url(cluster, "hello-js", "/containerd-restart"), seconds=20)
    time.sleep(3)
    # containerd itself, not its supervisor, which starts it again
    daemon = run(["pgrep", "-P", str(node.containerd.process.pid), "-x", "containerd"]).stdout.split()
    assert len(daemon) == 1, daemon
    os.kill(int(daemon[0]), signal.SIGTERM)
    eventually("containerd is restarted", lambda: node.containerd.restarts() > restarts, 30, 0.5)
    eventually("containerd answers again", lambda: node.ctr("version", check=False).returncode == 0, 60, 1)
    result = load_result(load, 120)
    assert result["sent"] > 100, result
    assert result["errors"] == {} and set(result["statuses"]) == {"200"}, result
    assert container_state(cluster, "app=hello-js") == before


def test_a_killed_shim_is_restarted_by_the_kubelet_and_serves_again(cluster):
    node = cluster.nodes[0]
    pod = pods(cluster, "app=hello-js")[0]
    name = pod["metadata"]["name"]
    container = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    info = json.loads(node.ctr("containers", "info", container).stdout)
    # containerd 2 records the pod's sandbox in the container itself
    sandbox = info.get("SandboxID") or info["Labels"].get("io.kubernetes.cri.sandbox-id")
    assert sandbox, info
    # the zygote and the containers' processes are forks of the shim, with its
    # command line: the shim is the one whose parent is not among them
    forks = run(["pgrep", "-f", f"containerd-shim-wasmhttp-v1 .*-id {sandbox}"], check=False).stdout.split()

    def parent(pid: str) -> str:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
    shims = [pid for pid in forks if parent(pid) not in forks]
    assert len(shims) == 1, f"processes of sandbox {sandbox}: {forks}, shims {shims}"
    os.kill(int(shims[0]), signal.SIGKILL)

    def restarted():
        status = cluster.json("get", "pod", name)["status"]
        counts = [c["restartCount"] for c in status.get("containerStatuses", [])]
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        return status if counts == [1] and ready else None
    status = eventually(f"{name} restarted once and Ready", restarted, 120, 1)
    assert "Hello from JavaScript" in cluster.curl(f"http://{status['podIP']}:8080/after-a-kill").stdout
    # nothing of the killed shim is left: its forks were cleaned up with it
    eventually(f"no process of the killed sandbox {sandbox} is left",
               lambda: run(["pgrep", "-f", f"containerd-shim-wasmhttp-v1 .*-id {sandbox}"],
                           check=False).returncode == 1, 30, 1)


def test_an_unrunnable_image_says_why_in_the_pod_events(cluster):
    import images
    archive = images.write_archive(cluster.dir / "broken.tar", "wasmhttp.test/broken:1",
                                   {"app.wasm": (b"\0asm\x0d\x00\x01\x00not a component", 0o644)},
                                   ["/app.wasm"])
    cluster.nodes[0].import_image(archive)
    apply(cluster, """
apiVersion: v1
kind: Pod
metadata: {name: broken}
spec:
  runtimeClassName: wasmhttp
  containers:
    - {name: app, image: "wasmhttp.test/broken:1", imagePullPolicy: Never}
""")

    described = described_once_it_says(cluster, "broken",
                                       "is not runnable: found a malformed WebAssembly component", 60)
    assert "Warning  Failed" in described, described
    cluster.kubectl("delete", "pod", "broken", "--wait=false")


def test_an_oom_killed_container_says_oomkilled_and_restarts(cluster):
    """A guest that grows its memory past the pod's limit (the instance limit
    set above it): the kernel OOM-kills the container, and the kubelet says
    OOMKilled (not Error) and restarts it, serving again."""
    apply(cluster, """
apiVersion: v1
kind: Pod
metadata: {name: grow}
spec:
  runtimeClassName: wasmhttp
  containers:
    - name: app
      image: "wasmhttp.test/grow-memory:1"
      imagePullPolicy: Never
      env: [{name: WASMHTTP_MAX_INSTANCE_MEMORY, value: 1Gi}]
      resources: {limits: {memory: 64Mi}}
      readinessProbe: {httpGet: {path: /readyz, port: 9090}, periodSeconds: 1}
""")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/grow", "--timeout=120s")
    ip = cluster.kubectl("get", "pod", "grow", "-o", "jsonpath={.status.podIP}").stdout.strip()
    # the kernel kills the container mid-request: no answer
    killed = cluster.curl(f"http://{ip}:8080/", check=False, timeout=35)
    assert killed.returncode != 0, killed.stdout

    def terminated():
        pod = cluster.json("get", "pod", "grow")
        statuses = pod["status"].get("containerStatuses", [])
        last = statuses[0].get("lastState", {}).get("terminated") if statuses else None
        return (statuses[0], last) if last else None
    status, last = eventually("the kubelet records the OOM kill", terminated, 60, 1)
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137), status
    assert status["restartCount"] >= 1, status
    described = cluster.kubectl("describe", "pod", "grow").stdout
    assert "OOMKilled" in described, described
    cluster.kubectl("wait", "--for=condition=Ready", "pod/grow", "--timeout=120s")
    cluster.kubectl("delete", "pod", "grow", "--wait=false")


def test_a_memory_limit_too_small_for_the_component_says_so(cluster):
    """The JavaScript example (a 37 MB precompiled layer) under 32Mi: the
    pod's events name the limit and what starting takes, not BrokenChannel."""
    apply(cluster, """
apiVersion: v1
kind: Pod
metadata: {name: js-small}
spec:
  runtimeClassName: wasmhttp
  containers:
    - name: app
      image: docker.io/library/hello-js:latest
      imagePullPolicy: Never
      resources: {limits: {memory: 32Mi}}
""")

    described = described_once_it_says(cluster, "js-small",
                                       "memory limit (32.0 MiB) cannot hold its component", 120)
    assert "resources.limits.memory" in described, described
    cluster.kubectl("delete", "pod", "js-small", "--wait=false")


def test_configmap_directory_and_secret_env_reach_the_guest(cluster):
    apply(cluster, f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: site}}
data: {{index.txt: "from a ConfigMap"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: app-secret}}
stringData: {{token: s3cr3t-value}}
---
apiVersion: v1
kind: Pod
metadata: {{name: files, labels: {{app: files}}}}
spec:
  runtimeClassName: wasmhttp
  containers:
    - name: files
      image: docker.io/library/files-py:latest
      imagePullPolicy: Never
      env: [{{name: WASMHTTP_LISTEN, value: "0.0.0.0:8080"}}]
      volumeMounts: [{{name: site, mountPath: /site, readOnly: true}}]
      readinessProbe: {{httpGet: {{path: /readyz, port: 9090}}, periodSeconds: 2}}
      resources: {{limits: {{memory: 256Mi}}}}
  volumes: [{{name: site, configMap: {{name: site}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: cgi-env, labels: {{app: cgi-env}}}}
spec:
  runtimeClassName: wasmhttp
  containers:
    - name: cgi
      image: docker.io/library/cgi-c:latest
      imagePullPolicy: Never
      env:
        - {{name: WASMHTTP_MODE, value: cgi}}
        - {{name: WASMHTTP_LISTEN, value: "0.0.0.0:8080"}}
        - name: APP_TOKEN
          valueFrom: {{secretKeyRef: {{name: app-secret, key: token}}}}
      readinessProbe: {{httpGet: {{path: /readyz, port: 9090}}, periodSeconds: 2}}
""")
    for name in ("files", "cgi-env"):
        cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=180s", timeout=200)
    files_ip = cluster.json("get", "pod", "files")["status"]["podIP"]
    assert cluster.curl(f"http://{files_ip}:8080/site/index.txt").stdout == "from a ConfigMap"
    # read-only as Kubernetes mounted it
    refused = cluster.curl(f"http://{files_ip}:8080/site/new.txt", "-X", "PUT", "--data", "x",
                           "-o", "/dev/null", "-w", "%{http_code}").stdout
    assert refused.startswith(("4", "5")) and refused != "404", refused
    cgi_ip = cluster.json("get", "pod", "cgi-env")["status"]["podIP"]
    assert "APP_TOKEN=s3cr3t-value" in cluster.curl(f"http://{cgi_ip}:8080/request").stdout
    cluster.kubectl("delete", "pod", "files", "cgi-env", "--wait=false")


def test_a_native_sidecar_runs_beside_the_wasm_container(cluster):
    apply(cluster, f"""
apiVersion: v1
kind: Pod
metadata: {{name: with-sidecar}}
spec:
  runtimeClassName: wasmhttp
  initContainers:
    - name: sidecar
      image: {TOOLS_IMAGE}
      imagePullPolicy: Never
      restartPolicy: Always
      command: ["/bin/busybox", "httpd", "-f", "-p", "8081", "-h", "/bin"]
  containers:
    - name: app
      image: docker.io/library/hello-js:latest
      imagePullPolicy: Never
      env: [{{name: WASMHTTP_LISTEN, value: "0.0.0.0:8080"}}]
      readinessProbe: {{httpGet: {{path: /readyz, port: 9090}}, periodSeconds: 2}}
      resources: {{limits: {{memory: 256Mi}}}}
""")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/with-sidecar", "--timeout=120s", timeout=150)
    ip = cluster.json("get", "pod", "with-sidecar")["status"]["podIP"]
    assert "You asked for /beside-a-sidecar" in cluster.curl(f"http://{ip}:8080/beside-a-sidecar").stdout
    status = cluster.curl(f"http://{ip}:8081/busybox", "-o", "/dev/null", "-w", "%{http_code}").stdout
    assert status == "200", f"the sidecar's httpd answered {status}"


def test_kubectl_exec_says_why_it_cannot(cluster):
    for container in ("app", "sidecar"):
        result = cluster.kubectl("exec", "with-sidecar", "-c", container, "--", "/bin/busybox", "ls",
                                 check=False)
        assert result.returncode != 0, result.stdout
        assert "exec is not supported by the wasmhttp runtime: a WebAssembly container runs one " \
               "component and has no shell" in result.stderr, result.stderr
    cluster.kubectl("delete", "pod", "with-sidecar", "--wait=false")


# -- the examples as the repository has them ---------------------------------------------
EXAMPLE_ANSWERS = {
    "hello-js": ("/", 200, "Hello from JavaScript"),
    "hello-py": ("/", 200, "Hello from Python"),
    "service-py": ("/", 200, "Hello from Python on wasi:http 0.3"),
    "cgi-c": ("/", 200, "Message of the day: Served by a C program"),
    # an allowed *.svc.cluster.local name, resolved by the cluster's CoreDNS,
    # reaches another pod through its Service
    "proxy-js": ("/?url=http://hello-js.default.svc.cluster.local/through-dns", 200,
                 "upstream answered 200: Hello from JavaScript, running as a WebAssembly component "
                 "in wasmhttp! You asked for /through-dns"),
    # its Redis and ConfigMap come with it
    "counter-py": ("/from-the-suite", 200, "Hello from a ConfigMap! /from-the-suite has been visited 1 times."),
}
# Deployments an example's manifest brings beside its own
EXAMPLE_COMPANIONS = {"counter-py": ["redis"]}
# examples whose manifest a scenario of its own runs (below)
OWN_SCENARIO = {"app"}


def test_every_example_manifest_answers(cluster):
    manifests = [m for m in sorted(ROOT.glob("examples/*/k8s.yaml")) if m.parent.name not in OWN_SCENARIO]
    assert {m.parent.name for m in manifests} == set(EXAMPLE_ANSWERS), manifests
    for manifest in manifests:
        cluster.kubectl("apply", "-f", manifest)
    for manifest in manifests:
        name = manifest.parent.name
        for companion in EXAMPLE_COMPANIONS.get(name, []):
            rollout(cluster, companion)
        rollout(cluster, name)
        path, status, text = EXAMPLE_ANSWERS[name]
        url = service_url(cluster, name, path)

        def answer():  # kube-proxy (and CoreDNS) may take a moment to see a new Service
            result = cluster.curl(url, "-w", "\n%{http_code}", check=False, timeout=15)
            body, _, code = result.stdout.rpartition("\n")
            if code == str(status) and text in body:
                return True
            raise AssertionError(f"{code} {body!r}")  # reported if it never answers as expected
        eventually(f"{name}'s Service answers {status} with {text!r}", answer, 30, 1)
        for pod in pods(cluster, f"app={name}"):
            assert pod["spec"]["nodeName"] == NODE_A
            assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, (name, pod["status"])
    for manifest in manifests:
        cluster.kubectl("delete", "-f", manifest, "--wait=true", "--timeout=90s", timeout=120)


# -- apps of several components ---------------------------------------------------------------
def test_the_example_app_serves_every_route_its_middleware_and_an_in_process_call(cluster):
    """examples/app/k8s.yaml: the front (JavaScript) at /, the API (Python,
    wasi:http 0.3) at /api/... behind the auth middleware composed into the
    image, the C CGI program at /cgi-bin/...; the tokens from a Secret."""
    apply(cluster, example("app"))
    rollout(cluster, "app")

    def answer(path: str, *headers: str) -> tuple:
        args = [a for h in headers for a in ("-H", h)]
        result = cluster.curl(service_url(cluster, "app", path), *args, "-w", "\n%{http_code}",
                              check=False, timeout=15)
        body, _, code = result.stdout.rpartition("\n")
        return code, body

    # kube-proxy may take a moment to add a new Service's rules
    eventually("the app's Service answers", lambda: answer("/")[0] == "200", 30, 1)
    code, body = answer("/")
    assert "Hello from JavaScript" in body, body
    code, body = answer("/cgi-bin/request")
    assert code == "200" and "PATH_INFO=/request\n" in body, (code, body)
    assert answer("/api/")[0] == "401"
    assert answer("/api/", "Authorization: Bearer wrong")[0] == "401"
    code, body = answer("/api/?header=x-authenticated-user", "Authorization: Bearer change-me-alice",
                        "x-authenticated-user: admin")
    assert (code, body) == ("200", "alice\n"), (code, body)
    # the API calls the front in-process: no allow-list entry, no network
    code, body = answer("/api/?url=http://front.app.internal/", "Authorization: Bearer change-me-bob")
    assert code == "200" and body.startswith("upstream answered 200: Hello from JavaScript"), (code, body)
    # the internal names are the app's alone
    assert answer("/", "Host: api.app.internal")[0] == "400"

    for pod in pods(cluster, "app=app"):
        name = pod["metadata"]["name"]
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, (name, pod["status"])

    def routes_logged():
        log = "".join(cluster.kubectl("logs", p["metadata"]["name"]).stdout for p in pods(cluster, "app=app"))
        return log if all(f'"route":"{r}"' in log for r in ("front", "api", "cgi")) else None
    log = eventually("the access log names each route", routes_logged, 30, 1)
    assert "change-me" not in log, "a Secret's token is in the log"
    cluster.kubectl("delete", "-f", ROOT / "examples/app/k8s.yaml", "--wait=true", "--timeout=90s",
                    timeout=120)


# -- platform services ----------------------------------------------------------------------
def test_counter_on_both_nodes_shares_redis_config_and_logs(cluster):
    """The shim on node-b too (labelled into the chart's pool, then `helm
    upgrade`, so the uninstall covers it); the counter
    example's 2 replicas, one per node, on one Redis (a runc Deployment):
    exact under load through the Service, the ConfigMap and the Secret reach
    wasi:config, wasi:logging lines are in `kubectl logs`, the Secret's value
    is in none."""
    cluster.kubectl("label", "node", NODE_B, f"{POOL_LABEL}=wasm")
    eventually("node-b is labelled ready", lambda: node_labels(cluster, NODE_B).get(READY_LABEL) == "true", 180, 1)
    assert shim_in(cluster.nodes[1]).read_bytes() == (ROOT / "build/static/containerd-shim-wasmhttp-v1").read_bytes()
    # what an operator does after adding a node: the uninstall hooks are
    # rendered at install and upgrade (see the chart's uninstall-jobs.yaml)
    cluster.helm("upgrade", RELEASE, ROOT / "charts/wasmhttp", "--namespace", RELEASE_NAMESPACE,
                 "--reuse-values", "--wait", "--timeout", "3m")
    apply(cluster, example("counter-py"))
    rollout(cluster, "redis")
    rollout(cluster, "counter-py")
    replicas = pods(cluster, "app=counter-py")
    assert sorted(p["spec"]["nodeName"] for p in replicas) == [NODE_A, NODE_B], \
        [(p["metadata"]["name"], p["spec"]["nodeName"]) for p in replicas]
    for pod in replicas:
        ip = pod["status"]["podIP"]
        assert cluster.curl(f"http://{ip}:8080/config/greeting").stdout == "Hello from a ConfigMap"
        token = cluster.curl(f"http://{ip}:8080/private", "-H", "x-token: change-me-token",
                             "-o", "/dev/null", "-w", "%{http_code}").stdout
        assert token == "200", f"{pod['metadata']['name']}: the Secret's token was refused ({token})"
        # the Secret's mounted key, not its Redis password (not mounted)
        assert cluster.curl(f"http://{ip}:8080/config").stdout == '["greeting", "token"]\n'

    load = start_load(cluster, service_url(cluster, "counter-py", "/under-load"), seconds=20,
                      workers=4, pause_ms=5)
    result = load_result(load, 60)
    answered = result["statuses"].get("200", 0)
    assert result["errors"] == {} and set(result["statuses"]) == {"200"} and answered > 100, result
    counted = cluster.curl(service_url(cluster, "counter-py", "/kv/hits:/under-load")).stdout
    assert counted == str(answered), f"{answered} requests answered, the counter says {counted}"

    for pod in replicas:
        name = pod["metadata"]["name"]

        def logged():
            log = cluster.kubectl("logs", name).stdout
            return log if "[info] counter: /under-load has" in log else None
        log = eventually(f"{name}'s wasi:logging lines are in kubectl logs", logged, 30, 1)
        assert "wasi:keyvalue redis://10.96." in log, log[:2000]
        assert "change-me" not in log, f"a Secret's value is in {name}'s log"
    cluster.kubectl("delete", "-f", ROOT / "examples/counter-py/k8s.yaml", "--wait=true",
                    "--timeout=90s", timeout=120)


# -- uninstall ------------------------------------------------------------------------------
BUSY_JS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: busy-js}
spec:
  replicas: 1
  selector: {matchLabels: {app: busy-js}}
  template:
    metadata: {labels: {app: busy-js}}
    spec:
      runtimeClassName: wasmhttp
      containers:
        - name: hello-js
          image: docker.io/library/hello-js:latest
          imagePullPolicy: Never
          ports: [{name: http, containerPort: 8080}, {name: admin, containerPort: 9090}]
          env: [{name: WASMHTTP_LISTEN, value: "0.0.0.0:8080"}]
          lifecycle: {preStop: {sleep: {seconds: 5}}}
          readinessProbe: {httpGet: {path: /readyz, port: admin}, periodSeconds: 2}
          resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 256Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: busy-js}
spec:
  selector: {app: busy-js}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: busy-js}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: busy-js}
  minReplicas: 1
  maxReplicas: 3
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  # no waiting for a calm window in a test: act on each reading
  behavior:
    scaleUp: {stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 200, periodSeconds: 15}]}
    scaleDown: {stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 100, periodSeconds: 15}]}
"""


def test_kubectl_top_and_an_hpa_scale_a_wasm_deployment_out_and_in(cluster):
    """metrics-server (built from source, cluster.py) reads each kubelet's
    resource metrics, which come from the shim's task stats: `kubectl top`
    shows wasm pods, and a HorizontalPodAutoscaler on CPU scales a wasm
    Deployment out under load and back in once it is light, with every
    request answered 200 throughout."""
    apply(cluster, BUSY_JS)
    rollout(cluster, "busy-js", 120)

    def top():
        rows = [line.split() for line in cluster.kubectl("top", "pods", "--no-headers",
                                                         check=False).stdout.splitlines()]
        shown = {r[0]: r for r in rows if len(r) == 3 and r[1].endswith("m") and r[2].endswith("Mi")}
        wasm = [name for name in shown if name.startswith(("busy-js-", "hello-js-"))]
        return shown if any(n.startswith("busy-js-") for n in wasm) and all(
            int(shown[n][2][:-2]) > 0 for n in wasm) else None
    shown = eventually("kubectl top pods shows the wasm pods' CPU and memory", top, 120, 3)
    print(f"kubectl top pods: {sorted(shown.values())}")

    def replicas() -> int:
        return cluster.json("get", "deployment", "busy-js")["spec"]["replicas"]

    def hpa_state() -> str:
        return json.dumps(cluster.json("get", "hpa", "busy-js").get("status", {}))

    url = service_url(cluster, "busy-js", "/busy")
    heavy = start_load(cluster, url, seconds=100, workers=6, pause_ms=0)
    started = time.monotonic()
    try:
        eventually("the HPA scales busy-js out under load",
                   lambda: replicas() > 1 or None, 95, 3)
    except AssertionError as failure:
        raise AssertionError(f"{failure}; HPA: {hpa_state()}") from None
    out_after = time.monotonic() - started
    rollout(cluster, "busy-js", 120)
    time.sleep(5)  # the new pods serve their share
    heavy_result = stop_load(heavy)
    # light enough for one pod: the HPA scales back in while it runs
    light = start_load(cluster, url, seconds=120, workers=1, pause_ms=500)
    started = time.monotonic()
    try:
        eventually("the HPA scales busy-js back in", lambda: replicas() == 1, 115, 3)
    except AssertionError as failure:
        raise AssertionError(f"{failure}; HPA: {hpa_state()}") from None
    in_after = time.monotonic() - started
    eventually("one busy-js pod is left", lambda: len(pods(cluster, "app=busy-js")) == 1, 60, 2)
    light_result = stop_load(light)
    print(f"HPA: scaled out after {out_after:.0f} s of load ({heavy_result['sent']} requests), "
          f"in after {in_after:.0f} s of light load ({light_result['sent']} requests)")
    for result in (heavy_result, light_result):
        assert result["sent"] > 10, result
        assert result["errors"] == {} and set(result["statuses"]) == {"200"}, result
    cluster.kubectl("delete", "-f", "-", input=BUSY_JS)


def test_helm_uninstall_reverses_the_node(cluster):
    cluster.helm("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait", "--timeout", "3m")
    jobs = [e for e in cluster.json("get", "events", "-n", RELEASE_NAMESPACE)["items"]
            if e["involvedObject"]["kind"] == "Job" and e["reason"] == "Completed"]
    # node-b joined the pool for the counter's test
    assert len(jobs) == 2, "one pre-delete Job per labelled node ran to completion"
    for node, name in zip(cluster.nodes, (NODE_A, NODE_B)):
        assert READY_LABEL not in node_labels(cluster, name)
        assert not shim_in(node).exists()
        assert (node.dir / "etc-containerd/config.toml").read_text() == cluster.config_before[name]
    assert cluster.kubectl("get", "runtimeclass", "wasmhttp", check=False).returncode != 0
    eventually("the installer pods are gone",
               lambda: not pods(cluster, "app.kubernetes.io/name=wasmhttp-installer", RELEASE_NAMESPACE), 60)
