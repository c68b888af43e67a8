"""An exported tree ensemble (training/onnx_export.py) scored by onnxruntime on one CPU
thread: the server runs one per worker process, and a thread pool per call would only
queue behind the other requests (and costs far more than the trees on small inputs)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


class TreeGraph:
    def __init__(self, graph: bytes, features: int, output: str | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or inputs[0].shape[1] != features:
            raise ValueError(f"the graph takes {[i.shape for i in inputs]}, "
                             f"expected (n, {features})")
        self._input = inputs[0].name
        self._output = output or self._session.get_outputs()[0].name

    def run(self, matrix: np.ndarray) -> np.ndarray:
        """The graph's output for (n, features) rows, computed in float32."""
        (result,) = self._session.run([self._output], {
            self._input: np.ascontiguousarray(matrix, dtype=np.float32)})
        return np.asarray(result)
