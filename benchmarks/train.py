"""Training-step throughput: gradviz's compiled CPU step against its NumPy interpreter, PyTorch
CPU eager (and torch.compile with --torch-compile) and JAX jit, measured in the same run (PyTorch with 2 threads and with 1, each a peer).

Every contender runs the same step: forward, softmax cross-entropy, backward, plain SGD update,
on the same random batch. Runs are interleaved (one timed block of each contender per round), so
a busy machine slows all of them alike; the report gives medians over rounds and ratios to the
best peer. A float32 GEMM (1024^3, NumPy's BLAS, gradviz's thread count) is timed in the same
rounds, and the MLP step's rate is given as a fraction of it (FLOPs per sample: each weight
forward, for its gradient, and for the input gradient except in the first layer: about 4.3 x
parameters, not 6 x, since the first layer holds 85% of them).

PyTorch: `pip install torch==2.13.0` (a local CPU wheel here). JAX is used when importable.

    python benchmarks/train.py [--models mlp,lenet] [--batches 32,128,1024] [--threads 1]
                               [--rounds 7] [--steps 20] [--torch-compile] [--latency ROUNDS]
                               [--json]

`--latency N` adds the first step, in fresh processes: gradviz with an empty kernel cache (cold)
and with the cache that left (warm), JAX's first step (trace + XLA compile + run) and PyTorch's.

`--scaling N` measures threads instead (issue 16): every contender in a fresh process of its
own, the processes alternating, N rounds, medians: gradviz with one thread and with all (its
default), PyTorch eager and JAX jit at their defaults, and a 1024^3 float32 GEMM with one BLAS
thread and with all (the GEMM bound); then the same again with a busy loop burning one core in
another process ("busy").
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

BATCHES = {"mlp": (32, 128, 1024), "lenet": (64, 256)}


# -- contenders: each returns (step function, compile seconds) ----------------------------------
def gradviz_step(model: str, batch: int, device: str, threads: int | None):
    import gradviz as gv
    from gradviz.compiler.bench import step_feeds
    from gradviz.nn.models import build_model
    from gradviz.nn.optim import SGD
    from gradviz.nn.step import build_train_step, make_runner

    net = build_model(model, None, 10)
    step = build_train_step(net, batch, net.input_shape, optimizer=SGD())
    started = time.perf_counter()
    runner = gv.compile(step, threads=threads) if device == "cpu" else make_runner(step, "numpy")
    compile_s = time.perf_counter() - started
    feeds = step_feeds(step, net)
    first = len(step.graph.outputs) - len(step.new_params)

    def run():
        out = runner(feeds)
        if device == "numpy":
            feeds.update(zip(step.params, out[first:]))
    return run, compile_s


def torch_model(model: str):
    import torch.nn as tnn

    if model == "mlp":
        return tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 256), tnn.ReLU(),
                              tnn.Linear(256, 128), tnn.ReLU(), tnn.Linear(128, 10)), (1, 28, 28)
    return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2),
                          tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2), tnn.Flatten(),
                          tnn.Linear(400, 120), tnn.Tanh(), tnn.Linear(120, 84), tnn.Tanh(),
                          tnn.Linear(84, 10)), (1, 28, 28)


def torch_step(model: str, batch: int, threads: int, compiled: bool):
    import torch

    torch.set_num_threads(threads)
    net, shape = torch_model(model)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    loss_fn = torch.nn.functional.cross_entropy

    def train_step():
        torch.set_num_threads(threads)   # contenders alternate, and the setting is global
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss

    started = time.perf_counter()
    fn = torch.compile(train_step) if compiled else train_step
    fn()
    return fn, time.perf_counter() - started


def jax_step(model: str, batch: int):
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)

    def dense(key, a, b):
        return jax.random.normal(key, (a, b)) * (2 / a) ** 0.5, jnp.zeros(b)

    def conv(key, o, c, k):
        return jax.random.normal(key, (o, c, k, k)) * (2 / (c * k * k)) ** 0.5, jnp.zeros(o)

    keys = jax.random.split(key, 8)
    if model == "mlp":
        params = [dense(k, a, b) for k, (a, b) in zip(keys, [(784, 256), (256, 128), (128, 10)])]
    else:   # LeNet-5 as the PyTorch contender: conv 5x5 pad 2, tanh, avg-pool 2, ...
        params = [conv(keys[0], 6, 1, 5), conv(keys[1], 16, 6, 5), dense(keys[2], 400, 120),
                  dense(keys[3], 120, 84), dense(keys[4], 84, 10)]
    x = jax.random.normal(keys[7], (batch, 784) if model == "mlp" else (batch, 1, 28, 28))
    y = jax.nn.one_hot(jnp.arange(batch) % 10, 10)

    def pool(h):
        return jax.lax.reduce_window(h, 0.0, jax.lax.add, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID") / 4

    def forward(ps):
        h = x
        if model == "lenet":
            for (w, b), pad in zip(ps[:2], (2, 0)):
                h = jax.lax.conv_general_dilated(h, w, (1, 1), [(pad, pad), (pad, pad)])
                h = pool(jnp.tanh(h + b[None, :, None, None]))
            h = h.reshape(batch, -1)
            dense_ps, act = ps[2:], jnp.tanh
        else:
            dense_ps, act = ps, jax.nn.relu
        for i, (w, b) in enumerate(dense_ps):
            h = h @ w + b
            if i < len(dense_ps) - 1:
                h = act(h)
        return h

    def loss(ps):
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(forward(ps)) * y, axis=1))

    @jax.jit
    def update(ps):
        grads = jax.grad(loss)(ps)
        return [(w - 0.01 * gw, b - 0.01 * gb) for (w, b), (gw, gb) in zip(ps, grads)]

    state = {"p": params}
    started = time.perf_counter()
    jax.block_until_ready(update(params))
    compile_s = time.perf_counter() - started

    def run():
        state["p"] = update(state["p"])
        jax.block_until_ready(state["p"])
    return run, compile_s


# -- measuring ----------------------------------------------------------------------------------
def gemm_block(n: int = 1024):
    """One float32 n x n GEMM through NumPy's BLAS (limited, with every BLAS in the process, to
    gradviz's thread count when gradviz compiled its step), and its FLOPs."""
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    out = np.empty_like(a)

    def run():
        np.matmul(a, a, out=out)
    return run, 2.0 * n ** 3


