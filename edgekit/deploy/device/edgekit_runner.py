"""edgekit's on-device runner: receives, verifies and activates bundles, benchmarks and runs the model.

Self-contained on purpose: it needs Python 3.7+, and for bench/run numpy and a TFLite runtime
(ai_edge_litert, or tflite_runtime on older boards; libedgetpu for Edge TPU models). It never
imports edgekit, so a board needs no edgekit install: the bundle carries the edgekit modules it
uses verbatim, frames.py (pre/postprocessing: the same tensors and results as the host),
stats.py (bench statistics) and parity.py (parity and gates: `verify` reruns the bundle's
reference pack, `<model>.edgekit.ref.npz`, on this board's runtime and gates it as the host's
`edgekit convert` does). Every result is one JSON document (or one JSON line per frame for
`run`) on stdout; failures are {"error": ...} and a non-zero exit.

Layout on the device (ROOT defaults to ~/.edgekit):
    ROOT/models/NAME/<version>/     a verified bundle (SHA256SUMS lists every other file)
    ROOT/models/NAME/current        symlink to the active version, replaced atomically (rename)
    ROOT/models/NAME/previous       symlink to the version `rollback` returns to
    ROOT/models/NAME/.incoming-*    an upload in progress; never read, removed by the next deploy
    ROOT/models/NAME/.history.jsonl the deploy history: one JSON line per deploy, rollback and verify
"""
import argparse
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import time

sys.dont_write_bytecode = True  # nothing may be added to a verified bundle directory
SUMS = "SHA256SUMS"
BUNDLE_INFO = "bundle.json"
HISTORY = ".history.jsonl"
HISTORY_SHOWN = 20      # events `list` returns per model, newest last
MIN_PYTHON = (3, 7)


class Failure(Exception):
    """A problem the user can act on; printed as {"error": message}."""


def emit(data):
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- device facts

def _module_version(name):
    try:
        module = __import__(name)
    except Exception:  # a broken install counts as missing
        return None
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            from importlib import metadata
            version = metadata.version(name.replace("_", "-"))
        except Exception:
            version = "unknown"
    return str(version)


def tflite_runtime_info():
    """(module name, version) of the first TFLite runtime found, or (None, None)."""
    for name in ("ai_edge_litert", "tflite_runtime"):
        version = _module_version(name)
        if version is not None:
            return name, version
    return None, None


def libedgetpu_info():
    """{"path", "runtime_version", "build"} of libedgetpu, or None when it is not installed."""
    import ctypes
    import ctypes.util

    for candidate in ("libedgetpu.so.1", ctypes.util.find_library("edgetpu"), "libedgetpu.1.dylib"):
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        info = {"path": candidate, "runtime_version": None, "build": None}
        try:
            lib.edgetpu_version.restype = ctypes.c_char_p
            text = lib.edgetpu_version().decode(errors="replace")  # "BuildLabel(...), RuntimeVersion(14)"
            info["build"] = text
            if "RuntimeVersion(" in text:
                info["runtime_version"] = int(text.split("RuntimeVersion(")[1].split(")")[0])
        except (AttributeError, ValueError):
            pass
        return info
    return None


