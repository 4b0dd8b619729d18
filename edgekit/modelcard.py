"""The model card: author, licence, version, descriptions, from a YAML file beside the source
and from `convert` options (options win), validated against the source's tensor names.

File: `<stem>.model_card.yaml` beside the model (for a SavedModel directory `dir/`, beside the
directory: `dir.model_card.yaml`), else `model_card.yaml` in the same folder. Schema (every key
optional; unknown keys are refused so a typo is not silently dropped):

    name: Flower classifier          # default: the artifact's file stem
    description: Five flower species from a phone camera.
    author: Jane Doe <jane@example.com>
    license: Apache-2.0
    version: "1.2.0"                  # a string: YAML would read 1.2 as a number
    inputs:                           # source input name -> description
      image: RGB photo of one flower, any size
    outputs:                          # source output name -> description
      logits: scores for the five species (softmax gives probabilities)

Each target writes it into its format's own metadata (targets/*.py); the manifest keeps it as
`model_card`.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from .errors import EdgekitError
from .manifest import ModelCard, TensorInfo

CARD_SUFFIX = ".model_card.yaml"
FOLDER_CARD = "model_card.yaml"
_TEXT_KEYS = ("name", "description", "author", "license", "version")


def find_card(source_path: Path | None) -> Path | None:
    """The card that belongs to a model file or SavedModel directory, or None."""
    if source_path is None:
        return None
    source_path = Path(source_path)
    own = source_path.with_name(source_path.stem + CARD_SUFFIX)
    if own.is_file():
        return own
    folder = source_path.parent / FOLDER_CARD
    return folder if folder.is_file() else None


def read_card(path: Path) -> ModelCard:
    """Parse and check one card file. Raises EdgekitError (exit 2) on a bad file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EdgekitError(f"model card {path} is not readable YAML ({str(exc).splitlines()[0]})",
                           "fix the file or remove it") from None
    if not isinstance(data, dict):
        raise EdgekitError(f"model card {path} is not a mapping of fields", f"see {FOLDER_CARD} in the README")
    valid = [f.name for f in fields(ModelCard)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise EdgekitError(f"model card {path} has unknown field(s) {', '.join(map(str, unknown))}",
                           f"valid fields: {', '.join(valid)}")
    card = ModelCard()
    for key in _TEXT_KEYS:
        value = data.get(key)
        if value is not None:
            if isinstance(value, (dict, list)):
                raise EdgekitError(f"model card {path}: '{key}' must be text", f"e.g. {key}: \"...\"")
            setattr(card, key, str(value))
    for key in ("inputs", "outputs"):
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise EdgekitError(f"model card {path}: '{key}' must map tensor names to descriptions",
                               f"e.g. {key}:\\n  image: RGB photo")
        setattr(card, key, {str(k): str(v) for k, v in value.items()})
    return card


def parse_descriptions(items: tuple[str, ...] | list[str], option: str) -> dict[str, str]:
    """`NAME=TEXT` items of a repeatable option -> {NAME: TEXT}."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise EdgekitError(f"{option} '{item}' is not NAME=TEXT", f"e.g. {option} image='RGB photo'")
        out[name.strip()] = text.strip()
    return out


def resolve_card(source_path: Path | None, given: ModelCard) -> tuple[ModelCard, Path | None]:
    """The card file's fields overridden by the non-empty fields of `given` (the options). Reads
    no model, so a bad card fails before any slow load. Returns the card and its file."""
    path = find_card(source_path)
    card = read_card(path) if path else ModelCard()
    for key in _TEXT_KEYS:
        if getattr(given, key):
            setattr(card, key, getattr(given, key))
    card.inputs = {**card.inputs, **given.inputs}
    card.outputs = {**card.outputs, **given.outputs}
    return card, path


def check_tensor_names(card: ModelCard, card_file: Path | None, given: ModelCard, input_names: list[str],
                       output_names: list[str]) -> None:
    """Every described tensor must exist in the source. Raises EdgekitError naming the valid ones."""
    for kind, described, names in (("input", card.inputs, input_names), ("output", card.outputs, output_names)):
        unknown = sorted(set(described) - set(names))
        if unknown:
            from_file = [u for u in unknown if u not in getattr(given, f"{kind}s")]
            origin = f" (model card {card_file})" if from_file else ""
            raise EdgekitError(f"the model has no {kind} named {', '.join(repr(u) for u in unknown)}{origin}",
                               f"its {kind}s are: {', '.join(names)}")


def positional(described: dict[str, str], tensors: list[TensorInfo]) -> list[str]:
    """Descriptions in the source's tensor order ('' where none was given)."""
    return [described.get(t.name, "") for t in tensors]


def for_artifact(described: dict[str, str], source: list[TensorInfo], shapes: list[list[int]]) -> list[str]:
    """Descriptions for an artifact's tensors (given by shape, in its order). A source tensor's text
    goes to the artifact tensor at the same position when the element counts agree, else to the
    first unused one that has its element count (converters reorder multi-output models)."""
    out = [""] * len(shapes)
    used: set[int] = set()
    for position, tensor in enumerate(source):
        text = described.get(tensor.name)
        if not text:
            continue
        size = int(np.prod(tensor.shape))
        order = [position, *(j for j in range(len(shapes)) if j != position)]
        match = next((j for j in order if j < len(shapes) and j not in used and int(np.prod(shapes[j])) == size),
                     position if position < len(shapes) and position not in used else None)
        if match is not None:
            out[match] = text
            used.add(match)
    return out
