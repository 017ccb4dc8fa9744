"""system_units' parser and planner. The unit states are `systemctl show` output recorded in the lab
(Debian 12); see tests/unit/fixtures/system_units/README for how each file was recorded. File states
are what read_path returns, which the last tests take from real files in a temporary directory."""

import os
from pathlib import Path

from ansible_collections.openblock.storage.plugins.module_utils import system_units as su
from ansible_collections.openblock.storage.plugins.module_utils.plan import FileWrite

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'system_units'
LOOP = 'openblock-loop-cinder-volumes.service'
RULE = '/etc/udev/rules.d/60-openblock-loop-cinder-volumes.rules'
UNIT_FILE = '/etc/systemd/system/' + LOOP
BACKING = '/var/lib/openblock/cinder-volumes.img'


def fixture(name):
    return (FIXTURES / name).read_text()


def shown(name, names):
    return su.parse_show(fixture(name), names)


def loop_params(**kwargs):
    params = dict(directories=[dict(path='/var/lib/openblock', mode='0700')],
                  files=[dict(path=BACKING, size='10G', content=None, mode='0600'),
                         dict(path=RULE, content='rule\n', size=None, mode='0644'),
                         dict(path=UNIT_FILE, content='[Unit]\n', size=None, mode='0644')],
                  units=[dict(name=LOOP, enabled=True, state='started')],
                  udev_trigger=dict(subsystem='block', sysname='loop*'))
    params.update(kwargs)
    return params


FRESH_PATHS = {'/var/lib/openblock': dict(kind='missing'), BACKING: dict(kind='missing'),
               RULE: dict(kind='missing'), UNIT_FILE: dict(kind='missing')}
DONE_PATHS = {'/var/lib/openblock': dict(kind='dir', mode=0o700), BACKING: dict(kind='file', mode=0o600, size=10 << 30),
              RULE: dict(kind='file', mode=0o644, text='rule\n'), UNIT_FILE: dict(kind='file', mode=0o644, text='[Unit]\n')}


def test_parse_show_gives_each_named_unit_its_block_in_order():
    names = ['tgt.service', 'openblock-nosuch.service', 'sanlock.service']
    units = shown('show-three.bookworm', names)
    assert set(units) == set(names)
    assert units['tgt.service']['LoadState'] == 'loaded'
    assert units['openblock-nosuch.service']['LoadState'] == 'not-found'
    assert units['openblock-nosuch.service']['UnitFileState'] == ''
    assert all(set(u) >= {'Id', 'LoadState', 'UnitFileState', 'ActiveState', 'NeedDaemonReload'} for u in units.values())


def test_fresh_host_plans_every_step_once_in_order():
    names = [LOOP]
    actions, errors, before, after, warnings = su.plan(loop_params(), FRESH_PATHS, shown('show-missing.bookworm', names))
    assert errors == [] and warnings == []
    assert [a.argv for a in actions] == [
        ['mkdir', '-p', '-m', '0700', '/var/lib/openblock'],
        ['truncate', '--size=%d' % (10 << 30), BACKING], ['chmod', '0600', BACKING],
        ['write', RULE], ['write', UNIT_FILE],
        ['systemctl', 'daemon-reload'],
        ['udevadm', 'control', '--reload'],
        ['udevadm', 'trigger', '--settle', '--action=change', '--subsystem-match=block', '--sysname-match=loop*'],
        ['systemctl', 'enable', LOOP], ['systemctl', 'start', LOOP]]
    assert isinstance(actions[3], FileWrite) and actions[3].mode == 0o644 and actions[3].text == 'rule\n'
    assert before['files'][RULE] is None and after['files'][RULE] == 'rule\n'
    assert after['units'][LOOP] == dict(enabled='enabled', active='active')


def test_converged_host_plans_nothing():
    units = shown('show-loop-running.bookworm', [LOOP])
    actions, errors, before, after, warnings = su.plan(loop_params(), DONE_PATHS, units)
    assert (actions, errors, warnings) == ([], [], [])
    assert before == after


def test_a_changed_unit_file_is_written_and_reloaded_but_the_running_unit_is_left_alone():
    paths = dict(DONE_PATHS, **{UNIT_FILE: dict(kind='file', mode=0o644, text='[Unit]\nold\n')})
    actions = su.plan(loop_params(), paths, shown('show-loop-running.bookworm', [LOOP]))[0]
    assert [a.argv for a in actions] == [['write', UNIT_FILE], ['systemctl', 'daemon-reload']]


