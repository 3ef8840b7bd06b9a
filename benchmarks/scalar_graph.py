"""Scalar-graph speed: build + forward + backward, gradviz vs micrograd in the same run.

Two workloads, as in the graph-core issue:
  chain  a 10,000-op chain  x -> x*1.0001 + 0.0001 (5,000 of each op), gradient of the end wrt x;
  mlp    micrograd's demo: a 2-16-16-1 ReLU MLP on 100 points, mean hinge loss + 1e-4 L2,
         gradient wrt every parameter (337 of them).

Prints medians over repeats and the ratio micrograd_time / gradviz_time (>1: gradviz faster),
in two modes: "steady" (each library's runs back to back; each pays for collecting its own
earlier runs' garbage) and "collected" (the garbage collector runs before each timed call,
outside the timing). See `measure`.
Install micrograd with `pip install micrograd` to compare; without it only gradviz is timed.

    python benchmarks/scalar_graph.py [--repeats 9] [--json]
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time

import gradviz as gv

try:
    from micrograd.engine import Value
    from micrograd.nn import MLP
except ImportError:  # pragma: no cover - optional comparison
    Value = MLP = None

CHAIN_OPS = 10_000


def gradviz_chain() -> float:
    x = gv.var("x")
    f = x
    for _ in range(CHAIN_OPS // 2):
        f = f * 1.0001 + 0.0001
    return gv.backprop(f, x=0.5).grad(x)


def micrograd_chain() -> float:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 50_000))  # its topo sort is recursive
    x = Value(0.5)
    f = x
    for _ in range(CHAIN_OPS // 2):
        f = f * 1.0001 + 0.0001
    f.backward()
    return x.grad


def make_points(n: int = 100, seed: int = 1):
    rng = random.Random(seed)
    xs = [[rng.uniform(-1.5, 2.5), rng.uniform(-1, 1.5)] for _ in range(n)]
    ys = [1.0 if (a * a + b) > 0.5 else -1.0 for a, b in xs]
    return xs, ys


def initial_weights(sizes=(2, 16, 16, 1), seed: int = 1):
    rng = random.Random(seed)
    return [([[rng.uniform(-1, 1) for _ in range(n_in)] for _ in range(n_out)],
             [0.0] * n_out) for n_in, n_out in zip(sizes, sizes[1:])]


def gradviz_mlp(xs, ys, weights):
    """micrograd's demo loss on a scalar graph: mean hinge loss + 1e-4 * sum of squares."""
    env, layers = {}, []
    for li, (w_rows, b_row) in enumerate(weights):
        ws, bs = [], []
        for j, (row, b) in enumerate(zip(w_rows, b_row)):
            ws.append([gv.param(f"w{li}_{j}_{i}") for i in range(len(row))])
            bs.append(gv.param(f"b{li}_{j}"))
            env.update({w.name: v for w, v in zip(ws[-1], row)})
            env[bs[-1].name] = b
        layers.append((ws, bs))
    losses = []
    for point, y in zip(xs, ys):
        act = [gv.const(v) for v in point]
        for li, (ws, bs) in enumerate(layers):
            out = []
            for row, b in zip(ws, bs):
                s = b
                for w, a in zip(row, act):
                    s = s + w * a
                out.append(gv.relu(s) if li < len(layers) - 1 else s)
            act = out
        losses.append(gv.relu(1 + -y * act[0]))
    data_loss = losses[0]
    for item in losses[1:]:
        data_loss = data_loss + item
    params = [p for ws, bs in layers for row in ws for p in row] + [b for _, bs in layers for b in bs]
    reg = params[0] * params[0]
    for p in params[1:]:
        reg = reg + p * p
    total = data_loss * (1.0 / len(losses)) + 1e-4 * reg
    result = gv.backprop(total, env)
    return result.value, [result.grad(p) for p in params]


def micrograd_mlp(xs, ys, weights):
    model = MLP(2, [16, 16, 1])
    for layer, (w_rows, b_row) in zip(model.layers, weights):
        for neuron, row, b in zip(layer.neurons, w_rows, b_row):
            for w, v in zip(neuron.w, row):
                w.data = v
            neuron.b.data = b
    inputs = [list(map(Value, p)) for p in xs]
    scores = list(map(model, inputs))
    losses = [(1 + -y * s).relu() for y, s in zip(ys, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    total = data_loss + 1e-4 * sum(p * p for p in model.parameters())
    model.zero_grad()
    total.backward()
    return total.data, model.parameters()


def measure(fns: dict, repeats: int, collect: bool) -> dict:
    """Median seconds per function.

    collect=False ("steady"): each function runs `repeats` times back to back, after one
    collection, so each run also pays for reclaiming its own earlier runs' garbage, as a
    training loop would (micrograd's closures form reference cycles that only the cyclic
    collector frees; gradviz's DAG is freed by reference counting). Running them in blocks keeps
    one library's garbage from being collected inside the other's timing.
    collect=True ("collected"): the functions alternate (ABAB...) so load drift hits all alike,
    and the collector runs before each timed call, outside the timing.
    """
    times = {name: [] for name in fns}

    def timed(name, fn):
        start = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - start)

    if collect:
        for _ in range(repeats):
            for name, fn in fns.items():
                gc.collect()
                timed(name, fn)
    else:
        for name, fn in fns.items():
            gc.collect()
            for _ in range(repeats):
                timed(name, fn)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    xs, ys = make_points()
    weights = initial_weights()
    workloads = {
        "chain": {"gradviz": gradviz_chain, "micrograd": micrograd_chain},
        "mlp": {"gradviz": lambda: gradviz_mlp(xs, ys, weights),
                "micrograd": lambda: micrograd_mlp(xs, ys, weights)},
    }
    if Value is None:
        for fns in workloads.values():
            del fns["micrograd"]
    else:
        # same numbers from both, or the comparison means nothing
        assert abs(gradviz_chain() - micrograd_chain()) < 1e-9
        gv_loss, _ = gradviz_mlp(xs, ys, weights)
        mg_loss, _ = micrograd_mlp(xs, ys, weights)
        assert abs(gv_loss - mg_loss) < 1e-9, (gv_loss, mg_loss)
    rows = {}
    for name, fns in workloads.items():
        for mode, collect in (("steady", False), ("collected", True)):
            medians = measure(fns, args.repeats, collect)
            row = {f"{k}_s": v for k, v in medians.items()}
            if "micrograd" in medians:
                row["speedup_vs_micrograd"] = medians["micrograd"] / medians["gradviz"]
            rows[f"{name}/{mode}"] = row
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "repeats": args.repeats}
    if args.json:
        print(json.dumps({"meta": meta, "results": rows}))
        return
    print(f"scalar graphs: build + forward + backward, median of {args.repeats} "
          f"(python {meta['python']})")
    for name, row in rows.items():
        line = f"  {name:16s} gradviz {row['gradviz_s'] * 1e3:8.1f} ms"
        if "micrograd_s" in row:
            line += (f"   micrograd {row['micrograd_s'] * 1e3:8.1f} ms"
                     f"   gradviz {row['speedup_vs_micrograd']:.2f}x as fast")
        print(line)


if __name__ == "__main__":
    main()
