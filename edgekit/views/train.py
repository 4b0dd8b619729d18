"""`edgekit train`: data checks, the search and its picks, the exported artifacts."""
from __future__ import annotations

from pathlib import Path

from ..ui import table


def render_train(result, out) -> None:
    """A TrainResult: data checks, search, picks, artifacts after export, comparison, card."""
    from ..train.latency import BENCH_RUNS
    rows = [[c, s, m] for c, s, m in _check_rows(result.report)]
    out.print(table("data checks (data_report.json)", ["check", "level", "finding"], rows, wrap=("finding",)))
    search = result.search
    out.print(f"search: {search['search_trials']} trials + {search['finetuned']} fine-tuned, latency on "
              f"{search['latency_format']['target']}/{search['latency_format']['backend']} (fastest of "
              f"{BENCH_RUNS} runs)" + (f"; {search['device_scale']['text']}" if search.get("device_scale") else ""),
              markup=False)
    out.print(f"budget: {search['budget_account']}", markup=False)
    pick_rows = []
    for name, p in result.picks.items():
        params = p["params"]
        pick_rows.append([name + (f" (={p['same_as']})" if p.get("same_as") else ""), f"#{p['trial']}",
                          params["backbone"].replace("efficientnet_", ""), params["input_size"], params["head"],
                          params.get("finetune_depth", 0), f"{p['val_accuracy']:.1%}", f"{p['test']['accuracy']:.1%}",
                          f"{p['latency_ms']:.2f}", f"{p['size_mb']:.1f}"])
    out.print(table("picks (pareto.png)", ["pick", "trial", "backbone", "px", "head", "ft", "val acc", "test acc",
                                           "latency ms", "MB"], pick_rows))
    if result.artifacts:
        rows = [[Path(a["path"]).name, a["precision"], "—" if a["accuracy"] is None else f"{a['accuracy']:.1%}",
                 f"{a['float_accuracy']:.1%}", "—" if a["drop_points"] is None else f"{a['drop_points']:+.1f}",
                 a["status"], "—" if a["latency_ms"] is None else f"{a['latency_ms']:.2f}", a["note"]]
                for a in result.artifacts]
        out.print(table("artifacts: test accuracy after export", ["artifact", "prec", "test acc", "float", "drop pt",
                                                                   "gate", "ms", "notes"], rows))
    if result.comparison:
        c = result.comparison
        out.print(f"compare with {c['previous']}: {'PROMOTED' if c['promoted'] else 'not promoted'}: {c['reason']}")
    for warning in result.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    out.print(f"model card: {Path(result.out_dir) / 'model_card.md'}", markup=False)
    runnable = [a for a in result.artifacts if a["accuracy"] is not None]
    if runnable:
        out.print(f"try: edgekit predict {runnable[0]['path']} PHOTO.jpg", markup=False)


def _check_rows(report: dict):
    rows = [(f["check"], f["severity"], f["message"]) for f in report["findings"]]
    suspects = report["label_error_suspects"]
    if suspects:
        top = ", ".join(f"{Path(s['path']).name} ({s['given']}→{s['predicted']})" for s in suspects[:3])
        rows.append(("label-error", "warning", f"{len(suspects)} suspected label error(s), top: {top}"))
    return rows or [("all", "info", "no problems found")]
