"""Check a derivative you derived by hand, before you put it in a custom layer or loss.

The log-cosh loss L(p, t) = log(cosh(p - t)) is smooth like the squared error near the target
and grows like |p - t| far from it. By hand: dL/dp = tanh(p - t). This script

1. proves that claim (SymPy) and tries it at many points (finite differences),
2. refutes a tempting wrong one, 1/cosh(p - t), with a counterexample,
3. compares backprop, finite differences and SymPy for every variable of a small layer that uses
   the loss (gradient_report), and
4. checks every node's local derivative on its own (check_nodes): the tool that names the node
   whose rule is wrong when a custom op's VJP is.

    python examples/check_custom_gradient.py
"""
import sys

import gradviz as gv


def main() -> int:
    p, t = gv.vars("p t")
    loss = gv.log(gv.cosh(p - t))

    right = gv.check_claim(loss, p, gv.tanh(p - t), at={"p": 0.5, "t": 2.0})
    print(f"dL/dp = tanh(p - t): {right.verdict} ({right.points_agreed} points agree; "
          f"SymPy: {right.derivative_text})")

    wrong = gv.check_claim(loss, p, 1 / gv.cosh(p - t), at={"p": 0.5, "t": 2.0})
    ce = wrong.counterexample
    print(f"dL/dp = 1/cosh(p - t): {wrong.verdict} at {ce.point}: claimed {ce.claimed:.4g}, "
          f"actual {ce.actual:.4g}")

    # a one-unit layer with that loss: L = log(cosh(tanh(w*x + b) - t))
    report = gv.gradient_report("log(cosh(tanh(w*x+b) - t))",
                                {"w": 0.7, "x": 1.5, "b": -0.2, "t": 0.3})
    print(report.table())


    w, x, b = gv.vars("w x b")
    nodes = gv.check_nodes(gv.log(gv.cosh(gv.tanh(w * x + b) - t)),
                           {"w": 0.7, "x": 1.5, "b": -0.2, "t": 0.3})
    print(nodes)
    ok = right.verdict == "verified" and wrong.verdict == "refuted" and report.ok and nodes.ok
    print("all checks as expected" if ok else "SOMETHING IS OFF")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
