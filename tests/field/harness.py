"""Run field models through the real CLI (`sys.executable -m edgekit convert ...`) and classify
what happened. Also the baseline recorder:

    PYTHONPATH=$PWD python -m tests.field.harness --out /tmp/field --md /work/notes/field-baseline.md

converts every model of the corpus: first each model's key cells and Core ML fp32, then the rest of
BASELINE_CELLS (or every cell with --full), one `edgekit convert` process per cell, and writes the
outcome table. `--merge A.json B.json --md OUT.md` writes the table from recorded runs
(this script's --json, or EDGEKIT_FIELD_RECORD of test_corpus.py).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpus import BY_NAME, CELLS, CORPUS, FieldModel

PHOTOS = 8          # real photos for calibration and verify: enough for the gates, fast
TIMEOUT_S = 600


@dataclass
class Outcome:
    kind: str           # pass | refused | gate-fail | crash | traceback | fail
    exit_code: int
    line: str           # the first line of the error (or of the gate failure)
    stdout: str
    stderr: str
    seconds: float
    artifacts: list     # --json records (pass / gate-fail)

    def short(self) -> str:
        return {"pass": "PASS", "refused": "REFUSED", "gate-fail": "GATE", "crash": "CRASH",
                "traceback": "TRACEBACK", "fail": "FAIL"}[self.kind]


def prepare_data(folder: Path) -> dict[str, Path]:
    """Calibration/verify data of each kind, written once: real photos (scikit-image), audio
    frames (.npy, float32 N x 4000) and image + sensor inputs (.npz with one array per input)."""
    from edgekit.photos import photo_set, write_photo_folder

    folder.mkdir(parents=True, exist_ok=True)
    photos = folder / "photos"
    if not photos.is_dir():
        write_photo_folder(photos, PHOTOS)
    audio = folder / "audio.npy"
    if not audio.exists():
        t = np.arange(4000, dtype=np.float32) / 8000.0
        tones = [np.sin(2 * np.pi * f * t) * a for f, a in ((220, 0.5), (440, 0.3), (950, 0.4), (1800, 0.2))]
        frames = np.stack([tones[i % 4] + 0.5 * tones[(i + 1) % 4] for i in range(PHOTOS)]).astype(np.float32)
        np.save(audio, frames)
    both = folder / "image_sensors.npz"
    if not both.exists():
        import cv2

        images = np.stack([cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
                           for _, image in photo_set(PHOTOS)]).astype(np.uint8)
        sensors = np.random.default_rng(0).normal(0, 1, (PHOTOS, 6)).astype(np.float32)
        np.savez(both, image=images, sensors=sensors)
    return {"photos": photos, "audio": audio, "image+sensors": both}


def command(model: FieldModel, path: Path, targets: list[str], precisions: list[str], out: Path,
            data: dict[str, Path]) -> list[str]:
    """The user's command line for MODEL: data flags by input kind, few samples."""
    source = data[model.data]
    cmd = [sys.executable, "-m", "edgekit", "convert", str(path), "--to", ",".join(targets),
           "--precision", ",".join(precisions), "-o", str(out), "--json", *model.args,
           "--verify-data", str(source)]
    if "int8" in precisions:
        cmd += ["--calib", str(source), "--calib-samples", str(PHOTOS)]
    if model.task:
        cmd += ["--task", model.task]
    return cmd


_UNEXPECTED = re.compile(r"error: unexpected \w+")


def classify(exit_code: int, stdout: str, stderr: str) -> tuple[str, str]:
    """(kind, first line) of one CLI run."""
    errors = [line[len("error: "):].strip() for line in stderr.splitlines() if line.startswith("error: ")]
    lines = [line.strip() for line in (stderr or stdout).splitlines() if line.strip()]
    first = errors[0] if errors else (lines[-1] if lines else "")
    if "Traceback (most recent call last)" in stdout + stderr:
        return "traceback", first
    if _UNEXPECTED.search(stderr):
        return "crash", first
    if exit_code == 0:
        return "pass", ""
    if exit_code == 1 and "verify gate failed" in stderr:
        return "gate-fail", first
    if exit_code == 2 and errors:
        return "refused", first
    return ("crash" if exit_code not in (1, 2) else "fail"), first or f"exit code {exit_code}"


