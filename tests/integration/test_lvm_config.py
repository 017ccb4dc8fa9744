"""lvm_config on the lab VM: one task sets the global_filter and host_id, validated, in place.

The layout: a local PV on virtio-spare1, and a PV on a LUN of tgt on the VM itself, logged in over
iSCSI through 127.0.0.1 (remote: never accepted). Four module runs: check mode with diff, the
change, the no-op re-run, and a setting lvmconfig refuses (nothing written).
"""

import pytest

IQN = 'iqn.2026-11.test.lvmconf:remote'
LUN = '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-%s-lun-1' % IQN
SAVED = '/var/tmp/itest-lvmconf'

CLEANUP = r'''
cp -p {saved}/lvm.conf {saved}/lvmlocal.conf /etc/lvm/ 2>/dev/null
vgremove -q -f itest_lvmconf_remote 2>/dev/null; pvremove -q -y {lun} 2>/dev/null
iscsiadm -m node -T {iqn} -u >/dev/null 2>&1; iscsiadm -m node -T {iqn} -o delete >/dev/null 2>&1
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n "s/^Target \([0-9]*\): {iqn}\$/\1/p")
[ -n "$tid" ] && tgtadm --lld iscsi --mode target --op delete --force --tid $tid
vgremove -q -f itest_lvmconf 2>/dev/null; pvremove -q -y /dev/disk/by-id/virtio-spare1 2>/dev/null
wipefs -q -a /dev/disk/by-id/virtio-spare1
rm -rf {saved}
true
'''.format(saved=SAVED, lun=LUN, iqn=IQN)

SETUP = r'''
set -e
mkdir -p {saved} && cp -p /etc/lvm/lvm.conf /etc/lvm/lvmlocal.conf {saved}/
pvcreate -q /dev/disk/by-id/virtio-spare1 && vgcreate -q itest_lvmconf /dev/disk/by-id/virtio-spare1
truncate -s 32M {saved}/remote.img
systemctl start tgt
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n 's/^Target \([0-9]*\): .*/\1/p' | sort -n | tail -1)
tid=$(( ${{tid:-0}} + 1 ))
tgtadm --lld iscsi --mode target --op new --tid $tid -T {iqn}
tgtadm --lld iscsi --mode logicalunit --op new --tid $tid --lun 1 -b {saved}/remote.img
tgtadm --lld iscsi --mode target --op bind --tid $tid -I 127.0.0.1
iscsiadm -m node -T {iqn} -p 127.0.0.1:3260 -o new >/dev/null
iscsiadm -m node -T {iqn} -p 127.0.0.1:3260 --login >/dev/null
udevadm settle
for i in $(seq 50); do test -b {lun} && break; sleep 0.2; done
pvcreate -q {lun} && vgcreate -q itest_lvmconf_remote {lun}
chmod 0640 /etc/lvm/lvm.conf
'''.format(saved=SAVED, lun=LUN, iqn=IQN)

ARGS = {'global_filter': {'devices': ['/dev/disk/by-id/virtio-spare2']}, 'settings': {'local/host_id': 7}}
FILTER = '\tglobal_filter = [ "a|^/dev/disk/by-id/virtio-spare2$|", "a|^/dev/disk/by-id/virtio-spare1$|", "r|.*|" ]'


@pytest.fixture(scope='module')
def layout(lab):
    lab.sh(CLEANUP)
    lab.sh(SETUP)
    yield lab
    lab.sh(CLEANUP)


def changed_lines(lab, name):
    """Lines of /etc/lvm/NAME that differ from the saved copy (diff's < and > lines)."""
    rc, out, _err = lab.sh('diff {saved}/{name} /etc/lvm/{name}'.format(saved=SAVED, name=name), check=False)
    return [line for line in out.splitlines() if line[:2] in ('< ', '> ')]


def test_filter_and_host_id_in_one_task(layout):
    lab = layout
    sums = lab.out('md5sum /etc/lvm/lvm.conf /etc/lvm/lvmlocal.conf')

    checked = lab.module('lvm_config', ARGS, check=True, diff=True)
    assert checked['changed'] and not checked['failed'], checked
    assert checked['diff']['before'] == {'/etc/lvm/lvm.conf': {'devices/global_filter': None},
                                         '/etc/lvm/lvmlocal.conf': {'local/host_id': None}}
    assert checked['diff']['after']['/etc/lvm/lvm.conf']['devices/global_filter'] == FILTER.strip()
    assert lab.out('md5sum /etc/lvm/lvm.conf /etc/lvm/lvmlocal.conf') == sums

    done = lab.module('lvm_config', ARGS)
    assert done['changed'] and done['files'] == ['/etc/lvm/lvm.conf', '/etc/lvm/lvmlocal.conf'], done
    assert [(r['device'], r['state']) for r in done['global_filter']['rejected']] == [('/dev/sda', 'remote')]
    assert changed_lines(lab, 'lvm.conf') == ['> ' + FILTER]
    assert changed_lines(lab, 'lvmlocal.conf') == ['> \thost_id = 7']
    assert lab.out('stat -c %a /etc/lvm/lvm.conf').strip() == '640'
    # LVM itself now skips the iSCSI PV and still sees the local one
    assert lab.out('pvs --noheadings -o vg_name').split() == ['itest_lvmconf']
    assert lab.out('lvmconfig local/host_id').strip() == 'host_id=7'

    again = lab.module('lvm_config', ARGS)
    assert not again['changed'] and again['files'] == [], again

    refused = lab.module('lvm_config', {'settings': {'global/no_such_setting': 1}})
    assert refused['failed'] and 'lvmconfig refused' in refused['msg'], refused
    assert 'global/no_such_setting' in refused['msg'] and 'nothing was written' in refused['msg']
    assert changed_lines(lab, 'lvm.conf') == ['> ' + FILTER]