def free_bytes(path):
    """Free space on the filesystem that holds `path` (or its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip("\x00\n ") or None
    except OSError:
        return None


def host_info():
    """The same keys as edgekit.bench.sysinfo.collect() where the device can answer them."""
    runtime, runtime_version = tflite_runtime_info()
    cpu = _read("/proc/device-tree/model") or platform.processor() or platform.machine()
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith(("model name", "Model", "Hardware")):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = None
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            memory = round(int(line.split()[1]) / (1024.0 * 1024.0), 1)
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "hostname": platform.node(),
            "cpu": cpu, "machine": platform.machine(), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "board": _read("/proc/device-tree/model"), "memory_gib": memory, "loadavg": load,
            "os": platform.platform(), "python": platform.python_version(), "python_executable": sys.executable,
            "packages": {"numpy": _module_version("numpy"), "ai-edge-litert": _module_version("ai_edge_litert"),
                         "tflite-runtime": _module_version("tflite_runtime"), "edgekit": _module_version("edgekit")},
            "runtime": runtime, "runtime_version": runtime_version, "libedgetpu": libedgetpu_info()}


def model_dir(root, name):
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise Failure("invalid model name %r" % name)
    return os.path.join(os.path.expanduser(root), "models", name)


def link_target(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def versions(directory):
    if not os.path.isdir(directory):
        return []
    return sorted(entry for entry in os.listdir(directory)
                  if not entry.startswith(".") and entry not in ("current", "previous")
                  and os.path.isdir(os.path.join(directory, entry)) and not os.path.islink(os.path.join(directory, entry)))


def version_info(directory, version):
    """What a kept version is: its bundle.json facts and the model file's sha256 (from SHA256SUMS)."""
    path = os.path.join(directory, version)
    info = {}
    try:
        with open(os.path.join(path, BUNDLE_INFO), encoding="utf-8") as handle:
            info = json.load(handle)
    except (OSError, ValueError):
        pass
    try:
        model_sha = read_sums(os.path.join(path, SUMS)).get(info.get("model"))
    except (OSError, ValueError):
        model_sha = None
    try:
        size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    except OSError:
        size = None
    return {"created": info.get("created"), "model": info.get("model"), "content_sha256": info.get("content_sha256"),
            "model_sha256": model_sha, "edgekit_version": info.get("edgekit_version"), "size_bytes": size}


