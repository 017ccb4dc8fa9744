"""The modules on a bare host: none of lvm2, thin-provisioning-tools, tgt, open-iscsi, multipath-tools,
lvm2-lockd and sanlock installed (plan.require_tools).

Each module runs through its real entry point (``main()``) with ``get_bin_path`` finding none of those
tools and ``run_command`` answering only what a bare Debian host has (systemd, util-linux): a missing
tool that runs fails the test. In check mode the module predicts a change from the empty state, with
its commands, its diff and one warning naming each missing command and its package; outside check
mode it fails before any command, naming them and what to do.
"""

import contextlib
import importlib
import json
import os
import pkgutil
import re
from pathlib import Path

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.openblock.storage.plugins import module_utils
from ansible_collections.openblock.storage.plugins.module_utils import (
    initiator, lvm_vg, multipath, plan, sanlock_vg, tgt_target)
from ansible_collections.openblock.storage.plugins.module_utils import system_units as su
from ansible_collections.openblock.storage.plugins.module_utils.names import iscsi_name_error

MODULES = 'ansible_collections.openblock.storage.plugins.modules.'
FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures'
# The commands of the packages the roles install, none of them on a bare host.
BARE = {'lvm', 'lvmconfig', 'vgs', 'lvs', 'pvs', 'thin_check', 'tgtadm', 'iscsiadm', 'iscsi-iname', 'multipathd',
        'lvmlockd', 'sanlock'}
UNIT_NOT_FOUND = (FIXTURES / 'system_units' / 'show-missing.bookworm').read_text()
WIPEFS_EXT4 = (FIXTURES / 'lvm' / 'wipefs_ext4.json').read_text()


def lock_users():
    """The module_utils files that bound ``host_lock`` at import."""
    for info in pkgutil.iter_modules(module_utils.__path__):
        mod = importlib.import_module('%s.%s' % (module_utils.__name__, info.name))
        if hasattr(mod, 'host_lock'):
            yield mod


class Host(object):
    """What run_command answers on a bare host, and what ran."""

    def __init__(self, wipefs=''):
        self.ran = []
        self.wipefs = wipefs

    def run_command(self, argv, **kwargs):
        """AnsibleModule.run_command (a bound method of this host: the module is not passed)."""
        argv = list(argv)
        if argv[0] == 'timeout':
            argv = argv[3:]
        self.ran.append(' '.join(argv))
        assert os.path.basename(argv[0]) not in BARE, 'a missing tool ran: %r' % argv
        if argv[:2] == ['systemctl', 'show']:
            return 0, UNIT_NOT_FOUND, ''
        if argv[0] == 'dpkg-query':  # none of the packages asked for is known
            return 1, '', 'dpkg-query: no packages found matching %s\n' % argv[-1]
        if argv[0] == 'wipefs':
            return 0, self.wipefs, ''
        raise AssertionError('not a command of a bare host: %r' % argv)


@pytest.fixture
def bare(monkeypatch, capsys):
    """Run a module's main() on a bare host; return (printed result, exit code, commands that ran)."""
    def run(target, args, check_mode=True, host=None, bin_path=True):
        host, warnings = host or Host(), []
        monkeypatch.setattr(AnsibleModule, 'warn', lambda self, message: warnings.append(message))
        monkeypatch.setattr(AnsibleModule, 'run_command', host.run_command)
        if bin_path:  # else the test's own
            monkeypatch.setattr(AnsibleModule, 'get_bin_path',
                                lambda self, name, *a, **kw: None if name in BARE else '/usr/bin/' + name)
        for mod in lock_users():
            monkeypatch.setattr(mod, 'host_lock', lambda module: contextlib.nullcontext())
        module = importlib.import_module(MODULES + target)
        capsys.readouterr()
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=True)
        with patch_module_args(args), pytest.raises(SystemExit) as exited:
            module.main()
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        result['warnings'] = warnings  # the module's own, whatever ansible-core keeps globally
        return result, exited.value.code, host.ran
    return run


def tool_warning(result, *named):
    """The one warning about missing tools, which names each command and its package."""
    warnings = [w for w in result.get('warnings', []) if 'not installed on this host' in w]
    assert len(warnings) == 1, result.get('warnings')
    for tool, package in named:
        assert '%s (package %s)' % (tool, package) in warnings[0], warnings[0]
    return warnings[0]


def refused(result, code, ran, *named):
    assert code == 1 and result['failed'] is True and result.get('changed', False) is False, result
    assert ran == [] and result['commands'] == [], (ran, result)
    for tool, package in named:
        assert '%s (package %s)' % (tool, package) in result['msg'], result['msg']
    assert 'nothing was changed; install' in result['msg'] and 'system_units packages' in result['msg']


