# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LVM host configuration: the settings the collection manages in lvm.conf and lvmlocal.conf.

Read: the two files, the PVs (one ``pvs`` report) and, for the global_filter, what sysfs and
/dev/disk/by-* say about each PV and named device (``read_facts``, a plain dict that unit tests
record from the lab). Plan: ``plan_config`` is pure; it edits only the lines of the managed
settings and leaves every other byte of the distribution's file as it was. Apply: the candidate
files are checked by ``lvmconfig --validate`` in a directory of their own (LVM_SYSTEM_DIR), and
read back by ``lvmconfig`` there, before each file is replaced atomically (plan.FileWrite: temporary
file in the same directory, same mode and owner, rename).

The global_filter is a whitelist: named devices and this host's own local PVs, then ``r|.*|``.
A PV is local when every disk below it (sysfs ``slaves``, recursively) is a local disk: not on an
iSCSI session, and not inside an LV of an excluded VG (a PV a guest created in an exported
volume). A device that cannot be classified is not accepted (fail closed). Every accept entry
names the device by a name that survives a reboot (/dev/disk/by-id first), never /dev/sdX or
/dev/loopN.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from ansible_collections.openblock.storage.plugins.module_utils.lvm import LVM_TOOLS, name_error, read_pvs
from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    FileWrite, Runner, diff_result, host_lock, read_text, require_tools)

LVM_CONF = '/etc/lvm/lvm.conf'
LVMLOCAL_CONF = '/etc/lvm/lvmlocal.conf'
FILTER_KEY = 'devices/global_filter'
_KEY_RE = re.compile(r'^([a-z_]+)/([a-z_][a-z0-9_]*)$')
_ACCEPT_RE = re.compile(r'^a(.).+\1$')
# Characters a device name may have in a filter entry; '.' and '+' are written as [.] and [+].
_SAFE_NAME_RE = re.compile(r'^/dev/[A-Za-z0-9/_.:+@=,-]+$')
# Where stable names come from, best first. /dev/disk/by-id/lvm-pv-uuid-* names the PV label, so
# it appears only once the device is a PV: a last resort, or the name would change after pvcreate.
STABLE_DIRS = ('by-id', 'by-path', 'by-partuuid', 'by-uuid')
PV_UUID_PREFIX = '/dev/disk/by-id/lvm-pv-uuid-'


def stable_path(path):
    """Whether ``path`` is a name udev or device-mapper keeps across reboots."""
    return path.startswith('/dev/disk/by-') or path.startswith('/dev/mapper/')


# ---------------------------------------------------------------------------------------------
# Input

def _string_error(value, option):
    if not isinstance(value, str):
        return None
    if '"' in value or '\n' in value or value.endswith('\\'):
        return ('%s=%r holds a double quote or a newline, or ends with a backslash, which this module does '
                'not write into LVM configuration; write the value without them' % (option, value))
    return None


