"""Post-training quantization to power-of-two scales: the whole flow, top to bottom.

    float model --prepare-->  BN folded, layers and quantization points found     (graph.py)
      --equalize-->           Relu-connected pairs rescaled (kept only if it helps) (equalize.py)
      --float run-->          every point's and layer output's values on the calibration data
      --calibrate-->          2^e per activation (minmax | percentile | mse), per-channel 2^e weights
      --GPTQ rounding-->      layer by layer, weights rounded against the quantized inputs (gptq.py)
      --bias correction-->    layer by layer, in graph order: the quantized model's mean output
                              shift per channel against the float model is subtracted from the bias
      --emit-->               QDQ ONNX                                              (emit.py)
      [--mixed precision-->   per-layer 8/4-bit weights under a flash budget]       (mixed.py)
      [--int16 activations--> the most sensitive activations at 16 bits under an
                              arena budget]                                         (wide.py)

Quality of a candidate is measured as the error of the quantized model's outputs against the
float model's on the calibration data, relative to the float outputs' variance.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..errors import McucError
from . import runtime
from .calibrate import ActQ, activation_qparams, integer_weights, quantize_weights
from .data import check_calibration
from .emit import (
    EXACT_BIAS,
    INT16_OPSET,
    WIDE_BIAS,
    bias_ints,
    emit,
    float_name,
    input_name,
    opset_for_bits,
)
from .equalize import equalize
from .gptq import gptq_layer
from .graph import Net, prepare

CALIBRATORS = ("minmax", "percentile", "mse")
WEIGHT_BITS = ("8", "4", "4-ends8", "mixed", "ternary", "binary")
# Uniform body bit widths of the --weight-bits policies; 4-ends8, ternary and binary keep the
# first and last layers at 8 bits (the input layer sees raw pixels, the last one decides the logits).
BODY_BITS = {"8": 8, "4": 4, "4-ends8": 4, "mixed": 8, "ternary": 2, "binary": 1}


@dataclass(frozen=True)
class Choice:
    """How one layer's weights are stored: bit width, and one exponent per channel or per tensor."""

    bits: int
    per_channel: bool = True

    def text(self) -> str:
        kind = {1: "binary", 2: "ternary"}.get(self.bits, f"int{self.bits}")
        return f"{kind} {'per-channel' if self.per_channel else 'per-tensor'}"


@dataclass
class Options:
    activations: str = "symmetric"        # symmetric | asymmetric
    calibrator: str = "mse"               # minmax | percentile | mse
    percentile: float = 99.99
    weight_bits: str = "8"                # 8 | 4 | mixed | ternary | binary (the last two: 8-bit first and last layers)
    flash_budget: int | str | None = None  # bytes of weights flash, or "N%" of the all-int8 model (mixed)
    cycle_budget: int | str | None = None  # estimated cycles per inference on `board`, or "N%" of the all-int8 model's
    board: str = "stm32f4-discovery"       # whose cycle model the cycle budget uses
    bias_correction: bool = True
    weight_rounding: str = "gptq"         # gptq | nearest
    equalization: str = "auto"            # auto | always | never
    int16_activations: str = "none"       # none | auto | comma-separated layer or tensor names
    arena_budget: int | str | None = None  # bytes of arena on `board`, or "N%" of the all-int8 model's (auto)

    def check(self) -> None:
        if self.activations not in ("symmetric", "asymmetric"):
            raise McucError(f"--activations {self.activations!r}: expected symmetric or asymmetric")
        if self.calibrator not in CALIBRATORS:
            raise McucError(f"--calibrator {self.calibrator!r}: expected one of {', '.join(CALIBRATORS)}")
        if not 50.0 < self.percentile <= 100.0:
            raise McucError(f"--percentile {self.percentile:g}: expected a value in (50, 100]")
        if self.weight_bits not in WEIGHT_BITS:
            raise McucError(f"--weight-bits {self.weight_bits!r}: expected one of {', '.join(WEIGHT_BITS)}")
        if self.flash_budget is not None and self.weight_bits != "mixed":
            raise McucError(f"--flash-budget applies to --weight-bits mixed, not {self.weight_bits}")
        if self.cycle_budget is not None and self.weight_bits != "mixed":
            raise McucError(f"--cycle-budget applies to --weight-bits mixed, not {self.weight_bits}")
        if self.weight_bits == "mixed" and self.flash_budget is None and self.cycle_budget is None:
            raise McucError("--weight-bits mixed needs --flash-budget BYTES (or a percentage of the all-8-bit weights) "
                            "or --cycle-budget")
        if self.weight_rounding not in ("gptq", "nearest"):
            raise McucError(f"--weight-rounding {self.weight_rounding!r}: expected gptq or nearest")
        if self.equalization not in ("auto", "always", "never"):
            raise McucError(f"--equalization {self.equalization!r}: expected auto, always or never")
        spec = (self.int16_activations or "").strip()
        if not spec:
            raise McucError("--int16-activations is empty: expected none, auto or layer / tensor names")
        if spec == "auto" and self.arena_budget is None:
            raise McucError("--int16-activations auto needs --arena-budget BYTES (or a percentage of the all-int8 arena, "
                            "e.g. 150%)")
        if self.arena_budget is not None and spec != "auto":
            raise McucError(f"--arena-budget applies to --int16-activations auto, not {spec}")

    @property
    def wants_int16(self) -> bool:
        return self.int16_activations.strip() != "none"


