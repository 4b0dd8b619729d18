"""The finalists' short fine-tune: the last k MBConv blocks (k from the searched depths), the
head convolution and the head, trained on the cached activations entering those blocks.

Each fine-tuned variant is added to the same Optuna study as a trial of its own (stage
"finetune", parameter finetune_depth, parent trial), so it competes with its parent on the
Pareto front and the picks take it only when its validation accuracy is higher (the latency
and size are its parent's: the architecture is unchanged).
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

from .backbones import build_trunk, get as get_backbone
from .heads import accuracy, finetune, predict_proba
from .search import Candidate, Search, _save_state, _spec, retrain

FINETUNE_EPOCHS = 12
FINETUNE_SHARE = 0.2   # of --budget kept for the fine-tune; the search gets the rest


def finetune_finalists(search: Search, picks: dict[str, Candidate], depths: list[int], deadline: float) -> str:
    """Fine-tune the last k blocks of each search-stage pick for each depth in DEPTHS until DEADLINE
    (time.monotonic seconds); each variant becomes a trial of the study. Returns a one-line account."""
    import optuna

    from .features import BudgetSpent

    finalists = {c.number: c for c in picks.values() if c.stage == "search"}
    # a resumed run (after a stop during export, say) finds its finalists tuned already
    tuned = {(t.user_attrs.get("parent"), t.params.get("finetune_depth")) for t in search.study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.user_attrs.get("stage") == "finetune"}
    done, skipped = [], []
    for candidate in finalists.values():
        for depth in sorted(d for d in depths if d > 0):
            if (candidate.number, depth) in tuned:
                continue
            if time.monotonic() > deadline:
                skipped.append(f"#{candidate.number} depth {depth}")
                continue
            search.cache.deadline = deadline
            try:
                accuracy_value, state = _tune(search, candidate, depth, deadline)
            except BudgetSpent:
                skipped.append(f"#{candidate.number} depth {depth}")
                continue
            finally:
                search.cache.deadline = None
            params = dict(candidate.params, finetune_depth=depth)
            distributions = dict(search.study.trials[candidate.number].distributions)
            distributions["finetune_depth"] = optuna.distributions.CategoricalDistribution([0, *sorted(depths)])
            checkpoint = search.out_dir / "checkpoints" / f"trial-{candidate.number}-finetune{depth}.pt"
            _save_state(state, checkpoint)
            trial = optuna.trial.create_trial(
                params=params, distributions=distributions,
                values=[accuracy_value, candidate.latency_ms, candidate.size_mb],
                user_attrs={"stage": "finetune", "parent": candidate.number, "checkpoint": str(checkpoint),
                            "worker": candidate.worker, "host_latency_ms": candidate.host_latency_ms,
                            "latency_ms": candidate.latency_ms, "size_mb": candidate.size_mb,
                            "constraints": search.limits.violations(accuracy_value, candidate.latency_ms,
                                                                    candidate.size_mb)})
            search.study.add_trial(trial)
            done.append(f"#{candidate.number} depth {depth}: {candidate.val_accuracy:.1%} -> {accuracy_value:.1%}")
    note = "; ".join(done) if done else "nothing fine-tuned"
    if skipped:
        note += f" (the budget did not allow {', '.join(skipped)})"
    return note


def _tune(search: Search, candidate: Candidate, depth: int, deadline: float):
    backbone = get_backbone(candidate.params["backbone"])
    size, level = candidate.params["input_size"], candidate.params["augment"]
    x_train, y_train = search.cache.training_set(backbone, size, level, tap=depth)
    x_val = search.cache.clean(backbone, size, search.val, tap=depth)
    trunk = build_trunk(backbone.name)
    head = copy.deepcopy(retrain(search, candidate))
    spec = _spec(candidate.params)
    tail = finetune(trunk, depth, head, spec, x_train.astype("float32"), y_train, search.classes,
                    epochs=min(FINETUNE_EPOCHS, candidate.params["epochs"]), lr=candidate.params["lr"],
                    seed=search.seed, deadline=deadline)
    value = accuracy(predict_proba(tail, x_val.astype("float32")), search.y_val)
    return value, {"trunk": trunk.state_dict(), "head": head.state_dict()}


def load_model(search: Search, candidate: Candidate):
    """(trunk, head) of any candidate: a fine-tuned one from its checkpoint (or tuned again when
    another worker made it), a search trial from its head checkpoint (or retrained)."""
    import torch

    from .heads import make_head

    backbone = get_backbone(candidate.params["backbone"])
    trunk = build_trunk(backbone.name)
    if candidate.stage != "finetune":
        return trunk, retrain(search, candidate)
    if candidate.checkpoint and Path(candidate.checkpoint).is_file():
        state = torch.load(candidate.checkpoint, weights_only=True)
        trunk.load_state_dict(state["trunk"])
        head = make_head(_spec(candidate.params), backbone.feature_dim, search.classes)
        head.load_state_dict(state["head"])
        return trunk.eval(), head.eval()
    # made by another worker sharing the study: tune again here from the same seeded parent head
    base = Candidate(**{**candidate.to_dict(), "stage": "search", "checkpoint": None})
    _, state = _tune(search, base, int(candidate.params["finetune_depth"]), time.monotonic() + 3600)
    trunk.load_state_dict(state["trunk"])
    head = make_head(_spec(candidate.params), backbone.feature_dim, search.classes)
    head.load_state_dict(state["head"])
    return trunk.eval(), head.eval()
