#!/usr/bin/env python3
"""`make bench`: wasmhttp against its peers, measured side by side in one run.

Every contender serves the same component under the same load (wrk, keep-alive,
loopback only, bounded duration); the shim runs under a private containerd of
the bench's own. Prints one markdown table per section and writes everything
to OUT/results.json and OUT/results.md.

Contenders:
  native          hyper with no wasm (bench/src/bin/native.rs): the ceiling
  wasmtime serve  the wasmtime CLI of the same wasmtime version, pooling allocator on
  wasmhttp serve  our CLI
  shim (ctr)      containerd-shim-wasmhttp-v1 under containerd, `ctr run --net-host`

Sections: throughput (every contender on every workload, fresh and with
reuse; wasi:http 0.2 and 0.3), cgi (CGI programs against proxy-mode hello),
apps (hello routed among 10 components against hello alone; a call to
another component in-process against the same call over loopback HTTP),
store (wasi:keyvalue on the memory store and a real Redis, and the host's
CPU per store call),
cold (ctr run → first 200), memory (idle PSS), density; then the goal table.

Usage: bench.py --out DIR [--duration S] [--connections N] [--density N] [--quick]
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STATIC = os.path.join(ROOT, "build", "static")
SHIM = os.path.join(STATIC, "containerd-shim-wasmhttp-v1")
FLOOR_SHIM = os.path.join(STATIC, "containerd-shim-floor-v1")
WASMHTTP = os.path.join(STATIC, "wasmhttp")
NATIVE = os.path.join(STATIC, "wasmhttp-bench-native")
FIXTURES = os.path.join(STATIC, "wasmhttp-fixtures")
JS_HELLO = os.path.join(ROOT, "examples", "hello-js", "build", "hello-js.wasm")
# the Python hello on wasi:http 0.2, and the Python service on wasi:http 0.3
PY_HELLO = os.path.join(ROOT, "examples", "hello-py", "build", "hello-py.wasm")
PY_SERVICE = os.path.join(ROOT, "examples", "service-py", "build", "service-py.wasm")
# workloads with a native counterpart (the others are guests of a language
# runtime, which the native server is not)
NATIVE_WORKLOADS = ("hello", "echo 64 KiB")
# wasi:http 0.3 workloads: `wasmtime serve` reuses their instances by default
# (128 requests, 16 at once), so its fresh rows say 1 and its reuse rows say
# what ours do
P3_WORKLOADS = ("hello-py 0.3",)
# WASMHTTP_INSTANCE_CONCURRENCY's default, for `wasmtime serve`'s reuse rows
P3_CONCURRENCY = 8
# a wasi:http handler that fetches `?url=` (outbound HTTP, JavaScript)
PROXY_JS = os.path.join(ROOT, "examples", "proxy-js", "build", "proxy-js.wasm")
# the routes of the apps section's routing rows, and the components of the
# app whose cached start the cold section measures
APP_ROUTES = 10
APP_COLD = f"hello ×{APP_ROUTES} components, app image"
# the Lua interpreter of examples/cgi-lua and the CGI script it runs
CGI_LUA = os.path.join(ROOT, "examples", "cgi-lua", "build", "cgi-lua.wasm")
CGI_LUA_APP = os.path.join(ROOT, "examples", "cgi-lua", "app")
# the platform services' example (wasi:keyvalue, wasi:config, wasi:logging)
PY_COUNTER = os.path.join(ROOT, "examples", "counter-py", "build", "counter-py.wasm")
# Debian's Redis server, as `make setup` links it
REDIS_SERVER = os.path.join(ROOT, "build", "tools", "bin", "redis-server")
# store calls per request in the cost-per-call rows
STORE_CALLS = 100
NAMESPACE = "wasmhttp-bench"
ECHO_BODY = 64 * 1024


def clean_env(extra=None):
    """The bench's environment for every contender: no backtrace capture (a
    developer's RUST_BACKTRACE=1 makes every internal error unwind the stack,
    which no production pod does) and none of the caller's WASMHTTP_* settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE") and not k.startswith("WASMHTTP_")}
    env.update(extra or {})
    return env


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def log(*args):
    print("bench:", *args, file=sys.stderr, flush=True)


# Ports below the kernel's ephemeral range (32768-60999 by default): a bind to
# port 0, and every client connection, takes one from that range, so the
# kernel may hand the same "free" port to two servers started one after the
# other. Each port is handed out once per run.
_TEST_PORTS = range(20000, 32000)
_handed_out = [0]


