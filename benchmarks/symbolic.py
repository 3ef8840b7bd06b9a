"""Symbolic-gradient speed (the SymPy issue's targets): not a test, a measurement.

  cli   `gradviz grad` on the slides' sigmoid neuron, end to end in a fresh process (import,
        parse, backprop, finite differences, SymPy formulas and proofs). Target: under 1.5 s.
  mlp   symbolic gradients of a 2-3-1 tanh MLP written as scalars (13 parameters): sympy.diff,
        the backward graph translated, proof per parameter, formulas. Target: under 1 s.

Prints medians over repeats (`--json` for one JSON object).

    python benchmarks/symbolic.py [--repeats 5] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

NEURON = ["grad", "1/(1+exp(-(w0*x0+w1*x1+w2)))", "--at", "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"]


def cli_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gradviz", *NEURON], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def mlp_graph():
    import gradviz as gv

    x = gv.vars("x1 x2")
    hidden = []
    params = []
    for j in range(3):
        w = gv.vars(f"w{j}_1 w{j}_2")
        b = gv.var(f"b{j}")
        params += [*w, b]
        hidden.append(gv.tanh(w[0] * x[0] + w[1] * x[1] + b))
    v = gv.vars("v0 v1 v2")
    c = gv.var("c")
    params += [*v, c]
    out = gv.tanh(v[0] * hidden[0] + v[1] * hidden[1] + v[2] * hidden[2] + c)
    return out, params


def mlp_seconds() -> tuple[float, str]:
    from sympy.core.cache import clear_cache

    from gradviz.verify.symbolic import PROVED, symbolic_gradients

    out, params = mlp_graph()
    clear_cache()  # SymPy caches results; time a cold computation every repeat
    start = time.perf_counter()
    grads = symbolic_gradients(out, params)
    seconds = time.perf_counter() - start
    assert all(g.proof.status == PROVED for g in grads.values())
    return seconds, grads[params[0]].text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import sympy  # noqa: F401  (import once, outside the timed MLP region)

    cli = statistics.median(cli_seconds() for _ in range(args.repeats))
    runs = [mlp_seconds() for _ in range(args.repeats)]
    mlp = statistics.median(s for s, _ in runs)
    result = {"cli_grad_neuron_s": round(cli, 3), "mlp_2_3_1_symbolic_s": round(mlp, 3),
              "python": platform.python_version(), "machine": platform.machine()}
    if args.json:
        print(json.dumps(result))
        return
    print(f"gradviz grad (sigmoid neuron), cold process : {cli:.3f} s   (target < 1.5 s)")
    print(f"symbolic gradients, 2-3-1 tanh MLP (13)     : {mlp:.3f} s   (target < 1 s)")
    print(f"df/dw0_1 = {runs[0][1]}")


if __name__ == "__main__":
    main()
