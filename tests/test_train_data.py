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
    # oracle: the pixels that were saved, computed here with numpy, not with the code under test
    source = np.asarray(base).astype(np.float64)
    luma = source @ np.array([0.299, 0.587, 0.114])            # ITU-R BT.601, as Pillow's "L" is
    if mode in ("RGB", "RGBA"):                                 # lossless PNG, opaque alpha
        np.testing.assert_array_equal(rgb, np.asarray(base))
    elif mode in ("L", "LA"):
        np.testing.assert_allclose(rgb[:, :, 0], luma, atol=1)
        assert (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all()
    elif mode == "CMYK":                                        # JPEG: lossy, but the colours must survive
        assert np.abs(rgb.astype(np.float64) - source).mean() < 25
    elif mode in ("I;16", "I", "F"):
        grey = np.round(luma)
        expected = (grey - grey.min()) / (grey.max() - grey.min()) * 255
        np.testing.assert_allclose(rgb[:, :, 0], expected, atol=1.5)


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
    (["{photos}", "-o", "{photos}/out"], "is inside the DATA folder .*would become class folders"),
])
def test_cli_bad_input_exit_2_one_line(tmp_path, photos, args, message):
    root, _ = photos
    one = tmp_path / "one" / "only"
    one.mkdir(parents=True)
    (one / "a.jpg").write_bytes((root / "train" / "face" / "face_000.jpg").read_bytes())
    values = {"missing": tmp_path / "nope", "out": tmp_path / "out", "one": tmp_path / "one",
              "photos": root / "train"}
    result = run_cli("train", *[a.format(**values) for a in args], timeout=120)
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


# ---- review fixes (trainrev): each test pins a bug found by trying `edgekit train` as a user ----

def test_error_branches_bad_input_and_runtime_failure(tmp_path):
    """Bad data or options are BadInput (exit 2); a gate missed after everything is written is a
    RuntimeFailure (exit 1); a stop signal pauses with 128 + its number."""
    from edgekit import interrupt
    from edgekit.errors import BadInput, RuntimeFailure
    from edgekit.train.pipeline import ExportGateFailed, NotPromoted, TrainPaused

    with pytest.raises(BadInput, match="does not exist"):
        data.load(tmp_path / "nope")
    assert issubclass(NotPromoted, RuntimeFailure) and issubclass(ExportGateFailed, RuntimeFailure)
    assert NotPromoted("x").exit_code == ExportGateFailed("x").exit_code == 1
    import signal

    try:
        for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
            interrupt._received = signum
            assert TrainPaused("paused").exit_code == code
    finally:
        interrupt.reset()
    assert TrainPaused("paused").exit_code == 130   # a KeyboardInterrupt without a signal: Ctrl-C


@pytest.mark.parametrize("args, message", [
    (["--precision", "int4"], "target 'tflite' does not offer precision 'int4'"),
    (["--device-profile", "coral-usb-accelerator"], "unknown device profile 'coral-usb-accelerator'. did you mean "
                                                    "'coral-usb-x86'"),
    (["--study", "postgresql://nobody@127.0.0.1:1/db"], "cannot open the study storage .*Connection refused"),
    (["--min-accuracy", "150%"], r"--min-accuracy '150%' is not an accuracy between 0 and 100 %"),
])
def test_options_are_refused_before_anything_is_read_or_written(tmp_path, photos, args, message):
    """Found by hand: these failed only after the search (or the data checks) had written -o."""
    import re

    root, _ = photos
    out = tmp_path / "out"
    result = run_cli("train", str(root / "train"), "-o", str(out), *args, timeout=120)  # a regression trains: fail fast
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()   # nothing half-written: the folder was never made


def test_resume_reuses_the_paused_runs_options_and_refuses_search_changes(tmp_path):
    """Found by hand: the pause message's `--resume` (no other options) silently ran the default
    10-minute budget and measured tflite latency in a study searched on openvino."""
    from edgekit.commands.train import resumed_options
    from edgekit.errors import BadInput
    from edgekit.train.search import save_state

    out = tmp_path / "out"
    out.mkdir()
    paused = {"data": str(tmp_path / "photos"), "out_dir": str(out), "targets": "openvino,tflite", "budget": "30s",
              "backbones": "efficientnet_lite0", "input_sizes": "64", "no_flip": True, "seed": 3,
              "max_latency_ms": None, "resume": False, "as_json": False, "test_dir": None, "compare_dir": None}
    save_state(out, {"budget_s": 30.0, "spent_s": 5.0, "options": paused})
    defaults = {**{k: None for k in paused}, "data": tmp_path / "photos", "out_dir": out, "targets": "tflite",
                "budget": "10m", "no_flip": False, "seed": 0, "resume": True, "as_json": True}
    merged = resumed_options(defaults, explicit={"data", "out_dir", "resume", "as_json"})
    assert (merged["targets"], merged["budget"], merged["backbones"], merged["no_flip"], merged["seed"]) == \
        ("openvino,tflite", "30s", "efficientnet_lite0", True, 3)
    assert merged["as_json"] is True   # this run's own output choice
    # a new budget or limit is fine; a different first target (the latency objective) is not
    looser = resumed_options({**defaults, "budget": "1m", "max_latency_ms": 5.0},
                             explicit={"data", "budget", "max_latency_ms"})
    assert looser["budget"] == "1m" and looser["max_latency_ms"] == 5.0
    with pytest.raises(BadInput, match=r"--resume: --to \(its first target\) differs from the paused run's"):
        resumed_options({**defaults, "targets": "tflite"}, explicit={"data", "targets"})
    with pytest.raises(BadInput, match="--resume: --seed differs"):
        resumed_options({**defaults, "seed": 1}, explicit={"data", "seed"})
    with pytest.raises(BadInput, match="--resume: DATA differs"):
        resumed_options({**defaults, "data": tmp_path / "other"}, explicit={"data"})


