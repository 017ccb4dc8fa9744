"""site.yml --check on the freshly booted, bare lab: it reports what it would do and changes nothing.

Runs before anything converges the lab (make system runs it right after the lab's smoke test): no
storage package is installed yet, so every module predicts from what the role's install task would
bring, and nothing is installed.
"""

import re

import yaml
from conftest import REPO, assert_same_state, recap


def test_check_mode_on_a_fresh_lab_reports_changes_and_changes_nothing(cluster):
    assert cluster.sh('storage1', 'command -v tgtadm', check=False).rc != 0, \
        'the lab is already converged: this test needs a freshly booted cinder lab (labctl down; labctl up cinder)'
    before = cluster.state()
    # as `make plan` runs it: with the plan report of what would change, by host
    output, took = cluster.playbook('playbooks/site.yml', '--check', '--diff', '-v',
                                    env={'ANSIBLE_CALLBACKS_ENABLED': 'openblock.storage.plan_report'})[1:]
    after = cluster.state()
    assert_same_state(before, after)
    counts = recap(output)
    assert sorted(counts) == ['compute1', 'compute2', 'storage1'], output[-3000:]
    for host, fields in counts.items():
        assert fields['failed'] == 0 and fields['unreachable'] == 0, (host, fields)
        assert fields['changed'] > 0, '%s: check mode reported no change on a fresh host' % host
    # what it would do is shown: the VG, the volumes' targets, the logins
    for expected in ('vgcreate', 'volume-compute1-disk', 'iqn.2010-10.org.openstack:volume-'):
        assert expected in output, expected
    # the shared VG cannot be read before the lock daemons run: sanlock_vg predicts it and says why
    assert 'this host is not ready for volume group shared yet' in ' '.join(output.split()), output[-3000:]
    # the plan report: every host with its changes, storage1's new targets with their LUNs, no secret
    plan = output.split('\nPLAN: what this run would change (check mode: nothing was changed)\n', 1)[1]
    for host in ('storage1', 'compute1', 'compute2'):
        assert re.search(r'^%s: \d+ change\(s\)$' % host, plan, re.M), plan[:4000]
    storage = plan.split('storage1: ', 1)[1].split('\ncompute', 1)[0]
    assert '    + iqn.2010-10.org.openstack:volume-compute1-disk\n' in storage, storage[:4000]
    assert re.search(r'^ +luns: \[\{"lun": 1, "path": "/dev/cinder-volumes/volume-compute1-disk"', storage, re.M), \
        storage[:4000]
    secret = yaml.safe_load((REPO / 'inventories/lab/group_vars/all.yml').read_text())['storage_node_chap']['password']
    assert secret not in output
    print('site.yml --check on a fresh lab: %.0f s, changed %s' % (took, {h: f['changed'] for h, f in counts.items()}))
