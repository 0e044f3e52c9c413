"""The benchmark's outputs: machine facts, derived figures (ratios, growth slopes, targets),
and the JSON document, Markdown table and PNG plot written to the results directory."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import stonewall
from stonewall.benchmarks.cases import CaseResult

REPOSITORY = Path(__file__).resolve().parent.parent
DEBIAN_PACKAGES = ("tgt", "sg3-utils", "fence-agents", "libiscsi7", "python3",
                   "python3-matplotlib")
# The references of the ratios: fence_scsi as a multipath user configures it (one map per
# LUN). Rows of other baselines (fence_scsi per path, fence_mpath) are reported beside.
FENCE_SCSI_TOOLS = ("fence_scsi -o off", "fence_scsi -o status")
BASELINE_PREFIXES = ("fence_scsi", "fence_mpath")
# The targets (never asserted as unit tests; reported met or missed).
FENCE_SECONDS = {64: 0.05, 512: 0.2}
STATUS_256_SECONDS = 0.25
RATIO_TARGETS = {8: 10.0, 64: 30.0, 512: 30.0}
SLOPE_TARGET_MS = 0.15


def is_baseline(tool: str) -> bool:
    return tool.startswith(BASELINE_PREFIXES)


def machine_facts(repository: Path) -> dict[str, object]:
    """Cores, CPU, kernel, Python, package versions, and the tree that was measured."""
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(), "packages": _package_versions(),
            "commit": _git(repository, "rev-parse", "--short", "HEAD"),
            # PYTHONPATH may put another tree first (a proposed fix measured before it lands)
            "stonewall_imported_from": str(Path(stonewall.__file__).parent)
            if stonewall.__file__ else "",
            "tree_modified": bool(_git(repository, "status", "--porcelain", "--",
                                       "storage", "holder", "handlers", "lab", "benchmarks",
                                       ":(exclude)benchmarks/results"))}


def _package_versions() -> dict[str, str]:
    if shutil.which("dpkg-query") is None:
        return {}
    result = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n",
                             *DEBIAN_PACKAGES], capture_output=True, text=True, timeout=10)
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)


def _git(repository: str | Path, *args: str) -> str:
    if shutil.which("git") is None or not (Path(repository) / ".git").exists():
        return ""
    result = subprocess.run(["git", "-C", str(repository), *args], capture_output=True,
                            text=True, timeout=10)
    return result.stdout.strip()


# -- derived figures ---------------------------------------------------------------------
@dataclass(frozen=True)
class Slope:
    tool: str
    ms_per_lun_path: float
    intercept_ms: float
    sizes: tuple[int, ...]


def growth_slopes(results: Sequence[CaseResult]) -> list[Slope]:
    """Least-squares line through each fence tool's medians against LUN·paths."""
    slopes = []
    for tool in dict.fromkeys(r.tool for r in results if r.case == "fence"):
        points = [(r.lun_paths, r.stats.median) for r in results
                  if r.case == "fence" and r.tool == tool and r.stats]
        if len(points) < 2:
            continue
        count = len(points)
        mean_x = sum(x for x, _ in points) / count
        mean_y = sum(y for _, y in points) / count
        spread = sum((x - mean_x) ** 2 for x, _ in points)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
        slopes.append(Slope(tool, slope * 1000, (mean_y - slope * mean_x) * 1000,
                            tuple(sorted(x for x, _ in points))))
    return slopes


def ratios(results: Sequence[CaseResult]) -> list[dict[str, object]]:
    """fence_scsi's median over each stonewall tool's median, per size and case."""
    found = []
    for reference in results:
        if reference.tool not in FENCE_SCSI_TOOLS or reference.stats is None:
            continue
        for other in results:
            if (other.case == reference.case and other.luns == reference.luns
                    and not is_baseline(other.tool) and other.stats is not None):
                found.append({"case": reference.case, "luns": reference.luns,
                              "paths": reference.paths, "stonewall": other.tool,
                              "fence_scsi_median": reference.stats.median,
                              "stonewall_median": other.stats.median,
                              "ratio": reference.stats.median / other.stats.median})
    return found


def targets(results: Sequence[CaseResult]) -> list[dict[str, object]]:
    """Each of the issue's targets: the figure measured, the limit, met or missed."""
    checks: list[dict[str, object]] = []

    def check(what: str, value: float, limit: float, met: bool) -> None:
        checks.append({"target": what, "value": value, "limit": limit, "met": met})

    for result in results:
        if result.stats is None or is_baseline(result.tool):
            continue
        median = result.stats.median
        if result.case == "fence" and result.luns in FENCE_SECONDS:
            limit = FENCE_SECONDS[result.luns]
            check(f"fence {result.luns}x{result.paths} median, {result.tool} (s)", median,
                  limit, median < limit)
        if result.case == "status" and result.luns == 256:
            check(f"status 256x{result.paths} median, {result.tool} (s)", median,
                  STATUS_256_SECONDS, median < STATUS_256_SECONDS)
    for ratio in ratios(results):
        value = float(ratio["ratio"])
        if ratio["case"] == "fence" and ratio["luns"] in RATIO_TARGETS:
            limit = RATIO_TARGETS[int(ratio["luns"])]  # type: ignore[call-overload]
            check(f"fence_scsi / {ratio['stonewall']} at {ratio['luns']}x{ratio['paths']}",
                  value, limit, value >= limit)
        if ratio["case"] == "status":
            check(f"fence_scsi status / {ratio['stonewall']} at "
                  f"{ratio['luns']}x{ratio['paths']}", value, 1.0, value > 1.0)
    for slope in growth_slopes(results):
        if not is_baseline(slope.tool):
            check(f"slope {slope.tool} (ms per LUN·path)", slope.ms_per_lun_path,
                  SLOPE_TARGET_MS, slope.ms_per_lun_path < SLOPE_TARGET_MS)
    return checks


