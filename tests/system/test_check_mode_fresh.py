"""site.yml --check on the freshly booted lab: it reports what it would do and changes nothing.

Runs before anything converges the lab (make system runs it right after the lab's smoke test).
"""

from conftest import assert_same_state, recap


def test_check_mode_on_a_fresh_lab_reports_changes_and_changes_nothing(cluster):
    assert 'cinder-volumes' not in cluster.out('storage1', 'vgs --noheadings -o vg_name'), \
        'the lab is already converged: this test needs a freshly booted cinder lab (labctl down; labctl up cinder)'
    before = cluster.state()
    output, took = cluster.playbook('playbooks/site.yml', '--check', '--diff', '-v')[1:]
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
    print('site.yml --check on a fresh lab: %.0f s, changed %s' % (took, {h: f['changed'] for h, f in counts.items()}))
