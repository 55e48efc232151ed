"""Export to ONNX, the format every inference runtime reads (onnxruntime, ONNX.js, Core ML and
TensorRT converters, ML.NET): ``Network.to_onnx``, ``nbbp export`` on the command line, and a
skl2onnx converter for the scikit-learn drop-ins. Needs ``pip install "nbbp[onnx]"`` (onnx;
onnxruntime to run the model, skl2onnx for pipelines); ``import nbbp`` imports none of them.

The graph is the forward pass at inference, layer by layer, as the formulas read:

    z(l) = Gemm(a(l-1), W(l), b(l))           z = a W^T + b (Gemm with transB=1; no C
                                               without a bias); masked weights are zeros in W
    z(l) = BatchNormalization(z(l))            with the running mean and variance (eps 1e-5)
    z(l) = Add(z(l), a(s))                     a skip from layer s, skip="activation"
    a(l) = f(z(l))                             Relu, LeakyRelu(0.01) (float64: Max(z, 0.01 z),
                                               as LeakyRelu's slope is a float32), sigmoid from
                                               Exp(-|z|) (as nbbp's kernel: onnxruntime's
                                               Sigmoid approximates), Tanh, Exp,
                                               Softmax(axis=1), or none (identity)
    a(l) = Add(a(l), a(s))                     a skip from layer s, skip="identity"

in the network's dtype (float32 or float64), with a dynamic batch dimension. Dropout is
training only and not in the graph. Outputs: "output", the output layer's activations (as
``forward`` and ``predict_proba``), and for a classifier "label", as ``predict`` gives it
(ArgMax for cross_entropy, output >= 0.5 for log_loss). With a data contract (a model that
``nbbp train`` saved), the graph first fills and standardizes the raw features as the contract
does, and "label" holds the class names.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from . import persistence
from ._version import __version__
from .batchnorm import EPS as BN_EPS

# opset 13 is the first whose Softmax works on one axis (not on flattened trailing axes)
MIN_OPSET = 13
DEFAULT_OPSET = 17  # read by every onnxruntime since 1.11 (2022)
LEAKY_SLOPE = 0.01
ONNX_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp",
            "leaky_relu": "LeakyRelu", "softmax": "Softmax"}


def _needs(module):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"exporting to ONNX needs {module}, which is not installed: pip "
                          "install 'nbbp[onnx]'") from None


@dataclass(frozen=True)
class Layer:
    """One layer of the inference graph: W of shape (n_out, n_in), b or None, batch
    normalisation (gamma, beta, running mean, running variance) or None, the activation, and
    the layer whose activations a skip adds (0 = the input) or None."""

    W: np.ndarray
    b: np.ndarray | None
    norm: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    activation: str
    skip_from: int | None


def layers_of(net) -> list[Layer]:
    """The layers of a Network, masks applied (a masked weight is 0 in W)."""
    skip_from = {target: source for source, target in net.residual}
    activations = [*net.activation, net.output]
    return [Layer(W * M if M is not None else W.copy(), None if b is None else b.copy(),
                  None if g is None else (g, be, m, v), activations[l], skip_from.get(l + 1))
            for l, (W, b, M, g, be, m, v) in enumerate(zip(
                net.weights, net.biases, net.masks, net.gammas, net.betas, net.running_means,
                net.running_vars))]


class _Graph:
    """Collects nodes and initializers with unique names; ``node`` returns the output name.
    The skl2onnx converter has its own (it adds to skl2onnx's container)."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers, self._count = [], [], 0

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, hint, array):
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, hint, output=None, **attributes):
        from onnx import helper

        output = output or self._name(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=self._name(op),
                                           **attributes))
        return output


