"""The `controller` rows of tests/bad_inputs.yml: bad role variables stop the role before any change.

All rows run in one ansible-playbook run on localhost, in check mode: every row is an inventory
host (all local) with the row's variables, and one play includes each host's role. A host fails
on its own, so every row is judged apart: its only failed task is the argument-spec validation or
the role's check task, nothing before it changed, and the message names the variable and the value.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
TABLE = REPO / 'tests' / 'bad_inputs.yml'
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / 'ansible-playbook')
# The tasks a role may fail at: the argument-spec validation and the role's own check.
CHECK_TASKS = ('Validating arguments against arg spec', "Check the role's variables before changing anything",
               'Check that every host of the play has a unique host_id in 1..2000')

PLAY = """
- name: Bad role variables, one inventory host per row
  hosts: rows
  gather_facts: false
  tasks:
    - name: Run the row's role
      ansible.builtin.include_role:
        name: openblock.storage.{{ bad_input_role }}
"""

ROWS = [row for row in yaml.safe_load(TABLE.read_text())['rows'] if row['where'] == 'controller']


def host_name(row_id):
    return 'row-' + row_id


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """Run every row in one ansible-playbook; return {host: (task, result)} for each failed host, the recap and the output."""
    tmp = tmp_path_factory.mktemp('bad-role-inputs')
    local = dict(ansible_connection='local', ansible_python_interpreter=sys.executable)
    rows, attached = {}, {}
    for index, row in enumerate(ROWS):
        host = dict(local, bad_input_role=row['target'], **row.get('vars', {}))
        if row['target'] == 'shared_lvm':
            host.setdefault('shared_lvm_host_id', 100 + index)
        rows[host_name(row['id'])] = host
        for peer, peer_vars in (row.get('peers') or {}).items():
            rows[peer] = dict(local, bad_input_role=row['target'], **peer_vars)
        for other, other_vars in (row.get('inventory') or {}).items():
            attached[other] = dict(local, **other_vars)
    inventory = tmp / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'children': {'rows': {'hosts': rows},
                                                              'attached': {'hosts': attached}}}}))
    playbook = tmp / 'play.yml'
    playbook.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_CALLBACK_RESULT_FORMAT='json',
               ANSIBLE_CALLBACK_FORMAT_PRETTY='0', ANSIBLE_DISPLAY_FAILED_STDERR='0')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-i', str(inventory), '--check', '--forks', '20', str(playbook)],
                          capture_output=True, text=True, check=False, env=env, timeout=600)
    output = proc.stdout + proc.stderr
    failures, task = {}, None
    for line in proc.stdout.splitlines():
        header = re.match(r'^TASK \[(.*)\] \**$', line)
        if header:
            task = header.group(1)
            continue
        fatal = re.match(r'^fatal: \[([^\]]+)\]: FAILED! => (\{.*\})$', line)
        if fatal:
            failures[fatal.group(1)] = (task, json.loads(fatal.group(2)))
    recap = dict(re.findall(r'^(\S+)\s+: (ok=.*)$', proc.stdout, re.MULTILINE))
    return failures, recap, output


def test_the_table_has_controller_rows_for_every_role():
    assert {row['target'] for row in ROWS} == {'storage_node', 'compute_initiator', 'multipath', 'shared_lvm'}


@pytest.mark.parametrize('row', ROWS, ids=[row['id'] for row in ROWS])
def test_bad_role_variable_is_refused_before_any_change(run, row):
    failures, recap, output = run
    host = host_name(row['id'])
    assert host in failures, 'row %s did not fail:\n%s' % (row['id'], output[-4000:])
    task, result = failures[host]
    # The host stopped at the validation or check task: nothing before it ran a change.
    assert any(name in task for name in CHECK_TASKS), (task, result)
    counts = dict(pair.split('=') for pair in recap[host].split())
    assert counts['changed'] == '0' and counts['failed'] == '1', recap[host]
    message = result.get('msg', '')
    assert row['option'] in message, message
    assert row['value'] in message, message
    assert row['expect'] in message, message