# ---------------------------------------------------------------- the helper

class FakeModule(object):
    def __init__(self, check_mode, have=()):
        self.check_mode, self.have, self.warnings = check_mode, have, []

    def get_bin_path(self, name):
        return '/usr/sbin/' + name if name in self.have else None

    def warn(self, message):
        self.warnings.append(message)

    def fail_json(self, **result):
        raise RuntimeError(result)


def test_require_tools_returns_nothing_when_the_tools_are_there():
    module = FakeModule(check_mode=False, have=('lvm',))
    assert plan.require_tools(module, {'lvm': 'lvm2'}, 'nothing') == {}
    assert module.warnings == []


def test_require_tools_warns_once_in_check_mode_and_returns_the_missing_in_order():
    module = FakeModule(check_mode=True, have=('lvm',))
    tools = {'lvm': 'lvm2', 'lvmlockd': 'lvm2-lockd', 'sanlock': 'sanlock'}
    assert list(plan.require_tools(module, tools, 'no VG')) == ['lvmlockd', 'sanlock']
    assert module.warnings == [
        'check mode: lvmlockd (package lvm2-lockd), sanlock (package sanlock) are not installed on this host; '
        'predicted as after an earlier task of this run installs lvm2-lockd, sanlock, from no VG']


@pytest.mark.parametrize('check_mode, predict', [(False, True), (True, False)])
def test_require_tools_fails_outside_check_mode_or_where_nothing_can_be_predicted(check_mode, predict):
    module = FakeModule(check_mode=check_mode)
    with pytest.raises(RuntimeError) as failed:
        plan.require_tools(module, {'tgtadm': 'tgt'}, 'no targets', predict=predict)
    result = failed.value.args[0]
    assert result['msg'] == ('tgtadm (package tgt) is not installed on this host, nothing was changed; install tgt '
                             'first (for example with openblock.storage.system_units packages: [tgt], as the roles '
                             'do) and re-run')
    assert result['missing'] == {'tgtadm': 'tgt'} and result['commands'] == [] and module.warnings == []


# ---------------------------------------------------------------- each module in check mode

def test_lvm_config_predicts_the_filter_and_settings_in_the_default_lvm_conf(bare, tmp_path):
    args = dict(path=str(tmp_path / 'lvm.conf'), local_path=str(tmp_path / 'lvmlocal.conf'),
                settings={'global/use_lvmlockd': 1, 'local/host_id': 3},
                global_filter=dict(devices=['/dev/disk/by-id/openblock-loop-cinder-volumes']))
    result, code, ran = bare('lvm_config', args)
    assert code == 0 and result['changed'] is True, result
    assert ran == []  # no pvs, no lvmconfig
    assert result['commands'] == ['write %s/lvm.conf' % tmp_path, 'write %s/lvmlocal.conf' % tmp_path]
    assert result['global_filter']['value'] == ['a|^/dev/disk/by-id/openblock-loop-cinder-volumes$|', 'r|.*|']
    assert result['diff']['before'] == {str(tmp_path / 'lvm.conf'): {'devices/global_filter': None,
                                                                     'global/use_lvmlockd': None},
                                        str(tmp_path / 'lvmlocal.conf'): {'local/host_id': None}}
    assert result['diff']['after'][str(tmp_path / 'lvmlocal.conf')] == {'local/host_id': 'host_id = 3'}
    tool_warning(result, ('lvm', 'lvm2'))
    assert not os.path.exists(tmp_path / 'lvm.conf')


def test_lvm_vg_predicts_the_vg_on_a_device_an_earlier_task_makes(bare):
    result, code, ran = bare('lvm_vg', dict(name='cinder-volumes', pvs=['/dev/disk/by-id/openblock-unit-missing']))
    assert code == 0 and result['changed'] is True, result
    assert ran == [] and result['vg'] == {}
    assert result['commands'] == ['vgcreate cinder-volumes /dev/disk/by-id/openblock-unit-missing']
    assert result['diff'] == {'before': {}, 'after': {'name': 'cinder-volumes',
                                                      'pvs': {'/dev/disk/by-id/openblock-unit-missing': None}}}
    tool_warning(result, ('lvm', 'lvm2'))
    assert any('does not exist' in w for w in result['warnings'])


