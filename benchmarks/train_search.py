"""`edgekit train --budget 5m` on this host: trials finished, best validation accuracy against a
plain logistic-regression linear probe on the same features, and the int8 TFLite and OpenVINO
artifacts of the best pick against the float model on the test split.

Goals (issue 16): >= 50 trials in 5 minutes on 2 cores; best validation accuracy >= the probe's
(scikit-learn LogisticRegression, default C, on the best pick's backbone and input size, the
same clean training features and validation split); int8 TFLite and OpenVINO within 1 point of
the float model's test accuracy. Data: scikit-image's faces vs non-faces (200 real photos).
The latency cache is emptied first, so the budget includes measuring every architecture (the
budget covers preparing each architecture, the trials and the fine-tune; see budget_account).

    .venv/bin/python benchmarks/train_search.py [--budget 5m] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import hostinfo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    missing = hostinfo.missing_modules(["optuna", "cleanlab", "torch", "openvino", "ai_edge_litert", "skimage"])
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from edgekit.train import augment, backbones, data, features, sample_data

    before = hostinfo.cpu_snapshot()
    with tempfile.TemporaryDirectory() as folder:
        photos, out = Path(folder) / "photos", Path(folder) / "out"
        sample_data.write_faces(photos)
        command = [sys.executable, "-m", "edgekit", "train", str(photos), "-o", str(out), "--budget", args.budget,
                   "--to", "openvino,tflite", "--precision", "int8", "--json"]
        run = subprocess.run(command, capture_output=True, text=True,
                             env={**os.environ, "EDGEKIT_TRAIN_CACHE": str(Path(folder) / "latency")})
        if run.returncode not in (0, 1):
            print(run.stderr[-3000:], file=sys.stderr)
            return 1
        summary = json.loads(run.stdout)
        best = summary["picks"]["best"]
        dataset = data.load(photos)  # same files, same seed: the same split as the run
        cache = features.FeatureCache(dataset, out / "cache" / "features", augment.Augmentations())
        backbone = backbones.get(best["params"]["backbone"])
        size = best["params"]["input_size"]
        train, val = dataset.indices("train"), dataset.indices("val")
        probe = LogisticRegression(max_iter=5000).fit(cache.clean(backbone, size, train), dataset.targets(train))
        probe_accuracy = float(np.mean(probe.predict(cache.clean(backbone, size, val)) == dataset.targets(val)))
    drops = {f"{a['target']} {a['precision']}": a["drop_points"] for a in summary["artifacts"]
             if a["pick"] == (best.get("same_as") or "best")}
    search = summary["search"]
    result = {"host": hostinfo.collect(extra_packages=["optuna", "cleanlab"]),
              "contention": hostinfo.contention(before, hostinfo.cpu_snapshot()), "budget": args.budget,
              "trials": search["search_trials"], "finetuned": search["finetuned"], "budget_s": search["budget_s"],
              "spent_s": search["spent_s"], "budget_account": search["budget_account"],
              "preparations": search["preparations"], "best_val_accuracy": best["val_accuracy"],
              "probe_val_accuracy": probe_accuracy, "best_params": best["params"], "float_test_accuracy": best["test"]["accuracy"],
              "int8_drop_points": drops, "latency_measured": search["latency_measured"],
              "feature_extraction": search["feature_extraction"], "timings_s": summary["timings_s"],
              "goals": {"trials": ">= 50", "best_vs_probe": ">= 1.0", "int8_drop_points": "<= 1"}}
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    json_path, md_path = hostinfo.results_paths(Path(__file__).parent / "results", "train-search", date)
    rows = [["search trials finished (goal >= 50)", str(search["search_trials"])],
            ["budget account", search["budget_account"]],
            ["best validation accuracy", f"{best['val_accuracy']:.3f}"],
            ["logistic-regression probe, same features", f"{probe_accuracy:.3f}"],
            ["best / probe (goal >= 1.0)", f"**{best['val_accuracy'] / max(probe_accuracy, 1e-9):.3f}**"]]
    rows += [[f"{k} drop vs float, points (goal <= 1)", f"{v}"] for k, v in drops.items()]
    markdown = (f"# edgekit train --budget {args.budget} ({date})\n\n{hostinfo.describe(result['host'])}\n\n"
                f"Faces vs non-faces (scikit-image, 200 photos), default search space, latency on OpenVINO; best "
                f"pick {best['params']}; load during the run: {result['contention']}\n\n| measure | value |\n|---|---|\n"
                + "\n".join(f"| {a} | {b} |" for a, b in rows) + "\n")
    entry = (f"## edgekit train --budget {args.budget} ({date})\n\n{search['search_trials']} trials; best val "
             f"{best['val_accuracy']:.3f} vs probe {probe_accuracy:.3f}; int8 drops {drops}: "
             f"[{md_path.name}]({md_path.name}), [{json_path.name}]({json_path.name})\n")
    hostinfo.record(result, json_path, md_path, markdown, entry)
    hostinfo.show(result, args.json, f"edgekit train --budget {args.budget}", ["measure", "value"], rows, json_path, md_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
