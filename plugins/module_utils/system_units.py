# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The packages, files and systemd units a role installs on a host, in one call: the Debian
packages that are missing (one ``apt-get install``), directories, files (unit files, drop-ins, udev
rules, scripts, configuration), kernel modules loaded now and at boot, one
``systemctl daemon-reload`` when a unit file changed, one udev reload (and trigger) when a rule
changed, then the units enabled and started, each step one command for all the units it concerns.

State is read once: the packages from one ``dpkg-query`` (what ``apt`` would learn from loading
its whole cache, ~11 s of a TCG VM's CPU, in 0.2 s), the files from the file system, the units
from one ``systemctl show``.
The plan is pure and complete before its first action runs; a file that is a symbolic link (a
masked unit is one) or a unit systemd does not know is refused before anything changes.
"""

from __future__ import annotations

import os
import re
import stat

from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    Action, FileWrite, Runner, diff_result, host_lock, refuse_bad_input)
from ansible_collections.openblock.storage.plugins.module_utils.sizes import SizeError, parse_size

# Files under these directories are what systemd reads at daemon-reload; udev reads the rules dirs.
SYSTEMD_DIRS = ('/etc/systemd/', '/run/systemd/', '/usr/lib/systemd/', '/lib/systemd/')
UDEV_RULES_DIRS = ('/etc/udev/rules.d/', '/run/udev/rules.d/', '/usr/lib/udev/rules.d/', '/lib/udev/rules.d/')
SHOW_PROPERTIES = 'Id,LoadState,UnitFileState,ActiveState,NeedDaemonReload'
# UnitFileState values for which `enabled: true` holds (static units cannot be enabled; they run
# when something wants them).
ENABLED_STATES = ('enabled', 'enabled-runtime', 'static', 'alias', 'generated')
# ActiveState values of a unit that runs or is on its way.
RUNNING_STATES = ('active', 'activating', 'reloading')
UNIT_RE = re.compile(r'^[A-Za-z0-9:_.\\@-]+\.(service|timer|socket|target|mount|path)$')
MODE_RE = re.compile(r'^0?[0-7]{3}$')
MATCH_RE = re.compile(r'^[A-Za-z0-9_*?.:-]+$')
KERNEL_MODULE_RE = re.compile(r'^[A-Za-z0-9_-]+$')
# Debian policy 5.6.1: lower case letters, digits, + - . ; at least two characters, a letter or digit first.
PACKAGE_RE = re.compile(r'^[a-z0-9][a-z0-9+.-]+$')
DPKG_QUERY = ['dpkg-query', '--show', '--showformat=${Package}\t${db:Status-Abbrev}\n']
# Never a question on a terminal; a changed configuration file the package also ships keeps the
# local version (what `apt` does by default).
APT_INSTALL = ['apt-get', 'install', '--yes', '-o', 'Dpkg::Options::=--force-confdef',
               '-o', 'Dpkg::Options::=--force-confold']
APT_ENV = {'DEBIAN_FRONTEND': 'noninteractive'}
# Downloading and configuring packages on a slow host.
INSTALL_TIMEOUT = 1200
# systemd-modules-load reads this directory at boot; the file of module NAME is openblock-NAME.conf.
MODULES_LOAD_DIR = '/etc/modules-load.d'
# The start or stop of a unit waits for it (a oneshot's ExecStart, a service's device waits).
START_TIMEOUT = 300


def _mode(text):
    return int(text, 8)


def spec_errors(params):
    """Bad input, each message naming the option, the value and what to write instead."""
    errors = []
    seen = set()
    for option in ('directories', 'files'):
        for index, entry in enumerate(params.get(option) or []):
            where = '%s[%d]' % (option, index)
            path = entry.get('path')
            if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path:
                errors.append('%s.path=%r is not an absolute, normalized path; write it like /etc/systemd/system/x.service'
                              % (where, path))
            elif path in seen:
                errors.append('%s.path=%r is listed twice; list each path once' % (where, path))
            seen.add(path)
            if not isinstance(entry.get('mode'), str) or not MODE_RE.match(entry['mode']):
                errors.append("%s.mode=%r is not an octal mode; quote it, like '0644'" % (where, entry.get('mode')))
    for index, entry in enumerate(params.get('files') or []):
        if (entry.get('content') is None) == (entry.get('size') is None):
            errors.append('files[%d] (%s) gives %s; give its text in content, or the size of a sparse file in size'
                          % (index, entry.get('path'), 'both content and size' if entry.get('content') is not None
                             else 'neither content nor size'))
        elif entry.get('size') is not None:
            try:
                if parse_size(entry['size'], 'files[%d].size' % index) <= 0:
                    errors.append('files[%d].size=%r is not a size above 0; write it like 10G' % (index, entry['size']))
            except SizeError as e:
                errors.append(str(e))
    packages = set()
    for index, name in enumerate(params.get('packages') or []):
        if not isinstance(name, str) or not PACKAGE_RE.match(name):
            errors.append('packages[%d]=%r is not a Debian package name (lower case letters, digits, + - .); '
                          'write it like lvm2-lockd, without a version or release' % (index, name))
        elif name in packages:
            errors.append('packages[%d]=%r is listed twice; list each package once' % (index, name))
        packages.add(name)
    names = set()
    for index, unit in enumerate(params.get('units') or []):
        name = unit.get('name')
        if not isinstance(name, str) or not UNIT_RE.match(name):
            errors.append('units[%d].name=%r is not a unit name with its type; write it like tgt.service or x.timer'
                          % (index, name))
        elif name in names:
            errors.append('units[%d].name=%r is listed twice; list each unit once' % (index, name))
        names.add(name)
    for index, entry in enumerate(params.get('kernel_modules') or []):
        name, unless = entry.get('name'), entry.get('unless_exists')
        if not isinstance(name, str) or not KERNEL_MODULE_RE.match(name):
            errors.append('kernel_modules[%d].name=%r is not a kernel module name; write it like softdog' % (index, name))
        if unless is not None and (not os.path.isabs(unless) or os.path.normpath(unless) != unless):
            errors.append('kernel_modules[%d].unless_exists=%r is not an absolute, normalized path; write it like '
                          '/dev/watchdog' % (index, unless))
    trigger = params.get('udev_trigger') or {}
    for key in ('subsystem', 'sysname'):
        value = trigger.get(key)
        if value is not None and not MATCH_RE.match(value):
            errors.append('udev_trigger.%s=%r is not a udevadm match; use letters, digits and * like loop*' % (key, value))
    return errors


def parse_show(text, names):
    """{name: {property: value}} of `systemctl show --property=... NAME...`: one blank-line
    separated block per name, in order (by position, since an alias shows its real unit's Id)."""
    blocks = [dict(line.split('=', 1) for line in block.splitlines() if '=' in line)
              for block in re.split(r'\n\s*\n', text.strip()) if block.strip()]
    if len(blocks) == len(names):
        return dict(zip(names, blocks))
    return dict((props['Id'], props) for props in blocks if props.get('Id'))


def parse_packages(text, names):
    """{name: installed?} of `dpkg-query --show --showformat='${Package}\t${db:Status-Abbrev}\n' NAME...`.

    dpkg-query prints the packages it knows (sorted, not in the order asked) and exits 1 when it
    knows some not at all; a package is installed when its status is `i` with no error flag (`ii `,
    or `hi ` when held); `un` (removed), `rc` (only its configuration left) and the unknown are not.
    """
    status = {}
    for line in text.splitlines():
        name, abbrev = line.partition('\t')[::2]
        status[name.strip()] = abbrev
    return dict((name, status.get(name, '')[1:3] == 'i ') for name in names)


def read_path(path, with_text=True):
    """What ``path`` is now: {'kind': missing|file|dir|link|other, 'mode', 'text'} (the text of a
    file only ``with_text``: a sparse data file is never read)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return dict(kind='missing')
    if stat.S_ISLNK(st.st_mode):
        return dict(kind='link', target=os.readlink(path))
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return dict(kind='dir', mode=mode)
    if not stat.S_ISREG(st.st_mode):
        return dict(kind='other', mode=mode)
    if not with_text:
        return dict(kind='file', mode=mode, size=st.st_size)
    with open(path, 'rb') as handle:
        data = handle.read()
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        text = None  # never equal to the wanted text: replaced
    return dict(kind='file', mode=mode, text=text)


def modules_load_file(name):
    return '%s/openblock-%s.conf' % (MODULES_LOAD_DIR, name)


def read_kernel_module(entry):
    """What the planner needs of one kernel_modules entry: whether the module is loaded (or built
    in), whether its unless_exists path is there, and its modules-load.d file."""
    unless = entry.get('unless_exists')
    return dict(loaded=os.path.exists('/sys/module/' + entry['name']),
                unneeded=bool(unless) and os.path.exists(unless),
                boot_file=read_path(modules_load_file(entry['name'])))


def _under(path, dirs):
    return any(path.startswith(d) for d in dirs)


def plan(params, paths, units, check_mode=False, kernel_modules=None, packages=None):
    """Pure planner. ``paths``: {path: read_path(path)} of every listed directory and file;
    ``units``: parse_show() of the listed units; ``kernel_modules``: {name: read_kernel_module()};
    ``packages``: parse_packages() of the listed packages. Returns (actions, errors, before, after,
    warnings).

    Errors are refusals found before anything changes: a path that is a symbolic link or of the
    wrong kind, a unit systemd does not know (in check mode, or when packages are installed first,
    a unit whose package or file is not there yet is a warning: the run that installs it will know
    it, and its enable and start fail, naming it, if the package does not ship it)."""
    actions, errors, warnings = [], [], []
    before = dict(packages={}, directories={}, files={}, kernel_modules={}, units={})
    after = dict(packages={}, directories={}, files={}, kernel_modules={}, units={})
    written = []
    # Packages first: they ship the units, tools and directories the rest is about.
    missing = []
    for name in params.get('packages') or []:
        installed = (packages or {}).get(name, False)
        before['packages'][name] = 'installed' if installed else 'not installed'
        after['packages'][name] = 'installed'
        if not installed:
            missing.append(name)
    if missing:
        actions.append(Action(APT_INSTALL + missing, 'install %s' % ', '.join(missing), env=APT_ENV,
                              timeout=INSTALL_TIMEOUT))
    predicted = check_mode or bool(missing)
    for index, entry in enumerate(params.get('directories') or []):
        path, mode = entry['path'], _mode(entry['mode'])
        now = paths[path]
        if now['kind'] in ('link', 'file', 'other'):
            errors.append('directories[%d].path=%s is a %s, not a directory; remove it or name another path'
                          % (index, path, 'symbolic link' if now['kind'] == 'link' else 'file'))
            continue
        before['directories'][path] = '%04o' % now['mode'] if now['kind'] == 'dir' else None
        after['directories'][path] = '%04o' % mode
        if now['kind'] == 'missing':
            actions.append(Action(['mkdir', '-p', '-m', '%04o' % mode, path], 'create the directory %s' % path))
        elif now['mode'] != mode:
            actions.append(Action(['chmod', '%04o' % mode, path], 'set the mode of %s' % path))
    for index, entry in enumerate(params.get('files') or []):
        path, mode, text = entry['path'], _mode(entry['mode']), entry['content']
        now = paths[path]
        if now['kind'] in ('link', 'dir', 'other'):
            what = {'link': 'a symbolic link to %s' % now.get('target'), 'dir': 'a directory',
                    'other': 'not a regular file'}[now['kind']]
            hint = ' (a masked unit: unmask it first)' if now.get('target') == '/dev/null' else ''
            errors.append('files[%d].path=%s is %s%s; remove it or name the real file' % (index, path, what, hint))
            continue
        if entry.get('size') is not None:
            # a sparse data file (a loop device's backing file): made when missing, never resized or read
            size = parse_size(entry['size'])
            before['files'][path] = 'sparse file of %d bytes' % now['size'] if now['kind'] == 'file' else None
            after['files'][path] = 'sparse file of %d bytes' % (now['size'] if now['kind'] == 'file' else size)
            if now['kind'] == 'missing':
                actions.append(Action(['truncate', '--size=%d' % size, path], 'create the sparse file %s' % path))
                actions.append(Action(['chmod', '%04o' % mode, path], 'set the mode of %s' % path))
            elif now['mode'] != mode:
                actions.append(Action(['chmod', '%04o' % mode, path], 'set the mode of %s' % path))
            continue
        before['files'][path] = now.get('text') if now['kind'] == 'file' else None
        after['files'][path] = text
        if now['kind'] == 'missing' or now.get('text') != text:
            actions.append(FileWrite(path, text, 'write %s' % path, mode=mode))
            written.append(path)
        elif now['mode'] != mode:
            actions.append(Action(['chmod', '%04o' % mode, path], 'set the mode of %s' % path))
    # Modules after the files, before the units: a service may need the device a module makes
    # (wdmd needs /dev/watchdog).
    for index, entry in enumerate(params.get('kernel_modules') or []):
        name = entry['name']
        now = kernel_modules[name]
        boot_file, boot_text = modules_load_file(name), name + '\n'
        if now['unneeded']:
            before['kernel_modules'][name] = after['kernel_modules'][name] = (
                'not needed: %s exists' % entry['unless_exists'])
            continue
        if now['boot_file']['kind'] not in ('missing', 'file'):
            errors.append('kernel_modules[%d]: %s is not a regular file; remove it' % (index, boot_file))
            continue
        before['kernel_modules'][name] = dict(loaded=now['loaded'], at_boot=now['boot_file'].get('text') == boot_text)
        after['kernel_modules'][name] = dict(loaded=True, at_boot=True)
        if now['boot_file'].get('text') != boot_text:
            actions.append(FileWrite(boot_file, boot_text, 'load %s at boot' % name, mode=0o644))
        if not now['loaded']:
            actions.append(Action(['modprobe', name], 'load the kernel module %s' % name))
    wanted = params.get('units') or []
    unit_files = [p for p in written if _under(p, SYSTEMD_DIRS)]
    stale = [u['name'] for u in wanted if units.get(u['name'], {}).get('NeedDaemonReload') == 'yes']
    if unit_files or stale:
        actions.append(Action(['systemctl', 'daemon-reload'], 'make systemd read the changed unit files'))
    rules = [p for p in written if _under(p, UDEV_RULES_DIRS)]
    if rules:
        actions.append(Action(['udevadm', 'control', '--reload'], 'make udev read the changed rules'))
        trigger = params.get('udev_trigger')
        if trigger:
            argv = ['udevadm', 'trigger', '--settle', '--action=change']
            if trigger.get('subsystem'):
                argv.append('--subsystem-match=' + trigger['subsystem'])
            if trigger.get('sysname'):
                argv.append('--sysname-match=' + trigger['sysname'])
            actions.append(Action(argv, 'apply the changed rules to the devices there now'))
    enable, disable, start, stop = [], [], [], []
    for index, unit in enumerate(wanted):
        name = unit['name']
        props = units.get(name, {})
        known = props.get('LoadState') == 'loaded'
        new_file = any(p.endswith('/' + name) for p in unit_files)
        if not known and not new_file:
            message = ('units[%d].name=%s is not a unit systemd knows (LoadState=%s); install the package that ships '
                       'it or list its file in files' % (index, name, props.get('LoadState') or 'none'))
            if predicted:
                warnings.append('%s: %s; its enable and start are predicted' % (
                    'check mode' if check_mode else 'before installing %s' % ', '.join(missing), message))
            else:
                errors.append(message)
                continue
        file_state = props.get('UnitFileState', '') if known else ''
        active = props.get('ActiveState', 'inactive') if known else 'inactive'
        before['units'][name] = dict(enabled=file_state or None, active=active if known else None)
        after_unit = dict(enabled=file_state or None, active=active)
        if unit.get('enabled') is True and file_state not in ENABLED_STATES:
            enable.append(name)
            after_unit['enabled'] = 'enabled'
        elif unit.get('enabled') is False and file_state in ('enabled', 'enabled-runtime'):
            disable.append(name)
            after_unit['enabled'] = 'disabled'
        if unit.get('state') == 'started' and active not in RUNNING_STATES:
            start.append(name)
            after_unit['active'] = 'active'
        elif unit.get('state') == 'stopped' and active in RUNNING_STATES:
            stop.append(name)
            after_unit['active'] = 'inactive'
        after['units'][name] = after_unit
    if enable:
        actions.append(Action(['systemctl', 'enable'] + enable, 'enable %s at boot' % ', '.join(enable)))
    if disable:
        actions.append(Action(['systemctl', 'disable'] + disable, 'disable %s at boot' % ', '.join(disable)))
    if stop:
        actions.append(Action(['systemctl', 'stop'] + stop, 'stop %s' % ', '.join(stop), timeout=START_TIMEOUT))
    if start:
        actions.append(Action(['systemctl', 'start'] + start, 'start %s' % ', '.join(start), timeout=START_TIMEOUT))
    return actions, errors, before, after, warnings


def run(module):
    """Read, plan, apply, report: the whole system_units module."""
    params = module.params
    errors = spec_errors(params)
    refuse_bad_input(module, errors)
    runner = Runner(module)
    names = [u['name'] for u in params['units']]
    with host_lock(module):
        packages = {}
        if params['packages']:
            packages = parse_packages(runner.read(DPKG_QUERY + params['packages'], ok_rcs=(0, 1))[1],
                                      params['packages'])
        paths = dict((e['path'], read_path(e['path'], e.get('size') is None))
                     for e in params['directories'] + params['files'])
        units = {}
        if names:
            units = parse_show(runner.read(['systemctl', 'show', '--property=' + SHOW_PROPERTIES] + names)[1], names)
        kernel_modules = dict((e['name'], read_kernel_module(e)) for e in params['kernel_modules'])
        actions, errors, before, after, warnings = plan(params, paths, units, module.check_mode, kernel_modules,
                                                        packages)
        if errors:
            module.fail_json(msg='refused, nothing was changed: ' + '; '.join(errors), errors=errors, commands=[])
        for warning in warnings:
            module.warn(warning)
        changed = runner.apply(actions)
    result = dict(changed=changed, packages=after['packages'], units=after['units'],
                  kernel_modules=after['kernel_modules'],
                  commands=runner.commands,
                  written=[a.path for a in actions if isinstance(a, FileWrite)])
    if module._diff:
        result['diff'] = diff_result(before, after)
    module.exit_json(**result)
