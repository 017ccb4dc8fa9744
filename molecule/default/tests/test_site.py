"""Verifier of the `default` scenario: site.yml converged on the lab's cinder topology.

Role argument specs are tested without the lab, in tests/unit/roles.

Every check runs the real tools on the VMs (tgtadm, iscsiadm, multipath, dd), through `labctl ssh`
(tests/system/lab_shell.py): testinfra's ansible backend would cost a module run per command.
"""

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / 'tests' / 'system'))
from lab_shell import Node  # noqa: E402  pylint: disable=wrong-import-position

# molecule's inventory directory: labctl writes the lab hosts into lab.yml there, and the
# inventory's group_vars/host_vars are linked in beside it.
INVENTORY = os.path.dirname(os.environ['MOLECULE_INVENTORY_FILE'])
PREFIX = 'iqn.2010-10.org.openstack:'
LAB_VARS = yaml.safe_load((REPO / 'inventories/lab/group_vars/all.yml').read_text())
VOLUMES = LAB_VARS['storage_node_volumes']
# The lab's CHAP account (storage_node_chap; the computes' compute_initiator_chap defaults to it).
CHAP_USER = LAB_VARS['storage_node_chap']['user']
SECRET = LAB_VARS['storage_node_chap']['password']
COMPUTES = ['compute1', 'compute2']
ATTACHED = {  # compute -> volume names, from the inventory's attach_to
    c: [v['name'] for v in VOLUMES if c in v['attach_to'] or 'compute_nodes' in v['attach_to']]
    for c in COMPUTES
}


def node(name):
    return Node(name)


def run(host, command):
    result = host.run(command)
    assert result.rc == 0, '%s: %r exited %d: %s' % (host.name, command, result.rc, result.stderr)
    return result.stdout


def initiator_name(host):
    return re.search(r'^InitiatorName=(\S+)$', run(host, 'cat /etc/iscsi/initiatorname.iscsi'), re.M).group(1)


def tgt_targets():
    """Target name -> its block of `tgtadm --op show` text."""
    text = run(node('storage1'), 'tgtadm --lld iscsi --mode target --op show')
    blocks = re.split(r'^(?=Target \d+: )', text, flags=re.M)
    return {re.match(r'Target \d+: (\S+)', b).group(1): b for b in blocks if b.startswith('Target ')}


def test_initiator_names_differ_between_computes():
    names = [initiator_name(node(c)) for c in COMPUTES]
    assert len(set(names)) == len(names), names


@pytest.mark.parametrize('volume', VOLUMES, ids=lambda v: v['name'])
def test_target_lun_and_acl(volume):
    block = tgt_targets()[PREFIX + 'volume-' + volume['name']]
    lun1 = block.split('LUN: 1', 1)[1]
    path = volume.get('device') or '/dev/cinder-volumes/volume-%s' % volume['name']
    assert 'Backing store path: %s\n' % path in lun1
    acl = block.split('ACL information:', 1)[1].split()
    expected = sorted(initiator_name(node(c)) for c in COMPUTES if volume['name'] in ATTACHED[c])
    # tgt admits a login whose address OR name is listed: the one address entry is 0.0.0.0/32,
    # which matches no initiator, so exactly the attached hosts' names get in.
    assert acl[0] == '0.0.0.0/32'
    assert sorted(acl[1:]) == expected


def test_a_compute_not_attached_is_refused_login():
    target = PREFIX + 'volume-compute1-disk'
    compute2 = node('compute2')
    run(compute2, 'iscsiadm -m node -o new -T %s -p 10.50.1.10:3260' % target)
    try:
        # With the right CHAP account, only the target's ACL (compute1's name) can refuse compute2:
        # tgt then answers "target not found", which iscsiadm reports as exit 19. (Without the
        # account it is refused earlier, at authentication: exit 24.)
        for key, value in (('authmethod', 'CHAP'), ('username', CHAP_USER), ('password', SECRET)):
            run(compute2, 'iscsiadm -m node -T %s -p 10.50.1.10:3260 -o update -n node.session.auth.%s -v %s'
                % (target, key, value))
        login = compute2.run('iscsiadm -m node -T %s -p 10.50.1.10:3260 --login' % target)
        assert login.rc == 19, (login.rc, login.stdout, login.stderr)
        assert 'non-retryable iSCSI login failure' in login.stderr
    finally:
        compute2.run('iscsiadm -m node -T %s -p 10.50.1.10:3260 --logout' % target)
        run(compute2, 'iscsiadm -m node -o delete -T %s -p 10.50.1.10:3260' % target)


@pytest.mark.parametrize('compute', COMPUTES)
def test_one_session_per_portal_for_each_attached_target(compute):
    sessions = re.findall(r'^tcp: \[\d+\] (\S+),\d+ (\S+)', run(node(compute), 'iscsiadm -m session'), re.M)
    for name in ATTACHED[compute]:
        portals = sorted(p for p, iqn in sessions if iqn == PREFIX + 'volume-' + name)
        assert portals == ['10.50.1.10:3260', '10.50.2.10:3260'], (name, sessions)


