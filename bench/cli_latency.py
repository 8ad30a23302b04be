"""Latency of the ``rsnnc`` commands that should answer at once (issue 20 acceptance: under 1 s).

Each command runs as a fresh process (the console script, as a user types it): ``--help`` of the
program and of every command, ``targets``, ``passes`` and a usage error. Median of ``--repeats``
runs after one warm-up; the load average is recorded with the machine info (the machine is shared).

    .venv/bin/python bench/cli_latency.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS, machine_info, markdown_table, median_time, write_json, write_markdown  # noqa: E402
from rsnn_compiler.cli.main import all_commands  # noqa: E402

RSNNC = str(Path(sys.executable).with_name("rsnnc"))
GOAL_S = 1.0


def cases() -> list[tuple[str, list[str], int]]:
    """(label, argv, expected exit code)."""
    rows = [("rsnnc --help", ["--help"], 0)]
    rows += [(f"rsnnc {name} --help", [name, "--help"], 0) for name in all_commands()]
    rows += [("rsnnc targets", ["targets"], 0), ("rsnnc passes", ["passes"], 0),
             ("rsnnc build (usage error)", ["build"], 2), ("rsnnc --version", ["--version"], 0)]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows, results = [], []
    for label, argv, expected in cases():
        def once(argv=argv):
            return subprocess.run([RSNNC, *argv], capture_output=True).returncode

        median, samples, code = median_time(once, args.repeats)
        assert code == expected, (label, code)
        results.append({"command": label, "median_s": median, "samples_s": samples})
        rows.append([label, f"{median:.3f}", f"{max(samples):.3f}", "yes" if median < GOAL_S else "NO"])
    table = markdown_table(["command", "median s", "max s", f"< {GOAL_S:g} s"], rows)
    print(table)
    info = machine_info()
    write_json(RESULTS / "cli_latency.json", {"machine": info, "goal_s": GOAL_S, "results": results})
    write_markdown(RESULTS / "cli_latency.md", "CLI latency (fresh process per command)",
                   f"Load average at the end (1/5/15 min): {info['load_avg_1_5_15']}\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
