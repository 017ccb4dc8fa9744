"""multipath_config on the lab VM: one LUN of a small tgt export, logged in through 127.0.0.1, aliased by
its target name with find_multipaths strict (the WWID read on the host, `multipath -a` for it).

Three module runs: check mode (predicts, changes nothing), converge (the map forms under its alias, its
path ready), re-run (no change, no command). The fixture puts multipathd and its files back as they were,
so later test files see plain iSCSI disks again.
"""

import pytest

TARGET = 'iqn.2026-11.test.mpath:disk1'
ALIAS = 'itest-mpath'
DROPIN = '/etc/multipath/conf.d/itest-mpath.conf'
LUN = '/dev/disk/by-path/ip-127.0.0.1:3260-iscsi-%s-lun-1' % TARGET
ARGS = dict(aliases=[dict(alias=ALIAS, iqn=TARGET)], find_multipaths='strict', dropin=DROPIN)

CLEANUP = r'''
rm -f {dropin}
multipath -f {alias} >/dev/null 2>&1
iscsiadm -m node -T {target} -u >/dev/null 2>&1; iscsiadm -m node -T {target} -o delete >/dev/null 2>&1
tid=$(tgtadm --lld iscsi --mode target --op show | sed -n "s/^Target \([0-9]*\): {target}\$/\1/p")
[ -n "$tid" ] && tgtadm --lld iscsi --mode target --op delete --force --tid $tid
rm -rf /var/tmp/itest-mpath /etc/modules-load.d/openblock-multipath.conf
'''.format(dropin=DROPIN, alias=ALIAS, target=TARGET)

SETUP = r'''
mkdir -p /var/tmp/itest-mpath && truncate -s 16M /var/tmp/itest-mpath/disk1.img
tid=$(( $(tgtadm --lld iscsi --mode target --op show | sed -n 's/^Target \([0-9]*\): .*/\1/p' | sort -n | tail -1) + 1 ))
tgtadm --lld iscsi --mode target --op new --tid $tid -T {target}
tgtadm --lld iscsi --mode logicalunit --op new --tid $tid --lun 1 -b /var/tmp/itest-mpath/disk1.img
tgtadm --lld iscsi --mode target --op bind --tid $tid -I 127.0.0.1
iscsiadm -m node -T {target} -p 127.0.0.1:3260 -o new >/dev/null
iscsiadm -m node -T {target} -p 127.0.0.1:3260 --login >/dev/null
udevadm settle
for i in $(seq 50); do test -b {lun} && break; sleep 0.2; done
test -b {lun}
'''.format(target=TARGET, lun=LUN)


@pytest.fixture(scope='module')
def lun(lab):
    # multipathd's state and files before the test, put back after it
    saved = lab.out('systemctl is-enabled multipathd 2>/dev/null; systemctl is-active multipathd 2>/dev/null; true').split()
    lab.sh('cp -a /etc/multipath/wwids /var/tmp/itest-mpath-wwids 2>/dev/null || rm -f /var/tmp/itest-mpath-wwids')
    lab.sh(CLEANUP, check=False)
    lab.sh(SETUP)
    yield lab.out('/lib/udev/scsi_id --whitelisted --replace-whitespace --device=%s' % LUN).strip()
    lab.sh(CLEANUP, check=False)
    lab.sh('if [ -f /var/tmp/itest-mpath-wwids ]; then mv /var/tmp/itest-mpath-wwids /etc/multipath/wwids; '
           'else rm -f /etc/multipath/wwids; fi', check=False)
    if 'active' in saved:
        lab.sh('multipathd reconfigure', check=False)
    else:
        lab.sh('systemctl stop multipathd.service multipathd.socket', check=False)
    if 'enabled' not in saved:
        lab.sh('systemctl disable multipathd.service', check=False)


def test_check_mode_predicts_and_changes_nothing(lab, lun):
    result = lab.module('multipath_config', ARGS, check=True, diff=True)
    assert not result['failed'], result
    assert result['changed'] is True
    assert result['wwids'] == {ALIAS: lun}
    assert 'write %s' % DROPIN in result['commands']
    assert 'wwid %s\n\t\talias %s' % (lun, ALIAS) in result['diff']['after']
    assert result['diff']['before'] == ''
    assert lab.sh('test -e %s' % DROPIN, check=False)[0] != 0
    assert ALIAS not in lab.sh('multipathd show maps raw format "%n" 2>/dev/null', check=False)[1]


def test_converge_forms_the_aliased_map_then_rerun_changes_nothing(lab, lun):
    result = lab.module('multipath_config', ARGS)
    assert not result['failed'], result
    assert result['changed'] is True
    assert 'multipath -a %s' % lun in result['commands']
    assert '/%s/' % lun in lab.out('cat /etc/multipath/wwids')
    view = result['maps'].get(ALIAS)
    if view is None or any(p['state'] != 'ready' for p in view['paths']):
        # multipathd forms the map a moment after reconfigure, and its checker reads the new path a moment
        # later still ('i/o pending' meanwhile, seen in CI)
        lab.sh('for i in $(seq 25); do multipath -ll %s | grep -q ready && break; sleep 0.2; done' % ALIAS, check=False)
        view = lab.module('multipath_config', ARGS)['maps'].get(ALIAS)
    assert view and view['wwid'] == lun, result
    assert [(p['state'], p['dm_state']) for p in view['paths']] == [('ready', 'active')], view
    assert 'alias %s' % ALIAS in lab.out('cat %s' % DROPIN)

    again = lab.module('multipath_config', ARGS)
    assert not again['failed'], again
    assert again['changed'] is False, again
    assert again['commands'] == [], again
    assert again['maps'][ALIAS]['wwid'] == lun
