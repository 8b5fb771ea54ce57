"""Packaging checks (issue #6): the Dockerfile, the PostHog compose file, the
Kubernetes sidecar manifests, the systemd unit, and `portcullis -t` on every
configuration in conf/ and examples/.

Docker and kubectl cannot run here (no daemon, no cluster), so the Dockerfile is
checked statically — above all that the runtime stage installs a package for
every library `ldd` lists for the built binary — and the manifests are checked
as YAML against each other (names, ports, mounts, secrets) and against the
configuration inside the ConfigMap, which is also run for real.

Environment (as for tests/e2e): PORTCULLIS_BIN (default build/portcullis) and
PORTCULLIS_SOURCE_DIR (default: this checkout).  Needs Debian's python3-yaml
and systemd (for systemd-analyze); openssl and bash.
"""

import base64
import copy
import functools
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

SRC = os.path.abspath(os.environ.get("PORTCULLIS_SOURCE_DIR")
                      or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.path.abspath(os.environ.get("PORTCULLIS_BIN") or os.path.join(SRC, "build", "portcullis"))
K8S = os.path.join(SRC, "examples", "k8s-sidecar")
K8S_MODELS = os.path.join(SRC, "tests", "packaging", "k8s-models")  # npm: the schemas
DOCKERFILE = os.path.join(SRC, "docker", "Dockerfile")
COMPOSE = os.path.join(SRC, "docker", "docker-compose.posthog.yml")
UNIT = os.path.join(SRC, "conf", "portcullis.service")
HEALTHCHECK = os.path.join(SRC, "docker", "portcullis-healthcheck")

sys.path.insert(0, os.path.join(SRC, "tests", "saml"))
import samltools  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
from harness import need  # noqa: E402
from ports import free_port  # noqa: E402

# The services of PostHog's hobby compose file (docker-compose.hobby.yml) that
# Portcullis forwards to, with the ports they listen on.
POSTHOG_SERVICES = {"web": 8000, "capture": 3000, "replay-capture": 3000,
                    "feature-flags": 3001, "livestream": 8080, "plugins": 6738}
# Secrets the operator already has; every other name must be defined here.
EXTERNAL_SECRETS = {"posthog-env"}


# ---- helpers ---------------------------------------------------------------------

def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(cmd, **kw)


def base_env(**extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if os.geteuid() == 0:
        # Tests run as root in CI; the binary refuses to stay root without this
        # (the images and the unit run it as an unprivileged user instead).
        env["PORTCULLIS_ALLOW_ROOT"] = "1"
    env.update(extra)
    return env


def check_config(path, env, cwd):
    """portcullis -t; returns the CompletedProcess."""
    return run([BIN, "-t", "-c", path], env=env, cwd=cwd)


def default_of(value):
    """'${NAME:-default}' -> default; a value without a default stays as is."""
    m = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}", value)
    if m is None:
        return value
    return m.group(2)


def substitute(text, env):
    """The configuration's ${NAME} / ${NAME:-default} expansion (docs/config.md)."""
    def one(m):
        name, default = m.group(1), m.group(2)
        v = env.get(name)
        if default is not None and not v:
            return default
        if v is None:
            raise KeyError(name)
        return v
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}", one, text)


