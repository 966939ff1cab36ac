"""What machine this is, read without importing any framework (so the parent process stays light)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import subprocess
from functools import cache
from pathlib import Path

import psutil

import arena
from arena.results.schema import System

REPO = Path(__file__).resolve().parents[2]


@cache
def describe() -> System:
    cpu, identity, gpu, nvidia = cpu_model(), cpu_id(), gpu_name(), nvidia_gpus()
    return System(
        platform_id=platform_id(cpu, gpu, identity),
        cpu_model=cpu,
        cpu_id=identity,
        physical_cores=psutil.cpu_count(logical=False),
        logical_cores=psutil.cpu_count(logical=True),
        ram_bytes=psutil.virtual_memory().total,
        os=f"{platform.system()} {platform.release()} ({platform.machine()})",
        python=platform.python_version(),
        gpu=gpu,
        gpu_driver=nvidia.get("driver", ""),
        gpu_cuda=nvidia.get("cuda", ""),
        gpu_memory_bytes=nvidia.get("memory_bytes"),
        hostname=socket.gethostname(),
        arena_version=arena.__version__,
        arena_commit=git_commit(),
    )


def detect_matrix() -> str:
    """The matrix for this machine: apple on Apple Silicon, nvidia where an NVIDIA GPU is visible, cpu otherwise."""
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return "apple"
    if shutil.which("nvidia-smi"):
        return "nvidia"
    return "cpu"


def default_threads() -> int:
    """Physical cores: hyper-threads rarely help dense kernels, and every framework gets the same."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def cpu_model() -> str:
    if platform.system() == "Darwin":
        return _run(["sysctl", "-n", "machdep.cpu.brand_string"]) or platform.processor()
    return cpuinfo_fields().get("model name") or platform.processor() or platform.machine()


def cpuinfo_fields(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """Linux's /proc/cpuinfo as field -> the first value it gives (the first processor's: every core of
    these machines is the same CPU); {} where there is no such file."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_id(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """"AuthenticAMD family 26 model 2 stepping 1": what tells two CPUs with one model name apart (this
    project's 2-core VMs report 'AMD EPYC' for a Zen 4 and a Zen 5 host alike). "" where the OS has no
    /proc/cpuinfo fields for it (macOS, ARM Linux)."""
    fields = cpuinfo_fields(cpuinfo)
    if not {"vendor_id", "cpu family", "model"} <= fields.keys():
        return ""
    return f"{fields['vendor_id']} family {fields['cpu family']} model {fields['model']} stepping {fields.get('stepping', '?')}"


def gpu_name() -> str:
    if name := nvidia_gpus().get("name"):
        return name
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return f"{cpu_model()} GPU"
    return ""


@cache
def nvidia_gpus() -> dict:
    """The NVIDIA GPUs nvidia-smi lists: their names, the driver's version, the CUDA version it supports
    and the first GPU's memory; {} without nvidia-smi or a GPU."""
    if not shutil.which("nvidia-smi"):
        return {}
    rows = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"])
    gpus = [[field.strip() for field in row.split(",")] for row in rows.splitlines() if row.count(",") == 2]
    if not gpus:
        return {}
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", _run(["nvidia-smi"]))
    memory_mib = gpus[0][2]
    return {"name": ", ".join(sorted({name for name, _, _ in gpus})), "driver": gpus[0][1], "cuda": cuda.group(1) if cuda else "",
            "memory_bytes": int(float(memory_mib)) * 2**20 if memory_mib.replace(".", "").isdigit() else None}


def platform_id(cpu: str, gpu: str, cpu_identity: str = "") -> str:
    """A stable slug naming the hardware (results from many machines are grouped by it).

    A model name without a model number gets the CPU's family and model from `cpu_identity` (`cpu_id`):
    this project's 2-core VMs call a Zen 3, a Zen 4 and a Zen 5 host "AMD EPYC" alike, and their cells
    differ up to 5x (ResNet-50 in torch: 3.2x slower on family 25 model 1 than on family 26 model 2), so
    one id must not hold both. Results recorded before this carry "amd-epyc-2c" for family 26 model 2."""
    cores = psutil.cpu_count(logical=False) or 0
    if not re.search(r"\d", cpu) and (found := re.search(r"family (\d+) model (\d+)", cpu_identity)):
        cpu = f"{cpu} f{found[1]}m{found[2]}"
    label = f"{cpu} {cores}c" + (f" {gpu}" if gpu and gpu not in cpu else "")
    label = re.sub(r"\((R|TM)\)|\bCPU\b|\bProcessor\b|@.*?GHz|\d+-Core", " ", label, flags=re.I)
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def git_commit() -> str:
    """HEAD, `-dirty` when a tracked file differs from it. The committed results/ folder does not count:
    it is what runs write, so a run that starts after another wrote its results there (two commands of
    one session, a resumed run) still runs the committed code."""
    commit = _run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"])
    if commit and _run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"]):
        commit += "-dirty"
    return commit


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
