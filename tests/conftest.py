"""Shared fixtures: tiny real models built here (Keras, ONNX exported from torch, torch module,
TFLite, SavedModel) and a folder of real photos from scikit-image."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")
# GNU readline (loaded by pytest's pdb support) exports the terminal's COLUMNS/LINES to every
# child process behind os.environ's back; the CLI honours COLUMNS, so the CLI run in a child
# would lay tables out for 80 columns instead of the 160 it uses in a pipe
for _name in ("COLUMNS", "LINES"):
    if _name not in os.environ:
        os.unsetenv(_name)

SIZE = 32
CLASSES = 10


def _torch_net():
    import torch

    class TinyNet(torch.nn.Module):
        """Conv-ReLU6 classifier; a wide final layer keeps top-1 stable under int8 rounding."""

        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.c2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.fc = torch.nn.Linear(16, CLASSES)

        def forward(self, x):
            x = torch.nn.functional.relu6(self.c1(x))
            x = torch.nn.functional.relu6(self.c2(x))
            return self.fc(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    net = TinyNet()
    images = torch.from_numpy(_photo_batch().transpose(0, 3, 1, 2).copy())
    targets = torch.from_numpy(_photo_classes())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(300):  # a briefly trained classifier: confident, varied top-1 like a real one
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(images), targets).backward()
        optimizer.step()
    return net.eval()


def _photo_classes() -> np.ndarray:
    """Training labels for the tiny classifiers: every view of a photo shares its class."""
    from edgekit.photos import PHOTOS

    return np.array([(i % len(PHOTOS)) % CLASSES for i in range(len(PHOTOS) * 5)])


@functools.lru_cache(maxsize=1)
def _photo_batch() -> np.ndarray:
    """The real photos at the tiny models' input size, normalized as the tests convert them."""
    from edgekit.manifest import Preprocess
    from edgekit.photos import photo_set
    from edgekit.frames import preprocess_image

    pre = Preprocess(input_size=[SIZE, SIZE], mean=[127.5] * 3, std=[127.5] * 3)
    return np.concatenate([preprocess_image(image, pre) for _, image in photo_set()])


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def torch_module():
    pytest.importorskip("torch")
    return _torch_net()


@pytest.fixture(scope="session")
def torchscript_file(torch_module, models_dir) -> Path:
    import torch

    path = models_dir / "tiny.pt"
    torch.jit.trace(torch_module, torch.zeros(1, 3, SIZE, SIZE)).save(str(path))
    return path


@pytest.fixture(scope="session")
def onnx_file(torch_module, models_dir) -> Path:
    """ONNX exported from torch, as most users produce it."""
    pytest.importorskip("onnxscript")
    import torch

    path = models_dir / "tiny.onnx"
    torch.onnx.export(torch_module, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["images"],
                      output_names=["logits"], dynamo=True, external_data=False, opset_version=18)
    return path


def _keras_net():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(CLASSES)(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(_photo_batch(), _photo_classes(), batch_size=1, epochs=10, verbose=0)  # as in _torch_net
    return model


@pytest.fixture(scope="session")
def keras_model():
    pytest.importorskip("tensorflow")
    return _keras_net()


@pytest.fixture(scope="session")
def keras_file(models_dir, keras_model) -> Path:
    path = models_dir / "tiny.keras"
    keras_model.save(path)
    return path


@pytest.fixture(scope="session")
def h5_file(models_dir, keras_model) -> Path:
    path = models_dir / "tiny.h5"
    keras_model.save(path)
    return path


@pytest.fixture(scope="session")
def savedmodel_dir(models_dir, keras_model) -> Path:
    import tensorflow as tf

    path = models_dir / "tiny_savedmodel"
    keras_model.export(str(path), input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)], verbose=False)
    return path


@pytest.fixture(scope="session")
def tflite_float_file(models_dir, savedmodel_dir) -> Path:
    """A float TFLite with no signature defs, like many SDK and AutoML exports."""
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema

    import flatbuffers

    flat = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel_dir)).convert()
    model = schema.ModelT.InitFromPackedBuf(flat, 0)
    model.signatureDefs = []
    builder = flatbuffers.Builder(len(flat) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = models_dir / "tiny_float.tflite"
    path.write_bytes(bytes(builder.Output()))
    return path


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory) -> Path:
    """Real photos (scikit-image ships them): 14 pictures x 5 crops."""
    pytest.importorskip("skimage")
    from edgekit.photos import write_photo_folder

    return write_photo_folder(tmp_path_factory.mktemp("photos"))


@pytest.fixture()
def run_cli():
    """Run the real CLI in-process (click's runner) and return (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    from edgekit.cli import main

    def run(*args: str):
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return run


def rng_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def stream_model(tmp_path_factory, keras_file, photos_dir) -> Path:
    """The tiny Keras classifier as an int8 TFLite, with labels and preprocessing in its manifest
    (the `edgekit run` tests: built once per session)."""
    from edgekit.convert import ConvertRequest, convert
    from edgekit.photos import PHOTOS

    out = tmp_path_factory.mktemp("stream-model")
    labels = out / "labels.txt"
    labels.write_text("\n".join(PHOTOS[:CLASSES]) + "\n")
    request = ConvertRequest(targets=["tflite"], precisions=["int8"], out_dir=out, calib=str(photos_dir),
                             calib_samples=20, verify=False, input_size=[SIZE, SIZE], mean=[127.5], std=[127.5],
                             task="classification", labels=labels, name="tiny")
    return Path(convert(str(keras_file), request).artifacts[0].path)