def compose_interpolate(value, env):
    """Compose's ${X}, ${X:-d}, ${X:?msg}, $X and $$ in one string."""
    def one(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        v = env.get(name)
        if op == ":-":
            return v if v else arg
        if op == ":?":
            if not v:
                raise KeyError("%s: %s" % (name, arg))
            return v
        return v or ""
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  one, value)


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def load_yaml_docs(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, "%s: no YAML document" % path
    for d in docs:
        assert isinstance(d, dict), "%s: a document is not a mapping" % path
    return docs


def k8s_docs():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        for d in load_yaml_docs(path):
            docs.append((os.path.basename(path), d))
    return docs


def k8s_find_any(kind):
    return [d for _, d in k8s_docs() if d["kind"] == kind]


def k8s_find(kind, name=None):
    found = [d for _, d in k8s_docs() if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert found, "examples/k8s-sidecar: no %s%s" % (kind, " named " + name if name else "")
    return found


def sidecar_container():
    dep = k8s_find("Deployment")[0]
    for c in dep["spec"]["template"]["spec"]["containers"]:
        if c["name"] == "portcullis":
            return dep, c
    raise AssertionError("deployment.yaml: no container named portcullis")


def sidecar_config_text():
    cm = k8s_find("ConfigMap", "portcullis-config")[0]
    return cm["data"]["portcullis.json"]


def sidecar_config_defaults():
    """The ConfigMap's configuration with every ${VAR:-default} at its default."""
    cfg = json.loads(sidecar_config_text())

    def walk(v):
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, str):
            return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", v)
        return v
    return walk(cfg)


def dockerfile_instructions():
    """[(stage index, INSTRUCTION, argument text)] with continuations joined."""
    out, stage, cur = [], -1, ""
    with open(DOCKERFILE) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if cur and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            word, _, rest = cur.strip().partition(" ")
            word = word.upper()
            if word == "FROM":
                stage += 1
            out.append((stage, word, rest.strip()))
            cur = ""
    assert not cur, "Dockerfile ends inside a continued line"
    return out


def apt_packages(arg):
    """Package names of every `apt-get install` in a RUN argument."""
    pkgs = []
    for part in re.split(r"&&|;", arg):
        words = part.split()
        if "apt-get" in words and "install" in words:
            pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def ldd_libraries(binary):
    r = run(["ldd", binary])
    assert r.returncode == 0, r.stderr
    libs = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(", line)
        if m:
            assert m.group(2) != "not", "%s: %s is not found" % (binary, m.group(1))
            libs.append((m.group(1), m.group(2)))
    return libs


def needed_libraries(binary):
    r = run(["readelf", "-d", binary])
    assert r.returncode == 0, r.stderr
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", r.stdout)


def path_candidates(path):
    """A path and its /usr-merge and symlink aliases, as dpkg may have recorded them."""
    out = []
    for p in (path, os.path.realpath(path)):
        for q in (p, p[4:] if p.startswith("/usr/") else "/usr" + p):
            if q not in out:
                out.append(q)
    return out


def owner_packages(paths):
    """{path: Debian package that installed it}, one dpkg -S for all paths."""
    cands = {p: path_candidates(p) for p in paths}
    r = run(["dpkg", "-S"] + sorted({c for cs in cands.values() for c in cs}), timeout=300)
    owners = {}
    for line in r.stdout.splitlines():
        pkgs, _, file = line.rpartition(": ")
        if pkgs and not pkgs.startswith("diversion"):
            owners.setdefault(file, pkgs.split(",")[0].split(":")[0].strip())
    result = {}
    for p, cs in cands.items():
        found = [owners[c] for c in cs if c in owners]
        assert found, "dpkg -S: no package owns %s" % p
        result[p] = found[0]
    return result


def owner_package(pattern):
    """The package owning the first file matching a dpkg -S pattern."""
    r = run(["dpkg", "-S", pattern])
    assert r.returncode == 0, "dpkg -S: no package owns %s" % pattern
    return r.stdout.splitlines()[0].split(":", 1)[0].split(",")[0].strip()


def dependency_closure(packages):
    """Installed packages reachable through Depends/Pre-Depends (every alternative
    that is installed counts; virtual packages resolve to their installed providers)."""
    deps, providers = installed_packages()
    seen, todo = set(), list(packages)
    while todo:
        p = todo.pop()
        for real in ([p] if p in deps else providers.get(p, [])):
            if real not in seen:
                seen.add(real)
                todo.extend(deps.get(real, []))
    return seen


@functools.lru_cache(maxsize=None)
def installed_packages():
    """({package: [dependency names]}, {virtual name: [providers]}) from dpkg."""
    r = run(["dpkg-query", "-W", "-f",
             "${Package}\t${db:Status-Status}\t${Provides}\t${Pre-Depends}, ${Depends}\n"])
    assert r.returncode == 0, r.stderr
    deps, providers = {}, {}
    for line in r.stdout.splitlines():
        name, status, provides, depends = (line.split("\t") + ["", "", ""])[:4]
        if status != "installed":
            continue
        deps[name] = [re.split(r"[\s(:]", alt.strip())[0]
                      for group in depends.split(",") for alt in group.split("|") if alt.strip()]
        for p in provides.split(","):
            p = re.split(r"[\s(]", p.strip())[0]
            if p:
                providers.setdefault(p, []).append(name)
    return deps, providers


# ---- portcullis -t on every configuration ----------------------------------------

def json_configs():
    paths = sorted(glob.glob(os.path.join(SRC, "conf", "*.json")) +
                   glob.glob(os.path.join(SRC, "examples", "**", "*.json"), recursive=True))
    return [p for p in paths if not p.endswith(".schema.json")]


def idp_metadata_file(directory):
    """IdP metadata (a fresh key) for configurations with a "saml" block."""
    _, cert = samltools.make_key(str(directory), "idp")
    path = os.path.join(str(directory), "idp.xml")
    with open(path, "w") as f:
        f.write(samltools.idp_metadata("https://idp.example.com/md",
                                       "https://idp.example.com/sso", cert))
    return path


@pytest.mark.parametrize("path", json_configs(), ids=lambda p: os.path.relpath(p, SRC))
def test_every_json_config_passes_check(path, tmp_path):
    """With the variables a deployment must set (those without a default)."""
    env = base_env(CERTS_DIR=str(tmp_path / "certs"),
                   SAML_IDP_METADATA=idp_metadata_file(tmp_path))
    r = check_config(path, env, cwd=str(tmp_path))
    assert r.returncode == 0, "portcullis -t -c %s:\n%s%s" % (path, r.stdout, r.stderr)
    assert "configuration OK" in r.stdout


def test_check_fails_on_a_broken_config(tmp_path):
    """The check above can fail: a config with an unknown upstream is refused."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"listeners": [{"address": "127.0.0.1:0"}], "upstreams": {},
                               "sites": [{"routes": [{"upstream": "nowhere"}]}]}))
    r = check_config(str(bad), base_env(), cwd=str(tmp_path))
    assert r.returncode == 1
    assert "nowhere" in r.stderr


# ---- YAML: every file parses --------------------------------------------------------

def yaml_files():
    return sorted(glob.glob(os.path.join(K8S, "*.yaml")) + glob.glob(os.path.join(K8S, "*.yml")) +
                  glob.glob(os.path.join(SRC, "docker", "*.yaml")) +
                  glob.glob(os.path.join(SRC, "docker", "*.yml")))


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: os.path.relpath(p, SRC))
def test_yaml_parses(path):
    load_yaml_docs(path)


# ---- Kubernetes manifests ----------------------------------------------------------

API_VERSIONS = {"ConfigMap": "v1", "Service": "v1", "Secret": "v1", "Deployment": "apps/v1",
                "Gateway": "gateway.networking.k8s.io/v1",
                "HTTPRoute": "gateway.networking.k8s.io/v1",
                "BackendTLSPolicy": "gateway.networking.k8s.io/v1",
                "NetworkPolicy": "networking.k8s.io/v1",
                "Certificate": "cert-manager.io/v1", "Issuer": "cert-manager.io/v1"}


@pytest.fixture(scope="module")
def generated_secret(tmp_path_factory):
    """make-secret.sh's Secret (parsed) and the files it also wrote."""
    d = tmp_path_factory.mktemp("secret")
    r = run([os.path.join(K8S, "make-secret.sh"), "-o", str(d / "files"), "posthog.example.com"])
    assert r.returncode == 0, r.stderr
    docs = [x for x in yaml.safe_load_all(r.stdout) if x]
    assert len(docs) == 1
    return docs[0], d / "files"


def all_k8s_objects(generated_secret):
    return [d for _, d in k8s_docs()] + [generated_secret[0]]


def test_k8s_objects_have_kind_name_namespace(generated_secret):
    kinds = set()
    for doc in all_k8s_objects(generated_secret):
        kind = doc.get("kind")
        assert kind in API_VERSIONS, "unexpected kind %r" % kind
        assert doc.get("apiVersion") == API_VERSIONS[kind], doc.get("apiVersion")
        assert doc["metadata"].get("name"), "%s without metadata.name" % kind
        assert doc["metadata"].get("namespace") == "posthog", doc["metadata"]
        kinds.add(kind)
    assert {"ConfigMap", "Secret", "Deployment", "Service", "Certificate"} <= kinds


def test_k8s_secret_from_make_secret(generated_secret):
    secret, files = generated_secret
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "portcullis-saml"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data["saml-sp.key"].startswith(b"-----BEGIN PRIVATE KEY-----")
    assert data["saml-sp.crt"].startswith(b"-----BEGIN CERTIFICATE-----")
    assert re.fullmatch(rb"[0-9a-f]{64}\n", data["session.key"]), data["session.key"]
    assert (files / "saml-sp.key").read_bytes() == data["saml-sp.key"]
    assert os.stat(files / "saml-sp.key").st_mode & 0o077 == 0
    # A second run makes different keys: nothing fixed is shipped.
    r = run([os.path.join(K8S, "make-secret.sh"), "posthog.example.com"])
    assert r.returncode == 0
    again = yaml.safe_load(r.stdout)
    assert again["data"]["session.key"] != secret["data"]["session.key"]


def test_k8s_make_secret_refuses_bad_arguments():
    r = run([os.path.join(K8S, "make-secret.sh")])
    assert r.returncode == 2 and "usage" in r.stderr
    r = run([os.path.join(K8S, "make-secret.sh"), "bad host/name"])
    assert r.returncode == 2 and "not a host name" in r.stderr


def test_k8s_deployment_wiring(generated_secret):
    dep, _ = sidecar_container()
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    for k, v in spec["selector"]["matchLabels"].items():
        assert labels.get(k) == v, "selector %s=%s does not match the pod labels" % (k, v)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert len(volumes) == len(pod["volumes"]), "duplicate volume names"
    configmaps = {d["metadata"]["name"] for d in all_k8s_objects(generated_secret)
                  if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: set(d.get("data", {})) for d in
               all_k8s_objects(generated_secret) if d["kind"] == "Secret"}
    for cert in k8s_find("Certificate"):
        secrets.setdefault(cert["spec"]["secretName"], {"tls.crt", "tls.key", "ca.crt"})
    for v in volumes.values():
        if "configMap" in v:
            assert v["configMap"]["name"] in configmaps, v
        if "secret" in v:
            name = v["secret"]["secretName"]
            assert name in secrets, "volume %s: no Secret %s" % (v["name"], name)
            for item in v["secret"].get("items", []):
                assert item["key"] in secrets[name], "Secret %s has no key %s" % (name, item["key"])
    containers = pod["containers"] + pod.get("initContainers", [])
    names = [c["name"] for c in containers]
    assert len(set(names)) == len(names)
    for c in containers:
        assert c.get("image"), c["name"]
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe in c:
                port = c[probe]["httpGet"]["port"]
                assert port in ports or port in ports.values(), \
                    "%s.%s: port %r is not a container port" % (c["name"], probe, port)
        for m in c.get("volumeMounts", []):
            assert m["name"] in volumes, "%s mounts undefined volume %s" % (c["name"], m["name"])
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] in secrets and ref["key"] in secrets[ref["name"]], ref
        for src in c.get("envFrom", []):
            if "secretRef" in src:
                assert src["secretRef"]["name"] in secrets or \
                    src["secretRef"]["name"] in EXTERNAL_SECRETS, src


def test_k8s_sidecar_matches_its_config():
    dep, c = sidecar_container()
    pod = dep["spec"]["template"]["spec"]
    cfg = sidecar_config_defaults()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["admin"] == port_of(cfg["admin"]["address"])
    assert ports["https"] == port_of(cfg["listeners"][0]["address"])
    assert cfg["listeners"][0]["tls"] is True
    assert c["livenessProbe"]["httpGet"]["path"] == "/_health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/_ready"
    assert c["livenessProbe"]["httpGet"]["port"] in ("admin", ports["admin"])
    assert c["readinessProbe"]["httpGet"]["port"] in ("admin", ports["admin"])
    # Where the files of the configuration come from.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = c["command"][c["command"].index("-c") + 1]
    assert volumes[mounts[os.path.dirname(config_path)]["name"]]["configMap"]["name"] == \
        "portcullis-config"

    def mount_for(path):
        best = max((m for m in mounts if path.startswith(m.rstrip("/") + "/")), key=len,
                   default=None)
        assert best is not None, "%s is on no volume (the root file system is read-only)" % path
        return mounts[best], volumes[mounts[best]["name"]]
    tls = cfg["tls"]["certificates"][0]
    for f in (tls["cert"], tls["key"]):
        _, vol = mount_for(f)
        assert vol["secret"]["secretName"] == k8s_find("Certificate", "posthog-web-tls")[0][
            "spec"]["secretName"]
    for f in (cfg["saml"]["sp_key"], cfg["saml"]["sp_cert"]):
        _, vol = mount_for(f)
        assert vol["secret"]["secretName"] == "portcullis-saml"
        assert os.path.basename(f) in [i["path"] for i in vol["secret"]["items"]]
    for d in (cfg["tls"]["certs_dir"], cfg["saml"]["certs_dir"]):
        m, vol = mount_for(d + "/x")
        assert "emptyDir" in vol and not m.get("readOnly"), "%s must be writable" % d
    env = {e["name"] for e in c["env"]}
    assert "SAML_IDP_METADATA" in env
    # Replicas share the SAML keys: the session keys come from the Secret through the
    # variable the configuration names, and no key file of the pod's own exists (a
    # session_key_file would be created per pod: cookies would open only there).
    assert not pod.get("initContainers"), "nothing needs an init container"
    saml = cfg["saml"]
    assert not saml.get("session_key_file"), "the session keys must not be a file per pod"
    var = saml["session_key_env"]
    (entry,) = [e for e in c["env"] if e["name"] == var]
    assert entry["valueFrom"]["secretKeyRef"] == {"name": "portcullis-saml", "key": "session.key"}
    saml_vol = next(v for v in volumes.values()
                    if v.get("secret", {}).get("secretName") == "portcullis-saml")
    assert "session.key" not in [i["key"] for i in saml_vol["secret"]["items"]], \
        "the session key is read from the variable; it need not be on disk"
    # The SP key is mounted as the kubelet writes Secrets: readable by the pod's group,
    # which must be the sidecar's own group, and by nobody else.
    assert saml_vol["secret"]["defaultMode"] & 0o007 == 0
    assert pod["securityContext"]["fsGroup"] == c["securityContext"]["runAsGroup"]
    # Security and resources.
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc["runAsUser"] == 10001, "the image's USER is 10001"
    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]
    # Sized for the body budget: the limit must exceed it.
    limit = int(re.fullmatch(r"(\d+)Mi", res["limits"]["memory"]).group(1))
    budget = int(re.fullmatch(r"(\d+)MiB", cfg["limits"]["body_memory_budget"]).group(1))
    assert limit >= budget + 64
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > cfg["timeouts"]["drain"] + 5


