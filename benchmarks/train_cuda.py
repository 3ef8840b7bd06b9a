"""Training-step throughput on an NVIDIA GPU: gradviz's CUDA step against PyTorch CUDA eager,
measured in the same run on the same device.

Both run the same step: forward, softmax cross-entropy, backward, plain SGD update, on one random
batch that stays on the GPU. gradviz's step also counts correct predictions and returns the loss
to the host every step (what `gradviz train` needs); PyTorch runs asynchronously and is
synchronized once per timed block, its best case. Runs are interleaved (one timed block of each
contender per round) and the report gives medians over rounds, the ratio gradviz / PyTorch, and
the targets of issue 7 (MLP 784-256-128-10: >= 1.0x at batch 128, >= 0.7x at batch 4096;
LeNet-5: >= 0.5x at batch 256).

Needs a real GPU (the simulator would take hours): `pip install -e '.[cuda12]'` (or `[cuda13]`),
and PyTorch with CUDA for the comparison (without it, gradviz's numbers alone are printed).

    python benchmarks/train_cuda.py [--cases mlp:128,mlp:4096,lenet:256] [--rounds 5]
                                    [--steps 50] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

CASES = (("mlp", 128), ("mlp", 4096), ("lenet", 256))
TARGETS = {("mlp", 128): 1.0, ("mlp", 4096): 0.7, ("lenet", 256): 0.5}


def gradviz_step(model: str, batch: int):
    """(run one step, compile seconds, launches per step) of gradviz on the GPU."""
    import gradviz as gv
    from gradviz.compiler.bench import step_feeds
    from gradviz.nn.models import build_model
    from gradviz.nn.optim import SGD
    from gradviz.nn.step import build_train_step

    net = build_model(model, None, 10)
    step = build_train_step(net, batch, net.input_shape, optimizer=SGD())
    started = time.perf_counter()
    runner = gv.compile(step, device="cuda")
    compile_s = time.perf_counter() - started
    feeds = step_feeds(step, net)
    from numba import cuda

    for leaf in (step.x, step.target):   # the batch stays on the GPU, as PyTorch's does here
        feeds[leaf] = cuda.to_device(feeds[leaf])
    first = len(step.graph.outputs) - len(step.new_params)

    def run():
        out = runner(feeds)
        feeds.update(zip(step.params, out[first:]))   # device arrays: nothing is copied
    run()   # uploads the parameters once; from here on only the loss comes back
    return run, lambda: None, compile_s, len(runner.schedule.kernels)


def torch_model(model: str):
    import torch.nn as tnn

    if model == "mlp":
        return tnn.Sequential(tnn.Flatten(), tnn.Linear(784, 256), tnn.ReLU(),
                              tnn.Linear(256, 128), tnn.ReLU(), tnn.Linear(128, 10))
    return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2),
                          tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2), tnn.Flatten(),
                          tnn.Linear(400, 120), tnn.Tanh(), tnn.Linear(120, 84), tnn.Tanh(),
                          tnn.Linear(84, 10))


def torch_step(model: str, batch: int):
    import torch

    net = torch_model(model).cuda()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x = torch.randn(batch, 1, 28, 28, device="cuda")
    y = torch.randint(0, 10, (batch,), device="cuda")

    def run():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    run()
    torch.cuda.synchronize()
    return run, torch.cuda.synchronize, 0.0, None


def _timed(run, sync, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        run()
    sync()
    return (time.perf_counter() - start) / steps


def versions() -> dict:
    import numba
    from numba import cuda

    found = {"python": platform.python_version(), "numba": numba.__version__}
    try:
        from importlib.metadata import version

        found["numba-cuda"] = version("numba-cuda")
    except Exception:  # noqa: BLE001
        pass
    device = cuda.get_current_device()
    found["device"] = device.name.decode() if isinstance(device.name, bytes) else device.name
    found["compute_capability"] = ".".join(map(str, device.compute_capability))
    try:
        found["driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
    except Exception:  # noqa: BLE001 - the version is a nicety
        pass
    try:
        import torch

        found["torch"] = torch.__version__
        found["torch_cuda"] = torch.version.cuda
    except ImportError:
        pass
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(f"{m}:{b}" for m, b in CASES),
                        help="model:batch pairs, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50, help="steps per timed block")
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    args = parser.parse_args(argv)
    from numba import cuda

    from gradviz.compiler.cuda.backend import simulator_enabled

    if simulator_enabled() or not cuda.is_available():
        print("benchmarks/train_cuda.py needs a real CUDA GPU (and NUMBA_ENABLE_CUDASIM unset)",
              file=sys.stderr)
        return 2
    try:
        import torch

        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    info = versions()
    if not args.json:
        print("  ".join(f"{k} {v}" for k, v in info.items()))
        print(f"{'case':<12} {'gradviz/s':>12} {'torch/s':>12} {'ratio':>7} {'target':>7} "
              f"{'launches':>8} {'compile s':>9}")
    for case in args.cases.split(","):
        model, batch = case.split(":")
        batch = int(batch)
        contenders = {"gradviz": gradviz_step(model, batch)}
        if have_torch:
            contenders["torch"] = torch_step(model, batch)
        times = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, (run, sync, _, _) in contenders.items():
                times[name].append(_timed(run, sync, args.steps))
        rate = {name: batch / statistics.median(t) for name, t in times.items()}
        ratio = rate["gradviz"] / rate["torch"] if "torch" in rate else None
        target = TARGETS.get((model, batch))
        _, _, compile_s, launches = contenders["gradviz"]
        row = {"model": model, "batch": batch, "gradviz_samples_per_sec": round(rate["gradviz"]),
               "torch_samples_per_sec": round(rate["torch"]) if "torch" in rate else None,
               "ratio": None if ratio is None else round(ratio, 3), "target": target,
               "launches_per_step": launches, "compile_s": round(compile_s, 2), **info}
        if args.json:
            print(json.dumps(row))
            continue
        torch_rate = f"{rate['torch']:>12,.0f}" if "torch" in rate else f"{'-':>12}"
        shown = f"{ratio:>6.2f}x" if ratio is not None else f"{'-':>7}"
        goal = f"{target:>6.1f}x" if target else f"{'-':>7}"
        print(f"{model}:{batch:<8} {rate['gradviz']:>12,.0f} {torch_rate} {shown} {goal} "
              f"{launches:>8} {compile_s:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
