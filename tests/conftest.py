"""Shared fixtures: tiny real models built here (Keras, ONNX exported from torch, torch module,
TFLite, SavedModel) and a folder of real photos from scikit-image."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

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
    net = TinyNet().eval()
    with torch.no_grad():
        net.fc.weight.mul_(8.0)
    return net


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
    outputs = keras.layers.Dense(CLASSES, kernel_initializer=keras.initializers.RandomNormal(stddev=2.0))(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def keras_file(models_dir) -> Path:
    pytest.importorskip("tensorflow")
    path = models_dir / "tiny.keras"
    _keras_net().save(path)
    return path


@pytest.fixture(scope="session")
def h5_file(models_dir) -> Path:
    pytest.importorskip("tensorflow")
    path = models_dir / "tiny.h5"
    _keras_net().save(path)
    return path


@pytest.fixture(scope="session")
def savedmodel_dir(models_dir) -> Path:
    pytest.importorskip("tensorflow")
    path = models_dir / "tiny_savedmodel"
    _keras_net().export(str(path))
    return path


@pytest.fixture(scope="session")
def tflite_float_file(models_dir, keras_file) -> Path:
    """A float TFLite with no signature defs, like many SDK and AutoML exports."""
    import tensorflow as tf

    import keras

    model = keras.models.load_model(keras_file)
    concrete = tf.function(lambda x: model(x)).get_concrete_function(tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    path = models_dir / "tiny_float.tflite"
    path.write_bytes(converter.convert())
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
