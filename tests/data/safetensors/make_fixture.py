"""Writes the safetensors fixtures read by tests/safetensors.rs, with the reference
implementation (the Python `safetensors` package, numpy API).

    pip install safetensors numpy
    python3 tests/data/safetensors/make_fixture.py

fixture.safetensors: one tensor of each dtype tapeflow has, plus a scalar, with values
that are exact in their dtype so the test can compare them exactly.
unsupported_f64.safetensors: a float64 tensor, which tapeflow must refuse by name.
"""

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

here = Path(__file__).resolve().parent

tensors = {
    # 2-D float32: row-major 0.5 * (i - 2)
    "dense/kernel": (0.5 * (np.arange(6, dtype=np.float32) - 2)).reshape(2, 3),
    # float16 with a value that needs the half format's precision (1/1024 steps near 1)
    "half": np.array([1.0, -2.5, 65504.0, 0.0009765625], dtype=np.float16),
    # int32 including the extremes
    "step": np.array([0, -1, 2147483647, -2147483648, 7], dtype=np.int32),
    # a 0-d scalar
    "scale": np.array(3.25, dtype=np.float32),
    # an empty tensor
    "empty": np.zeros((0, 4), dtype=np.float32),
}
save_file(tensors, str(here / "fixture.safetensors"), metadata={"written_by": "make_fixture.py"})
save_file({"double": np.array([1.0, 2.0], dtype=np.float64)}, str(here / "unsupported_f64.safetensors"))
print("wrote", sorted(tensors))
