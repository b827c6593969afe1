"""Whole networks, one file per family; importing this package registers them."""

from shufflebench.blocks.networks import densenet, efficientnet, mobilenet, resnet, shufflenet, xception  # noqa: F401
