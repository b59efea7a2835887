"""Prints .npy files for FileCheck: one line per file with name, dtype and
shape, then the values one innermost row per line (floats to 4 decimals).

Usage: print_npy.py FILE.npy...
"""
import sys

import numpy as np

for path in sys.argv[1:]:
    a = np.load(path)
    print(f"{path.rsplit('/', 1)[-1]}: {a.dtype} {list(a.shape)}")
    rows = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
    for row in rows:
        if a.dtype.kind == "f":
            print(" ".join(f"{v:.4f}" for v in row))
        else:
            print(" ".join(str(v) for v in row.tolist()))