def test_a_wrong_mode_alone_is_a_chmod_and_no_reload():
    paths = dict(DONE_PATHS, **{RULE: dict(kind='file', mode=0o666, text='rule\n'),
                                '/var/lib/openblock': dict(kind='dir', mode=0o755)})
    actions = su.plan(loop_params(), paths, shown('show-loop-running.bookworm', [LOOP]))[0]
    assert [a.argv for a in actions] == [['chmod', '0700', '/var/lib/openblock'], ['chmod', '0644', RULE]]


def test_the_sparse_file_is_never_resized_or_rewritten():
    paths = dict(DONE_PATHS, **{BACKING: dict(kind='file', mode=0o600, size=20 << 30)})
    actions, errors, before, after, warnings = su.plan(loop_params(), paths, shown('show-loop-running.bookworm', [LOOP]))
    assert actions == [] and before['files'][BACKING] == after['files'][BACKING]


def test_a_unit_that_needs_a_reload_gets_one():
    units = shown('show-needs-reload.bookworm', [LOOP])
    assert units[LOOP]['NeedDaemonReload'] == 'yes'
    actions = su.plan(loop_params(), DONE_PATHS, units)[0]
    assert [a.argv for a in actions] == [['systemctl', 'daemon-reload']]


def test_a_masked_unit_is_refused_before_anything_changes():
    paths = dict(FRESH_PATHS, **{UNIT_FILE: dict(kind='link', target='/dev/null')})
    # run() fails on any planner error before it applies an action
    errors = su.plan(loop_params(), paths, shown('show-missing.bookworm', [LOOP]))[1]
    assert any(e.startswith('files[2].path=%s is a symbolic link to /dev/null (a masked unit: unmask it first)' % UNIT_FILE)
               for e in errors)


def test_a_directory_where_a_file_goes_and_a_file_where_a_directory_goes_are_refused():
    paths = dict(FRESH_PATHS, **{RULE: dict(kind='dir', mode=0o755), '/var/lib/openblock': dict(kind='file', mode=0o644)})
    errors = su.plan(loop_params(), paths, shown('show-missing.bookworm', [LOOP]))[1]
    assert any('directories[0].path=/var/lib/openblock is a file' in e for e in errors)
    assert any('files[1].path=%s is a directory' % RULE in e for e in errors)


def test_a_unit_systemd_does_not_know_fails_but_is_predicted_in_check_mode():
    params = dict(directories=[], files=[], units=[dict(name='openblock-nosuch.service', enabled=True, state='started')],
                  udev_trigger=None)
    units = shown('show-three.bookworm', ['tgt.service', 'openblock-nosuch.service', 'sanlock.service'])
    actions, errors, before, after, warnings = su.plan(params, {}, units)
    assert actions == [] and len(errors) == 1
    assert 'units[0].name=openblock-nosuch.service is not a unit systemd knows (LoadState=not-found)' in errors[0]
    actions, errors, before, after, warnings = su.plan(params, {}, units, check_mode=True)
    assert errors == [] and len(warnings) == 1 and warnings[0].startswith('check mode: ')
    assert [a.argv for a in actions] == [['systemctl', 'enable', 'openblock-nosuch.service'],
                                         ['systemctl', 'start', 'openblock-nosuch.service']]


def test_units_are_enabled_and_started_with_one_command_each_and_only_those_that_need_it():
    names = ['tgt.service', 'openblock-nosuch.service', 'sanlock.service']
    units = shown('show-three.bookworm', names)
    params = dict(directories=[], files=[], udev_trigger=None,
                  units=[dict(name='tgt.service', enabled=True, state='started'),
                         dict(name='sanlock.service', enabled=True, state='started')])
    actions, errors, before, after, warnings = su.plan(params, {}, units)
    tgt, sanlock = units['tgt.service'], units['sanlock.service']
    expected = []
    enable = [n for n, u in (('tgt.service', tgt), ('sanlock.service', sanlock)) if u['UnitFileState'] not in su.ENABLED_STATES]
    start = [n for n, u in (('tgt.service', tgt), ('sanlock.service', sanlock)) if u['ActiveState'] not in su.RUNNING_STATES]
    if enable:
        expected.append(['systemctl', 'enable'] + enable)
    if start:
        expected.append(['systemctl', 'start'] + start)
    assert [a.argv for a in actions] == expected and errors == []
    assert all(u == dict(enabled=after['units'][n]['enabled'], active='active') for n, u in after['units'].items())


