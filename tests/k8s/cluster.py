"""A two-node Kubernetes cluster on one machine, for the k8s suite.

Everything runs inside one network namespace the harness creates and removes
(`wasmhttp-k8s-<pid>`): etcd, the API server, controller manager, scheduler
and kube-proxy on 10.200.0.1, and two nodes (10.200.0.11, 10.200.0.12), each a
kubelet with its own private containerd 2.x, root directory, cgroup root and
CNI bridge. Each node also has a mount namespace of its own in which its
/etc/containerd and /opt are private directories, so that the node installer,
which sees the node's / through a hostPath, edits that node and no other.
Nothing listens or is reached outside the network namespace.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERD_BIN = ROOT / "build/containerd/2.1/usr/bin"
ETCD = ROOT / "build/etcd/usr/bin/etcd"
HELM = ROOT / "build/tools/bin/helm"

APISERVER_IP = "10.200.0.1"
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
CLUSTER_CIDR = "10.244.0.0/16"
PAUSE_IMAGE = "wasmhttp.test/pause:1"
# sysctls the kubelet sets host-wide (it insists unless protectKernelDefaults,
# which makes it refuse to start instead); put back at teardown
KUBELET_SYSCTLS = ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
                   "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes"]


class Timeout(AssertionError):
    pass


def eventually(what: str, check, timeout: float, interval: float = 0.5):
    """Calls `check` until it returns a truthy value (returned) or `timeout`
    seconds pass (then fails saying `what` and the last value or error)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as error:  # noqa: BLE001 - reported below
            last = error
        if time.monotonic() > deadline:
            raise Timeout(f"{what}: not within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def run(args, check=True, timeout=120, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


class Daemon:
    """A long-running component with its log in the cluster directory."""

    def __init__(self, name: str, args: list, log: Path, env=None):
        self.name, self.args, self.log_path = name, [str(a) for a in args], log
        self.env = env
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=self.env,
                                        start_new_session=True)
        log.close()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 10):
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervised(Daemon):
    """Restarted whenever it exits, as systemd's Restart=always would (the node
    installer restarts containerd by stopping it and waiting for its return).
    A shell loop, bounded in restarts, so that it outlives the harness when
    K8S_KEEP=1 leaves the cluster up."""

    RESTART_LIMIT = 20

    def __init__(self, name: str, args: list, log: Path, env=None):
        loop = (f'for restart in $(seq 0 {self.RESTART_LIMIT}); do '
                f'[ "$restart" = 0 ] || echo "--- supervisor: restart $restart"; "$@"; sleep 0.5; done')
        super().__init__(name, ["sh", "-c", loop, "supervise", *args], log, env)

    def restarts(self) -> int:
        return self.log_path.read_text(errors="replace").count("--- supervisor: restart")

    def stop(self, grace: float = 10):
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
        super().stop(grace)


def binding(name: str, user: str, role_kind: str, role: str, namespace: str = None) -> str:
    """The manifest of a (Cluster)RoleBinding granting `user` the `role`: a
    RoleBinding in `namespace` if given, else a ClusterRoleBinding."""
    kind = "RoleBinding" if namespace else "ClusterRoleBinding"
    where = f", namespace: {namespace}" if namespace else ""
    return f"""apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}
metadata: {{name: "{name}"{where}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {role_kind}, name: "{role}"}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: "{user}"}}]"""


