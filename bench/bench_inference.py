"""asv: inference, nbbp against onnxruntime running the same network exported with
``Network.to_onnx`` (informational: nbbp is a training library; this tells a user what serving
the exported model costs). W2 and W4 shapes, float32, batches of 1 and 256, the same thread
count for both. Skipped without onnx and onnxruntime (``pip install "nbbp[onnx]"``).
"""

import timeit
from typing import ClassVar

import numba
import numpy as np

import nbbp

SHAPES = {"W2": (784, 128, 64, 10), "W4": (1024, 1024, 1024, 10)}


class Inference:
    params = (list(SHAPES), [1, 256], ["nbbp", "onnxruntime"])
    param_names: ClassVar[list[str]] = ["workload", "batch", "lib"]
    timer = timeit.default_timer  # wall clock: both run threads

    def setup(self, workload, batch, lib):
        net = nbbp.Network(SHAPES[workload], dtype=np.float32, seed=0)
        self.X = np.random.default_rng(0).standard_normal((batch, net.sizes[0]),
                                                          dtype=np.float32)
        if lib == "nbbp":
            self.run = lambda: net.predict_proba(self.X)
        else:
            try:
                import onnx  # noqa: F401  (to_onnx's)
                import onnxruntime
            except ImportError as error:
                raise NotImplementedError(f"{error.name} is not installed") from None
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = numba.config.NUMBA_NUM_THREADS
            session = onnxruntime.InferenceSession(net.to_onnx().SerializeToString(), options,
                                                   providers=["CPUExecutionProvider"])
            self.run = lambda: session.run(["output"], {"input": self.X})
        self.run()  # compile (nbbp) and warm up (both)

    def time_predict_proba(self, workload, batch, lib):
        self.run()