def free_port():
    start = (os.getpid() * 7919) % len(_TEST_PORTS)
    for _ in range(len(_TEST_PORTS)):
        port = _TEST_PORTS[(start + _handed_out[0]) % len(_TEST_PORTS)]
        _handed_out[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {_TEST_PORTS}")


def http_status(port, path="/", timeout=1.0):
    """The status of one GET to 127.0.0.1:port, or None if nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
    except OSError:
        return None
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(m.group(1)) if m else None


def wait_for_2xx(port, deadline_s, path="/", alive=lambda: True):
    """Polls until a GET answers 2xx (the CGI test program answers 201);
    returns the time.monotonic() it did. Gives up early once `alive()` is false."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and alive():
        status = http_status(port, path)
        if status is not None and 200 <= status < 300:
            return time.monotonic()
        time.sleep(0.001)
    raise RuntimeError(f"127.0.0.1:{port} did not answer 2xx within {deadline_s} s"
                       + ("" if alive() else " (its server has exited)"))


# ---------------------------------------------------------------- load (wrk)

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(port, duration, connections, post_body=None, path="/bench"):
    """Runs wrk against 127.0.0.1:port; rps, p50/p99 in ms, and every failure."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    script = None
    if post_body is not None:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(f'wrk.method = "POST"\nwrk.body = string.rep("x", {post_body})\n'
                     'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        script.close()
        cmd += ["-s", script.name]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    finally:
        if script:
            os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        latency[pct] = float(value) * UNITS[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(x) for x in sockets.groups()) if sockets else 0)
    return {"rps": rps, "p50_ms": latency.get("50"), "p99_ms": latency.get("99"),
            "requests": requests, "errors": errors}


# ------------------------------------------------------------ process memory

def cpu_seconds(pids):
    """User + system CPU time (s) `pids` have used, from /proc/PID/stat."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                # fields after the command (which may hold spaces): utime is the 12th
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_kib(pids):
    """Sum of PSS and RSS (KiB) over `pids`, from /proc/PID/smaps_rollup."""
    pss = rss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    return pss, rss


def process_table():
    """pid -> (ppid, argv) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        table[int(entry)] = (ppid, [a.decode(errors="replace") for a in argv if a])
    return table


def with_descendants(roots, table):
    found = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


class Sampler:
    """Samples the memory of a set of processes while a load runs; keeps the peak."""

    def __init__(self, pids_fn, interval=0.5):
        self.pids_fn, self.interval = pids_fn, interval
        self.peak = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval):
            sample = memory_kib(self.pids_fn())
            if sample[0] > self.peak[0]:
                self.peak = sample

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------- OCI archives

def _tar(files):
    """A deterministic uncompressed tar of {path: (bytes, mode)}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def write_rootfs_image(out, reference, files, entrypoint):
    """A plain linux/amd64 image, as `docker build` makes from `FROM scratch`:
    one gzipped tar layer, Docker media types."""
    blobs = {}

    def add(media_type, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layer_tar = _tar(files)
    layer = add("application/vnd.docker.image.rootfs.diff.tar.gzip",
                gzip.compress(layer_tar, mtime=0))
    config = add("application/vnd.docker.container.image.v1+json", json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": entrypoint},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
    }, sort_keys=True).encode())
    manifest = add("application/vnd.docker.distribution.manifest.v2+json", json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": config, "layers": [layer],
    }, sort_keys=True).encode())
    manifest["annotations"] = {"io.containerd.image.name": reference,
                               "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1]}
    manifest["platform"] = {"architecture": "amd64", "os": "linux"}
    with tarfile.open(out, "w") as tar:
        entries = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                   "index.json": json.dumps({"schemaVersion": 2, "manifests": [manifest]}).encode()}
        entries.update({f"blobs/sha256/{d.split(':')[1]}": b for d, b in blobs.items()})
        for path, data in entries.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


# ----------------------------------------------------------------- servers

class Server:
    """A contender listening on 127.0.0.1:port, however it was started."""

    def __init__(self, name, port, pids_fn, stop_fn):
        self.name, self.port, self.pids, self._stop = name, port, pids_fn, stop_fn

    def stop(self):
        self._stop()


def start_process(name, argv, port, env=None, ready_path="/"):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=clean_env(env), start_new_session=True)
    try:
        wait_for_2xx(port, 120, ready_path, alive=lambda: proc.poll() is None)
    except Exception:
        proc.kill()
        raise

    def stop():
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    return Server(name, port, lambda: [proc.pid], stop)


def native(port):
    return start_process("native", [NATIVE, f"127.0.0.1:{port}"], port)


def wasmtime_serve(wasmtime, wasm, port, reuse=None, p3=False):
    argv = [wasmtime, "serve", "-O", "pooling-allocator=y", "-S", "cli=y",
            "--addr", f"127.0.0.1:{port}", "--max-instance-reuse-count", str(reuse or 1)]
    if reuse and p3:
        argv += ["--max-instance-concurrent-reuse-count", str(P3_CONCURRENCY)]
    return start_process("wasmtime serve", argv + [wasm], port)


def wasmhttp_serve(wasm, port, reuse=None, env=None, guest_args=(), ready_path="/"):
    """`wasmhttp serve`; `env` adds WASMHTTP_* settings, `guest_args` go after
    the component (e.g. `--volume` and, after `--`, the guest's args)."""
    env = {"WASMHTTP_ADMIN_LISTEN": "off", **(env or {})}
    if reuse:
        env["WASMHTTP_INSTANCE_REUSE"] = str(reuse)
    return start_process("wasmhttp serve", [WASMHTTP, "serve", wasm, "--listen",
                                            f"127.0.0.1:{port}", *guest_args], port, env,
                         ready_path)


def custom_section(name: str, payload: bytes) -> bytes:
    """A WebAssembly custom section (id 0), valid at the end of a component."""
    def leb(n):
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)
    body = leb(len(name.encode())) + name.encode() + payload
    return b"\x00" + leb(len(body)) + body


def app_image(containerd, work, hello):
    """`wasmhttp image app.toml` of APP_ROUTES distinct components: hello,
    each copy a custom section apart, so each is compiled and cached on its
    own as the components of a real app are (`/...` the last)."""
    app_dir = os.path.join(work, "app")
    os.makedirs(app_dir)
    with open(hello, "rb") as f:
        hello_bytes = f.read()
    manifest = []
    for i in range(APP_ROUTES):
        with open(os.path.join(app_dir, f"c{i}.wasm"), "wb") as f:
            f.write(hello_bytes + custom_section("wasmhttp-bench-copy", str(i).encode()))
        path = "/..." if i == APP_ROUTES - 1 else f"/r{i}/..."
        manifest.append(f'[[route]]\npath = "{path}"\ncomponent = "c{i}.wasm"\n')
    with open(os.path.join(app_dir, "app.toml"), "w") as f:
        f.write("\n".join(manifest))
    ref = "bench/app:latest"
    archive = os.path.join(work, "app.tar")
    subprocess.run([WASMHTTP, "image", os.path.join(app_dir, "app.toml"), "--name", ref, "-o",
                    archive], check=True, capture_output=True)
    containerd.import_image(archive)
    return "docker.io/" + ref


