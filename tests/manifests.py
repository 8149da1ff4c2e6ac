"""Checks the Helm chart and the plain manifests offline, as `make test` runs it:

1. `helm lint --strict` of the chart;
2. `helm template` with the default values and with every non-default knob,
   each rendered object validated against the Kubernetes schemas
   (kubernetes-validate --strict);
3. values the chart must refuse (its values.schema.json) are refused;
4. deploy/runtimeclass.yaml and deploy/installer.yaml say what the chart
   says (compared as objects, without Helm's bookkeeping labels), so the two
   install paths cannot drift apart;
5. deploy/ and the examples' manifests are valid.
Exits non-zero with the reason on the first failure.
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "build/tools"
HELM = str(TOOLS / "bin/helm")
VALIDATE = str(TOOLS / "venv/bin/kubernetes-validate")
CHART = str(ROOT / "charts/wasmhttp")


def run(args, expect_ok=True):
    done = subprocess.run(args, capture_output=True, text=True)
    if expect_ok and done.returncode != 0:
        sys.exit(f"manifests: {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done


def render(*flags):
    out = run([HELM, "template", "wasmhttp", CHART, "--namespace", "kube-system", *flags]).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def validate(objects, what):
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, obj in enumerate(objects):
            path = Path(tmp) / f"{i:02}-{obj['kind']}.yaml"
            path.write_text(yaml.safe_dump(obj))
            files.append(str(path))
        done = run([VALIDATE, "--strict", "--quiet", *files], expect_ok=False)
        if done.returncode != 0:
            sys.exit(f"manifests: {what} does not validate:\n{done.stdout}{done.stderr}")


def without_helm_labels(obj):
    obj = yaml.safe_load(yaml.safe_dump(obj))
    obj["metadata"].pop("labels", None)
    return obj


def key(obj):
    return (obj["kind"], obj["metadata"]["name"])


run([HELM, "lint", "--strict", CHART])
print("manifests: helm lint --strict: ok")

default = render()
kinds = sorted(key(o) for o in default)
expected = [
    ("ClusterRole", "wasmhttp-installer"),
    ("ClusterRoleBinding", "wasmhttp-installer"),
    ("DaemonSet", "wasmhttp-installer"),
    ("RuntimeClass", "wasmhttp"),
    ("ServiceAccount", "wasmhttp-installer"),
]
if kinds != expected:
    sys.exit(f"manifests: the chart renders {kinds}, expected {expected}")
validate(default, "the chart with default values")

tuned = render(
    "--set", "installer.flavour=k3s",
    "--set", "installer.restart=signal",
    "--set", "settings.WASMHTTP_LISTEN=0.0.0.0:9000",
    "--set", "image.tag=dev",
    "--set", "nodeSelector.pool=wasm",
    "--set", "runtimeClass.name=wasm-http",
)
validate(tuned, "the chart with every knob set")
daemonset = next(o for o in tuned if o["kind"] == "DaemonSet")
container = daemonset["spec"]["template"]["spec"]["containers"][0]
for must in (["--flavour", "k3s"], ["--restart", "signal"]):
    i = container["args"].index(must[0])
    if container["args"][i:i + 2] != must:
        sys.exit(f"manifests: {must} not passed to the installer: {container['args']}")
if not container["image"].endswith(":dev"):
    sys.exit(f"manifests: image.tag ignored: {container['image']}")
settings = next(o for o in tuned if o["kind"] == "ConfigMap")
if settings["data"] != {"WASMHTTP_LISTEN": "0.0.0.0:9000"}:
    sys.exit(f"manifests: settings ConfigMap wrong: {settings['data']}")
runtime_class = next(o for o in tuned if o["kind"] == "RuntimeClass")
if runtime_class["metadata"]["name"] != "wasm-http" or runtime_class["handler"] != "wasmhttp":
    sys.exit(f"manifests: RuntimeClass wrong: {runtime_class}")
jobs = [o for o in render("--set", "uninstall.nodes={node-a,node-b}") if o["kind"] == "Job"]
validate(jobs, "the uninstall Jobs")
if sorted(j["spec"]["template"]["spec"]["nodeName"] for j in jobs) != ["node-a", "node-b"]:
    sys.exit(f"manifests: uninstall Jobs are not one per listed node: {jobs}")
for job in jobs:
    if job["metadata"]["annotations"].get("helm.sh/hook") != "pre-delete":
        sys.exit(f"manifests: the uninstall Job is not a pre-delete hook: {job['metadata']}")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    if args[0] != "uninstall" or args[args.index("--restart") + 1] != "never":
        sys.exit(f"manifests: the uninstall Job runs {args}")
print("manifests: helm template (default and tuned values, uninstall Jobs) validates: ok")

for bad in (
    ["--set", "installer.restart=sometimes"],
    ["--set", "installer.flavour=microk8s"],
    ["--set", "settings.WASMHTTP_LISTN=0.0.0.0:1"],
):
    done = run([HELM, "template", "wasmhttp", CHART, *bad], expect_ok=False)
    if done.returncode == 0:
        sys.exit(f"manifests: the chart accepted {bad}")
print("manifests: bad values are refused: ok")

# Every setting the README's configuration table lists, with the (first)
# value of its example column, is accepted and published as given; and a
# number given with --set (an integer to Helm) as well.
readme_settings = {}
example_column = None
for line in (ROOT / "README.md").read_text().splitlines():
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    if line.startswith("| variable |") and "example" in cells:
        example_column = cells.index("example")
    elif line.startswith("| `WASMHTTP_"):
        if example_column is None:
            sys.exit("manifests: a setting's row comes before the table's header names its example column")
        readme_settings[cells[0].strip("`")] = cells[example_column].split("`")[1]
if len(readme_settings) < 14:
    sys.exit(f"manifests: the README's configuration table has {len(readme_settings)} rows")
with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
    yaml.safe_dump({"settings": readme_settings}, values)
    values.flush()
    every = render("-f", values.name)
validate(every, "the chart with every setting")
published = next(o for o in every if o["kind"] == "ConfigMap")["data"]
if published != readme_settings:
    sys.exit(f"manifests: the settings ConfigMap has {published}, expected {readme_settings}")
numbers = render("--set", "settings.WASMHTTP_MAX_CONCURRENCY=32",
                 "--set", "settings.WASMHTTP_INSTANCE_REUSE=100000")
published = next(o for o in numbers if o["kind"] == "ConfigMap")["data"]
if published != {"WASMHTTP_MAX_CONCURRENCY": "32", "WASMHTTP_INSTANCE_REUSE": "100000"}:
    sys.exit(f"manifests: numbers given with --set are published as {published}")
print(f"manifests: the chart takes all {len(readme_settings)} settings of the README: ok")

plain = {}
for name in ("runtimeclass.yaml", "installer.yaml"):
    for obj in yaml.safe_load_all((ROOT / "deploy" / name).read_text()):
        if obj:
            plain[key(obj)] = without_helm_labels(obj)
charted = {key(o): without_helm_labels(o) for o in default}
if plain != charted:
    for k in sorted(set(plain) | set(charted)):
        if plain.get(k) != charted.get(k):
            sys.exit(
                f"manifests: deploy/ and the chart differ on {k}:\n"
                f"deploy/: {yaml.safe_dump(plain.get(k))}\nchart: {yaml.safe_dump(charted.get(k))}"
            )
print("manifests: deploy/ matches the chart: ok")

plain_files = [str(p) for p in sorted((ROOT / "deploy").glob("*.yaml"))]
plain_files += [str(p) for p in sorted((ROOT / "examples").glob("*/k8s.yaml"))]
done = run([VALIDATE, "--strict", "--quiet", *plain_files], expect_ok=False)
if done.returncode != 0:
    sys.exit(f"manifests: deploy/ or examples do not validate:\n{done.stdout}{done.stderr}")
print(f"manifests: {len(plain_files)} files in deploy/ and examples/ validate: ok")
