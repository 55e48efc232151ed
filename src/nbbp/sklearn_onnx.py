"""skl2onnx converters for the scikit-learn drop-ins: after ``register()``,
``skl2onnx.to_onnx`` converts ``nbbp.MLPClassifier`` and ``nbbp.MLPRegressor``, alone or in a
Pipeline, with the outputs of scikit-learn's own MLP converters:

- a classifier: "label" (the class, as ``predict``: int64 for whole-number classes, string for
  text ones) and "probabilities" (as ``predict_proba``; skl2onnx's ZipMap turns them into one
  dict per sample unless the option ``zipmap`` is False);
- a regressor: "variable", shape (n_samples, n_outputs), as ``predict``.

The network is export.py's graph built from ``coefs_`` and ``intercepts_``, computed in the
input's type (float32 for FloatTensorType, float64 for DoubleTensorType).

    import nbbp.sklearn_onnx, skl2onnx
    nbbp.sklearn_onnx.register()
    onx = skl2onnx.to_onnx(pipeline, X[:1].astype(np.float32))

Needs skl2onnx (``pip install "nbbp[onnx]"``).
"""

from __future__ import annotations

import numpy as np

from .export import Layer, _needs, build_layers
from .sklearn import ACTIVATIONS, OUTPUT_LAYERS, MLPClassifier, MLPRegressor


class _ContainerGraph:
    """export.build_layers' graph interface on skl2onnx's scope and container."""

    def __init__(self, scope, container, dtype):
        from onnx import helper

        self.scope, self.container, self.dtype = scope, container, np.dtype(dtype)
        self.proto = helper.np_dtype_to_tensor_dtype(self.dtype)

    def constant(self, hint, array):
        from onnx import TensorProto, helper

        array = np.asarray(array)
        name = self.scope.get_unique_variable_name(hint)
        if array.dtype.kind == "U":
            kind, values = TensorProto.STRING, [s.encode("utf-8") for s in array.ravel()]
        else:
            kind, values = helper.np_dtype_to_tensor_dtype(array.dtype), array.ravel().tolist()
        self.container.add_initializer(name, kind, list(array.shape), values)
        return name

    def node(self, op, inputs, hint, output=None, **attributes):
        output = output or self.scope.get_unique_variable_name(hint)
        self.container.add_node(op, list(inputs), output,
                                name=self.scope.get_unique_operator_name(op), **attributes)
        return output


def _layers(estimator):
    hidden = ACTIVATIONS[estimator.activation]  # scikit-learn's names -> nbbp's
    output = OUTPUT_LAYERS[estimator.out_activation_][0]
    activations = [hidden] * (len(estimator.coefs_) - 1) + [output]
    return [Layer(np.asarray(coef).T, np.asarray(intercept), None, activation, None)
            for coef, intercept, activation in zip(estimator.coefs_, estimator.intercepts_,
                                                    activations)]


def _outputs(scope, operator, container):
    """(graph, name of the output activations) in the input's float type."""
    from skl2onnx.common.data_types import DoubleTensorType

    dtype = np.float64 if isinstance(operator.inputs[0].type, DoubleTensorType) else np.float32
    graph = _ContainerGraph(scope, container, dtype)
    x = graph.node("Cast", [operator.inputs[0].full_name], "input_cast", to=graph.proto)
    return graph, build_layers(graph, _layers(operator.raw_operator), "activation", x)


def _labels(classes):
    """The class labels as an ONNX constant: int64 for whole numbers and booleans, text."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "US":
        return classes.astype(str)
    if classes.dtype.kind == "f" and not np.all(classes == np.round(classes)):
        raise ValueError(f"classes_ {classes.tolist()} are not whole numbers, which an ONNX "
                         "classifier's int64 labels cannot hold: use text or whole labels")
    return classes.astype(np.int64)


def convert_classifier(scope, operator, container):
    estimator = operator.raw_operator
    if getattr(estimator._label_binarizer, "y_type_", "").startswith("multilabel"):
        raise NotImplementedError("converting a multilabel nbbp.MLPClassifier: its labels are "
                                  "an indicator matrix, which skl2onnx's classifier outputs do "
                                  "not hold; export its network with Network.to_onnx")
    graph, output = _outputs(scope, operator, container)
    if estimator.n_outputs_ == 1:  # one sigmoid output: P(classes_[1]); predict_proba's columns
        one = graph.constant("one", np.ones((1, 1), dtype=graph.dtype))
        output = graph.node("Concat", [graph.node("Sub", [one, output], "negative"), output],
                            "probabilities", axis=1)
    graph.node("Identity", [output], "probabilities", output=operator.outputs[1].full_name)
    index = graph.node("ArgMax", [output], "class_index", axis=1, keepdims=0)
    if container.get_options(estimator, dict(nocl=False))["nocl"]:
        graph.node("Cast", [index], "label", output=operator.outputs[0].full_name,
                   to=_needs("onnx").TensorProto.INT64)
    else:
        graph.node("Gather", [graph.constant("classes", _labels(estimator.classes_)), index],
                   "label", output=operator.outputs[0].full_name, axis=0)


def convert_regressor(scope, operator, container):
    graph, output = _outputs(scope, operator, container)
    graph.node("Identity", [output], "variable", output=operator.outputs[0].full_name)


def regressor_shapes(operator):
    """scikit-learn's regressor shape calculator, with the output's width: n_outputs_ (its own
    says 1 for every MLP)."""
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

    calculate_linear_regressor_output_shapes(operator)
    first = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type.shape = [first, operator.raw_operator.n_outputs_]


def register() -> None:
    """Register the converters and shape calculators with skl2onnx (again is harmless)."""
    skl2onnx = _needs("skl2onnx")
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    skl2onnx.update_registered_converter(
        MLPClassifier, "NbbpMLPClassifier", calculate_linear_classifier_output_shapes,
        convert_classifier, options={"zipmap": [True, False, "columns"], "nocl": [True, False]})
    skl2onnx.update_registered_converter(
        MLPRegressor, "NbbpMLPRegressor", regressor_shapes, convert_regressor)
