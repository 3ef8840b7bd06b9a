"""Partition a graph into kernels.

A *kernel* is one loop nest (or one library call) of the generated code:

- `elementwise`: a maximal run of elementwise primitives of one shape, fused into one loop. Values
  used only inside the kernel stay in registers; the rest are stored to buffers.
- one kernel per other primitive with a lowering (`matmul`, `conv2d`, pools...), and per `sum`
  or `amax` whose input no elementwise kernel computes; the others are folded into the loop
  over their input, accumulating as it runs (only later kernels may read them).

The view primitives `reshape`, `broadcast_to` and `transpose` cost nothing: they become index
arithmetic in their readers (an `Access`: base buffer plus element strides, 0 along broadcast
axes). A view is *materialized* (copied by an elementwise kernel) only where a reader needs a
layout it cannot index, e.g. a matmul operand that is neither row- nor column-major.

Every buffer is flat (one axis, C order), so a contiguous reshape is the same buffer.

Updates (`{leaf: node}`: a parameter and its next value) are written into the leaf's own array
when that is safe: the node is computed by an elementwise kernel that reads the leaf only at the
index it writes, and every other reader of the leaf can run before that kernel. Otherwise the
new value is copied into the leaf after all kernels ran.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from gradviz.errors import GradvizError
from gradviz.core.ir import Node, toposort

VIEW_OPS = frozenset({"reshape", "broadcast_to", "transpose"})
# Reductions that can ride along in the elementwise loop over their input, accumulating into
# their output as the loop goes (their value is complete only after the loop).
FUSIBLE_REDUCTIONS = frozenset({"sum", "amax"})
LEAF_OPS = frozenset({"var", "param", "const"})


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a C-ordered array of `shape`."""
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


@dataclass(frozen=True)
class Access:
    """How a reader sees a value: element `strides` (one per axis of `shape`) into the flat
    buffer of `base`."""

    base: Node
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    @property
    def contiguous(self) -> bool:
        """True when the value is `base`'s buffer in C order (axes of length 1 do not count)."""
        want = contiguous_strides(self.shape)
        return all(d == 1 or s == w for d, s, w in zip(self.shape, self.strides, want))

    @property
    def uniform(self) -> bool:
        """True when every element is the same one (a broadcast scalar)."""
        return all(d == 1 or s == 0 for d, s in zip(self.shape, self.strides))

    @property
    def transposed(self) -> bool:
        """True for a 2-D value stored column-major: the transpose of a contiguous matrix."""
        return len(self.shape) == 2 and self.strides == (1, self.shape[0])

    @property
    def literal(self) -> bool:
        """True when the value is a scalar constant, written into the code as a number."""
        return self.base.op == "const" and self.base.shape == ()


def own_access(node: Node) -> Access:
    return Access(node, node.shape, contiguous_strides(node.shape))


@dataclass
class Kernel:
    """One loop nest: `kind` is "elementwise" or the primitive of a one-op kernel. `nodes` are
    computed here (topological order); `stores` are the ones written to buffers."""

    index: int
    kind: str
    shape: tuple[int, ...]
    nodes: list[Node] = field(default_factory=list)
    stores: list[Node] = field(default_factory=list)
    deps: set[int] = field(default_factory=set)
    reductions: set[Node] = field(default_factory=set)   # sum/amax nodes folded into the loop

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class Schedule:
    """A graph partitioned into kernels, in execution order, and how every value is reached."""

    order: list[Node]
    outputs: tuple[Node, ...]
    updates: dict[Node, Node]
    kernels: list[Kernel]
    kernel_of: dict[Node, Kernel]
    accesses: dict[Node, Access]
    copies: dict[Node, Access]        # materialized view node -> where it copies from
    inplace: dict[Node, Node]         # node -> the leaf whose array it is written into
    late_updates: list[tuple[Node, Node]]   # (leaf, node) copied after the last kernel
    ids: dict[Node, int] = field(default_factory=dict)   # position in `order`

    def __post_init__(self):
        self.ids = {n: i for i, n in enumerate(self.order)}

    def access(self, node: Node) -> Access:
        return self.accesses.get(node) or own_access(node)

    @property
    def leaves(self) -> list[Node]:
        """The `var`/`param` leaves the compiled function takes, in topological order."""
        return [n for n in self.order if n.op in ("var", "param")]

    @property
    def constants(self) -> list[Node]:
        """Tensor constants (passed to the kernels as arrays; scalars are written as numbers)."""
        return [n for n in self.order if n.op == "const" and n.shape != ()]

    def buffers(self) -> list[Node]:
        """Computed nodes that need a buffer of their own (stored, not written in place)."""
        return [n for k in self.kernels for n in k.stores if n not in self.inplace]

    def reads(self, node: Node) -> list[Access]:
        """Where each operand of a computed node comes from (a materialized view reads its
        source)."""
        if node in self.copies:
            return [self.copies[node]]
        return [self.access(s) for s in node.src]