WATCHDOG = dict(name='softdog', unless_exists='/dev/watchdog')


def watchdog_params():
    return dict(directories=[], files=[], udev_trigger=None, kernel_modules=[WATCHDOG],
                units=[dict(name='sanlock.service', enabled=True, state='started')])


def test_a_kernel_module_is_added_to_the_boot_and_loaded_before_the_units_start():
    units = shown('show-three.bookworm', ['tgt.service', 'openblock-nosuch.service', 'sanlock.service'])
    units['sanlock.service'].update(ActiveState='inactive')
    fresh = dict(loaded=False, unneeded=False, boot_file=dict(kind='missing'))
    actions, errors, before, after, warnings = su.plan(watchdog_params(), {}, units, kernel_modules={'softdog': fresh})
    assert errors == []
    assert [a.argv for a in actions][:2] == [['write', '/etc/modules-load.d/openblock-softdog.conf'], ['modprobe', 'softdog']]
    assert actions[0].text == 'softdog\n' and actions[-1].argv == ['systemctl', 'start', 'sanlock.service']
    assert before['kernel_modules'] == dict(softdog=dict(loaded=False, at_boot=False))
    assert after['kernel_modules'] == dict(softdog=dict(loaded=True, at_boot=True))


def test_a_kernel_module_is_left_alone_when_loaded_at_boot_or_not_needed():
    units = dict(shown('show-three.bookworm', ['tgt.service', 'openblock-nosuch.service', 'sanlock.service']))
    units['sanlock.service'].update(ActiveState='active', UnitFileState='enabled')
    done = dict(loaded=True, unneeded=False, boot_file=dict(kind='file', mode=0o644, text='softdog\n'))
    hardware = dict(loaded=False, unneeded=True, boot_file=dict(kind='missing'))
    for state in (done, hardware):
        actions, errors, before, after, warnings = su.plan(watchdog_params(), {}, units, kernel_modules={'softdog': state})
        assert actions == [] and errors == [] and before == after
    assert after['kernel_modules'] == dict(softdog='not needed: /dev/watchdog exists')
    # loaded by hand but not at boot: only the boot file is written
    by_hand = dict(loaded=True, unneeded=False, boot_file=dict(kind='missing'))
    actions = su.plan(watchdog_params(), {}, units, kernel_modules={'softdog': by_hand})[0]
    assert [a.argv for a in actions] == [['write', '/etc/modules-load.d/openblock-softdog.conf']]


def test_bad_input_names_option_value_and_fix():
    params = dict(directories=[dict(path='var/lib', mode='0700'), dict(path='/etc/x', mode='644x')],
                  files=[dict(path='/etc/x', content='a', size=None, mode='0644'),
                         dict(path='/etc/y', content='a', size='1G', mode='0644'),
                         dict(path='/etc/z', content=None, size='ten', mode='0644')],
                  units=[dict(name='tgt'), dict(name='a.service'), dict(name='a.service')],
                  udev_trigger=dict(subsystem='block; rm', sysname=None),
                  kernel_modules=[dict(name='soft dog'), dict(name='softdog', unless_exists='dev/watchdog')])
    errors = su.spec_errors(params)
    joined = '\n'.join(errors)
    for part in ("directories[0].path='var/lib' is not an absolute", "directories[1].mode='644x' is not an octal mode",
                 "files[0].path='/etc/x' is listed twice", 'files[1] (/etc/y) gives both content and size',
                 "files[2].size='ten'", "units[0].name='tgt' is not a unit name with its type",
                 "units[2].name='a.service' is listed twice", "udev_trigger.subsystem='block; rm' is not a udevadm match",
                 "kernel_modules[0].name='soft dog' is not a kernel module name",
                 "kernel_modules[1].unless_exists='dev/watchdog' is not an absolute"):
        assert part in joined, part
    assert su.spec_errors(loop_params()) == []


