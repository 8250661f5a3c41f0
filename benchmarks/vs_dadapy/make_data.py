"""Two layers x 5,000 x 512 (``--n``, ``--dim``): five Gaussian clusters on a 20-d
subspace, plus noise."""

import argparse

import numpy as np

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("out", nargs="?", default="geo.npz")
parser.add_argument("--n", type=int, default=5000)
parser.add_argument("--dim", type=int, default=512)
args = parser.parse_args()
rng = np.random.default_rng(0)
N, D, L = args.n, args.dim, 2
labels = rng.integers(0, 5, N)
centres = rng.normal(size=(5, 20)) * 3
layers = []
for _ in range(L):
    z = centres[labels] + rng.normal(size=(N, 20))
    layers.append((z @ rng.normal(size=(20, D)) + 0.1 * rng.normal(size=(N, D))).astype(np.float32))
np.savez(args.out, X=np.stack(layers), lab=labels)
