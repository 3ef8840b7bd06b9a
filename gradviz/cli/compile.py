"""`gradviz compile`: what the compiler makes of an expression: its kernels, or (with
`--emit-source`) the generated Python/Numba source, without compiling anything."""
from __future__ import annotations

import json

import click

from gradviz.cli.common import load_expression, parse_names
from gradviz.errors import GradvizError


def _outputs(expression: str, wrt: str | None, grad: bool):
    from gradviz.core.autodiff import grad as grad_of

    output, variables = load_expression(expression)
    names = parse_names(wrt) or list(variables)
    unknown = [n for n in names if n not in variables]
    if unknown:
        raise GradvizError(f"--wrt names {', '.join(map(repr, unknown))}, which the expression "
                           "does not use")
    outputs = [output]
    if grad and names:
        outputs += grad_of(output, [variables[n] for n in names])
    return outputs, names


@click.command("compile")
@click.argument("expression", required=False)
@click.option("--model", "-m", "model", default=None, metavar="NAME",
              help="Compile the training step of this model instead (as `train` would build it "
                   "for --data), so that a later `train` starts at once.")
@click.option("--data", "-d", "data", default=None, metavar="SPEC",
              help="With --model: the data set that shapes the step (default: digits).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="With --model: the device to compile for.")
@click.option("--optimizer", default=None, metavar="NAME",
              help="With --model: the update rule (default: the data set's, as in train).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --model: the cores the step will use, as `train --threads N` (default: "
                   "every core this process may use); the parallel and the one-core steps are "
                   "different code.")
@click.option("--emit-source", is_flag=True, help="Print the generated kernel source.")
@click.option("--wrt", default=None, help="Variables to differentiate by (default: all).")
@click.option("--no-grad", is_flag=True, help="Compile the value only, no gradients.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the kernel list as JSON.")
def compile_command(expression: str | None, model: str | None, data: str | None, device: str,
                    optimizer: str | None, threads: int | None, emit_source: bool,
                    wrt: str | None, no_grad: bool, dtype: str, as_json: bool) -> None:
    """Compile EXPRESSION (value and gradients) to a vectorized CPU kernel that evaluates it at
    many points at once. Shows which nodes fused into which kernel, or the source.

    With --model M [--data D], compile the training step `gradviz train -m M -d D` runs (into
    the kernel cache; any batch size or layer widths reuse it), to prepare a machine."""
    if model is not None:
        if expression is not None:
            raise GradvizError("give an EXPRESSION or --model, not both")
        return _compile_model(model, data or "digits", device, optimizer, as_json, threads)
    if expression is None:
        raise GradvizError("missing EXPRESSION (or --model NAME)")
    from gradviz.compiler import source
    from gradviz.compiler.cpu.backend import cpu_schedule

    outputs, names = _outputs(expression, wrt, not no_grad)
    if emit_source:
        click.echo(source(outputs, dtype, points=True), nl=False)
        return
    sched = cpu_schedule(outputs)
    kernels = [{"kernel": k.index, "kind": k.kind,
                "nodes": [f"%{sched.ids[n]} {n.op}" for n in k.nodes],
                "stores": [f"%{sched.ids[n]}" for n in k.stores]} for k in sched.kernels]
    if as_json:
        click.echo(json.dumps({"expression": expression, "outputs": ["value",
                               *[f"d/d{n}" for n in names if not no_grad]],
                               "kernels": kernels}))
        return
    for k in kernels:
        click.echo(f"kernel {k['kernel']} ({k['kind']}): {', '.join(k['nodes'])}"
                   f"  -> stores {', '.join(k['stores']) or 'nothing'}")


def _compile_model(model: str, data: str, device: str, optimizer: str | None,
                   as_json: bool, threads: int | None = None) -> None:
    from gradviz.cli.train import ConsoleReporter, report_warm_up
    from gradviz.nn.training import TrainConfig, Trainer

    config = TrainConfig(model=model, data=data, optimizer=optimizer)
    reporter = ConsoleReporter(as_json)
    try:
        report_warm_up(Trainer(config, device=device, reporter=reporter,
                                   threads=threads), config, as_json)
    finally:
        reporter.close()