def _clusters(rng, centre, count, dim=16):
    return centre + rng.normal(0, 0.3, (count, dim))


def test_label_suspects_survive_a_class_with_one_image(tmp_path, monkeypatch):
    """Found by hand: one class with a single image switched cleanlab off for every class. Oracle:
    a planted swap between two well-separated feature clusters must be the top suspect. Also
    found: cleanlab's default process pool forked after torch's threads existed and hung a run
    for good, so no pool may be made."""
    import multiprocessing

    from PIL import Image

    def no_pool(*args, **kwargs):
        raise AssertionError("a multiprocessing pool was made (fork after torch threads deadlocks)")

    monkeypatch.setattr(multiprocessing, "Pool", no_pool)

    for label, count in (("cat", 20), ("dog", 20), ("lonely", 1)):
        (tmp_path / label).mkdir()
        for i in range(count):
            Image.fromarray(np.full((40, 40, 3), (i * 11 + len(label) * 40) % 255, np.uint8)).save(
                tmp_path / label / f"{i}.png")
    dataset = data.load(tmp_path, test_fraction=0.2, val_fraction=0.2)
    scored = dataset.indices("train") + dataset.indices("val") + dataset.indices("test")
    rng = np.random.default_rng(0)
    centres = {"cat": np.zeros(16), "dog": np.full(16, 3.0), "lonely": np.full(16, -3.0)}
    features = np.stack([_clusters(rng, centres[dataset.samples[i].label], 1)[0] for i in scored]).astype(np.float32)
    planted = next(row for row, i in enumerate(scored) if dataset.samples[i].label == "cat")
    features[planted] = _clusters(rng, centres["dog"], 1)[0]     # a dog filed under cat
    suspects, method = checks.label_suspects(dataset, features, scored)
    assert suspects and suspects[0]["path"] == dataset.samples[scored[planted]].path, suspects
    assert (suspects[0]["given"], suspects[0]["predicted"]) == ("cat", "dog")
    assert "left out (a single image, no out-of-fold score): lonely" in method and "skipped" not in method


def test_csv_without_validation_rows_never_validates_on_training_images(tmp_path, photos):
    """Found by hand: an AutoML CSV with TRAIN and TEST rows only left `val` empty and the search
    scored on the training images. Validation now comes out of the rows marked train."""
    root, _ = photos
    rows = []
    for label in ("face", "non_face"):
        files = sorted((root / "train" / label).glob(f"{label}_*.jpg"))[:10]
        rows += [f"{'TEST' if i < 2 else 'TRAIN'},{f},{label}" for i, f in enumerate(files)]
    (tmp_path / "automl.csv").write_text("\n".join(rows) + "\n")
    dataset = data.load(tmp_path / "automl.csv", val_fraction=0.25)
    for label, counts in dataset.summary()["per_class"].items():
        assert counts == {"train": 6, "val": 2, "test": 2}, (label, counts)


def test_compare_runs_test_images_stay_out_of_the_new_training(tmp_path, photos):
    """Found by hand: retraining on a superset put 10 of 56 previous test images into the new
    training split, so the comparison scored the new model on images it had learnt."""
    import hashlib

    root, _ = photos
    pinned = sorted((root / "train" / "face").glob("face_00*.jpg"))[:3]
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in pinned}
    dataset = data.load(root / "train", keep_in_test=digests)
    split = {s.path: s.split for s in dataset.samples}
    assert all(split[str(p)] == "test" for p in pinned)
    assert "3 test image(s) of the --compare run kept in it" in dataset.test_source
    assert sum(s.split == "test" for s in dataset.samples if s.label == "non_face" and s.usable) >= 2  # others too
    # a layout that puts one in training (here --test DIR): it is excluded, never trained on
    dataset = data.load(root / "train", test_dir=root / "test", keep_in_test=digests)
    report = checks.run_checks(dataset)
    assert all(i not in dataset.indices("train") for i, s in enumerate(dataset.samples) if str(s.path) in map(str, pinned))
    assert {Path(e["path"]).name for e in report.excluded} >= {p.name for p in pinned}


