"""edgekit train, data side: image modes, class folders and CSV import, splits, data checks with
planted problems, the one-line refusals, picks and the promotion rule. No backbone runs here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("imagehash")

from edgekit.errors import EdgekitError  # noqa: E402
from edgekit.train import checks, data  # noqa: E402
from edgekit.train.images import UnreadableImage, read_rgb  # noqa: E402
from train_fixtures import build_photos, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    return root, build_photos(root, train_per_class=12, test_per_class=5)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"])
def test_every_image_mode_opens_as_rgb(tmp_path, mode):
    from PIL import Image

    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    image = base.convert(mode) if mode not in ("I;16", "I", "F") else \
        Image.fromarray((np.asarray(base.convert("L")).astype(np.float32) * 100).astype(
            {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]))
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode in ("I", "F") else "PNG"
    path = tmp_path / "image"  # no suffix: the format is read from the content
    image.save(path, format=fmt)
    rgb, info = read_rgb(path)
    assert Image.open(path).mode == mode
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert info.format == fmt
    if mode in ("I;16", "I", "F"):  # scaled by its own range: the full 0-255 span is used
        assert rgb.min() == 0 and rgb.max() == 255


def test_alpha_composites_over_grey(tmp_path):
    from PIL import Image

    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    rgb, _ = read_rgb(tmp_path / "clear.png")
    assert (rgb == 128).all()


def test_truncated_and_non_images_are_unreadable(photos):
    _, planted = photos
    with pytest.raises(UnreadableImage, match="truncated"):
        read_rgb(planted["truncated"])
    with pytest.raises(UnreadableImage, match="not an image"):
        read_rgb(planted["not_an_image"])


def test_folder_split_is_stratified_and_repeatable(photos):
    root, _ = photos
    first = data.load(root / "train", test_fraction=0.25, val_fraction=0.25, seed=3)
    again = data.load(root / "train", test_fraction=0.25, val_fraction=0.25, seed=3)
    assert [s.split for s in first.samples] == [s.split for s in again.samples]
    counts = first.summary()["per_class"]
    for label, split in counts.items():
        total = sum(split.values())
        assert split["test"] == round(total * 0.25) or abs(split["test"] - total * 0.25) <= 1
        assert split["val"] >= 1 and split["train"] > split["val"]


def test_checks_find_every_planted_problem(photos):
    root, planted = photos
    dataset = data.load(root / "train", test_dir=root / "test")
    report = checks.run_checks(dataset)
    unreadable = {Path(i["path"]).name: i["reason"] for f in report.by_check("unreadable") for i in f.items}
    assert "truncated" in unreadable["truncated.jpg"]
    assert "notes.jpg" in unreadable
    duplicates = [i for f in report.by_check("duplicate") for i in f.items]
    conflicting = [i for i in duplicates if i["kind"] == "conflicting-labels"]
    assert any({Path(p).name for p in i["paths"]} == {"non_face_004.jpg", "copy_of_non_face_004.jpg"}
               for i in conflicting)
    leaks = [i for i in duplicates if i["kind"] == "leakage"]
    assert any(str(planted["leak"]) in i["paths"] for i in leaks)
    near = [i for f in report.by_check("near-duplicate") for i in f.items if i["kind"] == "leakage"]
    assert any(str(planted["near_duplicate"]) in i["paths"] for i in near)
    excluded = {Path(e["path"]).name for e in report.excluded}
    assert {"leaked_test_image.jpg", "recompressed.jpg"} <= excluded
    assert all(dataset.samples[i].excluded is None for i in dataset.indices("train"))
    modes = {Path(i["path"]).name: i["mode"] for f in report.by_check("modes") for i in f.items}
    assert modes["grey_face.png"] == "L" and modes["cmyk.jpg"] == "CMYK" and modes["sixteen_bit.png"] == "I;16"
    assert modes["alpha.png"] == "RGBA"
    assert "really_a_png.jpg" not in {Path(i["path"]).name for f in report.by_check("unreadable") for i in f.items}
    json.dumps(report.to_dict())  # the report is plain JSON


def test_balance_and_tiny_findings(tmp_path):
    from PIL import Image

    for label, count, side in (("big", 40, 40), ("small", 4, 16)):
        for i in range(count):
            folder = tmp_path / label
            folder.mkdir(exist_ok=True)
            Image.fromarray(np.full((side, side, 3), (i * 5) % 255, np.uint8)).save(folder / f"{i}.png")
    report = checks.run_checks(data.load(tmp_path))
    assert report.by_check("imbalance") and report.by_check("few-images") and report.by_check("tiny")
    assert "small" in report.by_check("few-images")[0].message


def test_csv_import_both_orders(photos, tmp_path):
    root, _ = photos
    faces = sorted((root / "train" / "face").glob("face_*.jpg"))[:6]
    others = sorted((root / "train" / "non_face").glob("non_face_*.jpg"))[:6]
    rows = ["path,label,split"] + [f"{p},face,{'test' if i == 0 else ''}" for i, p in enumerate(faces)] + \
        [f"{p},non_face,{'test' if i == 0 else 'train'}" for i, p in enumerate(others)]
    (tmp_path / "plain.csv").write_text("\n".join(rows) + "\n")
    dataset = data.load(tmp_path / "plain.csv")
    assert dataset.labels == ["face", "non_face"] and dataset.test_source == "CSV split column"
    assert len(dataset.indices("test")) == 2
    automl = [f"TEST,{faces[0]},face", f"UNASSIGNED,{faces[1]},face", f"TRAIN,{faces[2]},face",
              f"VALIDATION,{others[0]},non_face", f"TRAIN,{others[1]},non_face"]
    (tmp_path / "automl.csv").write_text("\n".join(automl) + "\n")
    dataset = data.load(tmp_path / "automl.csv")
    assert [s.split for s in dataset.samples] == ["test", "train", "train", "val", "train"]


@pytest.mark.parametrize("content, message", [
    ("a.jpg\n", r"line 1: expected path,label\[,split\]"),
    ("a.jpg,cat,holdout\n", "line 1: unknown split 'holdout'"),
    ("gs://bucket/a.jpg,cat\n", "remote path; edgekit never downloads"),
    ("", "has no rows"),
])
def test_bad_csv_is_one_line(tmp_path, content, message):
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(EdgekitError, match=message):
        data.load(tmp_path / "labels.csv")


def test_fatal_problems_refuse(tmp_path, photos):
    root, planted = photos
    one = tmp_path / "one"
    (one / "face").mkdir(parents=True)
    (one / "face" / "a.jpg").write_bytes(Path(root / "train" / "face" / "face_000.jpg").read_bytes())
    with pytest.raises(EdgekitError, match=r"fewer than 2 classes \(only 'face'\)"):
        data.load(one)
    broken = tmp_path / "broken"
    (broken / "cat").mkdir(parents=True)
    (broken / "dog").mkdir(parents=True)
    (broken / "cat" / "a.jpg").write_bytes(Path(root / "train" / "face" / "face_000.jpg").read_bytes())
    (broken / "dog" / "b.jpg").write_text("not an image")
    with pytest.raises(EdgekitError, match=r"class 'dog' has no usable training image \(none of its 1 file"):
        data.load(broken)
    (broken / "dog" / "b.jpg").unlink()
    with pytest.raises(EdgekitError, match=r"class 'dog' has no usable training image \(it is empty\)"):
        data.load(broken)


@pytest.mark.parametrize("args, message", [
    (["{missing}", "-o", "{out}"], "training data .* does not exist"),
    (["{one}", "-o", "{out}"], "fewer than 2 classes"),
    (["{photos}", "-o", "{out}", "--budget", "soon"], "--budget 'soon' is not a duration"),
    (["{photos}", "-o", "{out}", "--to", "tflight"], "unknown target 'tflight'. did you mean 'tflite'"),
    (["{photos}", "-o", "{out}", "--input-sizes", "100"], "each must be a multiple of 32"),
    (["{photos}", "-o", "{out}", "--backbones", "resnet50"], "unknown backbone 'resnet50'"),
    (["{photos}", "-o", "{out}", "--resume"], "--resume: .* holds no study to continue"),
    (["{photos}", "-o", "{out}", "--compare", "{missing}"], "holds no train.json"),
    (["{photos}", "-o", "{out}", "--study", "nonsense"], "is not a database URL"),
])
def test_cli_bad_input_exit_2_one_line(tmp_path, photos, args, message):
    root, _ = photos
    one = tmp_path / "one" / "only"
    one.mkdir(parents=True)
    (one / "a.jpg").write_bytes((root / "train" / "face" / "face_000.jpg").read_bytes())
    values = {"missing": tmp_path / "nope", "out": tmp_path / "out", "one": tmp_path / "one",
              "photos": root / "train"}
    result = run_cli("train", *[a.format(**values) for a in args])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    import re

    assert re.search(message, lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "train.json").exists()


def test_picks_and_pareto_front():
    from edgekit.train.search import Candidate, Limits, choose_picks, pareto_front

    def c(n, acc, ms, mb=5.0, feasible=True):
        return Candidate(n, {"backbone": "efficientnet_lite0", "input_size": 128}, acc, ms, ms, mb, feasible, "w")

    items = [c(0, 0.80, 2.0), c(1, 0.90, 3.0), c(2, 0.92, 9.0), c(3, 0.85, 3.5), c(4, 0.99, 50.0, feasible=False)]
    assert [x.number for x in pareto_front([i for i in items if i.feasible])] == [0, 1, 2]
    picks = choose_picks(items, Limits())
    assert (picks["best"].number, picks["fastest"].number, picks["balanced"].number) == (2, 0, 1)
    with pytest.raises(EdgekitError, match="no trial met the limits"):
        choose_picks([c(0, 0.5, 1.0, feasible=False)], Limits(min_accuracy=0.9))


def test_limits_are_constraints():
    from edgekit.train.search import Limits

    limits = Limits(max_latency_ms=5, max_size_mb=10, min_accuracy=0.9)
    assert limits.violations(0.95, 4.0, 9.0) == [-1.0, -1.0, pytest.approx(-0.05)]
    assert all(v > 0 for v in limits.violations(0.5, 6.0, 12.0))


def test_promotion_rule():
    from edgekit.train.compare import decide

    steady = {"a": {"change": 0.0}, "b": {"change": 2.0}}
    assert decide(0.80, 0.85, steady, 5.0)[0]
    promoted, reason = decide(0.80, 0.85, {"a": {"change": -7.5}, "b": {"change": 12.0}}, 5.0)
    assert not promoted and "class 'a' recall drops 7.5 points" in reason
    promoted, reason = decide(0.85, 0.85, steady, 5.0)
    assert not promoted and "not better overall" in reason


def test_durations_and_fractions():
    from edgekit.commands.train import parse_duration, parse_fraction

    assert parse_duration("5m") == 300 and parse_duration("90s") == 90 and parse_duration("1.5h") == 5400
    assert parse_fraction("90%") == 0.9 and parse_fraction("0.75") == 0.75 and parse_fraction("85") == 0.85


def test_search_does_not_start_what_the_budget_left_cannot_prepare(photos, tmp_path, monkeypatch):
    """After a run's first trial, a trial whose architecture is not ready is pruned before it
    starts when its preparation, estimated from this host's measurements, exceeds the time left."""
    import time

    import optuna

    from edgekit.train.augment import Augmentations
    from edgekit.train.backbones import get, relative_cost
    from edgekit.train.features import FeatureCache
    from edgekit.train.latency import LatencyFormat, LatencyTable, Measurement
    from edgekit.train.search import Limits, Search, Space

    monkeypatch.setenv("EDGEKIT_TRAIN_CACHE", str(tmp_path / "latency"))
    root, _ = photos
    dataset = data.load(root / "train", test_dir=root / "test")
    cache = FeatureCache(dataset, tmp_path / "features", Augmentations())
    cache.stats.seconds, cache.stats.cost_units = 2.0, 100.0        # what this host measured so far
    latency = LatencyTable(LatencyFormat("openvino", "openvino"), 2)
    latency.measured["earlier"] = Measurement(1.0, 1000, "openvino", "openvino", "now", seconds=9.0)
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    space = Space(backbones=["efficientnet_lite2"], sizes=[224], augment=["none"])
    search = Search(study, cache, latency, None, space, Limits(), tmp_path / "out", trial_cap_s=60)
    params = {"backbone": "efficientnet_lite2", "input_size": 224, "augment": "none"}
    missing = cache.missing_images(get("efficientnet_lite2"), 224, "none")
    assert missing == len(dataset.indices("train", True) + dataset.indices("val", True) +
                          dataset.indices("test", True))  # nothing extracted yet: every clean image
    expected = missing * relative_cost(get("efficientnet_lite2"), 224) * 0.02 + 9.0   # 2 s / 100 units
    assert search.preparation_estimate_s(params) == pytest.approx(expected)

    search._finished_any, search.deadline = True, time.monotonic() + 5.0   # 5 s left after a first trial
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned):
        search.objective(trial)
    assert trial.user_attrs["failed"].startswith("not started: preparing efficientnet_lite2 at 224px would take ~")
    assert search.skipped_for_budget == 1 and not search.preparations and cache.stats.images == 0