@dataclass
class Result:
    model: onnx.ModelProto
    net: Net
    acts: dict[str, ActQ]
    plan: dict[str, Choice]                   # layer -> weight bits and granularity
    error: float                              # relative output error on the calibration data
    equalized: int = 0                        # Relu-connected pairs equalized (0: not applied)
    notes: list[str] = field(default_factory=list)
    sensitivity: dict[str, dict[str, float]] = field(default_factory=dict)  # layer -> choice -> error increase
    flash: dict[str, int] = field(default_factory=dict)
    cycles: dict = field(default_factory=dict)  # with a cycle budget: board, cycle model, estimates
    int16: list[str] = field(default_factory=list)  # activation points stored as int16
    act_sensitivity: dict[str, float] = field(default_factory=dict)  # point -> error removed by int16 (auto)
    arena: dict = field(default_factory=dict)   # with int16 activations: board, all-int8 / budget / actual bytes


class Session:
    """One float net and its calibration data: builds quantized candidates and scores them."""

    def __init__(self, net: Net, x: np.ndarray, opts: Options):
        self.net, self.x, self.opts = net, x, opts
        wanted = list(dict.fromkeys(list(net.points) + [l.out for l in net.layers] + net.outputs))
        self.float = runtime.run(net.model, x, [t for t in wanted if t != net.input_name])
        self.float[net.input_name] = x
        self.acts8 = self._calibrate()
        self.acts16: dict[str, ActQ] = {}
        self.wide: frozenset[str] = frozenset()  # points at 16 bits in the plans built now (wide.py sets it)
        self.inits = net.inits()
        self.attrs = {n.name: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in net.model.graph.node}
        self._prefix: dict[tuple, tuple] = {}
        self._wcache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    @property
    def acts(self) -> dict[str, ActQ]:
        """Every point's quantization: 8-bit, except the points in ``wide`` at 16 bits."""
        acts = dict(self.acts8)
        for p in self.wide:
            if p not in self.acts16:
                self.acts16[p] = activation_qparams(self.float[p], calibrator=self.opts.calibrator, asymmetric=False,
                                                    can_be_negative=True, percentile=self.opts.percentile, bits=16)
            acts[p] = self.acts16[p]
        return acts

    def _bias_limit(self, layer) -> tuple[ActQ, int]:
        """The layer's input quantization, and how many steps of its accumulator a bias may take.
        An int8 input keeps biases where onnxruntime's float sums are exact (EXACT_BIAS). After an
        int16 input they are not exact anyway (products reach 2^22 steps), while the same limit,
        on a grid 2^8 finer, would coarsen the weights far more often: only int32 headroom is kept."""
        xq = self.acts[self.net.source[layer.input]]
        return xq, (EXACT_BIAS if xq.bits == 8 else WIDE_BIAS)

    def _calibrate(self) -> dict[str, ActQ]:
        o, net = self.opts, self.net
        acts = {}
        for p in net.points:
            # The graph input's sign comes from the data (images are often in [0, 1]); inside the
            # net from the op (a Relu output cannot be negative, a conv output can).
            neg = False if p == net.input_name else net.signed_hint.get(p, True)
            acts[p] = activation_qparams(self.float[p], calibrator=o.calibrator, asymmetric=o.activations == "asymmetric",
                                         can_be_negative=neg, percentile=o.percentile)
        return acts

    def weights(self, layer, choice: Choice) -> tuple[np.ndarray, np.ndarray]:
        """Integer weights and exponents, coarsened where the bias would leave the range in
        which onnxruntime's float arithmetic is exact."""
        xq, limit = self._bias_limit(layer)
        key = (layer.name, choice, xq.exp, limit)
        if key not in self._wcache:
            w = self.inits[layer.weight]
            wint, exps = quantize_weights(w, layer.out_axis, choice.bits, choice.per_channel)
            x_exp = xq.exp
            b = self.inits[layer.bias]
            while np.abs(bias_ints(b, x_exp, exps)).max(initial=0) >= limit:
                big = np.abs(bias_ints(b, x_exp, exps)) >= limit
                exps = exps + (big if choice.per_channel else 1)
            wint = integer_weights(w, layer.out_axis, exps, choice.bits)
            self._wcache[key] = (wint, exps)
        return self._wcache[key]

    def _keep_bias_exact(self, layer, wint, exps, w0, e0):
        """Channels where GPTQ's finer exponent would push the bias out of the exact range go
        back to the nearest-rounded weights (whose exponents were chosen to fit)."""
        xq, limit = self._bias_limit(layer)
        bad = np.abs(bias_ints(self.inits[layer.bias], xq.exp, exps)) >= limit
        if not bad.any():
            return wint, exps
        if len(set(e0.tolist())) == 1 and len(set(exps.tolist())) == 1:
            return w0, e0
        shape = [1] * wint.ndim
        shape[layer.out_axis] = -1
        return np.where(bad.reshape(shape), w0, wint), np.where(bad, e0, exps)

    def build(self, plan: dict[str, Choice]) -> tuple[onnx.ModelProto, float]:
        """The QDQ model for ``plan`` and its calibration error.

        Layer by layer in graph order, so that each layer is rounded and corrected against the
        inputs the quantized layers before it really produce. A layer's result depends only on
        the choices of the layers before it, so plans sharing a prefix share the work (the
        sensitivity analysis and the budget solver build many plans differing in a layer or two).
        """
        net = self.net
        weights = {l.name: (*self.weights(l, plan[l.name]), plan[l.name].bits) for l in net.layers}
        biases = {l.name: self.inits[l.bias].astype(np.float64) for l in net.layers}
        correct = self.opts.bias_correction
        gptq = self.opts.weight_rounding == "gptq"
        acts = self.acts
        prefix: tuple = (correct, gptq, self.wide)
        for l in net.layers if correct or gptq else ():
            prefix += (plan[l.name],)
            if prefix in self._prefix:
                weights[l.name], biases[l.name] = self._prefix[prefix]
                continue
            if gptq:
                model = emit(net, acts, weights, biases)
                seen = input_name(net, l.input)
                xin = runtime.run(model, self.x, [seen])[seen]
                w0, e0, bits = weights[l.name]
                wint, exps = gptq_layer(l, self.attrs[l.name], self.inits[l.weight], xin, e0, bits,
                                        plan[l.name].per_channel)
                weights[l.name] = (*self._keep_bias_exact(l, wint, exps, w0, e0), bits)
            if correct:
                model = emit(net, acts, weights, biases)
                yq = runtime.run(model, self.x, [float_name(net, l.out)])[float_name(net, l.out)]
                yf = self.float[l.out]
                axis = 1 if l.op == "Conv" else yq.ndim - 1
                other = tuple(i for i in range(yq.ndim) if i != axis)
                shift = (yq.astype(np.float64) - yf).mean(axis=other)
                biases[l.name] = biases[l.name] - shift
            self._prefix[prefix] = (weights[l.name], biases[l.name])
        model = emit(net, acts, weights, biases)
        return model, self.error(model)

    def error(self, model: onnx.ModelProto) -> float:
        out = runtime.run(model, self.x)
        errs = []
        for name in self.net.outputs:
            f = self.float[name].astype(np.float64)
            errs.append(float(np.mean((out[name] - f) ** 2) / max(np.var(f), 1e-12)))
        return float(np.mean(errs))