def build_layers(graph, layers, skip, x):
    """Add the forward pass of ``layers`` to ``graph`` from input ``x``; returns the output
    activations' name. ``skip`` is "activation" (a skip joins z) or "identity" (it joins a)."""
    dtype = graph.dtype
    a_names = [x]
    for l, layer in enumerate(layers, start=1):
        inputs = [a_names[-1], graph.constant(f"W{l}", layer.W.astype(dtype))]
        if layer.b is not None:
            inputs.append(graph.constant(f"b{l}", layer.b.astype(dtype)))
        z = graph.node("Gemm", inputs, f"z{l}", transB=1)
        if layer.norm is not None:
            gamma, beta, mean, var = (graph.constant(f"{what}{l}", v.astype(dtype)) for what, v
                                      in zip(("gamma", "beta", "mean", "var"), layer.norm))
            z = graph.node("BatchNormalization", [z, gamma, beta, mean, var], f"z{l}_bn",
                           epsilon=BN_EPS)
        if layer.skip_from is not None and skip == "activation":
            z = graph.node("Add", [z, a_names[layer.skip_from]], f"z{l}_skip")
        a = z
        if layer.activation == "leaky_relu" and dtype == np.float64:
            # LeakyRelu's alpha is a float32 attribute, 0.00999999977...: max(z, 0.01 z) keeps
            # float64's 0.01 (the same function: 0.01 z < z exactly when z > 0)
            slope = graph.constant("slope", np.array(LEAKY_SLOPE, dtype=dtype))
            a = graph.node("Max", [z, graph.node("Mul", [z, slope], f"z{l}_slope")], f"a{l}")
        elif layer.activation == "leaky_relu":
            a = graph.node("LeakyRelu", [z], f"a{l}", alpha=LEAKY_SLOPE)
        elif layer.activation == "softmax":
            a = graph.node("Softmax", [z], f"a{l}", axis=1)
        elif layer.activation == "sigmoid":
            a = _sigmoid(graph, z, f"a{l}")
        elif layer.activation != "identity":
            a = graph.node(ONNX_OPS[layer.activation], [z], f"a{l}")
        if layer.skip_from is not None and skip == "identity":
            a = graph.node("Add", [a, a_names[layer.skip_from]], f"a{l}_skip")
        a_names.append(a)
    return a_names[-1]


def _sigmoid(graph, z, hint):
    """sigmoid(z) as nbbp computes it: 1 / (1 + exp(-z)) for z >= 0, e / (1 + e) with e =
    exp(z) below, both from e = exp(-|z|). (onnxruntime's Sigmoid approximates: 17% off at
    z = -15 in float32, and 0 below -17.)"""
    one = graph.constant("one", np.array(1, dtype=graph.dtype))
    zero = graph.constant("zero", np.array(0, dtype=graph.dtype))
    e = graph.node("Exp", [graph.node("Neg", [graph.node("Abs", [z], "abs_z")], "minus_abs_z")],
                   "exp_minus_abs_z")
    top = graph.node("Where", [graph.node("GreaterOrEqual", [z, zero], "z_at_least_0"), one, e],
                     "sigmoid_top")
    return graph.node("Div", [top, graph.node("Add", [one, e], "one_plus_e")], hint)


def _label(graph, output, loss, n_out, name):
    """net.predict in the graph: ArgMax for cross_entropy; output >= 0.5 for log_loss (one
    output: shape (n,))."""
    from onnx import TensorProto

    if loss == "cross_entropy":
        return graph.node("ArgMax", [output], name, output=name, axis=1, keepdims=0)
    half = graph.constant("half", np.array(0.5, dtype=graph.dtype))
    at_least = graph.node("GreaterOrEqual", [output, half], "at_least_half")
    if n_out == 1:
        axes = graph.constant("axis_1", np.array([1], dtype=np.int64))
        at_least = graph.node("Squeeze", [at_least, axes], "one_column")
    return graph.node("Cast", [at_least], name, output=name, to=TensorProto.INT64)


def _opset(opset):
    onnx = _needs("onnx")
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        return min(DEFAULT_OPSET, newest)
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not (
            MIN_OPSET <= opset <= newest):
        raise ValueError(f"opset must be a whole number from {MIN_OPSET} to {newest} (the "
                         f"newest this onnx knows); got {opset!r}")
    return int(opset)


def architecture(net) -> dict:
    """What the metadata records of a network's architecture."""
    return {"sizes": list(net.sizes), "activation": list(net.activation), "output": net.output,
            "loss": net.loss_name, "batch_norm": list(net.batch_norm),
            "residual": [list(pair) for pair in net.residual], "skip": net.skip,
            "dtype": net.dtype.name}


NETWORK_ATTRIBUTES = ("sizes", "weights", "biases", "masks", "gammas", "betas", "running_means",
                      "running_vars", "activation", "output", "loss_name", "residual", "skip",
                      "dtype", "_check_finite_parameters")


