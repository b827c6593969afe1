"""The one op-category vocabulary, shared by the cost model (shufflebench.cost, shufflebench.onnx_cost), the time
breakdown (shufflebench.breakdown) and the latency predictor (shufflebench.predict). Torch-free.

An op has a **kind**, fine enough for costs and for predicting time:

- ``conv``: convolutions (dense, grouped, depthwise, transposed, and the runtimes' fused and blocked forms);
- ``matmul``: matrix products (linear layers);
- ``elementwise``: one output element per input element (activations, adds, multiplies, batch norm in inference);
- ``data``: ops that move data without computing on it (concat, split and slice copies, transposes, casts, pads,
  layout reorders);
- ``view``: ops that move nothing (reshape, flatten, squeeze, and in torch transpose, split and chunk);
- ``pool``: pooling and reductions;
- ``alloc``: allocations;
- ``other``: anything else.

ShuffleNet V2's Figure 2 groups kinds into five categories (FIGURE2); Shuffle is not a kind of op but a place: the
ops inside a channel shuffle, which the breakdown finds by module name.
"""

from __future__ import annotations

from typing import Iterable

# The totals a cost counter gives a results row (shufflebench.cost, shufflebench.onnx_cost).
COST_TOTALS = ("params", "flops", "mac", "mac_bytes", "elementwise_ops")
KINDS = ("conv", "matmul", "elementwise", "data", "view", "pool", "alloc", "other")
FIGURE2 = ("Conv", "Elemwise", "Data", "Shuffle", "Other")
TO_FIGURE2 = {
    "conv": "Conv",
    "matmul": "Conv",
    "elementwise": "Elemwise",
    "data": "Data",
    "view": "Data",
    "pool": "Other",
    "alloc": "Other",
    "other": "Other",
}

