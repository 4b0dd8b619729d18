"""After the search: evaluate the picks, save their float models, export, compare, write the card.

Layout of `-o` (train.json last: it marks a finished run):
    <pick>_float.pt            TorchScript of each distinct pick (float32 [1, 3, S, S] -> logits)
    <pick>_<precision>.<ext>   exported artifacts with their .edgekit.json manifests
    <pick>_confusion.png, <pick>_misclassified.html
    data_report.json, pareto.png, labels.txt, compare.json, model_card.md, train.json
    study.db, state.json, checkpoints/, cache/   (the search; --resume reads them)
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any


from ..fsutil import write_atomic
from .search import PICKS


def finish(request, dataset, report, study, search, everything, picks, fmt, scale, url, reporter, timings,
           warnings, state):
    """After the picks: evaluate them on the test split, save their float TorchScript models, export
    and gate every artifact, compare, write model_card.md and train.json (last). Raises
    ExportGateFailed / NotPromoted after writing everything."""
    from . import evaluate as ev
    from .backbones import get as get_backbone
    from .card import write_card
    from .features import run_model
    from .finetune import load_model
    from .heads import classifier
    from .images import UnreadableImage, read_rgb
    from .. import __version__
    from .results import ExportGateFailed, NotPromoted, TrainResult, utc_now

    out = Path(request.out_dir)
    labels_file = out / "labels.txt"
    write_atomic(labels_file, "\n".join(dataset.labels) + "\n")
    test = dataset.indices("test")
    test_images, test_rows = [], []
    for index in test:
        sample = dataset.samples[index]
        try:
            test_images.append(read_rgb(Path(sample.path))[0])
            test_rows.append(index)
        except (UnreadableImage, OSError):
            warnings.append(f"test image {sample.path} became unreadable; left out of the evaluation")
    y_test = dataset.targets(test_rows)
    test_paths = [dataset.samples[i].path for i in test_rows]

    distinct: dict[int, str] = {}
    for name in PICKS:
        distinct.setdefault(picks[name].number, name)
    pick_info: dict[str, dict[str, Any]] = {}
    models = {}
    started = time.monotonic()
    reporter.stage("evaluating picks on the test split")
    for number, name in distinct.items():
        candidate = picks[name]
        backbone = get_backbone(candidate.params["backbone"])
        size = int(candidate.params["input_size"])
        trunk, head = load_model(search, candidate)
        model = classifier(trunk, head)
        models[name] = (model, backbone, size)
        probabilities = run_model(model, test_images, size, backbone.mean, backbone.std)
        result = ev.metrics(y_test, probabilities, dataset.labels, test_paths)
        ev.confusion_png(result, out / f"{name}_confusion.png", f"{name} (trial #{number})")
        ev.misclassified_html(result, out / f"{name}_misclassified.html",
                              f"Misclassified test images: {name} pick (trial #{number})")
        float_model = out / f"{name}_float.pt"
        _save_torchscript(model, size, float_model)
        pick_info[name] = {"trial": number, "stage": candidate.stage, "params": candidate.params,
                           "val_accuracy": candidate.val_accuracy, "latency_ms": candidate.latency_ms,
                           "host_latency_ms": candidate.host_latency_ms, "size_mb": round(candidate.size_mb, 3),
                           "test": result.to_dict(), "float_model": float_model.name,
                           "confusion_png": f"{name}_confusion.png", "misclassified_html": f"{name}_misclassified.html"}
    for name in PICKS:
        if name not in pick_info:
            same = distinct[picks[name].number]
            pick_info[name] = {**pick_info[same], "same_as": same}
    reporter.end(", ".join(f"{n} {pick_info[n]['test']['accuracy']:.1%}" for n in distinct.values()))
    timings["evaluate"] = round(time.monotonic() - started, 1)

    artifacts: list[dict[str, Any]] = []
    if request.export and test_rows and 100.0 / len(test_rows) > request.max_accuracy_drop:
        warnings.append(f"the test split has {len(test_rows)} images, so one image is {100.0 / len(test_rows):.1f} "
                        f"points: above --max-accuracy-drop {request.max_accuracy_drop:g}, any one image that an "
                        "artifact answers differently fails the gate (add test images, or raise the gate)")
    if request.export:
        from .export import bench_latency, calibration_array, export_pick, measure_artifacts, scratch_dir

        started = time.monotonic()
        reporter.stage(f"exporting {len(distinct)} pick(s) to {', '.join(request.targets)}")
        with scratch_dir(out) as scratch:
            for name, (model, backbone, size) in models.items():
                calibration = calibration_array(dataset, size, Path(scratch))
                converted = export_pick(name, model, size, backbone, labels_file, calibration, request.targets,
                                        request.precisions or ["int8"], out, progress=reporter.convert_progress(),
                                        warn=reporter.warn)
                warnings += [w for w in converted.warnings if w not in warnings]
                rows = measure_artifacts(converted, name, test_images, y_test, dataset.labels,
                                         pick_info[name]["test"]["accuracy"], request.max_accuracy_drop)
                bench_latency(rows)
                artifacts += [r.to_dict() for r in rows]
        reporter.end(f"{len(artifacts)} artifact(s), {sum(a['status'] == 'fail' for a in artifacts)} over the "
                     f"accuracy-drop gate")
        timings["export"] = round(time.monotonic() - started, 1)

    comparison = None
    if request.compare is not None:
        from .compare import compare, read_previous

        reporter.stage(f"comparing with {request.compare}")
        previous = read_previous(Path(request.compare))
        current = {"labels": dataset.labels, "picks": {"best": pick_info["best"]},
                   "preprocess": _preprocess(models[distinct[picks['best'].number]]),
                   "test_set": [{"path": dataset.samples[i].path, "label": dataset.samples[i].label} for i in test_rows]}
        comparison = compare(Path(request.compare), previous, current, out, request.max_class_drop).to_dict()
        write_atomic(out / "compare.json", json.dumps(comparison, indent=2))
        reporter.end(("promoted: " if comparison["promoted"] else "not promoted: ") + comparison["reason"])

    search_summary = _search_summary(request, study, everything, picks, fmt, scale, url, state, search, timings)
    files = {"data_report": "data_report.json", "pareto": "pareto.png", "labels": "labels.txt",
             "model_card": "model_card.md", "manifest": "train.json"}
    result = TrainResult(str(out), dataset.summary(), report.to_dict(), search_summary, pick_info, artifacts,
                         comparison, files, warnings, timings)
    manifest = {
        "schema": "edgekit-train/1", "edgekit_version": __version__, "created": utc_now(),
        "labels": dataset.labels, "task": "classification",
        "preprocess": _preprocess(models[distinct[picks["best"].number]]),
        "data": dataset.summary(), "checks": _checks_summary(report), "search": search_summary,
        "picks": pick_info, "artifacts": artifacts, "comparison": comparison, "request": request.to_dict(),
        "test_set": [{"path": dataset.samples[i].path, "label": dataset.samples[i].label} for i in test_rows],
        "backbones": {name: get_backbone(name).to_dict() for name in {p["params"]["backbone"] for p in pick_info.values()}},
        "warnings": warnings,
    }
    write_card(out / "model_card.md", manifest)
    write_atomic(out / "train.json", json.dumps(manifest, indent=2, default=str))
    if result.failed_artifacts:
        names = ", ".join(Path(a["path"]).name for a in result.failed_artifacts)
        raise_after = ExportGateFailed(f"{names} lost more than {request.max_accuracy_drop:g} point(s) of test "
                                       "accuracy (or could not run)", "see the table and model_card.md; "
                                       "--max-accuracy-drop sets the gate")
        raise_after.result = result
        raise raise_after
    if comparison is not None and not comparison["promoted"]:
        error = NotPromoted(f"not promoted: {comparison['reason']}", f"the comparison is in {out / 'compare.json'}")
        error.result = result
        raise error
    return result


def _save_torchscript(model, size: int, path: Path) -> None:
    import torch

    with torch.inference_mode():
        traced = torch.jit.trace(model, torch.zeros(1, 3, size, size), check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    write_atomic(path, buffer.getvalue())


def _preprocess(entry) -> dict[str, Any]:
    _, backbone, size = entry
    return {"input_size": [size, size], "layout": "NCHW (float model) / per artifact manifest", "color_order": "RGB",
            "resize": "stretch", "mean": list(backbone.mean), "std": list(backbone.std)}


def _checks_summary(report) -> dict[str, Any]:
    return {"findings": [{"check": f.check, "severity": f.severity, "message": f.message} for f in report.findings],
            "label_error_suspects": report.suspects, "label_error_method": report.suspects_method,
            "excluded_from_training": report.excluded}


def _search_summary(request, study, everything, picks, fmt, scale, url, state, search, timings) -> dict[str, Any]:
    import optuna

    from .search import _redact, pareto_front

    states = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    front = pareto_front([c for c in everything if c.feasible])
    return {"study": _redact(url), "study_name": request.study_name,
            "sampler": f"optuna {optuna.__version__} TPESampler (multi-objective, constraints, seed {request.seed})",
            "objectives": ["validation accuracy (max)", f"latency ms (min; {fmt.target} on {fmt.backend} here"
                           + (f", scaled to {scale.profile})" if scale else ")"), "size MB (min)"],
            "latency_format": {"target": fmt.target, "backend": fmt.backend, "note": fmt.note},
            "device_scale": (dict(scale.to_dict(), text=scale.describe().replace("{runtime}", fmt.backend))
                             if scale else None),
            "budget_s": state["budget_s"], "spent_s": round(state.get("spent_s", 0.0), 1),
            "budget_covers": "preparing each architecture (latency measurement, backbone features), the trials "
                             "and the finalists' fine-tune; evaluation and export come after it",
            "preparation_s": round(sum(p.latency_s + p.features_s for p in search.preparations), 1),
            "preparations": [p.to_dict() for p in search.preparations],
            "skipped_for_budget": search.skipped_for_budget, "overrun_s": round(search.overrun_s, 1),
            "finetune": state.get("finetune"),
            "budget_account": _budget_account(state, search, timings),
            "trial_timeout_s": request.trial_timeout_s, "trials": states, "finished": len(everything),
            "search_trials": sum(c.stage == "search" for c in everything),
            "finetuned": sum(c.stage == "finetune" for c in everything),
            "workers": sorted({c.worker for c in everything}),
            "space": request.space.to_dict(), "limits": request.limits.to_dict(),
            "augmentations": request.augmentations.to_dict(),
            "pareto_front": [c.to_dict() for c in front],
            "feature_extraction": {"images": search.cache.stats.images, "seconds": round(search.cache.stats.seconds, 2),
                                   "images_per_second": round(search.cache.stats.images_per_second, 1)},
            "latency_measured": {"|".join(k.rsplit("|", 2)[1:]): v.to_dict() for k, v in search.latency.measured.items()}}


def _budget_account(state, search, timings) -> str:
    """Where --budget went, in one line (this run's parts; a resumed study adds earlier runs')."""
    latency = sum(p.latency_s for p in search.preparations)
    features = sum(p.features_s for p in search.preparations)
    heads = max(0.0, timings.get("search", 0.0) - latency - features)
    text = f"{state.get('spent_s', 0.0):.0f} s of the {state['budget_s']:.0f} s budget"
    if search.overrun_s > 0.5:
        text += f" (the first trial ran {search.overrun_s:.0f} s past the search's share)"
    text += (f"; this run: {latency + features:.0f} s preparing {len(search.preparations)} architecture(s) "
             f"(latency {latency:.0f} s, features {features:.0f} s), {heads:.0f} s training heads")
    if "finetune" in timings:
        text += f", {timings['finetune']:.0f} s fine-tuning"
    if search.skipped_for_budget:
        text += f"; {search.skipped_for_budget} trial(s) not started: too little time left to prepare them"
    return text
