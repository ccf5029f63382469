"""Static memory planning: one arena, offsets chosen ahead of time.

Input is the program as steps (one per layer, in execution order) over abstract values, so the
planner is independent of the IR and testable on random programs. Rules:

* Lifetimes come from the step order: a value lives from the step that writes it to the last
  step that reads it; graph outputs live to the end.
* Values the caller owns (graph inputs and outputs: ``run``'s pointer arguments) and constants
  are not in the arena. A graph output is written in place by its producer.
* Zero copy: a step marked ``alias`` (reshape) makes its output share its input's storage.
* In place: a step may overwrite an input (``inplace`` positions: elementwise ops) when that
  input's storage dies at the step, has the same size and element size, and no other input of
  the step reads the same storage differently.
* Scratch (im2col and friends) is an arena buffer living for its step only.
* Offsets: greedy first fit in several orders, TFLM's greedy-by-size being the first; the
  smallest arena wins. Everything is aligned to ``ALIGN`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALIGN = 4


def align(n: int, a: int = ALIGN) -> int:
    return (int(n) + a - 1) // a * a


@dataclass
class PValue:
    """A tensor as the planner sees it."""

    key: int
    nbytes: int
    elem_bytes: int = 1
    kind: str = "temp"  # 'temp' (arena), 'input', 'output' (caller's buffer), 'const'
    index: int = 0  # which input / output / const


@dataclass
class PStep:
    inputs: list[int]
    outputs: list[int]
    scratch: int = 0
    alias: bool = False
    inplace: tuple[int, ...] = ()


@dataclass
class Buffer:
    key: object
    size: int
    start: int
    end: int
    offset: int = -1

    def overlaps_in_time(self, o: "Buffer") -> bool:
        return self.start <= o.end and o.start <= self.end


@dataclass
class Location:
    kind: str  # 'arena', 'input', 'output', 'const'
    index: int = 0  # input / output / const number
    offset: int = 0  # byte offset in the arena


@dataclass
class MemoryPlan:
    arena_bytes: int
    lower_bound: int
    sum_of_tensors: int
    strategy: str
    locations: dict[int, Location]
    scratch: dict[int, int]  # step -> arena offset
    aliased: set[int]  # steps whose output shares its input's storage (no code)
    inplace: set[int]  # steps whose output overwrites an input
    copies: list[tuple[int, int]]  # (output index, value key) copied into the caller's buffer at the end
    buffers: list[Buffer] = field(default_factory=list)
    greedy_by_size: int = 0  # the arena TFLite Micro's greedy-by-size order alone would give

    def report(self) -> dict:
        # Kernel scratch is part of the lower bound (a step's scratch is live with its tensors);
        # reported apart so that "arena <= tensor lower bound + scratch" can be read off.
        scratch = [b.size for b in self.buffers if isinstance(b.key, tuple) and b.key[0] == "scratch"]
        return {"arena_bytes": self.arena_bytes, "lower_bound": self.lower_bound,
                "sum_of_tensors": self.sum_of_tensors, "greedy_by_size": self.greedy_by_size,
                "scratch_max": max(scratch, default=0), "alignment": ALIGN, "strategy": self.strategy}


class _Classes:
    """Union-find of values sharing storage, with the storage's designation."""

    def __init__(self, values: dict[int, PValue]):
        self.parent = {k: k for k in values}
        self.home: dict[int, tuple[str, int] | None] = {}
        for k, v in values.items():
            self.home[k] = None if v.kind == "temp" else (v.kind, v.index)

    def find(self, k: int) -> int:
        while self.parent[k] != k:
            self.parent[k] = self.parent[self.parent[k]]
            k = self.parent[k]
        return k

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        home = self.home[ra] or self.home[rb]
        self.parent[rb] = ra
        self.home[ra] = home