def config_spec(params):
    """(spec, errors): the settings to set, each as (file kind, section, key, value), and the filter input."""
    errors, settings = [], []
    for key in sorted(params.get('settings') or {}):
        value = params['settings'][key]
        option = 'settings[%r]' % key
        match = _KEY_RE.match(key)
        if not match:
            errors.append('%s: the key is not section/name; write it as lvmconfig does (for example '
                          'global/use_lvmlockd or local/host_id)' % option)
            continue
        if key == FILTER_KEY:
            errors.append('%s: set the global_filter with the global_filter option, which computes it' % option)
            continue
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, str) and value.isdigit():
            value = int(value)  # a templated number ("{{ n | int }}" can arrive as text)
        elif isinstance(value, list):
            if not value or not all(isinstance(v, str) for v in value):
                errors.append('%s=%r: a list value must be a non-empty list of strings' % (option, value))
                continue
        elif not isinstance(value, (int, str)):
            errors.append('%s=%r: give a number, a string or a list of strings' % (option, value))
            continue
        for item in value if isinstance(value, list) else [value]:
            error = _string_error(item, option)
            if error:
                errors.append(error)
        kind = 'lvmlocal' if match.group(1) == 'local' else 'lvm'
        settings.append((kind, match.group(1), match.group(2), value))
    spec = dict(settings=settings, filter=None,
                paths={'lvm': params.get('path') or LVM_CONF, 'lvmlocal': params.get('local_path') or LVMLOCAL_CONF})
    wanted = params.get('global_filter')
    if wanted is not None:
        filter_spec = dict(devices=list(wanted.get('devices') or []), accept=list(wanted.get('accept') or []),
                           exclude_vgs=list(wanted.get('exclude_vgs') or []))
        for index, device in enumerate(filter_spec['devices']):
            option = 'global_filter.devices[%d]' % index
            if not isinstance(device, str) or not device.startswith('/dev/'):
                errors.append('%s=%r is not a device path; give a path under /dev/ '
                              '(best /dev/disk/by-id/...)' % (option, device))
        for index, pattern in enumerate(filter_spec['accept']):
            option = 'global_filter.accept[%d]' % index
            error = _string_error(pattern, option)
            if error:
                errors.append(error)
            elif not isinstance(pattern, str) or not _ACCEPT_RE.match(pattern):
                errors.append('%s=%r is not an accept pattern; write a|regex| '
                              '(for example a|^/dev/mapper/shared-lun$|)' % (option, pattern))
        for index, vg in enumerate(filter_spec['exclude_vgs']):
            error = name_error(vg, 'global_filter.exclude_vgs[%d]' % index)
            if error:
                errors.append(error)
        spec['filter'] = filter_spec
    if not params.get('settings') and wanted is None:
        errors.append('nothing to set: give global_filter, settings, or both')
    return spec, errors


# ---------------------------------------------------------------------------------------------
# Values: LVM's configuration syntax for the values this module writes (numbers, strings, lists)

_TOKEN_RE = re.compile(r'\s*(?:(-?\d+)|"((?:[^"\\]|\\.)*)"|(\[)|(\])|(,))')


def format_value(value):
    """The text LVM writes for ``value``: 1, "text", [ "a", "b" ]."""
    if isinstance(value, list):
        return '[ %s ]' % ', '.join(format_value(v) for v in value)
    if isinstance(value, str):
        return '"%s"' % value.replace('\\', '\\\\')
    return str(int(value))


def parse_value(text):
    """The value of ``key = <text>`` (comments already cut off), or None when it is not a plain one."""
    pos, stack, top = 0, None, []
    text = text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            return None
        number, string, opening, closing, comma = match.groups()
        pos = match.end()
        if opening is not None:
            if stack is not None:
                return None
            stack = []
        elif closing is not None:
            if stack is None:
                return None
            top.append(stack)
            stack = None
        elif comma is not None:
            if stack is None:
                return None
        else:
            # LVM reads \\ as one backslash and keeps any other backslash as it is
            item = int(number) if number is not None else re.sub(r'\\([\\"])', r'\1', string)
            (stack if stack is not None else top).append(item)
    if stack is not None or len(top) != 1:
        return None
    return top[0]


def _comment_start(line):
    """Index of the comment of ``line`` (a # outside double quotes), or its length."""
    in_string, escaped = False, False
    for index, char in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif char == '\\':
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == '#':
            return index
    return len(line)


