"""Two layers x 5,000 x 512: five Gaussian clusters on a 20-d subspace, plus noise."""

import sys

import numpy as np

rng = np.random.default_rng(0)
N, D, L = 5000, 512, 2
labels = rng.integers(0, 5, N)
centres = rng.normal(size=(5, 20)) * 3
layers = []
for _ in range(L):
    z = centres[labels] + rng.normal(size=(N, 20))
    layers.append((z @ rng.normal(size=(20, D)) + 0.1 * rng.normal(size=(N, D))).astype(np.float32))
np.savez(sys.argv[1] if len(sys.argv) > 1 else "geo.npz", X=np.stack(layers), lab=labels)
