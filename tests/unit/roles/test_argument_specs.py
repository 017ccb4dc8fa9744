"""Role argument specs reject bad variables before any task runs.

Validation is the first task of every role and runs on the controller, so these tests need no
lab VM: each play targets localhost in check mode and must stop at the validation task.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / 'ansible-playbook')

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: openblock.storage.%s
"""


@pytest.mark.parametrize('role, extra, words', [
    ('storage_node', {'storage_node_volumes': 'not-a-list'}, ['storage_node_volumes']),
    ('storage_node', {'storage_node_force_devices': 'perhaps'}, ['storage_node_force_devices']),
    ('storage_node', {'storage_node_volumes': [{'size': '1G'}]}, ['name']),
    ('storage_node', {'storage_node_volumes': [{'name': 'x', 'size': '1G', 'state': 'gone'}]}, ['state', 'gone']),
    ('compute_initiator', {'compute_initiator_lvm_filter': 'sometimes'}, ['compute_initiator_lvm_filter']),
    ('multipath', {'multipath_find_multipaths': 'always'}, ['multipath_find_multipaths', 'always']),
])
def test_role_argument_specs_reject_bad_variables(tmp_path, role, extra, words):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(PLAY % role)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', 'localhost,', '--check', str(playbook),
                           '-e', json.dumps(extra)], capture_output=True, text=True, check=False, env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    # The play stopped at the validation task: the first task ran and nothing after it did.
    assert 'Validating arguments against arg spec' in output
    assert 'ok=0' in output and 'changed=0' in output
    for word in words:
        assert word in output, output
