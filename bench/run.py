"""Run the benchmark as a script: ``uv run python bench/run.py [--smoke]``."""

import typer

from zhibao_bench.cli import bench

if __name__ == "__main__":
    typer.run(bench)