def test_lvm_vg_still_probes_signatures_without_lvm2(bare, monkeypatch):
    # wipefs is util-linux: a device with a filesystem is refused in check mode on a bare host too
    monkeypatch.setattr(lvm_vg, 'resolve_devices', lambda devices, errors, absent=None: {'/dev/vdb': '/dev/vdb'})
    monkeypatch.setattr(lvm_vg, 'device_usage', lambda name, sys_block=None: [])
    monkeypatch.setattr(lvm_vg.os.path, 'exists', lambda path: path == '/dev/vdb' or os.path.lexists(path))
    result, code, ran = bare('lvm_vg', dict(name='cinder-volumes', pvs=['/dev/vdb']), host=Host(wipefs=WIPEFS_EXT4))
    assert ran == ['wipefs --no-act --json /dev/vdb']
    assert code == 1 and 'carries ext4 signature(s)' in result['msg'], result


@pytest.mark.parametrize('target, args, tools', [
    ('lvm_thinvol', dict(vg='cinder-volumes', pool='pool', size='90%VG', volumes=[dict(name='v1', size='1G')]),
     [('lvm', 'lvm2'), ('thin_check', 'thin-provisioning-tools')]),
    ('lvm_thickvol', dict(vg='cinder-volumes', volumes=[dict(name='v1', size='1G')]), [('lvm', 'lvm2')]),
])
def test_lvm_volumes_predict_a_change_once_the_vg_exists(bare, target, args, tools):
    result, code, ran = bare(target, args)
    assert code == 0 and result['changed'] is True and ran == [], result
    assert 'does not exist yet' in result['msg']
    tool_warning(result, *tools)


@pytest.mark.parametrize('target, args', [
    ('lvm_thinvol', dict(vg='cinder-volumes', pool='pool', volumes=[dict(name='v1', state='absent')])),
    ('lvm_thickvol', dict(vg='cinder-volumes', volumes=[dict(name='v1', state='absent')])),
])
def test_lvm_volumes_to_remove_predict_no_change_without_a_vg(bare, target, args):
    # the storage_node role's removal task on a fresh host: a VG made in this run has no volumes
    result, code, ran = bare(target, args)
    assert code == 0 and result['changed'] is False and ran == [], result
    assert 'neither do the volumes to remove' in result['msg']


def test_tgt_target_predicts_every_target_from_none(bare, monkeypatch, tmp_path):
    monkeypatch.setattr(tgt_target, 'CONF_DIR', str(tmp_path))
    targets = [dict(iqn='iqn.2010-10.org.openstack:volume-v1', luns=[dict(lun=1, path='/dev/cinder-volumes/volume-v1')],
                    initiators=['iqn.2004-10.com.ubuntu:01:c1'],
                    incoming_users=[dict(user='openblock', password='unit-secret-123456')])]
    result, code, ran = bare('tgt_target', dict(targets=targets, iothreads=4))
    assert code == 0 and result['changed'] is True and ran == [], result
    assert result['commands'][:3] == [
        'tgtadm --lld iscsi --mode account --op new --user openblock --password ********',
        'tgtadm --lld iscsi --mode target --op new --tid 1 -T iqn.2010-10.org.openstack:volume-v1',
        'tgtadm --lld iscsi --mode logicalunit --op new --tid 1 --lun 1 -b /dev/cinder-volumes/volume-v1']
    assert result['commands'][-1].startswith('write ') and 'systemctl restart' not in ' '.join(result['commands'])
    assert 'unit-secret-123456' not in json.dumps(result)
    assert result['diff']['before'] == {'iqn.2010-10.org.openstack:volume-v1': None}
    assert result['diff']['after']['iqn.2010-10.org.openstack:volume-v1']
    tool_warning(result, ('tgtadm', 'tgt'))


class StoppedTgtd(Host):
    """tgt installed, its service stopped: tgtadm answers as recorded with tgt 1.0.85."""

    def run_command(self, argv, **kwargs):
        if os.path.basename(argv[3]) == 'tgtadm':  # after `timeout --kill-after=N SECONDS`
            self.ran.append(' '.join(argv[3:]))
            return 107, '', (FIXTURES / 'tgt' / 'err_tgtd_stopped.txt').read_text()
        return Host.run_command(self, argv, **kwargs)


