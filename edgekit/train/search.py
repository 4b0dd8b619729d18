"""The search: an Optuna study that trades validation accuracy against latency and size.

Objectives: maximize validation accuracy, minimize latency (ms, measured per architecture with
edgekit's bench on this host's runtime for the target format, scaled to a board when a device
profile is given), minimize size (MB of the fp32 artifact). The sampler is Optuna's
multi-objective TPE with a constraints function, so `--max-latency-ms`, `--max-size-mb` and
`--min-accuracy` steer sampling and filter the picks. Space: backbone, input size, head,
learning rate, epochs, weight decay, class-balanced loss, augmentation strength; fine-tune
depth is searched for the finalists (`finetune_finalists`), recorded in the same study.

The study lives in Optuna's RDB storage: an embedded SQLite file in `-o` by default (so Ctrl-C
pauses and `--resume` continues), or any SQLAlchemy URL such as `postgresql://...` shared by
several workers. Head weights are checkpoints in `-o/checkpoints/`; a trial from another worker
has none here and is retrained from its parameters (seeded, so it is the same head).
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable


from ..errors import BadInput
from .backbones import BACKBONES, get as get_backbone
from .features import BudgetSpent, FeatureCache
from .heads import HeadSpec, TrialTimeout, accuracy, head_parameters, predict_proba, train_head
from .latency import DeviceScale, LatencyTable

PICKS = ("best", "balanced", "fastest")   # most accurate, balanced, fastest: AutoML Vision Edge's three


@dataclass
class Space:
    """The search space: backbones, input sizes (pixels, multiples of 32), heads, learning-rate and
    epoch ranges, augmentation levels, fine-tune depths (blocks)."""
    backbones: list[str] = field(default_factory=lambda: list(BACKBONES))
    sizes: list[int] = field(default_factory=lambda: [128, 160, 224])
    heads: list[str] = field(default_factory=lambda: ["linear", "mlp"])
    augment: list[str] = field(default_factory=lambda: ["none", "light", "strong"])
    lr: tuple[float, float] = (1e-4, 3e-2)
    epochs: tuple[int, int] = (10, 80)
    finetune_depths: list[int] = field(default_factory=lambda: [1, 2])

    def check(self) -> None:
        for name in self.backbones:
            get_backbone(name)
        bad = [s for s in self.sizes if s % 32 or not 32 <= s <= 512]
        if bad or not self.sizes:
            raise BadInput(f"--input-sizes {','.join(map(str, bad or self.sizes))}: each must be a multiple of "
                           "32 between 32 and 512", "e.g. --input-sizes 128,160,224")
        for depth in self.finetune_depths:
            if depth < 0 or depth > 8:
                raise BadInput(f"--finetune-depths takes block counts 0-8, got {depth}", "e.g. 1,2")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Limits:
    """Hard limits: latency (ms, on the board with a device profile), size (MB of the fp32 artifact),
    validation accuracy (fraction)."""
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    min_accuracy: float | None = None

    def violations(self, accuracy_value: float, latency_ms: float, size_mb: float) -> list[float]:
        """Optuna's constraint values: <= 0 means satisfied."""
        return [latency_ms - self.max_latency_ms if self.max_latency_ms is not None else -1.0,
                size_mb - self.max_size_mb if self.max_size_mb is not None else -1.0,
                self.min_accuracy - accuracy_value if self.min_accuracy is not None else -1.0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Candidate:
    """One finished trial as the picks and the report see it."""
    number: int
    params: dict[str, Any]
    val_accuracy: float
    latency_ms: float
    host_latency_ms: float
    size_mb: float
    feasible: bool
    worker: str
    stage: str = "search"          # search | finetune
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def storage_url(study: str | None, out_dir: Path) -> str:
    """The SQLAlchemy URL of the study: sqlite in OUT_DIR by default; postgresql:// is given psycopg
    3's driver. BadInput for a value that is not a URL."""
    if study is None:
        return f"sqlite:///{(Path(out_dir) / 'study.db').resolve()}"
    if "://" not in study:
        raise BadInput(f"--study {study!r} is not a database URL",
                       "pass postgresql://USER@HOST:PORT/DB (or sqlite:///PATH); omit it for -o/study.db")
    for scheme in ("postgresql://", "postgres://"):  # SQLAlchemy's default driver is psycopg2; we ship psycopg 3
        if study.startswith(scheme):
            return "postgresql+psycopg://" + study[len(scheme):]
    return study


def _storage(url: str):
    """Optuna's RDBStorage for URL; BadInput (one line) for a wrong URL, an unreachable server or a
    missing driver."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("sqlite"):
        attempts, open_storage = 1, lambda: optuna.storages.RDBStorage(
            url, engine_kwargs={"connect_args": {"timeout": 60}})
    else:  # workers started together race to create Optuna's tables (a unique-key violation): retry
        attempts, open_storage = 4, lambda: optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)
    for attempt in range(attempts):
        try:
            return open_storage()
        except Exception as exc:
            if attempt + 1 < attempts:
                time.sleep(0.5 + attempt)
                continue
            from ..errors import summary

            # SQLAlchemy's first line names the driver's error; its last is a link to its docs
            raise BadInput(f"cannot open the study storage {_redact(url)}: {summary(exc)}",
                           "check the URL, that the server runs, and that psycopg is installed (edgekit[train])"
                           ) from None


def check_storage(url: str) -> None:
    """Connect to a shared study storage once (creating Optuna's tables there if missing)."""
    _storage(url).remove_session()


def open_study(url: str, name: str, limits: Limits, seed: int, create: bool):
    """Create (CREATE) or load the three-objective study NAME at URL with a seeded multi-objective TPE
    sampler; BadInput when it exists and should not."""
    import optuna

    storage = _storage(url)
    import warnings

    with warnings.catch_warnings():  # `group` is experimental and constraints_func deprecated (until v7)
        warnings.simplefilter("ignore")
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, multivariate=True, group=True,
                                             constraints_func=_constraints)
    try:
        return optuna.create_study(storage=storage, study_name=name, sampler=sampler, load_if_exists=not create,
                                   directions=["maximize", "minimize", "minimize"])
    except optuna.exceptions.DuplicatedStudyError:
        raise BadInput(f"the study storage already holds a study named '{name}'",
                       "pass --resume to continue it, or another -o / --study-name") from None


def enqueue_backbones(study, space: Space) -> None:
    """A new study starts with one trial per backbone (cheapest first) at the smallest input size,
    without augmentation: the sampler then knows every backbone's cost and accuracy, and the
    fastest pick is not left to chance (random start-up trials can miss a backbone entirely, and
    the budget rule then keeps the search on what is already prepared). Optuna's enqueue_trial;
    skip_if_exists keeps workers sharing a study from queueing them twice."""
    from .backbones import relative_cost

    size = min(space.sizes)
    for name in sorted(space.backbones, key=lambda b: relative_cost(get_backbone(b), size)):
        study.enqueue_trial({"backbone": name, "input_size": size, "augment": "none"}, skip_if_exists=True)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


def _constraints(trial) -> list[float]:
    return trial.user_attrs.get("constraints", [0.0, 0.0, 0.0])


def worker_id() -> str:
    """host:pid of this process, recorded on every trial it runs (workers sharing a study are told
    apart by it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Preparation:
    """One architecture made ready for trials: its latency measured, its features extracted."""
    backbone: str
    input_size: int
    augment: str
    latency_s: float                # converting + timing it (0 when the host cache knew it)
    features_s: float               # backbone passes over the images it still lacked
    images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Search:
    """Runs trials into STUDY until the budget is spent. One instance per worker process.

    The budget covers everything the search does: preparing each architecture a trial asks for
    (its latency measurement and its backbone features, done once and cached) and training the
    heads. A trial whose architecture is not ready and whose preparation, estimated from the
    ones done so far, would not fit in the time left is pruned before it starts; a preparation
    or a head still running at the deadline is stopped there. One exception keeps the run
    useful: each run's first trial runs to completion even past the deadline (so that a worker
    sharing a study, or a short budget, still contributes a model), and `overrun_s` says by how
    much.
    """

    def __init__(self, study, cache: FeatureCache, latency: LatencyTable, scale: DeviceScale | None, space: Space,
                 limits: Limits, out_dir: Path, trial_cap_s: float, seed: int = 0,
                 on_trial: Callable[[Candidate | None, str], None] | None = None):
        self.study, self.cache, self.latency, self.scale = study, cache, latency, scale
        self.space, self.limits, self.out_dir = space, limits, Path(out_dir)
        self.trial_cap_s, self.seed, self.on_trial = trial_cap_s, seed, on_trial
        self.dataset = cache.dataset
        self.classes = len(self.dataset.labels)
        self.val = self.dataset.indices("val") or self.dataset.indices("train")
        self.y_val = self.dataset.targets(self.val)
        self.preparations: list[Preparation] = []
        self.skipped_for_budget = 0
        self.overrun_s = 0.0
        self.deadline: float | None = None
        self._finished_any = False
        (self.out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)

    # -- one trial ---------------------------------------------------------------------------
    def objective(self, trial) -> tuple[float, float, float]:
        import optuna

        params = {
            "backbone": trial.suggest_categorical("backbone", self.space.backbones),
            "input_size": trial.suggest_categorical("input_size", self.space.sizes),
            "head": trial.suggest_categorical("head", self.space.heads),
            "lr": trial.suggest_float("lr", *self.space.lr, log=True),
            "epochs": trial.suggest_int("epochs", *self.space.epochs),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
            "balanced": trial.suggest_categorical("balanced", [False, True]),
            "augment": trial.suggest_categorical("augment", self.space.augment if self.cache.augmentations.enabled
                                                 else ["none"]),
        }
        trial.set_user_attr("worker", worker_id())
        trial.set_user_attr("stage", "search")
        bounded = self._finished_any and self.deadline is not None  # the first trial may run past it
        if bounded:
            needed = self.preparation_estimate_s(params)
            left = self.deadline - time.monotonic()
            if needed is not None and needed > left:
                self.skipped_for_budget += 1
                trial.set_user_attr("failed", f"not started: preparing {params['backbone']} at "
                                              f"{params['input_size']}px would take ~{needed:.0f} s, {left:.0f} s left")
                raise optuna.TrialPruned()
        started = time.monotonic()
        self.cache.deadline = self.deadline if bounded else None
        try:
            self.prepare(params)
        finally:
            self.cache.deadline = None
        cap = time.monotonic() + self.trial_cap_s
        accuracy_value, head = self.fit(params, deadline=min(cap, self.deadline) if bounded else cap)
        latency, host_latency, size_mb = self.cost(params)
        checkpoint = self.out_dir / "checkpoints" / f"trial-{trial.number}.pt"
        _save_state(head.state_dict(), checkpoint)
        trial.set_user_attr("checkpoint", str(checkpoint))
        self._record(trial, accuracy_value, latency, host_latency, size_mb)
        if not bounded and self.deadline is not None:
            self.overrun_s = max(0.0, time.monotonic() - max(self.deadline, started))
        return accuracy_value, latency, size_mb

    def prepare(self, params: dict[str, Any]) -> None:
        """Measure the latency and extract the features a trial of PARAMS needs (no-op when done)."""
        backbone, size, level = get_backbone(params["backbone"]), int(params["input_size"]), params["augment"]
        images = self.cache.missing_images(backbone, size, level)
        known = self.latency.known(backbone, size)
        if known and not images:
            return
        started = time.monotonic()
        self.latency.get(backbone, size)
        measured = time.monotonic()
        self.cache.training_set(backbone, size, level)
        self.cache.clean(backbone, size, self.val)
        self.preparations.append(Preparation(backbone.name, size, level, 0.0 if known else round(measured - started, 2),
                                             round(time.monotonic() - measured, 2), images))

    def preparation_estimate_s(self, params: dict[str, Any]) -> float | None:
        """Seconds `prepare(params)` would take, from the measurements so far (None: no basis)."""
        from .backbones import relative_cost

        backbone, size, level = get_backbone(params["backbone"]), int(params["input_size"]), params["augment"]
        total = 0.0
        images = self.cache.missing_images(backbone, size, level)
        if images:
            per_unit = self.cache.stats.seconds_per_unit
            if per_unit is None:
                return None
            total += images * relative_cost(backbone, size) * per_unit
        if not self.latency.known(backbone, size):
            typical = self.latency.typical_seconds()
            if typical is None:
                return None
            total += typical
        return total

    def fit(self, params: dict[str, Any], deadline: float | None = None):
        """Train the head of PARAMS on cached features (extracted here if missing); raises
        TrialTimeout past DEADLINE (time.monotonic seconds)."""
        backbone = get_backbone(params["backbone"])
        x_train, y_train = self.cache.training_set(backbone, params["input_size"], params["augment"])
        x_val = self.cache.clean(backbone, params["input_size"], self.val)
        head = train_head(_spec(params), x_train, y_train, self.classes, seed=self.seed, deadline=deadline)
        return accuracy(predict_proba(head, x_val), self.y_val), head

    def cost(self, params: dict[str, Any]) -> tuple[float, float, float]:
        """(latency ms scaled to the board if profiled, host latency ms, size MB) of the architecture
        and head in PARAMS."""
        backbone = get_backbone(params["backbone"])
        measured = self.latency.get(backbone, params["input_size"])
        extra = head_parameters(_spec(params), backbone.feature_dim, self.classes) - \
            head_parameters(HeadSpec(), backbone.feature_dim, self.classes)
        size_mb = (measured.size_bytes + 4 * extra) / 1e6
        latency = measured.latency_ms * (self.scale.factor if self.scale else 1.0)
        return latency, measured.latency_ms, size_mb

    def _record(self, trial, accuracy_value, latency, host_latency, size_mb) -> None:
        trial.set_user_attr("host_latency_ms", host_latency)
        trial.set_user_attr("latency_ms", latency)
        trial.set_user_attr("size_mb", size_mb)
        trial.set_user_attr("constraints", self.limits.violations(accuracy_value, latency, size_mb))

    # -- the loop ----------------------------------------------------------------------------
    def run(self, seconds: float) -> int:
        """Trials until SECONDS of wall clock have passed, preparation included (see the class).
        Returns how many trials this call finished."""
        import optuna

        done = [0]
        self.deadline = time.monotonic() + seconds
        self._finished_any = False   # in this run: its first trial is not bounded by the deadline
        skipped_in_a_row = [0]

        def callback(study, frozen):
            if frozen.state == optuna.trial.TrialState.COMPLETE:
                done[0] += 1
                self._finished_any = True
                skipped_in_a_row[0] = 0
            elif str(frozen.user_attrs.get("failed", "")).startswith("not started"):
                skipped_in_a_row[0] += 1
            if time.monotonic() >= self.deadline or skipped_in_a_row[0] >= MAX_SKIPPED_IN_A_ROW:
                study.stop()  # the budget is spent, or what is left fits no architecture the sampler wants
            if self.on_trial:
                self.on_trial(_candidate(frozen) if frozen.state == optuna.trial.TrialState.COMPLETE else None,
                              frozen.state.name.lower())

        def objective(trial):
            """One trial: sample PARAMS, prepare their architecture, train the head; returns
            (validation accuracy, latency ms, size MB)."""
            try:
                return self.objective(trial)
            except TrialTimeout as exc:
                past_budget = time.monotonic() >= self.deadline
                trial.set_user_attr("failed", ("stopped at the end of the budget: " if past_budget else
                                               f"over the per-trial cap of {self.trial_cap_s:g} s: ") + str(exc))
                raise optuna.TrialPruned() from None
            except BudgetSpent as exc:
                trial.set_user_attr("failed", f"stopped at the end of the budget: {exc}")
                raise optuna.TrialPruned() from None

        if seconds > 0:
            self.study.optimize(objective, timeout=seconds, callbacks=[callback], gc_after_trial=False,
                                catch=())
        return done[0]


MAX_SKIPPED_IN_A_ROW = 25   # trials pruned unstarted (no time to prepare them) before the search stops


def _spec(params: dict[str, Any]) -> HeadSpec:
    return HeadSpec(kind=params["head"], lr=params["lr"], epochs=params["epochs"],
                    weight_decay=params["weight_decay"], balanced=bool(params["balanced"]))


def _save_state(state: dict, path: Path) -> None:
    import io

    import torch

    from ..fsutil import write_atomic

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def _candidate(frozen, limits: Limits | None = None) -> Candidate:
    attrs = frozen.user_attrs
    accuracy_value, latency, size = (float(v) for v in frozen.values)
    # feasible under the limits of THIS run when given (a resumed study may loosen or tighten
    # them); the constraint values stored with the trial are those of the run that made it
    constraints = limits.violations(accuracy_value, latency, size) if limits else attrs.get("constraints", [0])
    return Candidate(number=frozen.number, params=dict(frozen.params), val_accuracy=accuracy_value,
                     latency_ms=latency, host_latency_ms=float(attrs.get("host_latency_ms", 0.0)),
                     size_mb=size, feasible=all(v <= 0 for v in constraints),
                     worker=attrs.get("worker", "?"), stage=attrs.get("stage", "search"),
                     checkpoint=attrs.get("checkpoint"))


def candidates(study, limits: Limits | None = None) -> list[Candidate]:
    """Every finished trial of STUDY (fine-tuned ones included), feasible under LIMITS when given."""
    import optuna

    return [_candidate(t, limits)
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]


def pareto_front(items: list[Candidate]) -> list[Candidate]:
    """Non-dominated candidates on (accuracy up, latency down, size down). Our own few lines:
    Optuna's public `study.best_trials` judges feasibility by the constraints stored with each
    trial, not by this run's limits, and has no way to take a subset of candidates."""
    front = []
    for a in items:
        dominated = any(b.val_accuracy >= a.val_accuracy and b.latency_ms <= a.latency_ms and b.size_mb <= a.size_mb
                        and (b.val_accuracy > a.val_accuracy or b.latency_ms < a.latency_ms or b.size_mb < a.size_mb)
                        for b in items)
        if not dominated:
            front.append(a)
    return sorted(front, key=lambda c: (c.latency_ms, -c.val_accuracy))


