"""`edgekit train`: a folder of labelled photos in; a searched, checked and verified model out."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ..errors import EdgekitError
from .common import debug_enabled, json_option, names


def parse_duration(value: str) -> float:
    """'90' or '90s', '5m', '1.5h' -> seconds; EdgekitError otherwise."""
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            seconds = float(text[:-1]) * units[text[-1]]
        else:
            seconds = float(text)
    except ValueError:
        raise EdgekitError(f"--budget {value!r} is not a duration", "e.g. --budget 90s, 5m or 1h") from None
    if seconds <= 0:
        raise EdgekitError(f"--budget must be positive, got {value!r}", "e.g. --budget 5m")
    return seconds


def parse_fraction(value: str | None) -> float | None:
    if value is None:
        return None
    text = str(value).strip()
    try:
        number = float(text.rstrip("%"))
    except ValueError:
        raise EdgekitError(f"--min-accuracy {value!r} is not a number", "e.g. 0.9 or 90%") from None
    return number / 100 if text.endswith("%") or number > 1 else number


def _ints(value: str | None, option: str) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(v) for v in names(value)]
    except ValueError:
        raise EdgekitError(f"{option} {value!r} is not a comma-separated list of whole numbers", f"e.g. {option} 1,2") from None


class TerminalReporter:
    """Rich progress bars on a TTY (stage, bar, trials, best value, time left); plain
    'edgekit train: ...' start and end lines on stderr otherwise (CI logs, pipes, --json)."""

    def __init__(self, rich: bool):
        from ..ui import console

        self.err = console(stderr=True)
        self.rich = rich and self.err.is_terminal
        self.progress = None
        self.task = None
        self.name = ""
        self.started = 0.0
        self.stages = 0
        if self.rich:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), _info_column(),
                                     TimeElapsedColumn(), TextColumn("left"), _left_column(),
                                     console=self.err, transient=True)
            self.progress.start()

    def stage(self, name: str, total: float | None = None, deadline: float | None = None) -> None:
        self.name, self.started = name, time.monotonic()
        if self.progress is not None:
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(name, total=total, info="", deadline=deadline)
        elif self.stages:  # the first stage (reading images) may end in a one-line error: no start line
            self.err.print(f"edgekit train: {name} ...", markup=False)
        self.stages += 1

    def advance(self, done: float | None, total: float | None = None, text: str = "") -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=done, total=total, info=text)

    def end(self, summary: str) -> None:
        seconds = time.monotonic() - self.started
        if self.progress is not None:
            self.progress.console.print(f"[green]✓[/] {self.name}: {summary} ({seconds:.0f} s)")
        else:
            self.err.print(f"edgekit train: {self.name} done in {seconds:.0f} s: {summary}", markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]warning:[/] {message}")

    def convert_progress(self):
        return self.progress

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _info_column():
    """The stage's text (trial, best value, what is being extracted); convert's own tasks share
    the bar and carry no such field."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class InfoColumn(ProgressColumn):
        def render(self, task):
            return Text(str(task.fields.get("info", "")))

    return InfoColumn()


def _left_column():
    """Time left: exact from the stage's deadline (the search's budget), else rich's estimate."""
    from rich.progress import ProgressColumn, TimeRemainingColumn
    from rich.text import Text

    class LeftColumn(ProgressColumn):
        estimate = TimeRemainingColumn()

        def render(self, task):
            deadline = task.fields.get("deadline")
            if deadline is None:
                return self.estimate.render(task)
            left = max(0, int(deadline - time.monotonic()))
            return Text(f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}", style="progress.remaining")

    return LeftColumn()


@click.command()
@click.argument("data", type=click.Path(path_type=Path), required=True)
@click.option("-o", "--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Output folder: study, picks, artifacts, report, model card.")
@click.option("--to", "targets", default="tflite", show_default=True,
              help="Comma-separated targets: tflite, edgetpu, openvino, coreml, onnx. The first sets the "
                   "runtime whose latency the search optimizes.")
@click.option("--precision", "precisions", help="Precisions to export (default int8; e.g. fp32,int8).")
@click.option("--test", "test_dir", type=click.Path(path_type=Path), help="Test images as class folders "
              "(default: a stratified share of DATA held out before anything else sees it).")
@click.option("--budget", default="10m", show_default=True,
              help="Wall clock for training: preparing each architecture (latency, features), the trials and "
                   "the finalists' fine-tune (evaluation and export follow): 90s, 5m, 1h.")