def validate_k8s(items):
    """Run k8s-models/validate.mjs (kubernetes-models, @kubernetes-models/gateway-api,
    @kubernetes-models/cert-manager) on [(where, object)]; returns (exit code, lines)."""
    node = need("node")
    if not os.path.isdir(os.path.join(K8S_MODELS, "node_modules", "kubernetes-models")):
        need("npm")
        r = run(["npm", "ci", "--no-audit", "--no-fund", "--no-update-notifier",
                 "--loglevel=error"], cwd=K8S_MODELS, timeout=300)
        assert r.returncode == 0, "npm ci in %s failed:\n%s" % (K8S_MODELS, r.stderr)
    r = run([node, os.path.join(K8S_MODELS, "validate.mjs")],
            input=json.dumps([{"where": w, "object": o} for w, o in items]))
    assert r.stderr == "", r.stderr
    return r.returncode, r.stdout.splitlines()


def test_k8s_manifests_validate_against_their_schemas(generated_secret):
    """Every object of examples/k8s-sidecar (and make-secret.sh's Secret) against the
    OpenAPI schemas of Kubernetes, the Gateway API and cert-manager."""
    items = [("%s %s/%s" % (os.path.relpath(path, SRC), d["kind"], d["metadata"]["name"]), d)
             for path, d in k8s_docs()]
    items.append(("make-secret.sh Secret", generated_secret[0]))
    rc, lines = validate_k8s(items)
    assert rc == 0 and len(lines) == len(items), "\n".join(lines)
    assert all(line.startswith("ok ") for line in lines), "\n".join(lines)
    kinds = {d["kind"] for _, d in items}
    assert {"Gateway", "HTTPRoute", "BackendTLSPolicy", "Certificate", "Deployment"} <= kinds


