"""The IR graph: values (tensors) connected by nodes (operations).

Nodes are kept in a topological order. Values are objects, not names, so rewrites replace uses
without string bookkeeping; names exist for printing, error messages and C identifiers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from .dtypes import DType
from .quant import QParams


@dataclass(eq=False)
class TensorType:
    shape: tuple[int, ...]
    dtype: DType
    quant: QParams | None = None
    layout: str | None = None  # 'NCHW' / 'NHWC' for 4-D activations, else None

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes in the arena: sub-byte types take a byte per element in activations."""
        return self.size * max(1, self.dtype.np.itemsize)

    def with_(self, **kw) -> "TensorType":
        return replace(self, **kw)

    def text(self) -> str:
        dims = "x".join(str(d) for d in self.shape) if self.shape else "scalar"
        s = f"{self.dtype.short}<{dims}>"
        if self.layout:
            s += f"@{self.layout}"
        if self.quant is not None:
            s += " " + self.quant.text()
        return s

    def same(self, other: "TensorType") -> bool:
        return (
            self.shape == other.shape
            and self.dtype == other.dtype
            and self.layout == other.layout
            and (self.quant == other.quant)
        )


class Value:
    """A tensor: a graph input, a node output, or a constant (``const`` holds its data)."""

    _ids = itertools.count()

    def __init__(self, name: str, type: TensorType, const: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.const = None if const is None else np.asarray(const)
        self.producer: Node | None = None
        self.id = next(Value._ids)
        if self.const is not None and tuple(self.const.shape) != type.shape:
            raise ValueError(f"constant {name}: data shape {self.const.shape} != type shape {type.shape}")

    @property
    def is_const(self) -> bool:
        return self.const is not None

    def __repr__(self) -> str:
        return f"%{self.name}"


@dataclass(eq=False)
class Node:
    op: str
    name: str
    inputs: list[Value | None]
    outputs: list[Value]
    attrs: dict = field(default_factory=dict)

    def __post_init__(self):
        for o in self.outputs:
            o.producer = self

    @property
    def out(self) -> Value:
        return self.outputs[0]

    def input(self, i: int) -> Value | None:
        return self.inputs[i] if i < len(self.inputs) else None

    def __repr__(self) -> str:
        return f"<{self.op} {self.name}>"


class Graph:
    def __init__(self, name: str = "model"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        # Facts about where the graph came from, used by passes and reports:
        # source path, producer, opset, arithmetic convention ('onnx' or 'tflite').
        self.meta: dict = {}
        self._names: set[str] = set()  # value names

    # -- construction ------------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        base = base or "t"
        name, i = base, 1
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def value(self, name: str, type: TensorType, const=None) -> Value:
        return Value(self.unique_name(name), type, const)

    def const(self, name: str, data: np.ndarray, dtype: DType, quant: QParams | None = None) -> Value:
        data = np.asarray(data)
        if dtype is not DType.FLOAT32 and dtype is not DType.BOOL:
            if data.size and (data.min() < dtype.qmin or data.max() > dtype.qmax):
                raise ValueError(f"constant {name} out of range for {dtype.short}")
        data = data.astype(dtype.np if dtype is not DType.FLOAT32 else np.float32)
        return self.value(name, TensorType(data.shape, dtype, quant), const=data)

    def add_node(self, op: str, inputs: list, out_types: list[TensorType], attrs: dict | None = None,
                 name: str | None = None, out_names: list[str] | None = None, before: Node | None = None) -> Node:
        """Create a node; it is appended, or inserted before ``before`` to keep topological order."""
        # Node names follow the model's (a rewrite keeps the name of the node it replaces); only
        # value names must be unique.
        nname = name or op
        outs = [Value(self.unique_name((out_names or [])[i] if out_names and i < len(out_names) else f"{nname}_out{i}" if len(out_types) > 1 else nname), t)
                for i, t in enumerate(out_types)]
        node = Node(op, nname, list(inputs), outs, dict(attrs or {}))
        if before is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self.nodes.index(before), node)
        return node

    # -- queries -----------------------------------------------------------------------------
    def consumers(self, v: Value) -> list[Node]:
        return [n for n in self.nodes if any(i is v for i in n.inputs)]

    def use_count(self, v: Value) -> int:
        c = sum(1 for n in self.nodes for i in n.inputs if i is v)
        return c + sum(1 for o in self.outputs if o is v)

    def is_output(self, v: Value) -> bool:
        return any(o is v for o in self.outputs)

    def all_values(self) -> list[Value]:
        seen: dict[int, Value] = {}
        for v in self.inputs:
            seen.setdefault(v.id, v)
        for n in self.nodes:
            for v in n.inputs:
                if v is not None:
                    seen.setdefault(v.id, v)
            for v in n.outputs:
                seen.setdefault(v.id, v)
        return list(seen.values())

    def constants(self) -> list[Value]:
        return [v for v in self.all_values() if v.is_const]

    # -- rewriting ---------------------------------------------------------------------------
    def replace_uses(self, old: Value, new: Value) -> None:
        for n in self.nodes:
            n.inputs = [new if i is old else i for i in n.inputs]
        self.outputs = [new if o is old else o for o in self.outputs]

    def replace_output_keep_name(self, old: Value, new: Value) -> None:
        """Replace every use of ``old`` by ``new``. When ``new`` comes from a node that replaces
        ``old``'s producer (same node name), it also takes ``old``'s name, so names stay stable
        through rewrites; a graph output always keeps its name."""
        same_role = (new.producer is not None and old.producer is not None and new.producer.name == old.producer.name)
        takes_name = (same_role or self.is_output(old)) and not any(new is v for v in self.inputs) \
            and not (self.is_output(new) and not self.is_output(old)) and not new.is_const
        self.replace_uses(old, new)
        if takes_name and new.name != old.name:
            self._names.discard(new.name)
            new.name = old.name

    def remove(self, node: Node) -> None:
        self.nodes.remove(node)

    def remove_dead(self) -> bool:
        """Drop nodes none of whose outputs is used."""
        changed = False
        while True:
            live = {o.id for o in self.outputs}
            for n in self.nodes:
                for i in n.inputs:
                    if i is not None:
                        live.add(i.id)
            dead = [n for n in self.nodes if not any(o.id in live for o in n.outputs)]
            if not dead:
                return changed
            for n in dead:
                self.nodes.remove(n)
            changed = True

    def toposort(self) -> None:
        """Restore topological order after rewrites that inserted nodes out of order."""
        ready = {v.id for v in self.inputs} | {v.id for v in self.all_values() if v.is_const}
        pending = list(self.nodes)
        order: list[Node] = []
        while pending:
            progressed = False
            rest = []
            for n in pending:
                if all(i is None or i.id in ready for i in n.inputs):
                    order.append(n)
                    ready.update(o.id for o in n.outputs)
                    progressed = True
                else:
                    rest.append(n)
            if not progressed:
                raise ValueError(f"graph has a cycle or a dangling input at {rest[0]}")
            pending = rest
        self.nodes = order
