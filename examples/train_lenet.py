"""Train LeNet-5 for a few steps on real handwritten digits and draw its training step.

scikit-learn's 1,797 8x8 digits (shipped with it: nothing is downloaded) are scaled up 3x and
padded to LeNet-5's 28x28 input. Each step is one graph: forward pass, loss, backward pass and
the Adam update; the NumPy interpreter runs it (`--device cpu` in `gradviz train` compiles the
same graph to Numba kernels). The picture shows the layers as the model names them (C1, S2, ...,
F6), the backward pass mirrored under the forward one, and one update per parameter group.

    python examples/train_lenet.py OUT_DIR [STEPS]
"""
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from gradviz.nn.models import build_model
from gradviz.nn.module import format_summary
from gradviz.nn.optim import get_optimizer
from gradviz.nn.step import build_train_step, encode_targets, make_runner
from gradviz.render import draw


def digits_28x28(n: int, rng: np.random.Generator):
    digits = load_digits()
    pick = rng.choice(len(digits.images), n, replace=False)
    images = np.kron(digits.images[pick] / 16.0, np.ones((3, 3)))       # 8x8 -> 24x24
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))                   # -> 28x28
    return images[:, None].astype(np.float32), digits.target[pick]


def main(out: Path, steps: int = 8, batch: int = 16) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lenet = build_model("lenet", (1, 28, 28), 10)
    print(format_summary(lenet.summary(), (1, 28, 28)))
    step = build_train_step(lenet, batch, (1, 28, 28), optimizer=get_optimizer("adam"))
    run = make_runner(step, "numpy")

    params = {p: v.astype(p.dtype) for p, v in lenet.init(rng).items()}
    state = {s: np.array(step.initial_state[s.name]) for s in step.state}
    X, y = digits_28x28(steps * batch, rng)
    T = encode_targets(y, 10, "classification", "float32")
    for k in range(steps):
        rows = slice(k * batch, (k + 1) * batch)
        feeds = {step.x: X[rows], step.target: T[rows], step.lr: np.float32(1e-3),
                 **params, **state}
        loss, correct, *rest = run(feeds)
        new_params, new_state = rest[:len(step.params)], rest[len(step.params):]
        params = dict(zip(step.params, new_params))
        state = dict(zip(step.state, new_state))
        print(f"step {k + 1}: loss {float(loss):.4f}, {int(correct)}/{batch} correct")

    title = f"LeNet-5 training step (Adam, batch {batch})"
    diagram = draw(step, collapse=True, title=title)
    diagram.render(str(out / "lenet-step.svg"))
    diagram.render(str(out / "lenet-step.png"))
    print("wrote", out / "lenet-step.svg", "and", out / "lenet-step.png")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:]))
