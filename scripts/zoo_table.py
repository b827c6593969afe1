"""Print the README's network table: params, FLOPs and MAC as counted, next to the published values.

Usage: python scripts/zoo_table.py > /tmp/table.md, then paste it into README.md (tests/test_readme.py checks that
the README's table is current).
"""

from __future__ import annotations

from shufflebench import blocks
from shufflebench import cost
from shufflebench.papers import PUBLISHED, flops_match, params_match


def table() -> str:
    lines = [
        "| network | params | published | MFLOPs | published | MAC (M elements) | source |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for entry in PUBLISHED:
        w = blocks.build(entry.workload, **entry.args)
        counted = cost.count(w.module, w.input_shape)
        name = entry.workload + (f"({', '.join(f'{k}={v}' for k, v in entry.args.items())})" if entry.args else "")
        if entry.params is None:
            params = "-"
        else:
            mark = "" if params_match(counted.params, entry.params) else " (differs)"
            params = (f"{entry.params:,}" if isinstance(entry.params, int) else entry.params) + mark
        if entry.mflops is None:
            flops = "-"
        else:
            mflops = counted.flops / 1e6
            flops = f"{entry.mflops:g}" + (
                "" if flops_match(mflops, entry.mflops) else f" ({mflops / entry.mflops - 1:+.0%})"
            )
        lines.append(
            f"| `{name}` | {counted.params:,} | {params} | {counted.flops / 1e6:,.1f} | {flops} | "
            f"{counted.mac / 1e6:,.1f} | {entry.source} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
