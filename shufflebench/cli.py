"""``shufflebench <verb>``: parses arguments and calls the modules that do the work.

Bad input exits with status 2 and one line on stderr that names the value and what is allowed; torch is imported
only by the verbs that need it, so the ONNX Runtime verbs work on a device without torch.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import math
import os
import re
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, NoReturn

from shufflebench.errors import Interrupted, UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line instead of argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_assignments(items: list[str], what: str = "a workload parameter") -> dict[str, str]:
    """["c1=128", "c2=64"] -> {"c1": "128", "c2": "64"}; the receiver converts the strings to its types."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"expected {what} as key=value, got {item!r}")
        out[key] = value
    return out


def _build(name: str, params: dict[str, Any]) -> Any:
    from shufflebench import blocks

    try:
        return blocks.build(name, **params)
    except blocks.WorkloadError as e:
        raise UserError(str(e)) from None
    except Exception as e:  # noqa: BLE001 - a builder that fails on valid-looking values (too large to allocate)
        raise UserError(
            f"{name}: cannot build with {params or 'its defaults'}: {type(e).__name__}: {_first(e)}"
        ) from None


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def cmd_list(args: argparse.Namespace) -> None:
    if args.backends:
        from shufflebench import backends

        print(backends.describe())
        return
    from shufflebench import catalog

    known = catalog.index()  # without torch where the registry left an index; else the registry itself
    if known is None:
        from shufflebench import blocks

        known = {name: {p.name: p for p in blocks.params(name)} for name in blocks.list_workloads()}
    names = sorted(n for n in known if fnmatch.fnmatchcase(n, args.pattern))
    if not names:
        raise UserError(f"no workload matches {args.pattern!r}; `shufflebench list` shows them all")
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {catalog.signature(known[name])}")


def cmd_cost(args: argparse.Namespace) -> None:
    from shufflebench import workloads

    params: dict[str, Any] = parse_assignments(args.params)
    if args.input_shape:
        params[workloads.INPUT_SHAPE] = args.input_shape
    if workloads.is_onnx(args.name):
        _cost_onnx(args, params)
        return
    from shufflebench import catalog

    catalog.precheck(args.name, params)  # a wrong name or value, told before torch is imported
    from shufflebench import cost

    workload = _build(args.name, params)
    input_shape = workload.batched(args.batch)
    try:
        counted = cost.count(workload.module, input_shape)
    except Exception as e:  # noqa: BLE001 - e.g. an input too large to allocate
        raise UserError(
            f"{args.name}: cannot run one forward pass of {input_shape}: {type(e).__name__}: {_first(e)}"
        ) from None
    if args.json:
        out = {
            "workload": workload.name,
            "workload_args": workload.params,
            "input_shape": list(input_shape),
            **counted.totals(),
            "by_category": counted.by_category(),
        }
        if args.by_layer:
            out["layers"] = counted.by_layer()
        print(json.dumps(out, indent=2))
        return
    call = ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in workload.params.items())
    print(f"{workload.name}({call})  input {'x'.join(map(str, input_shape))}")
    if args.by_layer:
        _print_table(counted.by_layer(), ["layer", "type", "params", "flops", "mac", "elementwise_ops", "ops"])
        print()
    _print_totals(counted.totals())


def _cost_onnx(args: argparse.Namespace, params: dict[str, Any]) -> None:
    """The cost of an ONNX file's graph (shufflebench.onnx_cost), torch-free."""
    from shufflebench import onnx_cost, workloads

    canonical, digest = workloads.onnx_args(args.name, params, "command line")
    input_shape = workloads.onnx_input_shape(Path(args.name), canonical, args.batch)
    counted = onnx_cost.count(args.name, input_shape)
    if args.json:
        out = {"workload": args.name, "source": digest, "input_shape": list(input_shape), **counted.totals()}
        print(json.dumps({**out, "ops": dict(counted.ops)}, indent=2))
        return
    print(f"{args.name} (sha256 {digest})  input {'x'.join(map(str, input_shape))}")
    if args.by_layer:
        print("nodes by op type: " + ", ".join(f"{op} x{n}" for op, n in counted.ops.most_common()) + "\n")
    _print_totals(counted.totals())


