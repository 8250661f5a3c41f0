"""idiomlens's geometry() on make_data.py's file, the same metrics as dadapy_side.py.

Prints the cold and warm wall times. ``--separate`` times the metrics as four separate
calls first (they share each layer's graph), then ``geometry()`` on the graphs they left.
``--against FILE`` (from ``dadapy_side.py --values FILE``) also prints the largest
difference from DADApy's results. TwoNN uses ``twonn_fit="linear"``, DADApy's default fit.
"""

import argparse
import time

import numpy as np
import torch

from idiomlens.representations import Representations
from idiomlens.representations.geometry import (
    density_clusters,
    geometry,
    intrinsic_dimension,
    neighbourhood_overlap,
)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("data")
parser.add_argument("--threads", type=int, default=torch.get_num_threads())
parser.add_argument("--against", help="dadapy_side.py --values FILE, to compare with")
parser.add_argument(
    "--separate", action="store_true",
    help="time one call per metric first (they share each layer's graph), then geometry()",
)  # fmt: skip
args = parser.parse_args()
torch.set_num_threads(args.threads)
z = np.load(args.data)
X, lab = z["X"], z["lab"].tolist()
metrics = ["twonn", "gride", "density_clusters", "neighbourhood_overlap"]
for run in ("cold", "warm"):
    # new objects every run: a Representations holds its graphs for later calls
    a = Representations.from_tensors(
        {i: torch.tensor(X[i]) for i in range(len(X))}, labels={"label": lab}
    )
    b = Representations.from_tensors(
        {i: torch.tensor(X[(i + 1) % len(X)]) for i in range(len(X))}, labels={"label": lab}
    )
    start = time.perf_counter()
    if args.separate:  # one call per metric, as DADApy's methods on one Data object
        intrinsic_dimension(a, method="gride", max_scale=50, progress=False)
        intrinsic_dimension(a, twonn_fit="linear", progress=False)
        density_clusters(a, progress=False)
        neighbourhood_overlap(a, b, progress=False)
    result = geometry(a, other=b, metrics=metrics, max_scale=50, twonn_fit="linear", progress=False)
    print(f"idiomlens {run}: {time.perf_counter() - start:.2f} s (threads={args.threads})")
if args.against:
    ref = np.load(args.against)
    df = result.to_dataframe()
    worst: dict[str, float] = {}
    for layer in range(len(X)):
        rows = df[df["layer"] == layer]
        pairs = {
            "id_twonn": ([ref[f"twonn{layer}"]], rows[rows.metric == "id_twonn"].value),
            "id_gride": (ref[f"gride{layer}"], rows[rows.metric == "id_gride"].value),
            "n_clusters": ([ref[f"n_clusters{layer}"]], rows[rows.metric == "n_clusters"].value),
            "ari": ([ref[f"ari{layer}"]], rows[rows.metric == "ari"].value),
            "neighbourhood_overlap": (
                [ref[f"overlap{layer}"]],
                rows[rows.metric == "neighbourhood_overlap"].value,
            ),
        }
        for name, (want, got) in pairs.items():
            diff = float(np.abs(np.asarray(want, float) - got.to_numpy(float)).max())
            worst[name] = max(worst.get(name, 0.0), diff)
    for name, diff in worst.items():
        print(f"  max |idiomlens - dadapy| {name:22s} {diff:.2e}")