def plan(values: dict[int, PValue], steps: list[PStep], outputs: list[int]) -> MemoryPlan:
    """Plan storage for ``values`` used by ``steps``; ``outputs`` are the graph outputs in order."""
    end = len(steps)
    last_use: dict[int, int] = {}
    def_step: dict[int, int] = {}
    for i, s in enumerate(steps):
        for k in s.inputs:
            last_use[k] = i
        for k in s.outputs:
            def_step[k] = i
            last_use.setdefault(k, i)
    for k in outputs:
        last_use[k] = end

    cls = _Classes(values)
    # A graph output is stored in its caller buffer only if no other storage claims it first.
    members: dict[int, list[int]] = {k: [k] for k in values}
    for j, k in enumerate(outputs):
        v = values[k]
        if v.kind == "temp" and cls.home[cls.find(k)] is None:
            cls.home[cls.find(k)] = ("output", j)

    def class_end(root: int) -> int:
        return max(last_use.get(m, def_step.get(m, -1)) for m in members[root])

    def join(a: int, b: int) -> None:
        ra, rb = cls.find(a), cls.find(b)
        cls.union(a, b)
        r = cls.find(a)
        other = rb if r == ra else ra
        members[r] = members[ra] + members[rb] if r == ra else members[rb] + members[ra]
        if other != r:
            members.pop(other, None)

    aliased: set[int] = set()
    inplace: set[int] = set()
    for i, s in enumerate(steps):
        if not s.outputs:
            continue
        y = s.outputs[0]
        ry_home = cls.home[cls.find(y)]
        if s.alias and s.inputs:
            x = s.inputs[0]
            rx = cls.find(x)
            if values[x].nbytes == values[y].nbytes and not (cls.home[rx] and ry_home):
                join(x, y)
                aliased.add(i)
            continue
        for p in s.inplace:
            if p >= len(s.inputs) or ry_home is not None:
                break
            x = s.inputs[p]
            rx = cls.find(x)
            if cls.home[rx] is not None or class_end(rx) != i:
                continue
            if values[x].nbytes != values[y].nbytes or values[x].elem_bytes != values[y].elem_bytes:
                continue
            if any(cls.find(o) == rx and o != x for q, o in enumerate(s.inputs) if q != p):
                continue
            join(x, y)
            inplace.add(i)
            break

    buffers: list[Buffer] = []
    root_buf: dict[int, Buffer] = {}
    for r in sorted(members):
        if cls.home[r] is not None:
            continue
        ms = members[r]
        start = min(def_step.get(m, -1) for m in ms)
        if start < 0:
            raise ValueError(f"value {ms[0]} is read but never written")
        b = Buffer(("value", r), align(max(values[m].nbytes for m in ms)), start, class_end(r))
        root_buf[r] = b
        buffers.append(b)
    scratch_buf: dict[int, Buffer] = {}
    for i, s in enumerate(steps):
        if s.scratch > 0:
            b = Buffer(("scratch", i), align(s.scratch), i, i)
            scratch_buf[i] = b
            buffers.append(b)

    bound = lower_bound(buffers, end)
    greedy = place(buffers, None, orders=("greedy_by_size",))[0]
    arena, strategy = place(buffers, bound)

    locations: dict[int, Location] = {}
    for k in values:
        r = cls.find(k)
        if cls.home[r] is None:
            locations[k] = Location("arena", 0, root_buf[r].offset)
        else:
            locations[k] = Location(*cls.home[r])
    copies = [(j, k) for j, k in enumerate(outputs) if locations[k].kind != "output" or locations[k].index != j]
    return MemoryPlan(
        arena_bytes=arena,
        lower_bound=bound,
        sum_of_tensors=sum(b.size for b in buffers),
        strategy=strategy,
        locations=locations,
        scratch={i: b.offset for i, b in scratch_buf.items()},
        aliased=aliased,
        inplace=inplace,
        copies=copies,
        buffers=buffers,
        greedy_by_size=greedy,
    )