# ONNX op types, the standard ones and those ONNX Runtime writes into optimised graphs (com.microsoft, nchwc).
ONNX_KINDS = {
    "conv": {"Conv", "FusedConv", "ConvTranspose", "NchwcConv", "QLinearConv", "ConvInteger"},
    "matmul": {"Gemm", "MatMul", "FusedGemm", "FusedMatMul", "MatMulInteger", "QLinearMatMul"},
    "elementwise": {
        "Relu",
        "Clip",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Sum",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Swish",
        "Tanh",
        "Exp",
        "Erf",
        "LeakyRelu",
        "PRelu",
        "Gelu",
        "QuickGelu",
        "BatchNormalization",
        "FusedAdd",
        "FusedMul",
    },
    "data": {
        "Concat",
        "Split",
        "Slice",
        "Transpose",
        "Cast",
        "Pad",
        "Gather",
        "Expand",
        "Tile",
        "ReorderInput",
        "ReorderOutput",
        "MemcpyFromHost",
        "MemcpyToHost",
    },
    "view": {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Size", "Constant", "Dropout"},
    "pool": {
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "ReduceMean",
        "ReduceMax",
        "ReduceSum",
        "Softmax",
    },
}
# ATen op names (overload packets, as the dispatcher and torch.profiler name them without the "aten::" prefix). The
# cost model falls back on ATen's own tags (views, pointwise ops) for names not listed here.
ATEN_KINDS = {
    "conv": {
        "convolution",
        "_convolution",
        "conv2d",
        "mkldnn_convolution",
        "cudnn_convolution",
        "_slow_conv2d_forward",
        "thnn_conv2d",
        "_conv_depthwise2d",
        "convolution_overrideable",
        "_nnpack_spatial_convolution",
    },
    "matmul": {"mm", "addmm", "bmm", "baddbmm", "linear", "matmul"},
    "elementwise": {
        "relu",
        "relu_",
        "add",
        "add_",
        "mul",
        "mul_",
        "div",
        "sigmoid",
        "silu",
        "silu_",
        "hardtanh",
        "hardtanh_",
        "hardswish",
        "hardswish_",
        "hardsigmoid",
        "clamp",
        "clamp_",
        "clamp_min",
        "clamp_min_",
        "batch_norm",
        "_batch_norm_impl_index",
        "native_batch_norm",
        "_native_batch_norm_legit_no_training",
    },
    "data": {"cat", "stack", "clone", "copy_", "contiguous", "to", "_to_copy", "constant_pad_nd"},
    "view": {"view", "_unsafe_view", "reshape", "transpose", "flatten", "split", "chunk", "slice", "narrow"},
    "pool": {
        "max_pool2d",
        "max_pool2d_with_indices",
        "adaptive_avg_pool2d",
        "_adaptive_avg_pool2d",
        "mean",
        "avg_pool2d",
    },
    "alloc": {"empty", "empty_like", "zeros", "ones"},
}
_ONNX = {op: kind for kind, ops in ONNX_KINDS.items() for op in ops}
_ATEN = {op: kind for kind, ops in ATEN_KINDS.items() for op in ops}


# What the latency predictor tells apart (shufflebench.predict): the kinds, with convolutions split by how they use the
# hardware (a 1x1 convolution is a matrix product; depthwise and grouped ones move far more bytes per FLOP).
# ``depthwise_plain`` is a depthwise convolution that ONNX Runtime left out of its blocked NCHWc layout (x86 only, and
# only for channel counts that are a multiple of the block): its plain kernel ran ShuffleNet V2's 58-channel depthwise
# convolutions at 2.3 GFLOP/s where the NCHWc ones reached 11, so the two cannot share one cost per FLOP.
# ``grouped`` is a 1x1 group convolution, ``grouped_plain`` likewise one whose channels per group are no multiple of the
# block (ShuffleNet v1 0.5x runs most of its 1x1 group convolutions so, 2x none): it runs an SGEMM per group on few
# channels. ``grouped_kxk`` is a group convolution with a larger kernel (ResNeXt's 3 x 3), blocked or not: in the
# zen4 calibration of 2026-12-01, fitted as one class with the 1x1 ones and left out of the fit, the 3 x 3 cells took
# 1.7-2.1x what the class's costs said, and they raised its cost per op to 28 us (ONNX Runtime), which ShuffleNet v1's
# small 1x1 group convolutions then paid.
CONV_CLASSES = (
    "stem",
    "conv1x1",
    "convkxk",
    "depthwise",
    "depthwise_plain",
    "grouped",
    "grouped_plain",
    "grouped_kxk",
)
OP_CLASSES = (
    *CONV_CLASSES,
    "maxpool",
    "avgpool",
    "globalpool",
    *[k for k in KINDS if k not in ("conv", "pool")],
    "elementwise_exp",
)
# Pools are told apart too: a windowed max and a windowed average cost per byte, differently (torch's NCHW max pool
# took 1.5 ms per MB read and written on one zen4 core, its average pool 0.44), and a global pool is a reduction.
POOL_CLASSES = {
    "MaxPool": "maxpool",
    "max_pool2d": "maxpool",
    "max_pool2d_with_indices": "maxpool",
    "AveragePool": "avgpool",
    "avg_pool2d": "avgpool",
}
# A dense convolution on an image's few channels (the stem: RGB in, stride 2) is its own class too: with 3 input
# channels there is little to vectorise over. On one zen4 core torch's 3 x 3 stems ran at 23-37 GFLOP/s and ONNX
# Runtime's at 31-43, where their other 3 x 3 convolutions fitted at 56 and 62.
STEM_CHANNELS = 4  # at most this many input channels
# An element-wise op that evaluates an exponential (or erf) per element is its own class too: it is bound by that
# arithmetic, not by the bytes it moves. In the zen3 calibration of 2026-11-30, fitted with the other element-wise ops
# and left out of the fit, a sigmoid cell took 2.3x (ONNX Runtime) and 3.3x (torch) what their cost per op and per
# byte said, a SiLU cell 3.5x and 4.0x, where the add, multiply, ReLU and batch-norm cells scattered around 1.
EXP_OPS = {
    "Sigmoid",
    "Swish",
    "QuickGelu",
    "Tanh",
    "Exp",
    "Erf",
    "Gelu",
    "sigmoid",
    "silu",
    "tanh",
    "exp",
    "erf",
    "gelu",
}
NCHWC_DOMAIN = "com.microsoft.nchwc"


def op_class(kind: str, kernel: int = 1, groups: int = 1, channels_in: int = 1, op: str = "") -> str:
    """The predictor's class of an op: its kind; for a convolution whether it is 1x1, kxk, depthwise, grouped 1x1 or kxk
    (``kernel`` = kernel elements, ``channels_in`` = input channels); for a pool, by its ``op`` name (ONNX op type or
    ATen name), a windowed max, a windowed average or a global pool; for an element-wise op, by its name, whether it
    evaluates an exponential (EXP_OPS)."""
    if kind == "pool":
        return POOL_CLASSES.get(op.removeprefix("aten::"), "globalpool")
    if kind == "elementwise":
        return "elementwise_exp" if op.removeprefix("aten::").removesuffix("_") in EXP_OPS else kind
    if kind != "conv":
        return kind
    if groups > 1:
        if groups == channels_in:
            return "depthwise"
        return "grouped" if kernel == 1 else "grouped_kxk"
    if channels_in <= STEM_CHANNELS:
        return "stem"
    return "conv1x1" if kernel == 1 else "convkxk"


def onnx_kind(op_type: str) -> str:
    return _ONNX.get(op_type, "other")


def aten_kind(name: str) -> str | None:
    """The kind of an ATen op by name (``aten::`` prefix allowed), or None when the table does not list it."""
    return _ATEN.get(name.removeprefix("aten::"))


def figure2(kind: str) -> str:
    return TO_FIGURE2[kind]


def aggregate_classes(ops: Iterable[tuple[str, int, int]]) -> dict[str, list[int]]:
    """(class, FLOPs, bytes) per op -> {class: [op count, FLOPs, bytes]}: a graph as the predictor sees it."""
    out: dict[str, list[int]] = {}
    for name, flops, nbytes in ops:
        entry = out.setdefault(name, [0, 0, 0])
        entry[0] += 1
        entry[1] += flops
        entry[2] += nbytes
    return out
