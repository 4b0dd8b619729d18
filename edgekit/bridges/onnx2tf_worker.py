"""Child process for onnx_to_savedmodel: onnx2tf -> tf_keras model -> lean SavedModel.

onnx2tf's own SavedModel/TFLite export traces every Keras layer (minutes for a small CNN);
saving one tf.function that calls the model takes a second and converts identically.
"""
import json
import sys


def main(job_file: str) -> int:
    job = json.loads(open(job_file).read())
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
    module.variables_ = model.variables
    module.serve = tf.function(serve, input_signature=specs, autograph=False)
    tf.saved_model.save(module, job["out"], signatures={"serving_default": module.serve})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
