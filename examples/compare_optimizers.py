"""Compare optimizers on one function with `descend`: how many iterations each needs and where
it ends, and a picture of their paths over the contours.

f(w1, w2) = (w1 - 1)**2 + 10*(w2 + 0.5)**2 is a narrow valley with its minimum at (1, -0.5).
Its steep direction has curvature 20, so plain gradient descent diverges above a rate of 0.1;
the table says how many iterations each optimizer needs at the rate given in RUNS (change them
and see: the ranking depends on the rates as much as on the method).

    python examples/compare_optimizers.py OUT_DIR
"""
import sys
from pathlib import Path

from gradviz.lectures.descend import descend, plot_paths

F = "(w1 - 1)**2 + 10*(w2 + 0.5)**2"
START = {"w1": -2.0, "w2": 1.5}
RUNS = [("sgd", 0.09), ("momentum", 0.02), ("rmsprop", 0.05), ("adam", 0.2)]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs = [descend(F, START, optimizer=name, lr=lr, eps=1e-8, max_iter=2000)
            for name, lr in RUNS]
    print(f"minimize {F} from {START}")
    print(f"{'optimizer':10} {'lr':>5} {'iterations':>10}  {'status':10} end point")
    for run in runs:
        end = ", ".join(f"{k}={v:.4f}" for k, v in run.minimum.items())
        print(f"{run.optimizer:10} {run.lr:5g} {len(run.steps):10d}  {run.status:10} {end}")
    plot_paths(runs, str(out / "paths.png"))
    print("wrote", out / "paths.png")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