def test_each_augmentation_acts_alone_and_switches_off():
    """Create ML's set; --no-flip keeps left and right apart: no pass ever mirrors the image."""
    from edgekit.train.augment import KINDS, Augmentations, augment, pass_rng

    rng = np.random.default_rng(0)
    image = np.concatenate([np.zeros((40, 30, 3)), np.full((40, 30, 3), 200.0)], axis=1).astype(np.uint8)
    image[5:15, 5:15] = rng.integers(0, 255, (10, 10, 3))  # a textured patch top-left (blur acts on it)
    nothing = Augmentations(**{k: False for k in KINDS})
    assert all(np.array_equal(augment(image, nothing, 1.0, pass_rng(1, i)), image) for i in range(20))
    for kind in KINDS:
        alone = Augmentations(**{k: k == kind for k in KINDS})
        outputs = [augment(image, alone, 1.0, pass_rng(1, i)) for i in range(20)]
        assert any(o.shape != image.shape or not np.array_equal(o, image) for o in outputs), kind
    mirrored = image[:, ::-1]
    only_flip = Augmentations(**{k: k == "flip" for k in KINDS})
    assert any(np.array_equal(augment(image, only_flip, 1.0, pass_rng(1, i)), mirrored) for i in range(20))
    no_flip = Augmentations(flip=False)
    for i in range(40):  # the dark half stays on the left whatever else happens
        out = augment(image, no_flip, 1.0, pass_rng(1, i)).astype(float)
        half = out.shape[1] // 2
        assert out[:, :half].mean() < out[:, half:].mean()
    assert "flip" not in no_flip.key() and no_flip.key() != Augmentations().key()  # its own feature cache