# -- outputs -----------------------------------------------------------------------------
def document(results: Sequence[CaseResult], machine: dict[str, object],
             settings: dict[str, object]) -> dict[str, object]:
    return {"machine": machine, "settings": settings,
            "results": [r.as_dict() for r in results], "ratios": ratios(results),
            "slopes": [s.__dict__ for s in growth_slopes(results)],
            "targets": targets(results)}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds * 1000:.0f}"


def _elsewhere(machine: dict[str, object]) -> str:
    source = str(machine.get("stonewall_imported_from") or "")
    return f" (stonewall imported from {source})" if source and source != str(REPOSITORY) else ""


def markdown(doc: dict[str, object]) -> str:
    """The results as Markdown tables (milliseconds)."""
    machine = doc["machine"]
    assert isinstance(machine, dict)
    packages = ", ".join(f"{k} {v}" for k, v in dict(machine.get("packages", {})).items())
    settings = doc.get("settings")
    note = settings.get("note") if isinstance(settings, dict) else ""
    lines = [f"Note: {note}", ""] if note else []
    installed = settings.get("entry_points_stonewall") if isinstance(settings, dict) else None
    if installed:
        lines += [f"Entry points run: {installed}.", ""]
    lines += [f"Machine: {machine['cores']} cores ({machine['cpu']}), kernel "
             f"{machine['kernel']}, Python {machine['python']}; {packages}. "
             f"Commit {machine['commit'] or '?'}"
             f"{' + uncommitted changes' if machine['tree_modified'] else ''}"
             f"{_elsewhere(machine)}, "
             f"{machine['date_utc']}.", "",
             "| case | tool | LUNs × paths | min ms | median ms | max ms | runs | note |",
             "|---|---|---|---|---|---|---|---|"]
    for row in doc["results"]:  # type: ignore[union-attr]
        seconds = row["seconds"]
        size = f"{row['luns']} × {row['paths']}" if row["luns"] else "–"
        note = "; ".join(f"{k} {v}" for k, v in row["notes"].items())
        if seconds:
            lines.append(f"| {row['case']} | {row['tool']} | {size} | {_ms(seconds['min'])} | "
                         f"{_ms(seconds['median'])} | {_ms(seconds['max'])} | "
                         f"{len(seconds['runs'])} | {note} |")
        else:
            lines.append(f"| {row['case']} | {row['tool']} | {size} | – | – | – | 0 | "
                         f"FAILED: {row['error']} |")
    if doc["ratios"]:
        lines += ["", "| case | LUNs × paths | stonewall tool | fence_scsi / stonewall |",
                  "|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['luns']} × {r['paths']} | {r['stonewall']} | "
                  f"{r['ratio']:.1f}× |" for r in doc["ratios"]]  # type: ignore[union-attr]
    if doc["slopes"]:
        lines += ["", "| growth (fence) | ms per LUN·path | intercept ms | LUN·paths fitted |",
                  "|---|---|---|---|"]
        lines += [f"| {s['tool']} | {s['ms_per_lun_path']:.3f} | {s['intercept_ms']:.1f} | "
                  f"{', '.join(map(str, s['sizes']))} |" for s in doc["slopes"]]  # type: ignore
    if doc["targets"]:
        lines += ["", "| target | measured | limit | |", "|---|---|---|---|"]
        lines += [f"| {t['target']} | {t['value']:.4g} | {t['limit']:g} | "
                  f"{'met' if t['met'] else 'MISSED'} |" for t in doc["targets"]]  # type: ignore
    return "\n".join(lines) + "\n"


def plot(results: Sequence[CaseResult], path: Path, title: str) -> Path | None:
    """Fence time against LUN count, one line per tool, log-log with min–max bars; None
    when matplotlib is missing (Debian python3-matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        return None
    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=110)
    for tool in dict.fromkeys(r.tool for r in results if r.case == "fence"):
        rows = sorted((r for r in results if r.case == "fence" and r.tool == tool and r.stats),
                      key=lambda r: r.luns)
        if not rows:
            continue
        medians = [r.stats.median for r in rows if r.stats]
        low = [m - r.stats.min for m, r in zip(medians, rows) if r.stats]
        high = [r.stats.max - m for m, r in zip(medians, rows) if r.stats]
        axes.errorbar([r.luns for r in rows], medians, yerr=[low, high], marker="o",
                      capsize=3, label=tool)
    for luns, limit in FENCE_SECONDS.items():
        axes.plot([luns], [limit], marker="v", color="red", linestyle="none",
                  label="target" if luns == min(FENCE_SECONDS) else None)
        axes.annotate(f"target {limit * 1000:g} ms", (luns, limit), fontsize=7,
                      textcoords="offset points", xytext=(4, -10), color="red")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("LUNs (2 paths each)")
    axes.set_ylabel("fence, verified: process start to exit (s)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
    return path


def write_outputs(doc: dict[str, object], results: Sequence[CaseResult],
                  directory: Path) -> dict[str, Path | None]:
    """bench.json, bench.md and bench.png in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "bench.json"
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    md_path = directory / "bench.md"
    md_path.write_text(markdown(doc))
    machine = doc["machine"]
    assert isinstance(machine, dict)
    title = (f"{machine['cores']} cores, kernel {machine['kernel']}, "
             f"{machine['date_utc']}")
    return {"json": json_path, "markdown": md_path,
            "plot": plot(results, directory / "bench.png", title)}