def wasmhttp_app(routes, port, env=None, ready_path="/"):
    """`wasmhttp serve --route PATH=COMPONENT,name=NAME ...`: an app."""
    env = {"WASMHTTP_ADMIN_LISTEN": "off", **(env or {})}
    flags = [f"--route={path}={wasm},name={name}" for path, wasm, name in routes]
    return start_process("wasmhttp serve (app)", [WASMHTTP, "serve", *flags, "--listen",
                                                  f"127.0.0.1:{port}"], port, env, ready_path)


def together(caller, callee):
    """Two servers measured as one (the caller's port; both processes' CPU)."""
    def stop():
        caller.stop()
        callee.stop()
    return Server(caller.name, caller.port, lambda: caller.pids() + callee.pids(), stop)


class Containerd:
    """A private containerd under a temporary directory (scripts/private-containerd.sh)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wasmhttp-bench.")
        bin_dir = os.path.join(self.dir, "bin")
        os.makedirs(bin_dir)
        for binary in (SHIM, FLOOR_SHIM):
            os.symlink(binary, os.path.join(bin_dir, os.path.basename(binary)))
        # the shims inherit containerd's environment
        subprocess.run([os.path.join(ROOT, "scripts", "private-containerd.sh"), "start",
                        self.dir, bin_dir], check=True, env=clean_env())
        self.address = os.path.join(self.dir, "containerd.sock")

    def ctr(self, *args, check=True, timeout=120):
        return subprocess.run(["ctr", "--address", self.address, "--namespace", NAMESPACE, *args],
                              capture_output=True, text=True, check=check, timeout=timeout)

    def import_image(self, archive):
        self.ctr("images", "import", archive)

    def run_argv(self, runtime, image, cid, env, args=(), detach=True):
        argv = ["ctr", "--address", self.address, "--namespace", NAMESPACE, "run", "--net-host",
                "--runtime", runtime]
        if detach:
            # nobody reads a detached container's output: without /dev/null
            # the guest's log lines fill the pipe and the server stalls
            argv += ["-d", "--null-io"]
        for name, value in env.items():
            argv += ["--env", f"{name}={value}"]
        return argv + [image, cid, *args]

    def shim_pids(self, cid=None):
        """The shim processes of one container (or of all), and all their children."""
        table = process_table()
        roots = [pid for pid, (_, argv) in table.items()
                 if argv and os.path.basename(argv[0]).startswith("containerd-shim")
                 and self.address in argv
                 and (cid is None or cid in argv)]
        return with_descendants(roots, table)

    def remove(self, cid):
        self.ctr("tasks", "kill", "--signal", "SIGKILL", cid, check=False)
        for _ in range(200):
            if "STOPPED" in self.ctr("tasks", "ls", check=False).stdout or \
                    cid not in self.ctr("tasks", "ls", check=False).stdout:
                break
            time.sleep(0.05)
        self.ctr("tasks", "delete", "--force", cid, check=False)
        self.ctr("containers", "delete", cid, check=False)

    def close(self):
        subprocess.run([os.path.join(ROOT, "scripts", "private-containerd.sh"), "stop", self.dir],
                       check=False)


def shim_container(containerd, image, cid, port, runtime="io.containerd.wasmhttp.v1", env=None):
    env = {"WASMHTTP_LISTEN": f"127.0.0.1:{port}", "WASMHTTP_ADMIN_LISTEN": "off", **(env or {})}
    subprocess.run(containerd.run_argv(runtime, image, cid, env), check=True,
                   capture_output=True, timeout=120)
    wait_for_2xx(port, 120)
    return Server("shim (ctr)", port, lambda: containerd.shim_pids(cid),
                  lambda: containerd.remove(cid))


# ----------------------------------------------------------------- sections

def throughput(args, workloads, contenders):
    """Every contender on every workload; results keyed by workload."""
    results = []
    for workload, wasm, post, *path in workloads:
        path = path[0] if path else "/bench"
        for name, start in contenders:
            if start(workload) is None:
                continue
            port = free_port()
            log(f"throughput: {workload} on {name}")
            server = start(workload)(wasm, port)
            try:
                wrk(port, 1, args.connections, post, path)  # warm-up: caches, pool slots, JIT of nothing
                cpu_before = cpu_seconds(server.pids())
                with Sampler(server.pids) as sampler:
                    result = wrk(port, args.duration, args.connections, post, path)
                cpu_used = cpu_seconds(server.pids()) - cpu_before
                idle_after = memory_kib(server.pids())
            finally:
                server.stop()
            result.update(workload=workload, contender=name,
                          pss_load_kib=sampler.peak[0], rss_load_kib=sampler.peak[1],
                          pss_after_kib=idle_after[0],
                          cpu_us_per_request=cpu_used * 1e6 / result["requests"]
                          if result["requests"] else None)
            log(f"  {result['rps']:.0f} rps, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms,"
                f" {result['errors']} errors")
            results.append(result)
    return results


def cold_starts(args, containerd, images, runs):
    """`ctr run` → first 200, first start (compiles) and cached starts, with the split
    the shim's log gives: container process up, component loaded, listener ready."""
    results = []
    for label, runtime, image, container_args in images:
        samples = []
        for attempt in range(runs + 1):
            port = free_port()
            cid = f"cold-{len(results)}-{attempt}"
            env = {"WASMHTTP_LISTEN": f"127.0.0.1:{port}", "WASMHTTP_ADMIN_LISTEN": "off"}
            argv = containerd.run_argv(runtime, image, cid, env,
                                       [a.replace("PORT", str(port)) for a in container_args],
                                       detach=False)
            lines = []
            started = time.monotonic()
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)

            def read_log(proc=proc, lines=lines):
                for line in proc.stdout:
                    lines.append((time.monotonic(), line.decode(errors="replace").rstrip()))

            reader = threading.Thread(target=read_log, daemon=True)
            reader.start()
            answered = wait_for_2xx(port, 180)
            sample = {"total_ms": (answered - started) * 1e3}
            time.sleep(0.05)
            for at, line in list(lines):
                if "first_line_ms" not in sample:
                    sample["first_line_ms"] = (at - started) * 1e3
                m = re.search(r"loaded in ([\d.]+) ms", line)
                if m:
                    sample["load_ms"] = float(m.group(1))
                if "serving HTTP on" in line:
                    sample["listening_ms"] = (at - started) * 1e3
            containerd.remove(cid)
            proc.wait(30)
            samples.append(sample)
            log(f"cold start: {label} #{attempt}: {sample}")
        first, cached = samples[0], samples[1:]

        def median(key):
            values = [s[key] for s in cached if key in s]
            return statistics.median(values) if values else None

        results.append({
            "image": label, "first_ms": first["total_ms"], "first_load_ms": first.get("load_ms"),
            "cached_ms": median("total_ms"), "cached_min_ms": min(s["total_ms"] for s in cached),
            "cached_container_up_ms": median("first_line_ms"), "cached_load_ms": median("load_ms"),
            "cached_listening_ms": median("listening_ms"), "runs": runs,
        })
    return results


