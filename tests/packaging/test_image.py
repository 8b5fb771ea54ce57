"""The container image built and run (issue #19): docker/Dockerfile on a
debian:12-slim base made from Debian's archive (tests/packaging/debbase.py),
the PostHog example in the image against stand-ins, the health check, the user
and the read-only root, `docker run IMAGE --version`, and Debian's
docker-compose (1.29) reading docker/docker-compose.posthog.yml.

Starts Debian's dockerd (overlay2) when no daemon answers, and stops it again.
The base tarball stays in PORTCULLIS_IMAGE_CACHE and the images in Docker's
store, so a second run rebuilds nothing that did not change.  Every container
uses the host's network on loopback addresses only.  The image's size and the
build time are written to PORTCULLIS_IMAGE_CACHE/image-report.txt.

Runs as root (dockerd); CTest label "image" (scripts/test.sh --image).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debbase  # noqa: E402

SRC = debbase.SRC
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
from harness import need  # noqa: E402
from ports import free_port  # noqa: E402

sys.path.insert(0, os.path.join(SRC, "tests", "saml"))
import samltools  # noqa: E402

# Debian's client: another `docker` may come first on PATH.
DOCKER = "/usr/bin/docker"
BASE = "debian:12-slim"
IMAGE = "portcullis:test"
UID = 10001
TAG = "pcl-test-%d" % os.getpid()


def run(cmd, timeout=120, check=False, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n%s\n%s" % (" ".join(cmd), r.returncode,
                                                      r.stdout[-4000:], r.stderr[-4000:]))
    return r


def docker(*args, **kw):
    return run([DOCKER] + list(args), **kw)


def wait_for(what, check, timeout=60.0):
    end = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.5)


@pytest.fixture(scope="module")
def daemon():
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root")
    if not os.path.exists(DOCKER):
        need("docker")
    dockerd = need("dockerd")
    if docker("info", timeout=30).returncode == 0:
        yield None
        return
    os.makedirs(debbase.CACHE, exist_ok=True)
    log = open(os.path.join(debbase.CACHE, "dockerd.log"), "ab")
    proc = subprocess.Popen([dockerd, "--storage-driver=overlay2",
                             "--pidfile", os.path.join(debbase.CACHE, "dockerd.pid")],
                            stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for("dockerd", lambda: proc.poll() is not None
                 or docker("info", timeout=30).returncode == 0)
        assert proc.poll() is None, "dockerd exited; see %s" % log.name
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def base(daemon):
    """debian:12-slim, imported from the cached debootstrap tarball."""
    if docker("image", "inspect", BASE).returncode != 0:
        tar = debbase.minbase_tarball(need("debootstrap"))
        docker("import", "--change", 'CMD ["bash"]', tar, BASE, timeout=600, check=True)
    return BASE


@pytest.fixture(scope="module")
def image(base):
    t = time.monotonic()
    docker("build", "-q", "-f", os.path.join(SRC, "docker", "Dockerfile"), "-t", IMAGE, SRC,
           timeout=1200, check=True)
    took = time.monotonic() - t
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE, check=True).stdout)
    with open(os.path.join(debbase.CACHE, "image-report.txt"), "w") as f:
        f.write("image %s: %.1f MB, docker build took %.0f s\n" % (IMAGE, size / 1e6, took))
    return IMAGE


def test_entrypoint_takes_arguments(image):
    """ENTRYPOINT is the binary: arguments replace only CMD (as Caddy's and Traefik's)."""
    r = docker("run", "--rm", image, "--version", check=True)
    assert "portcullis" in r.stdout.lower() + r.stderr.lower()
    docker("run", "--rm", image, "-t", "-c", "/etc/portcullis/portcullis.json", check=True)
    r = docker("run", "--rm", image, "-t", "-c", "/nonexistent.json")
    assert r.returncode != 0


def test_image_has_no_build_tools(image):
    r = docker("run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
               "command -v cc gcc cmake make apt-get >/dev/null 2>&1; "
               "ls /usr/include 2>/dev/null | wc -l")
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stdout + r.stderr


class Standins:
    """scripts/standin.py on loopback, one port per PostHog service."""
    NAMES = ("web", "capture", "replay", "flags", "livestream", "plugins", "app")

    def __init__(self):
        self.ports = {n: free_port() for n in self.NAMES}
        args = ["%s=%d" % (n, p) for n, p in self.ports.items()]
        self.proc = subprocess.Popen([sys.executable, os.path.join(SRC, "scripts", "standin.py"),
                                      "--host", "127.0.0.1"] + args,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for p in self.ports.values():
            wait_for("stand-in on %d" % p, lambda p=p: self._listening(p), 20)

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def posthog(image, tmp_path):
    """The PostHog example in the image as compose runs it: read-only root, no
    capabilities, the configuration mounted read-only, a named state volume."""
    standins = Standins()
    _, idp_cert = samltools.make_key(str(tmp_path), "idp")
    (tmp_path / "idp.xml").write_text(samltools.idp_metadata(
        "https://idp.example.com/md", "https://idp.example.com/sso", idp_cert))
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "idp.xml", 0o644)
    ports = {"http": free_port(), "https": free_port(), "admin": free_port()}
    up = {"POSTHOG_WEB": "web", "POSTHOG_CAPTURE": "capture", "POSTHOG_REPLAY": "replay",
          "POSTHOG_FLAGS": "flags", "POSTHOG_LIVESTREAM": "livestream",
          "POSTHOG_PLUGINS": "plugins", "APP_UPSTREAM": "app"}
    env = {"POSTHOG_DOMAIN": "posthog.localhost", "TLS_MODE": "local",
           "PORTCULLIS_HTTP": "127.0.0.1:%d" % ports["http"],
           "PORTCULLIS_HTTPS": "127.0.0.1:%d" % ports["https"],
           "PORTCULLIS_ADMIN": "127.0.0.1:%d" % ports["admin"],
           "SAML_IDP_METADATA": "/etc/portcullis/idp.xml"}
    env.update({k: "127.0.0.1:%d" % standins.ports[v] for k, v in up.items()})
    name, volume = TAG + "-posthog", TAG + "-data"
    cmd = ["run", "-d", "--name", name, "--network", "host", "--read-only",
           "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
           # The image's HEALTHCHECK command, checked every second instead of 30.
           "--health-interval", "1s", "--health-start-period", "30s",
           "-v", "%s:/etc/portcullis/portcullis.json:ro" % os.path.join(
               SRC, "examples", "posthog", "portcullis.json"),
           "-v", "%s:/etc/portcullis/idp.xml:ro" % (tmp_path / "idp.xml"),
           "-v", "%s:/var/lib/portcullis" % volume]
    for k, v in env.items():
        cmd += ["-e", "%s=%s" % (k, v)]
    try:
        docker(*cmd, image, check=True)
        yield name, ports, tmp_path
    finally:
        logs = docker("logs", name)
        print(logs.stdout[-3000:], logs.stderr[-3000:])
        docker("rm", "-f", name)
        docker("volume", "rm", "-f", volume)
        standins.stop()


def curl(*args):
    return run([need("curl"), "-sS", "--max-time", "10"] + list(args))


def test_posthog_example_in_the_image(posthog):
    name, ports, tmp = posthog

    def health():
        return docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
    wait_for("healthy", lambda: health() in ("healthy", "unhealthy") or
             docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() != "true", 60)
    assert health() == "healthy", docker("inspect", "-f", "{{json .State}}", name).stdout

    # The process: uid/gid 10001, no capabilities, in a read-only root.
    info = json.loads(docker("inspect", name, check=True).stdout)[0]
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    with open("/proc/%d/status" % info["State"]["Pid"]) as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines())
    assert status["Uid"].split() == [str(UID)] * 4, status["Uid"]
    assert status["Gid"].split() == [str(UID)] * 4, status["Gid"]
    assert int(status["CapEff"], 16) == 0
    r = docker("exec", name, "/bin/sh", "-c", "touch /usr/local/bin/x")
    assert r.returncode != 0 and "Read-only file system" in r.stderr, r.stderr
    r = docker("exec", name, "/bin/sh", "-c", "touch /var/lib/portcullis/x && rm /var/lib/portcullis/x")
    assert r.returncode == 0, r.stderr

    # The local CA it made in the state volume vouches for posthog.localhost.
    r = docker("exec", name, "/bin/sh", "-c",
               "find /var/lib/portcullis -name ca.crt -path '*local*' | head -n 1 | xargs cat")
    assert "BEGIN CERTIFICATE" in r.stdout, r.stdout + r.stderr
    (tmp / "ca.crt").write_text(r.stdout)
    (tmp / "capath").mkdir()
    resolve = "posthog.localhost:%d:127.0.0.1" % ports["https"]
    tls = ["--cacert", str(tmp / "ca.crt"), "--capath", str(tmp / "capath"), "--resolve", resolve]
    base = "https://posthog.localhost:%d" % ports["https"]

    r = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             "-H", "Host: posthog.localhost", "http://127.0.0.1:%d/e" % ports["http"])
    assert r.stdout.startswith("30") and "https://posthog.localhost" in r.stdout, r.stdout + r.stderr
    r = curl(*tls, "-d", '{"event":"x"}', "-H", "Content-Type: application/json", base + "/e/")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["service"] == "capture", r.stdout
    r = curl(*tls, base + "/flags?v=2")
    assert json.loads(r.stdout)["service"] == "flags", r.stdout
    # The UI needs a SAML session: a redirect to the IdP, not the stand-in.
    r = curl(*tls, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", base + "/livestream/events")
    assert r.stdout.startswith("30") and "idp.example.com/sso" in r.stdout, r.stdout

    # docker stop: SIGTERM drains and exits 0.
    docker("stop", "-t", "40", name, check=True, timeout=60)
    assert docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "0"


def test_port_80_without_capabilities(image):
    """The compose file publishes 80 and 443 with cap_drop ALL: uid 10001 binds
    them because Docker sets ip_unprivileged_port_start=0 in the container."""
    name = TAG + "-bridge"
    try:
        docker("run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL",
               "-p", "127.0.0.1::80", image, check=True)
        port = wait_for("published port", lambda: docker(
            "port", name, "80/tcp").stdout.strip().rsplit(":", 1)[-1])
        r = wait_for("an answer on port 80", lambda: (lambda r: r if r.stdout.startswith(
            ("2", "3", "4", "5")) else None)(curl("-o", "/dev/null", "-w", "%{http_code}",
                                                 "http://127.0.0.1:%s/" % port)), 30)
        assert r.stdout[0] in "2345"
    finally:
        docker("rm", "-f", name)


def hobby_compose(directory):
    """A stand-in for PostHog's docker-compose.hobby.yml: the services the override names."""
    services = {s: {"image": "posthog/posthog:latest"} for s in
                ("web", "capture", "replay-capture", "feature-flags", "livestream", "plugins")}
    services["proxy"] = {"image": "caddy:2", "ports": ["80:80", "443:443"]}
    path = os.path.join(directory, "docker-compose.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"version": "3.7", "services": services}, f)
    return path


def test_compose_config_reads_the_override(tmp_path):
    compose = need("docker-compose")
    base_file = hobby_compose(str(tmp_path))
    override = os.path.join(SRC, "docker", "docker-compose.posthog.yml")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DOMAIN": "posthog.example.com",
           "SAML_IDP_METADATA": "https://idp.example.com/md", "PORTCULLIS_SRC": SRC}
    r = run([compose, "-f", base_file, "-f", override, "config"], env=env, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load(r.stdout)
    p = doc["services"]["portcullis"]
    assert p["read_only"] is True and p["cap_drop"] == ["ALL"]
    assert p["build"]["context"] == SRC and p["build"]["dockerfile"] == "docker/Dockerfile"
    assert {x["target"] for x in p["ports"]} == {80, 443} if isinstance(p["ports"][0], dict) \
        else {x.split(":")[-1] for x in p["ports"]} == {"80", "443"}
    assert p["environment"]["POSTHOG_DOMAIN"] == "posthog.example.com"
    assert doc["services"]["proxy"]["profiles"] == ["caddy"]
    # Without DOMAIN compose refuses, naming the variable.
    del env["DOMAIN"]
    r = run([compose, "-f", base_file, "-f", override, "config"], env=env, cwd=str(tmp_path))
    assert r.returncode != 0 and "DOMAIN" in r.stderr, r.stderr