class Pki:
    """The cluster's certificates, made with openssl: one CA, the API
    server's serving certificate and a client certificate per component."""

    def __init__(self, directory: Path):
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = directory / "ca.crt"
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", directory / "ca.key", "-out", self.ca, "-days", "2",
             "-subj", "/CN=wasmhttp-k8s-ca"])
        # service account tokens: an RSA pair (the API server signs with it)
        run(["openssl", "genrsa", "-out", directory / "sa.key", "2048"])
        run(["openssl", "rsa", "-in", directory / "sa.key", "-pubout", "-out", directory / "sa.pub"])

    def issue(self, name: str, subject: str, sans: list = (), server: bool = False):
        key, csr, crt = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", subject])
        extensions = self.dir / f"{name}.ext"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature,keyEncipherment",
                 f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}"]
        if sans:
            lines.append("subjectAltName=" + ",".join(sans))
        extensions.write_text("\n".join(lines) + "\n")
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.dir / "ca.key",
             "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", extensions])
        return crt, key

    def kubeconfig(self, path: Path, name: str, subject: str, server: str):
        crt, key = self.issue(name, subject)
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "wasmhttp-k8s",
            "clusters": [{"name": "wasmhttp-k8s", "cluster": {
                "server": server, "certificate-authority": str(self.ca)}}],
            "users": [{"name": name, "user": {
                "client-certificate": str(crt), "client-key": str(key)}}],
            "contexts": [{"name": "wasmhttp-k8s", "context": {"cluster": "wasmhttp-k8s", "user": name}}],
        }, indent=1))
        return path


