"""TrainRequest -> TrainResult: the stages of `edgekit train` in order.

    data (load, split) -> checks -> features for the checks' probe -> label-error suspects
    -> search (Optuna, within --budget) -> fine-tune of the finalists -> three picks + Pareto PNG
    -> evaluation of each pick on the test split -> export to every target, accuracy per artifact
    -> --compare -> model_card.md + train.json

Everything is written into `-o`. Files a later stage or a user reads (picks, artifacts, report,
card, train.json) are written atomically; train.json is written last and marks a finished run.
Ctrl-C during the search raises TrainPaused: the study keeps every finished trial and
`--resume` continues with the budget that is left.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..fsutil import write_atomic
from .augment import Augmentations
from .results import ExportGateFailed, NotPromoted, TrainPaused, TrainResult, utc_now  # noqa: F401  (import path)
from .search import Limits, Space

TARGET_NAMES = ("tflite", "edgetpu", "openvino", "coreml", "onnx")


@dataclass
class TrainRequest:
    """Everything `edgekit train` was asked to do (the command line as data; `edgekit demo --train`
    builds one too)."""
    data: Path
    out_dir: Path
    targets: list[str] = field(default_factory=lambda: ["tflite"])
    precisions: list[str] | None = None          # None: int8 for every target
    test_dir: Path | None = None
    budget_s: float = 600.0
    trial_timeout_s: float = 60.0
    space: Space = field(default_factory=Space)
    limits: Limits = field(default_factory=Limits)
    augmentations: Augmentations = field(default_factory=Augmentations)
    device_profile: str | None = None
    study: str | None = None                     # None: sqlite in out_dir
    study_name: str = "edgekit-train"
    resume: bool = False
    max_accuracy_drop: float = 1.0               # points
    compare: Path | None = None
    max_class_drop: float = 5.0                  # points
    export: bool = True
    finetune: bool = True
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    seed: int = 0
    options: dict[str, Any] | None = None        # the command line's options, which --resume reuses

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("options")
        for key in ("data", "out_dir", "test_dir", "compare"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data


class Reporter:
    """Stage lines and progress. `stage(name, total, deadline)` opens a stage (DEADLINE, a
    time.monotonic() value, makes its time left exact); `advance(done, total, text)` moves its bar
    (None leaves a value as it is). The command gives a rich implementation on a TTY and plain
    lines otherwise."""

    def stage(self, name: str, total: float | None = None, deadline: float | None = None) -> None: ...
    def advance(self, done: float | None, total: float | None = None, text: str = "") -> None: ...
    def end(self, summary: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def convert_progress(self):
        return None


def validate(request: TrainRequest) -> None:
    """Every check that needs no data, before anything is read or written."""
    if not request.targets and request.export:
        raise BadInput("--to names no target", "e.g. --to tflite,openvino")
    for target in request.targets:
        if target not in TARGET_NAMES:
            from ..errors import UnknownNameError

            raise UnknownNameError("target", target, TARGET_NAMES)
    if request.budget_s <= 0:
        raise BadInput(f"--budget must be positive, got {request.budget_s:g} s", "e.g. --budget 10m")
    if request.trial_timeout_s <= 0:
        raise BadInput("--trial-timeout must be positive", "e.g. --trial-timeout 60")
    if request.max_accuracy_drop < 0 or request.max_class_drop < 0:
        raise BadInput("--max-accuracy-drop and --max-class-drop are points >= 0", "e.g. --max-accuracy-drop 1")
    limits = request.limits
    if limits.min_accuracy is not None and not 0 <= limits.min_accuracy <= 1:
        raise BadInput(f"--min-accuracy is a fraction 0-1 or a percentage, got {limits.min_accuracy}",
                       "e.g. --min-accuracy 0.9 or 90%")
    for name, value in (("--max-latency-ms", limits.max_latency_ms), ("--max-size-mb", limits.max_size_mb)):
        if value is not None and value <= 0:
            raise BadInput(f"{name} must be positive, got {value:g}")
    request.space.check()
    from .search import check_storage, storage_url

    url = storage_url(request.study, Path(request.out_dir))
    if not url.startswith("sqlite"):
        check_storage(url)   # a shared server that cannot be reached fails now, before anything is written
    if request.export:
        from ..convert import resolve_jobs

        # each target is available and offers each precision (convert builds what it can; a
        # training run that would export less than asked must say so before it trains)
        _, refused = resolve_jobs(request.targets, request.precisions or ["int8"])
        if refused:
            exc = refused[0].exception
            raise BadInput(exc.message, (exc.remedy + "; " if exc.remedy else "") +
                           "or drop it from --to, or pass --no-export")
    if request.device_profile:
        from .latency import scale_references

        scale_references(request.device_profile)
    out = Path(request.out_dir)
    for name, folder in (("DATA", request.data), ("--test", request.test_dir)):
        if folder is not None and Path(folder).is_dir() and \
                (out.resolve() == Path(folder).resolve() or Path(folder).resolve() in out.resolve().parents):
            raise BadInput(f"-o {out} is inside the {name} folder {folder}: its cache/ and checkpoints/ would "
                           "become class folders", "write the output somewhere else")
    has_study = (out / "study.db").exists() or (out / "state.json").exists()
    if request.resume and request.study is None and not (out / "study.db").exists():
        raise BadInput(f"--resume: {out} holds no study to continue", f"drop --resume to start one in {out}")
    if not request.resume and has_study and request.study is None:
        raise BadInput(f"{out} already holds a study", "pass --resume to continue it, or choose another -o")
    if request.compare is not None:
        from .compare import read_previous

        if Path(request.compare).resolve() == out.resolve():
            raise BadInput("--compare points at the output folder itself", "pass the previous run's -o")
        read_previous(Path(request.compare))


def train(request: TrainRequest, reporter: Reporter | None = None) -> TrainResult:
    """Run every stage; raises BadInput (exit 2) for bad input, TrainPaused on a stop signal once
    the study is open, ExportGateFailed / NotPromoted (exit 1) after writing everything."""
    from . import checks, data as data_module
    from .backbones import get as get_backbone
    from .features import FeatureCache
    from .latency import LatencyTable, device_scale, search_format
    from .search import Search, open_study, storage_url

    reporter = reporter or Reporter()
    validate(request)
    out = Path(request.out_dir)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    clock = time.monotonic()

    keep_in_test = None
    if request.compare is not None:  # the previous run's test images must not train the new model
        from .compare import read_previous, test_digests

        keep_in_test = test_digests(read_previous(Path(request.compare)))
    reporter.stage("reading images")
    dataset = data_module.load(request.data, request.test_dir, request.test_fraction, request.val_fraction,
                               request.seed, progress=lambda done, total: reporter.advance(done, total),
                               keep_in_test=keep_in_test)
    out.mkdir(parents=True, exist_ok=True)
    reporter.end(f"{len(dataset.samples)} files, {len(dataset.labels)} classes; test split: {dataset.test_source}")
    if not dataset.indices("val"):
        warnings.append("no validation images (every class has fewer than 3 usable training images): the search "
                        "scores on the training images, so its validation accuracies are optimistic")
    untested = [label for label in dataset.labels if not any(dataset.samples[i].label == label
                                                             for i in dataset.indices("test"))]
    if untested:
        warnings.append(f"no test images for {', '.join(untested)}: not measured on the test split (add "
                        "test images; a held-out split needs 3 usable images in a class)")

    reporter.stage("data checks")
    report = checks.run_checks(dataset)
    cache = FeatureCache(dataset, out / "cache" / "features", request.augmentations,
                         progress=lambda text, done, total: reporter.advance(done, total, text))
    probe = get_backbone(request.space.backbones[0])
    probe_size = min(request.space.sizes)
    scored = dataset.indices("train") + dataset.indices("val") + dataset.indices("test")
    report.suspects, report.suspects_method = checks.label_suspects(
        dataset, cache.clean(probe, probe_size, scored), scored, request.seed)
    report.suspects_method += f"; features: {probe.name} at {probe_size}px"
    write_atomic(out / "data_report.json", json.dumps(report.to_dict(), indent=2))
    reporter.end(f"{report.warnings + bool(report.suspects)} warning(s); data_report.json")
    timings["data"] = round(time.monotonic() - clock, 1)

    fmt = search_format(request.targets)
    if fmt.note:
        warnings.append(fmt.note)
    scale = None
    if request.device_profile:  # one reference measurement per host, before the search's clock starts
        clock = time.monotonic()
        scale = device_scale(request.device_profile, fmt)
        timings["device_profile"] = round(time.monotonic() - clock, 1)
    latency = LatencyTable(fmt, len(dataset.labels))
    url = storage_url(request.study, out)
    study = open_study(url, request.study_name, request.limits, request.seed,
                       create=not request.resume and request.study is None)
    if not study.trials:
        from .search import enqueue_backbones

        enqueue_backbones(study, request.space)
    try:  # from here on a stop signal pauses: the study keeps every finished trial
        search = Search(study, cache, latency, scale, request.space, request.limits, out, request.trial_timeout_s,
                        request.seed, on_trial=None)
        state = _search_budget(request, out)
        remaining = max(0.0, state["budget_s"] - state["spent_s"])
        from .finetune import FINETUNE_SHARE

        tune = request.finetune and bool(request.space.finetune_depths)
        search_seconds = max(0.0, remaining - (FINETUNE_SHARE * state["budget_s"] if tune else 0.0))
        started = time.monotonic()
        reporter.stage("search", total=search_seconds, deadline=started + search_seconds)
        extraction_progress = cache.progress   # during the search the bar is the budget; features go in its text
        cache.progress = lambda text, done, total: reporter.advance(  # counts first: a narrow terminal cuts the end
            min(time.monotonic() - started, search_seconds), None,
            f"trial {len(study.trials)} · {done}/{total} {text.replace('efficientnet_', '')}")
        budget_end = started + remaining   # search, then the finalists' fine-tune: --budget covers both
        best = [max((c.val_accuracy for c in _safe_candidates(study)), default=0.0)]

        def on_trial(candidate, status):
            if candidate is not None:
                best[0] = max(best[0], candidate.val_accuracy)
            spent = time.monotonic() - started
            save = dict(state, spent_s=state["spent_s"] + spent)
            from .search import save_state

            save_state(out, save)
            reporter.advance(min(spent, search_seconds), search_seconds,
                             f"trial {len(study.trials)} · best val acc {best[0]:.1%}")

        search.on_trial = on_trial
        try:
            finished = search.run(search_seconds)
        except KeyboardInterrupt:
            from .search import save_state

            save_state(out, dict(state, spent_s=state["spent_s"] + time.monotonic() - started))
            raise
        from .search import candidates, choose_picks, pareto_png, save_state

        cache.progress = extraction_progress
        timings["search"] = round(time.monotonic() - started, 1)
        state["spent_s"] += time.monotonic() - started
        save_state(out, state)
        everything = candidates(study, request.limits)
        prepared = sum(p.latency_s + p.features_s for p in search.preparations)
        reporter.end(f"{finished} trial(s) here, {len(everything)} in the study; best val acc {best[0]:.1%}; "
                     f"{prepared:.0f} s of it preparing {len(search.preparations)} architecture(s)")
        if search.overrun_s > 0.5:
            warnings.append(f"the first trial ran {search.overrun_s:.0f} s past the search's share of --budget "
                            f"(preparing its architecture: {_describe_preparations(search.preparations[:1])}); "
                            "a longer --budget gives the search room for more trials")

        picks = choose_picks(everything, request.limits)
        finetune_note = "off"
        if tune:
            finetune_started = time.monotonic()
            reporter.stage("fine-tuning finalists")
            from .finetune import finetune_finalists

            finetune_note = finetune_finalists(search, picks, request.space.finetune_depths, deadline=budget_end)
            reporter.end(finetune_note)
            everything = candidates(study, request.limits)
            picks = choose_picks(everything, request.limits)
            timings["finetune"] = round(time.monotonic() - finetune_started, 1)
            state["spent_s"] += time.monotonic() - finetune_started
            save_state(out, state)
        state["finetune"] = finetune_note
        state["search_s"] = timings["search"]
        latency_label = f"latency (ms, {fmt.target} on {fmt.backend} here" + (
            f", scaled to {scale.profile})" if scale else ")")
        pareto_png(everything, picks, request.limits, out / "pareto.png", latency_label)

        from .finish import finish

        return finish(request, dataset, report, study, search, everything, picks, fmt, scale, url, reporter,
                      timings, warnings, state)
    except KeyboardInterrupt:
        done = len(_safe_candidates(study))
        raise TrainPaused(f"paused: {done} finished trial(s) kept in {_where(url, out)}",
                          f"continue with: edgekit train {request.data} -o {out} --resume "
                          "(the paused run's options are reused)") from None


def _describe_preparations(preparations) -> str:
    return "; ".join(f"{p.backbone} {p.input_size}px: latency {p.latency_s:.0f} s, features of {p.images} images "
                     f"{p.features_s:.0f} s" for p in preparations) or "nothing"


def _safe_candidates(study):
    from .search import candidates

    return candidates(study)


def _where(url: str, out: Path) -> str:
    return str(out / "study.db") if url.startswith("sqlite") else "the shared study"


def _search_budget(request: TrainRequest, out: Path) -> dict[str, Any]:
    """Budget bookkeeping in state.json: a resumed run spends what is left of its budget."""
    from .search import load_state

    state = load_state(out) if request.resume else {}
    if not state:
        state = {"budget_s": request.budget_s, "spent_s": 0.0, "started": utc_now()}
    state["budget_s"] = request.budget_s  # the whole budget; a resumed run spends what is left of it
    state["request"] = request.to_dict()
    if request.options is not None:
        state["options"] = request.options
    return state


