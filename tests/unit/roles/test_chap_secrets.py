"""The roles' CHAP account never shows in a -vvv run or in the Ansible log (issue #8, "Secrets").

No lab VM: the roles run on localhost in check mode, where they stop at the first task that needs
the lab (the LVM filter of storage_node's devices, systemd, which the controller does not run; the tgt
and open-iscsi it lacks are predicted, as on a bare host).
Two runs per role: from the top (the argument spec and the role's own check pass with the account,
and the run stops where expected), and from the task that hands the account to its module
(--start-at-task), whose result prints the module's arguments at -vvv: the password must be masked
there, and the masked marker must be present, so the secret did reach the module.
The lab side (files of 0600 on the hosts, a -vvv converge of site.yml) is molecule/default's verifier.
"""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / 'ansible-playbook')
SECRET = 'unit-only-Hq4vR8sLx2NpW7'
MASKED = 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
CHAP = {'user': 'openblock-unit', 'password': SECRET}
LOCAL = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
# storage1 carries the account; compute1's compute_initiator_chap must default to it.
INVENTORY = {'all': {'children': {
    'storage_nodes': {'hosts': {'storage1': dict(LOCAL, storage_node_chap=CHAP,
                                                 storage_node_devices=['/dev/openblock-unit-missing-disk'])}},
    'compute_nodes': {'hosts': {'compute1': dict(LOCAL, compute_initiator_name='iqn.2004-10.com.ubuntu:01:unit1')}},
}, 'vars': {'storage_node_volumes': [{'name': 'unit1', 'size': '1G', 'attach_to': ['compute1']}],
            'compute_initiator_portals': ['10.50.1.10:3260']}}}
PLAY = """
- name: The role with a CHAP account
  hosts: %s
  gather_facts: false
  roles:
    - role: openblock.storage.%s
"""
EXPORT_TASK = 'Export each volume to the initiators of the hosts it is attached to'
LOGIN_TASK = 'Log in to every attached target through every portal of the storage nodes'


def run_role(tmp_path, host, role, *args, inventory=None):
    (tmp_path / 'inventory.yml').write_text(yaml.safe_dump(inventory or INVENTORY))
    (tmp_path / 'play.yml').write_text(PLAY % (host, role))
    log = tmp_path / 'ansible.log'
    # ansible-core 2.21 leaves `invocation` out of results unless asked: ask, so that the arguments the
    # module got (the masked account) are printed on every core version
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_LOG_PATH=str(log), ANSIBLE_INJECT_INVOCATION='1')
    proc = subprocess.run([ANSIBLE_PLAYBOOK, '-vvv', '--check', '-i', str(tmp_path / 'inventory.yml'),
                           str(tmp_path / 'play.yml')] + list(args),
                          capture_output=True, text=True, check=False, env=env, timeout=300)
    output = proc.stdout + proc.stderr
    logged = log.read_text() if log.exists() else ''
    assert 'PLAY RECAP' in proc.stdout and logged, output[-3000:]
    assert SECRET not in output, 'the CHAP password is in the -vvv output'
    assert SECRET not in logged, 'the CHAP password is in the Ansible log'
    return proc, output


UNSTICK_TASK = 'Install the check that restarts iscsid when it loops on a connection it cannot rebind, run every 30 s'


def failed_task(output):
    """Name of the task whose result is the fatal one."""
    task = None
    for line in output.splitlines():
        if line.startswith('TASK ['):
            task = line[len('TASK ['):line.rindex(']')]
        if line.startswith('fatal: ['):
            return task.split(' : ', 1)[-1]
    return None


@pytest.mark.parametrize('host, role, stop', [
    # lvm_config refuses the missing device of the filter, before the VG task would
    ('storage1', 'storage_node', "Accept only this node's PVs in the LVM global_filter, and let LVM grow the thin pool"),
    ('compute1', 'compute_initiator', None),
])
def test_role_checks_pass_with_chap_and_stop_only_where_the_lab_is_needed(tmp_path, host, role, stop):
    proc, output = run_role(tmp_path, host, role)
    assert proc.returncode != 0, output[-3000:]
    for task in ("Validating arguments against arg spec 'main'", "Check the role's variables before changing anything"):
        block = output.split(task, 1)[1].split('TASK [', 1)[0]
        assert '\nok: [%s]' % host in block, block
    if stop:
        assert failed_task(output) == stop, output[-3000:]
    else:
        # the controller has no open-iscsi (iscsi_initiator predicts without it in check mode), no
        # systemd and no LVM: the first task that needs the lab's tools fails
        assert failed_task(output) in ('Install open-iscsi, and lvm2 for the LVM filter', UNSTICK_TASK,
                                       'Accept only local PVs and named devices in the LVM global_filter'), \
            output[-3000:]


@pytest.mark.parametrize('host, role, task, field', [
    ('storage1', 'storage_node', EXPORT_TASK, 'incoming_users'),
    ('compute1', 'compute_initiator', LOGIN_TASK, 'node_auth'),
])
def test_the_account_reaches_the_module_masked(tmp_path, host, role, task, field):
    dummy, output = run_role(tmp_path, host, role, '--start-at-task', task)
    # the controller has no tgt and no open-iscsi: in check mode the module predicts from the empty
    # state (with a warning naming the package) and prints its arguments; the account is there (user
    # name and masked secret), the secret itself is not
    assert failed_task(output) != task, output[-3000:]
    assert 'not installed on this host; predicted' in output, output[-3000:]
    arguments = output.split('"module_args"', 1)[1]
    assert '"%s"' % field in arguments and '"openblock-unit"' in arguments, arguments[:3000]
    assert MASKED in arguments, arguments[:3000]


def host_vars(inventory, host):
    group = 'storage_nodes' if host.startswith('storage') else 'compute_nodes'
    return inventory['all']['children'][group]['hosts'][host]


def test_without_an_account_the_modules_get_no_chap(tmp_path):
    inventory = copy.deepcopy(INVENTORY)
    del host_vars(inventory, 'storage1')['storage_node_chap']
    dummy, output = run_role(tmp_path, 'compute1', 'compute_initiator', '--start-at-task', LOGIN_TASK,
                             inventory=inventory)
    assert '"node_auth": null' in output.split('"module_args"', 1)[1], output[-3000:]
    dummy, output = run_role(tmp_path, 'storage1', 'storage_node', '--start-at-task', EXPORT_TASK, inventory=inventory)
    assert '"incoming_users": []' in output.split('"module_args"', 1)[1], output[-3000:]
    assert MASKED not in output


@pytest.mark.parametrize('host, role, variable, problem', [
    ('storage1', 'storage_node', 'storage_node_chap', {'typo': 1}),          # argument spec: unsupported key
    ('storage1', 'storage_node', 'storage_node_chap', {'user': 'a b'}),      # role check: a bad user name
    ('compute1', 'compute_initiator', 'compute_initiator_chap', {'user': ''}),
])
def test_a_refused_account_is_named_without_its_password(tmp_path, host, role, variable, problem):
    inventory = copy.deepcopy(INVENTORY)
    host_vars(inventory, host)[variable] = dict(CHAP, **problem)
    proc, output = run_role(tmp_path, host, role, inventory=inventory)
    assert proc.returncode != 0 and variable in output, output[-3000:]
    assert failed_task(output).startswith(('Validating arguments against arg spec',
                                           "Check the role's variables before changing anything")), output[-3000:]
