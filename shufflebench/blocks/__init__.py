"""What shufflebench measures: the guideline micro-benchmarks and whole networks, as torch modules, by name.

``blocks.build("g1", c1=128, c2=128)`` returns a :class:`Workload`, as does ``blocks.build("mymodels:tiny_net",
width=2)`` for a callable of the user's; ``blocks.list_workloads("shufflenet*")`` lists names. Importing this package
registers every workload; it changes no global torch setting.
"""

from shufflebench.blocks import calibration, guidelines, networks  # noqa: F401  (registers the workloads)
from shufflebench.blocks.registry import (
    Param,
    Workload,
    WorkloadError,
    build,
    list_workloads,
    params,
    register_workload,
    resolve,
    source_digest,
    write_index,
)

__all__ = [
    "Param",
    "Workload",
    "WorkloadError",
    "build",
    "list_workloads",
    "params",
    "register_workload",
    "resolve",
    "source_digest",
]

write_index()  # once per change of the blocks: the commands then check names and values without torch