def idle_memory(containerd, images):
    """The sum of PSS over all of one idle container's shim processes."""
    results = []
    for label, runtime, image in images:
        port = free_port()
        cid = f"idle-{len(results)}"
        server = shim_container(containerd, image, cid, port, runtime)
        try:
            for _ in range(20):  # a few requests, so lazily touched pages count
                http_status(port)
            time.sleep(1)
            pids = server.pids()
            pss, rss = memory_kib(pids)
        finally:
            server.stop()
        results.append({"image": label, "processes": len(pids), "pss_kib": pss, "rss_kib": rss})
        log(f"idle memory: {label}: {pss / 1024:.1f} MiB PSS over {len(pids)} processes")
    return results


def density(containerd, image, count, parallel=4):
    """Starts `count` containers on distinct ports, checks each answers, stops them all."""
    ports = [free_port() for _ in range(count)]
    ids = [f"dense-{i}" for i in range(count)]

    def start(i):
        env = {"WASMHTTP_LISTEN": f"127.0.0.1:{ports[i]}", "WASMHTTP_ADMIN_LISTEN": "off"}
        subprocess.run(containerd.run_argv("io.containerd.wasmhttp.v1", image, ids[i], env),
                       check=True, capture_output=True, timeout=120)
        wait_for_2xx(ports[i], 120)

    log(f"density: starting {count} containers ({parallel} at a time)")
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(start, range(count)))
    start_s = time.monotonic() - started
    answering = sum(1 for port in ports if http_status(port, timeout=5) == 200)
    time.sleep(1)
    pids = containerd.shim_pids()
    pss, rss = memory_kib(pids)
    log(f"density: {answering}/{count} answer; {pss / 1024:.0f} MiB PSS; stopping")

    def stop(cid):
        containerd.ctr("tasks", "kill", cid, check=False)  # SIGTERM: the drain path

    stopped = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(stop, ids))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "RUNNING" in containerd.ctr("tasks", "ls").stdout:
        time.sleep(0.1)
    stop_s = time.monotonic() - stopped
    still_running = containerd.ctr("tasks", "ls").stdout.count("RUNNING")
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(containerd.remove, ids))
    return {"containers": count, "answering": answering, "start_s": start_s,
            "start_per_s": count / start_s, "pss_total_kib": pss, "rss_total_kib": rss,
            "pss_per_container_kib": pss / count, "processes": len(pids),
            "stop_s": stop_s, "still_running_after_stop": still_running}


# ------------------------------------------------------------------ report

def cgi(args, hello, module, component):
    """CGI programs (a fresh run per request) against proxy-mode hello (a
    fresh instance per request), all in `wasmhttp serve`."""
    mode = {"WASMHTTP_MODE": "cgi"}
    lua = ["--volume", f"{CGI_LUA_APP}:/app:ro", "--", "/app/hello.lua"]
    programs = {
        "hello, proxy mode": (hello, {}, ()),
        "C program, preview 1 module": (module, mode, ()),
        "C program, wasi:cli component": (component, mode, ()),
        "Lua interpreter + script": (CGI_LUA, mode, lua),
    }

    def start(workload):
        _, env, guest_args = programs[workload]
        return lambda wasm, port: wasmhttp_serve(wasm, port, env=env, guest_args=guest_args)
    return throughput(args, [(name, wasm, None) for name, (wasm, _, _) in programs.items()],
                      [("wasmhttp serve", start)])


def apps(args, hello):
    """Routing: hello alone against hello as one route of APP_ROUTES (the
    request matching a prefix route among them). Calls: proxy-js fetching
    hello from the same app in-process (`http://hello.app.internal/`)
    against fetching it from a second `wasmhttp serve` over loopback HTTP
    (what a call to another pod would be, less the network); both count
    the two components' CPU."""
    routed = [(f"/r{i}/...", hello, f"r{i}") for i in range(APP_ROUTES - 1)]
    routed.append(("/...", hello, f"r{APP_ROUTES - 1}"))
    middle = f"/r{APP_ROUTES // 2}/bench"

    callee_port = free_port()

    def over_loopback(port):
        callee = wasmhttp_serve(hello, callee_port)
        try:
            caller = wasmhttp_serve(PROXY_JS, port, env={
                "WASMHTTP_ALLOWED_OUTBOUND_HOSTS": f"127.0.0.1:{callee_port}"},
                ready_path=f"/?url=http://127.0.0.1:{callee_port}/ready")
        except Exception:
            callee.stop()
            raise
        return together(caller, callee)

    in_process = [("/proxy/...", PROXY_JS, "front"), ("/...", hello, "hello")]
    rows = interleaved(args, [
        ("hello, one component", lambda port: wasmhttp_serve(hello, port), "/bench"),
        (f"hello, one route of {APP_ROUTES}", lambda port: wasmhttp_app(routed, port), middle),
    ])
    rows += interleaved(args, [
        ("proxy-js → hello, loopback HTTP", over_loopback,
         f"/?url=http://127.0.0.1:{callee_port}/bench"),
        ("proxy-js → hello, in-process call", lambda port: wasmhttp_app(in_process, port),
         "/proxy/?url=http://hello.app.internal/bench"),
    ])
    return rows


