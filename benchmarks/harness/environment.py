"""What every suite records beside its results: the command, the date, the commit, the machine."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from typing import Dict, Sequence

import torch


def environment(argv: Sequence[str], command: str = "python -m benchmarks.run") -> Dict[str, str]:
    """Command, date, commit, hardware and software of a suite's run (its ``environment.json``)."""
    def commit() -> str:
        try:
            return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "command": f"{command} {' '.join(argv)}".strip(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(),
        "hardware": f"{cpu}, {os.cpu_count()} logical CPUs, GPU: {gpu}",
        "torch_threads": str(torch.get_num_threads()),
        "software": f"python {platform.python_version()}, torch {torch.__version__}",
    }
