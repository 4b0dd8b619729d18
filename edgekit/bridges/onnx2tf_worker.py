"""Child process for onnx_to_savedmodel: onnx2tf -> tf_keras model -> lean SavedModel.

onnx2tf's own SavedModel/TFLite export traces every Keras layer (minutes for a small CNN);
saving one tf.function that calls the model takes a second and converts identically.

The saved function must own every variable it reads. `model.variables` is not all of them:
onnx2tf builds grouped and depthwise ONNX convolutions as Keras Conv1D/Conv2D layers inside its
op functions (onnx2tf/ops/Conv.py, group_conv2d_bias), and those layers' kernels are reachable
from the traced graph but not from the functional model. Saving then failed with "Tried to
export a function which references an 'untracked' resource" (every MobileNet-style float
.tflite through tf2onnx, e.g. MediaPipe's face detector). Tracking the concrete function's own
captured variables fixes it.
"""
import json
import os
import shutil
import sys

NO_ONNXSIM = 3   # exit status: onnxsim is not on PATH (the parent names the package to install)


def main(job_file: str) -> int:
    job = json.loads(open(job_file).read())
    if shutil.which("onnxsim") is None:   # onnx2tf would skip simplification silently, then fail later
        print("Error: onnxsim (onnx2tf's graph simplifier) is not on this process's PATH "
              f"({os.environ.get('PATH', '')}); install edgekit's torch extra in {sys.prefix}")
        return NO_ONNXSIM
    import onnx2tf
    import tensorflow as tf

    shapes = [f"{name}:{','.join(str(d) for d in shape)}" for name, shape in job["inputs"].items()]
    model = onnx2tf.convert(input_onnx_file_path=job["onnx"], output_folder_path="onnx2tf_out",
                            disable_model_save=True, non_verbose=True, overwrite_input_shape=shapes,
                            keep_nwc_or_nhwc_or_ndhwc_input_names=job["keep_nhwc"] or None)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=f"input_{i}") for i, t in enumerate(model.inputs)]
    width = len(str(len(model.outputs) - 1))

    def serve(*inputs):
        result = model(list(inputs) if len(inputs) > 1 else inputs[0])
        result = result if isinstance(result, (list, tuple)) else [result]
        return {f"output_{i:0{width}d}": r for i, r in enumerate(result)}

    module = tf.Module()
    module.serve = tf.function(serve, input_signature=specs, autograph=False)
    captured = module.serve.get_concrete_function().variables
    module.variables_ = list({id(v): v for v in [*model.variables, *captured]}.values())
    tf.saved_model.save(module, job["out"], signatures={"serving_default": module.serve})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
