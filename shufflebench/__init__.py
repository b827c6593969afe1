"""How shufflebench measures: configs, cost model, backends, timing, statistics, results and reports.

Only the modules marked [torch] in their docstring import torch, so a device without torch (an ARM board running
exported ONNX files) installs and runs the rest.
"""