def _code(line):
    """``line`` without its comment, with quoted strings emptied (so [ ] { } in them do not count)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"?', '""', line[:_comment_start(line)])


# ---------------------------------------------------------------------------------------------
# The file: sections and the settings in them

_SECTION_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\{\s*$')
_SETTING_RE = re.compile(r'^(\s*)([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$', re.S)


def scan(lines):
    """Top-level sections {name: header index} (first of each) and settings {(section, key): [(first, last)]}."""
    sections, settings, stack, open_value = {}, {}, [], None
    for index, line in enumerate(lines):
        code = _code(line)
        if open_value is not None:
            key, first, depth = open_value
            depth += code.count('[') - code.count(']')
            if depth <= 0:
                settings.setdefault(key, []).append((first, index))
                open_value = None
            else:
                open_value = (key, first, depth)
            continue
        match = _SECTION_RE.match(code)
        if match:
            if not stack:
                sections.setdefault(match.group(1), index)
            stack.append(match.group(1))
            continue
        if code.strip() == '}':
            if stack:
                stack.pop()
            continue
        match = _SETTING_RE.match(code)
        if match and len(stack) == 1:
            key = (stack[0], match.group(2))
            depth = code.count('[') - code.count(']')
            if depth > 0:
                open_value = (key, index, depth)
            else:
                settings.setdefault(key, []).append((index, index))
    return sections, settings


def _span_value(lines, span):
    text = ''.join(line[:_comment_start(line)].rstrip('\n') + ' ' for line in lines[span[0]:span[1] + 1])
    return parse_value(_SETTING_RE.match(text).group(3))


def set_setting(text, section, key, value):
    """(new text, lines before, line after): ``text`` with ``section/key`` set to ``value``.

    An existing setting keeps its place and indentation; a second one of the same key is removed
    (LVM would read only one); a new one goes first in its section, or in a new section at the end.
    Every other line stays as it was.
    """
    lines = text.splitlines(True)
    sections, settings = scan(lines)
    spans = settings.get((section, key), [])
    before = [''.join(lines[first:last + 1]).rstrip('\n') for first, last in spans]
    if len(spans) == 1 and _span_value(lines, spans[0]) == value:
        return text, before, before[0]
    if spans:
        indent = _SETTING_RE.match(lines[spans[0][0]]).group(1)
    else:
        indent = '\t'
    line = '%s%s = %s' % (indent, key, format_value(value))
    if spans:
        for first, last in reversed(spans[1:]):
            del lines[first:last + 1]
        first, last = spans[0]
        lines[first:last + 1] = [line + '\n']
    elif section in sections:
        lines.insert(sections[section] + 1, line + '\n')
    else:
        if lines and not lines[-1].endswith('\n'):
            lines[-1] += '\n'
        lines.append('%s {\n%s\n}\n' % (section, line))
    return ''.join(lines), before, line


# ---------------------------------------------------------------------------------------------
# Devices: reading sysfs and /dev/disk, and classifying

def kernel_name(path):
    """Kernel name of the block device at ``path`` (symlinks followed), or None when there is none."""
    real = os.path.realpath(path)
    if not real.startswith('/dev/') or not os.path.exists(real):
        return None
    return os.path.basename(real)


def read_block(name, sys_root='/sys'):
    """What sysfs says about block device ``name``: slaves, disk of a partition, device path, dm name, loop file."""
    base = os.path.join(sys_root, 'class', 'block', name)
    try:
        if not os.path.isdir(base):
            return {'error': 'no %s' % base}
        info = {'slaves': sorted(os.listdir(os.path.join(base, 'slaves')))
                if os.path.isdir(os.path.join(base, 'slaves')) else []}
        if os.path.exists(os.path.join(base, 'partition')):
            info['disk'] = os.path.basename(os.path.dirname(os.path.realpath(base)))
        elif os.path.exists(os.path.join(base, 'device')):
            info['device'] = os.path.realpath(os.path.join(base, 'device'))
        for field, rel in (('dm_name', 'dm/name'), ('loop_file', 'loop/backing_file')):
            if os.path.exists(os.path.join(base, rel)):
                with open(os.path.join(base, rel)) as handle:
                    info[field] = handle.read().strip()
        return info
    except (OSError, UnicodeError) as err:
        return {'error': 'reading %s: %s' % (base, err)}


def read_links(dev_root='/dev'):
    """{kernel name: [every /dev/disk/by-*/ link to it]}, read once from the link directories."""
    links = {}
    disk = os.path.join(dev_root, 'disk')
    for kind in sorted(os.listdir(disk)) if os.path.isdir(disk) else []:
        folder = os.path.join(disk, kind)
        if not kind.startswith('by-') or not os.path.isdir(folder):
            continue
        for entry in sorted(os.listdir(folder)):
            target = os.path.realpath(os.path.join(folder, entry))
            links.setdefault(os.path.basename(target), []).append('/dev/disk/%s/%s' % (kind, entry))
    return links


def read_facts(pvs, devices, sys_root='/sys', dev_root='/dev'):
    """Everything the filter planner needs, as a plain dict (what the unit tests record).

    ``names``: each PV name and named device -> its kernel name (None: no such device);
    ``blocks``: sysfs facts of those devices and of every device below them; ``links``: their
    /dev/disk/by-* names.
    """
    names = {}
    for path in [pv['pv_name'] for pv in pvs] + list(devices):
        names[path] = kernel_name(path)
    blocks, todo = {}, [n for n in names.values() if n]
    while todo:
        name = todo.pop()
        if name in blocks:
            continue
        blocks[name] = read_block(name, sys_root)
        todo.extend(blocks[name].get('slaves', []))
        if blocks[name].get('disk'):
            todo.append(blocks[name]['disk'])
    try:
        all_links = read_links(dev_root)
    except OSError as err:
        all_links, names['/dev/disk'] = {}, None
        blocks['/dev/disk'] = {'error': 'reading %s/disk: %s' % (dev_root, err)}
    links = dict((name, all_links[name]) for name in blocks if name in all_links)
    return {'pvs': [{'pv_name': pv['pv_name'], 'vg_name': pv.get('vg_name', '')} for pv in pvs],
            'names': names, 'blocks': blocks, 'links': links}


def split_dm_name(name):
    """(VG, LV) of a device-mapper name LVM made (``vg-lv`` with every '-' of a name doubled), or None."""
    index = 0
    while index < len(name):
        if name[index] == '-':
            if name[index + 1:index + 2] == '-':
                index += 2
                continue
            if index == 0:
                return None
            return name[:index].replace('--', '-'), name[index + 1:].replace('--', '-')
        index += 1
    return None


def classify(name, blocks, exclude_vgs, seen=()):
    """('local' | 'remote' | 'excluded' | 'unknown', why) for kernel device ``name``.

    Remote or excluded anywhere below wins over unknown, which wins over local: a device is local
    only when everything below it was read and is local.
    """
    info = blocks.get(name)
    if info is None or 'error' in info:
        return 'unknown', '%s: %s' % (name, (info or {}).get('error', 'not read'))
    if name in seen:
        return 'unknown', '%s: loop in sysfs slaves' % name
    dm_vg = split_dm_name(info['dm_name']) if info.get('dm_name') else None
    if dm_vg and dm_vg[0] in exclude_vgs:
        return 'excluded', '%s is LV %s/%s of excluded VG %s' % (name, dm_vg[0], dm_vg[1], dm_vg[0])
    below = list(info.get('slaves') or [])
    if info.get('disk'):
        below.append(info['disk'])
    if below:
        results = [classify(child, blocks, exclude_vgs, tuple(seen) + (name,)) for child in below]
        for state in ('remote', 'excluded', 'unknown'):
            for result in results:
                if result[0] == state:
                    return result
        return 'local', '%s is on %s' % (name, ', '.join(sorted(r[1].split(' ')[0] for r in results)))
    if info.get('loop_file'):
        return 'local', '%s is a loop device of %s' % (name, info['loop_file'])
    device = info.get('device')
    if device and '/session' in device:
        return 'remote', '%s is an iSCSI disk (%s)' % (name, device)
    if device:
        return 'local', '%s is a local disk' % name
    return 'unknown', '%s has no device, slaves or backing file in sysfs' % name


def stable_name(path, name, links):
    """A name of the device that survives a reboot and can be written in a filter, or None.

    The name as given when it already is one; else the first link in STABLE_DIRS order (sorted
    within a directory), /dev/disk/by-id/lvm-pv-uuid-* last.
    """
    if stable_path(path) and _SAFE_NAME_RE.match(path):
        return path
    candidates = [p for p in sorted(links.get(name) or []) if _SAFE_NAME_RE.match(p)]
    for kind in STABLE_DIRS:
        for candidate in candidates:
            if candidate.startswith('/dev/disk/%s/' % kind) and not candidate.startswith(PV_UUID_PREFIX):
                return candidate
    for candidate in candidates:
        if candidate.startswith(PV_UUID_PREFIX):
            return candidate
    return None


def accept_entry(path):
    """The filter entry that accepts exactly ``path`` ('.' and '+' in brackets, no backslash)."""
    return 'a|^%s$|' % path.replace('.', '[.]').replace('+', '[+]')


def plan_filter(spec, facts):
    """(global_filter value, accepted [{device, name, why}], rejected [{device, why}], errors).

    Named devices are accepted by a stable name whatever they are on; a named device with no
    stable name is an error (bad input). Local PVs are accepted by a stable name; a PV that is
    remote, inside an excluded VG, unclassifiable or without a stable name is rejected.
    """
    accepted, rejected, errors, taken = [], [], [], {}
    names, blocks, links = facts['names'], facts['blocks'], facts['links']
    for index, device in enumerate(spec['devices']):
        name = names.get(device)
        stable = stable_name(device, name, links) if name or stable_path(device) else None
        if stable is None:
            errors.append('global_filter.devices[%d]=%r %s; give its /dev/disk/by-id/... name (ls -l /dev/disk/by-id/)'
                          % (index, device, 'has no name that survives a reboot' if name else 'does not exist'))
            continue
        if name in taken or stable in taken.values():
            continue
        taken[name or device] = stable
        accepted.append({'device': device, 'name': stable,
                         'why': 'named' if name else 'named (not present now)'})
    for pv in sorted(facts['pvs'], key=lambda p: p['pv_name']):
        name = names.get(pv['pv_name'])
        if name in taken:
            continue
        state, why = classify(name, blocks, spec['exclude_vgs']) if name else ('unknown', 'no such device')
        stable = stable_name(pv['pv_name'], name, links) if state == 'local' else None
        if state == 'local' and stable is None:
            state, why = 'unknown', '%s has no name that survives a reboot' % name
        if state == 'local' and stable in taken.values():
            continue
        if state != 'local':
            rejected.append({'device': pv['pv_name'], 'state': state, 'why': why})
            continue
        taken[name] = stable
        accepted.append({'device': pv['pv_name'], 'name': stable, 'why': 'local PV: ' + why})
    value = list(spec['accept']) + [accept_entry(a['name']) for a in accepted] + ['r|.*|']
    return value, accepted, rejected, errors


# ---------------------------------------------------------------------------------------------
# The plan

def plan_config(spec, texts, facts=None):
    """Pure plan: {'texts': {kind: new text}, 'before'/'after': managed lines per file, filter report}.

    ``texts`` holds the current text of each file kind ('lvm', 'lvmlocal'; None when missing).
    """
    wanted = list(spec['settings'])
    result = {'errors': [], 'warnings': [], 'filter': None}
    if spec['filter'] is not None:
        value, accepted, rejected, errors = plan_filter(spec['filter'], facts)
        result['filter'] = dict(value=value, accepted=accepted, rejected=rejected)
        result['errors'].extend(errors)
        for entry in rejected:
            if entry['state'] == 'unknown':
                result['warnings'].append('PV %s is not accepted in the global_filter because it could not be '
                                          'classified (%s); list it in global_filter.devices if it is a local disk'
                                          % (entry['device'], entry['why']))
        wanted.insert(0, ('lvm', 'devices', 'global_filter', value))
    new_texts, before, after = {}, {}, {}
    for kind, section, key, value in wanted:
        path = spec['paths'][kind]
        text = new_texts.get(kind, texts.get(kind))
        if text is None:
            if kind == 'lvm':
                result['errors'].append('%s does not exist; install lvm2 first' % path)
                continue
            text = ''
        text, old, new = set_setting(text, section, key, value)
        new_texts[kind] = text
        before.setdefault(path, {})['%s/%s' % (section, key)] = '\n'.join(old) if old else None
        after.setdefault(path, {})['%s/%s' % (section, key)] = new.strip()
    result['texts'] = dict((k, t) for k, t in new_texts.items() if t != texts.get(k))
    result['before'], result['after'] = before, after
    return result


# ---------------------------------------------------------------------------------------------
# Validation and the write

def readback_argv(spec):
    """``lvmconfig`` of every managed key, to check what LVM reads from the candidate files."""
    keys = (['devices/global_filter'] if spec['filter'] is not None else []) + \
        ['%s/%s' % (section, key) for _kind, section, key, _value in spec['settings']]
    return ['lvmconfig'] + keys


def parse_readback(text):
    """{section/key: value} from ``lvmconfig KEY...`` output (``key=value`` lines, without sections)."""
    values = {}
    for line in text.splitlines():
        if '=' in line:
            key, _sep, value = line.strip().partition('=')
            values[key.strip()] = parse_value(value)
    return values


def readback_errors(spec, plan, text):
    """Managed settings that lvmconfig does not read back as planned (a file this module misread)."""
    read = parse_readback(text)
    wanted = [(section, key, value) for _kind, section, key, value in spec['settings']]
    if plan['filter'] is not None:
        wanted.append(('devices', 'global_filter', plan['filter']['value']))
    return ['lvmconfig reads %s/%s as %r, not %r' % (section, key, read.get(key), value)
            for section, key, value in wanted if not same_value(read.get(key), value)]


def same_value(read, value):
    """Whether lvmconfig's ``read`` is ``value``: it prints an array of one element as that element."""
    return read == value or isinstance(value, list) and len(value) == 1 and read == value[0]


