"""Loopback ports for servers that must be told their port in advance.

A port taken with bind(0) and released comes from the kernel's ephemeral
range, which outgoing connections draw from too: between the release and the
server's own bind, any test's connect() may be given it (it happened in CI:
"bind: Address already in use"). So ports are picked below that range, and
each one is reserved across the concurrent test processes with a lock file
held for the life of this process (the kernel drops the lock when it exits).
"""

import fcntl
import os
import random
import socket

LOCK_DIR = "/tmp/portcullis-test-ports"
LOW, HIGH = 12000, 32000   # under /proc/sys/net/ipv4/ip_local_port_range
_held = []                 # open lock files: the reservations of this process


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _reserve(port):
    """Take the lock for <port>; False when another process holds it."""
    os.makedirs(LOCK_DIR, exist_ok=True)
    fd = os.open(os.path.join(LOCK_DIR, str(port)), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held.append(fd)
    return True


def free_ports(count=1, consecutive=False):
    """<count> loopback ports nobody listens on, reserved for this process.

    With consecutive=True they form one block (port, port+1, ...)."""
    high = min(HIGH, _ephemeral_low() - 1)
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "big"))
    ports = []
    for _ in range(5000):
        if consecutive:
            base = rng.randrange(LOW, high - count)
            block = list(range(base, base + count))
        else:
            block = [rng.randrange(LOW, high)]
        if any(p in ports for p in block):
            continue
        if not all(_bindable(p) for p in block):
            continue
        if not all(_reserve(p) for p in block):
            continue   # a partial block stays reserved: harmless, this process only
        ports.extend(block)
        if len(ports) >= count:
            return ports[:count]
    raise RuntimeError("no free loopback port in %d-%d" % (LOW, high))


def free_port():
    """One loopback port nobody listens on, reserved for this process."""
    return free_ports(1)[0]