def _print_totals(totals: dict[str, int]) -> None:
    print(f"params           {totals['params']:>16,}")
    print(f"FLOPs            {totals['flops']:>16,}  multiply-adds")
    print(f"MAC              {totals['mac']:>16,}  elements read + written ({totals['mac_bytes'] / 1e6:,.1f} MB)")
    print(f"elementwise ops  {totals['elementwise_ops']:>16,}  output elements of element-wise ops")


def cmd_device(args: argparse.Namespace) -> None:
    from shufflebench import device

    meta = device.collect()
    if args.probe:
        from shufflebench import backends, lock, runner
        from shufflebench.launcher import Launcher

        pairs: list[tuple[str, int | None, str]] = []
        for name, backend in backends.REGISTRY.items():  # one thread and all physical cores on a CPU; fp32
            if backend.unavailable_reason() is None:
                takes_threads = any(s.name == "threads" for s in backend.settings)
                threads = sorted({1, meta["cores_physical"]}) if takes_threads else [None]
                pairs += [(name, t, "fp32") for t in threads]
        with (
            lock.device_lock(meta["machine_key"], f"pid {os.getpid()}, shufflebench device --probe"),
            Launcher() as launcher,
        ):
            meta["probe"] = runner.run_probes(pairs, 600.0, io.StringIO(), launcher)  # describe() shows them
    print(json.dumps(meta, indent=2) if args.json else device.describe(meta))


def _load_sweep(path: Path) -> tuple[Any, dict | None]:
    """A sweep file, or a bundle folder made by `shufflebench export` (then with its prepared cells)."""
    from shufflebench import bundle, config

    if path.is_dir():
        return bundle.load_bundle(path)
    return config.load(path), None


def _keep_backends(sweep: Any, names: list[str] | None) -> None:
    """Drop the cells of other backends when ``--backend`` was given; unknown names are refused."""
    from shufflebench import backends

    if names:
        wanted = {backends.get(b).name for b in names}
        present = sorted({c.backend for c in sweep.cells})
        sweep.cells[:] = [c for c in sweep.cells if c.backend in wanted]
        if not sweep.cells:
            raise UserError(
                f"{sweep.path}: no cells of backend {', '.join(sorted(wanted))}; its backends are {', '.join(present)}"
            )


