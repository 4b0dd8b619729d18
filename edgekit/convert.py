"""convert(): source -> routes -> artifacts, each verified and published with its manifest."""
from __future__ import annotations

import copy
import re
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__, deps, interrupt, photos
from .bridges.base import ConvertContext
from .calibration import DEFAULT_SAMPLES, SPEC_FORMS, SampleSet, feed_plan, load_inputs, preprocess_pictures
from .errors import BadInput, CalibrationError, EdgekitError, summary
from .formats import sniff
from .fsutil import publish, sha256_of, staging_dir, write_atomic
from .manifest import (LAYOUTS, RESIZE_MODES, TASKS, InputSpec, Manifest, ModelCard, Preprocess,
                       StepParity, VerifyReport, artifact_digest, element_wise, manifest_path)
from .modelcard import check_tensor_names, resolve_card
from .parity import stack_samples
from .reference import DEFAULT_BUDGET, pack_path, write_reference
from .routes import Route, plan
from .runtime.base import BACKENDS
from .sources.base import SourceModel, load_source, read_labels, source_class
from .targets.base import TARGETS, Target, TargetOutput
from .ui import step
from .verify import constant_outputs, few_samples, gate, parity

VERIFY_SAMPLES = 64


@dataclass
class ConvertRequest:
    """What to build from one source model: the `edgekit convert` options as data.

    Preprocessing fields left None are read from the model (TFLite Metadata, its input shape)
    or assumed, and every assumption is named in a warning and recorded in the manifest.
    Pixel statistics are in 0-255 units: the model input is `(pixel - mean) / std`.
    """

    targets: list[str]                     # target names (TARGETS): tflite, edgetpu, openvino, coreml, onnx
    precisions: list[str] | None = None   # None: each target's default; ["all"]: every one it offers
    out_dir: Path = Path("out")           # artifacts and manifests are published here (created if missing)
    calib: str | list[str] | None = None  # int8 calibration specs (calibration.load_inputs): an image folder,
                                          # video, .npy, .npz, NAME=PATH per input, or "synthetic"
    calib_samples: int = DEFAULT_SAMPLES  # calibration samples, spread over the folder or video
    verify: bool = True                   # run each artifact next to the source (False: report "skipped")
    verify_data: str | list[str] | None = None   # verify inputs (as calib); default: calibration data, else photos
    verify_samples: int = VERIFY_SAMPLES
    reference_bytes: int = DEFAULT_BUDGET  # reference pack beside each artifact: at most about this size; 0: none
    input_size: list[int] | None = None   # [height, width] in pixels
    mean: list[float] | None = None       # 1 or 3 values (R, G, B order), 0-255 pixel units
    std: list[float] | None = None        # 1 or 3 values, 0-255 pixel units, none 0
    bgr: bool | None = None               # True: the model was trained on BGR images
    layout: str | None = None             # NHWC or NCHW, to confirm the model's own (a contradiction is refused)
    resize: str | None = None             # stretch, letterbox or center-crop
    task: str | None = None               # classification, detection, segmentation or other
    labels: Path | None = None            # labels file (txt: one per line; json); default: the model's own
    int8_io: str = "uint8"                # I/O dtype of full-integer TFLite: uint8 or int8
    name: str | None = None               # artifact file stem; default: the source file's stem
    card: ModelCard = field(default_factory=ModelCard)   # --author, --license, ...: override the card file


@dataclass
class ArtifactTimings:
    """Where one artifact's seconds went (wall clock, perf_counter). Work shared by several
    artifacts is counted once, in the artifact that did it: the bridges its routes ran first
    (later artifacts reuse their output) and the source's reference outputs (computed by the
    first artifact verified). With several candidate routes, each step sums over them."""

    bridges: dict[str, float] = field(default_factory=dict)  # bridge (Bridge.describe()) -> seconds
    convert: float = 0.0            # Target.convert: the converter itself, writing into staging
    verify: float = 0.0             # verify on every runtime, including `reference`
    reference: float | None = None  # of `verify`: the source framework's outputs on the verify set


@dataclass
class ConvertTimings:
    """convert()'s own steps before the first artifact, and its total (seconds, wall clock)."""

    load_source: float = 0.0        # load the model (and probe it in a child process)
    calibration: float = 0.0        # read and preprocess calibration data (0 without int8)
    verify_data: float = 0.0        # read and preprocess the verify inputs (0 with --no-verify)
    total: float = 0.0              # the whole convert() call


@dataclass
class ArtifactResult:
    """One published artifact: where it is, how it was made and how it compares with the source."""

    target: str
    precision: str
    path: str                       # the published artifact (an OpenVINO IR: its .xml)
    size_bytes: int                 # on disk, an IR's .bin included
    route: str                      # the chosen route, e.g. "onnx → savedmodel → tflite"
    verify: VerifyReport
    manifest: str                   # path of its .edgekit.json
    seconds: float                  # wall clock for this artifact, every candidate route and verify included
    timings: ArtifactTimings = field(default_factory=ArtifactTimings)
    preprocessing: str | None = None   # where the image normalization came from: option, graph, metadata,
                                       # manifest, assumed (then parity cannot prove it); None: no image input

    def to_dict(self) -> dict[str, Any]:
        data = {"status": "built", **asdict(self)}
        data["verify"] = self.verify.summary()
        data["verify"]["outputs"] = [asdict(o) for o in self.verify.outputs]
        data["verify"]["gate"] = self.verify.gate
        return data