def choose_picks(items: list[Candidate], limits: Limits) -> dict[str, Candidate]:
    """best: highest validation accuracy (ties: faster, smaller, earlier); fastest: lowest latency
    (ties: more accurate); balanced: the front's knee, the point farthest above the straight line
    from the fastest to the best in (log latency, accuracy), i.e. the most accuracy per added
    millisecond. Only candidates meeting every limit are picked; none -> BadInput (exit 2)."""
    feasible = [c for c in items if c.feasible]
    if not items:
        raise BadInput("the search finished no trial", "give it a longer --budget (or a larger --trial-timeout)")
    if not feasible:
        best_latency = min(items, key=lambda c: c.latency_ms)
        best_accuracy = max(items, key=lambda c: c.val_accuracy)
        raise BadInput(
            f"no trial met the limits (fastest {best_latency.latency_ms:.2f} ms, smallest "
            f"{min(c.size_mb for c in items):.1f} MB, most accurate {best_accuracy.val_accuracy:.1%} on validation)",
            "loosen --max-latency-ms / --max-size-mb / --min-accuracy and rerun with --resume (the finished "
            "trials are kept), or widen the search space in a new -o")
    best = max(feasible, key=lambda c: (c.val_accuracy, -c.latency_ms, -c.size_mb, -c.number))
    fastest = min(feasible, key=lambda c: (c.latency_ms, -c.val_accuracy, c.size_mb, c.number))
    front = [c for c in pareto_front(feasible) if fastest.latency_ms <= c.latency_ms <= best.latency_ms]
    balanced = _knee(front, fastest, best)
    return {"best": best, "balanced": balanced, "fastest": fastest}


