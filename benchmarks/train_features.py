"""Feature extraction of `edgekit train` vs the raw backbone's batched inference, same runtime.

Goal (issue 16): the FeatureCache extracts at >= 0.8x the images per second of a bare
`trunk(batch)` loop over already-normalized tensors (PyTorch, same threads, same batch of 32),
because decoding happened once at load and only resize + normalize are added per image.
Rounds alternate A/B; the ratio of the medians is recorded with host info.

    .venv/bin/python benchmarks/train_features.py [--size 128] [--rounds 3] [--json]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import hostinfo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    missing = hostinfo.missing_modules(["torch", "efficientnet_lite_pytorch", "skimage"])
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    import numpy as np
    import torch

    from edgekit.train import augment, backbones, data, features, sample_data
    from edgekit.train.threads import backbone_threads, torch_threads

    before = hostinfo.cpu_snapshot()
    with tempfile.TemporaryDirectory() as folder:
        sample_data.write_faces(Path(folder) / "photos")
        dataset = data.load(Path(folder) / "photos")
        backbone = backbones.get(args.backbone)
        everything = dataset.indices("train") + dataset.indices("val") + dataset.indices("test")
        tensors = torch.from_numpy(np.stack([features.model_input(dataset.thumbnails[i], args.size, backbone)
                                             for i in everything]))
        raw_rates, cache_rates = [], []
        for round_index in range(args.rounds):
            cache = features.FeatureCache(dataset, Path(folder) / f"cache{round_index}", augment.Augmentations())
            trunk = cache.trunk(backbone)
            with torch.inference_mode(), torch_threads(backbone_threads()):  # the threads the cache uses
                trunk(tensors[:features.BATCH])  # warm-up
                started = time.perf_counter()
                for start in range(0, len(tensors), features.BATCH):
                    trunk(tensors[start:start + features.BATCH])
                raw_rates.append(len(tensors) / (time.perf_counter() - started))
            cache.clean(backbone, args.size, everything)
            cache_rates.append(cache.stats.images_per_second)
    raw, cached = statistics.median(raw_rates), statistics.median(cache_rates)
    result = {"host": hostinfo.collect(extra_packages=["optuna"]), "contention": hostinfo.contention(before, hostinfo.cpu_snapshot()),
              "backbone": args.backbone, "size": args.size, "images": len(everything), "batch": features.BATCH,
              "threads": backbone_threads(), "raw_images_per_s": raw_rates, "cache_images_per_s": cache_rates,
              "ratio": cached / raw, "goal": ">= 0.8"}
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    json_path, md_path = hostinfo.results_paths(Path(__file__).parent / "results", "train-features", date)
    rows = [["raw trunk(batch) loop", f"{raw:.1f}"], ["FeatureCache (resize + normalize + trunk)", f"{cached:.1f}"],
            ["ratio (goal >= 0.8)", f"**{cached / raw:.3f}**"]]
    markdown = (f"# train feature extraction vs raw backbone ({date})\n\n{hostinfo.describe(result['host'])}\n\n"
                f"{args.backbone} at {args.size}px, {len(everything)} images, batch {features.BATCH}, median of "
                f"{args.rounds} alternating rounds; load during the run: {result['contention']}\n\n"
                "| path | images/s |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows) + "\n")
    entry = (f"## train feature extraction ({date})\n\nFeatureCache / raw backbone = **{cached / raw:.3f}** "
             f"(goal >= 0.8), {args.backbone} {args.size}px: [{md_path.name}]({md_path.name}), [{json_path.name}]({json_path.name})\n")
    hostinfo.record(result, json_path, md_path, markdown, entry)
    hostinfo.show(result, args.json, "train feature extraction", ["path", "images/s"], rows, json_path, md_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