@pytest.mark.parametrize('check_mode', [True, False])
def test_tgt_target_with_tgtd_stopped_predicts_from_none_in_check_mode_only(bare, monkeypatch, tmp_path, check_mode):
    monkeypatch.setattr(tgt_target, 'CONF_DIR', str(tmp_path))
    monkeypatch.setattr(AnsibleModule, 'get_bin_path',
                        lambda self, name, *a, **kw: None if name in BARE - {'tgtadm'} else '/usr/sbin/' + name)
    backing = tmp_path / 'backing.img'  # a file LUN: it exists, so the run gets as far as tgtadm
    backing.write_bytes(b'')
    targets = [dict(iqn='iqn.2010-10.org.openstack:volume-v1', luns=[dict(lun=1, path=str(backing))],
                    initiators=['iqn.2004-10.com.ubuntu:01:c1'])]
    host = StoppedTgtd()
    result, code, ran = bare('tgt_target', dict(targets=targets, iothreads=4), check_mode=check_mode, host=host,
                             bin_path=False)
    assert ran == ['tgtadm --lld iscsi --mode target --op show'], ran  # no pid read, no restart
    if check_mode:
        assert code == 0 and result['changed'] is True, result
        assert result['commands'][0] == 'tgtadm --lld iscsi --mode target --op new --tid 1 -T ' \
            'iqn.2010-10.org.openstack:volume-v1', result['commands']
        assert [w for w in result['warnings'] if 'no tgtd answers' in w and 'tgt.service' in w], result['warnings']
    else:
        assert code == 1 and result.get('changed', False) is False, result
        assert 'reading tgt targets failed (exit 107)' in result['msg'], result['msg']


def test_iscsi_initiator_predicts_a_generated_name_and_the_settings(bare, monkeypatch, tmp_path):
    monkeypatch.setattr(initiator, 'NAME_FILE', str(tmp_path / 'initiatorname.iscsi'))
    monkeypatch.setattr(initiator, 'ISCSID_CONF', str(tmp_path / 'iscsid.conf'))
    args = dict(name_prefix='iqn.2004-10.com.ubuntu:01', settings={'node.session.timeo.replacement_timeout': 5})
    result, code, ran = bare('iscsi_initiator', args)
    assert code == 0 and result['changed'] is True and ran == [], result
    assert re.match(r'^iqn\.2004-10\.com\.ubuntu:01:<generated-[0-9a-f]{12}>$', result['name']), result['name']
    assert result['renamed'] is True and iscsi_name_error(result['name'], 'name') is None
    # a second bare host of the same run is predicted another name (the storage node's ACL checks tell them apart)
    assert bare('iscsi_initiator', args)[0]['name'] != result['name']
    assert result['commands'] == ['write %s/initiatorname.iscsi' % tmp_path, 'write %s/iscsid.conf' % tmp_path,
                                  'systemctl try-restart iscsid.service']
    assert result['diff']['before'] == {'name': None, 'settings': {'node.session.timeo.replacement_timeout': None}}
    tool_warning(result, ('iscsi-iname', 'open-iscsi'))


def test_iscsi_session_predicts_the_logins_without_discovery(bare):
    args = dict(portals=['10.50.1.10', '10.50.2.10'], targets=['iqn.2010-10.org.openstack:volume-v1'],
                startup='automatic', state='logged_in')
    result, code, ran = bare('iscsi_session', args)
    assert code == 0 and result['changed'] is True and ran == [], result
    assert sum(' --login' in c for c in result['commands']) == 2, result['commands']
    assert result['diff']['before'] != result['diff']['after']
    tool_warning(result, ('iscsiadm', 'open-iscsi'))
    assert not any('iscsid is not running' in w for w in result['warnings'])


def test_multipath_config_predicts_the_dropin_and_multipathd_started(bare, monkeypatch, tmp_path):
    monkeypatch.setattr(multipath, 'WWIDS_FILE', str(tmp_path / 'wwids'))
    monkeypatch.setattr(multipath, 'MODULES_LOAD', str(tmp_path / 'modules-load.conf'))
    args = dict(dropin=str(tmp_path / 'openblock.conf'), kernel_modules=['openblock_unit_nosuch'],
                aliases=[dict(alias='shared-lun', wwid='360000000000000000e00000000010001')])
    result, code, ran = bare('multipath_config', args)
    assert code == 0 and result['changed'] is True, result
    assert ran == ['systemctl show multipathd.service --property=UnitFileState,ActiveState']
    assert 'write %s/openblock.conf' % tmp_path in result['commands']
    assert result['commands'][-2:] == ['systemctl enable multipathd.service', 'systemctl start multipathd.service']
    assert result['diff']['before'] == '' and 'alias shared-lun' in result['diff']['after']
    assert result['maps'] == {}
    tool_warning(result, ('multipathd', 'multipath-tools'))


SANLOCK_TOOLS = [('lvmconfig', 'lvm2'), ('lvmlockd', 'lvm2-lockd'), ('sanlock', 'sanlock')]


