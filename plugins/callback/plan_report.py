# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The review step before a change window: one report of what a --check --diff run would change, by host."""

from __future__ import annotations

DOCUMENTATION = r'''
name: plan_report
type: aggregate
short_description: One readable report of what a check-mode run would change, by host
version_added: 0.1.0
author: openblock.storage developers (@openblock)
description:
  - Collects the tasks that report a change and prints, at the end of the run, one report by host, with each
    task that would change something, and for the objects the collection's modules manage (volume groups,
    volumes, targets, ACL entries, sessions, maps, files), which would be added, removed or changed, field
    by field, from the modules' C(diff) (run with C(--diff)).
  - Fields whose name says they hold a secret (password, secret) are masked, whatever the module returned.
  - Meant for C(ansible-playbook playbooks/site.yml --check --diff), which C(make plan) runs on the lab's
    inventory; in a run without C(--check) it reports what was changed instead.
requirements:
  - enable with C(ANSIBLE_CALLBACKS_ENABLED=openblock.storage.plan_report) or C(callbacks_enabled) in ansible.cfg
'''

import json  # noqa: E402 (after the documentation, as ansible-test wants)
import re  # noqa: E402

from ansible import context  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402

MASK = '********'
SECRET_KEY_RE = re.compile(r'password|secret|passwd', re.I)
WIDTH = 110  # a value longer than this is cut, with its length


def masked(value):
    """``value`` with every field named like a secret replaced by the mask, at any depth."""
    if isinstance(value, dict):
        return dict((key, MASK if SECRET_KEY_RE.search(str(key)) and item else masked(item))
                    for key, item in value.items())
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def shown(value):
    """A value on one line, cut at WIDTH."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= WIDTH else '%s... (%d characters)' % (text[:WIDTH], len(text))


def lines_changed(before, after):
    """How two texts differ, on one line: ``+A -B lines``."""
    before, after = (before or '').splitlines(), (after or '').splitlines()
    return '+%d -%d lines' % (len([line for line in after if line not in before]),
                              len([line for line in before if line not in after]))


def changed_fields(before, after):
    """``name: before -> after`` for each field of two dicts that differs; a field that holds a file's
    text (several lines) says how many lines changed instead."""
    lines = []
    for key in sorted(set(before) | set(after), key=str):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if any(isinstance(v, str) and '\n' in v for v in (old, new)) and all(isinstance(v, (str, type(None))) for v in (old, new)):
            lines.append('%s: %s' % (key, lines_changed(old, new)))
        else:
            lines.append('%s: %s -> %s' % (key, shown(old), shown(new)))
    return lines


def text_change(diff):
    """One line for a file diff of before/after texts: its path and the lines gone and added."""
    before = (diff.get('before') or '').splitlines()
    after = (diff.get('after') or '').splitlines()
    path = diff.get('after_header') or diff.get('before_header') or 'file'
    state = 'new' if not before and after else 'removed' if before and not after else 'changed'
    return ['%s: %s (%s)' % (path, state, lines_changed(diff.get('before'), diff.get('after')))]


def diff_lines(diff):
    """What one ``diff`` of a result says would change: objects added (+), removed (-), changed (~)."""
    diff = masked(diff)
    before, after = diff.get('before'), diff.get('after')
    if isinstance(before, dict) or isinstance(after, dict):
        before, after = before or {}, after or {}
        if not isinstance(before, dict) or not isinstance(after, dict):
            return ['%s -> %s' % (shown(before), shown(after))]
        lines = []
        for name in sorted(set(before) | set(after), key=str):
            old, new = before.get(name), after.get(name)
            if old == new:
                continue
            if old is None and isinstance(new, dict):
                lines.append('+ %s' % name)
                lines.extend('    %s: %s' % (key, shown(new[key])) for key in sorted(new, key=str))
            elif old is None:
                lines.append('+ %s: %s' % (name, shown(new)))
            elif new is None:
                lines.append('- %s' % name)
            elif isinstance(old, dict) and isinstance(new, dict):
                lines.extend('~ %s %s' % (name, line) for line in changed_fields(old, new))
            else:
                lines.append('~ %s: %s -> %s' % (name, shown(old), shown(new)))
        return lines
    if isinstance(before, str) or isinstance(after, str):
        return text_change(diff)
    if 'prepared' in diff:
        return [shown(diff['prepared'])]
    return []


def result_lines(result):
    """The lines of one task result: from its diff(s), else its planned commands."""
    diffs = result.get('diff')
    diffs = diffs if isinstance(diffs, list) else [diffs] if isinstance(diffs, dict) else []
    lines = [line for diff in diffs for line in diff_lines(diff)]
    if not lines and result.get('commands'):
        lines = ['$ %s' % command for command in result['commands']]
    return lines


def report(changes, hosts, check_mode):
    """The report's lines: ``changes`` is [(host, task, action, result)] in run order."""
    verb = 'would change' if check_mode else 'changed'
    lines = ['PLAN: what this run %s%s' % (verb, ' (check mode: nothing was changed)' if check_mode else '')]
    by_host = {}
    for host, task, action, result in changes:
        by_host.setdefault(host, []).append((task, action, result))
    for host in hosts:
        if host not in by_host:
            continue
        lines.append('%s: %d change(s)' % (host, len(by_host[host])))
        for task, action, result in by_host[host]:
            lines.append('  %s [%s]' % (task, action))
            lines.extend('    ' + line for line in result_lines(result) or ['(no diff: run with --diff)'])
    quiet = [host for host in hosts if host not in by_host]
    if quiet:
        lines.append('no change: %s' % ', '.join(quiet))
    return lines


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'openblock.storage.plan_report'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.changes = []
        self.hosts = []

    def _record(self, result):
        host = result._host.get_name()
        if host not in self.hosts:
            self.hosts.append(host)
        task = result._task
        items = result._result.get('results')
        results = [item for item in items if item.get('changed')] if isinstance(items, list) else [result._result]
        for item in results:
            self.changes.append((host, task.get_name(), task.action, item))

    def v2_runner_on_ok(self, result):
        if result._result.get('changed'):
            self._record(result)

    def v2_playbook_on_stats(self, stats):
        hosts = self.hosts + [host for host in stats.processed if host not in self.hosts]
        self._display.display('\n'.join(report(self.changes, hosts, bool(context.CLIARGS.get('check')))))