def run(model: FieldModel, path: Path, targets: list[str], precisions: list[str], out: Path,
        data: dict[str, Path]) -> Outcome:
    """One `edgekit convert` process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "100"}
    started = time.perf_counter()
    try:
        proc = subprocess.run(command(model, path, targets, precisions, out, data), capture_output=True,
                              text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, env=env)
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout, stderr = -9, str(exc.stdout or ""), f"error: timed out after {TIMEOUT_S} s"
    kind, line = classify(code, stdout, stderr)
    artifacts = []
    if kind in ("pass", "gate-fail"):
        try:
            artifacts = json.loads(stdout[stdout.index("["):])
        except ValueError:
            artifacts = []
        if kind == "gate-fail":
            notes = [n for a in artifacts for n in a.get("verify", {}).get("notes", [])
                     if a.get("verify", {}).get("status") == "fail"]
            line = notes[0] if notes else line
    return Outcome(kind, code, line[:300], stdout, stderr, round(time.perf_counter() - started, 1), artifacts)


def run_model(model: FieldModel, path: Path, cells: list[tuple[str, str]], out: Path,
              data: dict[str, Path]) -> dict[tuple[str, str], Outcome]:
    """One `edgekit convert --to T1,T2,.. --precision P1,P2,..` process for all CELLS of MODEL (one
    bad target no longer stops the others, issue 13 §5), split into one Outcome per cell from its
    --json records. A cell without a record (the process crashed, or refused the whole command)
    takes the process's own outcome. Pairs of the cross product not in CELLS are ignored."""
    targets = list(dict.fromkeys(t for t, _ in cells))
    precisions = list(dict.fromkeys(p for _, p in cells))
    whole = run(model, path, targets, precisions, out, data)
    records = _records(whole.stdout)
    if len(cells) == 1 and not records:
        return {cells[0]: whole}
    outcomes = {}
    for cell in cells:
        record = records.get(cell)
        if record is None:
            outcomes[cell] = whole
            continue
        kind, code, line = _cell_kind(record)
        outcomes[cell] = Outcome(kind, code, line[:300], whole.stdout, whole.stderr,
                                 float(record.get("seconds") or whole.seconds), [record] if "verify" in record else [])
    return outcomes


def _records(stdout: str) -> dict[tuple[str, str], dict]:
    """(target, precision) -> the --json record convert printed for it (artifact or failure)."""
    try:
        items = json.loads(stdout[stdout.index("["):])
    except ValueError:
        return {}
    return {(r["target"], r["precision"]): r for r in items if isinstance(r, dict) and "target" in r}


def _cell_kind(record: dict) -> tuple[str, int, str]:
    """(kind, the exit code this cell alone would have had, its first line) of one --json record."""
    if record.get("status") == "built":
        verify = record.get("verify", {})
        if verify.get("status") == "fail":
            return "gate-fail", 1, (verify.get("notes") or [""])[0]
        return "pass", 0, ""
    reason = record.get("reason", "")
    if _UNEXPECTED.search(f"error: {reason}"):
        return "crash", 1, reason
    return ("refused", 2, reason) if record.get("status") == "refused" else ("fail", 1, reason)


# The baseline grid after each model's key cells (fp16 and onnx int8 last: slowest, least telling).
BASELINE_CELLS = (("tflite", "fp32"), ("tflite", "int8"), ("edgetpu", "int8"), ("openvino", "fp32"),
                  ("onnx", "fp32"), ("openvino", "int8"), ("tflite", "fp16"), ("onnx", "int8"))
FULL_CELLS = tuple(CELLS)


