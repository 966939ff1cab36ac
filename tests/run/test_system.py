"""The CPU's identity beyond its model name, read from /proc/cpuinfo."""

from __future__ import annotations

import psutil

from arena.run.system import cpu_id, platform_id

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
stepping\t: 1
"""

ARM = """processor\t: 0
BogoMIPS\t: 48.00
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def test_two_cpus_with_one_model_name_get_different_ids(tmp_path):
    zen5 = tmp_path / "zen5"
    zen5.write_text(X86)
    zen4 = tmp_path / "zen4"
    zen4.write_text(X86.replace("cpu family\t: 26\nmodel\t\t: 2", "cpu family\t: 25\nmodel\t\t: 17", 1))
    assert cpu_id(zen5) == "AuthenticAMD family 26 model 2 stepping 1", "the first processor's block"
    assert cpu_id(zen4) == "AuthenticAMD family 25 model 17 stepping 1"


def test_a_model_name_without_a_model_number_gets_the_cpu_s_family_and_model(monkeypatch):
    """Two hosts that both say "AMD EPYC" are different platforms; a model number already says which CPU."""
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    assert platform_id("AMD EPYC", "", "AuthenticAMD family 25 model 1 stepping 1") == "amd-epyc-f25m1-2c"
    assert platform_id("AMD EPYC", "", "AuthenticAMD family 26 model 2 stepping 1") == "amd-epyc-f26m2-2c"
    assert platform_id("AMD EPYC 9654 96-Core Processor", "", "AuthenticAMD family 25 model 17 stepping 1") == "amd-epyc-9654-2c"
    assert platform_id("AMD EPYC", "", "") == "amd-epyc-2c", "no identity to add (macOS, ARM Linux)"


def test_no_id_where_cpuinfo_has_no_such_fields(tmp_path):
    arm = tmp_path / "arm"
    arm.write_text(ARM)
    assert cpu_id(arm) == "" and cpu_id(tmp_path / "missing") == ""


NVIDIA_SMI = """#!/bin/sh
case "$*" in
  *--query-gpu=name,driver_version,memory.total*) printf 'NVIDIA H200, 580.65.06, 143771\\nNVIDIA H200, 580.65.06, 143771\\n' ;;
  "") printf '| NVIDIA-SMI 580.65.06              Driver Version: 580.65.06      CUDA Version: 13.0     |\\n' ;;
  *) exit 9 ;;
esac
"""


def test_an_nvidia_machine_records_its_gpu_driver_and_cuda_version(tmp_path, monkeypatch):
    """Read from nvidia-smi as that machine answers (here a stand-in on PATH with an H200's answers)."""
    from arena.run import system

    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(NVIDIA_SMI)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    system.nvidia_gpus.cache_clear()
    try:
        assert system.nvidia_gpus() == {"name": "NVIDIA H200", "driver": "580.65.06", "cuda": "13.0", "memory_bytes": 143771 * 2**20}
        assert system.gpu_name() == "NVIDIA H200" and system.detect_matrix() == "nvidia"
        fake.write_text("#!/bin/sh\necho 'No devices were found'; exit 6\n")  # a driver without a GPU it can reach
        system.nvidia_gpus.cache_clear()
        assert system.nvidia_gpus() == {}
    finally:
        system.nvidia_gpus.cache_clear()
