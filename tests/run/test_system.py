"""The CPU's identity beyond its model name, read from /proc/cpuinfo."""

from __future__ import annotations

from arena.run.system import cpu_id

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


def test_no_id_where_cpuinfo_has_no_such_fields(tmp_path):
    arm = tmp_path / "arm"
    arm.write_text(ARM)
    assert cpu_id(arm) == "" and cpu_id(tmp_path / "missing") == ""