@pytest.mark.parametrize('compute', COMPUTES)
def test_each_alias_has_two_active_paths(compute):
    host = node(compute)
    for name in ATTACHED[compute]:
        listing = run(host, 'multipath -ll %s' % name)
        assert listing.startswith(name + ' ('), listing
        active = re.findall(r'\d+:\d+:\d+:\d+\s+sd\w+\s+\S+\s+active\s+ready\s+running', listing)
        assert len(active) == 2, listing


def test_bytes_written_on_compute1_are_read_from_the_lv_on_storage1():
    compute1 = node('compute1')
    run(compute1, 'head -c 1M /dev/urandom > /run/pattern.bin')
    digest = run(compute1, 'sha256sum /run/pattern.bin').split()[0]
    # 1 MiB at offset 4 MiB, written through the multipath map with direct I/O and flushed.
    run(compute1, 'dd if=/run/pattern.bin of=/dev/mapper/compute1-disk bs=1M seek=4 count=1 '
                  'oflag=direct conv=fsync status=none')
    read_back = run(node('storage1'),
                    'dd if=/dev/cinder-volumes/volume-compute1-disk bs=1M skip=4 count=1 status=none | sha256sum')
    assert read_back.split()[0] == digest


def test_multiattached_volume_is_visible_on_both_computes():
    shared = [v['name'] for v in VOLUMES if 'compute_nodes' in v['attach_to']]
    assert shared, 'the lab inventory declares a volume attached to both computes'
    wwids = {c: run(node(c), 'multipath -ll %s' % shared[0]).split('(')[1].split(')')[0] for c in COMPUTES}
    assert wwids['compute1'] == wwids['compute2']


# ---------------------------------------------------------------- CHAP secrets (issue #8)

def files_holding_the_secret(host, directories):
    """Files under ``directories`` (those that exist) whose content holds the CHAP password.

    The password is sent base64-encoded: the command text sent to the VM never holds it literally.
    """
    encoded = base64.b64encode(SECRET.encode()).decode()
    # grep exits 1 when no file matches; the directories that do not exist are skipped
    result = host.run('secret="$(echo %s | base64 -d)"; for d in %s; do [ -d "$d" ] || continue; '
                      'grep -rlF -e "$secret" "$d"; [ $? -le 1 ] || exit 2; done; exit 0'
                      % (encoded, ' '.join(directories)))
    assert result.rc == 0, '%s: grep in %s failed: %s' % (host.name, directories, result.stderr)
    return result.stdout.split()


def assert_root_only(host, paths):
    if not paths:
        return
    modes = run(host, 'stat -c "%%a %%U %%G %%n" %s' % ' '.join(paths)).splitlines()
    wrong = [line for line in modes if not line.startswith('600 root root ')]
    assert not wrong and len(modes) == len(paths), (host.name, modes)


def test_every_target_requires_the_chap_account():
    for volume in VOLUMES:
        block = tgt_targets()[PREFIX + 'volume-' + volume['name']]
        accounts = block.split('Account information:', 1)[1].split('ACL information:', 1)[0].split()
        assert accounts == [CHAP_USER], (volume['name'], block)


def test_the_targets_files_hold_the_secret_with_mode_0600():
    storage1 = node('storage1')
    found = files_holding_the_secret(storage1, ['/etc', '/var/lib/tgt'])
    # tgt_target persists every target, account included, in its own conf.d file
    expected = {'/etc/tgt/conf.d/openblock-%svolume-%s.conf' % (PREFIX, v['name']) for v in VOLUMES}
    assert expected <= set(found), (sorted(expected), found)
    assert_root_only(storage1, found)


@pytest.mark.parametrize('compute', COMPUTES)
def test_the_node_records_hold_the_secret_with_mode_0600(compute):
    host = node(compute)
    found = files_holding_the_secret(host, ['/etc', '/var/lib/iscsi'])
    # one record per attached target and portal: /etc/iscsi/nodes/IQN/IP,PORT,TPGT/IFACE on Debian 12
    for name in ATTACHED[compute]:
        records = [path for path in found if '/nodes/%svolume-%s/' % (PREFIX, name) in path]
        assert len(records) >= 2, (name, found)
    assert_root_only(host, found)


