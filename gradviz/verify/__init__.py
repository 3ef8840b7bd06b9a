"""Is this gradient right? Finite differences (`finite_differences`), SymPy (`symbolic`), proofs
and refutations of a hand-derived derivative (`claims`), per-node checks of a graph's gradient
rules (`node_checks`) and the chain rule written out factor by factor (`explain`)."""
