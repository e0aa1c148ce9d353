#!/usr/bin/env python3
"""Check the deployment files in deploy/ against the code; write the ConfigMap.

    python3 scripts/check_deploy.py                 # check; exit 1 on any mismatch
    python3 scripts/check_deploy.py --write         # regenerate deploy/kubernetes/base/configmap.yaml
    python3 scripts/check_deploy.py --out DIR       # check, then write DIR/posterior.toml
                                                    # (the ConfigMap's) and DIR/base.env,
                                                    # DIR/redis.env (each variant's
                                                    # environment, Secret placeholders
                                                    # resolved) for tests/deploy.rs

What the code says is read from the Rust sources (no copy kept here, so a
change there that the manifests miss fails this check): the HTTP routes
(`.route("...")` in src/http/mod.rs), the default listen address and the
config structs' fields and the environment overrides (src/config.rs), the
`serve` subcommand's `--config` flag (src/cli/serve.rs).

The ConfigMap is config/posterior.toml (every key and comment) with the
values in CONFIGMAP_VALUES below: a container must listen on every address,
keep its store on the volume, and export metrics. `--write` regenerates it;
the check fails when it is stale (the same way scripts/gen_openapi.py does).

When `kubectl` is on PATH, the kustomizations are also rendered
(`kubectl kustomize`, offline) and the rendered Deployments checked; without
it the Redis variant is checked from its patch file alone (said on stderr).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
UNIT = ROOT / "deploy" / "systemd" / "posterior.service"
CONFIG_TOML = ROOT / "config" / "posterior.toml"
BASE = K8S / "base"
CONFIGMAP = BASE / "configmap.yaml"

# The values a container needs that differ from config/posterior.toml's
# defaults. Everything else (and every key) is the file's.
CONTAINER_DATA_DIR = "/var/lib/posterior"
CONFIGMAP_VALUES = {
    # Inside a pod the Service and the kubelet's probes come from outside the
    # loopback; API keys (the Secret) make that allowed (auth.keys).
    ("server", "listen"): "0.0.0.0:50051",
    # On the data volume: the root filesystem is read-only.
    ("store", "path"): f"{CONTAINER_DATA_DIR}/posterior.redb",
    ("metrics", "listen"): "0.0.0.0:9464",
}
CONFIG_MOUNT = "/etc/posterior"

errors: list[str] = []


def fail(msg: str) -> None:
    errors.append(msg)


def expect(cond: bool, msg: str) -> bool:
    if not cond:
        fail(msg)
    return cond


# ---- what the code says ------------------------------------------------------


def rust_routes() -> set[str]:
    text = (ROOT / "src" / "http" / "mod.rs").read_text()
    return set(re.findall(r'\.route\(\s*"([^"]+)"', text))


def rust_config() -> tuple[dict[str, set[str]], str, set[str]]:
    """(section -> keys from the structs, default server.listen, env names)."""
    text = (ROOT / "src" / "config.rs").read_text()
    structs: dict[str, list[tuple[str, str]]] = {}
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
        fields = re.findall(r"^\s*pub (\w+): ([\w:<>, ]+),", m.group(2), re.M)
        structs[m.group(1)] = fields
    sections = {}
    for name, ty in structs.get("Config", []):
        if ty not in structs:
            fail(f"src/config.rs: section {name} has type {ty}, whose struct was not found")
            continue
        sections[name] = {f for f, _ in structs[ty]}
    m = re.search(r'impl Default for ServerConfig.*?listen: "([^"]+)"', text, re.S)
    default_listen = m.group(1) if m else ""
    expect(bool(default_listen), "src/config.rs: default server.listen not found")
    m = re.search(r"pub const ENV_OVERRIDES.*?\];", text, re.S)
    env = set(re.findall(r'"(POSTERIOR_[A-Z_]+)"', m.group(0))) if m else set()
    expect(bool(env), "src/config.rs: ENV_OVERRIDES not found")
    return sections, default_listen, env


def serve_has_config_flag() -> bool:
    text = (ROOT / "src" / "cli" / "serve.rs").read_text()
    return re.search(r"#\[arg\(long[^\]]*\)\]\s*pub config:", text) is not None


def port_of(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def toml_keys(doc: dict) -> set[str]:
    """section.key for every key; a table value (bandit.fallback_arms) is one key."""
    return {f"{s}.{k}" for s, table in doc.items() for k in table}


# ---- the ConfigMap -------------------------------------------------------------


def configmap_toml() -> str:
    """config/posterior.toml with CONFIGMAP_VALUES substituted, line by line so
    every comment stays."""
    out, section, done = [], None, set()
    for line in CONFIG_TOML.read_text().splitlines():
        m = re.match(r"^\[([\w.]+)\]\s*$", line)
        if m:
            section = m.group(1)
        m = re.match(r"^(\w+)\s*=", line)
        if m and (section, m.group(1)) in CONFIGMAP_VALUES:
            value = CONFIGMAP_VALUES[(section, m.group(1))]
            line = f"{m.group(1)} = {value!r}".replace("'", '"')
            done.add((section, m.group(1)))
        out.append(line.rstrip())
    missing = set(CONFIGMAP_VALUES) - done
    if missing:
        sys.exit(f"check_deploy: config/posterior.toml has no key {sorted(missing)}")
    return "\n".join(out) + "\n"


def configmap_yaml() -> str:
    body = "".join(f"    {line}\n" if line else "\n" for line in configmap_toml().splitlines())
    changed = ", ".join(f"{s}.{k}" for s, k in CONFIGMAP_VALUES)
    return (
        "# GENERATED by `python3 scripts/check_deploy.py --write` from\n"
        f"# config/posterior.toml, with {changed} set for a\n"
        "# container (scripts/check_deploy.py, CONFIGMAP_VALUES). Do not edit: change\n"
        "# the script or config/posterior.toml. Secrets come from the environment\n"
        "# (secret.example.yaml), never from here.\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: posterior-config\n"
        "data:\n"
        "  posterior.toml: |\n" + body
    )


# ---- manifests ---------------------------------------------------------------


def load_docs(text: str, where: str) -> list[dict]:
    try:
        return [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as e:
        sys.exit(f"check_deploy: {where}: not YAML: {e}")


def by_kind(docs: list[dict], kind: str, where: str) -> dict:
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        sys.exit(f"check_deploy: {where}: expected one {kind}, found {len(found)}")
    return found[0]


def check_deployment(dep: dict, cm_doc: dict, secret: dict, routes: set[str],
                     env_names: set[str], where: str) -> dict[str, str]:
    """Every rule on one Deployment; returns its environment (Secret values
    resolved from the example Secret)."""
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    sel = spec["selector"]["matchLabels"]
    expect(all(labels.get(k) == v for k, v in sel.items()),
           f"{where}: selector {sel} does not match the pod labels {labels}")
    (c,) = [c for c in pod["containers"] if c["name"] == "posterior"]

    # The command: `serve --config <the ConfigMap's file>`.
    args = c.get("args", [])
    expect(args[:1] == ["serve"], f"{where}: args must start with the serve subcommand, got {args}")
    expect("--config" in args, f"{where}: args must pass --config, got {args}")
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    if "--config" in args:
        path = args[args.index("--config") + 1]
        cfg_mount = [m for m in mounts.values()
                     if vols.get(m["name"], {}).get("configMap", {}).get("name") == "posterior-config"]
        expect(len(cfg_mount) == 1, f"{where}: the ConfigMap posterior-config must be mounted once")
        if cfg_mount:
            expect(path == f"{cfg_mount[0]['mountPath']}/posterior.toml",
                   f"{where}: --config {path} is not the mounted ConfigMap's posterior.toml "
                   f"({cfg_mount[0]['mountPath']}/posterior.toml)")

    # Ports: the container's named ports are the ConfigMap's listen ports.
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    api_port = port_of(cm_doc["server"]["listen"])
    expect(ports.get("api") == api_port,
           f"{where}: container port 'api' is {ports.get('api')}, server.listen says {api_port}")
    metrics_port = port_of(cm_doc["metrics"]["listen"])
    expect(ports.get("metrics") == metrics_port,
           f"{where}: container port 'metrics' is {ports.get('metrics')}, metrics.listen says {metrics_port}")
    ann = spec["template"]["metadata"].get("annotations", {})
    if "prometheus.io/port" in ann:
        expect(ann["prometheus.io/port"] == str(metrics_port),
               f"{where}: annotation prometheus.io/port {ann['prometheus.io/port']} != {metrics_port}")

    # Probes: paths the HTTP router serves, on the api port, plain HTTP
    # unless the ConfigMap turns TLS on.
    scheme = "HTTPS" if cm_doc["server"]["tls_cert"] else "HTTP"
    for probe, route in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet")
        if not expect(get is not None, f"{where}: {probe} must be an httpGet"):
            continue
        expect(get.get("path") == route, f"{where}: {probe} path {get.get('path')!r}, expected {route!r}")
        expect(get.get("path") in routes,
               f"{where}: {probe} path {get.get('path')!r} is not a route of src/http/mod.rs ({sorted(routes)})")
        expect(get.get("port") in ("api", api_port),
               f"{where}: {probe} port {get.get('port')!r} is not the api port ({api_port})")
        expect(get.get("scheme", "HTTP") == scheme, f"{where}: {probe} scheme must be {scheme}")

    # Hardening.
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    expect(psc.get("runAsNonRoot") is True, f"{where}: pod securityContext.runAsNonRoot must be true")
    expect(psc.get("runAsUser", 0) > 0, f"{where}: pod securityContext.runAsUser must be non-zero")
    expect(csc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem must be true")
    expect(csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation must be false")
    expect(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities must drop ALL")
    req = c.get("resources", {}).get("requests", {})
    expect("cpu" in req and "memory" in req, f"{where}: resources.requests needs cpu and memory")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    expect(grace > cm_doc["server"]["shutdown_grace_seconds"],
           f"{where}: terminationGracePeriodSeconds {grace} must exceed server.shutdown_grace_seconds "
           f"{cm_doc['server']['shutdown_grace_seconds']} (else SIGKILL cuts the graceful shutdown)")

    # The store's directory is a writable volume (the root filesystem is not).
    data_dir = os.path.dirname(cm_doc["store"]["path"])
    data = [m for m in mounts.values() if m["mountPath"] == data_dir]
    expect(len(data) == 1 and not data[0].get("readOnly"),
           f"{where}: store.path {cm_doc['store']['path']} must be on a writable volume mounted at {data_dir}")

    # Environment: only names the code reads, Secret keys that exist.
    env: dict[str, str] = {}
    secret_data = secret.get("stringData", {})
    for e in c.get("env", []):
        expect(e["name"] in env_names,
               f"{where}: env {e['name']} is not read by posterior (src/config.rs ENV_OVERRIDES)")
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        ref = e.get("valueFrom", {}).get("secretKeyRef", {})
        if expect(ref.get("name") == secret["metadata"]["name"] and ref.get("key") in secret_data,
                  f"{where}: env {e['name']} refers to {ref}, not a key of the Secret "
                  f"{secret['metadata']['name']} in secret.example.yaml"):
            env[e["name"]] = secret_data[ref["key"]]
    return env


def check_selectors(docs: list[dict], dep: dict, where: str) -> None:
    labels = dep["spec"]["template"]["metadata"].get("labels", {})
    ports = {p["name"]: p["containerPort"]
             for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
    svc = by_kind(docs, "Service", where)
    sel = svc["spec"]["selector"]
    expect(all(labels.get(k) == v for k, v in sel.items()),
           f"{where}: Service selector {sel} does not select the pods ({labels})")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for name in ("api", "metrics"):
        p = svc_ports.get(name)
        if expect(p is not None, f"{where}: Service has no port {name!r}"):
            expect(p.get("targetPort") in (name, ports.get(name)),
                   f"{where}: Service port {name} targets {p.get('targetPort')}, not the container's {name}")
    pdb = by_kind(docs, "PodDisruptionBudget", where)
    sel = pdb["spec"]["selector"]["matchLabels"]
    expect(all(labels.get(k) == v for k, v in sel.items()),
           f"{where}: PodDisruptionBudget selector {sel} does not select the pods")


def check_kubernetes(routes, env_names) -> tuple[str, dict[str, str], dict[str, str]]:
    want = configmap_yaml()
    have = CONFIGMAP.read_text() if CONFIGMAP.exists() else ""
    expect(have == want, "deploy/kubernetes/base/configmap.yaml is stale: run python3 scripts/check_deploy.py --write")
    base_files = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    for f in base_files:
        expect((BASE / f).exists(), f"deploy/kubernetes/base/kustomization.yaml lists {f}, which does not exist")
    docs = [d for f in base_files if (BASE / f).exists()
            for d in load_docs((BASE / f).read_text(), f"deploy/kubernetes/base/{f}")]
    cm = by_kind(docs, "ConfigMap", "deploy/kubernetes")
    cm_text = cm["data"]["posterior.toml"]
    cm_doc = tomllib.loads(cm_text)
    expect(toml_keys(cm_doc) == toml_keys(tomllib.loads(CONFIG_TOML.read_text())),
           "the ConfigMap's TOML and config/posterior.toml have different keys")
    secret = by_kind(load_docs((K8S / "secret.example.yaml").read_text(), "secret.example.yaml"),
                     "Secret", "secret.example.yaml")
    dep = by_kind(docs, "Deployment", "deploy/kubernetes")
    base_env = check_deployment(dep, cm_doc, secret, routes, env_names, "deploy/kubernetes/base/deployment.yaml")
    check_selectors(docs, dep, "deploy/kubernetes")
    expect(dep["spec"].get("replicas") == 1 and dep["spec"].get("strategy", {}).get("type") == "Recreate",
           "deploy/kubernetes/base/deployment.yaml: the embedded store is one file: replicas 1, strategy Recreate")
    expect("POSTERIOR_REDIS" not in base_env, "deploy/kubernetes: the base must use the embedded store")

    # The Redis variant: rendered by kubectl when there is one.
    redis_env = dict(base_env)
    if shutil.which("kubectl"):
        for d, name in ((K8S, "deploy/kubernetes"), (K8S / "redis", "deploy/kubernetes/redis")):
            out = subprocess.run(["kubectl", "kustomize", str(d)], capture_output=True, text=True)
            if not expect(out.returncode == 0, f"kubectl kustomize {name} failed: {out.stderr.strip()}"):
                continue
            rendered = load_docs(out.stdout, f"kubectl kustomize {name}")
            # A patch directive kustomize did not consume ($patch,
            # $retainKeys...) would reach the API server, which rejects it.
            expect("$" not in "".join(re.findall(r"^\s*-?\s*(\S+):", out.stdout, re.M)),
                   f"{name}: the rendered manifests keep a patch directive ($...)")
            rdep = by_kind(rendered, "Deployment", name)
            env = check_deployment(rdep, cm_doc, secret, routes, env_names, f"{name} (rendered)")
            check_selectors(rendered, rdep, f"{name} (rendered)")
            expect(all(d.get("kind") != "Secret" for d in rendered),
                   f"{name}: renders a Secret: the placeholders must not be applied")
            if d != K8S:
                redis_env = env
                expect(rdep["spec"]["replicas"] > 1, f"{name}: the Redis example must run several replicas")
                expect(rdep["spec"]["strategy"]["type"] == "RollingUpdate",
                       f"{name}: replicas on Redis hold no file: roll them (RollingUpdate)")
                expect(all(d.get("kind") != "PersistentVolumeClaim" for d in rendered),
                       f"{name}: renders a PersistentVolumeClaim (not needed with Redis)")
                vols = {v["name"]: v for v in rdep["spec"]["template"]["spec"]["volumes"]}
                expect("persistentVolumeClaim" not in vols.get("data", {}),
                       f"{name}: the data volume is still a PVC: replicas would share one claim")
    else:
        print("check_deploy: NOTE: no kubectl: the kustomizations are NOT rendered; the Redis "
              "variant is checked from its patch file only", file=sys.stderr)
        patch = yaml.safe_load((K8S / "redis" / "deployment-patch.yaml").read_text())
        expect(patch["spec"]["replicas"] > 1, "deploy/kubernetes/redis: several replicas expected")
        (c,) = patch["spec"]["template"]["spec"]["containers"]
        for e in c["env"]:
            expect(e["name"] in env_names, f"deploy/kubernetes/redis: env {e['name']} is not read by posterior")
            ref = e["valueFrom"]["secretKeyRef"]
            redis_env[e["name"]] = secret["stringData"][ref["key"]]
    expect("POSTERIOR_REDIS" in redis_env, "deploy/kubernetes/redis: POSTERIOR_REDIS must be set")
    return cm_text, base_env, redis_env


# ---- systemd -------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, list[str]]:
    """Directive -> values (a directive may repeat), sections ignored."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        k, _, v = line.partition("=")
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def check_systemd(env_names: set[str]) -> None:
    where = "deploy/systemd/posterior.service"
    unit = parse_unit(UNIT.read_text())
    one = lambda k: (unit.get(k) or [None])[-1]  # noqa: E731 (last one wins, as in systemd)
    for k, v in (("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"),
                 ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
                 ("StateDirectory", "posterior"), ("CapabilityBoundingSet", "")):
        expect(one(k) == v, f"{where}: {k}={v} expected, got {one(k)!r}")
    # SystemCallFilter may repeat (an allow list, then ~deny lists).
    expect("@system-service" in unit.get("SystemCallFilter", []),
           f"{where}: SystemCallFilter=@system-service expected, got {unit.get('SystemCallFilter')}")
    fams = set((one("RestrictAddressFamilies") or "").split())
    # AF_UNIX: redis+unix:// URLs and journald logging.
    expect(fams == {"AF_INET", "AF_INET6", "AF_UNIX"},
           f"{where}: RestrictAddressFamilies must be AF_INET AF_INET6 AF_UNIX, got {sorted(fams)}")
    exec_start = (one("ExecStart") or "").split()
    expect(exec_start[1:2] == ["serve"], f"{where}: ExecStart must run `posterior serve`, got {exec_start}")
    expect("--config" in exec_start, f"{where}: ExecStart must pass --config")
    env = {}
    for line in unit.get("Environment", []):
        for item in line.split():
            k, _, v = item.strip('"').partition("=")
            env[k] = v
    for k in env:
        expect(k in env_names, f"{where}: Environment {k} is not read by posterior (ENV_OVERRIDES)")
    # The store file must be in the StateDirectory: under ProtectSystem=strict
    # nothing else is writable.
    expect(env.get("POSTERIOR_DATA", "").startswith("%S/posterior/"),
           f"{where}: POSTERIOR_DATA must be under %S/posterior/ (StateDirectory), got {env.get('POSTERIOR_DATA')!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="regenerate deploy/kubernetes/base/configmap.yaml")
    ap.add_argument("--out", type=Path, help="write posterior.toml, base.env, redis.env here")
    a = ap.parse_args()
    if a.write:
        CONFIGMAP.write_text(configmap_yaml())
        print(f"wrote {CONFIGMAP.relative_to(ROOT)}")
        return 0

    routes = rust_routes()
    sections, default_listen, env_names = rust_config()
    for r in ("/healthz", "/readyz"):
        expect(r in routes, f"src/http/mod.rs: no route {r} (the probes use it)")
    expect(serve_has_config_flag(), "src/cli/serve.rs: `serve` has no --config flag")
    file_keys = toml_keys(tomllib.loads(CONFIG_TOML.read_text()))
    # Options without a default (test-only knobs) have no value to write:
    # the file documents them as a commented-out assignment instead.
    commented = set(re.findall(r"^#\s*([a-z_]+)\s*=", CONFIG_TOML.read_text(), flags=re.M))
    code_keys = {f"{s}.{k}" for s, ks in sections.items() for k in ks
                 if f"{s}.{k}" in file_keys or k not in commented}
    expect(file_keys == code_keys,
           f"config/posterior.toml and src/config.rs disagree: only in the file {sorted(file_keys - code_keys)}, "
           f"only in the code {sorted(code_keys - file_keys)}")
    expect(port_of(CONFIGMAP_VALUES[("server", "listen")]) == port_of(default_listen),
           f"the ConfigMap's port differs from the default listen port {default_listen} (src/config.rs)")

    cm_text, base_env, redis_env = check_kubernetes(routes, env_names)
    check_systemd(env_names)

    if errors:
        print("check_deploy: the deployment files disagree with the code:", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "posterior.toml").write_text(cm_text)
        for name, env in (("base.env", base_env), ("redis.env", redis_env)):
            (a.out / name).write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
    print(f"check_deploy: ok ({len(code_keys)} config keys, probes {sorted(routes & {'/healthz', '/readyz'})}, "
          f"{len(env_names)} env names, kubectl {'used' if shutil.which('kubectl') else 'absent'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
