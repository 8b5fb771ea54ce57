"""A Debian 12 root file system built from Debian's archive, for the tests that
run the image (test_image.py) and the systemd unit (test_systemd.py).

No image registry is reachable from the test machines, so `debian:12-slim` is
made the way Docker's own debian images are: `debootstrap --variant=minbase
bookworm` from the mirror apt already uses (/etc/apt/sources.list.d/*.sources or
/etc/apt/sources.list), then `docker import`.  Like the real slim image, dpkg
is told to leave out manuals, documentation and translations.

Everything is cached in PORTCULLIS_IMAGE_CACHE (CMake sets build/image-cache),
so only the first run pays for debootstrap:

  bookworm-minbase.tar    the minbase tree (the docker base and the systemd tree)
  bookworm-systemd-*.tar  the same plus systemd, dbus and the runtime
                          libraries of the image (test_systemd.py)
"""

import contextlib
import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

SRC = os.path.abspath(os.environ.get("PORTCULLIS_SOURCE_DIR")
                      or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CACHE = os.path.abspath(os.environ.get("PORTCULLIS_IMAGE_CACHE")
                        or os.path.join(SRC, "build", "image-cache"))

HOST_SOURCES = "/etc/apt/sources.list.d/debian.sources"

# What Docker's debian:*-slim images write to /etc/dpkg/dpkg.cfg.d/docker.
SLIM_DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""

SLIM_APT_CLEAN = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::GzipIndexes "true";
APT::Install-Recommends "false";
"""


def debian_mirror():
    """The URI of the Debian archive (not -security) that apt on this machine uses."""
    uris = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            for m in re.finditer(r"^URIs:\s*(\S+)", f.read(), re.M):
                uris.append(m.group(1))
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            with open(path) as f:
                for m in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\b", f.read(), re.M):
                    uris.append(m.group(1))
    for uri in uris:
        if re.search(r"/debian/?$", uri):
            return uri
    raise RuntimeError("no Debian archive in apt's sources: %r" % uris)


def chroot_env():
    """The whole environment of a command run inside the Debian tree (chroot): none
    of the test run's own variables, which name host paths that do not exist there
    (the dependency audit's PATH shims, PERL5OPT, PYTHONPATH, NODE_OPTIONS) or act
    on every process (LD_PRELOAD, ASAN_OPTIONS of the sanitizer build)."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8"}


def run(cmd, timeout=900, **kw):
    """Runs cmd; raises with its output when it fails."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), r.returncode,
                                                       r.stdout[-3000:], r.stderr[-3000:]))
    return r


@contextlib.contextmanager
def _locked():
    """One builder of the cache at a time (tests may run in parallel)."""
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _tar_tree(tree, out):
    os.chmod(tree, 0o755)  # mkdtemp made it 0700: "/" in the image would be too
    tmp = out + ".part"
    run(["tar", "-C", tree, "--numeric-owner", "-cf", tmp, "."])
    os.replace(tmp, out)


def minbase_tarball(debootstrap):
    """The cached minbase tarball, made with debootstrap on first use."""
    out = os.path.join(CACHE, "bookworm-minbase.tar")
    with _locked():
        if not os.path.exists(out):
            _make_minbase(debootstrap, out)
    return out


def _make_minbase(debootstrap, out):
    tree = tempfile.mkdtemp(prefix="minbase.", dir=CACHE)
    try:
        # Two stages, so that the test environment reaches only what runs on the host.
        # The first stage (downloads, unpacking, perl) runs here with the environment
        # CTest gives every test, dependency audit included: PATH starts with
        # build/deps-audit/bin, PERL5OPT=-MPortcullisDepsAudit, PYTHONPATH, NODE_OPTIONS
        # (tests/deps/README.md), and so its programs are recorded like any other.
        # The second stage runs inside the new tree (dpkg and the packages' maintainer
        # scripts), where those paths do not exist: perl there died on PERL5OPT's
        # missing module ("chroot ... dpkg --install base-passwd" failed on every fresh
        # clone).  It gets a clean environment (chroot_env()), as apt-get in
        # _make_systemd does.
        run([debootstrap, "--foreign", "--variant=minbase", "bookworm", tree, debian_mirror()],
            timeout=1500)
        try:
            run(["chroot", tree, "/debootstrap/debootstrap", "--second-stage"], env=chroot_env(),
                timeout=1500)
        except RuntimeError as exc:
            log = os.path.join(tree, "debootstrap", "debootstrap.log")
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    raise RuntimeError("%s\n%s:\n%s" % (exc, log, f.read()[-4000:])) from exc
            raise
        # The host's sources (with -updates and -security), as debian:12-slim has them.
        if os.path.exists(HOST_SOURCES):
            shutil.copy(HOST_SOURCES, os.path.join(tree, "etc/apt/sources.list.d/debian.sources"))
            os.unlink(os.path.join(tree, "etc/apt/sources.list"))
        with open(os.path.join(tree, "etc/dpkg/dpkg.cfg.d/docker"), "w") as f:
            f.write(SLIM_DPKG_EXCLUDES)
        with open(os.path.join(tree, "etc/apt/apt.conf.d/docker-clean"), "w") as f:
            f.write(SLIM_APT_CLEAN)
        for pattern in ("usr/share/doc/*/*", "usr/share/man/*", "usr/share/info/*",
                        "usr/share/locale/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                        "var/lib/apt/lists/*_*"):
            for p in sorted(glob.glob(os.path.join(tree, pattern))):
                if os.path.basename(p) in ("copyright", "locale.alias"):
                    continue
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                elif os.path.lexists(p):
                    os.unlink(p)
        _unmount_under(tree)
        _tar_tree(tree, out)
    finally:
        _unmount_under(tree)
        shutil.rmtree(tree, ignore_errors=True)


def _unmount_under(tree):
    """Detach whatever is still mounted inside <tree> (the second stage mounts /proc
    and /sys there and normally unmounts them itself), deepest first."""
    prefix = os.path.realpath(tree) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def systemd_tarball(debootstrap, packages=()):
    """The cached minbase tree plus systemd, dbus and `packages` (apt-get in a
    chroot of it); one tarball per package set."""
    extra = sorted(set(packages))
    digest = hashlib.sha256(" ".join(extra).encode()).hexdigest()[:12]
    out = os.path.join(CACHE, "bookworm-systemd-%s.tar" % digest)
    base = minbase_tarball(debootstrap)
    with _locked():
        if not os.path.exists(out):
            _make_systemd(base, out, extra)
    return out


def _make_systemd(base, out, extra):
    tree = tempfile.mkdtemp(prefix="systemd.", dir=CACHE)
    mounted = []
    try:
        run(["tar", "-C", tree, "-xf", base])
        shutil.copy("/etc/resolv.conf", os.path.join(tree, "etc/resolv.conf"))
        for fs, where in (("proc", "proc"), ("sysfs", "sys")):
            run(["mount", "-t", fs, fs, os.path.join(tree, where)])
            mounted.append(os.path.join(tree, where))
        env = chroot_env()
        run(["chroot", tree, "apt-get", "update", "-q"], env=env)
        run(["chroot", tree, "apt-get", "install", "-y", "-q", "--no-install-recommends",
             "systemd", "systemd-sysv", "dbus", "procps"] + extra, env=env, timeout=1500)
        run(["chroot", tree, "apt-get", "clean"], env=env)
        for m in reversed(mounted):
            run(["umount", m])
        mounted = []
        os.unlink(os.path.join(tree, "etc/resolv.conf"))
        _tar_tree(tree, out)
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", "-l", m])
        shutil.rmtree(tree, ignore_errors=True)