def _first_fit(b: Buffer, placed: list[Buffer]) -> int:
    live = sorted((p for p in placed if p.overlaps_in_time(b)), key=lambda p: (p.offset, p.size))
    off = 0
    for p in live:
        if off + b.size <= p.offset:
            break
        off = max(off, p.offset + p.size)
    return off


_ORDERS = {
    # TFLite Micro's GreedyMemoryPlanner: largest first.
    "greedy_by_size": lambda b: (-b.size, b.start, str(b.key)),
    "greedy_by_lifetime": lambda b: (-(b.end - b.start), -b.size, b.start, str(b.key)),
    "greedy_by_area": lambda b: (-(b.end - b.start + 1) * b.size, b.start, str(b.key)),
    "in_order": lambda b: (b.start, -b.size, str(b.key)),
}


def place(buffers: list[Buffer], bound: int | None = None, orders=None) -> tuple[int, str]:
    """Give every buffer an offset; returns (arena bytes, strategy used).

    Greedy first-fit in several orders (TFLite Micro's by-size among them); when none reaches the
    liveness lower bound ``bound``, a bounded exact search over first-fit candidate offsets tries
    to close the gap (greedy orders place each buffer without looking ahead, e.g. a small
    bottleneck tensor between two pairs of ping-pong buffers). ``orders`` restricts the greedy
    orders by name (the plan reports TFLite Micro's greedy-by-size figure that way).
    """
    best = None
    for name, key in _ORDERS.items():
        if orders is not None and name not in orders:
            continue
        placed: list[Buffer] = []
        offs: dict[int, int] = {}
        for b in sorted(buffers, key=key):
            b.offset = _first_fit(b, placed)
            offs[id(b)] = b.offset
            placed.append(b)
        size = max((b.offset + b.size for b in buffers), default=0)
        if best is None or size < best[0]:
            best = (size, name, offs)
    if bound is not None and best[0] > bound:
        found = _search(buffers, best[0], bound)
        if found is not None:
            best = (found[0], "exact_search", found[1])
    size, name, offs = best
    for b in buffers:
        b.offset = offs[id(b)]
    return size, name


SEARCH_BUDGET = 200_000  # candidate placements tried before settling for the greedy result


def _search(buffers: list[Buffer], best_size: int, bound: int) -> tuple[int, dict[int, int]] | None:
    """Depth-first search over offsets (0 or the end of a placed buffer), in start order."""
    order = sorted(buffers, key=lambda b: (b.start, -b.size, str(b.key)))
    result: list = [None]
    budget = [SEARCH_BUDGET]
    limit = [best_size]

    def rec(i: int, placed: list[Buffer], top: int) -> bool:
        if budget[0] <= 0:
            return False
        if i == len(order):
            limit[0] = top
            result[0] = (top, {id(b): b.offset for b in order})
            return top <= bound
        b = order[i]
        live = [p for p in placed if p.overlaps_in_time(b)]
        # Ends of every placed buffer, not only live ones: a gap can open where a dead one was.
        cands = sorted({0, *(p.offset + p.size for p in placed)})
        for off in cands:
            budget[0] -= 1
            end = off + b.size
            if end >= limit[0]:
                continue
            if any(off < p.offset + p.size and p.offset < end for p in live):
                continue
            b.offset = off
            if rec(i + 1, placed + [b], max(top, end)):
                return True
        return False

    rec(0, [], 0)
    return result[0]


def lower_bound(buffers: list[Buffer], n_steps: int) -> int:
    """The largest total size of buffers live at one step: no plan can use less."""
    best = 0
    for i in range(max(n_steps, 1)):
        best = max(best, sum(b.size for b in buffers if b.start <= i <= b.end))
    return best


def check(buffers: list[Buffer]) -> None:
    """Raise if two buffers live at the same time share bytes (a planner bug)."""
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.overlaps_in_time(b) and a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                raise AssertionError(f"buffers {a.key} and {b.key} overlap")
