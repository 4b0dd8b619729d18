"""`edgekit predict` on folders and globs as well as files (the real CLI on the tiny int8 model)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("cv2")


@pytest.fixture()
def shots(tmp_path, photos_dir) -> Path:
    """shots/ with 3 photos, a hidden one, a text file and sub/ with one more photo."""
    photos = sorted(p for p in photos_dir.rglob("*") if p.suffix.lower() in (".jpg", ".png"))[:5]
    root = tmp_path / "shots"
    (root / "sub").mkdir(parents=True)
    for name, photo in zip(["c", "a", "b"], photos):
        shutil.copy(photo, root / (name + photo.suffix))
    shutil.copy(photos[3], root / ".hidden.jpg")
    shutil.copy(photos[4], root / "sub" / "d.jpg")
    (root / "notes.txt").write_text("not an image")
    return root


def images_of(run_cli, model, *specs) -> list[dict]:
    code, out, err = run_cli("predict", model, *specs, "--json")
    assert code == 0, err
    return json.loads(out)["images"]


def test_predict_takes_folders_and_globs(run_cli, stream_model, shots):
    names = sorted(p.name for p in shots.iterdir() if p.is_file() and p.suffix != ".txt"
                   and not p.name.startswith("."))
    folder = images_of(run_cli, stream_model, shots)
    assert [Path(i["image"]).name for i in folder] == names   # images only, by name, no subfolder, no hidden file
    one_by_one = images_of(run_cli, stream_model, *(shots / n for n in names))
    assert [i["classes"] for i in folder] == [i["classes"] for i in one_by_one]

    everything = images_of(run_cli, stream_model, f"{shots}/**/*.jpg")   # quoted: the shell left it alone
    assert sorted(Path(i["image"]).name for i in everything) == sorted(
        [n for n in names if n.endswith(".jpg")] + ["d.jpg"])
    mixed = images_of(run_cli, stream_model, shots / names[0], shots)   # each image once, first mention first
    assert [Path(i["image"]).name for i in mixed] == names


def test_empty_folder_and_unmatched_glob_are_one_line_errors(run_cli, stream_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    code, out, err = run_cli("predict", stream_model, empty)
    assert code == 2 and err.strip().startswith(f"error: folder {empty} has no images. add ") and len(
        err.strip().splitlines()) == 1
    code, out, err = run_cli("predict", stream_model, f"{tmp_path}/*.jpg")
    assert code == 2 and err.strip() == f"error: no file matches '{tmp_path}/*.jpg'. check the pattern, or name the images"