def interleaved(contenders: dict, rounds: int) -> dict[str, float]:
    """Median seconds per call of each contender `(function, calls per block)`, timing one block
    of each in turn, `rounds` times, so that a busy machine slows all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (fn, calls) in contenders.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(ts) for name, ts in times.items()}


MLP_SIZES = (784, 256, 128, 10)


def mlp_flops_per_sample() -> int:
    """Multiply-adds x 2 of one MLP training sample: each weight once forward and once for its
    gradient, and once for the input gradient except in the first layer (x needs none)."""
    weights = [a * b for a, b in zip(MLP_SIZES, MLP_SIZES[1:])]
    return 2 * (2 * sum(weights) + sum(weights[1:]))


def run_case(model: str, batch: int, args) -> dict:
    contenders, compile_s = {}, {}
    for name, make in (("gradviz_cpu", lambda: gradviz_step(model, batch, "cpu", args.threads)),
                       ("gradviz_numpy", lambda: gradviz_step(model, batch, "numpy",
                                                              args.threads)),
                       *[(f"torch_eager_{t}t", lambda t=t: torch_step(model, batch, t, False))
                         for t in args.torch_threads],
                       *[(f"torch_compile_{t}t", lambda t=t: torch_step(model, batch, t, True)
                          if args.torch_compile else None) for t in args.torch_threads],
                       ("jax_jit", lambda: jax_step(model, batch))):
        try:
            made = make()
        except ImportError:
            continue
        if made is not None:
            contenders[name], compile_s[name] = made
    gemm, gemm_flops = gemm_block()
    blocks = {name: (fn, max(1, args.steps // 10) if name == "gradviz_numpy" else args.steps)
              for name, fn in contenders.items()}
    blocks["sgemm"] = (gemm, 2)
    per_step = interleaved(blocks, args.rounds)
    peak = gemm_flops / per_step.pop("sgemm") / 1e9
    rates = {k: batch / v for k, v in per_step.items()}
    peers = {k: v for k, v in rates.items() if not k.startswith("gradviz")}
    best = max(peers, key=peers.get) if peers else None
    row = {"model": model, "batch": batch, "samples_per_sec": rates,
           "compile_s": compile_s, "best_peer": best,
           "ratio_to_best_peer": rates["gradviz_cpu"] / peers[best] if best else None,
           "ratio_to_numpy": rates["gradviz_cpu"] / rates["gradviz_numpy"]}
    if model == "mlp":
        flops = mlp_flops_per_sample() * rates["gradviz_cpu"]
        row["gemm_peak_fraction"] = flops / (peak * 1e9)
    row["sgemm_gflops"] = peak
    return row


TORCH_DIGITS = r"""
import time, torch, numpy as np
from sklearn.datasets import load_digits
torch.set_num_threads({threads})
torch.manual_seed(0)
X, y = load_digits(return_X_y=True)
rng = np.random.default_rng(0)
order = rng.permutation(len(X))
X = torch.tensor((X[order] / 16.0 - 0.5) / 0.5, dtype=torch.float32)
y = torch.tensor(y[order])
cut = int(0.8 * len(X))
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                          torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.Adam(net.parameters(), lr=1e-3)
for epoch in range({epochs}):
    perm = torch.randperm(cut)
    for i in range(0, cut, 32):
        idx = perm[i:i + 32]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
        opt.step()