@dataclass
class ConvertResult:
    """What convert() did: the source, each artifact, the warnings shown, the data used, the time taken."""

    source: dict[str, Any]                  # kind, path, sha256
    artifacts: list[ArtifactResult]
    warnings: list[str]
    calibration: dict[str, Any] | None      # SampleSet.describe() of the calibration data, None without int8
    verify_data: dict[str, Any] | None      # SampleSet.describe() of the verify inputs, None with --no-verify
    timings: ConvertTimings = field(default_factory=ConvertTimings)

    failures: list[TargetFailure] = field(default_factory=list)   # (target, precision) pairs not built

    @property
    def failed(self) -> list[ArtifactResult]:
        """Artifacts whose verify gate failed (they are published all the same)."""
        return [a for a in self.artifacts if a.verify.status == "fail"]

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this result: 0 when every requested artifact was built and passed
        its gates, 1 when some target was not built or some gate failed. (When nothing at all was
        built, convert() raises instead: exit 2 for bad input, 1 for an upstream failure.)"""
        return 1 if self.failures or self.failed else 0


@dataclass
class TargetFailure:
    """A (target, precision) that was not built, and why, in one line. The other targets of the
    same run are built all the same (issue 13: one bad target must not throw the others away)."""

    target: str
    precision: str
    status: str                     # "refused": bad input for this target (BadInput); "failed": an upstream step
    reason: str                     # the error's one line: what was wrong. what to do
    error: str                      # the exception's class name (UnsupportedRouteError, ConversionError, ...)
    tries: list[dict[str, Any]] = field(default_factory=list)   # each route tried: route, error
    seconds: float = 0.0
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, target: str, precision: str, exc: BaseException, tries=(), seconds: float = 0.0) -> TargetFailure:
        if isinstance(exc, EdgekitError):
            status = "refused" if exc.exit_code == 2 else "failed"
            reason = exc.one_line()
        else:   # an upstream library failed in a way no call site foresaw: still one line, never a traceback
            status, reason = "failed", f"unexpected {type(exc).__name__}: {summary(exc, limit=300)}"
        return cls(target, precision, status, reason, type(exc).__name__, list(tries), seconds, exc)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "precision": self.precision, "status": self.status, "reason": self.reason,
                "error": self.error, "tries": self.tries, "seconds": self.seconds}


class NothingBuilt(EdgekitError):
    """Every requested (target, precision) failed. Exit 2 when each was refused for bad input,
    1 when an upstream step failed for some. `failures` lists them (the CLI prints them as JSON)."""

    def __init__(self, failures: list[TargetFailure]):
        self.failures = failures
        self.exit_code = 2 if all(f.status == "refused" for f in failures) else 1
        super().__init__("nothing was built: " + "; ".join(f"{f.target} {f.precision}: {f.reason}" for f in failures))


def _nothing_built(failures: list[TargetFailure]):
    """Raise for a run that built nothing: the job's own error when there was one job (its class,
    message and exit code unchanged; `not_built` holds its TargetFailure, for --json), else
    NothingBuilt naming each."""
    if len(failures) == 1 and failures[0].exception is not None:
        exc = failures[0].exception
        if isinstance(exc, EdgekitError):
            exc.not_built = failures
        raise exc
    raise NothingBuilt(failures)


def resolve_jobs(names: list[str], precisions: list[str] | None) -> tuple[list[tuple[Target, str]],
                                                                          list[TargetFailure]]:
    """(target, precision) pairs to build, and those refused: a precision the target does not
    offer, or a target unavailable on this host, is refused for that pair alone. No precision given
    means each target's default (fp32, or int8 for int8-only targets such as edgetpu); 'all' means
    every one it offers. An unknown target name refuses the whole command (UnknownNameError)."""
    targets = [TARGETS.get(name) for name in names]
    jobs, refused = [], []
    for target in targets:
        wanted = (target.precisions if precisions == ["all"]
                  else precisions or [target.default_precision])
        reason = target.unavailable_reason()
        for precision in wanted:
            try:
                target.check_precision(precision)
                if reason:
                    raise BadInput(f"target '{target.name}' is unavailable on this host: {reason}")
            except BadInput as exc:
                refused.append(TargetFailure.of(target.name, precision, exc))
                continue
            jobs.append((target, precision))
    return jobs, refused


def resolve_preprocess(source: SourceModel, request: ConvertRequest, warnings: list[str]) -> Preprocess:
    """CLI options > facts the model carries (its graph's own normalization, TFLite Metadata, the
    manifest of an edgekit artifact, its input shapes) > assumptions (each named in a warning and
    in `Preprocess.assumed`). A model without image inputs (audio frames, sensor vectors) gets a
    Preprocess that no input uses. Raises BadInput for an option that contradicts the model."""
    facts = source.facts.preprocess
    pre = Preprocess()
    if not source.image_inputs():
        if request.input_size or request.mean or request.std:
            names = ", ".join(f"'{i.name}' {list(i.shape)}" for i in source.described_inputs())
            raise BadInput(f"--input-size/--mean/--std apply to image inputs, and {source.describe()} takes "
                           f"tensors only ({names})", "drop them: tensors are fed as given (.npy/.npz)")
        pre.mean, pre.std, pre.normalization = [0.0], [1.0], None
        return pre
    assumed: list[str] = []

    def pick(name: str, given, default, shown: str):
        if given is not None:
            return given
        if name in facts:
            return facts[name]
        assumed.append(shown)
        return default

    pre.input_size = pick("input_size", request.input_size, None, "")
    if pre.input_size is None:
        raise BadInput(f"the input size of {source.describe()} is unknown", "pass --input-size HEIGHT,WIDTH")
    assumed = [a for a in assumed if a]
    detected_layout = facts.get("layout", source.layout)
    if request.layout and request.layout != detected_layout:
        raise BadInput(f"--layout {request.layout} contradicts the model, whose input is {detected_layout}",
                       f"drop --layout or pass --layout {detected_layout}")
    pre.layout = detected_layout
    pre.channels = int(facts.get("channels") or 3)
    if pre.channels == 1:   # luma from the decoded photo: no channel order to assume
        pre.color_order = "RGB"
    else:
        pre.color_order = "BGR" if request.bgr else pick("color_order", "RGB" if request.bgr is False else None,
                                                         "RGB", "colour order RGB (--bgr if trained on BGR)")
    pre.resize = pick("resize", request.resize, "stretch", "resize 'stretch' (--resize)")
    graph = facts.get("graph_normalization")
    pre.graph_normalization = graph
    if graph is not None:
        _check_against_graph(source, request, graph)
    grey = pre.channels == 1
    pre.mean = [float(v) for v in pick("mean", request.mean, [0.0, 0.0, 0.0], "--mean 0" if grey else "--mean 0,0,0")]
    pre.std = [float(v) for v in pick("std", request.std, [255.0, 255.0, 255.0],
                                      f"--std {'255' if grey else '255,255,255'} (inputs in [0, 1])")]
    for name in ("mean", "std"):
        values = getattr(pre, name)
        if len(values) == 1:
            values = values * 3
        elif len(values) != 3:
            raise BadInput(f"--{name} takes 1 or 3 values, got {len(values)}", f"e.g. --{name} 127.5")
        if pre.channels == 1:
            if len(set(values)) != 1:
                raise BadInput(f"--{name} {','.join(f'{v:g}' for v in values)} gives 3 channels different values, "
                               f"and {source.describe()} takes greyscale (1 channel)", f"pass one value: --{name} N")
            values = values[:1]
        setattr(pre, name, values)
    if any(s == 0 for s in pre.std):
        raise BadInput("--std must not contain 0", "use the training std in 0-255 pixel units")
    given = request.mean is not None or request.std is not None
    pre.normalization = "option" if given else facts.get("normalization", "assumed")
    pre.assumed = assumed
    if assumed:
        warnings.append(f"{source.describe()} does not record all its preprocessing; assumed {'; '.join(assumed)}")
    return pre


def _check_against_graph(source: SourceModel, request: ConvertRequest, graph) -> None:
    """--mean/--std on a model that normalizes its own input: refused unless they say the same
    (the graph would normalize a second time)."""
    if request.mean is None and request.std is None:
        return
    mean, std = (0.0, 1.0) if graph.units == "pixels" else (0.0, 255.0)
    if all(abs(v - mean) < 1e-6 for v in request.mean or []) and all(abs(v - std) < 1e-6 for v in request.std or []):
        return
    shown = ", ".join(f"{m:g}" for m in graph.mean), ", ".join(f"{s:g}" for s in graph.std)
    takes = "raw 0-255 pixels" if graph.units == "pixels" else "pixels / 255 (values in [0, 1])"
    raise BadInput(f"--mean/--std contradict {source.describe()}, which normalizes its input itself "
                   f"({graph.found}: (x - [{shown[0]}]) / [{shown[1]}]) and so takes {takes}",
                   "drop --mean/--std: a second normalization would feed it wrong values")


def _pinned_batch_warnings(source: SourceModel) -> list[str]:
    """One warning per input whose declared batch (free, or above 1) `inputs()` pins to 1."""
    return [f"input '{name}' of {source.describe()} has {'a free batch' if batch == -1 else f'a batch of {batch}'}: "
            "pinned to 1 in every artifact, since edge runtimes take one sample at a time"
            for name, batch in source.pinned_batches()]


def resolve_task(source: SourceModel, request: ConvertRequest, warnings: list[str]) -> tuple[str, list[str]]:
    labels = read_labels(request.labels) if request.labels else list(source.facts.labels)
    if request.task:
        if request.task not in TASKS:
            raise BadInput(f"unknown task '{request.task}'", f"choose one of {', '.join(TASKS)}")
        task = request.task
    elif source.facts.task:
        task = source.facts.task
    else:
        outputs = source.outputs()
        task = "classification" if len(outputs) == 1 and len(outputs[0].shape) == 2 and outputs[0].shape[-1] > 1 else "other"
        warnings.append(f"assumed task '{task}' from the output shapes (--task to set it)")
    if task == "classification" and labels:
        classes = source.outputs()[0].shape[-1]
        if len(labels) not in (classes, classes - 1):
            warnings.append(f"{len(labels)} labels for {classes} classes; labels may be misaligned")
    return task, labels


def convert(model, request: ConvertRequest, progress=None, warn: Callable[[str], None] | None = None) -> ConvertResult:
    """Convert MODEL to every (target, precision) of REQUEST, verify each artifact against the
    source, and publish it with its manifest into `request.out_dir`.

    MODEL is a path (Keras .keras/.h5, SavedModel directory, .tflite, .onnx, TorchScript .pt,
    torch.export .pt2; the kind is read from the content) or a torch.nn.Module. PROGRESS is a
    rich Progress (or None); WARN receives each warning line as it is found (they are also in
    `ConvertResult.warnings`).

    Artifacts are built in a staging directory inside `out_dir` and moved into place with their
    manifest last: an error or Ctrl-C leaves nothing half-written. A failed verify gate does not
    raise: the artifact is published and `ConvertResult.failed` lists it (the CLI exits 1).

    Raises BadInput (an UnknownNameError, ModelFormatError, UnsupportedRouteError,
    CalibrationError, ...) for input or options that cannot work, before anything slow runs
    where it can; ConversionError (a RuntimeFailure) when an upstream converter fails.
    """
    started = time.perf_counter()
    timings = ConvertTimings()
    warnings: list[str] = []
    artifact_notes: set[str] = set()   # warnings about one artifact (its verify), kept out of the others' manifests
    for name, choices, value in (("layout", LAYOUTS, request.layout), ("resize", RESIZE_MODES, request.resize)):
        if value is not None and value not in choices:
            raise BadInput(f"unknown --{name} '{value}'", f"choose one of {', '.join(choices)}")
    jobs, failures = resolve_jobs(request.targets, request.precisions)
    form = source_class(model).kind
    routes: dict[str, list[Route]] = {}
    for target in dict.fromkeys(target for target, _ in jobs):   # refuse before any slow load
        try:
            routes[target.name] = plan(form, target)
        except EdgekitError as exc:
            failures += [TargetFailure.of(t.name, p, exc) for t, p in jobs if t is target]
    jobs = [(target, precision) for target, precision in jobs if target.name in routes]
    if not jobs:
        _nothing_built(failures)
    card, card_file = resolve_card(Path(model) if isinstance(model, (str, Path)) else None, request.card)
    mark = time.perf_counter()
    source = load_source(model, [1, 3, *request.input_size] if request.input_size else None)
    timings.load_source = _since(mark)
    pre = resolve_preprocess(source, request, warnings)
    if pre.input_size is not None:
        source.set_input_size(pre.input_size)
    source.inputs()   # every free dimension is fixed now, or one line says which is not
    warnings.extend(_pinned_batch_warnings(source))
    task, labels = resolve_task(source, request, warnings)
    check_tensor_names(card, card_file, request.card, [t.name for t in source.inputs()],
                       [t.name for t in source.outputs()])

    mark = time.perf_counter()
    calibrated = any(p in t.calibrated for t, p in jobs)   # Core ML's weights-only int8 needs no data
    calibration = (_calibration(request, pre, source, warnings, progress)
                   if calibrated or (request.calib and any(p == "int8" for _, p in jobs)) else None)
    timings.calibration, mark = _since(mark), time.perf_counter()
    verify_set = _verify_set(request, pre, source, calibration, warnings, progress) if request.verify else None
    timings.verify_data = _since(mark)
    reference = _Reference(source, verify_set)
    ctx = ConvertContext(preprocess=pre, calibration=calibration,
                         sample_images=_first_image(source, verify_set or calibration),
                         int8_io=request.int8_io, task=task, labels=labels,
                         card=card, source_inputs=source.inputs(), source_outputs=source.outputs(),
                         reference=reference if verify_set is not None else None,
                         source_roles=source.static_inputs())
    for message in warnings:
        if warn:
            warn(message)
    stem = request.name or (Path(source.path).stem if source.path else "model")
    card.name = card.name or stem   # every format's metadata names the model
    source_info = {"kind": source.kind, "path": str(source.path) if source.path else None,
                   "sha256": sha256_of(Path(source.path)) if source.path else None}
    if card_file:
        source_info["model_card"] = str(card_file)
    artifacts: list[ArtifactResult] = []
    out_dir = Path(request.out_dir)
    overall = progress.add_task("converting", total=len(jobs)) if progress else None
    tail = _postprocess_tail(source)
    with staging_dir(out_dir) as stage:
        # the conversion graph's roots: the source, and the body of a detector whose post-processing
        # op targets like tflite keep aside ("body"); each route starts from one of them
        forms: dict[tuple[str, ...], Any] = {("source",): source}
        references = {"source": ctx.reference}
        checks: dict[tuple[str, ...], StepParity | None] = {}   # each bridge's output against its root
        if tail is not None:
            (stage / "postprocess-body").mkdir()
            body = stage / "postprocess-body" / f"{stem}_body.tflite"
            body.write_bytes(tail.body)
            forms[("body",)] = load_source(body)
            if pre.input_size and forms[("body",)].spatial_size() is None:
                forms[("body",)].set_input_size(pre.input_size)
            references["body"] = _Reference(forms[("body",)], verify_set) if verify_set is not None else None

        def candidate(route: Route, target: Target, precision: str,
                      spent: ArtifactTimings) -> tuple[Route, TargetOutput, Manifest]:
            """Convert along one route into its own staging folder, then verify there."""
            fresh = reference.seconds is None   # this candidate may compute the shared source outputs
            root = "body" if tail is not None and target.keeps_postprocess_op else "source"
            ctx.reference, ctx.postprocess = references[root], tail if root == "body" else None
            try:   # a body's intermediates are checked against the body, the artifact against the source
                form, steps = _materialize(route, forms, checks, stage, ctx, spent.bridges, root)
            finally:
                ctx.reference = references["source"]
            staged = stage / f"{route.describe().replace(' → ', '-')}-{precision}"
            staged.mkdir()
            artifact = staged / target.artifact_name(stem, precision)
            mark = time.perf_counter()
            with step(f"{target.name} {precision} conversion ({route.describe()})"):
                output = target.convert(form, precision, artifact, ctx)
            spent.convert += _since(mark)
            for note in output.notes:  # a target's one-line advice (edgetpu: get the compiler)
                if note not in warnings:
                    warnings.append(note)
                    if warn:
                        warn(note)
            input_specs = _input_specs(source, output)
            manifest = Manifest(
                artifact=artifact.name, target=target.name, precision=precision, task=task, labels=labels,
                preprocess=_artifact_preprocess(pre, output, source), input_specs=input_specs,
                warnings=[w for w in warnings if w not in artifact_notes],   # the run's, not another artifact's
                inputs=output.inputs, outputs=output.outputs, source=source_info, route=route.steps(),
                converters=_converter_versions(route, output), int8_io=output.int8_io, edgetpu=output.edgetpu,
                options=output.options,
                calibration=calibration.describe() if calibration and precision in target.calibrated else None,
                model_card=card, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                edgekit_version=__version__, artifact_sha256=artifact_digest(artifact))
            write_atomic(manifest_path(artifact), manifest.to_json())  # runners read it while verifying
            mark = time.perf_counter()
            with step(f"{target.name} {precision} verify"):
                manifest.verify = _with_steps(_verify(target, artifact, output, precision, task, reference,
                                                      request.verify), [*steps, *output.checked])
                _note_assumed_preprocessing(manifest.verify, pre, source)
            spent.verify += _since(mark)
            notes = few_samples(manifest.verify, task == "classification") if manifest.verify.outputs else []
            if manifest.verify.outputs:
                notes += constant_outputs(reference.outputs(), [t.name for t in reference.source.outputs()])
            for note in notes:
                manifest.verify.notes.append(note)   # here, not in gate(): a reference pack's few samples are by design
                note = f"{artifact.name}: {note}"   # a verdict on a handful of samples must not pass unnoticed
                artifact_notes.add(note)
                if note not in warnings:
                    warnings.append(note)
                    if warn:
                        warn(note)
            if fresh and reference.seconds is not None:  # this candidate computed the shared reference
                spent.reference = reference.seconds
            return route, output, manifest

        def build(target: Target, precision: str, spent: ArtifactTimings, tries: list[dict]) -> tuple:
            """The job's routes, shortest first: every route of the shortest length is converted and
            verified and the closest to the source wins; when all of them fail, the next length is
            tried (OpenVINO's TFLite reader fails where tflite → onnx → openvino works). A fallback
            counts only when it passes verify: a longer detour that misses its gate (onnx2tf's fmod
            on the way to Core ML) is not worth more than the short route's own refusal. TRIES gets
            each failed route; raises the shortest route's error when every route failed."""
            errors: list[BaseException] = []
            shortest = len(routes[target.name][0].bridges)
            for length, group in groupby(routes[target.name], key=lambda r: len(r.bridges)):
                built = []
                for route in group:
                    try:
                        made = candidate(route, target, precision, spent)
                    except Exception as exc:   # KeyboardInterrupt is no Exception: a stop stops everything
                        _reraise_if_stopped(exc)
                        errors.append(exc)
                        tries.append({"route": route.describe(), "cosine": None, "error": _one_line(exc)})
                        continue
                    if length > shortest and made[2].verify.status == "fail":
                        tries.append({**_candidate_record(route, made[2].verify),
                                      "error": "verify gate failed: " + _failure(made[2].verify)})
                        continue
                    built.append(made)
                if built:
                    return _best(built), built
            raise _with_fallbacks(errors[0], tries[1:])

        for target, precision in jobs:
            interrupt.check()
            if progress:
                progress.update(overall, description=f"{target.name} {precision}")
            job_started = time.perf_counter()
            spent = ArtifactTimings()
            tries: list[dict[str, Any]] = []
            try:
                (route, output, manifest), candidates = build(target, precision, spent, tries)
            except Exception as exc:
                _reraise_if_stopped(exc)
                failures.append(TargetFailure.of(target.name, precision, exc, tries, _since(job_started)))
                if progress:
                    progress.advance(overall)
                continue
            order = [r.describe() for r in routes[target.name]]
            manifest.route_candidates = sorted([_candidate_record(r, m.verify) for r, _, m in candidates] + tries,
                                               key=lambda record: order.index(record["route"]))
            packs = _reference_pack(output, manifest, reference, request.reference_bytes)
            sidecar = manifest_path(output.files[-1])
            write_atomic(sidecar, manifest.to_json())
            interrupt.check()  # a library may have swallowed Ctrl-C: never publish after it
            published = publish([*output.files, *packs, sidecar], out_dir)   # the manifest last: it marks completion
            final, published_manifest = published[len(output.files) - 1], published[-1]
            artifacts.append(ArtifactResult(target.name, precision, str(final), sniff(final).size(final),
                                            route.describe(), manifest.verify, str(published_manifest),
                                            _since(job_started), spent,
                                            pre.normalization if source.image_inputs() else None))
            if progress:
                progress.advance(overall)
    if not artifacts:
        _nothing_built(failures)
    timings.total = _since(started)
    return ConvertResult(source_info, artifacts, warnings, calibration.describe() if calibration else None,
                         verify_set.describe() if verify_set else None, timings, failures)


def _postprocess_tail(source: SourceModel):
    """The float TFLite source cut at its TFLite_Detection_PostProcess op (tflite_postprocess.split),
    for targets that keep the op after an int8 body; None for any other source."""
    if source.kind != "tflite" or not source.is_float() or not any(
            op.name == "TFLite_Detection_PostProcess" for op in source.model.subgraphs[0].operators):
        return None
    from .tflite_postprocess import split

    return split(Path(source.path).read_bytes())


def _reraise_if_stopped(exc: BaseException) -> None:
    """Ctrl-C that a native binding turned into another exception stops the whole run."""
    if interrupt.interrupted():
        raise exc


def _one_line(exc: BaseException) -> str:
    return exc.one_line() if isinstance(exc, EdgekitError) else f"unexpected {type(exc).__name__}: {summary(exc)}"


def _reference_pack(output: TargetOutput, manifest: Manifest, reference: _Reference, budget: int) -> list[Path]:
    """Write the reference pack of OUTPUT's artifact beside it in staging (verify on, and a
    budget) and record it in MANIFEST: every input as the artifact takes it (feed_plan), the
    source's outputs. The staged pack, to publish with the artifact, or nothing."""
    if reference.samples is None or budget <= 0:
        return []
    samples, artifact = reference.samples, output.files[-1]
    plan = feed_plan(reference.source.static_inputs(), output.inputs, output.layout)
    inputs = [samples.arrays[name] for name, _ in plan]   # each [N, ...], NHWC images
    manifest.reference = write_reference(artifact, manifest, inputs, reference.outputs(), samples.origin,
                                         samples.real, budget, reference.source.layout, [lay for _, lay in plan])
    return [pack_path(artifact)]


def _since(started: float) -> float:
    """Seconds since STARTED (a perf_counter reading), to the millisecond."""
    return round(time.perf_counter() - started, 3)


def _calibration(request: ConvertRequest, pre: Preprocess, source: SourceModel, warnings: list[str],
                 progress) -> SampleSet | None:
    if not request.calib:
        raise CalibrationError("int8 needs calibration data: quantization measures each tensor's range on "
                               "real inputs, and guessed ranges quietly cost accuracy",
                               f"pass --calib {SPEC_FORMS.replace('|synthetic', '')}, or --calib synthetic to "
                               "accept unmeasured accuracy")
    calibration = load_inputs(_specs(request.calib), source.static_inputs(), pre, request.calib_samples, progress)
    if not calibration.real:
        warnings.append("calibrating on synthetic data: int8 accuracy is unmeasured")
    return calibration


def _specs(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, (str, Path)) else [str(v) for v in value]


def _verify_set(request, pre, source: SourceModel, calibration, warnings, progress) -> SampleSet:
    """--verify-data; else the calibration data; else scikit-image's photos for image inputs
    (tensor inputs then get synthetic values, and a warning)."""
    roles = source.static_inputs()
    if request.verify_data:
        return load_inputs(_specs(request.verify_data), roles, pre, request.verify_samples, progress)
    if calibration is not None and calibration.real:
        return calibration.head(request.verify_samples, f"{calibration.origin} (calibration data)")
    images = [r for r in roles if r.kind == "image"]
    if images and photos.available():
        views = [image for _, image in photos.photo_set(request.verify_samples)]
        arrays = {}
        for role in roles:
            if role.kind == "image":
                arrays[role.name] = preprocess_pictures(views, role, pre)
            else:
                synthetic = load_inputs(["synthetic"], [role], pre, len(views))
                arrays[role.name] = synthetic.arrays[role.name]
        tensors = [r.name for r in roles if r.kind != "image"]
        if tensors:
            warnings.append(f"no verify data (--verify-data) for input(s) {', '.join(tensors)}: verifying them on "
                            "synthetic values")
        return SampleSet(arrays, "photos", "scikit-image sample photos", not tensors,
                         {r.name: "scikit-image sample photos" if r.kind == "image" else "synthetic" for r in roles})
    warnings.append("no verify data (--verify-data) and no sample photos: verifying on synthetic inputs")
    return load_inputs(["synthetic"], roles, pre, min(16, request.verify_samples))


def _first_image(source: SourceModel, samples: SampleSet | None) -> np.ndarray | None:
    """The first image input's samples (NHWC), for a bridge's own checks; None without any."""
    if samples is None:
        return None
    images = [r.name for r in source.described_inputs() if r.kind == "image"]
    return samples.arrays[images[0]] if images else None


def _image_size(source: SourceModel, samples: SampleSet) -> list[int] | None:
    """[height, width] in pixels of the first image input's samples, which the detection
    decoders scale boxes to; None for a model without an image input."""
    images = _first_image(source, samples)
    return None if images is None else [int(images.shape[1]), int(images.shape[2])]


def _input_specs(source: SourceModel, output: TargetOutput) -> list[InputSpec]:
    """How each artifact input is fed, matched to the source input it stands for."""
    roles = {r.name: r for r in source.described_inputs()}
    pinned = dict(source.pinned_batches())
    plan = feed_plan(source.static_inputs(), output.inputs, output.layout)
    return [InputSpec(name=tensor.name, kind=roles[name].kind, source_name=name,
                      source_shape=list(roles[name].shape), batch_pinned_from=pinned.get(name))
            for tensor, (name, _) in zip(output.inputs, plan)]


def _artifact_preprocess(pre: Preprocess, output: TargetOutput, source: SourceModel) -> Preprocess:
    """PRE with the layout of the artifact's first image input (converters move channels)."""
    layouts = [layout for _, layout in feed_plan(source.static_inputs(), output.inputs, output.layout) if layout]
    return replace(pre, layout=layouts[0] if layouts else output.layout)


def _note_assumed_preprocessing(report: VerifyReport, pre: Preprocess, source: SourceModel) -> None:
    """Parity compares artifact and source on the same prepared inputs, so it cannot prove the
    preprocessing itself: say so where any of it was assumed."""
    if source.image_inputs() and pre.assumed:
        report.notes.append(f"preprocessing assumed, not verified: {'; '.join(pre.assumed)}")


class _Reference:
    """Source outputs on the verify set, computed once and shared by every artifact."""

    def __init__(self, source: SourceModel, samples: SampleSet | None):
        self.source, self.samples, self._outputs = source, samples, None
        self.seconds: float | None = None   # how long computing them took, once they are

    def outputs(self) -> list[np.ndarray]:
        if self._outputs is None:
            started = time.perf_counter()
            plan = [(r.name, r.layout) for r in self.source.described_inputs()]
            batches = [self.source.infer(self.samples.feeds(i, plan)) for i in range(len(self.samples))]
            self._outputs = stack_samples(batches)
            self.seconds = _since(started)
        return self._outputs


def _verify(target: Target, artifact: Path, output: TargetOutput, precision: str, task: str,
            reference: _Reference, enabled: bool) -> VerifyReport:
    """Gate on the target's own runtime; cross-check on every other runtime here that loads the
    format (OpenVINO also runs .tflite and .onnx), recorded without gating."""
    if not enabled:
        return VerifyReport(status="skipped", notes=["--no-verify"])
    structural = target.structure_check(artifact, output)
    if structural is not None:
        return structural
    backend = BACKENDS.get(target.runtime)
    reason = backend.unavailable_reason()
    if reason:
        return VerifyReport(status="skipped", runtime=target.runtime, notes=[f"cannot run here: {reason}"])
    samples = reference.samples
    report = VerifyReport(status="pass", runtime=target.runtime, samples=len(samples.samples), data=samples.origin)
    if not samples.real:
        report.notes.append("synthetic inputs: accuracy unmeasured")
    outputs, detection, mask, problem = _parity(backend, artifact, output, reference, task, precision)
    if problem:
        report.status = "fail"
        report.notes.append(problem)
        return report
    report.outputs, report.detection, report.mask = outputs, detection, mask
    if task == "detection" and detection is None:
        report.notes.append("no detection-level parity: the outputs fit no format edgekit decodes "
                            "(TFLite_Detection_PostProcess, SSD boxes + scores, YOLO head); compared output by output")
    fmt = sniff(artifact).name
    for name, other in BACKENDS.items():
        if name != target.runtime and fmt in other.formats and other.unavailable_reason() is None:
            cross, _, _, problem = _parity(other, artifact, output, reference, task, precision)
            report.cross_checks[name] = {"cosine": min(o.gated_cosine for o in element_wise(cross) or cross),
                                         "top1_agreement": cross[0].top1_agreement} if cross else {"error": problem}
    return gate(report, precision, task == "classification")


def _parity(backend, artifact: Path, output: TargetOutput, reference: _Reference, task: str, precision: str):
    """Run the artifact on the verify set and compare it with the source (verify.parity): each
    output and its channel groups, detections or masks by TASK. (outputs, detection, mask, problem)"""
    try:
        plan = feed_plan(reference.source.static_inputs(), output.inputs, output.layout)
        with backend(artifact) as runner:
            got = [runner.infer(reference.samples.feeds(i, plan)) for i in range(len(reference.samples))]
    except EdgekitError as exc:
        return [], None, None, f"{backend.backend} could not run it: {exc.one_line()}"
    got = stack_samples(got)
    steps = [t.quantization.scale[0] if t.quantization is not None and len(t.quantization.scale) == 1 else None
             for t in output.outputs]
    source = reference.source
    return parity(reference.outputs(), got, [t.name for t in output.outputs], task, precision, source.layout,
                  steps, [t.name for t in source.outputs()], _image_size(source, reference.samples))


def _materialize(route: Route, forms: dict, checks: dict, stage: Path, ctx: ConvertContext,
                 spent: dict[str, float], root: str = "source") -> tuple[SourceModel, list[StepParity]]:
    """Run the route's bridges, reusing any prefix another target already converted; each new
    intermediate is checked against the source once (its StepParity is shared by every route);
    the seconds of each bridge run here are added to SPENT (bridge description -> seconds).
    A bridge that failed once fails again at once for every later route through it (FORMS keeps
    its exception), so one broken bridge costs its minutes once per run. ROOT: the form the route
    starts from, "source" or a detector's "body" (see convert)."""
    key: tuple[str, ...] = (root,)
    model = forms[key]
    steps = []
    for bridge in route.bridges:
        key = key + (bridge.name,)
        if key not in forms:
            workdir = stage / "-".join(key)
            workdir.mkdir()
            started = time.perf_counter()
            try:
                with step(f"{bridge.name} ({bridge.tool})"):   # onnx2tf alone can take minutes: say so in logs
                    form = bridge.convert(model, workdir, ctx)
                if ctx.preprocess.input_size and form.image_inputs() and form.spatial_size() is None:
                    form.set_input_size(ctx.preprocess.input_size)   # a converter kept the free size free
                checks[key] = ctx.check(bridge.describe(), STEP_RUNTIMES.get(form.kind, form.kind), form.infer, form)
                forms[key] = form   # only a form that loaded and was checked is shared with later routes
            except Exception as exc:
                forms[key] = exc
                raise
            finally:
                spent[bridge.describe()] = round(spent.get(bridge.describe(), 0.0) + _since(started), 3)
        if isinstance(forms[key], BaseException):
            raise forms[key]
        model = forms[key]
        if checks[key] is not None:
            steps.append(checks[key])
    return model, steps


# which library runs an intermediate form when it is checked against the source
STEP_RUNTIMES = {"savedmodel": "tensorflow", "keras": "tensorflow", "onnx": "onnxruntime", "tflite": "litert",
                 "torch": "torch"}


def _with_steps(report: VerifyReport, steps: list[StepParity]) -> VerifyReport:
    """Record the route's checked intermediates. Where the artifact itself cannot run here (Core ML
    off macOS), they are the numeric proof, so a failed step fails the report."""
    report.steps = steps
    failed = [s for s in steps if s.status == "fail"]
    if report.status == "structure-only" and failed:
        report.status = "fail"
        report.notes.extend(f"{s.step}: {'; '.join(s.notes)}" for s in failed)
    elif report.status == "structure-only" and steps:
        last = steps[-1]
        report.notes.append(f"numerics proven up to the converter's input: {last.step} matches the source "
                            f"(cosine {last.cosine:.6f} on {last.samples} samples, {last.runtime})")
    return report


def _with_fallbacks(exc: BaseException, fallbacks: list[dict[str, Any]]) -> BaseException:
    """EXC (the shortest route's error) with why each other route tried failed too, in its one
    line: the user otherwise reads a remedy ("convert through onnx") that was tried and failed.
    Routes that failed for one reason are named together, and a reason EXC states already (its
    first clause, before any ';' or '(': an input the target cannot take, whichever route) is left
    out. A copy: EXC may be a bridge's error that other targets re-raise."""
    if not fallbacks or not isinstance(exc, EdgekitError):
        return exc
    routes: dict[str, list[str]] = {}
    for t in fallbacks:
        reason = t["error"].split(". ")[0]
        if re.split(r"[;(]", reason)[0].strip() not in exc.message:
            routes.setdefault(reason, []).append(t["route"])
    if not routes:
        return exc
    tried = "; ".join(f"via {' and '.join(names)}: {reason}" for reason, names in routes.items())
    combined = copy.copy(exc)
    combined.message = f"{exc.message} (also tried {tried})"
    combined.args = (combined.one_line(),)
    return combined


def _failure(report: VerifyReport) -> str:
    """Why REPORT failed, in one line: its first failed intermediate step, else its first note
    (gate() puts the failed gates before its other notes)."""
    steps = [f"{s.step}: {'; '.join(s.notes)}" for s in report.steps if s.status == "fail"]
    return (steps or report.notes or ["no reason recorded"])[0]


def _route_cosine(report: VerifyReport) -> float | None:
    """The artifact's own cosine (its worst channel group's, where lower); where it cannot run here,
    that of the last checked intermediate."""
    if report.gated_cosine is not None:
        return report.gated_cosine
    return report.steps[-1].cosine if report.steps else None


def _candidate_record(route: Route, report: VerifyReport) -> dict[str, Any]:
    record: dict[str, Any] = {"route": route.describe(), "cosine": report.cosine}
    if report.cosine is None and report.steps:
        record["intermediate_cosine"] = report.steps[-1].cosine   # what chose it where the artifact cannot run
    return record


def _best(candidates):
    """Several equally short routes: keep the one whose output is closest to the source."""
    def cosine(candidate) -> float:
        value = _route_cosine(candidate[2].verify)
        return -1.0 if value is None else value

    return max(candidates, key=cosine)


def _converter_versions(route: Route, output: TargetOutput) -> dict[str, str]:
    versions = {b.tool: deps.version(b.tool) or "?" for b in route.bridges}
    versions.update(output.converters)
    versions["edgekit"] = __version__
    return versions