def cmd_run(args: argparse.Namespace) -> int:
    from shufflebench import config, device, lock

    path = Path(args.config)
    if not path.is_dir():  # a sweep file: bad input is told in a moment, before the device scan and torch
        config.check(path)
    if not args.dry_run:  # a second sweep is told before it spends seconds importing torch
        lock.refuse_if_held(device.collect()["machine_key"])
    sweep, prepared = _load_sweep(path)
    _keep_backends(sweep, args.backend)
    from shufflebench import runner

    if args.dry_run:
        for cell in sweep.cells:
            print(cell.key)
        print(f"{len(sweep.cells)} cells x {sweep.run.processes} processes", file=sys.stderr)
        return
    rows = runner.run_sweep(sweep, Path(args.results), fresh=args.fresh, prepared=prepared)
    if rows:
        print(runner.summary_table(rows))
    if rows and all(r["status"] == "error" for r in rows):
        print(
            f"shufflebench run: every one of the {len(rows)} cells measured failed; see the errors above",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> None:
    from shufflebench import bundle, config

    sweep = config.load(args.config)
    _keep_backends(sweep, args.backend)
    manifest = bundle.export_bundle(sweep, Path(args.out))
    print(manifest)


def cmd_time(args: argparse.Namespace) -> None:
    from shufflebench import api

    settings: dict[str, Any] = parse_settings(args.set or [])
    if args.threads is not None:
        settings["threads"] = args.threads
    params = parse_assignments(args.params)
    row = api.time_cell(
        args.name,
        params,
        args.backend,
        settings,
        args.batch,
        args.processes,
        args.min_time,
        args.timeout,
        args.input_shape,
    )
    if args.json:
        print(json.dumps(row, indent=2))
        if row["status"] != "ok":
            sys.exit(1)
    elif row["status"] != "ok":
        raise UserError(f"{row['cell']}: {row['status']}: {row['error']}")
    else:
        print(describe_row(row))


def parse_settings(items: list[str]) -> dict[str, Any]:
    """["dtype=float16", "cuda_graph=true"] -> typed values, read as YAML reads them (true, 8, float16)."""
    import yaml

    return {k: yaml.safe_load(v) for k, v in parse_assignments(items, "a backend setting").items()}


def cmd_report(args: argparse.Namespace) -> None:
    from shufflebench import device
    from shufflebench.report.index import summary, write_report
    from shufflebench.report.load import load

    paths = [Path(p) for p in args.results] or [Path("results") / device.collect()["device_id"]]
    loaded = load(paths)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    Path(args.out or "reports").mkdir(parents=True, exist_ok=True)  # an unwritable place fails before any work
    summaries = []
    for device_id in loaded.device_folders():
        out = Path(args.out) if args.out and len(loaded.devices) == 1 else Path(args.out or "reports") / device_id
        index = write_report(loaded, device_id, out)
        summaries.append(summary(loaded, device_id, index))
        if not args.json:
            print(index)
    if args.json:
        print(json.dumps(summaries if len(summaries) > 1 else summaries[0], indent=1))


def cmd_site(args: argparse.Namespace) -> None:
    from shufflebench.report import site

    built = site.build([Path(p) for p in args.results or ["results"]], Path(args.out))
    print(
        f"{built.folder / 'index.html'}: {built.pages} pages, {built.bytes / 2**20:.1f} MiB, {built.seconds:.0f} s "
        f"(open it in a browser, or serve it: python -m http.server -d {built.folder})"
    )


def cmd_calibrate(args: argparse.Namespace) -> int:
    from shufflebench import calibrate, device, lock

    backends_ = args.backend or ["torch-cpu", "ort-cpu"]
    if args.write:
        import yaml

        data = calibrate.sweep_data(backends_, args.threads, cache=args.cache)
        Path(args.write).write_text(yaml.safe_dump(data, sort_keys=False))
        print(args.write)
        return 0
    if not args.dry_run:
        lock.refuse_if_held(device.collect()["machine_key"])
    sweep = calibrate.sweep(backends_, args.threads, cache=args.cache)
    if args.dry_run:
        print("\n".join(c.key for c in sweep.cells))
        return 0
    from shufflebench import runner

    rows = runner.run_sweep(sweep, Path(args.results), fresh=args.fresh)
    if rows:
        print(runner.summary_table(rows))
    return 0


def cmd_predict(args: argparse.Namespace) -> None:
    from shufflebench import catalog, device

    catalog.precheck(args.name, parse_assignments(args.params))
    meta = device.collect()
    calibration = Path(args.results) / meta["device_id"] / "calibrate.csv"
    if not calibration.exists():
        raise UserError(
            f"{calibration}: no calibration of this device; run `shufflebench calibrate` first (about 7 minutes; "
            "`make calibrate` also measures the networks that set its network factor and score it)"
        )
    from shufflebench import backends, predict, results, workloads

    models = predict.models_for(results.device_rows(calibration.parent))
    runs = (lambda b: backends.get(b).needs_onnx) if workloads.is_onnx(args.name) else (lambda b: True)
    wanted = [(b, t) for b, t in models if (not args.backend or b in args.backend) and runs(b)]
    if not wanted:
        calibrated = ", ".join(sorted({b for b, _ in models})) or "none"
        raise UserError(f"{calibration}: no calibrated backend can run {args.name} (calibrated: {calibrated})")
    params: dict[str, Any] = parse_assignments(args.params)
    if args.input_shape:
        params["input_shape"] = args.input_shape
    print(f"{args.name} {' '.join(args.params)} at batch {args.batch} on {meta['device_id']}")
    for backend, threads in sorted(wanted, key=str):
        model = models[backend, threads]
        try:
            classes = predict.graph_classes(args.name, params, backend, threads, args.batch)
        except (UserError, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - a workload that cannot be built or exported: say which and why
            raise UserError(f"{args.name}: cannot build it for {backend}: {type(e).__name__}: {_first(e)}") from None
        network = predict.whole_network(args.name)
        ms = model.predict(classes, network)
        interval = model.interval_for(network)
        low, high = interval.around(ms)
        parts = model.contributions(classes)
        summed = sum(parts.values())
        top = ", ".join(f"{name} {100 * t / summed:.0f}%" for name, t in list(parts.items())[:3] if summed)
        where = backend if threads is None else f"{backend} ({threads} thread{'s' if threads > 1 else ''})"
        note = f"interval from {interval.source}: {predict.coverage(interval.n):.0%} of cells like those fall in it"
        if network and model.factor_without:
            note = f"the sum of its ops x{model.network_factor:.2f}, this device's network factor; {note}"
        elif network:
            note = (
                f"the sum of its ops: no network factor without {predict.MIN_INTERVAL_CELLS} design networks of two "
                f"families measured "
                f"(`shufflebench run configs/paper/networks.yaml`); {note}"
            )
        print(
            f"  {where:<26} {ms:9.3f} ms  {predict.LEVEL:.0%} interval {low:.3f} to {high:.3f} ms  mostly {top}\n"
            f"  {'':<26} ({note})"
        )


def cmd_fleet_run(args: argparse.Namespace) -> int:
    from shufflebench import config, fleet, runner

    sweep = config.load(args.config)
    _keep_backends(sweep, args.backend)
    names = [n for item in args.devices or [] for n in item.split(",") if n]
    rows, lost = fleet.run(sweep, args.scheduler, Path(args.results), names=names or None, grace=args.grace)
    if rows:
        print(runner.summary_table(rows))
    if lost:
        print(
            f"shufflebench fleet run: {', '.join(lost)} left the cluster before all their cells were measured; run "
            "the same command again when they are back to measure the rest",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_fleet_status(args: argparse.Namespace) -> None:
    from shufflebench import fleet

    print(fleet.status(args.scheduler))


def cmd_fleet_worker(args: argparse.Namespace) -> None:
    from shufflebench import fleet

    fleet.serve(args.scheduler, args.label)


def cmd_compare(args: argparse.Namespace) -> int:
    from shufflebench.report.compare import compare

    paths, baseline = [Path(p) for p in args.results], args.baseline
    if baseline is None and paths[0].is_dir() and not any(paths[0].glob("*.csv")):
        from shufflebench import device  # a results root first: this device's folder in it is the baseline

        here = device.collect()["device_id"]
        baseline = here if (paths[0] / here).is_dir() else None
    result = compare(paths, Path(args.out), baseline, args.fail_above)
    if args.json:
        print(json.dumps(result.summary(), indent=1))
    else:
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(result.index)
    if result.fail_above is None:
        return 0
    for r in result.regressions:
        print(
            f"slower: {r['cell']} on {r['folder']}: {r['baseline_ms']:.3f} -> {r['median_ms']:.3f} ms "
            f"(+{r['slower']:.1%}, beyond both intervals)",
            file=sys.stderr,
        )
    verdict = f"{len(result.regressions)} cell(s) slower than the baseline by more than {result.fail_above:.0%}"
    print(
        f"regression gate: {verdict}" if result.regressions else f"regression gate: passed ({verdict})", file=sys.stderr
    )
    return 1 if result.regressions else 0


def cmd_breakdown(args: argparse.Namespace) -> None:
    from shufflebench import breakdown, device, lock

    meta = device.collect()
    folder = Path(args.results) / meta["device_id"]
    with lock.device_lock(meta["machine_key"], f"pid {os.getpid()}, shufflebench breakdown"):
        if args.name:
            params: dict[str, Any] = parse_assignments(args.params)
            if args.input_shape:
                params["input_shape"] = args.input_shape
            label = " ".join([args.name, *args.params])
            path = breakdown.profile(folder, label, args.name, params, runs=args.runs)
        else:
            path = breakdown.profile_figure2(folder, runs=args.runs)
    print(path)


def describe_row(row: dict[str, Any]) -> str:
    """The statistics of one measured cell, for a terminal."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    interval = (
        f"{row['ci_level']:.1%} interval [{ms(row['ci_low_ms'])}, {ms(row['ci_high_ms'])}]"
        if row["ci_level"]
        else "no interval (too few processes)"
    )
    lines = [
        row["cell"],
        f"median  {row['median_ms']:.4f} ms (median of {row['processes']} process medians)   {interval}",
        f"IQR {ms(row['iqr_ms'])}  p10 {ms(row['p10_ms'])}  p90 {ms(row['p90_ms'])}  p99 {ms(row['p99_ms'])}  "
        f"mean {row['mean_ms']:.4f}  std {row['std_ms']:.4f} ms, of {row['percentiles_of']}",
        f"process medians  {', '.join(f'{m:.4f}' for m in row['process_medians_ms'])} ms",
        f"throughput  {row['images_per_s']:.1f} images/s, {row['batches_per_s']:.1f} batches/s",
    ]
    if row["pipelined_ms"] is not None:
        lines.append(
            f"back to back  {row['pipelined_ms']:.4f} ms per call, {row['pipelined_images_per_s']:.1f} images/s"
        )
    lines.append(f"{row['samples']} samples; FLOPs {row['flops']:,}  MAC {row['mac']:,}")
    if row["noise"]:  # one line per reason, noise first: each says what to do
        from shufflebench.stats import NOTES, cause_of, reasons_of

        for reason in reasons_of(row["noise"]):
            lines.append(f"{'note' if cause_of(reason) in NOTES else 'noisy'}: {reason}")
    return "\n".join(lines)


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    cells = [[f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    numeric = [isinstance(rows[0][c], int) for c in columns] if rows else [False] * len(columns)
    for line in [columns, *cells]:
        print("  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(line, widths, numeric)).rstrip())


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def scheduler_address(text: str) -> str:
    """An argparse type: a Dask scheduler's address, ``HOST:PORT`` with an optional ``PROTOCOL://``."""
    if not re.fullmatch(r"(?:[a-z]+://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):\d{1,5}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a scheduler address; give HOST:PORT, e.g. tcp://10.0.0.5:8786"
        )
    return text


def percentage(text: str) -> float:
    """An argparse type: a percentage, ``5%`` or ``5``, as a fraction (0.05)."""
    value = positive_number(text.strip().removesuffix("%"))
    return value / 100


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _workload_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "name",
        help="a workload (see `shufflebench list`), an import path pkg.module:callable or file.py:callable, "
        "or an .onnx file",
    )
    p.add_argument("params", nargs="*", metavar="key=value", help="workload parameters, e.g. c1=128 c2=128")
    p.add_argument(
        "--input-shape", help="one sample's shape without the batch, e.g. 3x224x224, where the model gives none"
    )


def _json_flag(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--json", action="store_true", help=help)


def _results_option(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--results", default="results", help=help)


DESCRIPTION = """\
Measure how fast CNN building blocks and whole networks run on this device, next to their FLOPs and memory access
cost (MAC): ShuffleNet V2's guideline experiments G1-G4 and its networks, or a model of your own, on PyTorch and
ONNX Runtime (CPU, CUDA, ARM)."""

EPILOG = """\
examples:
  shufflebench time shufflenet_v2 width=1.0              one network, 6 processes, median and 95% interval
  shufflebench time mymodels:make_net --threads 1        a model of yours (module:callable, file.py:callable, .onnx)
  shufflebench run configs/default.yaml                  a sweep; results/<device>/default.csv, resumable
  shufflebench report                                    plots and the paper's tables, reports/<device>/index.md
  shufflebench compare results/A results/B --fail-above 5%%   devices or versions side by side; a regression gate

`shufflebench VERB --help` gives each verb's options."""


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="shufflebench",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser, title="verbs", metavar="VERB")

    p = verbs.add_parser("list", help="list workloads with their parameters and defaults")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'shufflenet*'")
    p.add_argument("--backends", action="store_true", help="list the backends and the settings each takes instead")
    p.set_defaults(func=cmd_list)

    p = verbs.add_parser("cost", help="params, FLOPs and MAC of one workload")
    _workload_arguments(p)
    p.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    p.add_argument("--by-layer", action="store_true", help="also print one row per layer (module path)")
    _json_flag(p, "print one JSON object")
    p.set_defaults(func=cmd_cost)

    p = verbs.add_parser("device", help="this device's fingerprint: id, CPU, GPU, library versions")
    _json_flag(p, "print the metadata as JSON")
    p.add_argument(
        "--probe", action="store_true", help="also measure the roofs: peak matmul GFLOP/s and memory GB/s per backend"
    )
    p.set_defaults(func=cmd_device)

    p = verbs.add_parser("run", help="measure the cells of a sweep file and write results/<device>/<sweep>.csv")
    p.add_argument("config", help="sweep file (configs/default.yaml) or bundle folder (from `shufflebench export`)")
    p.add_argument("--backend", action="append", help="only cells of this backend (repeatable)")
    _results_option(p, "results folder (default: results)")
    p.add_argument(
        "--fresh", action="store_true", help="measure the selected cells again, discarding their earlier rows"
    )
    p.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    p.set_defaults(func=cmd_run)

    p = verbs.add_parser("export", help="a sweep's ONNX Runtime cells as a bundle to run where torch is not installed")
    p.add_argument("config", help="sweep file, e.g. configs/arm.yaml")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--backend", action="append", help="only cells of this ORT backend (repeatable)")
    p.set_defaults(func=cmd_export)

    p = verbs.add_parser("time", help="measure one cell without a sweep file")
    _workload_arguments(p)
    p.add_argument(
        "--backend",
        help="torch-cpu (default; ort-cpu for an .onnx file), torch-cuda, ort-cpu, ort-cuda, ort:<Provider>",
    )
    p.add_argument("--batch", type=positive_int, default=1)
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: physical cores)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SETTING=VALUE",
        help="a backend setting, e.g. dtype=float16 (repeatable; `shufflebench list --backends` shows each backend's)",
    )
    p.add_argument(
        "--processes", type=positive_int, default=6, help="worker processes (default 6, for a 95%% interval)"
    )
    p.add_argument("--min-time", type=positive_number, default=1.0, help="seconds of sampling per process (default 1)")
    p.add_argument(
        "--timeout", type=positive_number, default=600.0, help="seconds before a worker counts as hung (default 600)"
    )
    _json_flag(p, "print the results row as JSON")
    p.set_defaults(func=cmd_time)

    p = verbs.add_parser(
        "breakdown", help="time shares by op category: Figure 2's networks, or the workload named (any kind)"
    )
    p.add_argument("name", nargs="?", help="a workload, an import path or an .onnx file (default: Figure 2's networks)")
    p.add_argument("params", nargs="*", metavar="key=value", help="workload parameters")
    p.add_argument("--input-shape", help="one sample's shape without the batch, where the model gives none")
    _results_option(p, "results folder (default: results)")
    p.add_argument("--runs", type=positive_int, default=20, help="profiled runs per source (default 20)")
    p.set_defaults(func=cmd_breakdown)

    p = verbs.add_parser("report", help="plots and paper tables from results, as reports/<device>/index.md")
    p.add_argument("results", nargs="*", help="device folders or results roots (default: this device's)")
    p.add_argument("--out", help="output folder (default: reports/<device-id>)")
    _json_flag(p, "also print each device's cells, paper-table verdicts and noise by cause as JSON")
    p.set_defaults(func=cmd_report)

    p = verbs.add_parser("site", help="the results as a static site that opens from file:// (site/index.html)")
    p.add_argument("results", nargs="*", help="device folders or results roots (default: results)")
    p.add_argument("--out", default="site", help="output folder, replaced (default: site)")
    p.set_defaults(func=cmd_site)

    p = verbs.add_parser(
        "calibrate", help="measure the single-op cells the latency predictor is fitted on (about 7 minutes)"
    )
    p.add_argument("--backend", action="append", help="a backend to calibrate (repeatable; default torch-cpu, ort-cpu)")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads (default 1)")
    p.add_argument(
        "--cache",
        choices=("warm", "cold"),
        default="cold",
        help="CPU cells with the L2 evicted before each call, as ops run inside a network (cold, the default), or warm",
    )
    _results_option(p, "results folder (default: results)")
    p.add_argument("--fresh", action="store_true", help="measure every cell again")
    p.add_argument("--dry-run", action="store_true", help="list the cells and exit")
    p.add_argument("--write", metavar="FILE", help="write the generated sweep to FILE (to export it as a bundle)")
    p.set_defaults(func=cmd_calibrate)

    p = verbs.add_parser("predict", help="predicted latency of a workload on this device, from its calibration")
    _workload_arguments(p)
    p.add_argument("--backend", action="append", help="only this backend (repeatable; default every calibrated one)")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size (default 1)")
    _results_option(p, "results folder holding this device's calibrate.csv (default: results)")
    p.set_defaults(func=cmd_predict)

    p = verbs.add_parser("fleet", help="many devices from this host, on a Dask cluster (pip install '.[fleet]')")
    fleet_verbs = p.add_subparsers(dest="fleet_verb", required=True, parser_class=_Parser)
    q = fleet_verbs.add_parser("run", help="measure a sweep on every shufflebench worker of the cluster")
    q.add_argument("config", help="sweep file")
    q.add_argument(
        "--scheduler", required=True, type=scheduler_address, help="the Dask scheduler's address, e.g. tcp://host:8786"
    )
    q.add_argument("--devices", action="append", help="only these device ids or labels (comma-separated, repeatable)")
    q.add_argument("--backend", action="append", help="only cells of this backend (repeatable)")
    q.add_argument("--grace", type=positive_number, default=60.0, help="seconds to wait for a device that left (60)")
    _results_option(q, "results folder on this host (default: results)")
    q.set_defaults(func=cmd_fleet_run)
    q = fleet_verbs.add_parser("status", help="the devices the cluster knows: id, machine key, backends, busy or idle")
    q.add_argument("--scheduler", required=True, type=scheduler_address, help="the Dask scheduler's address")
    q.set_defaults(func=cmd_fleet_status)
    q = fleet_verbs.add_parser("worker", help="serve this device to a fleet (a Dask worker for this machine)")
    q.add_argument("scheduler", type=scheduler_address, help="the Dask scheduler's address, e.g. tcp://host:8786")
    q.add_argument("--label", help="a name that tells identical machines apart, added to the device id")
    q.set_defaults(func=cmd_fleet_worker)

    p = verbs.add_parser("compare", help="the same cells across devices or versions, side by side; a regression gate")
    p.add_argument("results", nargs="+", help="device folders or results roots; the first is the baseline")
    p.add_argument("--out", default="reports/compare", help="output folder (default: reports/compare)")
    p.add_argument("--baseline", help="the device id or folder to compare against (default: the first folder given)")
    p.add_argument(
        "--fail-above",
        type=percentage,
        metavar="PERCENT",
        help="exit 1 when a common cell is slower than the baseline by more than PERCENT (e.g. 5%%) and beyond both "
        "medians' intervals",
    )
    _json_flag(p, "print the comparison as JSON")
    p.set_defaults(func=cmd_compare)
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("shufflebench")
    except metadata.PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
        return "(not installed)"


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the run stops cleanly and says what it kept."""

    signal_number = signal.SIGTERM


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Every failure a user can cause is one line on stderr: exit status 2 for bad input or an unusable
    path, 128 + the signal for an interrupted run (130 for Ctrl-C), 1 for a run whose every cell failed, and for an
    internal error (with ``--debug`` or SHUFFLEBENCH_DEBUG=1, its traceback)."""
    args = make_parser().parse_args(argv)
    debug = args.debug or os.environ.get("SHUFFLEBENCH_DEBUG") == "1"
    if not sys.warnoptions:  # libraries' warnings are for their developers; `python -W` shows them
        warnings.simplefilter("ignore")
    prog = f"shufflebench {args.verb}"
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt as e:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signal_number", signal.SIGINT)
    except BrokenPipeError:  # `shufflebench cost ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a folder that cannot be written, a path that is a file, a full disk
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"{prog}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - a bug: one line, and the traceback on request
        if debug:
            raise
        print(
            f"{prog}: internal error: {type(e).__name__}: {_first(e)} (run again with --debug for the traceback, and "
            "report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