with torch.no_grad():
    print((net(X[cut:]).argmax(1) == y[cut:]).float().mean().item())
"""


def end_to_end(epochs: int, threads: int) -> dict:
    """Digits MLP (64-256-128-10, Adam, batch 32) trained from process start to test accuracy:
    `gradviz train --device cpu` (kernels from the cache after its first run) and a PyTorch
    script doing the same training, each in a fresh process (medians of 3)."""
    import subprocess

    def timed(cmd) -> tuple[float, str]:
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return time.perf_counter() - start, done.stdout.strip().splitlines()[-1]

    gradviz_cmd = [sys.executable, "-m", "gradviz", "train", "-m", "mlp", "-d", "digits",
                   "--epochs", str(epochs), "--device", "cpu", "--label-smoothing", "0",
                   "--json"]   # (plain cross-entropy, as the PyTorch script)
    timed(gradviz_cmd)   # warm the kernel cache, as any second run finds it
    runs = {"gradviz_cpu": [], "torch_script": []}
    accuracy = {}
    for _ in range(3):
        seconds, line = timed(gradviz_cmd)
        runs["gradviz_cpu"].append(seconds)
        accuracy["gradviz_cpu"] = json.loads(line)["test_accuracy"]
        try:
            seconds, line = timed([sys.executable, "-c",
                                   TORCH_DIGITS.format(threads=threads, epochs=epochs)])
        except subprocess.CalledProcessError:
            continue
        runs["torch_script"].append(seconds)
        accuracy["torch_script"] = float(line)
    return {name: {"seconds": statistics.median(ts), "test_accuracy": accuracy[name]}
            for name, ts in runs.items() if ts}


FIRST_STEP = {
    # the default: every core the process may use (the parallel module on a multi-core machine)
    "gradviz_cpu": lambda model, batch: gradviz_step(model, batch, "cpu", None)[1],
    "jax_jit": lambda model, batch: jax_step(model, batch)[1],
    "torch_eager": lambda model, batch: torch_step(model, batch, 1, False)[1],
}


def first_step(contender: str, model: str, batch: int) -> None:
    """In this (fresh) process: seconds from building to the end of the first step (gradviz:
    building and compiling the step graph; JAX: trace, XLA compile and run; PyTorch: one eager
    step), printed as JSON."""
    print(json.dumps({"seconds": FIRST_STEP[contender](model, batch)}))


def latency(model: str, batch: int, repeats: int) -> dict:
    """Medians over `repeats` rounds of fresh processes, alternating: gradviz's compile with an
    empty kernel cache (cold) and with the cache the cold run left (warm), JAX's and PyTorch's
    first step. Each is also timed as a whole process (`..._process`: start, imports, building,
    compiling, the first step and exit), since the first-step clocks start after different
    amounts of set-up (JAX's is after `import jax` and its first arrays, gradviz's before
    Numba is imported)."""
    import subprocess
    import tempfile

    def run(contender: str, cache: str | None = None) -> tuple[float, float] | None:
        env = dict(os.environ, **({"GRADVIZ_CACHE": cache} if cache else {}))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--first-step", contender, model,
                               str(batch)], capture_output=True, text=True, env=env)
        process = time.perf_counter() - started
        if done.returncode != 0:
            return None   # not installed
        return json.loads(done.stdout.strip().splitlines()[-1])["seconds"], process

    times: dict[str, list[float]] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            for name, value in (("gradviz_cold", run("gradviz_cpu", cache)),
                                ("gradviz_warm", run("gradviz_cpu", cache)),
                                ("jax_first_step", run("jax_jit")),
                                ("torch_first_step", run("torch_eager"))):
                if value is not None:
                    times.setdefault(name, []).append(value[0])
                    times.setdefault(name.replace("_first_step", "") + "_process",
                                     []).append(value[1])
    row = {name: statistics.median(ts) for name, ts in times.items()}
    if "jax_first_step" in row:
        row["cold_over_jax"] = row["gradviz_cold"] / row["jax_first_step"]
        row["warm_over_jax"] = row["gradviz_warm"] / row["jax_first_step"]
        row["cold_process_over_jax"] = row["gradviz_cold_process"] / row["jax_process"]
    return {"model": model, "batch": batch, "seconds": row}


SCALING_CONTENDERS = ("gradviz_1t", "gradviz_all", "torch_eager", "jax_jit", "sgemm_1t",
                      "sgemm_all")


def one_contender(contender: str, model: str, batch: int, steps: int) -> None:
    """In this (fresh) process: the median rate of 5 blocks of `steps` calls, printed as JSON
    (samples/s for steps, GFLOP/s for the GEMM)."""
    cpus = _cpus()
    if contender.startswith("sgemm"):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1 if contender == "sgemm_1t" else cpus, "blas"):
            fn, flops = gemm_block()
            fn()
            rate = flops / _median_block(fn, 4) / 1e9
    elif contender.startswith("gradviz"):
        fn = _gradviz_threads(model, batch, 1 if contender == "gradviz_1t" else None)
        rate = batch / _median_block(fn, steps)
    elif contender == "torch_eager":
        import torch

        fn, _ = torch_step(model, batch, torch.get_num_threads(), False)
        rate = batch / _median_block(fn, steps)
    else:
        fn, _ = jax_step(model, batch)
        rate = batch / _median_block(fn, steps)
    print(json.dumps({"rate": rate}))


def _gradviz_threads(model: str, batch: int, threads):
    import gradviz as gv
    from gradviz.compiler.bench import step_feeds
    from gradviz.nn.models import build_model
    from gradviz.nn.optim import SGD
    from gradviz.nn.step import build_train_step

    net = build_model(model, None, 10)
    step = build_train_step(net, batch, net.input_shape, optimizer=SGD())
    runner = gv.compile(step, threads=threads)
    feeds = step_feeds(step, net)
    for _ in range(3):
        runner(feeds)
    return lambda: runner(feeds)


def _median_block(fn, calls: int, blocks: int = 5) -> float:
    fn()
    times = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def scaling(cases, rounds: int, steps: int) -> list[dict]:
    """Rates of SCALING_CONTENDERS, each in its own process, alternating, idle then busy."""
    import subprocess

    rows = []
    for load in ("idle", "busy"):
        burner = None
        if load == "busy":
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for model, batch in cases:
                got: dict[str, list[float]] = {}
                for _ in range(rounds):
                    for name in SCALING_CONTENDERS:
                        done = subprocess.run([sys.executable, __file__, "--one", name, model,
                                               str(batch), str(steps)],
                                              capture_output=True, text=True)
                        if done.returncode == 0:
                            got.setdefault(name, []).append(
                                json.loads(done.stdout.strip().splitlines()[-1])["rate"])
                rates = {k: statistics.median(v) for k, v in got.items()}
                row = {"load": load, "model": model, "batch": batch, "rates": rates,
                       "loadavg": os.getloadavg()[0]}
                row["scaling"] = rates["gradviz_all"] / rates["gradviz_1t"]
                peers = [rates[k] for k in ("torch_eager", "jax_jit") if k in rates]
                if peers:
                    row["all_over_best_peer"] = rates["gradviz_all"] / max(peers)
                if model == "mlp":
                    flops = mlp_flops_per_sample()
                    for k in ("gradviz_1t", "gradviz_all", "torch_eager", "jax_jit"):
                        if k in rates:
                            bound = rates["sgemm_1t" if k == "gradviz_1t" else "sgemm_all"]
                            row[f"{k}_of_gemm_bound"] = flops * rates[k] / (bound * 1e9)
                rows.append(row)
                print(json.dumps(row))
                sys.stdout.flush()
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    return rows


def versions() -> dict:
    import numba

    found = {"python": platform.python_version(), "numpy": np.__version__,
             "numba": numba.__version__}
    for name in ("torch", "jax", "scipy"):
        try:
            found[name] = __import__(name).__version__
        except ImportError:
            pass
    # which OpenBLAS kernels ran (the environment can force them: OPENBLAS_CORETYPE)
    found["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE")
    try:
        import scipy.linalg  # noqa: F401 - loads the BLAS that gradviz's compiled code calls
        from threadpoolctl import threadpool_info
    except ImportError:
        return found
    found["openblas"] = sorted({f"{os.path.basename(i['filepath'])}: {i.get('architecture')}"
                                for i in threadpool_info() if i["internal_api"] == "openblas"})
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lenet")
    parser.add_argument("--batches", default=None, help="comma list (default per model)")
    parser.add_argument("--threads", type=int, default=1, help="gradviz BLAS/Numba threads")
    parser.add_argument("--torch-threads", default="2,1",
                        help="PyTorch thread counts, each a contender (comma list)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--torch-compile", action="store_true")
    parser.add_argument("--end-to-end", type=int, default=0, metavar="EPOCHS",
                        help="also time digits MLP training, process start to result")
    parser.add_argument("--latency", type=int, default=0, metavar="ROUNDS",
                        help="also time the first step in fresh processes: gradviz cold and warm "
                             "cache, JAX, PyTorch (medians of ROUNDS)")
    parser.add_argument("--first-step", nargs=3, metavar=("CONTENDER", "MODEL", "BATCH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--scaling", type=int, default=0, metavar="ROUNDS",
                        help="measure threads instead: gradviz 1 thread and all, PyTorch, JAX, "
                             "GEMM bound, each in its own process, idle and busy")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.first_step:
        contender, model, batch = args.first_step
        return first_step(contender, model, int(batch))
    if args.one:
        contender, model, batch, steps = args.one
        return one_contender(contender, model, int(batch), int(steps))
    if args.scaling:
        cases = [(m, int(b)) for m in filter(None, args.models.split(","))
                 for b in ([int(x) for x in args.batches.split(",")] if args.batches
                           else BATCHES[m])]
        rows = scaling(cases, args.scaling, args.steps)
        print(json.dumps({"machine": {"cpus": _cpus(), "processor": _processor()},
                          "versions": versions(), "date": time.strftime("%Y-%m-%d"),
                          "scaling": rows}))
        return None
    args.torch_threads = [int(t) for t in args.torch_threads.split(",")]
    rows = []
    for model in filter(None, args.models.split(",")):
        batches = ([int(b) for b in args.batches.split(",")] if args.batches
                   else BATCHES[model])
        for batch in batches:
            row = run_case(model, batch, args)
            rows.append(row)
            if not args.json:
                rates = ", ".join(f"{k} {v:,.0f}" for k, v in row["samples_per_sec"].items())
                extra = (f", {row['gemm_peak_fraction']:.0%} of GEMM peak"
                         if "gemm_peak_fraction" in row else "")
                ratio = row["ratio_to_best_peer"]
                print(f"{model} batch {batch}: samples/s {rates}; gradviz/best peer "
                      f"({row['best_peer']}) {ratio:.2f}x" if ratio else "", end="")
                print(f", gradviz/numpy {row['ratio_to_numpy']:.1f}x{extra}; compile "
                      + ", ".join(f"{k} {v:.1f}s" for k, v in row["compile_s"].items()))
                sys.stdout.flush()
    latencies = []
    for model in filter(None, args.models.split(",")) if args.latency else ():
        latencies.append(latency(model, {"mlp": 128, "lenet": 64}.get(model, 64), args.latency))
        if not args.json:
            print(f"{model} batch {latencies[-1]['batch']} first step (s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in latencies[-1]["seconds"].items()))
            sys.stdout.flush()
    e2e = end_to_end(args.end_to_end, min(args.torch_threads)) if args.end_to_end else None
    if e2e and not args.json:
        print("digits MLP end to end:", e2e)
    report = {"end_to_end": e2e, "machine": {"platform": platform.platform(), "cpus": _cpus(),
                          "processor": _processor(), "threads": args.threads,
                          "torch_threads": args.torch_threads},
              "versions": versions(), "date": time.strftime("%Y-%m-%d"), "results": rows,
              "latency": latencies}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"machine: {report['machine']}; versions: {report['versions']}")


def _processor() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    main()
