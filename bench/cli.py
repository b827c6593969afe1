"""``shufflebench <verb>``: parses arguments and calls the modules that do the work.

Bad input exits with status 2 and one line on stderr that names the value and what is allowed; torch is imported
only by the verbs that need it, so the ONNX Runtime verbs work on a device without torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

from bench.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_assignments(items: list[str]) -> dict[str, str]:
    """["c1=128", "c2=64"] -> {"c1": "128", "c2": "64"}; the workload converts the strings to its types."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"expected a workload parameter as key=value, got {item!r}")
        out[key] = value
    return out


def _build(name: str, assignments: list[str], batch: int | None) -> Any:
    import blocks

    kwargs: dict[str, Any] = parse_assignments(assignments)
    if batch is not None:
        kwargs["batch"] = batch
    try:
        return blocks.build(name, **kwargs)
    except blocks.WorkloadError as e:
        raise UserError(str(e)) from None


def cmd_list(args: argparse.Namespace) -> None:
    import blocks

    names = blocks.list_workloads(args.pattern)
    if not names:
        raise UserError(f"no workload matches {args.pattern!r}; `shufflebench list` shows them all")
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {', '.join(p.describe() for p in blocks.params(name))}")


def cmd_cost(args: argparse.Namespace) -> None:
    from bench import cost

    workload = _build(args.name, args.params, args.batch)
    counted = cost.count(workload.module, workload.input_shape)
    if args.json:
        out = {
            "workload": workload.name,
            "workload_args": workload.params,
            "input_shape": list(workload.input_shape),
            **counted.totals(),
            "by_category": counted.by_category(),
        }
        if args.by_layer:
            out["layers"] = counted.by_layer()
        print(json.dumps(out, indent=2))
        return
    call = ", ".join(f"{k}={v}" for k, v in workload.params.items())
    print(f"{workload.name}({call})  input {'x'.join(map(str, workload.input_shape))}")
    if args.by_layer:
        _print_table(counted.by_layer(), ["layer", "type", "params", "flops", "mac", "elementwise_ops", "ops"])
        print()
    totals = counted.totals()
    print(f"params           {totals['params']:>16,}")
    print(f"FLOPs            {totals['flops']:>16,}  multiply-adds")
    print(f"MAC              {totals['mac']:>16,}  elements read + written ({totals['mac_bytes'] / 1e6:,.1f} MB)")
    print(f"elementwise ops  {totals['elementwise_ops']:>16,}  output elements of element-wise ops")


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [isinstance(rows[0][c], int) for c in columns] if rows else [False] * len(columns)
    for line in [columns, *cells]:
        print("  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(line, widths, numeric)).rstrip())


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shufflebench", description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    p = verbs.add_parser("list", help="list workloads with their parameters and defaults")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'shufflenet*'")
    p.set_defaults(func=cmd_list)

    p = verbs.add_parser("cost", help="params, FLOPs and MAC of one workload")
    p.add_argument("name", help="workload name (see `shufflebench list`)")
    p.add_argument("params", nargs="*", metavar="key=value", help="workload parameters, e.g. c1=128 c2=128")
    p.add_argument("--batch", type=int, help="batch size (default 1)")
    p.add_argument("--by-layer", action="store_true", help="also print one row per layer (module path)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_cost)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"shufflebench {args.verb}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