def buffer_names(sched: Schedule) -> dict[Node, str]:
    """The argument name of every array a generated module reads or writes: `a<id>` for leaves,
    `c<id>` for constants, `b<id>` for buffers; an in-place update uses its leaf's array. Shared
    by the CPU and CUDA generators."""
    names: dict[Node, str] = {}
    for node in sched.leaves:
        names[node] = f"a{sched.ids[node]}"
    for node in sched.constants:
        names[node] = f"c{sched.ids[node]}"
    for node in sched.buffers():
        names[node] = f"b{sched.ids[node]}"
    for node, leaf in sched.inplace.items():
        names[node] = names[leaf]
    return names


def schedule(outputs: Iterable[Node], updates: Mapping[Node, Node] | None = None, *,
             elementwise: Iterable[str], kernels: Mapping[str, Callable],
             backend: str = "CPU", fuse_reductions: bool = True) -> Schedule:
    """Partition the graph computing `outputs` (and the `updates` values) into kernels.

    `elementwise` are the primitives with scalar code; `kernels[op](i, access) -> bool` says
    whether the one-op kernel of `op` can read operand `i` through `access` (else the operand is
    materialized first). Raises GradvizError naming every primitive with no lowering.
    """
    outputs = tuple(outputs)
    updates = dict(updates or {})
    for leaf, new in updates.items():
        if leaf.op not in ("var", "param"):
            raise GradvizError(f"only var/param leaves can be updated, not a {leaf.op} node")
        if leaf.shape != new.shape:
            raise GradvizError(f"update of {leaf.name!r}: shape {new.shape} does not match "
                               f"{leaf.shape}")
    elementwise = frozenset(elementwise)
    order = toposort([*outputs, *updates.values()])
    missing = sorted({n.op for n in order if n.op not in LEAF_OPS | VIEW_OPS
                      and n.op not in elementwise and n.op not in kernels})
    if missing:
        raise GradvizError(f"no {backend} lowering for {', '.join(missing)} "
                           "(add one to gradviz/compiler/cpu/kernels.py)")
    builder = _Builder(order, elementwise, kernels, fuse_reductions)
    builder.materialize(outputs, updates)
    builder.group()
    inplace, late = builder.place_updates(updates)
    kernels_in_order = builder.ordered()
    builder.mark_stores(outputs, updates, inplace)
    return Schedule(order, outputs, updates, kernels_in_order, builder.kernel_of,
                    builder.accesses, builder.copies, inplace, late)