def test_sanlock_vg_plans_the_creation_from_nothing(bare):
    args = dict(name='shared', state='present', pvs=['/dev/mapper/openblock-unit-missing'],
                lvs=[dict(name='images', size='1G', activation='shared')])
    result, code, ran = bare('sanlock_vg', args)
    assert code == 0 and result['changed'] is True and ran == [], result
    assert result['commands'] == ['vgcreate --shared --lock-type sanlock shared /dev/mapper/openblock-unit-missing',
                                  'lvcreate --yes --size 1073741824b --name images --activate ey shared',
                                  'lvchange --activate n shared/images', 'lvchange --activate sy shared/images']
    assert result['diff']['before'] == {'exists': False}
    assert result['diff']['after']['exists'] is True and 'images' in result['diff']['after']['lvs']
    tool_warning(result, *SANLOCK_TOOLS)
    assert any('does not exist on this host' in w for w in result['warnings'])


def test_sanlock_vg_started_predicts_the_lock_start(bare):
    result, code, ran = bare('sanlock_vg', dict(name='shared', state='started'))
    assert code == 0 and result['changed'] is True and ran == [], result
    tool_warning(result, *SANLOCK_TOOLS)


def test_sanlock_vg_recovered_is_refused_in_check_mode_too(bare):
    refused(*bare('sanlock_vg', dict(name='shared', state='recovered')), *SANLOCK_TOOLS)


def test_system_units_predicts_the_packages_and_their_units(bare):
    args = dict(packages=['tgt'], units=[dict(name='tgt.service', enabled=True, state='started')])
    result, code, ran = bare('system_units', args)
    assert code == 0 and result['changed'] is True, result
    assert result['commands'] == [' '.join(plan_argv) for plan_argv in (
        su.APT_INSTALL + ['tgt'], ['systemctl', 'enable', 'tgt.service'], ['systemctl', 'start', 'tgt.service'])]
    assert result['diff']['before']['packages'] == {'tgt': 'not installed'}
    assert len(result['warnings']) == 1 and 'is not a unit systemd knows' in result['warnings'][0]


# ---------------------------------------------------------------- outside check mode: fail before anything

@pytest.mark.parametrize('target, args, tools', [
    ('lvm_config', dict(settings={'global/use_lvmlockd': 1}), [('lvm', 'lvm2')]),
    ('lvm_vg', dict(name='cinder-volumes', state='absent'), [('lvm', 'lvm2')]),
    ('lvm_thinvol', dict(vg='cinder-volumes', pool='pool', size='1G'),
     [('lvm', 'lvm2'), ('thin_check', 'thin-provisioning-tools')]),
    ('lvm_thickvol', dict(vg='cinder-volumes', volumes=[dict(name='v1', size='1G')]), [('lvm', 'lvm2')]),
    ('tgt_target', dict(targets=[dict(iqn='iqn.2010-10.org.openstack:volume-v1', luns=[dict(lun=1, path='/dev/null')])]),
     [('tgtadm', 'tgt')]),
    ('iscsi_initiator', dict(name_prefix='iqn.2004-10.com.ubuntu:01'), [('iscsi-iname', 'open-iscsi')]),
    ('iscsi_session', dict(portals=['10.50.1.10'], targets=['iqn.2010-10.org.openstack:volume-v1']),
     [('iscsiadm', 'open-iscsi')]),
    ('multipath_config', dict(), [('multipathd', 'multipath-tools')]),
    ('sanlock_vg', dict(name='shared', state='started'), SANLOCK_TOOLS),
    ('sanlock_vg', dict(name='shared', state='query'), SANLOCK_TOOLS),
])
def test_outside_check_mode_a_missing_tool_fails_before_anything(bare, target, args, tools):
    refused(*bare(target, args, check_mode=False), *tools)


def test_sanlock_vg_with_lvm2_but_no_lock_daemons_predicts_without_a_plan(bare, monkeypatch):
    # lvm2 may come earlier (compute_initiator's LVM filter); a VG it could see is not assumed away
    monkeypatch.setattr(AnsibleModule, 'get_bin_path',
                        lambda self, name, *a, **kw: None if name in ('lvmlockd', 'sanlock') else '/usr/sbin/' + name)
    monkeypatch.setattr(sanlock_vg, 'read_state', lambda *a, **kw: pytest.fail('the VG was read'))
    result, code, ran = bare('sanlock_vg', dict(name='shared', state='present', pvs=['/dev/mapper/openblock-unit-x']),
                             bin_path=False)
    assert code == 0 and result['changed'] is True and result['commands'] == [] and ran == [], result
    assert any('not ready for volume group shared' in w for w in result['warnings'])
    tool_warning(result, ('lvmlockd', 'lvm2-lockd'), ('sanlock', 'sanlock'))