def test_k8s_schema_check_catches_mistakes():
    """The validator is not a rubber stamp: a wrong type, a missing required field and
    an unknown kind are refused."""
    route = copy.deepcopy(k8s_find("HTTPRoute", "posthog")[0])
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = "https"  # must be a number
    gw = copy.deepcopy(k8s_find("Gateway", "posthog")[0])
    del gw["spec"]["gatewayClassName"]
    btp = copy.deepcopy(k8s_find("BackendTLSPolicy")[0])
    btp["spec"]["validation"]["hostname"] = 443
    unknown = {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"}}
    rc, lines = validate_k8s([("route", route), ("gateway", gw), ("btp", btp),
                              ("unknown", unknown)])
    assert rc == 1
    assert [line.split(" ", 1)[0] for line in lines] == ["invalid"] * 4, "\n".join(lines)


def test_k8s_service_gateway_certificate_networkpolicy():
    dep, c = sidecar_container()
    labels = dep["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    svc = k8s_find("Service", "posthog-web")[0]
    for k, v in svc["spec"]["selector"].items():
        assert labels.get(k) == v
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert svc_ports["https"]["targetPort"] in ports, "Service targets no sidecar port"
    assert "admin" not in svc_ports and 8000 not in [p.get("targetPort") for p in svc_ports.values()]
    assert not k8s_find_any("Ingress"), "ingress-nginx is retired: the example uses a Gateway"
    gw = k8s_find("Gateway", "posthog")[0]
    listeners = {l_["name"]: l_ for l_ in gw["spec"]["listeners"]}
    public = listeners["https"]["tls"]["certificateRefs"][0]["name"]
    assert public in {c_["spec"]["secretName"] for c_ in k8s_find("Certificate")}
    to_sidecar = 0
    for route in k8s_find("HTTPRoute"):
        for parent in route["spec"]["parentRefs"]:
            assert parent["name"] == "posthog" and parent["sectionName"] in listeners
        for rule in route["spec"]["rules"]:
            for be in rule.get("backendRefs", []):
                # by port number: the Service port the BackendTLSPolicy names
                assert be["name"] == "posthog-web" and be["port"] == svc_ports["https"]["port"]
                assert route["spec"]["parentRefs"][0]["sectionName"] == "https"
                to_sidecar += 1
    assert to_sidecar == 1
    btp = k8s_find("BackendTLSPolicy", "posthog-web")[0]["spec"]
    assert btp["targetRefs"] == [{"group": "", "kind": "Service", "name": "posthog-web",
                                  "sectionName": "https"}]
    assert btp["validation"]["hostname"] == "posthog-web.posthog.svc"
    issuers = {i["metadata"]["name"] for i in k8s_find("Issuer")}
    for cert in k8s_find("Certificate"):
        ref = cert["spec"]["issuerRef"]
        assert ref["kind"] == "ClusterIssuer" or ref["name"] in issuers, ref
    ca_secrets = {i["spec"]["ca"]["secretName"] for i in k8s_find("Issuer") if "ca" in i["spec"]}
    cert_secrets = {c_["spec"]["secretName"] for c_ in k8s_find("Certificate")}
    assert ca_secrets <= cert_secrets
    names = k8s_find("Certificate", "posthog-web-tls")[0]["spec"]["dnsNames"]
    assert "posthog-web.posthog.svc" in names
    for np_ in k8s_find("NetworkPolicy"):
        for k, v in np_["spec"]["podSelector"]["matchLabels"].items():
            assert labels.get(k) == v
        allowed = {p["port"] for rule in np_["spec"]["ingress"] for p in rule["ports"]}
        assert ports["https"] in allowed


# ---- the ConfigMap's configuration: -t, then a real run -----------------------------

@pytest.fixture(scope="module")
def sidecar_files(tmp_path_factory, generated_secret):
    """Everything the ConfigMap's configuration reads, made here, and its environment."""
    secret, _ = generated_secret
    d = tmp_path_factory.mktemp("sidecar")
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    (d / "saml").mkdir()
    for name in ("saml-sp.key", "saml-sp.crt"):
        (d / "saml" / name).write_bytes(data[name])
    _, idp_cert = samltools.make_key(str(d), "idp")
    (d / "idp.xml").write_text(samltools.idp_metadata("https://idp.example.com/md",
                                                      "https://idp.example.com/sso", idp_cert))
    names = k8s_find("Certificate", "posthog-web-tls")[0]["spec"]["dnsNames"]
    r = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", str(d / "tls.key"), "-out", str(d / "tls.crt"), "-days", "30",
             "-subj", "/CN=" + names[0],
             "-addext", "subjectAltName=" + ",".join("DNS:" + n for n in names)])
    assert r.returncode == 0, r.stderr
    (d / "portcullis.json").write_text(sidecar_config_text())
    (d / "state").mkdir()
    # As the kubelet writes the Secret volume (defaultMode 0440, group fsGroup).
    dep, c = sidecar_container()
    (saml_vol,) = [v for v in dep["spec"]["template"]["spec"]["volumes"]
                   if v.get("secret", {}).get("secretName") == "portcullis-saml"]
    for item in saml_vol["secret"]["items"]:
        os.chmod(d / "saml" / item["path"], saml_vol["secret"]["defaultMode"])
    env = base_env(**{e["name"]: e["value"] for e in c["env"] if "value" in e})
    # Variables from the Secret, as the Deployment hands them over (secretKeyRef).
    for e in c["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == secret["metadata"]["name"], ref
            env[e["name"]] = data[ref["key"]].decode()
    env.update(SAML_IDP_METADATA=str(d / "idp.xml"), TLS_CERT=str(d / "tls.crt"),
               TLS_KEY=str(d / "tls.key"), SAML_SP_KEY=str(d / "saml" / "saml-sp.key"),
               SAML_SP_CERT=str(d / "saml" / "saml-sp.crt"), STATE_DIR=str(d / "state"))
    return d, env, data


def key_files(state):
    """Files named like a session key anywhere under <state>."""
    return [os.path.join(root, f) for root, _, files in os.walk(str(state)) for f in files
            if "session" in f]


def test_k8s_configmap_config_passes_check(sidecar_files):
    d, env, _ = sidecar_files
    assert os.stat(d / "saml" / "saml-sp.key").st_mode & 0o777 == 0o440
    r = check_config(str(d / "portcullis.json"), env, cwd=str(d))
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout
    assert key_files(d / "state") == []


def test_k8s_session_keys_variable_is_required(sidecar_files, tmp_path):
    """The ConfigMap's configuration takes its session keys from the variable the
    Deployment sets: without it (or with a bad key) it is refused."""
    d, env, _ = sidecar_files
    var = sidecar_config_defaults()["saml"]["session_key_env"]
    without = {k: v for k, v in env.items() if k != var}
    r = check_config(str(d / "portcullis.json"), without, cwd=str(tmp_path))
    assert r.returncode == 1
    assert "the variable %s is not set" % var in r.stderr
    r = check_config(str(d / "portcullis.json"), dict(env, **{var: "nothex"}), cwd=str(tmp_path))
    assert r.returncode == 1
    assert "not a session key" in r.stderr


class Upstream:
    """An HTTP upstream that answers 200 with the path and records request headers."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                seen.append((self.command, self.path, dict(self.headers)))
                body = ("upstream " + self.path).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            do_GET = do_POST = answer

            def log_message(self, *a):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Proxy:
    """The real binary with the ConfigMap's configuration; stopped with SIGTERM."""

    def __init__(self, d, env):
        self.https, self.admin = free_port(), free_port()
        env = dict(env, PORTCULLIS_HTTPS="127.0.0.1:%d" % self.https,
                   PORTCULLIS_ADMIN="127.0.0.1:%d" % self.admin)
        self.env = env
        self.err = open(d / "stderr.log", "w+")
        self.proc = subprocess.Popen([BIN, "-c", str(d / "portcullis.json")], env=env, cwd=str(d),
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + 20
        while self.health().returncode != 0:
            assert self.proc.poll() is None, "portcullis exited: %s" % self.log()
            assert time.monotonic() < deadline, "portcullis not healthy: %s" % self.log()
            time.sleep(0.1)

    def health(self, path=None):
        args = [HEALTHCHECK] + ([path] if path else [])
        return run(args, env=base_env(PORTCULLIS_ADMIN="127.0.0.1:%d" % self.admin), timeout=10)

    def log(self):
        self.err.seek(0)
        return self.err.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("portcullis did not stop within 40 s after SIGTERM")
        self.err.close()
        return self.proc.returncode


def https_request(port, path, ca, headers=None, method="GET", body=b""):
    """One request over TLS (Connection: close); (status, [(name, value)], body), the
    header names in lower case."""
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="posthog-web.posthog.svc") as s:
            hs = {"Host": "posthog.example.com", "Connection": "close"}
            if body:
                hs["Content-Length"] = str(len(body))
            hs.update(headers or {})
            req = "%s %s HTTP/1.1\r\n%s\r\n" % (
                method, path, "".join("%s: %s\r\n" % kv for kv in hs.items()))
            s.sendall(req.encode() + body)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs.append((k.strip().lower(), v.strip()))
    return status, hdrs, rest


def https_get(port, path, ca, headers=None, method="GET"):
    status, hdrs, body = https_request(port, path, ca, headers, method)
    return status, dict(hdrs), body


def test_k8s_configmap_config_serves(sidecar_files):
    """Run it: HTTPS with the mounted certificate, the public paths pass, the UI asks
    for a SAML login, API keys pass, the ingress' X-Forwarded-For is believed, the
    health script sees /_health and /_ready, and SIGTERM ends it with 0."""
    d, env, _ = sidecar_files
    up = Upstream()
    env = dict(env, POSTHOG_WEB="127.0.0.1:%d" % up.port,
               POSTHOG_CAPTURE="127.0.0.1:%d" % up.port, INGRESS_CIDR="127.0.0.0/8")
    proxy = Proxy(d, env)
    ca = str(d / "tls.crt")
    try:
        assert proxy.health("/_ready").returncode == 0
        r = proxy.health("/nope")
        assert r.returncode == 1 and "404" in r.stderr
        status, _, body = https_get(proxy.https, "/decide/?v=3", ca,
                                    {"X-Forwarded-For": "203.0.113.7"})
        assert (status, body) == (200, b"upstream /decide/?v=3")
        xff = up.seen[-1][2].get("X-Forwarded-For", "")
        assert xff.split(",")[0].strip() == "203.0.113.7", xff
        status, _, body = https_get(proxy.https, "/batch/", ca, method="POST",
                                    headers={"Content-Length": "0"})
        assert (status, body) == (200, b"upstream /batch/")
        status, hdrs, _ = https_get(proxy.https, "/insights", ca, {"Accept": "text/html"})
        assert status == 302 and hdrs["location"].startswith("https://idp.example.com/sso?"), hdrs
        n = len(up.seen)
        status, _, _ = https_get(proxy.https, "/api/projects/", ca, {"Accept": "application/json"})
        assert status == 401 and len(up.seen) == n
        status, _, body = https_get(proxy.https, "/api/projects/", ca,
                                    {"Authorization": "Bearer phx_testkey"})
        assert (status, body) == (200, b"upstream /api/projects/")
        # The SP certificate it publishes is the Secret's, not one of its own.
        status, _, body = https_get(proxy.https, "/saml/metadata", ca)
        assert status == 200
        assert samltools.cert_body(str(d / "saml" / "saml-sp.crt")).encode() in body
    finally:
        rc = proxy.stop()
        up.close()
    assert rc == 0, proxy.log()
    assert proxy.health().returncode == 1, "health check passes with the proxy stopped"
    assert key_files(d / "state") == [], "a session key file was written"


def test_k8s_replicas_share_the_saml_keys(sidecar_files, tmp_path):
    """Two replicas of the Deployment (same Secret, each its own state volume): a
    login started at either completes at the other's ACS, the session cookie opens at
    the first, both sign their AuthnRequests with the Secret's SP key, and neither
    writes a session key file."""
    d, env, data = sidecar_files
    up = Upstream()
    env = dict(env, POSTHOG_WEB="127.0.0.1:%d" % up.port, INGRESS_CIDR="127.0.0.0/8")
    b = tmp_path / "b"
    (b / "state").mkdir(parents=True)
    shutil.copy(d / "portcullis.json", b / "portcullis.json")
    ca = str(d / "tls.crt")
    sp_cert = data["saml-sp.crt"].decode()
    acs = "https://posthog.example.com" + sidecar_config_defaults()["saml"]["acs_path"]
    replicas = []
    try:
        replicas.append(Proxy(d, env))
        replicas.append(Proxy(b, dict(env, STATE_DIR=str(b / "state"))))
        for start, finish in ((replicas[0], replicas[1]), (replicas[1], replicas[0])):
            jar = {}

            def send(proxy, path, **kw):
                hs = dict(kw.pop("headers", {}))
                if jar:
                    hs["Cookie"] = "; ".join("%s=%s" % kv for kv in jar.items())
                status, hdrs, body = https_request(proxy.https, path, ca, hs, **kw)
                for name, value in hdrs:
                    if name == "set-cookie":
                        first, _, attrs = value.partition(";")
                        k, _, v = first.partition("=")
                        if "Max-Age=0" in attrs or not v:
                            jar.pop(k.strip(), None)
                        else:
                            jar[k.strip()] = v.strip()
                return status, dict(hdrs), body
            status, hdrs, _ = send(start, "/insights", headers={"Accept": "text/html"})
            assert status == 302, hdrs
            xml, params, query = samltools.decode_redirect(hdrs["location"])
            assert samltools.verify_redirect_signature(query, sp_cert, str(tmp_path)), \
                "the AuthnRequest is not signed with the Secret's SP key"
            request_id = re.search(r' ID="([^"]+)"', xml).group(1)
            entity = re.search(r"<(?:saml:)?Issuer[^>]*>([^<]+)<", xml).group(1)
            response, _ = samltools.signed_response(
                str(d / "idp.key"), str(d / "idp.crt"), str(tmp_path),
                issuer="https://idp.example.com/md", in_response_to=request_id,
                destination=acs, recipient=acs, audiences=[entity],
                sigalg=samltools.RSA_SHA256, digest=samltools.SHA256)
            form = urllib.parse.urlencode({"SAMLResponse": samltools.b64(response),
                                           "RelayState": params["RelayState"]}).encode()
            status, hdrs, body = send(
                finish, urllib.parse.urlparse(acs).path, method="POST", body=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert status in (302, 303), (status, hdrs, body, finish.log())
            assert "__Host-portcullis-session" in jar, hdrs
            n = len(up.seen)
            status, _, body = send(start, "/insights")
            assert (status, body) == (200, b"upstream /insights"), start.log()
            assert len(up.seen) == n + 1
            assert up.seen[-1][2].get("X-Auth-Email") == "alice@example.com", up.seen[-1]
    finally:
        codes = [p.stop() for p in replicas]
        up.close()
    assert codes == [0, 0], [p.log() for p in replicas]
    assert key_files(d / "state") == [] and key_files(b / "state") == []


# ---- Dockerfile ------------------------------------------------------------------

def test_dockerfile_stages_and_runtime_settings():
    ins = dockerfile_instructions()
    froms = [(s, a) for s, w, a in ins if w == "FROM"]
    assert len(froms) >= 2, "multi-stage: a build and a runtime stage"
    stage_names = {}
    for s, arg in froms:
        words = arg.split()
        assert words[0] == "debian:12-slim", "stage %d is FROM %s" % (s, words[0])
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names[words[2]] = s
    last = froms[-1][0]
    final = [(w, a) for s, w, a in ins if s == last]
    kinds = [w for w, _ in final]
    users = [a for w, a in final if w == "USER"]
    assert users, "no USER in the runtime stage"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]
    assert users[-1].split(":")[0] == "10001"
    for w in ("HEALTHCHECK", "STOPSIGNAL", "EXPOSE", "VOLUME", "ENTRYPOINT", "CMD"):
        assert w in kinds, "no %s in the runtime stage" % w
    assert dict(final)["STOPSIGNAL"] == "SIGTERM"
    assert set(dict(final)["EXPOSE"].split()) == {"80", "443"}
    volumes = json.loads(dict(final)["VOLUME"])
    assert "/etc/portcullis" in volumes and "/var/lib/portcullis" in volumes
    # ENTRYPOINT the binary, CMD its default arguments: `docker run IMAGE --version`.
    entry = json.loads(dict(final)["ENTRYPOINT"])
    assert len(entry) == 1 and entry[0].endswith("/portcullis")
    cmd = json.loads(dict(final)["CMD"])
    assert cmd == ["-c", "/etc/portcullis/portcullis.json"]
    hc = dict(final)["HEALTHCHECK"]
    m = re.search(r'CMD \["([^"]+)"', hc)
    assert m, hc
    copies = {}
    for s, w, a in ins:
        if w != "COPY":
            continue
        words = a.split()
        if words[0].startswith("--from="):
            assert words[0][7:] in stage_names, "COPY from unknown stage %s" % words[0]
            continue
        *sources, dest = words
        for src in sources:
            assert os.path.exists(os.path.join(SRC, src)), "COPY source %s is missing" % src
            if s == last:
                copies[dest] = src
    assert m.group(1) in copies, "the HEALTHCHECK program is not copied into the image"
    assert os.access(os.path.join(SRC, copies[m.group(1)]), os.X_OK)
    # No setcap: a file capability breaks execve under capabilities: drop: [ALL].
    assert not any("setcap" in a for _, w, a in ins if w == "RUN")


def test_dockerfile_copies_what_cmake_reads():
    """Every folder tests/CMakeLists.txt add_subdirectory()s is in the build context."""
    ins = dockerfile_instructions()
    copied = [a.split()[0].rstrip("/") for _, w, a in ins if w == "COPY"
              and not a.startswith("--from")]
    with open(os.path.join(SRC, "tests", "CMakeLists.txt")) as f:
        subdirs = re.findall(r"add_subdirectory\(\s*([^\s)]+)", f.read())
    for sub in subdirs:
        assert "tests/" + sub in copied or "tests" in copied, "tests/%s is not copied" % sub
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        top = re.findall(r"add_subdirectory\(\s*([^\s)]+)", f.read())
    for sub in top:
        assert sub in copied or any(c.startswith(sub + "/") for c in copied), sub


def test_dockerfile_runtime_packages_cover_ldd():
    """Each library ldd finds for the built binary belongs to a package that the
    runtime stage installs or that one of those depends on; each library the
    binary links directly (NEEDED) to a package listed by name.  No -dev package
    and no compiler in the runtime stage."""
    if os.environ.get("PORTCULLIS_SANITIZE") == "1":
        # libasan/libubsan and a Debug link are not what the image ships: the
        # normal (RelWithDebInfo) pass of scripts/test.sh checks the real set.
        pytest.skip("sanitizer build: its libraries are not the image's")
    ins = dockerfile_instructions()
    last = max(s for s, _, _ in ins)
    runtime = [p for s, w, a in ins if s == last and w == "RUN" for p in apt_packages(a)]
    build = [p for s, w, a in ins if s < last and w == "RUN" for p in apt_packages(a)]
    assert runtime and build
    for p in runtime:
        assert not p.endswith("-dev") and p not in ("build-essential", "gcc", "cmake"), p
    closure = dependency_closure(runtime)
    missing = []
    libs = dict(ldd_libraries(BIN))
    owners = owner_packages(list(libs.values()))
    for soname, path in libs.items():
        if owners[path] not in closure:
            missing.append("%s (%s)" % (soname, owners[path]))
    assert not missing, "runtime stage lacks packages for: " + ", ".join(missing)
    for soname in needed_libraries(BIN):
        assert soname in libs, soname
        pkg = owners[libs[soname]]
        assert pkg in runtime, "%s (NEEDED) comes from %s, not listed in the runtime stage" % (
            soname, pkg)


def dlopened_libraries():
    """{soname: Debian package} for every library the binary loads with dlopen
    instead of linking it: each "#define X_SONAME" in src/ with its "X_PACKAGE"."""
    found = {}
    for path in glob.glob(os.path.join(SRC, "src", "**", "*.h"), recursive=True):
        with open(path) as f:
            text = f.read()
        for prefix, soname in re.findall(r'#define (\w+)_SONAME "([^"]+)"', text):
            m = re.search(r'#define %s_PACKAGE "([^"]+)"' % prefix, text)
            assert m, "%s: %s_SONAME without %s_PACKAGE" % (path, prefix, prefix)
            found[soname] = m.group(1)
    return found


def test_dockerfile_runtime_installs_dlopened_libraries():
    """A library the binary loads only when a configuration needs it (libcurl)
    is not in NEEDED, so ldd cannot vouch for it: its package must be listed
    by name in the runtime stage, and must be the one that installs it here."""
    libs = dlopened_libraries()
    assert "libcurl.so.4" in libs, libs
    ins = dockerfile_instructions()
    last = max(s for s, _, _ in ins)
    runtime = [p for s, w, a in ins if s == last and w == "RUN" for p in apt_packages(a)]
    cache = run(["ldconfig", "-p"]).stdout
    for soname, package in libs.items():
        assert soname not in needed_libraries(BIN), "%s is linked, not loaded" % soname
        assert package in runtime, "%s (loaded with dlopen) comes from %s, not listed in " \
            "the runtime stage" % (soname, package)
        m = re.search(r"^\s*%s \(.*\) => (\S+)$" % re.escape(soname), cache, re.M)
        assert m, "%s is not installed (ldconfig -p)" % soname
        assert owner_packages([m.group(1)])[m.group(1)] == package, (soname, package)


def cmake_requirements():
    """pkg-config modules and find_library() names the CMake files ask for."""
    text = ""
    for f in ("CMakeLists.txt", os.path.join("tests", "CMakeLists.txt")):
        with open(os.path.join(SRC, f)) as fh:
            text += fh.read()
    modules = []
    for args in re.findall(r"pkg_check_modules\(([^)]*)\)", text):
        words = args.split()[1:]
        modules += [re.split(r"[<>=]", w)[0] for w in words
                    if w not in ("REQUIRED", "QUIET", "IMPORTED_TARGET", "GLOBAL")]
    libraries = [m for m in re.findall(r"find_library\(\s*\S+\s+(\S+)", text)]
    headers = [m for m in re.findall(r"find_path\(\s*\S+\s+(\S+)", text)]
    return modules, libraries, headers


def test_dockerfile_build_stage_has_every_cmake_requirement():
    """Each pkg-config module, library and header CMake looks for comes from a
    package the build stage installs (or one of their dependencies)."""
    ins = dockerfile_instructions()
    last = max(s for s, _, _ in ins)
    build = [p for s, w, a in ins if s < last and w == "RUN" for p in apt_packages(a)]
    closure = dependency_closure(build)
    modules, libraries, headers = cmake_requirements()
    assert modules and libraries and headers
    missing = []
    pcfiles = {}
    for mod in modules:
        r = run(["pkg-config", "--path", mod])
        assert r.returncode == 0, "pkg-config knows no %s (install-deps.sh?)" % mod
        pcfiles[mod] = r.stdout.strip()
    owners = owner_packages(list(pcfiles.values()) + ["/usr/include/" + h for h in headers])
    for mod, pc in pcfiles.items():
        if owners[pc] not in closure:
            missing.append("%s (%s)" % (mod, owners[pc]))
    for h in headers:
        if owners["/usr/include/" + h] not in closure:
            missing.append("%s (%s)" % (h, owners["/usr/include/" + h]))
    for lib in libraries:
        pkg = owner_package("*/lib%s.so" % lib)
        if pkg not in closure:
            missing.append("lib%s.so (%s)" % (lib, pkg))
    assert not missing, "build stage lacks packages for: " + ", ".join(missing)


def test_dependency_closure_can_miss():
    """The coverage check above can fail: libc6 alone does not bring libssl3."""
    closure = dependency_closure(["libc6"])
    assert "libc6" in closure and "libssl3" not in closure


# ---- the health-check script -------------------------------------------------------

def test_healthcheck_script(tmp_path):
    admin = free_port()
    env = base_env(PORTCULLIS_HTTP="127.0.0.1:0", PORTCULLIS_ADMIN="127.0.0.1:%d" % admin)
    err = open(tmp_path / "stderr.log", "w+")
    proc = subprocess.Popen([BIN, "-c", os.path.join(SRC, "conf", "portcullis.json")], env=env,
                            cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=err)
    hc_env = base_env(PORTCULLIS_ADMIN="127.0.0.1:%d" % admin)
    try:
        deadline = time.monotonic() + 20
        while run([HEALTHCHECK], env=hc_env).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "portcullis did not start"
            time.sleep(0.1)
        # The wildcard forms of the admin address are checked on loopback.
        assert run([HEALTHCHECK], env=base_env(PORTCULLIS_ADMIN=":%d" % admin)).returncode == 0
        assert run([HEALTHCHECK], env=base_env(
            PORTCULLIS_ADMIN="0.0.0.0:%d" % admin)).returncode == 0
        r = run([HEALTHCHECK, "/metrics"], env=hc_env)
        assert r.returncode == 0
        r = run([HEALTHCHECK, "/missing"], env=hc_env)
        assert r.returncode == 1 and '"HTTP/1.0 404 Not Found"' in r.stderr, r.stderr
        r = run([HEALTHCHECK], env=base_env(PORTCULLIS_ADMIN="127.0.0.1"))
        assert r.returncode == 1 and "no port" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        err.close()
    assert proc.returncode == 0
    r = run([HEALTHCHECK], env=hc_env)
    assert r.returncode == 1 and "cannot connect" in r.stderr


def test_shell_scripts_pass_shellcheck():
    scripts = sorted(glob.glob(os.path.join(SRC, "scripts", "*.sh")))
    r = run([need("shellcheck"), HEALTHCHECK, os.path.join(K8S, "make-secret.sh"),
             os.path.join(SRC, "tests", "deps", "audit", "shim.sh")] + scripts)
    assert r.returncode == 0, r.stdout


# ---- compose ---------------------------------------------------------------------

def test_compose_replaces_caddy():
    (doc,) = load_yaml_docs(COMPOSE)
    services = doc["services"]
    assert services["proxy"].get("profiles"), "Caddy (proxy) must not start by default"
    p = services["portcullis"]
    assert set(p["ports"]) == {"80:80", "443:443"}, "the same ports as Caddy"
    assert set(p["depends_on"]) <= set(POSTHOG_SERVICES), p["depends_on"]
    assert "web" in p["depends_on"]
    assert p["build"]["dockerfile"] == "docker/Dockerfile"
    assert str(p["sysctls"]["net.ipv4.ip_unprivileged_port_start"]) == "0"
    assert p["cap_drop"] == ["ALL"]
    targets = {}
    for v in p["volumes"]:
        src, target = compose_interpolate(v, {}).split(":")[:2]
        targets[target] = src
    assert "/etc/portcullis/portcullis.json" in targets and "/var/lib/portcullis" in targets
    assert targets["/var/lib/portcullis"] in doc["volumes"], "named volume not declared"
    drain = json.load(open(os.path.join(SRC, "examples", "posthog", "portcullis.json")))[
        "timeouts"]["drain"]
    assert int(p["stop_grace_period"].rstrip("s")) > drain


def test_compose_upstreams_match_posthog_and_the_example():
    """The POSTHOG_* values name PostHog's services and ports and equal the
    defaults of examples/posthog/portcullis.json."""
    (doc,) = load_yaml_docs(COMPOSE)
    env = doc["services"]["portcullis"]["environment"]
    with open(os.path.join(SRC, "examples", "posthog", "portcullis.json")) as f:
        example = json.load(f)
    for name, up in example["upstreams"].items():
        server = up["servers"][0]
        var = re.fullmatch(r"\$\{([A-Z_]+):-([^}]*)\}", server)
        assert var, server
        if var.group(1) == "APP_UPSTREAM":
            continue  # the customer's application, not a PostHog service
        assert env[var.group(1)] == var.group(2), "%s: compose %s, example %s" % (
            var.group(1), env[var.group(1)], var.group(2))
        host, port = var.group(2).rsplit(":", 1)
        assert POSTHOG_SERVICES.get(host) == int(port), "%s is not a PostHog service" % server


def test_compose_environment_passes_check(tmp_path):
    """examples/posthog/portcullis.json with the environment compose gives it."""
    (doc,) = load_yaml_docs(COMPOSE)
    dotenv = {"DOMAIN": "posthog.example.com", "ACME_EMAIL": "ops@example.com",
              "SAML_IDP_METADATA": idp_metadata_file(tmp_path)}
    env = base_env()
    for k, v in doc["services"]["portcullis"]["environment"].items():
        env[k] = compose_interpolate(str(v), dotenv)
    assert env["POSTHOG_DOMAIN"] == "posthog.example.com" and env["TLS_MODE"] == "acme"
    env["CERTS_DIR"] = str(tmp_path / "certs")  # /var/lib/portcullis in the container
    r = check_config(os.path.join(SRC, "examples", "posthog", "portcullis.json"), env,
                     cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    with pytest.raises(KeyError):
        compose_interpolate(doc["services"]["portcullis"]["environment"]["POSTHOG_DOMAIN"], {})


# ---- systemd ---------------------------------------------------------------------

def unit_with_binary(tmp_path):
    with open(UNIT) as f:
        text = f.read()
    assert "/usr/local/bin/portcullis" in text
    path = tmp_path / "portcullis.service"
    path.write_text(text.replace("/usr/local/bin/portcullis", BIN))
    return path, text


def unit_settings(text):
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            k, _, v = line.partition("=")
            settings.setdefault(k, []).append(v)
    return settings


def test_systemd_unit_verifies(tmp_path):
    need("systemd-analyze")
    path, _ = unit_with_binary(tmp_path)
    r = run(["systemd-analyze", "verify", "--man=no", str(path)])
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    # The same check reports a misspelt setting (so it can fail).
    bad = tmp_path / "bad.service"
    bad.write_text(path.read_text().replace("ProtectHome=", "ProtectHom="))
    r = run(["systemd-analyze", "verify", "--man=no", str(bad)])
    assert "Unknown key" in r.stderr


def test_systemd_unit_sandbox(tmp_path):
    path, text = unit_with_binary(tmp_path)
    s = unit_settings(text)
    assert s["Type"] == ["exec"]
    assert s["User"] == ["portcullis"]
    assert s["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert s["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert s["StateDirectory"] == ["portcullis"] and s["WorkingDirectory"] == ["/var/lib/portcullis"]
    assert s["ExecStartPre"] == ["/usr/local/bin/portcullis -t -c /etc/portcullis/portcullis.json"]
    assert "/bin/kill -HUP $MAINPID" in s["ExecReload"]
    assert s["KillSignal"] == ["SIGTERM"]
    drains = [json.load(open(p))["timeouts"]["drain"] for p in json_configs()
              if "timeouts" in json.load(open(p)) and "drain" in json.load(open(p))["timeouts"]]
    assert int(s["TimeoutStopSec"][0].rstrip("s")) > max(drains)
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(path)])
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout
