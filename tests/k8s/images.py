"""Native Linux images for the k8s suite, built without Docker: an OCI image
archive (what `ctr images import` reads) with one uncompressed tar layer of
the given files. Deterministic: the same files give the same digests."""

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path


def _blob(blobs: dict, media_type: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _layer(files: dict) -> bytes:
    """files: path in the image -> (content bytes, mode)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        directories = sorted({str(Path(p).parent) for p in files if str(Path(p).parent) != "."})
        for directory in directories:
            parts = Path(directory).parts
            for depth in range(1, len(parts) + 1):
                name = "/".join(parts[:depth])
                if name in tar.getnames():
                    continue
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
        for path in sorted(files):
            content, mode = files[path]
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = mode
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def write_archive(out: Path, reference: str, files: dict, entrypoint: list, cmd: list = ()) -> Path:
    """Writes an OCI image archive for `reference` (e.g. docker.io/library/x:1)."""
    blobs: dict = {}
    layer = _layer(files)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(entrypoint),
            "Cmd": list(cmd),
            "Env": ["PATH=/usr/local/bin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _blob(blobs, "application/vnd.oci.image.config.v1+json",
                        json.dumps(config, sort_keys=True).encode()),
        "layers": [_blob(blobs, "application/vnd.oci.image.layer.v1.tar", layer)],
    }
    descriptor = _blob(blobs, manifest["mediaType"], json.dumps(manifest, sort_keys=True).encode())
    descriptor["annotations"] = {
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1],
    }
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [descriptor]}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        def add(name: str, data: bytes):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in sorted(blobs.items()):
            add("blobs/sha256/" + digest.split(":", 1)[1], data)
    return out


def busybox(out: Path, reference: str, args: list) -> Path:
    """Debian's static busybox as /bin/busybox, running `busybox ARGS…`."""
    busybox_binary = Path("/bin/busybox").read_bytes()
    return write_archive(out, reference, {"bin/busybox": (busybox_binary, 0o755)},
                         ["/bin/busybox", *args])


def installer(out: Path, reference: str, static_dir: Path) -> Path:
    """The node installer image of deploy/installer.Dockerfile, from the
    static binaries `make static` wrote (no Docker engine here)."""
    files = {
        "usr/local/bin/containerd-shim-wasmhttp-v1":
            ((static_dir / "containerd-shim-wasmhttp-v1").read_bytes(), 0o755),
        "usr/local/bin/wasmhttp-node-installer":
            ((static_dir / "wasmhttp-node-installer").read_bytes(), 0o755),
    }
    return write_archive(out, reference, files, ["/usr/local/bin/wasmhttp-node-installer"],
                         ["install", "--stay"])


def redis(out: Path, reference: str) -> Path:
    """Debian's Redis server (redis-tools' binary, by the name that makes it
    the server) with the shared libraries it links, as `redis-server ARGS…`."""
    binary = Path("/usr/bin/redis-check-rdb")
    files = {"usr/bin/redis-server": (binary.read_bytes(), 0o755)}
    listing = subprocess.run(["ldd", str(binary)], check=True, capture_output=True, text=True).stdout
    for line in listing.splitlines():
        # "libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)" or the loader's own line
        path = line.split("=>")[-1].strip().split(" ")[0]
        if path.startswith("/"):
            files[path.lstrip("/")] = (Path(path).read_bytes(), 0o755)
    return write_archive(out, reference, files, ["/usr/bin/redis-server"])
