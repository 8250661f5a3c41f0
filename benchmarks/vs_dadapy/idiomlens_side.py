"""idiomlens's geometry() on make_data.py's file, the same metrics as dadapy_side.py."""

import argparse
import time

import numpy as np
import torch

from idiomlens.representations import Representations
from idiomlens.representations.geometry import geometry

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("data")
parser.add_argument("--threads", type=int, default=torch.get_num_threads())
args = parser.parse_args()
torch.set_num_threads(args.threads)
z = np.load(args.data)
X, lab = z["X"], z["lab"].tolist()
a = Representations.from_tensors(
    {i: torch.tensor(X[i]) for i in range(len(X))}, labels={"label": lab}
)
b = Representations.from_tensors(
    {i: torch.tensor(X[(i + 1) % len(X)]) for i in range(len(X))}, labels={"label": lab}
)
metrics = ["twonn", "gride", "density_clusters", "neighbourhood_overlap"]
for run in ("cold", "warm"):
    start = time.perf_counter()
    geometry(a, other=b, metrics=metrics, max_scale=50, progress=False)
    print(f"idiomlens {run}: {time.perf_counter() - start:.2f} s (threads={args.threads})")
