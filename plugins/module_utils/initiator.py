# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's iSCSI initiator: its name (/etc/iscsi/initiatorname.iscsi) and the iscsid.conf
settings, read from the two files, planned in pure Python and written as planned file actions.

A name is replaced when it is missing, not a valid iSCSI name (a placeholder), or one the caller
says another host holds (cloned images share the name open-iscsi's postinst wrote once). A new
name comes from ``iscsi-iname``. iscsid is restarted (if it runs) only when a file changed.
"""

from __future__ import annotations

import os
import re

from ansible_collections.openblock.storage.plugins.module_utils.iscsi import INITIATOR_TOOLS
from ansible_collections.openblock.storage.plugins.module_utils.names import iscsi_name_error
from ansible_collections.openblock.storage.plugins.module_utils.plan import (
    Action, FileWrite, Runner, diff_result, host_lock, read_text, refuse_bad_input, require_tools)

NAME_FILE = '/etc/iscsi/initiatorname.iscsi'
ISCSID_CONF = '/etc/iscsi/iscsid.conf'
NAME_HEADER = ('## The iSCSI initiator name of this host, unique across the hosts a target serves.\n'
               '## Managed by openblock.storage (iscsi_initiator): targets\' ACLs name it.\n')
_NAME_LINE = re.compile(r'^\s*InitiatorName\s*=\s*(\S*)\s*$', re.M)
# iscsid.conf keys: node.session.timeo.replacement_timeout, node.conn[0].timeo.noop_out_interval, ...
_KEY = re.compile(r'^[A-Za-z][A-Za-z0-9_.\[\]]*$')


def parse_name(text):
    """The InitiatorName of the file's text ('' when there is none, None when there is no file)."""
    if text is None:
        return None
    found = _NAME_LINE.findall(text)
    return found[-1] if found else ''


def name_reason(name, avoid):
    """Why the current name must be replaced, or None to keep it."""
    if name is None:
        return 'there is no %s' % NAME_FILE
    if not name:
        return '%s names no InitiatorName' % NAME_FILE
    if iscsi_name_error(name, 'InitiatorName'):
        return 'InitiatorName=%r is not a valid iSCSI name' % name
    if name in avoid:
        return 'InitiatorName=%s is also held by %s (a cloned image)' % (name, avoid[name])
    return None


def _line_re(key, commented):
    return re.compile(r'^\s*%s%s\s*=' % (r'#\s*' if commented else '', re.escape(key)))


def setting_values(text, keys):
    """The value iscsid reads for each key: that of its last uncommented line (None: unset)."""
    values = dict((key, None) for key in keys)
    for line in (text or '').splitlines():
        for key in keys:
            if _line_re(key, False).match(line):
                values[key] = line.split('=', 1)[1].strip()
    return values


def plan_settings(text, settings):
    """iscsid.conf's text with each setting given its value: every uncommented line of the key is
    set; with none, the line goes after the key's commented example, else at the end. Other lines
    stay byte for byte."""
    lines = (text or '').splitlines(True)
    for key, value in settings.items():
        wanted = '%s = %s\n' % (key, value)
        active = [i for i, line in enumerate(lines) if _line_re(key, False).match(line)]
        if active:
            for i in active:
                lines[i] = wanted
            continue
        examples = [i for i, line in enumerate(lines) if _line_re(key, True).match(line)]
        if examples:
            lines.insert(examples[-1] + 1, wanted)
        else:
            if lines and not lines[-1].endswith('\n'):
                lines[-1] += '\n'
            lines.append(wanted)
    return ''.join(lines)


def spec_errors(params):
    """Input errors, each naming the option and the value."""
    errors = []
    if params.get('name') is not None:
        error = iscsi_name_error(params['name'], 'name')
        if error:
            errors.append(error)
    # iscsi-iname -p PREFIX prints PREFIX:<random>, so the prefix is itself an iSCSI name.
    error = iscsi_name_error(params['name_prefix'], 'name_prefix')
    if error:
        errors.append(error)
    for key, value in (params.get('settings') or {}).items():
        if not _KEY.match(str(key)):
            errors.append('settings: %r is not an iscsid.conf key (like node.session.timeo.replacement_timeout)' % (key,))
        if value is None or '\n' in str(value) or str(value).strip() == '':
            errors.append('settings.%s=%r: give a one-line value' % (key, value))
    return errors


def plan(name_text, conf_text, settings, avoid, new_name=None, wanted_name=None):
    """The actions that give the host its name and settings, and the diff views before and after.

    ``new_name`` is a name from iscsi-iname, used when the current one must be replaced;
    ``wanted_name`` a name the caller sets outright.
    """
    current = parse_name(name_text)
    reason = None
    name = current
    if wanted_name is not None and wanted_name != current:
        name, reason = wanted_name, 'set the initiator name the task gives'
    elif wanted_name is None:
        reason = name_reason(current, avoid)
        if reason:
            name = new_name
    settings = dict((str(k), str(v)) for k, v in (settings or {}).items())
    actions = []
    if reason:
        actions.append(FileWrite(NAME_FILE, NAME_HEADER + 'InitiatorName=%s\n' % name,
                                 'write the initiator name %s (%s)' % (name, reason), mode=0o600))
    new_conf = plan_settings(conf_text, settings) if settings else conf_text
    if settings and new_conf != conf_text:
        # iscsid.conf may hold CHAP secrets of discovery and sessions: 0600 like Debian ships it.
        actions.append(FileWrite(ISCSID_CONF, new_conf, 'set %s in %s' % (', '.join(
            k for k, v in setting_values(conf_text, settings).items() if v != settings[k]), ISCSID_CONF), mode=0o600))
    if actions:
        actions.append(Action(['systemctl', 'try-restart', 'iscsid.service'],
                              'restart iscsid (if it runs) so it reads the new name and settings'))
    before = dict(name=current, settings=setting_values(conf_text, settings))
    after = dict(name=name, settings=setting_values(new_conf, settings))
    return actions, before, after, reason


def run(module):
    """Read, plan, apply, report: the whole iscsi_initiator module."""
    params = module.params
    errors = spec_errors(params)
    refuse_bad_input(module, errors)
    avoid = dict((n, h) for h, n in (params['avoid'] or {}).items() if n)
    # iscsi-iname makes names, and open-iscsi's iscsid is what the restart after a change is for
    missing = require_tools(module, INITIATOR_TOOLS, 'no initiator name and an empty iscsid.conf')
    runner = Runner(module)
    with host_lock(module):
        name_text, conf_text = read_text(NAME_FILE), read_text(ISCSID_CONF)
        if params['settings'] and conf_text is None and not missing:
            if not module.check_mode:
                module.fail_json(msg='%s does not exist: restore it (apt-get install --reinstall -o '
                                     'Dpkg::Options::=--force-confmiss open-iscsi) and re-run' % ISCSID_CONF,
                                 commands=[])
            module.warn('check mode: %s does not exist; predicted from an empty file' % ISCSID_CONF)
        new_name = None
        if params['name'] is None and name_reason(parse_name(name_text), avoid):
            if missing:
                # random like iscsi-iname's, so two bare hosts of one check run do not share a name
                new_name = '%s:<generated-%s>' % (params['name_prefix'], os.urandom(6).hex())
            else:
                # Only prints a random name; run in check mode too, so the prediction shows one.
                new_name = runner.read(['iscsi-iname', '-p', params['name_prefix']],
                                       what='generating an initiator name')[1].strip()
        actions, before, after, reason = plan(name_text, conf_text, params['settings'], avoid, new_name, params['name'])
        changed = runner.apply(actions)
    result = dict(changed=changed, name=after['name'], previous_name=before['name'] if reason else None,
                  renamed=bool(reason), reason=reason, settings=after['settings'], commands=runner.commands)
    if module._diff:
        result['diff'] = diff_result(before, after)
    module.exit_json(**result)