def uniform_plan(net: Net, bits: int, ends: int | None = None) -> dict[str, Choice]:
    """Every layer at ``bits`` per channel; with ``ends``, the first and last layers at ``ends`` bits."""
    plan = {l.name: Choice(bits, True) for l in net.layers}
    if ends is not None and net.layers:
        for l in (net.layers[0], net.layers[-1]):
            plan[l.name] = Choice(ends, True)
    return plan


def is_depthwise(net: Net, layer) -> bool:
    if layer.op != "Conv" or layer.groups == 1:
        return False
    return net.inits()[layer.weight].shape[1] == 1


def policy_plan(net: Net, weight_bits: str) -> dict[str, Choice]:
    """The starting plan of a --weight-bits policy. Ternary and binary bodies keep the first and
    last layers and depthwise layers at 8 bits: a depthwise 3x3 filter has 9 weights, and with 3
    (or 2) levels each the layer can hardly express anything -- measured on the depthwise-separable
    digits net, ternary depthwise and pointwise layers together lose 10 points after fine-tuning,
    ternary pointwise layers alone 1."""
    body = BODY_BITS[weight_bits]
    plan = uniform_plan(net, body, 8 if body < 4 or weight_bits == "4-ends8" else None)
    if body < 4:
        for l in net.layers:
            if is_depthwise(net, l):
                plan[l.name] = Choice(8, True)
    return plan


