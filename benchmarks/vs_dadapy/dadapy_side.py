"""DADApy's own path on make_data.py's file (run in a venv with dadapy==0.3.4).

Prints the cold and warm wall times; ``--values FILE`` also saves DADApy's results
(TwoNN, GRIDE per scale, ADP cluster count and ARI, neighbourhood overlap, per layer)
for ``idiomlens_side.py --against FILE`` to compare.
"""

import argparse
import time
import warnings

import numpy as np
from dadapy import Data
from sklearn.metrics import adjusted_rand_score

warnings.filterwarnings("ignore")
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("data")
parser.add_argument("--values", help="save DADApy's results here (.npz)")
args = parser.parse_args()
z = np.load(args.data)
X, lab = z["X"], z["lab"]
for run in ("cold", "warm"):
    values = {}
    start = time.perf_counter()
    for layer in range(len(X)):
        d = Data(coordinates=X[layer].astype(np.float64), maxk=100)
        d.compute_distances()
        ids, _, _ = d.return_id_scaling_gride(range_max=100)
        values[f"twonn{layer}"] = d.compute_id_2NN()[0]
        d.set_id(ids[4])
        d.compute_density_kNN(k=16)
        d.compute_clustering_ADP(Z=1.6, halo=False)
        values[f"overlap{layer}"] = d.return_data_overlap(
            coordinates=X[(layer + 1) % len(X)].astype(np.float64), k=30
        )
        values[f"gride{layer}"] = ids
        values[f"n_clusters{layer}"] = d.N_clusters
        values[f"clusters{layer}"] = d.cluster_assignment
    print(f"dadapy {run}: {time.perf_counter() - start:.2f} s")
if args.values:
    for layer in range(len(X)):
        values[f"ari{layer}"] = adjusted_rand_score(lab, values.pop(f"clusters{layer}"))
    np.savez(args.values, **values)
