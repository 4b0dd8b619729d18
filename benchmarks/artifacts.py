"""Shared by the latency scripts in benchmarks/: the EfficientNet-Lite0 fp32 and int8 artifacts
they time, from `make demo`'s output folder or converted once into a cache folder.

    from artifacts import MODEL, find_or_convert      # benchmarks/ is on sys.path
    paths = find_or_convert(Path("out/demo"), CACHE_DIR)   # runtime -> precision -> path
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

MODEL = "efficientnet_lite0"
# runtime -> (target that writes its artifacts, artifact suffix)
RUNTIMES = {"litert": ("tflite", ".tflite"), "openvino": ("openvino", ".xml")}
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgekit" / "bench-artifacts"


def find_or_convert(artifacts_dir: Path, cache_dir: Path = CACHE_DIR,
                    runtimes: tuple[str, ...] = tuple(RUNTIMES)) -> dict[str, dict[str, Path]]:
    """runtime -> precision -> artifact path, for RUNTIMES: ARTIFACTS_DIR's when every artifact
    and its manifest is there, else CACHE_DIR's, converted there first with `edgekit.convert`
    (every runtime's target) when missing."""
    def paths(folder: Path):
        return {rt: {p: folder / f"{MODEL}_{p}{RUNTIMES[rt][1]}" for p in ("fp32", "int8")} for rt in runtimes}

    for folder in (artifacts_dir, cache_dir):
        found = paths(folder)
        if all(p.exists() and Path(str(p) + ".edgekit.json").exists() for v in found.values() for p in v.values()):
            return found
    from edgekit import photos, zoo
    from edgekit.convert import ConvertRequest, convert

    print(f"converting {MODEL} to tflite and openvino (fp32, int8) into {cache_dir} (once) ...", file=sys.stderr)
    model = zoo.load(MODEL)
    calib = photos.write_photo_folder(cache_dir / "photos")
    convert(model.build(), ConvertRequest(targets=[t for t, _ in RUNTIMES.values()], precisions=["fp32", "int8"],
                                          calib=str(calib), out_dir=cache_dir, input_size=model.input_size,
                                          mean=model.mean, std=model.std, bgr=model.color_order == "BGR",
                                          resize=model.resize, task=model.task, labels=model.labels_path,
                                          name=model.name))
    return paths(cache_dir)