class _Builder:
    def __init__(self, order, elementwise, kernels, fuse_reductions=True):
        self.order = order
        self.fuse_reductions = fuse_reductions and all(op in kernels
                                                       for op in FUSIBLE_REDUCTIONS)
        self.elementwise = elementwise
        self.kernel_ops = kernels
        self.accesses: dict[Node, Access] = {}
        self.copies: dict[Node, Access] = {}
        self.kernels: list[Kernel] = []
        self.kernel_of: dict[Node, Kernel] = {}
        self.ancestors: list[int] = []   # bitset of kernel indices each kernel depends on

    # -- views ----------------------------------------------------------------------------------
    def access(self, node: Node) -> Access:
        if node in self.accesses:
            return self.accesses[node]
        if node.op not in VIEW_OPS or node in self.copies:
            found = own_access(node)
        else:
            found = self._view(node)
        self.accesses[node] = found
        return found

    def _view(self, node: Node) -> Access:
        src = node.src[0]
        inner = self.access(src)
        if node.op == "reshape":
            if not inner.contiguous:
                self.force(src)
                inner = self.access(src)
            return Access(inner.base, node.shape, contiguous_strides(node.shape))
        if node.op == "transpose":
            perm = node.attrs["perm"]
            return Access(inner.base, node.shape, tuple(inner.strides[p] for p in perm))
        lead = len(node.shape) - len(src.shape)
        strides = [0] * lead + [0 if d == 1 and node.shape[lead + i] != 1 else s
                                for i, (d, s) in enumerate(zip(src.shape, inner.strides))]
        return Access(inner.base, node.shape, tuple(strides))

    def force(self, node: Node) -> None:
        """Materialize view `node`: an elementwise kernel copies it into a buffer of its own."""
        if node.op not in VIEW_OPS or node in self.copies:
            return
        self.copies[node] = self.access(node)
        self.accesses[node] = own_access(node)

    def materialize(self, outputs, updates) -> None:
        # every access is settled here: one found later could materialize a view whose place
        # in the order grouping has already passed
        for node in self.order:
            accepts = self.kernel_ops.get(node.op)
            if accepts is None or node.op in self.elementwise:
                for s in node.src:
                    self.access(s)
                continue
            for i, s in enumerate(node.src):
                if not accepts(i, self.access(s)):
                    self.force(s)
        for node in (*outputs, *updates.values()):
            if node.op in VIEW_OPS and not self.access(node).contiguous:
                self.force(node)
            else:
                self.access(node)

    # -- grouping -------------------------------------------------------------------------------
    def _reads(self, node: Node) -> list[Access]:
        if node in self.copies:
            return [self.copies[node]]
        return [self.access(s) for s in node.src]

    def _deps(self, node: Node) -> set[int]:
        found = set()
        for a in self._reads(node):
            k = self.kernel_of.get(a.base)
            if k is not None:
                found.add(k.index)
        return found

    def _new_kernel(self, kind: str, shape) -> Kernel:
        k = Kernel(len(self.kernels), kind, tuple(shape))
        self.kernels.append(k)
        self.ancestors.append(0)
        return k

    def _add_deps(self, k: Kernel, deps: set[int]) -> None:
        deps = deps - {k.index}
        if not deps - k.deps:
            return
        k.deps |= deps
        gained = 0
        for d in deps:
            gained |= (1 << d) | self.ancestors[d]
        bit = 1 << k.index
        self.ancestors[k.index] |= gained
        for other in self.kernels:
            if self.ancestors[other.index] & bit:
                self.ancestors[other.index] |= gained

    def _depends(self, k: int, on: int) -> bool:
        return bool(self.ancestors[k] >> on & 1)

    def _can_join(self, k: Kernel, node: Node, deps: set[int]) -> bool:
        shape = node.src[0].shape if node.op in FUSIBLE_REDUCTIONS else node.shape
        if k.kind != "elementwise" or k.shape != shape:
            return False
        for a in self._reads(node):
            if self.kernel_of.get(a.base) is k and (not a.contiguous or a.base in k.reductions):
                return False  # would read another iteration's value, or an unfinished sum
        return not any(self._depends(d, k.index) for d in deps if d != k.index)

    def group(self) -> None:
        for node in self.order:
            if node.op in LEAF_OPS or (node.op in VIEW_OPS and node not in self.copies):
                continue
            deps = self._deps(node)
            if node.op in self.elementwise or node in self.copies:
                target = None
                for d in sorted(deps, reverse=True):
                    if self._can_join(self.kernels[d], node, deps):
                        target = self.kernels[d]
                        break
                if target is None:
                    target = self._new_kernel("elementwise", node.shape)
            else:
                target = None
                if node.op in FUSIBLE_REDUCTIONS and self.fuse_reductions:
                    for d in sorted(deps, reverse=True):
                        if self._can_join(self.kernels[d], node, deps):
                            target = self.kernels[d]
                            target.reductions.add(node)
                            break
                if target is None:
                    target = self._new_kernel(node.op, node.shape)
            target.nodes.append(node)
            self.kernel_of[node] = target
            self._add_deps(target, deps)

    # -- updates and order ----------------------------------------------------------------------
    def place_updates(self, updates: dict[Node, Node]):
        inplace: dict[Node, Node] = {}
        late: list[tuple[Node, Node]] = []
        readers: dict[Node, list[tuple[Node, Access]]] = {}
        for node in self.kernel_of:
            for a in self._reads(node):
                if a.base.op in ("var", "param"):
                    readers.setdefault(a.base, []).append((node, a))
        for leaf, new in updates.items():
            k = self.kernel_of.get(new)
            ok = (k is not None and k.kind == "elementwise" and new not in inplace
                  and new not in self.copies and new not in k.reductions)
            if ok:
                before = set()
                for reader, a in readers.get(leaf, []):
                    rk = self.kernel_of[reader]
                    if rk is k:
                        ok = ok and a.contiguous
                    else:
                        before.add(rk.index)
                ok = ok and not any(self._depends(r, k.index) for r in before)
            if ok:
                self._add_deps(k, before)
                inplace[new] = leaf
            else:
                late.append((leaf, new))
        return inplace, late

    def ordered(self) -> list[Kernel]:
        """Kernels in creation order, each moved after the kernels it depends on."""
        done: set[int] = set()
        result: list[Kernel] = []
        pending = list(self.kernels)
        while pending:
            for i, k in enumerate(pending):
                if k.deps <= done:
                    break
            else:
                raise AssertionError("kernel dependencies form a cycle")
            result.append(pending.pop(i))
            done.add(k.index)
        return result

    def mark_stores(self, outputs, updates, inplace) -> None:
        needed: set[Node] = set()
        for node, k in self.kernel_of.items():
            for a in self._reads(node):
                if a.base in self.kernel_of and self.kernel_of[a.base] is not k:
                    needed.add(a.base)
        for node in (*outputs, *updates.values()):
            base = self.access(node).base
            if base in self.kernel_of:
                needed.add(base)
        needed |= set(inplace)
        for k in self.kernels:
            k.stores = [n for n in k.nodes
                        if n in needed or k.kind != "elementwise" or n in k.reductions]
