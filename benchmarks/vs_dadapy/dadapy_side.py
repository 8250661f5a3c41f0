"""DADApy's own path on make_data.py's file (run in a venv with dadapy==0.3.4)."""

import sys
import time
import warnings

import numpy as np
from dadapy import Data

warnings.filterwarnings("ignore")
z = np.load(sys.argv[1])
X = z["X"]
for run in ("cold", "warm"):
    start = time.perf_counter()
    for layer in range(len(X)):
        d = Data(coordinates=X[layer].astype(np.float64), maxk=100)
        d.compute_distances()
        ids, _, _ = d.return_id_scaling_gride(range_max=100)
        d.compute_id_2NN()
        d.set_id(ids[4])
        d.compute_density_kNN(k=16)
        d.compute_clustering_ADP(Z=1.6, halo=False)
        d.return_data_overlap(coordinates=X[(layer + 1) % len(X)].astype(np.float64), k=30)
    print(f"dadapy {run}: {time.perf_counter() - start:.2f} s")