def _markdown(table: dict[str, dict], seconds: float) -> str:
    counts: dict[str, int] = {}
    for cells in table.values():
        for outcome in cells.values():
            counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
    recorded = [c for c in CELLS if any(c in cells for cells in table.values())]
    head = ["model", *(f"{t} {p}" for t, p in recorded)]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or "?"
    except OSError:
        commit = "?"
    lines = ["# Field corpus: outcome per model, target and precision", "",
             f"Recorded by `python -m tests.field.harness` at commit {commit} ({time.strftime('%Y-%m-%d')}), "
             f"{len(table)} models, {sum(len(c) for c in table.values())} cells, {seconds / 60:.0f} min of "
             "conversions on 2 shared cores. Each cell is one `edgekit convert MODEL --to TARGET --precision P "
             "--json` process with 8 real photos for calibration and verify (the harness passes each model's "
             "own flags, see tests/field/corpus.py). Each model's key cells (those the default test runs) "
             "and Core ML fp32 ran first, then the rest of the grid as time allowed: an empty cell was not "
             "run. The slow sweep of tests/field/test_corpus.py covers every cell. PASS here is edgekit's "
             "own gates; tests/field/test_corpus.py also compares the key cells with the source framework "
             "through the raw runtime (tests/field/oracle.py).", "",
             "Counts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), "",
             "PASS = exit 0 with gates passed; REFUSED = exit 2 with one line; GATE = exit 1, verify gate "
             "failed; CRASH = the generic 'unexpected <Error>' fallback or another exit code; "
             "TRACEBACK = a traceback was printed.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, cells in table.items():
        lines.append("| " + " | ".join([name, *(cells[c].short() if c in cells else "" for c in recorded)]) + " |")
    lines += ["", "## First line of every cell that did not pass", "",
              "| model | target | precision | outcome | first line |", "|---|---|---|---|---|"]
    for name, cells in table.items():
        for (target, precision), outcome in cells.items():
            if outcome.kind != "pass":
                text = outcome.line.replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {name} | {target} | {precision} | {outcome.short()} | {text} |")
    return "\n".join(lines) + "\n"


def _recorded(file: Path) -> dict[str, dict]:
    """A recorded run's outcomes: model name -> {(target, precision): Outcome}."""
    return {name: {tuple(k.split("/")): Outcome(v["kind"], v["exit"], v["line"], "", "", v["s"], [])
                   for k, v in cells.items()} for name, cells in json.loads(Path(file).read_text()).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("/tmp/edgekit-field"))
    parser.add_argument("--md", type=Path, help="write the baseline table here")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--full", action="store_true", help="every cell (target x precision), not the groups")
    parser.add_argument("models", nargs="*", help="model names (default: the whole corpus)")
    parser.add_argument("--merge", type=Path, nargs="+", help="write --md from these --json files instead")
    parser.add_argument("--resume", type=Path, help="a recorded run (--json or EDGEKIT_FIELD_RECORD): its cells "
                                                    "are kept, not run again")
    args = parser.parse_args(argv)
    if args.merge:
        merged, seconds = {}, 0.0
        for file in args.merge:
            for name, cells in _recorded(file).items():   # a later file's cell wins
                merged.setdefault(name, {}).update(cells)
                seconds += sum(o.seconds for o in cells.values())
        order = [m.name for m in CORPUS if m.name in merged]
        args.md.write_text(_markdown({n: merged[n] for n in order}, seconds))
        return 0
    data = prepare_data(args.out / "data")
    started = time.perf_counter()
    chosen = [BY_NAME[n] for n in args.models] if args.models else CORPUS
    table: dict[str, dict] = {m.name: {} for m in chosen}
    if args.resume:
        for name, cells in _recorded(args.resume).items():
            table.get(name, {}).update(cells)
    paths: dict[str, Path] = {}
    # Pass 1: each model's key cells (what the default test runs) and Core ML fp32; pass 2: the
    # rest of the baseline grid, so an interrupted run still covers every model.
    passes = [lambda m: list(dict.fromkeys([*m.key, ("coreml", "fp32")])),
              lambda m: list(FULL_CELLS if args.full else BASELINE_CELLS)]
    for cells_of in passes:
        for model in chosen:
            if all(c in table[model.name] for c in cells_of(model)):
                continue
            folder = args.out / model.name
            if model.name not in paths:
                folder.mkdir(parents=True, exist_ok=True)
                paths[model.name] = model.build(folder)
            for target, precision in [c for c in cells_of(model) if c not in table[model.name]]:
                outcome = run(model, paths[model.name], [target], [precision], folder / f"{target}-{precision}", data)
                table[model.name][(target, precision)] = outcome
                print(model.name, target, precision, outcome.short(), outcome.seconds, outcome.line[:120], flush=True)
                if args.json:
                    args.json.write_text(json.dumps(
                        {m: {f"{t}/{p}": {"kind": o.kind, "exit": o.exit_code, "line": o.line, "s": o.seconds}
                             for (t, p), o in c.items()} for m, c in table.items()}, indent=1))
    if args.md:
        args.md.write_text(_markdown(table, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