@click.option("--trial-timeout", type=float, default=60.0, show_default=True, help="Cap on one trial's head training, seconds.")
@click.option("--max-latency-ms", type=float, help="Hard limit on latency (on the board with --device-profile).")
@click.option("--max-size-mb", type=float, help="Hard limit on model size (fp32 artifact, MB).")
@click.option("--min-accuracy", help="Hard limit on validation accuracy: 0.9 or 90%.")
@click.option("--device-profile", help="Scale host latencies to a board (devices/*.yaml, see `edgekit devices`).")
@click.option("--backbones", help="Backbones to search (default: efficientnet_lite0,efficientnet_lite1,efficientnet_lite2).")
@click.option("--input-sizes", help="Input sizes to search, multiples of 32 (default 128,160,224).")
@click.option("--heads", help="Heads to search: linear, mlp (default both).")
@click.option("--finetune-depths", help="Last blocks to fine-tune on the finalists (default 1,2; 0 = no fine-tune).")
@click.option("--no-crop", is_flag=True, help="Augmentation off: random crops.")
@click.option("--no-rotate", is_flag=True, help="Augmentation off: rotation.")
@click.option("--no-blur", is_flag=True, help="Augmentation off: blur.")
@click.option("--no-exposure", is_flag=True, help="Augmentation off: exposure.")
@click.option("--no-noise", is_flag=True, help="Augmentation off: noise.")
@click.option("--no-flip", is_flag=True, help="Augmentation off: horizontal flip (for left/right classes).")
@click.option("--study", help="Optuna storage URL shared by several workers, e.g. postgresql://user@host/db "
              "(default: study.db in -o).")
@click.option("--study-name", default="edgekit-train", show_default=True, help="Study name inside --study.")
@click.option("--resume", is_flag=True, help="Continue the study in -o (after Ctrl-C) with the budget left.")
@click.option("--max-accuracy-drop", type=float, default=1.0, show_default=True,
              help="Points of test accuracy an artifact may lose against the float model.")
@click.option("--compare", "compare_dir", type=click.Path(path_type=Path),
              help="Previous output folder: promote the new model only if it is better.")
@click.option("--max-class-drop", type=float, default=5.0, show_default=True,
              help="With --compare: points of per-class recall the new model may lose.")
@click.option("--no-export", is_flag=True, help="Search, pick and evaluate, but do not convert.")
@click.option("--test-fraction", type=float, default=0.2, show_default=True,
              help="Share of each class held out as the test split (without --test or a CSV split column).")
@click.option("--val-fraction", type=float, default=0.2, show_default=True,
              help="Share of the remaining images each trial is validated on.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the splits, augmentations and the search sampler.")
@json_option
def train(data, out_dir, targets, precisions, test_dir, budget, trial_timeout, max_latency_ms, max_size_mb,
          min_accuracy, device_profile, backbones, input_sizes, heads, finetune_depths, no_crop, no_rotate, no_blur,
          no_exposure, no_noise, no_flip, study, study_name, resume, max_accuracy_drop, compare_dir, max_class_drop,
          no_export, test_fraction, val_fraction, seed, as_json):
    """Train an image classifier from DATA (class folders, or a CSV of path,label[,split]):
    data checks, a device-aware search, three picks, and every artifact's accuracy after export.

    \b
    Examples:
      edgekit train photos/ -o out/flowers --budget 10m --to tflite,edgetpu,openvino,coreml
      edgekit train photos/ -o out/fast --budget 30m --max-latency-ms 8 --device-profile coral-usb-x86
      edgekit train photos_v2/ -o out/flowers_v2 --compare out/flowers
      edgekit train labels.csv -o out/cars --test test_photos/ --no-flip --json
      edgekit train photos/ -o out/flowers --resume                      # after Ctrl-C
      edgekit train photos/ -o out/w1 --study postgresql://me@db/search  # one of several workers
      edgekit predict out/flowers/best_int8.tflite some.jpg
    """
    from ..train.augment import Augmentations
    from ..train.pipeline import TrainRequest
    from ..train.search import Limits, Space

    space = Space()
    if backbones:
        space.backbones = names(backbones)
    if input_sizes:
        space.sizes = _ints(input_sizes, "--input-sizes")
    if heads:
        space.heads = names(heads)
        bad = [h for h in space.heads if h not in ("linear", "mlp")]
        if bad:
            from ..errors import UnknownNameError

            raise UnknownNameError("head", bad[0], ["linear", "mlp"])
    depths = _ints(finetune_depths, "--finetune-depths")
    if depths is not None:
        space.finetune_depths = [d for d in depths if d > 0]
    request = TrainRequest(
        data=data, out_dir=out_dir, targets=names(targets), precisions=names(precisions) or None, test_dir=test_dir,
        budget_s=parse_duration(budget), trial_timeout_s=trial_timeout, space=space,
        limits=Limits(max_latency_ms, max_size_mb, parse_fraction(min_accuracy)),
        augmentations=Augmentations(not no_crop, not no_rotate, not no_blur, not no_exposure, not no_noise, not no_flip),
        device_profile=device_profile, study=study, study_name=study_name, resume=resume,
        max_accuracy_drop=max_accuracy_drop, compare=compare_dir, max_class_drop=max_class_drop,
        export=not no_export, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed)
    run_and_render(request, as_json)


def run_and_render(request, as_json: bool):
    """Run TrainRequest and print the summary (table or JSON); also used by `edgekit demo --train`."""
    from ..train.pipeline import train as run_train
    from ..ui import console, native_output_captured, print_json
    from ..views.train import render_train

    reporter = TerminalReporter(rich=not as_json)
    failure = None
    try:
        with native_output_captured(not debug_enabled()):
            result = run_train(request, reporter)
    except EdgekitError as exc:
        result = getattr(exc, "result", None)
        failure = exc
    finally:
        reporter.close()
    if result is not None:
        if as_json:
            print_json(result.to_dict())
        else:
            render_train(result, console())
    if failure is not None:
        raise failure
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train())
