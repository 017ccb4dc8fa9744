"""Verifier of the `default` scenario: site.yml converged on the lab's cinder topology.

Role argument specs are tested without the lab, in tests/unit/roles.

Every check runs the real tools on the VMs (tgtadm, iscsiadm, multipath, dd) through testinfra.
"""

import os
import re
from pathlib import Path

import pytest
import testinfra
import yaml

REPO = Path(__file__).resolve().parents[3]
# molecule's inventory directory: labctl writes the lab hosts into lab.yml there, and the
# inventory's group_vars/host_vars are linked in beside it.
INVENTORY = os.path.dirname(os.environ['MOLECULE_INVENTORY_FILE'])
PREFIX = 'iqn.2010-10.org.openstack:'
VOLUMES = yaml.safe_load((REPO / 'inventories/lab/group_vars/all.yml').read_text())['storage_node_volumes']
COMPUTES = ['compute1', 'compute2']
ATTACHED = {  # compute -> volume names, from the inventory's attach_to
    c: [v['name'] for v in VOLUMES if c in v['attach_to'] or 'compute_nodes' in v['attach_to']]
    for c in COMPUTES
}


def node(name):
    return testinfra.get_host('ansible://%s?ansible_inventory=%s' % (name, INVENTORY))


def run(host, command):
    result = host.run(command)
    assert result.rc == 0, '%s: %r exited %d: %s' % (host.backend.host, command, result.rc, result.stderr)
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
        login = compute2.run('iscsiadm -m node -T %s -p 10.50.1.10:3260 --login' % target)
        # tgt answers with an authorization failure, which iscsiadm reports as exit 19.
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
        active = re.findall(r'\d+:\d+:\d+:\d+ sd\w+ \S+ +active\s+ready\s+running', listing)
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