def interleaved(args, contenders):
    """Contenders measured in turns, each round all of them one after the
    other on servers started once, so that a machine's drift (a neighbour, a
    frequency change) meets each alike: one run each, minutes apart, moved
    these by ±10 % here. Each row is its median round (rps, latencies), the
    CPU per request over all its rounds, and every round's rps."""
    servers = []
    try:
        for workload, start, path in contenders:
            port = free_port()
            log(f"apps: starting {workload}")
            servers.append((workload, start(port), path, port))
        for workload, server, path, port in servers:
            wrk(port, 1, args.connections, None, path)  # warm-up
        rounds = {workload: [] for workload, *_ in servers}
        cpu = {workload: [0.0, 0] for workload, *_ in servers}
        for turn in range(args.app_rounds):
            for workload, server, path, port in servers:
                before = cpu_seconds(server.pids())
                result = wrk(port, args.duration, args.connections, None, path)
                cpu[workload][0] += cpu_seconds(server.pids()) - before
                cpu[workload][1] += result["requests"]
                rounds[workload].append(result)
                log(f"  round {turn + 1}, {workload}: {result['rps']:.0f} rps, {result['errors']} errors")
    finally:
        for _, server, _, _ in servers:
            server.stop()
    rows = []
    for workload, *_ in servers:
        results = sorted(rounds[workload], key=lambda r: r["rps"])
        row = dict(results[len(results) // 2])
        seconds, requests = cpu[workload]
        row.update(workload=workload, contender="wasmhttp serve",
                   errors=sum(r["errors"] for r in results),
                   rounds_rps=[r["rps"] for r in rounds[workload]],
                   cpu_us_per_request=seconds * 1e6 / requests if requests else None)
        rows.append(row)
    return rows


def start_redis():
    """A Redis of the bench's own on a free loopback port, nothing persisted."""
    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", tempfile.gettempdir()], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return proc, port


def store(args, cgi_platform):
    """wasi:keyvalue: counter-py's increment request on the memory store and on
    a real Redis (reuse on: the Python runtime's instantiation would hide the
    store), and the host's CPU per store call, from a C CGI program making 1
    and 1 + STORE_CALLS increments per request."""
    redis, redis_port = start_redis()
    backends = {"memory": "memory", "Redis": f"redis://127.0.0.1:{redis_port}"}
    reuse = args.reuse

    def counter(backend):
        env = {"WASMHTTP_KEYVALUE": backends[backend], "WASMHTTP_GUEST_LOG_LEVEL": "off"}
        return lambda wasm, port: wasmhttp_serve(wasm, port, reuse, env=env)

    def cgi_program(backend):
        env = {"WASMHTTP_MODE": "cgi", "WASMHTTP_KEYVALUE": backends[backend]}
        return lambda wasm, port: wasmhttp_serve(wasm, port, env=env)

    try:
        rows = []
        for backend in backends:
            rows += throughput(args, [(f"counter-py increment, {backend}, reuse {reuse}", PY_COUNTER,
                                       None, "/incr/bench")],
                               [("wasmhttp serve", lambda _w, b=backend: counter(b))])
            for calls in (1, 1 + STORE_CALLS):
                rows += throughput(args, [(f"C CGI program, {calls} increment(s), {backend}",
                                           cgi_platform, None, f"/?count=bench&repeat={calls}")],
                                   [("wasmhttp serve", lambda _w, b=backend: cgi_program(b))])
    finally:
        redis.kill()
        redis.wait(10)
    per_call = {}
    for backend in backends:
        one, many = (next(r for r in rows if r["workload"] ==
                          f"C CGI program, {calls} increment(s), {backend}")
                     for calls in (1, 1 + STORE_CALLS))
        if one["cpu_us_per_request"] and many["cpu_us_per_request"]:
            per_call[backend] = (many["cpu_us_per_request"] - one["cpu_us_per_request"]) / STORE_CALLS
    return {"rows": rows, "host_cpu_us_per_call": per_call}


def goals(data):
    """Issues 18's and 25's speed goals, each against what this run measured."""
    def rps(workload, contender):
        return next((r["rps"] for r in data["throughput"]
                     if r["workload"] == workload and r["contender"] == contender), None)

    def cached_ms(image):
        return next((r["cached_ms"] for r in data["cold_start"] if r["image"] == image), None)

    def pss_mib(container):
        return next((r["pss_kib"] / 1024 for r in data["idle_memory"]
                     if r["image"] == container), None)

    def at_least(value, goal, unit="×", digits=2):
        if value is None:
            return "–", "not measured"
        return f"{value:.{digits}f}{unit}", "met" if value >= goal else "not met"

    def at_most(value, goal, unit, digits=0):
        if value is None:
            return "–", "not measured"
        return f"{value:.{digits}f} {unit}", "met" if value <= goal else "not met"

    def over(value, base):
        return value / base if value and base else None

    reuse = data["reuse"]
    wasmtime, native = rps("hello", "wasmtime serve"), rps("hello", "native")
    wasmtime_reuse = rps("hello", f"wasmtime serve, reuse {reuse}")
    rows = []
    for contender in ("wasmhttp serve", "shim (ctr)"):
        rows.append((f"hello, fresh instance, {contender}", "≥ 2.50× wasmtime serve",
                     *at_least(over(rps("hello", contender), wasmtime), 2.5)))
    for contender in ("wasmhttp serve", "shim (ctr)"):
        reused = rps("hello", f"{contender}, reuse {reuse}")
        rows.append((f"hello, reuse {reuse}, {contender}", f"≥ 1.00× wasmtime serve, reuse {reuse}",
                     *at_least(over(reused, wasmtime_reuse), 1.0)))
        rows.append((f"hello, reuse {reuse}, {contender}", "≥ 0.50× native",
                     *at_least(over(reused, native), 0.5)))
    for image in ("hello-js, wasmhttp image", "hello-js, rootfs image"):
        rows.append((f"{image}: cached start", "≤ 150 ms", *at_most(cached_ms(image), 150, "ms")))
    rows.append((f"{APP_COLD}: cached start (issue 25)", "≤ 2.00× hello, wasmhttp image",
                 *at_most(over(cached_ms(APP_COLD), cached_ms("hello, wasmhttp image")), 2.0, "×", 2)))
    def app_rps(workload):
        return next((r["rps"] for r in data.get("apps") or [] if r["workload"] == workload), None)
    rows.append((f"hello, one route of {APP_ROUTES} (issue 25)", "≥ 0.95× hello alone",
                 *at_least(over(app_rps(f"hello, one route of {APP_ROUTES}"),
                                app_rps("hello, one component")), 0.95)))
    floor, hello = pss_mib("floor: runwasi shim, no engine"), pss_mib("wasmhttp, hello")
    rows.append(("idle hello container, PSS over the floor", "≤ 3.0 MiB",
                 *at_most(hello - floor if hello and floor else None, 3.0, "MiB", 1)))
    return rows


def fmt(value, digits=0):
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(value, base):
    return "–" if not value or not base else f"{value / base:.2f}×"


def report(data):
    lines = [f"wasmhttp bench, {data['machine']}", ""]
    lines += [f"Throughput: wrk -t1 -c{data['connections']} -d{data['duration']}s, keep-alive, "
              "loopback; PSS is the peak under load.", ""]
    lines += ["| workload | contender | rps | p50 ms | p99 ms | errors | × wasmtime serve | × native | PSS MiB |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for workload in dict.fromkeys(r["workload"] for r in data["throughput"]):
        rows = [r for r in data["throughput"] if r["workload"] == workload]
        base = next((r["rps"] for r in rows if r["contender"] == "wasmtime serve"), None)
        ceiling = next((r["rps"] for r in rows if r["contender"] == "native"), None)
        for r in rows:
            lines.append(f"| {workload} | {r['contender']} | {fmt(r['rps'])} | {fmt(r['p50_ms'], 2)} | "
                         f"{fmt(r['p99_ms'], 2)} | {r['errors']} | {ratio(r['rps'], base)} | "
                         f"{ratio(r['rps'], ceiling)} | {fmt(r['pss_load_kib'] / 1024, 1)} |")
    if data.get("store"):
        lines += ["", "Platform services (wasi:keyvalue), all in `wasmhttp serve`; same load. "
                  "Server CPU counts wasmhttp's process only (not Redis').", "",
                  "| workload | rps | p50 ms | p99 ms | errors | server CPU µs per request |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in data["store"]["rows"]:
            lines.append(f"| {r['workload']} | {fmt(r['rps'])} | {fmt(r['p50_ms'], 2)} | "
                         f"{fmt(r['p99_ms'], 2)} | {r['errors']} | {fmt(r['cpu_us_per_request'])} |")
        lines += [""] + [f"Host CPU per store call ({backend}): {fmt(us, 1)} µs "
                         f"(the {STORE_CALLS} extra increments' CPU, divided by {STORE_CALLS})"
                         for backend, us in data["store"]["host_cpu_us_per_call"].items()]
    if data.get("cgi"):
        lines += ["", "CGI: a fresh run of the program per request, against proxy-mode hello "
                  "(a fresh instance per request), all in `wasmhttp serve`; same load.", "",
                  "| program | rps | p50 ms | p99 ms | errors | × proxy hello | server CPU µs per request |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        base = data["cgi"][0]["rps"]
        for r in data["cgi"]:
            lines.append(f"| {r['workload']} | {fmt(r['rps'])} | {fmt(r['p50_ms'], 2)} | "
                         f"{fmt(r['p99_ms'], 2)} | {r['errors']} | {ratio(r['rps'], base)} | "
                         f"{fmt(r['cpu_us_per_request'])} |")
    if data.get("apps"):
        lines += ["", f"Apps, all in `wasmhttp serve`; same load. Routing: hello alone against hello "
                  f"as one of {APP_ROUTES} routes. Calls: proxy-js fetching hello in-process against "
                  "over loopback HTTP from a second server (server CPU: both components'). Each pair "
                  f"in {data.get('app_rounds', 1)} interleaved rounds; rps is the median round's.", "",
                  "| workload | rps | each round's rps | p50 ms | p99 ms | errors | × the first of its pair | server CPU µs per request |",
                  "|---|---:|---|---:|---:|---:|---:|---:|"]
        for first, second in ((0, 1), (2, 3)):
            pair = data["apps"][first], data["apps"][second]
            for r in pair:
                rounds = ", ".join(fmt(rps) for rps in r.get("rounds_rps", []))
                lines.append(f"| {r['workload']} | {fmt(r['rps'])} | {rounds} | {fmt(r['p50_ms'], 2)} | "
                             f"{fmt(r['p99_ms'], 2)} | {r['errors']} | {ratio(r['rps'], pair[0]['rps'])} | "
                             f"{fmt(r['cpu_us_per_request'])} |")
    lines += ["", f"Cold start: `ctr run` → first 200 (first start compiles; cached: median of "
              f"{data['cold_start'][0]['runs'] if data['cold_start'] else 0} runs, and its split).", "",
              "| image | first start ms | cached ms | cached min ms | first log line at ms | load ms | listening at ms |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["cold_start"]:
        lines.append(f"| {r['image']} | {fmt(r['first_ms'])} | {fmt(r['cached_ms'])} | "
                     f"{fmt(r['cached_min_ms'])} | {fmt(r['cached_container_up_ms'])} | "
                     f"{fmt(r['cached_load_ms'], 1)} | {fmt(r['cached_listening_ms'])} |")
    lines += ["", "Idle memory: one container, sum over all its shim processes.", "",
              "| container | processes | PSS MiB | RSS MiB |", "|---|---:|---:|---:|"]
    for r in data["idle_memory"]:
        lines.append(f"| {r['image']} | {r['processes']} | {fmt(r['pss_kib'] / 1024, 1)} | "
                     f"{fmt(r['rss_kib'] / 1024, 1)} |")
    d = data.get("density")
    if d:
        lines += ["", "Density: hello containers through containerd, 4 `ctr run` at a time.", "",
                  "| containers | answering | start s | containers/s | PSS total MiB | PSS per container MiB | stop (SIGTERM) s |",
                  "|---:|---:|---:|---:|---:|---:|---:|",
                  f"| {d['containers']} | {d['answering']} | {fmt(d['start_s'], 1)} | "
                  f"{fmt(d['start_per_s'], 1)} | {fmt(d['pss_total_kib'] / 1024)} | "
                  f"{fmt(d['pss_per_container_kib'] / 1024, 1)} | {fmt(d['stop_s'], 1)} |"]
    if data.get("goals"):
        lines += ["", "Goals (issues 18 and 25), from this run:", "", "| what | goal | measured | |",
                  "|---|---|---:|---|"]
        lines += [f"| {what} | {goal} | {measured} | {verdict} |"
                  for what, goal, measured, verdict in data["goals"]]
    return "\n".join(lines) + "\n"


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} × {cpu}, {mem:.0f} GiB, Linux {platform.release()}"


def smoke_check(data, sections):
    """A smoke run measures nothing worth keeping, but every section it ran
    must have produced its rows, and every container it started must have
    answered: what breaks the bench fails `make test`."""
    problems = []
    for key, section in (("throughput", "throughput"), ("cgi", "cgi"), ("apps", "apps"),
                         ("cold_start", "cold"), ("idle_memory", "memory")):
        if section in sections and not data[key]:
            problems.append(f"the {section} section produced no rows")
    for key in ("throughput", "cgi", "apps"):
        if key in sections:
            problems += [f"{key}: {r['workload']} on {r['contender']} served nothing"
                         for r in data[key] if not r["rps"] or r["errors"]]
    if "store" in sections:
        rows = data["store"]["rows"] if data["store"] else []
        if len(rows) != 6:
            problems.append(f"the store section produced {len(rows)} rows, not 6")
        problems += [f"store: {r['workload']} served nothing or failed"
                     for r in rows if not r["rps"] or r["errors"]]
    if "memory" in sections:
        problems += [f"idle memory: {r['image']} was not measured"
                     for r in data["idle_memory"] if not r["pss_kib"]]
    d = data["density"]
    if "density" in sections and (not d or d["answering"] != d["containers"]):
        problems.append(f"density: not every container answered: {d}")
    if problems:
        sys.exit("bench smoke run: " + "; ".join(problems))
    log("smoke run: every section produced its rows")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="where results.json and results.md go")
    parser.add_argument("--wasmtime", help="the wasmtime CLI to compare with (without it, "
                        "wasmhttp is measured against the native server only)")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--density", type=int, default=100)
    parser.add_argument("--reuse", type=int, default=64,
                        help="WASMHTTP_INSTANCE_REUSE (and wasmtime's reuse count) for the reuse rows")
    parser.add_argument("--runs", type=int, default=5, help="cached starts per image")
    parser.add_argument("--app-rounds", type=int, default=3,
                        help="interleaved rounds of each pair in the apps section")
    parser.add_argument("--quick", action="store_true", help="2 s loads, 10 containers: a short run")
    parser.add_argument("--smoke", action="store_true",
                        help="every section for a second or so, without --wasmtime if need be "
                             "(make test runs it so the bench cannot rot; its numbers mean nothing)")
    parser.add_argument("--sections", default="throughput,cgi,apps,store,cold,memory,density",
                        help="comma-separated subset of throughput,cgi,apps,store,cold,memory,density")
    parser.add_argument("--report", metavar="RESULTS_JSON",
                        help="only print the tables of an earlier run")
    args = parser.parse_args()
    if args.report:
        with open(args.report) as f:
            print(report(json.load(f)))
        return
    if not args.out:
        parser.error("--out is required for a run")
    if not args.wasmtime and not args.smoke:
        print("bench: no --wasmtime given: the wasmtime serve rows are left out")
    if args.quick:
        args.duration, args.density, args.runs, args.app_rounds = 2, 10, 2, 2
    if args.smoke:
        args.duration, args.connections, args.density, args.runs, args.app_rounds = 1, 4, 3, 1, 1
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="wasmhttp-bench-files.")
    subprocess.run([FIXTURES, "build", work, "hello", "echo", "cgi", "cgi-component", "cgi-platform"],
                   check=True)
    hello, echo = os.path.join(work, "hello.wasm"), os.path.join(work, "echo.wasm")
    cgi_module, cgi_component = (os.path.join(work, f"{name}.wasm")
                                 for name in ("cgi", "cgi-component"))
    wasm_of = {"hello": hello, "echo 64 KiB": echo, "hello-js": JS_HELLO,
               "hello-py 0.2": PY_HELLO, "hello-py 0.3": PY_SERVICE}

    containerd = Containerd()
    try:
        images = {}
        for name, wasm in wasm_of.items():
            ref = f"bench/{slug(name)}:latest"
            archive = os.path.join(work, ref.replace("/", "_") + ".tar")
            subprocess.run([WASMHTTP, "image", wasm, "--name", ref, "-o", archive], check=True,
                           capture_output=True)
            containerd.import_image(archive)
            images[name] = "docker.io/" + ref
        # the same components as plain linux/amd64 rootfs images (`FROM scratch` + COPY)
        for name in ("hello", "hello-js"):
            with open(wasm_of[name], "rb") as f:
                wasm = f.read()
            ref = f"docker.io/bench/{name}-rootfs:latest"
            archive = os.path.join(work, f"{name}-rootfs.tar")
            write_rootfs_image(archive, ref, {"/app/app.wasm": (wasm, 0o644)}, ["/app/app.wasm"])
            containerd.import_image(archive)
            images[name + " (rootfs)"] = ref
        with open(NATIVE, "rb") as f:
            native_binary = f.read()
        archive = os.path.join(work, "native.tar")
        write_rootfs_image(archive, "docker.io/bench/native:latest",
                           {"/server": (native_binary, 0o755)}, ["/server"])
        containerd.import_image(archive)
        images["native"] = "docker.io/bench/native:latest"
        images["app"] = app_image(containerd, work, hello)

        def shim(reuse=None):
            def start(workload):
                def run(_wasm, port):
                    env = {"WASMHTTP_INSTANCE_REUSE": str(reuse)} if reuse else {}
                    cid = f"tp-{slug(workload)}-{reuse or 1}"
                    return shim_container(containerd, images[workload], cid, port, env=env)
                return run
            return start

        reuse = args.reuse
        contenders = [
            ("native", lambda w: (lambda _wasm, port: native(port)) if w in NATIVE_WORKLOADS
             else None),
            ("wasmtime serve", lambda w: lambda wasm, port: wasmtime_serve(
                args.wasmtime, wasm, port, p3=w in P3_WORKLOADS)),
            ("wasmhttp serve", lambda w: lambda wasm, port: wasmhttp_serve(wasm, port)),
            ("shim (ctr)", shim()),
            (f"wasmtime serve, reuse {reuse}",
             lambda w: (lambda wasm, port: wasmtime_serve(args.wasmtime, wasm, port, reuse,
                                                         p3=w in P3_WORKLOADS))
             if w != "echo 64 KiB" else None),
            (f"wasmhttp serve, reuse {reuse}",
             lambda w: (lambda wasm, port: wasmhttp_serve(wasm, port, reuse))
             if w != "echo 64 KiB" else None),
            (f"shim (ctr), reuse {reuse}", lambda w: shim(reuse)(w) if w != "echo 64 KiB" else None),
        ]
        if not args.wasmtime:
            contenders = [(name, start) for name, start in contenders
                          if not name.startswith("wasmtime")]
        # with reuse, a wasi:http 0.3 instance also serves up to
        # WASMHTTP_INSTANCE_CONCURRENCY (default 8) requests at once
        workloads = [("hello", hello, None), ("echo 64 KiB", echo, ECHO_BODY),
                     ("hello-js", JS_HELLO, None), ("hello-py 0.2", PY_HELLO, None),
                     ("hello-py 0.3", PY_SERVICE, None)]
        data = {"machine": machine(), "duration": args.duration, "connections": args.connections,
                "reuse": reuse, "app_rounds": args.app_rounds,
                "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        sections = set(args.sections.split(","))
        # cold starts first: a first start must find nothing compiled yet
        wasm_runtime = "io.containerd.wasmhttp.v1"
        data["cold_start"] = [] if "cold" not in sections else cold_starts(args, containerd, [
            ("native static server (runc)", "io.containerd.runc.v2", images["native"],
             ["/server", "127.0.0.1:PORT"]),
            ("hello, wasmhttp image", wasm_runtime, images["hello"], []),
            ("hello, rootfs image", wasm_runtime, images["hello (rootfs)"], []),
            ("hello-js, wasmhttp image", wasm_runtime, images["hello-js"], []),
            ("hello-js, rootfs image", wasm_runtime, images["hello-js (rootfs)"], []),
            (APP_COLD, wasm_runtime, images["app"], []),
        ], args.runs)
        data["throughput"] = throughput(args, workloads, contenders) \
            if "throughput" in sections else []
        data["cgi"] = cgi(args, hello, cgi_module, cgi_component) if "cgi" in sections else []
        data["apps"] = apps(args, hello) if "apps" in sections else []
        data["store"] = store(args, os.path.join(work, "cgi-platform.wasm")) \
            if "store" in sections else None

        data["idle_memory"] = [] if "memory" not in sections else idle_memory(containerd, [
            ("floor: runwasi shim, no engine", "io.containerd.floor.v1", images["hello"]),
            ("wasmhttp, hello", wasm_runtime, images["hello"]),
            ("wasmhttp, hello-js", wasm_runtime, images["hello-js"]),
        ])
        data["density"] = density(containerd, images["hello"], args.density) \
            if "density" in sections else None
    finally:
        containerd.close()
        shutil.rmtree(work, ignore_errors=True)

    data["goals"] = goals(data)
    if args.smoke:
        smoke_check(data, sections)
    table = report(data)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(data, f, indent=2)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    print(table)
    log(f"wrote {args.out}/results.json and {args.out}/results.md")


if __name__ == "__main__":
    main()