def _one_blas_thread():
    """The matrices here are small: a multi-threaded BLAS spends far more time waking and
    spinning threads than computing (50x slower measured on two cores, worse under pytest -n 2)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def quantize(model: onnx.ModelProto, calibration: np.ndarray, opts: Options | None = None, *,
             where: str = "<model>", data_where: str = "calibration data") -> Result:
    """Quantize a float model; ``calibration`` holds N samples of its input on axis 0.
    ``where`` and ``data_where`` name the model and the data in error messages."""
    with _one_blas_thread():
        return _quantize(model, calibration, opts, where, data_where)


def _quantize(model, calibration, opts, where, data_where) -> Result:
    opts = opts or Options()
    opts.check()
    opset = opset_for_bits([BODY_BITS[opts.weight_bits], 4 if opts.weight_bits == "mixed" else 8])
    if opts.wants_int16:
        opset = max(opset or 0, INT16_OPSET)
    net = prepare(model, where=where, opset=opset)
    x = check_calibration(calibration, net.input_name, net.input_shape, where=data_where)
    notes = []
    candidates = [(net, 0)]
    if opts.equalization != "never":
        eq, n_pairs = equalize(net)
        if n_pairs:
            candidates = [(eq, n_pairs)] if opts.equalization == "always" else [(net, 0), (eq, n_pairs)]
    best = None
    for cand, n_pairs in candidates:
        sess = Session(cand, x, opts)
        plan = policy_plan(cand, opts.weight_bits)
        qmodel, err = sess.build(plan)
        if best is None or err < best[2]:
            best = (sess, qmodel, err, plan, n_pairs)
    sess, qmodel, err, plan, n_pairs = best
    if len(candidates) > 1:
        notes.append(f"cross-layer equalization of {candidates[1][1]} Relu-connected pair(s) "
                     + ("kept: it lowers" if n_pairs else "not kept: it does not lower") + " the calibration error")
    result = Result(qmodel, sess.net, sess.acts, plan, err, n_pairs, notes)
    if opts.weight_bits == "mixed":
        from .mixed import mixed_precision

        mixed_precision(sess, result, opts.flash_budget, opts.cycle_budget, opts.board)
    if opts.wants_int16:
        from .wide import int16_activations

        int16_activations(sess, result, opts.int16_activations, opts.arena_budget, opts.board)
    return result
