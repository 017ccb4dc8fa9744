"""Harness for module integration tests: one VM of the lab's `single` topology, shared by all.

`make integration` boots the topology once on Debian LAB_RELEASE (LAB_DIR=.build/lab-single-RELEASE)
and tears it down after every test file has run; run alone, the fixture boots it (or reuses a running instance).
Each test file cleans up what it created, because the next file runs on the same VM.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LABCTL = [sys.executable, str(REPO / 'lab' / 'labctl')]
NODE = 'lab1'


class Lab:
    """Runs shell commands and collection modules on the lab VM."""

    def __init__(self, lab_dir):
        self.env = dict(os.environ, LAB_DIR=str(lab_dir), ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'))
        self.inventory = Path(lab_dir) / 'inventory.yml'
        subprocess.run(LABCTL + ['inventory', '--output', str(self.inventory)], env=self.env, check=True)

    def sh(self, command, check=True, timeout=600, stdin=None):
        """Run ``command`` with bash on the VM as root, ``stdin`` (text) on its standard input;
        return (rc, stdout, stderr)."""
        proc = subprocess.run(LABCTL + ['ssh', NODE, command], env=self.env, capture_output=True, check=False,
                              text=True, timeout=timeout, input=stdin)
        if check and proc.returncode != 0:
            raise AssertionError('on %s: %r exited %d\nstdout: %s\nstderr: %s'
                                 % (NODE, command, proc.returncode, proc.stdout, proc.stderr))
        return proc.returncode, proc.stdout, proc.stderr

    def out(self, command):
        """stdout of a command that must succeed."""
        return self.sh(command)[1]

    def module(self, name, args, check=False, diff=False, verbosity=0, raw=False):
        """Run openblock.storage.<name> with ``args`` on the VM and return its result dict.

        With raw=True, return (result, full ansible output) so tests can search the output for
        things that must never appear in it (secrets).
        """
        cmd = [str(Path(sys.executable).parent / 'ansible'), NODE, '-i', str(self.inventory),
               '-m', 'openblock.storage.' + name, '-a', json.dumps(args)]
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
            verbosity = max(verbosity, 3)  # below -vvv, callbacks drop `diff` from the result
        if verbosity:
            cmd.append('-' + 'v' * verbosity)
        # The result comes from ad-hoc --tree (ansible-core's own tree callback): the `json`
        # stdout callback lives in ansible.posix, which the venv does not have.
        with tempfile.TemporaryDirectory() as tree:
            proc = subprocess.run(cmd + ['--tree', tree], env=self.env, capture_output=True, text=True,
                                  timeout=1800, check=False)
            try:
                with open(os.path.join(tree, NODE)) as handle:
                    result = json.load(handle)
                # callbacks strip `failed` (and warnings) from what they write; the exit code keeps it
                result.setdefault('failed', proc.returncode != 0)
            except (OSError, ValueError):
                raise AssertionError('no result from ansible (exit %d)\nstdout: %s\nstderr: %s'
                                     % (proc.returncode, proc.stdout, proc.stderr))
        if raw:
            return result, proc.stdout + proc.stderr
        return result


@pytest.fixture(scope='session')
def lab():
    lab_dir = Path(os.environ.get('LAB_DIR', REPO / '.build' / 'lab-single')).resolve()
    env = dict(os.environ, LAB_DIR=str(lab_dir))
    subprocess.run(LABCTL + ['up', 'single'], env=env, check=True)
    return Lab(lab_dir)
