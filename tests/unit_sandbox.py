"""Apply a unit file's seccomp directives to a test subprocess, without a running systemd.

Emulated as systemd 252 (Debian 12, Raspberry Pi OS bookworm) does it: ``SystemCallFilter=``
(allow list from ``systemd-analyze syscall-filter``, minus the ``~`` lines, anything else fails
with ``SystemCallErrorNumber=EPERM``), ``RestrictAddressFamilies=`` (other families fail with
EAFNOSUPPORT) and ``MemoryDenyWriteExecute=`` (no W+X mmap, no PROT_EXEC mprotect or SHM_EXEC
shmat), all through libseccomp. Used as ``subprocess.Popen(..., preexec_fn=sandbox.load)``: the BPF
program is built in the parent, so the forked child only makes two prctl calls (no allocation,
no locks, safe in a process with threads).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import re
import socket
import subprocess
import tempfile

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
BPF_INSTRUCTION_BYTES = 8
MAX_FAMILY = 64


def scmp_act_errno(code: int) -> int:
    """libseccomp's SCMP_ACT_ERRNO(code)."""
    return 0x00050000 | (code & 0xFFFF)


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class _ArgCmp(ctypes.Structure):
    _fields_ = (("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64))


def libseccomp() -> ctypes.CDLL | None:
    """The system's libseccomp, or None if it is not installed."""
    name = ctypes.util.find_library("seccomp")
    return ctypes.CDLL(name) if name else None


def syscall_groups() -> dict[str, list[str]]:
    """``@group -> members`` (names and nested groups), as this systemd knows them."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif not line.startswith("    "):
            current = None
        elif current is not None and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def directives(unit_text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, values in file order."""
    found: dict[str, list[str]] = {}
    for line in unit_text.splitlines():
        match = re.match(r"^(\w+)=(.*)$", line.strip())
        if match:
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


class UnitSandbox:
    """The seccomp filter that ``unit_text`` asks for, compiled here and loaded by :meth:`load` in a child."""

    def __init__(self, unit_text: str, lib: ctypes.CDLL) -> None:
        found = directives(unit_text)
        groups = syscall_groups()
        self.allowed: set[str] = set()
        for value in found.get("SystemCallFilter", []):
            names = _expand(value.lstrip("~").split(), groups)
            self.allowed = self.allowed - names if value.startswith("~") else self.allowed | names
        self.families = {int(getattr(socket, f)) for v in found.get("RestrictAddressFamilies", []) for f in v.split()}
        self.deny_write_execute = found.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes"
        if found.get("SystemCallErrorNumber") != ["EPERM"]:
            raise ValueError("the emulation answers refused system calls with EPERM only")
        self._lib = lib
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp))
        lib.seccomp_export_bpf.argtypes = (ctypes.c_void_p, ctypes.c_int)
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        self._ctx = lib.seccomp_init(scmp_act_errno(errno.EPERM))
        try:
            self._build()
            program = self._export()
        finally:
            lib.seccomp_release(self._ctx)
        self._program = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // BPF_INSTRUCTION_BYTES,
                                 ctypes.cast(self._program, ctypes.c_void_p))
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl

    def load(self) -> None:
        """Install the filter in this process (in the child: ``preexec_fn``)."""
        if self._prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        if self._prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(self._fprog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")

    def _export(self) -> bytes:
        with tempfile.TemporaryFile() as out:
            rc = self._lib.seccomp_export_bpf(self._ctx, out.fileno())
            if rc != 0:
                raise OSError(-rc, "seccomp_export_bpf")
            out.seek(0)
            return out.read()

    def _build(self) -> None:
        special = {"socket"} | ({"mmap", "mprotect", "pkey_mprotect", "shmat"} if self.deny_write_execute else set())
        for name in sorted(self.allowed - special):
            self._rule(SCMP_ACT_ALLOW, name)
        if "socket" in self.allowed:
            for family in range(MAX_FAMILY):
                action = SCMP_ACT_ALLOW if family in self.families else scmp_act_errno(errno.EAFNOSUPPORT)
                self._rule(action, "socket", _ArgCmp(0, SCMP_CMP_EQ, family, 0))
        if self.deny_write_execute:  # rules for the allowed argument patterns; the rest falls to EPERM
            write_exec = PROT_WRITE | PROT_EXEC
            for prot in (0, PROT_WRITE, PROT_EXEC):
                self._rule(SCMP_ACT_ALLOW, "mmap", _ArgCmp(2, SCMP_CMP_MASKED_EQ, write_exec, prot))
            for name in ("mprotect", "pkey_mprotect"):
                self._rule(SCMP_ACT_ALLOW, name, _ArgCmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))
            self._rule(SCMP_ACT_ALLOW, "shmat", _ArgCmp(2, SCMP_CMP_MASKED_EQ, SHM_EXEC, 0))

    def _rule(self, action: int, name: str, *conditions: _ArgCmp) -> None:
        number = self._lib.seccomp_syscall_resolve_name(name.encode())
        if number == -1:  # not a system call of this architecture
            return
        array = (_ArgCmp * max(1, len(conditions)))(*conditions)
        rc = self._lib.seccomp_rule_add_array(self._ctx, action, number, len(conditions), array)
        if rc != 0:
            raise OSError(-rc, f"seccomp_rule_add({name})")


def _expand(items: list[str], groups: dict[str, list[str]]) -> set[str]:
    names: set[str] = set()
    for item in items:
        names |= _expand(groups[item], groups) if item.startswith("@") else {item}
    return names