def test_a_login_without_chap_is_refused_for_authentication():
    # compute1 is in the ACL of its disk; through a second open-iscsi iface, whose record has no
    # CHAP, its login must still be refused: tgt requires the account.
    target = PREFIX + 'volume-compute1-disk'
    compute1 = node('compute1')
    run(compute1, 'iscsiadm -m iface -I openblock-nochap -o new')
    try:
        run(compute1, 'iscsiadm -m node -o new -T %s -p 10.50.1.10:3260 -I openblock-nochap' % target)
        login = compute1.run('iscsiadm -m node -T %s -p 10.50.1.10:3260 -I openblock-nochap --login' % target)
        # refused (the name is in the ACL, so only the missing CHAP can refuse it): iscsiadm exits 24
        # for a failed authentication, or 19 when the target rejects the AuthMethod None outright
        assert login.rc in (19, 24), (login.rc, login.stdout, login.stderr)
        assert 'Iface Name: openblock-nochap' not in run(compute1, 'iscsiadm -m session -P 1')
    finally:
        compute1.run('iscsiadm -m node -T %s -p 10.50.1.10:3260 -I openblock-nochap --logout' % target)
        compute1.run('iscsiadm -m node -o delete -T %s -p 10.50.1.10:3260 -I openblock-nochap' % target)
        run(compute1, 'iscsiadm -m iface -I openblock-nochap -o delete')


def test_a_path_logs_in_again_with_the_chap_of_its_record():
    # The sessions of a lab converged before CHAP predate the account: log one path out and in
    # again, so a login really presents the secret the role wrote into the node record.
    target = PREFIX + 'volume-compute1-disk'
    compute1 = node('compute1')
    run(compute1, 'iscsiadm -m node -T %s -p 10.50.2.10:3260 -I default --logout' % target)
    run(compute1, 'iscsiadm -m node -T %s -p 10.50.2.10:3260 -I default --login' % target)
    deadline = time.monotonic() + 60
    while True:
        listing = run(compute1, 'multipath -ll compute1-disk')
        active = re.findall(r'\d+:\d+:\d+:\d+\s+sd\w+\s+\S+\s+active\s+ready\s+running', listing)
        if len(active) == 2 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert len(active) == 2, listing


def test_a_vvv_converge_changes_nothing_and_never_shows_the_secret(tmp_path):
    """site.yml converged again at -vvv, after every check above, through playbooks/demo.yml (what
    `make demo` runs): the scenario's idempotence step (changed=0 on every host), the secrets check,
    the module-run budget of a no-op site run and the demo's summary built from the modules' results,
    in one run of several minutes."""
    log, runs = tmp_path / 'ansible.log', tmp_path / 'module-runs.json'
    # ansible-core 2.21 leaves `invocation` out of results unless asked: ask, so that the modules'
    # arguments are printed at -vvv and the masking of the secret in them is checked
    env = dict(os.environ, ANSIBLE_LOG_PATH=str(log), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               ANSIBLE_INJECT_INVOCATION='1',
               ANSIBLE_CALLBACK_PLUGINS=str(REPO / 'bench' / 'callback'), ANSIBLE_CALLBACKS_ENABLED='module_runs',
               MODULE_RUNS_JSON=str(runs))
    proc = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-vvv', '-i', INVENTORY,
                           str(REPO / 'playbooks' / 'demo.yml')],
                          capture_output=True, text=True, check=False, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    logged = log.read_text() if log.exists() else ''
    # not vacuous: the run went through, its log was written, and at -vvv the modules' arguments
    # (invocation) were printed with the password masked
    assert 'PLAY RECAP' in proc.stdout and 'PLAY RECAP' in logged
    assert 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER' in proc.stdout
    assert CHAP_USER in proc.stdout
    assert SECRET not in proc.stdout, 'the CHAP password is in the -vvv output'
    assert SECRET not in proc.stderr, 'the CHAP password is in the -vvv stderr'
    assert SECRET not in logged, 'the CHAP password is in the Ansible log'
    recap = dict(re.findall(r'^(\S+)\s+: ok=\d+\s+changed=(\d+)', proc.stdout, re.M))
    assert recap == {'storage1': '0', 'compute1': '0', 'compute2': '0'}, proc.stdout[-3000:]
    # A no-op site run costs a handful of module runs per host (fact gathering and loop items
    # included, counted by bench/callback/module_runs.py): at most 8 on a storage node, 12 on a compute.
    counted = json.loads(runs.read_text())
    print('no-op site.yml module runs per host: %s' % counted['runs'])
    assert counted['runs']['storage1'] <= 8, counted['tasks']['storage1']
    for compute in COMPUTES:
        assert counted['runs'][compute] <= 12, counted['tasks'][compute]
    # the summary: storage1's targets with their connected initiators, each compute's two sessions per
    # target and its maps with both paths ready and active (debug prints each line as a JSON string)
    summary = proc.stdout.split('TASK [Show each storage node', 1)[1]
    assert '"storage1 (storage node)"' in summary and '"    connected at export: iqn.' in summary, summary[:4000]
    for compute in COMPUTES:
        block = summary.split('"%s (compute node)"' % compute, 1)[1].split('(compute node)', 1)[0]
        assert block.count(': LOGGED_IN, sd') >= 2, block
        maps = re.findall(r'"  map \S+ \(dm-\d+, wwid \w+\): (.*)"', block)
        assert maps and all(m.count('ready/active') == 2 for m in maps), block