class Node:
    def __init__(self, cluster: "Cluster", name: str, index: int):
        self.cluster, self.name, self.index = cluster, name, index
        self.ip = f"10.200.0.{10 + index}"
        self.subnet = f"10.244.{index}.0/24"
        self.dir = cluster.dir / name
        self.mount_ns = self.dir / "ns/mnt"
        self.cgroup_root = f"/{cluster.netns}-{name}"
        self.containerd = None
        self.kubelet = None

    # -- the node's namespaces -------------------------------------------------
    def enter(self, args: list) -> list:
        return ["nsenter", f"--net=/run/netns/{self.cluster.netns}", f"--mount={self.mount_ns}", "--",
                *map(str, args)]

    def make_mount_namespace(self):
        ns_dir = self.mount_ns.parent
        ns_dir.mkdir(parents=True)
        run(["mount", "--bind", ns_dir, ns_dir])
        run(["mount", "--make-private", ns_dir])
        self.mount_ns.touch()
        # slave: the host's mounts are seen, nothing mounted inside leaks out
        run(["unshare", f"--mount={self.mount_ns}", "--propagation", "slave", "true"])
        # what the node installer edits (through its hostPath /), the logs the
        # kubelet keeps, and runc's state: the node's own
        for private, seen_as in ((self.dir / "etc-containerd", "/etc/containerd"),
                                 (self.dir / "opt", "/opt"), (self.dir / "var-log", "/var/log"),
                                 (self.dir / "run-containerd", "/run/containerd")):
            private.mkdir(parents=True, exist_ok=True)
            Path(seen_as).mkdir(parents=True, exist_ok=True)
            run(["nsenter", f"--mount={self.mount_ns}", "--", "mount", "--bind", private, seen_as])

    # -- containerd ----------------------------------------------------------------
    @property
    def socket(self) -> Path:
        return self.dir / "containerd/containerd.sock"

    def write_containerd_config(self):
        d = self.dir / "containerd"
        (d / "cni").mkdir(parents=True, exist_ok=True)
        (self.dir / "etc-containerd/config.toml").write_text(f"""\
# node {self.name}: containerd 2.x as a distribution installs it, plus the
# paths of this test node. The node installer adds the wasmhttp runtime.
version = 3
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "{PAUSE_IMAGE}"

[plugins."io.containerd.cri.v1.runtime"]
  # the kubelet asks for oom_score_adj -998 for sandboxes; this machine
  # refuses negative values
  restrict_oom_score_adj = true
  # pod network namespaces under the node's state, not the host's /run/netns
  netns_mounts_under_state_dir = true

[plugins."io.containerd.cri.v1.runtime".cni]
  bin_dirs = ["/usr/lib/cni"]
  conf_dir = "{d}/cni"
""")
        (d / "cni/10-bridge.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": f"pods-{self.name}",
            "plugins": [
                {"type": "bridge", "bridge": f"cni-{self.name}", "isGateway": True, "ipMasq": False,
                 "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.subnet}]],
                          "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(d / "ipam")}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ]}, indent=1))

    def start_containerd(self):
        env = dict(os.environ, PATH=f"{CONTAINERD_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        self.containerd = Supervised(f"containerd {self.name}",
                                     self.enter([CONTAINERD_BIN / "containerd",
                                                 "--config", "/etc/containerd/config.toml"]),
                                     self.dir / "containerd.log", env=env).start()
        eventually(f"containerd on {self.name} answers", lambda: self.ctr("version", check=False).returncode == 0,
                   60)

    def ctr(self, *args, check=True, timeout=120):
        return run(self.enter([CONTAINERD_BIN / "ctr", "--address", self.socket, "--namespace", "k8s.io",
                               *args]), check=check, timeout=timeout)

    def import_image(self, archive: Path):
        self.ctr("images", "import", "--local", archive, timeout=300)

    # -- the kubelet ---------------------------------------------------------------
    def make_cgroup_root(self):
        # cgroup v1: the kubelet wants its root in every hierarchy; a new
        # cpuset has no CPUs or memory nodes until given its parent's
        for controller in Path("/sys/fs/cgroup").iterdir():
            if controller.name == "unified" or not (controller / "cgroup.procs").exists():
                continue
            root = controller / self.cgroup_root.lstrip("/")
            root.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (root / name).exists():
                    (root / name).write_text((controller / name).read_text())

    def start_kubelet(self):
        self.make_cgroup_root()
        pki = self.cluster.pki
        kubeconfig = pki.kubeconfig(self.dir / "kubelet.kubeconfig", f"kubelet-{self.name}",
                                    f"/O=system:nodes/CN=system:node:{self.name}", self.cluster.server)
        serving_crt, serving_key = pki.issue(f"kubelet-serving-{self.name}", f"/CN={self.name}",
                                             [f"IP:{self.ip}", f"DNS:{self.name}"], server=True)
        (self.dir / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": self.ip, "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": self.ip, "healthzPort": 10248,
            "tlsCertFile": str(serving_crt), "tlsPrivateKeyFile": str(serving_key),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(pki.ca)}},
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # this host: cgroup v1, no systemd
            "cgroupDriver": "cgroupfs", "cgroupRoot": self.cgroup_root, "failCgroupV1": False,
            "failSwapOn": False,
            "resolvConf": str(self.dir / "resolv.conf"),
            # pods ask the cluster's CoreDNS (cluster.py runs it on the API server's address)
            "clusterDNS": [APISERVER_IP], "clusterDomain": "cluster.local",
            # the disk is shared with builds: never evict or collect images for it
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False, "maxPods": 40,
            "nodeStatusUpdateFrequency": "2s", "syncFrequency": "5s",
            "fileCheckFrequency": "5s", "shutdownGracePeriod": "0s",
        }
        (self.dir / "kubelet.json").write_text(json.dumps(config, indent=1))
        self.kubelet = Daemon(f"kubelet {self.name}", self.enter([
            self.cluster.bin / "kubelet", "--config", self.dir / "kubelet.json",
            "--kubeconfig", kubeconfig, "--root-dir", self.dir / "kubelet",
            "--hostname-override", self.name, "--node-ip", self.ip, "--v", "2"]),
            self.dir / "kubelet.log").start()

    # -- teardown ----------------------------------------------------------------
    def processes(self) -> set:
        """Everything of this node: its containerd, kubelet and shims (in its
        mount namespace) and its pods' processes (in its cgroup root)."""
        pids = set()
        try:
            node_ns = os.stat(self.mount_ns).st_ino
        except OSError:
            node_ns = None
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if node_ns and os.stat(f"/proc/{entry}/ns/mnt").st_ino == node_ns:
                    pids.add(int(entry))
            except OSError:
                pass
        for controller in ("pids", "memory", "cpu"):
            base = Path("/sys/fs/cgroup") / controller / self.cgroup_root.lstrip("/")
            if base.is_dir():
                for procs in base.rglob("cgroup.procs"):
                    try:
                        pids.update(int(p) for p in procs.read_text().split())
                    except OSError:
                        pass
        return pids

    def down(self):
        for daemon in (self.kubelet, self.containerd):
            if daemon:
                daemon.stop()
        for _ in range(20):
            pids = self.processes()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.25)
        for controller in Path("/sys/fs/cgroup").iterdir():
            base = controller / self.cgroup_root.lstrip("/")
            if base.is_dir():
                for directory in sorted(base.rglob("*"), key=lambda p: -len(p.parts)):
                    if directory.is_dir():
                        try:
                            directory.rmdir()
                        except OSError:
                            pass
                try:
                    base.rmdir()
                except OSError:
                    pass
        if self.mount_ns.exists():
            run(["umount", self.mount_ns], check=False)
            run(["umount", self.mount_ns.parent], check=False)


