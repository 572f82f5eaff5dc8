"""Train the iris classifier that ``iris_onnx.py`` serves and export it to ONNX.

A logistic regression on the iris data set that scikit-learn ships (no download), exported with skl2onnx.
The file it writes, ``examples/iris.onnx`` (about 1 KB), is committed, so that serving it needs only
onnxruntime and numpy; run this again after changing the model:

    python examples/train_iris.py [OUTPUT.onnx]
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

MODEL_PATH = Path(__file__).resolve().parent / "iris.onnx"


def train() -> LogisticRegression:
    """The classifier, fitted on the whole iris data set (deterministic: lbfgs from zeros)."""
    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=1000).fit(x, y)


def export(model: LogisticRegression, path: Path) -> None:
    """Write ``model`` as ONNX: float32 input ``features`` [N, 4]; outputs ``label`` [N] and ``probabilities`` [N, 3]."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, 4]))],
        options={id(model): {"zipmap": False}},  # plain tensors, not a list of dicts per row
        target_opset=17,
    )
    path.write_bytes(onx.SerializeToString())


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL_PATH
    export(train(), out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