def test_feasibility_follows_this_runs_limits():
    """Found by hand: a resumed study judged trials by the limits stored when they ran, so
    loosening an impossible --max-latency-ms on --resume still picked nothing."""
    import optuna

    from edgekit.train.search import Limits, candidates, choose_picks

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    old = Limits(max_latency_ms=0.01)
    for number, (acc, ms) in enumerate([(0.9, 2.0), (0.95, 4.0)]):
        study.add_trial(optuna.trial.create_trial(
            params={"backbone": "efficientnet_lite0"},
            distributions={"backbone": optuna.distributions.CategoricalDistribution(["efficientnet_lite0"])},
            values=[acc, ms, 5.0], user_attrs={"constraints": old.violations(acc, ms, 5.0)}))
    assert not any(c.feasible for c in candidates(study))            # as stored
    with pytest.raises(EdgekitError, match="rerun with --resume"):
        choose_picks(candidates(study, old), old)
    loose = Limits(max_latency_ms=3.0)
    picks = choose_picks(candidates(study, loose), loose)
    assert picks["best"].val_accuracy == 0.9 and all(p.latency_ms <= 3.0 for p in picks.values())


def test_a_new_study_starts_with_every_backbone_cheapest_first():
    """Found by hand: 77 trials never tried EfficientNet-Lite0, so the 'fastest' pick was Lite1."""
    import optuna

    from edgekit.train.search import Space, enqueue_backbones

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    space = Space(backbones=["efficientnet_lite2", "efficientnet_lite0", "efficientnet_lite1"], sizes=[160, 128])
    enqueue_backbones(study, space)
    enqueue_backbones(study, space)   # a second worker on the same study queues nothing more
    queued = [t.system_attrs["fixed_params"] for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,))]
    assert queued == [{"backbone": f"efficientnet_lite{i}", "input_size": 128, "augment": "none"} for i in range(3)]


def test_finalists_already_tuned_are_not_tuned_again():
    """A run resumed after a stop during export must not add the same fine-tune twice."""
    import optuna

    from edgekit.train.finetune import finetune_finalists
    from edgekit.train.search import Candidate

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.add_trial(optuna.trial.create_trial(
        params={"finetune_depth": 1}, distributions={"finetune_depth": optuna.distributions.CategoricalDistribution([0, 1])},
        values=[0.9, 1.0, 1.0], user_attrs={"stage": "finetune", "parent": 0}))

    class Search:   # only the study is reached when there is nothing left to tune
        pass

    search = Search()
    search.study = study
    pick = Candidate(0, {"backbone": "efficientnet_lite0"}, 0.8, 1.0, 1.0, 1.0, True, "w")
    assert finetune_finalists(search, {"best": pick}, [1], deadline=float("inf")) == "nothing fine-tuned"
    assert len(study.trials) == 1


def test_metrics_match_sklearn_and_leave_undefined_classes_empty():
    """Oracle: scikit-learn's own report; a class without test images has no recall (None, shown
    as a dash in the card), not a recall of 0."""
    from sklearn.metrics import classification_report

    from edgekit.train.card import _num
    from edgekit.train.evaluate import metrics

    targets = np.array([0, 0, 1, 1, 1, 0])
    predicted = np.array([0, 1, 1, 1, 0, 0])
    probabilities = np.eye(3, dtype=np.float32)[predicted] * 0.8 + 0.1
    result = metrics(targets, probabilities, ["a", "b", "never"], [f"{i}.jpg" for i in range(6)])
    oracle = classification_report(targets, predicted, labels=[0, 1], output_dict=True, zero_division=0)
    for i, label in enumerate("ab"):
        for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert result.per_class[label][key] == pytest.approx(oracle[str(i)][name], abs=1e-4)
    assert result.per_class["never"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert _num(None) == "—" and result.accuracy == pytest.approx(4 / 6)
    assert [m["path"] for m in result.misclassified] and len(result.misclassified) == 2


def test_features_use_the_runtime_preprocessing():
    """One home for resize and normalization: the float model's input is edgekit.frames' (the
    runtime's), checked against a plain numpy (pixel - mean) / std of frames' resize."""
    from edgekit.frames import resize
    from edgekit.train.features import prepare

    image = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    expected = ((resize(image, (32, 32), "stretch").astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)
    np.testing.assert_array_equal(prepare(image, 32, (127.0,) * 3, (128.0,) * 3), expected)
