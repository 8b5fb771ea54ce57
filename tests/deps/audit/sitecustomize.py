"""Records, for tests/deps/check_deps.py, the programs this Python process starts
and the modules the repository's own files import (PYTHONPATH puts this folder
first while the suite runs; see tests/deps/README.md).  Inactive unless
PORTCULLIS_DEPS_LOG is set.  Debian's own sitecustomize still runs after it."""

import os
import sys


def _install():
    log_path = os.environ.get("PORTCULLIS_DEPS_LOG")
    source = os.environ.get("PORTCULLIS_SOURCE_DIR")
    if not log_path or not source:
        return
    import json
    source = os.path.realpath(source) + os.sep
    here = os.path.dirname(os.path.abspath(__file__))
    shim_dir = os.path.realpath(os.path.join(os.path.dirname(log_path), "bin"))
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    busy = [False]

    def write(rec):
        rec["for"] = os.environ.get("PORTCULLIS_DEPS_FOR", "test")
        rec["by"] = os.environ.get("PYTEST_CURRENT_TEST") or " ".join(sys.argv[:1])
        try:
            with open(log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        except OSError:
            pass

    def ours(filename):
        if not filename:
            return False
        real = os.path.realpath(filename)
        return real.startswith(source) and "node_modules" not in real and not real.startswith(here)

    def which(name, env):
        path = (env if env is not None else os.environ).get("PATH", os.defpath)
        for d in path.split(os.pathsep):
            if not d or os.path.realpath(d) == shim_dir:
                continue
            cand = os.path.join(d, name)
            if os.path.isfile(cand) and os.access(cand, os.X_OK):
                return cand
        return None

    def program(argv0, env=None):
        argv0 = os.fsdecode(argv0)
        path = argv0 if "/" in argv0 else which(argv0, env)
        write({"kind": "program", "name": os.path.basename(argv0),
               "path": os.path.abspath(path) if path else None})

    def importer():
        f = sys._getframe(2)
        while f is not None:
            fn = f.f_code.co_filename
            if not fn.startswith("<frozen") and not fn.startswith(here):
                return fn
            f = f.f_back
        return None

    def hook(event, args):
        if busy[0]:
            return
        busy[0] = True
        try:
            if event == "subprocess.Popen":
                executable, argv = args[0], args[1]
                if isinstance(argv, (str, bytes)):
                    argv = [argv]
                env = args[3] if len(args) > 3 else None
                program(executable if executable else argv[0], env)
            elif event in ("os.exec", "os.posix_spawn"):
                program(args[0], args[2] if len(args) > 2 else None)
            elif event == "os.spawn":
                program(args[1], args[3] if len(args) > 3 else None)
            elif event == "import":
                top = args[0].split(".")[0]
                if top in stdlib or top.startswith("_"):
                    return
                if not ours(importer()):
                    return
                import importlib.util
                try:
                    spec = importlib.util.find_spec(top)
                    origin = spec.origin if spec else None
                    if spec and spec.submodule_search_locations and (not origin or origin == "namespace"):
                        origin = list(spec.submodule_search_locations)[0]
                except Exception:  # noqa: BLE001 - a module that cannot be found is reported as such
                    origin = None
                if origin and ours(origin):
                    return
                write({"kind": "python", "name": top, "path": origin})
        except Exception:  # noqa: BLE001 - recording must never break the program it watches
            pass
        finally:
            busy[0] = False

    sys.addaudithook(hook)


def _chain():
    """Run the sitecustomize this one shadows (Debian's, if any)."""
    import importlib.machinery
    import importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec and spec.loader:
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)


_install()
_chain()