def to_onnx(net, path: str | os.PathLike | None = None, opset: int | None = None,
            input_name: str = "input", output_name: str = "output", label_name: str = "label",
            contract=None):
    """The network as an ``onnx.ModelProto``, checked with ``onnx.checker``, and written to
    ``path`` when one is given (atomically: a failed write leaves no partial file).

    Parameters
    ----------
    net : Network
    path : str, path-like or None
    opset : int or None
        The ONNX operator set, from 13; default 17 (or the newest the installed onnx knows).
    input_name, output_name, label_name : str
        The graph's input (shape (batch, sizes[0]), the batch dynamic), its output activations,
        and for a classifier its labels (int64 indices, as ``predict``).
    contract : nbbp.tabular.Contract or None
        A model's data contract (``nbbp.tabular.load``): the graph then takes the raw features
        as float64, in ``contract.features`` order, fills missing (NaN) inputs and
        standardizes as the contract does (in float64, then casts), and labels with the class
        names (strings). The metadata holds it.

    A graph cannot refuse its input as ``predict`` does: a NaN (without a fill) or an inf
    gives NaN outputs, and a label that means nothing. Check the inputs where the model is
    served.
    """
    if not all(hasattr(net, name) for name in NETWORK_ATTRIBUTES):  # (export does not import
        # network, which imports it)
        raise TypeError(f"to_onnx exports an nbbp.Network; got {type(net).__name__}")
    opset = _opset(opset)
    names = [input_name, output_name, label_name]
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != 3:
        raise ValueError(f"input_name, output_name and label_name must be three different, "
                         f"non-empty names; got {names}")
    if contract is not None:
        from ._validation import check_contract_fits

        if not all(hasattr(contract, name) for name in ("features", "target", "classes",
                                                         "mean", "scale", "fill")):
            raise TypeError("contract must be an nbbp.tabular.Contract or None; got "
                            f"{type(contract).__name__}")
        check_contract_fits(net, contract)
    net._check_finite_parameters("export")
    onnx = _needs("onnx")
    from onnx import helper

    elem = helper.np_dtype_to_tensor_dtype(net.dtype)
    graph = _Graph(net.dtype)
    x = input_name if contract is None else _prepared(graph, contract, input_name)
    last = build_layers(graph, layers_of(net), net.skip, x)
    graph.node("Identity", [last], output_name, output=output_name)
    outputs = [helper.make_tensor_value_info(output_name, elem, ["batch", net.sizes[-1]])]
    if net.loss_name in ("cross_entropy", "log_loss"):
        named = contract is not None and contract.classes is not None
        index = _label(graph, output_name, net.loss_name, net.sizes[-1],
                       "class_index" if named else label_name)
        shape: list[str | int] = (["batch"] if net.loss_name == "cross_entropy"
                                  or net.sizes[-1] == 1 else ["batch", net.sizes[-1]])
        label_type = onnx.TensorProto.INT64
        if named:
            classes = graph.constant("classes", np.array(contract.classes, dtype=object))
            graph.node("Gather", [classes, index], label_name, output=label_name, axis=0)
            label_type = onnx.TensorProto.STRING
        outputs.append(helper.make_tensor_value_info(label_name, label_type, shape))
    body = helper.make_graph(
        graph.nodes, "nbbp_network",
        [helper.make_tensor_value_info(input_name, elem if contract is None
                                       else onnx.TensorProto.DOUBLE, ["batch", net.sizes[0]])],
        outputs, graph.initializers)
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="nbbp", producer_version=__version__,
                              doc_string=repr(net))
    # a runtime reads models up to its own IR version: give the lowest this opset allows
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
    metadata = {"nbbp_version": __version__, "nbbp_architecture": json.dumps(architecture(net))}
    if contract is not None:
        metadata["nbbp_data_contract"] = contract.to_json()
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        persistence.write_atomically(path, model.SerializeToString(), ".onnx")
    return model


def _prepared(graph, contract, x):
    """The contract's filling and scaling of raw float64 features, as Contract.inputs computes
    them (in float64: a float32 x - mean loses the digits of features far from 0, such as
    latitudes), then a cast to the network's dtype: x = where(isnan(x), fill, x), then
    x / scale - mean / scale."""
    from onnx import helper

    if contract.fill is not None:
        fill = graph.constant("fill", contract.fill.astype(np.float64))
        x = graph.node("Where", [graph.node("IsNaN", [x], "missing"), fill, x], "filled")
    if contract.mean is not None:
        scaled = graph.node("Div", [x, graph.constant("scale", contract.scale)], "scaled")
        x = graph.node("Sub", [scaled, graph.constant("shift", contract.mean / contract.scale)],
                       "standardized")
    if graph.dtype != np.float64:
        x = graph.node("Cast", [x], "inputs", to=helper.np_dtype_to_tensor_dtype(graph.dtype))
    return x
