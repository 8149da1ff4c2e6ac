"""The k8s suite's cluster, made once for all scenarios (tests run in file
order, from `helm install` to `helm uninstall`), and torn down after them,
checking that nothing is left. K8S_KEEP=1 leaves it up for debugging."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import cluster as k8s  # noqa: E402
import images  # noqa: E402

ROOT = k8s.ROOT
EXAMPLES = ["hello-js", "hello-py", "service-py", "proxy-js", "files-py", "cgi-c", "counter-py", "app"]
INSTALLER_IMAGE = "docker.io/wasmhttp/node-installer:0.1.0"
TOOLS_IMAGE = "wasmhttp.test/busybox:1"
# what examples/counter-py/k8s.yaml runs beside it: Debian's Redis server
REDIS_IMAGE = "docker.io/library/redis:7"
# the grow-memory test fixture: grows its memory until it cannot
GROW_IMAGE = "wasmhttp.test/grow-memory:1"


@pytest.fixture(scope="session")
def cluster():
    k8s_bin = Path(subprocess.run([ROOT / "tests/k8s/build.sh"], check=True, capture_output=True,
                                  text=True).stdout.strip().splitlines()[-1])
    def addon(name: str) -> Path:
        built = subprocess.run([ROOT / "tests/k8s/build-addon.sh", name], check=True, capture_output=True,
                               text=True)
        return Path(built.stdout.strip().splitlines()[-1])
    metrics_server, coredns = addon("metrics-server"), addon("coredns")
    work = ROOT / "build/k8s"
    image_dir = work.parent / "k8s-images"
    # `make k8s-test` builds the workspace's binaries first (make examples)
    debug = ROOT / "target/debug"
    subprocess.run([debug / "wasmhttp-fixtures", "build", image_dir, "grow-memory"], check=True)
    subprocess.run([debug / "wasmhttp", "image", image_dir / "grow-memory.wasm", "--name", GROW_IMAGE,
                    "-o", image_dir / "grow-memory.tar"], check=True, capture_output=True)
    archives = [
        image_dir / "grow-memory.tar",
        images.busybox(image_dir / "pause.tar", k8s.PAUSE_IMAGE, ["sleep", "2147483647"]),
        images.busybox(image_dir / "busybox.tar", TOOLS_IMAGE, ["sleep", "2147483647"]),
        images.installer(image_dir / "installer.tar", INSTALLER_IMAGE, ROOT / "build/static"),
        images.redis(image_dir / "redis.tar", REDIS_IMAGE),
    ] + [ROOT / f"examples/{name}/build/{name}.tar" for name in EXAMPLES]
    for archive in archives:
        assert archive.exists(), f"{archive} is missing: `make k8s-test` builds it (make examples static)"

    c = k8s.Cluster(work, k8s_bin, metrics_server, coredns)
    try:
        c.up()
        for node in c.nodes:
            for archive in archives:
                node.import_image(archive)
    except BaseException:
        print(c.logs(), file=sys.stderr)
        c.down()
        raise
    print(f"\nk8s: cluster up in {c.netns}; KUBECONFIG={c.admin} "
          f"(inside: nsenter --net=/run/netns/{c.netns})", file=sys.stderr)
    yield c
    if os.environ.get("K8S_KEEP") == "1":
        print(f"\nk8s: K8S_KEEP=1: the cluster stays up. Use it with\n"
              f"  nsenter --net=/run/netns/{c.netns} {c.bin}/kubectl --kubeconfig {c.admin} get pods -A\n"
              f"and remove it with\n  {ROOT}/tests/k8s/run.sh --down", file=sys.stderr)
        c.save_state()
        return
    c.down()
    left = c.leftovers()
    assert not left, f"teardown left: {left}"