class Cluster:
    def __init__(self, directory: Path, k8s_bin: Path, metrics_server: Path = None, coredns: Path = None):
        self.dir = directory
        self.bin = k8s_bin
        self.metrics_server_bin = metrics_server
        self.coredns_bin = coredns
        self.netns = f"wasmhttp-k8s-{os.getpid()}"
        self.server = f"https://{APISERVER_IP}:6443"
        self.daemons: list = []
        self.nodes = [Node(self, "node-a", 1), Node(self, "node-b", 2)]
        self.saved_sysctls: dict = {}
        self.pki = None
        self.admin = directory / "admin.kubeconfig"

    # -- running things inside ----------------------------------------------------
    def inside(self, args: list) -> list:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *map(str, args)]

    def sh(self, args: list, check=True, timeout=120, **kwargs):
        return run(self.inside(args), check=check, timeout=timeout, **kwargs)

    def kubectl(self, *args, check=True, timeout=120, input=None):
        return self.sh([self.bin / "kubectl", "--kubeconfig", self.admin, *args], check=check,
                       timeout=timeout, input=input)

    def json(self, *args):
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm(self, *args, check=True, timeout=300):
        env = dict(os.environ, KUBECONFIG=str(self.admin), HELM_CACHE_HOME=str(self.dir / "helm/cache"),
                   HELM_CONFIG_HOME=str(self.dir / "helm/config"), HELM_DATA_HOME=str(self.dir / "helm/data"))
        return run(self.inside([HELM, *args]), check=check, timeout=timeout, env=env)

    def curl(self, url: str, *args, check=True, timeout=30):
        return self.sh(["curl", "-sS", "--max-time", str(timeout - 5), *args, url], check=check,
                       timeout=timeout)

    # -- bring-up ------------------------------------------------------------------
    def up(self):
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        for node in self.nodes:
            node.dir.mkdir()
        run(["ip", "netns", "add", self.netns])
        self.sh(["ip", "link", "set", "lo", "up"])
        self.sh(["ip", "link", "add", "k8s0", "type", "bridge"])
        for address in [APISERVER_IP] + [n.ip for n in self.nodes]:
            self.sh(["ip", "addr", "add", f"{address}/24", "dev", "k8s0"])
        self.sh(["ip", "link", "set", "k8s0", "up"])
        # the Service range routes to this link (a bridge: this kernel has no dummy links), where kube-proxy's rules catch it
        self.sh(["ip", "route", "add", SERVICE_CIDR, "dev", "k8s0"])
        self.sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for name in KUBELET_SYSCTLS:
            self.saved_sysctls[name] = Path("/proc/sys", name).read_text().strip()
        self.pki = Pki(self.dir / "pki")
        self._control_plane()
        for node in self.nodes:
            node.make_mount_namespace()
            node.write_containerd_config()
            node.start_containerd()
        self._kube_proxy()
        for node in self.nodes:
            node.start_kubelet()
        for node in self.nodes:
            eventually(f"{node.name} is Ready", lambda n=node: self._ready(n.name), 120, 1)
        if self.metrics_server_bin:
            self._metrics_server()
        if self.coredns_bin:
            self._coredns()

    def _daemon(self, name, args, supervised=False):
        kind = Supervised if supervised else Daemon
        daemon = kind(name, self.inside(args), self.dir / f"{name}.log").start()
        self.daemons.append(daemon)
        return daemon

    def _healthy(self, url: str, crt: str, key: str) -> bool:
        result = self.sh(["curl", "-sS", "--max-time", "3", "--cacert", self.pki.ca, "--cert", crt,
                          "--key", key, url], check=False, timeout=10)
        return result.returncode == 0 and result.stdout.strip() == "ok"

    def _control_plane(self):
        pki, d = self.pki, self.dir
        self._daemon("etcd", [ETCD, "--name", "k8s", "--data-dir", d / "etcd",
                              "--listen-client-urls", "http://127.0.0.1:2379",
                              "--advertise-client-urls", "http://127.0.0.1:2379",
                              "--listen-peer-urls", "http://127.0.0.1:2380",
                              "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                              "--initial-cluster", "k8s=http://127.0.0.1:2380",
                              "--unsafe-no-fsync", "--quota-backend-bytes", str(2 << 30)])
        serving_crt, serving_key = pki.issue(
            "apiserver", "/CN=kube-apiserver",
            [f"IP:{APISERVER_IP}", f"IP:{KUBERNETES_SERVICE_IP}", "IP:127.0.0.1", "DNS:kubernetes",
             "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
             "DNS:kubernetes.default.svc.cluster.local"], server=True)
        kubelet_client_crt, kubelet_client_key = pki.issue(
            "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
        # the aggregation layer, for metrics-server's metrics.k8s.io: the API
        # server proxies to it as front-proxy-client, saying who asks in headers
        proxy_client_crt, proxy_client_key = pki.issue("front-proxy-client", "/CN=front-proxy-client")
        self.pki.kubeconfig(self.admin, "admin", "/O=system:masters/CN=admin", self.server)
        admin_crt, admin_key = pki.dir / "admin.crt", pki.dir / "admin.key"
        self.apiserver = self._daemon("kube-apiserver", [
            self.bin / "kube-apiserver", "--etcd-servers", "http://127.0.0.1:2379",
            "--advertise-address", APISERVER_IP, "--bind-address", APISERVER_IP, "--secure-port", "6443",
            "--service-cluster-ip-range", SERVICE_CIDR, "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NodeRestriction", "--allow-privileged",
            "--client-ca-file", pki.ca, "--tls-cert-file", serving_crt, "--tls-private-key-file", serving_key,
            "--kubelet-client-certificate", kubelet_client_crt, "--kubelet-client-key", kubelet_client_key,
            "--kubelet-preferred-address-types", "InternalIP",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", pki.dir / "sa.pub",
            "--service-account-signing-key-file", pki.dir / "sa.key",
            "--endpoint-reconciler-type", "lease", "--profiling=false",
            "--requestheader-client-ca-file", pki.ca, "--requestheader-allowed-names", "front-proxy-client",
            "--requestheader-username-headers", "X-Remote-User",
            "--requestheader-group-headers", "X-Remote-Group",
            "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
            "--proxy-client-cert-file", proxy_client_crt, "--proxy-client-key-file", proxy_client_key,
            # metrics-server runs on this namespace's link, not in a pod:
            # reach it at its endpoint's address, not through a Service IP
            "--enable-aggregator-routing=true"])
        eventually("the API server is healthy",
                   lambda: self._healthy(f"{self.server}/readyz", admin_crt, admin_key), 120, 1)
        for name, subject in (("kube-controller-manager", "/CN=system:kube-controller-manager"),
                              ("kube-scheduler", "/CN=system:kube-scheduler")):
            kubeconfig = pki.kubeconfig(d / f"{name}.kubeconfig", name, subject, self.server)
            extra = ["--service-account-private-key-file", pki.dir / "sa.key", "--root-ca-file", pki.ca,
                     "--use-service-account-credentials", "--controllers", "*",
                     "--cluster-signing-cert-file", pki.ca, "--cluster-signing-key-file", pki.dir / "ca.key",
                     ] if name == "kube-controller-manager" else []
            self._daemon(name, [self.bin / name, "--kubeconfig", kubeconfig, "--leader-elect=false",
                                "--bind-address", "127.0.0.1", "--authentication-kubeconfig", kubeconfig,
                                "--authorization-kubeconfig", kubeconfig, *extra])

    def _metrics_server(self):
        """metrics-server, built from source, as a process beside the control
        plane (on the API server's address, port 4443), registered as the
        metrics.k8s.io API with the RBAC its release's manifest grants it:
        what `kubectl top` and the HorizontalPodAutoscaler read. It scrapes
        each kubelet's /metrics/resource, verifying the kubelets' serving
        certificates with the cluster's CA."""
        pki, d = self.pki, self.dir
        user = "system:metrics-server"
        kubeconfig = pki.kubeconfig(d / "metrics-server.kubeconfig", "metrics-server", f"/CN={user}",
                                    self.server)
        crt, key = pki.issue("metrics-server-serving", "/CN=metrics-server",
                             ["DNS:metrics-server.kube-system.svc", f"IP:{APISERVER_IP}"], server=True)
        ca_bundle = base64.b64encode(pki.ca.read_bytes()).decode()
        manifest = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "system:metrics-server"}}