def record(directory, event):
    """Append EVENT (a dict; the time is added) to the model's deploy history, one JSON line."""
    event = dict(event, time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    with open(os.path.join(directory, HISTORY), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(event, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def history(directory, limit=HISTORY_SHOWN):
    """The last LIMIT events of the model's deploy history, oldest first (a torn line is skipped)."""
    events = []
    try:
        with open(os.path.join(directory, HISTORY), encoding="utf-8") as handle:
            for line in handle:
                try:
                    events.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        return []
    return events[-limit:]


def cmd_probe(args):
    directory = model_dir(args.root, args.name)
    info = host_info()
    current = link_target(os.path.join(directory, "current"))
    info.update({"python_ok": sys.version_info[:2] >= MIN_PYTHON, "free_bytes": free_bytes(directory),
                 "root": os.path.expanduser(args.root), "current": current,
                 "current_content_sha256": version_info(directory, current)["content_sha256"] if current else None,
                 "previous": link_target(os.path.join(directory, "previous")), "versions": versions(directory)})
    emit(info)


def cmd_list(args):
    """Every deployed model with its current, previous and kept versions (with their dates and hashes)."""
    models_root = os.path.join(os.path.expanduser(args.root), "models")
    models = {}
    for name in sorted(os.listdir(models_root)) if os.path.isdir(models_root) else []:
        directory = os.path.join(models_root, name)
        current = link_target(os.path.join(directory, "current"))
        if current:
            kept = versions(directory)
            models[name] = {"current": current, "previous": link_target(os.path.join(directory, "previous")),
                            "versions": kept, "details": {v: version_info(directory, v) for v in kept},
                            "history": history(directory)}
    emit({"models": models})


DISTRIBUTION = "edgekit-vision"   # edgekit's name on PyPI (edgekit.DISTRIBUTION; `edgekit` there is another project)


def cmd_serve(args):
    """The web view needs edgekit itself; hand over to `python -m edgekit run` on the device, with
    an access token the client is told (and prints in the URL)."""
    if _module_version("edgekit") is None:
        raise Failure("the web view needs edgekit on the device, which is not installed there (pip install %s "
                      "on the board); without it, `edgekit remote run HOST --jsonl` streams the results instead"
                      % DISTRIBUTION)
    import secrets
    import subprocess

    info, _ = load_bundle(here())
    token = secrets.token_urlsafe(16)
    child = subprocess.Popen([sys.executable, "-m", "edgekit", "run", os.path.join(here(), info["model"]),
                              "--source", args.source, "--serve", args.serve, "--serve-token", token],
                             stdin=subprocess.DEVNULL)
    emit({"serving": args.serve, "token": token})
    try:
        # ssh sessions without a terminal get no SIGHUP: stdin reaching EOF means the client is gone
        while child.poll() is None and sys.stdin.buffer.read(1 << 16):
            pass
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
    if child.returncode not in (0, -15, 143, None):   # 143: edgekit run finished its outputs on our SIGTERM
        raise Failure("edgekit run exited with code %s on the device" % child.returncode)


# ---------------------------------------------------------------- receive / verify / switch

def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_sums(path):
    sums = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line:
                digest, name = line.split("  ", 1)
                sums[name] = digest
    return sums


def verify_dir(directory, sums_sha256):
    """Every file is listed in SHA256SUMS, matches it, and SHA256SUMS is the one the client sent."""
    sums_path = os.path.join(directory, SUMS)
    if not os.path.isfile(sums_path):
        raise Failure("upload incomplete: %s is missing" % SUMS)
    if sha256_file(sums_path) != sums_sha256:
        raise Failure("%s does not match the bundle that was sent (sha256 mismatch)" % SUMS)
    sums = read_sums(sums_path)
    present = set(os.listdir(directory)) - {SUMS, "__pycache__"}  # a runner run by hand may leave bytecode
    missing = sorted(set(sums) - present)
    extra = sorted(present - set(sums))
    if missing or extra:
        raise Failure("upload incomplete: missing %s, unexpected %s" % (missing, extra))
    for name, digest in sorted(sums.items()):
        if sha256_file(os.path.join(directory, name)) != digest:
            raise Failure("sha256 mismatch for %s" % name)
    return len(sums)


def safe_member(member):
    name = member.name
    if not member.isfile() or "/" in name or name in ("", ".", "..") or name.startswith(".incoming") or "\0" in name:
        raise Failure("refusing bundle member %r (bundles are flat regular files)" % name)
    return name


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def point(directory, link, target):
    """Atomically make `link` a symlink to `target` (a sibling name): ln -s tmp + rename = mv -T."""
    temp = os.path.join(directory, ".%s.tmp-%d" % (link, os.getpid()))
    if os.path.lexists(temp):
        os.unlink(temp)
    os.symlink(target, temp)
    os.replace(temp, os.path.join(directory, link))
    fsync_dir(directory)


class Lock:
    """One deploy/rollback per model at a time; the kernel drops the lock if we are killed."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.handle = open(os.path.join(directory, ".lock"), "w")

    def __enter__(self):
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise Failure("another deploy or rollback of this model is in progress on the device")
        return self

    def __exit__(self, *exc):
        self.handle.close()


def prune(directory, keep):
    protected = {link_target(os.path.join(directory, "current")), link_target(os.path.join(directory, "previous"))}
    removed = []
    old = [v for v in versions(directory) if v not in protected]
    surplus = len(old) - max(0, keep - len(protected - {None}))
    for version in old[:max(0, surplus)]:
        shutil.rmtree(os.path.join(directory, version), ignore_errors=True)
        removed.append(version)
    return removed


def cmd_receive(args):
    directory = model_dir(args.root, args.name)
    if "/" in args.version or args.version.startswith("."):
        raise Failure("invalid version %r" % args.version)
    with Lock(directory):
        for entry in os.listdir(directory):  # stale uploads of interrupted deploys
            if entry.startswith(".incoming-"):
                shutil.rmtree(os.path.join(directory, entry), ignore_errors=True)
        current = link_target(os.path.join(directory, "current"))
        if args.content_sha256 and current and version_info(directory, current)["content_sha256"] == args.content_sha256:
            # the same content is already running: no new version, `previous` keeps the real previous one
            verify_dir(os.path.join(directory, current), sha256_file(os.path.join(directory, current, SUMS)))
            report = check_version(os.path.join(directory, current)) if args.verify else None
            record(directory, {"event": "deploy", "version": current, "unchanged": True, "switched": False,
                               "current": current, "verify": summary(report)})
            emit({"version": current, "previous": link_target(os.path.join(directory, "previous")), "unchanged": True,
                  "files": 0, "bytes": 0, "verified": True, "path": os.path.join(directory, current), "pruned": [],
                  "switched": False, "current": current, "verify": report})
            return
        incoming = tempfile.mkdtemp(prefix=".incoming-", dir=directory)
        try:
            received = 0
            with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as archive:
                for member in archive:
                    name = safe_member(member)
                    source = archive.extractfile(member)
                    with open(os.path.join(incoming, name), "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                        out.flush()
                        os.fsync(out.fileno())
                    os.chmod(os.path.join(incoming, name), 0o755 if name.endswith(".py") else 0o644)
                    received += member.size
            files = verify_dir(incoming, args.sums_sha256)
            fsync_dir(incoming)
            final = os.path.join(directory, args.version)
            created = not os.path.isdir(final)
            if not created:  # the same bundle deployed again: keep the verified copy on disk
                verify_dir(final, args.sums_sha256)
                shutil.rmtree(incoming)
            else:
                os.chmod(incoming, 0o755)  # mkdtemp made it private; a bundle is readable like any install
                os.rename(incoming, final)
        except (tarfile.TarError, EOFError, OSError) as exc:
            shutil.rmtree(incoming, ignore_errors=True)
            raise Failure("upload interrupted or corrupt (%s)" % exc)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        old = link_target(os.path.join(directory, "current"))
        report = check_version(final) if args.verify else None
        if report is not None and report["status"] != "pass":
            # --verify-on-device: a version that fails its pack here never becomes current
            if created:
                shutil.rmtree(final, ignore_errors=True)
            record(directory, {"event": "deploy", "version": args.version, "switched": False, "current": old,
                               "verify": summary(report)})
            emit({"version": args.version, "previous": link_target(os.path.join(directory, "previous")),
                  "files": files, "bytes": received, "verified": True, "path": final, "pruned": [],
                  "switched": False, "current": old, "verify": report})
            return
        if old and old != args.version:
            point(directory, "previous", old)
        point(directory, "current", args.version)
        removed = prune(directory, args.keep)
        record(directory, {"event": "deploy", "version": args.version, "previous": old, "switched": True,
                           "current": args.version, "verify": summary(report)})
    emit({"version": args.version, "previous": old if old != args.version else link_target(os.path.join(directory, "previous")),
          "files": files, "bytes": received, "verified": True, "path": final, "pruned": removed,
          "switched": True, "current": args.version, "verify": report})


def cmd_rollback(args):
    directory = model_dir(args.root, args.name)
    if not os.path.isdir(directory):
        raise Failure("no model named %r is deployed on this device" % args.name)
    with Lock(directory):
        current = link_target(os.path.join(directory, "current"))
        target = args.to or link_target(os.path.join(directory, "previous"))
        available = versions(directory)
        if not target or target == current:
            raise Failure("nothing to roll back to: only version %s is kept" % current)
        if target not in available:
            raise Failure("version %r is not on the device (kept: %s)" % (target, ", ".join(available)))
        # verify before switching: rollback must not activate a damaged copy
        verify_dir(os.path.join(directory, target), sha256_file(os.path.join(directory, target, SUMS)))
        point(directory, "current", target)  # first: the wanted version runs even if we stop here
        if current:
            point(directory, "previous", current)
        record(directory, {"event": "rollback", "version": target, "previous": current})
    emit({"version": target, "previous": current, "verified": True})


# ---------------------------------------------------------------- model: load, bench, run

def here():
    return os.path.dirname(os.path.abspath(__file__))


def vendored(name, directory=None):
    """A module the bundle carries verbatim from edgekit (sha256-checked on arrival): stats.py, frames.py,
    parity.py. Loaded from the bundle's file by path (DIRECTORY, default this runner's), so a same-named
    package installed on the board cannot stand in."""
    if name not in sys.modules:
        import importlib.util

        spec = importlib.util.spec_from_file_location(name, os.path.join(directory or here(), name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


def load_bundle(directory):
    with open(os.path.join(directory, BUNDLE_INFO), encoding="utf-8") as handle:
        info = json.load(handle)
    manifest = {}
    if info.get("manifest"):
        with open(os.path.join(directory, info["manifest"]), encoding="utf-8") as handle:
            manifest = json.load(handle)
    return info, manifest


def open_interpreter(path, edgetpu, threads):
    runtime, _ = tflite_runtime_info()
    if runtime is None:
        raise Failure("no TFLite runtime on this device: pip3 install ai-edge-litert (or tflite-runtime on older boards)")
    module = __import__(runtime + ".interpreter", fromlist=["Interpreter", "load_delegate"])
    delegates = []
    if edgetpu:
        try:
            delegates = [module.load_delegate("libedgetpu.so.1")]
        except (ValueError, OSError) as exc:
            raise Failure("cannot load the Edge TPU delegate (%s): is the accelerator plugged in and libedgetpu installed?" % exc)
    kwargs = {"model_path": path, "experimental_delegates": delegates or None}
    if threads:
        kwargs["num_threads"] = threads
    interpreter = module.Interpreter(**kwargs)
    interpreter.allocate_tensors()
    return runtime, interpreter


def random_input(detail, rng):
    import numpy as np

    dtype = np.dtype(detail["dtype"])
    shape = [int(d) for d in detail["shape"]]
    if np.issubdtype(dtype, np.integer):
        limits = np.iinfo(dtype)
        return rng.randint(max(limits.min, -128), min(limits.max, 255) + 1, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def cmd_bench(args):
    import numpy as np

    stats = vendored("stats")  # edgekit/bench/stats.py: remote bench = local bench schema

    info, manifest = load_bundle(here())
    model = os.path.join(here(), info["model"])
    edgetpu = bool(info.get("edgetpu"))
    verify = manifest.get("verify") or None
    parity = None
    if verify:
        outputs = verify.get("outputs") or []
        parity = {"status": verify.get("status"), "runtime": verify.get("runtime"), "samples": verify.get("samples"),
                  "cosine": min((o["cosine"] for o in outputs), default=None),
                  "max_abs_error": max((o["max_abs_error"] for o in outputs), default=None)}
    record = {"artifact": info["model"], "format": "tflite", "precision": manifest.get("precision"),
              "backend": None, "device": "edgetpu" if edgetpu else "cpu", "size_bytes": os.path.getsize(model),
              "parity": parity, "status": "ok", "error": None,
              "check_ms": None,  # the bundle's sha256 was verified on arrival; no separate model check here
              "load_ms": None, "first_inference_ms": None,
              "latency_ms": {"runs": 0}, "fps": None, "io_ms": None, "preprocess_ms": None, "postprocess_ms": None,
              "peak_rss_mb": None, "rss_growth_mb": None, "runs": args.runs, "warmup": args.warmup,
              "threads": args.threads, "hint": None, "input": "random", "samples_ms": []}
    try:
        start = time.perf_counter()
        runtime, interpreter = open_interpreter(model, edgetpu, args.threads)
        record["backend"] = "litert" if runtime == "ai_edge_litert" else runtime
        record["load_ms"] = (time.perf_counter() - start) * 1000.0
        rng = np.random.RandomState(0)  # numpy 1.16 on older boards has no default_rng
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], random_input(detail, rng))
        start = time.perf_counter()
        interpreter.invoke()
        record["first_inference_ms"] = (time.perf_counter() - start) * 1000.0
        for _ in range(args.warmup):
            interpreter.invoke()
        samples = []
        for _ in range(args.runs):
            start = time.perf_counter()
            interpreter.invoke()
            samples.append((time.perf_counter() - start) * 1000.0)
        record["latency_ms"] = stats.summarize(samples)
        record["fps"] = stats.fps(record["latency_ms"])
        record["samples_ms"] = samples
    except Failure as exc:
        record.update(status="failed", error=str(exc))
    except Exception as exc:  # the runtime refused the model: report it in the record, as local bench does
        record.update(status="failed", error="%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else ""))
    record["peak_rss_mb"] = stats.peak_rss_mb()   # the same measure as the host's rows
    emit({"schema_version": stats.RECORD_SCHEMA_VERSION, "host": host_info(),
          "options": {"runs": args.runs, "warmup": args.warmup, "threads": args.threads, "input": "random"},
          "results": [record], "bundle": {"name": info.get("name"), "version": info.get("version")}})


# ---- run: frames from a source -> model -> one JSON line per frame

def feed_frames(source, limit, size):
    """(file, stream_ms, RGB uint8 HxWx3) from 'synthetic', an image folder, a video file or a
    camera index: FILE is the image's path (folders), STREAM_MS its position in a video file, else
    None, as the host's `edgekit run` names its frames."""
    import numpy as np

    count = 0
    if source == "synthetic":
        rng = np.random.RandomState(0)
        height, width = size or (224, 224)
        while limit is None or count < limit:
            yield None, None, rng.randint(0, 256, (height, width, 3)).astype(np.uint8)
            count += 1
        return
    if os.path.isdir(source):
        for name in sorted(n for n in os.listdir(source) if not n.startswith(".")):
            if limit is not None and count >= limit:
                return
            path = os.path.join(source, name)
            image = read_image(path) if os.path.isfile(path) else None
            if image is not None:
                yield path, None, image
                count += 1
        return
    try:
        import cv2
    except ImportError:
        raise Failure("source %r needs OpenCV on the device (pip3 install opencv-python-headless); "
                      "'synthetic' and image folders work without it" % source)
    camera = source.isdigit()
    capture = cv2.VideoCapture(int(source) if camera else source)
    if not capture.isOpened():
        raise Failure("cannot open video source %r on the device" % source)
    try:
        while limit is None or count < limit:
            ok, frame = capture.read()
            if not ok:
                return
            yield None, None if camera else float(capture.get(cv2.CAP_PROP_POS_MSEC)), frame[:, :, ::-1]
            count += 1
    finally:
        capture.release()


def read_image(path):
    import numpy as np

    try:
        import cv2
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        return None if image is None else image[:, :, ::-1]
    except ImportError:
        pass
    try:
        from PIL import Image
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except ImportError:
        raise Failure("reading images needs OpenCV or Pillow on the device (pip3 install pillow)")
    except Exception:
        return None  # not an image: skipped, like the local image-folder source


class BoardModel:
    """The bundle's model with the host's own pre- and postprocessing: frames.py, vendored from
    edgekit verbatim, with the FrameSpec and DecodeSpec the host resolved from the manifest
    (bundle.json), so a frame gives the same input tensor and the same result as `edgekit predict`."""

    def __init__(self, directory, threads=None, top_k=None):
        frames = self.frames = vendored("frames")
        info, _ = load_bundle(directory)
        if not info.get("frames") or not info.get("decode"):
            raise Failure(info.get("frames_error") or "this bundle has no manifest, so the runner cannot preprocess "
                          "frames; deploy the model with its .edgekit.json beside it")
        _, self.interpreter = open_interpreter(os.path.join(directory, info["model"]), bool(info.get("edgetpu")), threads)
        inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise Failure("the device runner feeds single-input image models; this one has %d inputs" % len(inputs))
        self.input = inputs[0]
        decode = dict(info["decode"], output_names=[d["name"] for d in self.outputs])
        if top_k:
            decode["top_k"] = top_k
        try:
            self.frame_spec = frames.FrameSpec.of(info["frames"], self.input["shape"])
            self.decode_spec = frames.DecodeSpec.of(decode)
        except frames.FrameError as exc:
            raise Failure(problem(exc))

    def prepare(self, image):
        """RGB uint8 HxWx3 -> (input tensor in the model's layout and dtype, FrameMeta)."""
        params = self.input.get("quantization_parameters", {})
        try:
            return self.frames.prepare(image, self.frame_spec, self.input["dtype"], params.get("scales"),
                                       params.get("zero_points"))
        except self.frames.FrameError as exc:
            raise Failure(problem(exc))

    def infer(self, tensor):
        """The input tensor -> float32 outputs, dequantized as the host's Runner does."""
        dtype = self.input["dtype"]
        self.interpreter.set_tensor(self.input["index"], tensor if tensor.dtype == dtype else tensor.astype(dtype))
        self.interpreter.invoke()
        results = []
        for detail in self.outputs:
            params = detail.get("quantization_parameters", {})
            results.append(self.frames.dequantize(self.interpreter.get_tensor(detail["index"]), params.get("scales"),
                                                  params.get("zero_points")))
        return results

    def decode(self, outputs, meta):
        try:
            return self.frames.decode(outputs, meta, self.decode_spec)
        except self.frames.FrameError as exc:
            raise Failure(problem(exc))

    def __call__(self, image):
        """RGB uint8 HxWx3 -> (frames.Prediction with timings_ms, inference latency in ms)."""
        start = time.perf_counter()
        tensor, meta = self.prepare(image)
        prepared = time.perf_counter()
        outputs = self.infer(tensor)
        inferred = time.perf_counter()
        prediction = self.decode(outputs, meta)
        done = time.perf_counter()
        prediction.timings_ms = {"preprocess": (prepared - start) * 1e3, "infer": (inferred - prepared) * 1e3,
                                 "postprocess": (done - inferred) * 1e3}
        return prediction, (inferred - prepared) * 1e3


def problem(exc):
    """A FrameError as one line: what was wrong, then what to do."""
    return "%s; %s" % (exc, exc.remedy) if getattr(exc, "remedy", "") else str(exc)


def cmd_run(args):
    if args.serve:
        return cmd_serve(args)
    model = BoardModel(here(), args.threads, args.top_k)
    # a camera (or synthetic frames) is read when the last result is out: capture -> result is
    # the end-to-end latency; files and folders are read as fast as they are processed, where it
    # means nothing (as on the host)
    live = args.source == "synthetic" or args.source.isdigit()
    frames_in = feed_frames(args.source, args.frames, model.frame_spec.input_size)
    index = 0
    while True:
        try:
            path, stream_ms, image = next(frames_in)
        except StopIteration:
            return
        captured, wall = time.perf_counter(), time.time()   # the frame has just arrived
        prediction, infer_ms = model(image)
        latency = (time.perf_counter() - captured) * 1e3 if live else None
        # one FrameRecord, the class `edgekit run --jsonl` writes with: the same keys on host and board
        emit(model.frames.FrameRecord(index, wall, prediction, infer_ms, latency, path, stream_ms).to_dict())
        index += 1


# ---- verify: the bundle's reference pack on this board's runtime, gated as the host gates

def run_pack(directory, threads=None):
    """Run the reference pack of the bundle in DIRECTORY on this board's TFLite runtime (with the
    Edge TPU delegate for a compiled model) and gate it with the pack's own gates (parity.py,
    vendored). Returns the report: status, runtime, device, samples, outputs, gate, notes, ..."""
    import numpy as np

    parity = vendored("parity", directory)
    frames = vendored("frames", directory)
    info, manifest = load_bundle(directory)
    if not info.get("reference"):
        raise Failure("this bundle carries no reference pack: deploy an artifact that `edgekit convert` wrote with "
                      "verify on (its .edgekit.ref.npz lies beside it)")
    try:
        meta, inputs, expected = parity.read_pack(os.path.join(directory, info["reference"]))
    except parity.PackError as exc:
        raise Failure("%s: %s" % (info["reference"], exc))
    edgetpu = bool(info.get("edgetpu"))
    start = time.perf_counter()
    runtime, interpreter = open_interpreter(os.path.join(directory, info["model"]), edgetpu, threads)
    details, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    names = [i.get("name") for i in meta.get("inputs") or [] if isinstance(i, dict)]
    by_name = dict((d["name"], d) for d in details)
    if len(names) == len(details) and all(n in by_name for n in names):
        details = [by_name[n] for n in names]   # the pack's order by name: a runtime need not keep the manifest's
    if len(details) != len(inputs):
        raise Failure("the reference pack has %d inputs, the model %d" % (len(inputs), len(details)))
    for detail, array in zip(details, inputs):
        if np.dtype(detail["dtype"]) != array.dtype or list(detail["shape"][1:]) != list(array.shape[1:]):
            raise Failure("the reference pack's input is %s %s, the model takes %s %s" % (
                array.dtype.name, list(array.shape[1:]), np.dtype(detail["dtype"]).name, list(detail["shape"][1:])))
    got = [[] for _ in outputs]
    steps = []   # each output's declared int8 step (real units), None where float or per-channel
    for detail in outputs:
        scales = detail.get("quantization_parameters", {}).get("scales")
        steps.append(float(scales[0]) if scales is not None and len(scales) == 1 else None)
    for k in range(len(inputs[0])):
        for detail, array in zip(details, inputs):
            interpreter.set_tensor(detail["index"], array[k:k + 1])
        interpreter.invoke()
        for j, detail in enumerate(outputs):
            params = detail.get("quantization_parameters", {})
            got[j].append(frames.dequantize(interpreter.get_tensor(detail["index"]), params.get("scales"),
                                            params.get("zero_points")))
    got = parity.stack_samples([list(sample) for sample in zip(*got)])
    results, problem = parity.match(expected, got, [d["name"] for d in outputs], bool(meta.get("classification")),
                                    parity.pack_layout(meta), parity.int8_steps(meta.get("precision"), steps, got))
    report = {"status": "pass", "runtime": "edgetpu" if edgetpu else "litert" if runtime == "ai_edge_litert" else runtime,
              "device": "edgetpu" if edgetpu else "cpu", "samples": len(inputs[0]), "data": meta.get("data"),
              "precision": meta.get("precision"), "gate": meta.get("gates"), "outputs": results, "notes": [],
              "seconds": round(time.perf_counter() - start, 3), "model": info["model"], "reference": info["reference"],
              "at_conversion": conversion_summary(manifest)}
    if problem:
        report.update(status="fail", notes=[problem])
    else:
        failed, notes = parity.gate_failures(results, meta.get("gates") or {})
        report.update(status="fail" if failed else "pass", notes=failed + notes)
    return report


def conversion_summary(manifest):
    """The manifest's verify at conversion time, as `edgekit verify` shows it beside the rerun."""
    verify = manifest.get("verify") or {}
    outputs = verify.get("outputs") or []
    if not verify:
        return None
    return {"status": verify.get("status"), "runtime": verify.get("runtime"),
            "cosine": min((o["cosine"] for o in outputs), default=None)}


def check_version(directory):
    """run_pack on a verified version directory, never raising: a model the runtime cannot load or
    run here fails its check, with the reason as its note."""
    try:
        return run_pack(directory)
    except Failure as exc:
        return {"status": "fail", "notes": [str(exc)], "outputs": [], "samples": 0}
    except Exception as exc:  # the runtime refused the model on this board
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {"status": "fail", "notes": ["the runtime could not run it: %s: %s" % (type(exc).__name__, text)],
                "outputs": [], "samples": 0}


def summary(report):
    """A verify report in one history line: status, worst cosine and top-1, where it ran."""
    if report is None:
        return None
    outputs = report.get("outputs") or []
    decisive = [o["top1_agreement_decisive"] for o in outputs if o.get("top1_agreement_decisive") is not None]
    return {"status": report["status"], "cosine": min((o["cosine"] for o in outputs), default=None),
            "top1_agreement_decisive": min(decisive) if decisive else None, "runtime": report.get("runtime"),
            "device": report.get("device"), "samples": report.get("samples"), "notes": report.get("notes", [])[:3]}


def cmd_verify(args):
    directory = os.path.realpath(here())   # ROOT/models/NAME/<version>, reached through `current`
    report = run_pack(directory, args.threads)
    report["version"] = os.path.basename(directory)
    record(os.path.dirname(directory), dict({"event": "verify", "version": report["version"]}, verify=summary(report)))
    emit(report)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="edgekit_runner", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    probe = sub.add_parser("probe")
    receive = sub.add_parser("receive")
    rollback = sub.add_parser("rollback")
    for command in (probe, receive, rollback):
        command.add_argument("--root", default="~/.edgekit")
        command.add_argument("--name", required=True)
    receive.add_argument("--version", required=True)
    receive.add_argument("--sums-sha256", required=True)
    receive.add_argument("--keep", type=int, default=3)
    receive.add_argument("--content-sha256")
    receive.add_argument("--verify", action="store_true", help="switch to the version only if its reference pack passes")
    rollback.add_argument("--to")
    bench = sub.add_parser("bench")
    bench.add_argument("--runs", type=int, default=100)
    bench.add_argument("--warmup", type=int, default=10)
    bench.add_argument("--threads", type=int)
    run = sub.add_parser("run")
    run.add_argument("--source", default="synthetic")
    run.add_argument("--frames", type=int)
    run.add_argument("--top-k", type=int, default=5)
    run.add_argument("--threads", type=int)
    run.add_argument("--serve")
    verify = sub.add_parser("verify")
    verify.add_argument("--threads", type=int)
    listing = sub.add_parser("list")
    listing.add_argument("--root", default="~/.edgekit")
    args = parser.parse_args(argv)
    handlers = {"probe": cmd_probe, "receive": cmd_receive, "rollback": cmd_rollback, "bench": cmd_bench,
                "run": cmd_run, "list": cmd_list, "verify": cmd_verify}
    if args.command not in handlers:
        parser.print_help(sys.stderr)
        return 2
    try:
        handlers[args.command](args)
    except Failure as exc:
        emit({"error": str(exc)})
        return 1
    except BrokenPipeError:  # the client went away (Ctrl-C on the host); nothing to report to
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
