"""The lecture's two circuits as a handout: (x + y) * z and the sigmoid neuron, with their
values, gradients and local derivatives drawn, and the backward pass of the first one frame by
frame (open backprop-xyz/index.html and step with the arrow keys or a presenter clicker).

    python examples/handout.py OUT_DIR
"""
import sys
from pathlib import Path

import gradviz as gv
from gradviz.render import draw, steps


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)

    # (x + y) * z at x=-2, y=5, z=-4: f = -12, df/dx = df/dy = z = -4, df/dz = x + y = 3
    x, y, z = gv.vars("x y z")
    f = (x + y).named("q") * z
    at = {"x": -2, "y": 5, "z": -4}
    r = gv.backprop(f, **at)
    print(f"(x+y)*z = {r.value:g}; df/dx = {r.grad(x):g}, df/dy = {r.grad(y):g}, "
          f"df/dz = {r.grad(z):g}")
    draw(f, at, title="(x + y) * z").render(str(out / "xyz.svg"))
    draw(f, at, title="(x + y) * z").render(str(out / "xyz.png"), scale=2)
    frames = steps(f, at, out / "backprop-xyz")
    print(f"{len(frames) - 1} backprop frames in {out / 'backprop-xyz'}")

    # the sigmoid neuron 1 / (1 + exp(-(w0*x0 + w1*x1 + w2))), as the slide draws it
    neuron = gv.parse("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    point = {"w0": 2, "x0": -1, "w1": -3, "x1": -2, "w2": -3}
    r = gv.backprop(neuron, **point)
    grads = ", ".join(f"{name} {r.grad(name):.4f}" for name in point)
    print(f"neuron = {r.value:.4f}; gradients {grads}")
    draw(neuron, point, title="sigmoid neuron").render(str(out / "neuron.svg"))

    for path in sorted(out.iterdir()):
        print("wrote", path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