def test_read_path_reads_text_only_of_files_that_hold_text(tmp_path):
    text_file, data_file, link = tmp_path / 'a.conf', tmp_path / 'b.img', tmp_path / 'c.service'
    text_file.write_text('x\n')
    os.chmod(text_file, 0o640)
    with open(data_file, 'wb') as handle:
        handle.truncate(1 << 20)
    os.symlink('/dev/null', link)
    assert su.read_path(str(text_file)) == dict(kind='file', mode=0o640, text='x\n')
    assert su.read_path(str(data_file), with_text=False) == dict(kind='file', mode=0o666 & ~_umask(), size=1 << 20)
    assert su.read_path(str(link)) == dict(kind='link', target='/dev/null')
    assert su.read_path(str(tmp_path)) == dict(kind='dir', mode=os.stat(tmp_path).st_mode & 0o7777)
    assert su.read_path(str(tmp_path / 'none')) == dict(kind='missing')


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- packages: installed from one dpkg-query, missing ones in one apt-get install, first

PACKAGES = ['tgt', 'nano', 'thin-provisioning-tools', 'nosuch-pkg']


def test_parse_packages_on_recorded_output_installed_removed_and_unknown():
    assert su.parse_packages(fixture('dpkg-query.bookworm'), PACKAGES) == {
        'tgt': True, 'nano': False, 'thin-provisioning-tools': True, 'nosuch-pkg': False}


def test_installed_packages_plan_nothing():
    installed = su.parse_packages(fixture('dpkg-query.bookworm'), ['tgt', 'thin-provisioning-tools'])
    actions, errors, before, after = su.plan(dict(packages=['tgt', 'thin-provisioning-tools']), {}, {},
                                             packages=installed)[:4]
    assert (actions, errors) == ([], [])
    assert before['packages'] == after['packages'] == {'tgt': 'installed', 'thin-provisioning-tools': 'installed'}


def test_missing_packages_are_installed_in_one_command_before_anything_else():
    installed = su.parse_packages(fixture('dpkg-query.bookworm'), PACKAGES)
    params = loop_params(packages=PACKAGES)
    actions, errors, before, after, warnings = su.plan(params, FRESH_PATHS, shown('show-missing.bookworm', [LOOP]),
                                                       packages=installed)
    assert errors == []
    first = actions[0]
    assert first.argv == su.APT_INSTALL + ['nano', 'nosuch-pkg'] and first.env == {'DEBIAN_FRONTEND': 'noninteractive'}
    assert not any(a.argv[0] == 'apt-get' for a in actions[1:])
    assert before['packages'] == {'tgt': 'installed', 'nano': 'not installed', 'thin-provisioning-tools': 'installed',
                                  'nosuch-pkg': 'not installed'}
    assert set(after['packages'].values()) == {'installed'}
    assert warnings == []


def test_a_unit_not_known_before_its_package_is_installed_is_predicted_with_a_warning():
    installed = su.parse_packages(fixture('dpkg-query.bookworm'), ['nano'])
    params = dict(packages=['nano'], units=[dict(name=LOOP, enabled=True, state='started')])
    planned = su.plan(params, {}, shown('show-missing.bookworm', [LOOP]), packages=installed)
    actions, errors, warnings = planned[0], planned[1], planned[4]
    assert errors == []
    assert [a.argv[:2] for a in actions] == [['apt-get', 'install'], ['systemctl', 'enable'], ['systemctl', 'start']]
    assert len(warnings) == 1 and warnings[0].startswith('before installing nano: units[0].name=%s is not a unit' % LOOP)


def test_an_unknown_unit_is_still_refused_when_no_package_is_missing():
    installed = su.parse_packages(fixture('dpkg-query.bookworm'), ['tgt'])
    params = dict(packages=['tgt'], units=[dict(name=LOOP, enabled=True, state='started')])
    errors = su.plan(params, {}, shown('show-missing.bookworm', [LOOP]), packages=installed)[1]
    assert len(errors) == 1 and 'is not a unit systemd knows' in errors[0]


def test_package_names_are_checked_before_anything():
    errors = su.spec_errors(dict(packages=['tgt=1:1.0.85', 'lvm2', 'lvm2', 'Tgt']))
    assert errors == [
        "packages[0]='tgt=1:1.0.85' is not a Debian package name (lower case letters, digits, + - .); write it like "
        "lvm2-lockd, without a version or release",
        "packages[2]='lvm2' is listed twice; list each package once",
        "packages[3]='Tgt' is not a Debian package name (lower case letters, digits, + - .); write it like lvm2-lockd, "
        "without a version or release"]