rules:
- {{apiGroups: [""], resources: [nodes/metrics], verbs: [get]}}
- {{apiGroups: [""], resources: [pods, nodes], verbs: [get, list, watch]}}
---
{binding("system:metrics-server", user, "ClusterRole", "system:metrics-server")}
---
{binding("metrics-server:system:auth-delegator", user, "ClusterRole", "system:auth-delegator")}
---
{binding("metrics-server-auth-reader", user, "Role", "extension-apiserver-authentication-reader",
         namespace="kube-system")}
---
apiVersion: v1
kind: Service
metadata: {{name: metrics-server, namespace: kube-system}}
spec:
  ports: [{{name: https, port: 443, targetPort: 4443}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: metrics-server, namespace: kube-system}}
subsets:
- addresses: [{{ip: "{APISERVER_IP}"}}]
  ports: [{{name: https, port: 4443}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1beta1.metrics.k8s.io}}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {{name: metrics-server, namespace: kube-system, port: 443}}
  caBundle: {ca_bundle}
  groupPriorityMinimum: 100
  versionPriority: 100
"""
        self.kubectl("apply", "-f", "-", input=manifest)
        daemon = self._daemon("metrics-server", [
            self.metrics_server_bin, "--kubeconfig", kubeconfig,
            "--authentication-kubeconfig", kubeconfig, "--authorization-kubeconfig", kubeconfig,
            "--bind-address", APISERVER_IP, "--secure-port", "4443",
            "--tls-cert-file", crt, "--tls-private-key-file", key,
            "--kubelet-certificate-authority", pki.ca, "--kubelet-preferred-address-types", "InternalIP",
            # (its shortest: above the kubelet request timeout, 10 s)
            "--kubelet-use-node-status-port", "--metric-resolution", "15s"])

        def answers():
            assert daemon.alive(), f"metrics-server exited:\n{daemon.tail()}"
            return self.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes",
                                check=False).returncode == 0
        eventually("the metrics API answers", answers, 120, 2)

    def _coredns(self):
        """CoreDNS, built from source, as a process on the API server's
        address, port 53, answering for cluster.local from the API (its
        `kubernetes` plugin) with the RBAC its release's manifest grants it;
        the kubelets give pods this address as their nameserver."""
        user = "system:coredns"
        kubeconfig = self.pki.kubeconfig(self.dir / "coredns.kubeconfig", "coredns", f"/CN={user}",
                                         self.server)
        self.kubectl("apply", "-f", "-", input=f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "system:coredns"}}
rules:
- {{apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}}
- {{apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}}
---
{binding("system:coredns", user, "ClusterRole", "system:coredns")}
""")
        corefile = self.dir / "Corefile"
        corefile.write_text(f"""cluster.local:53 {{
    bind {APISERVER_IP}
    errors
    kubernetes cluster.local {{
        kubeconfig {kubeconfig} wasmhttp-k8s
    }}
}}
""")
        daemon = self._daemon("coredns", [self.coredns_bin, "-conf", corefile])

        def started():  # it says its version once its plugins, the API's caches included, are up
            assert daemon.alive(), f"CoreDNS exited:\n{daemon.tail()}"
            return "CoreDNS-" in daemon.tail(50)
        eventually("CoreDNS starts", started, 60, 1)

    def _kube_proxy(self):
        kubeconfig = self.pki.kubeconfig(self.dir / "kube-proxy.kubeconfig", "kube-proxy",
                                         "/CN=system:kube-proxy", self.server)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)}, "mode": "iptables",
            "clusterCIDR": CLUSTER_CIDR, "hostnameOverride": self.nodes[0].name,
            "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
            # both nodes share this network namespace: one kube-proxy serves them;
            # masquerade so that a pod reaching a Service backed by a pod on its
            # own bridge gets the answer back through the rules
            "iptables": {"masqueradeAll": True},
            "conntrack": {"maxPerCore": 0, "min": 0},
        }
        (self.dir / "kube-proxy.json").write_text(json.dumps(config, indent=1))
        self._daemon("kube-proxy", [self.bin / "kube-proxy", "--config", self.dir / "kube-proxy.json"])

    def _ready(self, node: str) -> bool:
        result = self.kubectl("get", "node", node, "-o",
                              "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
        return result.stdout.strip() == "True"

    # -- teardown ------------------------------------------------------------------
    def logs(self) -> str:
        parts = []
        for daemon in self.daemons + [d for n in self.nodes for d in (n.kubelet, n.containerd) if d]:
            parts.append(f"--- {daemon.name} ({daemon.log_path}):\n{daemon.tail(15)}")
        return "\n".join(parts)

    def down(self):
        for node in self.nodes:
            node.down()
        for daemon in reversed(self.daemons):
            daemon.stop()
        # anything left in the network namespace (port-forwards, curls)
        result = run(["ip", "netns", "pids", self.netns], check=False)
        for pid in result.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run(["ip", "netns", "delete", self.netns], check=False)
        for name, value in self.saved_sysctls.items():
            try:
                Path("/proc/sys", name).write_text(value)
            except OSError:
                pass

    def save_state(self):
        """What `down` needs from another process (K8S_KEEP=1, then run.sh --down)."""
        (self.dir / "state.json").write_text(json.dumps({
            "netns": self.netns, "bin": str(self.bin), "sysctls": self.saved_sysctls,
            "pids": [d.process.pid for d in self.daemons + [x for n in self.nodes
                                                             for x in (n.kubelet, n.containerd) if x]
                     if d.alive()],
        }))

    @classmethod
    def from_state(cls, directory: Path) -> "Cluster":
        state = json.loads((directory / "state.json").read_text())
        cluster = cls(directory, Path(state["bin"]))
        cluster.netns, cluster.saved_sysctls = state["netns"], state["sysctls"]
        for node in cluster.nodes:
            node.cgroup_root = f"/{cluster.netns}-{node.name}"
        for pid in state["pids"]:
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return cluster

    def leftovers(self) -> list:
        """What teardown should have removed and did not."""
        found = []
        if self.netns in run(["ip", "netns", "list"]).stdout:
            found.append(f"network namespace {self.netns}")
        mounts = Path("/proc/self/mountinfo").read_text()
        if str(self.dir) in mounts:
            found.append(f"mounts under {self.dir}")
        for node in self.nodes:
            if node.processes():
                found.append(f"processes of {node.name}: {sorted(node.processes())}")
            for controller in Path("/sys/fs/cgroup").iterdir():
                if (controller / node.cgroup_root.lstrip("/")).exists():
                    found.append(f"cgroup {controller.name}{node.cgroup_root}")
        for daemon in self.daemons:
            if daemon.alive():
                found.append(f"{daemon.name} (pid {daemon.process.pid})")
        return found


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] != ["down"] or len(sys.argv) != 3:
        sys.exit("usage: cluster.py down DIR   (removes a cluster K8S_KEEP=1 left up)")
    kept = Cluster.from_state(Path(sys.argv[2]))
    time.sleep(2)
    kept.down()
    left = kept.leftovers()
    print(f"k8s: removed the cluster in {kept.netns}" + (f"; left: {left}" if left else ""))
    sys.exit(1 if left else 0)
