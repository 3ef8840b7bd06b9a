"""`gradviz bench`: training-step throughput of a model on a device (random data, SGD)."""
from __future__ import annotations

import json

import click


@click.command("bench")
@click.option("--model", "-m", "model", required=True,
              help="A model name (mlp, lenet, cnn, ...).")
@click.option("--batch", type=int, default=128, show_default=True)
@click.option("--steps", type=int, default=50, show_default=True, help="Steps per timed run.")
@click.option("--device", type=click.Choice(["numpy", "cpu", "cuda", "auto"]), default="auto",
              show_default=True,
              help="Where the step runs; auto: cuda when there is a GPU, else the compiled CPU "
                   "step (numpy without the compiler).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="Cores the compiled CPU step may use (default: every core this process may "
                   "use; each call still on one core when that measures faster).")
@click.option("--repeats", type=int, default=5, show_default=True,
              help="Timed runs; the median is reported.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench(model: str, batch: int, steps: int, device: str, threads: int | None, repeats: int,
          as_json: bool) -> None:
    """Time one training step (forward, loss, backward, SGD update) of MODEL at batch size
    BATCH on DEVICE: the median over REPEATS runs of STEPS steps, after one warm-up step."""
    from gradviz.compiler.bench import measure
    from gradviz.nn.step import resolve_device

    device = resolve_device(device)  # a benchmark measures the compiled step where there is one
    result = measure(model, batch, steps, device, threads=threads, repeats=repeats)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{model} on {device}, batch {batch}: {result['samples_per_sec']:,.0f} samples/s, "
               f"{result['step_ms']:.3f} ms/step (compile {result['compile_s']:.2f} s)")