def run(module):
    """Read, plan, validate, write, report: the whole lvm_config module."""
    spec, errors = config_spec(module.params)
    if errors:
        module.fail_json(msg='invalid input: ' + '; '.join(errors), errors=errors, commands=[])
    missing = require_tools(module, LVM_TOOLS, "the lvm.conf of LVM's defaults and no PVs")
    runner = Runner(module)
    with host_lock(module):
        texts = dict((kind, read_text(path)) for kind, path in spec['paths'].items())
        if missing and texts['lvm'] is None:
            texts['lvm'] = ''  # lvm2 ships it; an empty file is LVM's defaults
        facts = None
        if spec['filter'] is not None:
            facts = read_facts([] if missing else read_pvs(runner), spec['filter']['devices'])
        plan = plan_config(spec, texts, facts)
        if plan['errors']:
            module.fail_json(msg='; '.join(plan['errors']), errors=plan['errors'], commands=[],
                             global_filter=plan['filter'])
        if plan['texts'] and not missing:  # lvmconfig validates what lvm2 is there to read
            _validate(runner, spec, plan, texts)
        changed = runner.apply([FileWrite(spec['paths'][kind], plan['texts'][kind], 'write %s' % spec['paths'][kind])
                                for kind in sorted(plan['texts'])])
    for warning in plan['warnings']:
        module.warn(warning)
    result = dict(changed=changed, files=sorted(spec['paths'][k] for k in plan['texts']),
                  settings=plan['after'], commands=runner.commands)
    if plan['filter'] is not None:
        result['global_filter'] = plan['filter']
    if module._diff:
        result['diff'] = diff_result(plan['before'], plan['after'])
    module.exit_json(**result)


