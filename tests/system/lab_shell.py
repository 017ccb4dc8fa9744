"""Shell commands on the lab's VMs through `labctl ssh`, which reuses one SSH master per VM: about
half a second a command under TCG. (A testinfra host of the ansible backend costs an ansible process
and a module run in the VM for each command and each file attribute it reads: several seconds.)
LAB_DIR of the environment names the lab, as for labctl itself."""

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

LABCTL = [sys.executable, str(Path(__file__).resolve().parents[2] / 'lab' / 'labctl')]


class Result(NamedTuple):
    rc: int
    stdout: str
    stderr: str


def sh(node, command, env=None, timeout=600):
    """Run ``command`` with the shell of root on ``node``; its exit code and output."""
    proc = subprocess.run(LABCTL + ['ssh', node, command], env=env, capture_output=True, text=True,
                          check=False, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


class Node:
    """One lab VM by name; run() as a testinfra host has it (rc, stdout, stderr)."""

    def __init__(self, name):
        self.name = name

    def run(self, command):
        return sh(self.name, command)
