"""system_units on the lab VM: a package, a script, its service and timer in one call, predicted in
check mode, applied, a no-op, then a changed script alone; with them a kernel module loaded now and at
boot, and one that is not needed. The package is an empty one the fixture builds, served by a local
apt source (the lab VMs reach no mirror), so apt-get really installs it.

Resources of this file only (removed at the end): /usr/local/sbin/itest-units,
/etc/systemd/system/itest-units.{service,timer}, /var/tmp/itest-units, the module crc7 (a CRC
library nothing in the lab uses), /etc/modules-load.d/openblock-crc7.conf, the package
openblock-itest-dummy, its source /etc/apt/sources.list.d/itest-units.list and /var/tmp/itest-pkg."""

import pytest

SCRIPT = '/usr/local/sbin/itest-units'
SERVICE = '/etc/systemd/system/itest-units.service'
TIMER = '/etc/systemd/system/itest-units.timer'
SPARSE = '/var/tmp/itest-units/data.img'
BOOT_FILE = '/etc/modules-load.d/openblock-crc7.conf'
PACKAGE = 'openblock-itest-dummy'
SOURCE = '/etc/apt/sources.list.d/itest-units.list'
# An empty package in a local repository, and apt's lists of that source alone (List-Cleanup=0 keeps
# the Debian lists, which the VM cannot refresh).
REPOSITORY = r'''
set -e
rm -rf /var/tmp/itest-pkg && mkdir -p /var/tmp/itest-pkg/build/DEBIAN /var/tmp/itest-pkg/repo
printf 'Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: itest <root@localhost>\nDescription: empty\n' \
    > /var/tmp/itest-pkg/build/DEBIAN/control
cd /var/tmp/itest-pkg/repo
dpkg-deb --build /var/tmp/itest-pkg/build {package}_1.0_all.deb >/dev/null
{{ dpkg-deb --field {package}_1.0_all.deb
   echo "Filename: ./{package}_1.0_all.deb"
   echo "Size: $(stat -c %s {package}_1.0_all.deb)"
   echo "SHA256: $(sha256sum {package}_1.0_all.deb | cut -d' ' -f1)"; }} > Packages
echo 'deb [trusted=yes] file:/var/tmp/itest-pkg/repo ./' > {source}
apt-get update -qq -o Dir::Etc::sourcelist={source} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
'''.format(package=PACKAGE, source=SOURCE)


def args(script_text='#!/bin/sh\necho itest\n'):
    return dict(
        packages=[PACKAGE, 'systemd'],
        directories=[dict(path='/var/tmp/itest-units', mode='0700')],
        files=[dict(path=SCRIPT, content=script_text, mode='0755'),
               dict(path=SERVICE, content='[Service]\nType=oneshot\nExecStart=%s\n' % SCRIPT),
               dict(path=TIMER, content='[Timer]\nOnBootSec=1h\nOnUnitActiveSec=1h\n\n[Install]\nWantedBy=timers.target\n'),
               dict(path=SPARSE, size='64M', mode='0600')],
        kernel_modules=[dict(name='crc7'), dict(name='softdog', unless_exists='/')],
        units=[dict(name='itest-units.timer', enabled=True, state='started')])


def state(lab):
    return lab.out('ls -ln --time-style=+ %s %s %s /var/tmp/itest-units 2>&1; '
                   'systemctl show --property=LoadState,UnitFileState,ActiveState itest-units.timer' % (SCRIPT, SERVICE, TIMER))


@pytest.fixture(scope='module', autouse=True)
def clean(lab):
    cleanup = ('systemctl disable --now itest-units.timer 2>/dev/null; rm -rf %s %s %s %s /var/tmp/itest-units; '
               'systemctl daemon-reload; rmmod crc7 2>/dev/null; dpkg --purge %s >/dev/null 2>&1; '
               'rm -rf %s /var/tmp/itest-pkg /var/lib/apt/lists/_var_tmp_itest-pkg_*; true'
               % (SCRIPT, SERVICE, TIMER, BOOT_FILE, PACKAGE, SOURCE))
    lab.sh(cleanup)
    lab.sh(REPOSITORY)
    yield
    lab.sh(cleanup)


def test_check_mode_predicts_every_step_and_changes_nothing(lab):
    before = state(lab)
    result = lab.module('system_units', args(), check=True, diff=True)
    assert result['changed'] is True and not result['failed']
    assert result['commands'] == [
        'apt-get install --yes -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ' + PACKAGE,
        'mkdir -p -m 0700 /var/tmp/itest-units', 'write ' + SCRIPT, 'write ' + SERVICE, 'write ' + TIMER,
        'truncate --size=67108864 ' + SPARSE, 'chmod 0600 ' + SPARSE, 'write ' + BOOT_FILE, 'modprobe crc7',
        'systemctl daemon-reload',
        'systemctl enable itest-units.timer', 'systemctl start itest-units.timer']
    assert result['diff']['before']['packages'] == {PACKAGE: 'not installed', 'systemd': 'installed'}
    assert result['diff']['before']['files'][SCRIPT] is None
    assert result['diff']['after']['units']['itest-units.timer'] == dict(enabled='enabled', active='active')
    assert result['diff']['before']['kernel_modules'] == dict(crc7=dict(loaded=False, at_boot=False),
                                                              softdog='not needed: / exists')
    assert state(lab) == before and lab.out('test -e /sys/module/crc7 || echo absent').strip() == 'absent'
    assert lab.sh('dpkg-query --show %s' % PACKAGE, check=False)[0] != 0


def test_apply_then_a_second_run_changes_nothing(lab):
    result = lab.module('system_units', args())
    assert result['changed'] is True and not result['failed']
    assert lab.out('systemctl is-enabled itest-units.timer; systemctl is-active itest-units.timer').split() == [
        'enabled', 'active']
    assert lab.out('stat -c "%a %s %b" ' + SPARSE).split() == ['600', str(64 << 20), '0']  # sparse: no block used
    assert lab.out('stat -c %a /var/tmp/itest-units ' + SCRIPT).split() == ['700', '755']
    assert lab.out('cat %s; test -d /sys/module/crc7 && echo loaded' % BOOT_FILE).split() == ['crc7', 'loaded']
    assert result['kernel_modules']['crc7'] == dict(loaded=True, at_boot=True)
    assert lab.out("dpkg-query --show --showformat='${db:Status-Abbrev}' " + PACKAGE) == 'ii '
    assert result['packages'] == {PACKAGE: 'installed', 'systemd': 'installed'}
    again = lab.module('system_units', args())
    assert again['changed'] is False and again['commands'] == []
    assert again['units']['itest-units.timer'] == dict(enabled='enabled', active='active')


def test_a_changed_script_is_written_alone(lab):
    result = lab.module('system_units', args('#!/bin/sh\necho itest 2\n'))
    assert result['changed'] is True and result['commands'] == ['write ' + SCRIPT]
    assert lab.out('cat ' + SCRIPT) == '#!/bin/sh\necho itest 2\n'
    assert lab.out('stat -c %a ' + SCRIPT).strip() == '755'