def _validate(runner, spec, plan, texts):
    """Fail unless lvmconfig accepts the candidate files and reads every managed setting back as planned.

    Read-only: it runs in check mode too, on copies in a temporary LVM_SYSTEM_DIR.
    """
    module = runner.module
    tmp = tempfile.mkdtemp(prefix='openblock-lvm-config.')
    try:
        for kind, filename in (('lvm', 'lvm.conf'), ('lvmlocal', 'lvmlocal.conf')):
            text = plan['texts'].get(kind, texts.get(kind))
            if text is not None:
                with open(os.path.join(tmp, filename), 'w') as handle:
                    handle.write(text)
        for argv in (['lvmconfig', '--validate'], readback_argv(spec)):
            rc, out, err = runner.read(['env', 'LVM_SYSTEM_DIR=' + tmp] + argv, ok_rcs=None)
            if rc != 0:
                module.fail_json(msg='lvmconfig refused the edited configuration (%s exited %d): %s; nothing was '
                                     'written' % (' '.join(argv), rc, (err or out).strip()),
                                 commands=runner.commands, rc=rc)
        problems = readback_errors(spec, plan, out)
        if problems:
            module.fail_json(msg='the edited configuration would not take effect: %s; nothing was written: '
                                 'look for a duplicate or nested setting in %s'
                                 % ('; '.join(problems), ', '.join(sorted(spec['paths'].values()))),
                             commands=runner.commands)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