def _knee(front: list[Candidate], fastest: Candidate, best: Candidate) -> Candidate:
    if best.number == fastest.number or best.latency_ms <= fastest.latency_ms:
        return best
    x0, x1 = math.log(fastest.latency_ms), math.log(best.latency_ms)
    y0, y1 = fastest.val_accuracy, best.val_accuracy
    span_y = max(y1 - y0, 1e-9)

    def lift(c: Candidate) -> float:  # height above the chord, both axes scaled to [0, 1]
        x = (math.log(c.latency_ms) - x0) / (x1 - x0)
        return (c.val_accuracy - y0) / span_y - x

    inner = [c for c in front if c.number not in (fastest.number, best.number)]
    if not inner:  # two points only: the more accurate one unless it costs over twice the latency
        return best if best.latency_ms <= 2 * fastest.latency_ms else fastest
    chosen = max(inner, key=lambda c: (lift(c), c.val_accuracy))
    return chosen if lift(chosen) > 0 else (best if best.latency_ms <= 2 * fastest.latency_ms else fastest)


def pareto_png(items: list[Candidate], picks: dict[str, Candidate], limits: Limits, path: Path,
               latency_label: str) -> None:
    """Validation accuracy against latency for every finished trial (marker area ~ size), the
    Pareto front, the limits and the three picks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fsutil import write_atomic

    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=110)
    backbones = sorted({c.params.get("backbone", "?") for c in items})
    colours = dict(zip(backbones, ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]))
    for name in backbones:
        group = [c for c in items if c.params.get("backbone") == name]
        ax.scatter([c.latency_ms for c in group], [100 * c.val_accuracy for c in group],
                   s=[12 + 4 * c.size_mb for c in group], alpha=0.45, color=colours[name], label=name,
                   edgecolors="none")
    infeasible = [c for c in items if not c.feasible]
    if infeasible:
        ax.scatter([c.latency_ms for c in infeasible], [100 * c.val_accuracy for c in infeasible], marker="x",
                   color="grey", s=20, label="breaks a limit")
    front = pareto_front([c for c in items if c.feasible])
    front2d = _front_2d(front)
    ax.plot([c.latency_ms for c in front2d], [100 * c.val_accuracy for c in front2d], "-", color="black", lw=1.2,
            label="Pareto front")
    styles = {"best": ("*", "#C00000"), "balanced": ("D", "#7030A0"), "fastest": ("s", "#007000")}
    shared: dict[int, list[str]] = {}
    for name, pick in picks.items():  # picks that are one trial get one marker and one label
        shared.setdefault(pick.number, []).append(name)
    for number, names in shared.items():
        pick = picks[names[0]]
        marker, colour = styles[names[0]]
        ax.scatter([pick.latency_ms], [100 * pick.val_accuracy], marker=marker, s=160, color=colour, zorder=5,
                   edgecolors="white", linewidths=0.8)
        ax.annotate(f"{' = '.join(names)}: #{number} {pick.params.get('backbone', '').replace('efficientnet_', '')} "
                    f"{pick.params.get('input_size')}px", (pick.latency_ms, 100 * pick.val_accuracy),
                    textcoords="offset points", fontsize=8,
                    xytext=(8, -14 if names[0] == "fastest" or pick.val_accuracy >= 0.995 else 6),
                    color=colour)
    if limits.max_latency_ms is not None:
        ax.axvline(limits.max_latency_ms, ls="--", color="#C00000", lw=1, label="--max-latency-ms")
    if limits.min_accuracy is not None:
        ax.axhline(100 * limits.min_accuracy, ls="--", color="#7030A0", lw=1, label="--min-accuracy")
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 1.5, not 1.5x10^0
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 101.0))  # accuracy never passes 100 %
    ax.set_xlabel(latency_label)
    ax.set_ylabel("validation accuracy (%)")
    tuned = sum(c.stage == "finetune" for c in items)
    ax.set_title(f"edgekit train: {len(items) - tuned} trials" + (f" + {tuned} fine-tuned" if tuned else "") +
                 ", Pareto front and picks (marker area ~ size)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _front_2d(front: list[Candidate]) -> list[Candidate]:
    """The staircase of (latency, accuracy) alone, for the line."""
    line, top = [], -1.0
    for c in sorted(front, key=lambda c: (c.latency_ms, -c.val_accuracy)):
        if c.val_accuracy > top:
            line.append(c)
            top = c.val_accuracy
    return line


def save_state(out_dir: Path, data: dict[str, Any]) -> None:
    """Write DATA (budget spent, options) to OUT_DIR/state.json atomically: what --resume reads."""
    from ..fsutil import write_atomic

    write_atomic(Path(out_dir) / "state.json", json.dumps(data, indent=2, default=str))


def load_state(out_dir: Path) -> dict[str, Any]:
    """OUT_DIR/state.json as a dict, or {} when there is none (or it cannot be read)."""
    try:
        return json.loads((Path(out_dir) / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def retrain(search: Search, candidate: Candidate):
    """The head of CANDIDATE: its checkpoint when this worker has it, else retrained (seeded)."""
    import torch

    from .heads import make_head

    backbone = get_backbone(candidate.params["backbone"])
    if candidate.checkpoint and Path(candidate.checkpoint).is_file() and candidate.stage == "search":
        head = make_head(_spec(candidate.params), backbone.feature_dim, search.classes)
        head.load_state_dict(torch.load(candidate.checkpoint, weights_only=True))
        return head.eval()
    _, head = search.fit(candidate.params)
    return head
