# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tgt (scsi-target-utils): read live targets, validate desired ones, plan tgtadm commands,
and render the /etc/tgt/conf.d files that bring the same targets back when tgtd starts.

Everything here is pure: the module does the I/O (one ``tgtadm --op show``, reading and
writing the conf.d files, checking backing paths) and hands the results in.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re

from ansible_collections.openblock.storage.plugins.module_utils.names import iscsi_name_error
from ansible_collections.openblock.storage.plugins.module_utils.plan import Action, FileWrite
from ansible_collections.openblock.storage.plugins.module_utils.sizes import SizeError, parse_size

TGTADM = ['tgtadm', '--lld', 'iscsi']
SHOW_TARGETS = TGTADM + ['--mode', 'target', '--op', 'show']
SHOW_ACCOUNTS = TGTADM + ['--mode', 'account', '--op', 'show']

CONF_DIR = '/etc/tgt/conf.d'
CONF_PREFIX = 'openblock-'
HEADER = '# Managed by openblock.storage (module tgt_target); changes made here are overwritten.\n'

# tgt admits a login when its source address is in the address ACL OR its initiator name is in
# the name ACL (seen in the lab: with ALL bound, an initiator whose name was not listed got in).
# So a target restricted by names must have no matching address entry. tgt-admin binds ALL when
# a target's file has no initiator-address line, so such a target, and one that must admit
# nobody, carries this entry instead: tgt never matches an IPv4 mask of /32.
NO_ACCESS = '0.0.0.0/32'
ALL = 'ALL'

MIN_SECRET = 12
MAX_SECRET = 255
ID_MAX = 36  # tgt silently truncates scsi_id and scsi_sn to 36 characters (seen on 1.0.85)
MAX_LUN = 255
# tgtd reads a LUN's size once, when the LUN is added: it ignores an lvextend, and tgtadm cannot set
# a size (`--op update --params size=` is an invalid request, tgt 1.0.85). A LUN whose backing device
# was resized is added again with the same identity; tgt refuses that delete while SCSI commands to
# the LUN are in flight, with this message, so it is retried.
LUN_BUSY = 'still active'
LUN_BUSY_RETRIES = 50
LUN_BUSY_DELAY = 0.2
# tgtadm shows a LUN's size in whole (decimal) megabytes, rounded its own way: a size within this many
# bytes of the one shown is the same. LVM grows a volume by whole extents (4 MiB by default).
SIZE_SLACK = 2 * 1000 * 1000

# tgt-admin hands file values to a shell, Config::General splits on blanks and '#' starts a
# comment: keep every value we write to a file inside these sets.
_NAME_CHARS = re.compile(r'^[A-Za-z0-9.:-]+$')
_USER_RE = re.compile(r'^[A-Za-z0-9._@-]{1,64}$')
_SECRET_RE = re.compile(r'^[A-Za-z0-9._~+=@%^:,/-]+$')
_ID_RE = re.compile(r'^[A-Za-z0-9._-]{1,%d}$' % ID_MAX)
_PATH_RE = re.compile(r'^/[A-Za-z0-9/._+:@-]+$')
_TARGET_RE = re.compile(r'^Target (\d+): (\S+)$')
_HEX32_RE = re.compile(r'^[0-9a-fA-F]{32}$')


class Refusal(Exception):
    """Work the module will not do without force; ``reasons`` lists every case."""

    def __init__(self, reasons):
        Exception.__init__(self, '; '.join(reasons))
        self.reasons = reasons


# ---------------------------------------------------------------- reading live state

def _is_iscsi_name(text):
    return text.startswith(('iqn.', 'eui.', 'naa.'))


def parse_show(text):
    """``tgtadm --mode target --op show`` -> {iqn: target dict}.

    A target dict: tid, iqn, state, luns {number: {lun, type, path, readonly, scsi_id, scsi_sn,
    size_text}} (LUN 0, the controller, included), sessions [{initiator, addresses}],
    incoming_users [names], outgoing_user (name or None), addresses [..], initiators [..].
    """
    targets = {}
    target = section = lun = session = None
    for raw in text.splitlines():
        if not raw.strip():
            continue
        match = _TARGET_RE.match(raw)
        if match:
            target = dict(tid=int(match.group(1)), iqn=match.group(2), state=None, luns={},
                          sessions=[], incoming_users=[], outgoing_user=None, addresses=[], initiators=[])
            targets[target['iqn']] = target
            section = lun = session = None
            continue
        if target is None:
            continue
        indent = len(raw) - len(raw.lstrip(' '))
        line = raw.strip()
        if indent <= 4:
            section = line.rstrip(':')
            continue
        key, _sep, value = line.partition(': ')
        if section == 'System information':
            if key == 'State':
                target['state'] = value
        elif section == 'I_T nexus information':
            if key == 'I_T nexus':
                session = dict(initiator=None, addresses=[])
                target['sessions'].append(session)
            elif key == 'Initiator' and session is not None:
                session['initiator'] = value.split()[0]
            elif key == 'IP Address' and session is not None:
                session['addresses'].append(value)
        elif section == 'LUN information':
            if key == 'LUN' and indent == 8:
                lun = dict(lun=int(value), type=None, path=None, readonly=False, scsi_id='', scsi_sn='',
                           size_text=None)
                target['luns'][lun['lun']] = lun
            elif lun is not None:
                if key == 'Type':
                    lun['type'] = value
                elif key == 'SCSI ID':
                    lun['scsi_id'] = value
                elif key == 'SCSI SN':
                    lun['scsi_sn'] = value
                elif key == 'Size':
                    lun['size_text'] = value.split(',')[0]
                elif key == 'Readonly':
                    lun['readonly'] = value == 'Yes'
                elif key == 'Backing store path':
                    lun['path'] = None if value == 'None' else value
        elif section == 'Account information':
            if line.endswith(' (outgoing)'):
                target['outgoing_user'] = line[:-len(' (outgoing)')]
            else:
                target['incoming_users'].append(line)
        elif section == 'ACL information':
            (target['initiators'] if _is_iscsi_name(line) else target['addresses']).append(line)
    return targets


def parse_accounts(text):
    """``tgtadm --mode account --op show`` -> set of account names."""
    return set(line.strip() for line in text.splitlines()[1:] if line.strip())


# ---------------------------------------------------------------- stable LUN identity

def default_ids(iqn, lun):
    """scsi_id and scsi_sn derived from the target and LUN names, never from the tid.

    tgt turns the hex digits of scsi_id into the NAA designator initiators use as WWID
    (``3`` + ``6`` + the last 31 hex digits), so scsi_id is 32 hex digits.
    """
    digest = hashlib.sha256(('%s\n%d' % (iqn, lun)).encode('utf-8')).hexdigest()
    return digest[:32], digest[32:48]


def wwid_of(scsi_id):
    """The WWID an initiator reads (``/lib/udev/scsi_id -g -u``) for a 32-hex-digit scsi_id."""
    if _HEX32_RE.match(scsi_id or ''):
        return '36' + scsi_id[1:].lower()
    return None


# ---------------------------------------------------------------- validation

def _acl_address(text, option, errors):
    """Normalize one address ACL entry the way tgt matches it, or record an error."""
    if text == ALL:
        return ALL
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        errors.append('%s=%r is not an IP address, a CIDR network or ALL (%s)' % (option, text, exc))
        return None
    # tgt never matches a full-length mask (/32, /128): write a single host without one.
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _account(entry, option, errors):
    if not isinstance(entry, dict):
        errors.append('%s must be a dict with user and password' % option)
        return None
    user, password = entry.get('user'), entry.get('password')
    ok = True
    if not isinstance(user, str) or not _USER_RE.match(user):
        errors.append('%s.user=%r: a CHAP user name is 1 to 64 letters, digits or ._@-' % (option, user))
        ok = False
    if not isinstance(password, str) or len(password) < MIN_SECRET:
        errors.append('%s.password (for user %r) is shorter than %d characters; iSCSI initiators reject '
                      'shorter CHAP secrets (RFC 7143): use a longer one' % (option, user, MIN_SECRET))
        ok = False
    elif len(password) > MAX_SECRET or not _SECRET_RE.match(password):
        errors.append('%s.password (for user %r) must be at most %d characters of letters, digits and '
                      '._~+=@%%^:,/- (tgt-admin passes it through a shell)' % (option, user, MAX_SECRET))
        ok = False
    return dict(user=user, password=password) if ok else None


# tgtd sizes each LUN's I/O threads when the LUN is added: a new count needs a restart of tgtd, which
# cuts every session, so it is done only while tgtd exports no target.
TGT_UNIT = 'tgt.service'
# The command tgt_target reads and changes tgtd with, and its package.
TGT_TOOLS = {'tgtadm': 'tgt'}
TGTD_PID_ARGV = ['systemctl', 'show', '--property=MainPID', '--value', TGT_UNIT]
# tgtadm's exit code when no tgtd answers (ENOTCONN: "failed to send request hdr to tgt daemon,
# Transport endpoint is not connected", recorded with tgt 1.0.85 and the service stopped).
TGTD_NOT_RUNNING_RC = 107
IOTHREADS_RANGE = (1, 128)


def iothreads_error(value):
    """The bad-input message for ``iothreads``, or None."""
    low, high = IOTHREADS_RANGE
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        return None
    return ('iothreads=%r: give %d to %d I/O threads per LUN, or null to leave tgtd as it runs'
            % (value, low, high))


def iothreads_running(cmdline):
    """tgtd's I/O threads per LUN from its NUL-separated /proc/PID/cmdline: the number given with
    --nr_iothreads (or -t), None when it runs with its default; raises ValueError on no tgtd."""
    args = [a for a in cmdline.split('\0') if a]
    if not args or os.path.basename(args[0]) != 'tgtd':
        raise ValueError('not a tgtd command line: %r' % ' '.join(args))
    for index, arg in enumerate(args):
        if arg.startswith('--nr_iothreads='):
            return int(arg.split('=', 1)[1])
        if arg in ('--nr_iothreads', '-t') and index + 1 < len(args):
            return int(args[index + 1])
    return None


def iothreads_step(wanted, running, live):
    """What to do about tgtd's I/O threads: ``(restart, warning)``. ``running`` is
    iothreads_running() of the running tgtd, ``live`` parse_show() of it. Pure."""
    if wanted is None or running == wanted:
        return False, None
    if not live:
        return True, None
    return False, ('tgtd runs with %s I/O threads per LUN and exports %d target(s), so it was not restarted '
                   '(a restart cuts every session): iothreads=%d applies at its next restart'
                   % (running or 'its default of 16', len(live), wanted))


def validate_targets(targets):
    """Check and normalize the ``targets`` option; return (targets, errors). Nothing is changed."""
    errors = []
    result = []
    seen = {}
    paths = {}
    secrets = {}
    for index, raw in enumerate(targets or []):
        where = 'targets[%d]' % index
        iqn = raw.get('iqn')
        error = iscsi_name_error(iqn, where + '.iqn')
        if error is None and not _NAME_CHARS.match(iqn):
            error = ('%s.iqn=%r: use only letters, digits, dot, colon and hyphen in target names' % (where, iqn))
        if error:
            errors.append(error)
            continue
        if iqn in seen:
            errors.append('%s.iqn=%r is listed twice (also targets[%d]); list each target once'
                          % (where, iqn, seen[iqn]))
            continue
        seen[iqn] = index
        target = dict(index=index, iqn=iqn, state=raw.get('state') or 'present', luns=[], initiators=[], addresses=[],
                      incoming_users=[], outgoing_user=None)
        result.append(target)
        if target['state'] == 'absent':
            continue

        numbers = set()
        for lun_index, lun in enumerate(raw.get('luns') or []):
            at = '%s.luns[%d]' % (where, lun_index)
            number, path = lun.get('lun'), lun.get('path')
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= MAX_LUN:
                errors.append('%s.lun=%r: LUN numbers go from 1 to %d (0 is the controller)' % (at, number, MAX_LUN))
                continue
            if number in numbers:
                errors.append('%s.lun=%d is used twice in target %s; give each LUN its own number' % (at, number, iqn))
                continue
            numbers.add(number)
            if not isinstance(path, str) or not _PATH_RE.match(path):
                errors.append('%s.path=%r: give an absolute path of letters, digits and /._+:@- '
                              '(tgt-admin passes it through a shell)' % (at, path))
                continue
            if path in paths:
                errors.append('%s.path=%r is already exported by %s; two LUNs writing one device corrupt it: '
                              'export each path once' % (at, path, paths[path]))
                continue
            paths[path] = '%s LUN %d' % (iqn, number)
            scsi_id, scsi_sn = default_ids(iqn, number)
            for key, default in (('scsi_id', scsi_id), ('scsi_sn', scsi_sn)):
                value = lun.get(key)
                if value is None:
                    lun[key] = default
                elif not isinstance(value, str) or not _ID_RE.match(value):
                    errors.append('%s.%s=%r: 1 to %d letters, digits or ._- (tgt cuts longer values)'
                                  % (at, key, value, ID_MAX))
            declared = None
            if lun.get('size') is not None:
                try:
                    declared = parse_size(lun['size'], '%s.size' % at)
                except SizeError as error:
                    errors.append(str(error))
            target['luns'].append(dict(lun=number, path=path, readonly=bool(lun.get('readonly')),
                                       scsi_id=lun.get('scsi_id'), scsi_sn=lun.get('scsi_sn'), declared_size=declared))
        target['luns'].sort(key=lambda item: item['lun'])

        for name_index, name in enumerate(raw.get('initiators') or []):
            error = iscsi_name_error(name, '%s.initiators[%d]' % (where, name_index))
            if error:
                errors.append(error)
            elif name not in target['initiators']:
                target['initiators'].append(name)
        for address_index, address in enumerate(raw.get('addresses') or []):
            normal = _acl_address(str(address), '%s.addresses[%d]' % (where, address_index), errors)
            if normal and normal not in target['addresses']:
                target['addresses'].append(normal)

        users = set()
        for user_index, entry in enumerate(raw.get('incoming_users') or []):
            account = _account(entry, '%s.incoming_users[%d]' % (where, user_index), errors)
            if account:
                if account['user'] in users:
                    errors.append('%s.incoming_users[%d].user=%r is listed twice; list each user once'
                                  % (where, user_index, account['user']))
                    continue
                users.add(account['user'])
                target['incoming_users'].append(account)
        if raw.get('outgoing_user'):
            account = _account(raw['outgoing_user'], where + '.outgoing_user', errors)
            if account:
                if account['user'] in users:
                    errors.append('%s.outgoing_user.user=%r is also an incoming user; mutual CHAP needs '
                                  'two accounts' % (where, account['user']))
                elif any(a['password'] == account['password'] for a in target['incoming_users']):
                    errors.append('%s.outgoing_user (user %r) has the same secret as an incoming user; '
                                  'mutual CHAP secrets must differ' % (where, account['user']))
                else:
                    target['outgoing_user'] = account
        accounts = target['incoming_users'] + ([target['outgoing_user']] if target['outgoing_user'] else [])
        for account in accounts:
            known = secrets.setdefault(account['user'], (account['password'], iqn))
            if known[0] != account['password']:
                errors.append('%s: CHAP user %r has another secret in target %s; tgt accounts are global, '
                              'so one user has one secret' % (where, account['user'], known[1]))
    return result, errors


def acl_addresses(target):
    """The address ACL a desired target gets: its addresses, else the entry that matches no
    address, so that only the listed initiator names (if any) are admitted."""
    if target['addresses']:
        return list(target['addresses'])
    return [NO_ACCESS]


# ---------------------------------------------------------------- conf.d files

def conf_path(iqn):
    return '%s/%s%s.conf' % (CONF_DIR, CONF_PREFIX, iqn)


def render_conf(target):
    """The tgt-admin file of one desired target: the source tgtd reads when it starts."""
    lines = [HEADER.rstrip('\n'), '# It holds CHAP secrets: keep it mode 0600.', '<target %s>' % target['iqn'],
             '    driver iscsi']
    for lun in target['luns']:
        lines += ['    <backing-store %s>' % lun['path'],
                  '        lun %d' % lun['lun'],
                  '        scsi_id %s' % lun['scsi_id'],
                  '        scsi_sn %s' % lun['scsi_sn'],
                  '        readonly %d' % (1 if lun['readonly'] else 0),
                  '    </backing-store>']
    lines += ['    initiator-address %s' % address for address in acl_addresses(target)]
    lines += ['    initiator-name %s' % name for name in target['initiators']]
    lines += ['    incominguser %s %s' % (a['user'], a['password']) for a in target['incoming_users']]
    if target['outgoing_user']:
        lines.append('    outgoinguser %s %s' % (target['outgoing_user']['user'], target['outgoing_user']['password']))
    lines.append('</target>')
    return '\n'.join(lines) + '\n'


def parse_conf(text):
    """One of our conf.d files -> {iqn, secrets {user: password}}; None when the file is not ours."""
    if not text.startswith(HEADER):
        return None
    iqn = None
    secrets = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == '<target' and words[1].endswith('>'):
            iqn = words[1][:-1]
        elif len(words) == 3 and words[0] in ('incominguser', 'outgoinguser'):
            secrets[words[1]] = words[2]
    if iqn is None:
        return None
    return dict(iqn=iqn, secrets=secrets)


# ---------------------------------------------------------------- the record of secrets set
# tgt never shows a secret, and with persist: false no conf.d file holds one, so the module keeps,
# for each account whose secret it set, a salted PBKDF2 hash of that secret (never the secret) in
# a root-only (0600) file of the collection's root-only directory on /run: a tmpfs, so nothing
# reaches the disk and the record goes at reboot, as tgtd's accounts do. The record names the
# tgtd instance it describes (the identity of its control socket, made anew at each start); after
# a restart the accounts are those tgtd read from the conf.d files, so a record of another
# instance is ignored. It fails closed: an account with no entry and no conf.d secret is set
# again (changed); an entry is voided before a run touches its account and written only after
# the run succeeded.
RECORD_PATH = '/run/openblock-storage/tgt-chap.json'
# PBKDF2-SHA256 rounds: about 1 ms per account on a server, 0.2 s in the lab's emulated VM, paid
# once per listed account and run. The file is root-only and on tmpfs; the rounds only slow a
# guess at a weak secret from a leaked copy. Each entry carries its rounds, so this can grow.
HASH_ROUNDS = 4096


def _digest(secret, salt, rounds):
    return hashlib.pbkdf2_hmac('sha256', secret.encode('utf-8'), bytes.fromhex(salt), rounds).hex()


def secret_entry(secret, salt):
    """The record entry of a secret: salt (hex, random, given by the caller), rounds, hash."""
    return dict(salt=salt, rounds=HASH_ROUNDS, hash=_digest(secret, salt, HASH_ROUNDS))


def secret_matches(entry, secret):
    """Whether record ``entry`` was made from ``secret``; a damaged entry never matches."""
    try:
        return hmac.compare_digest(entry['hash'], _digest(secret, entry['salt'], int(entry['rounds'])))
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def known_record(text, instance):
    """The accounts of a record file's ``text`` ({user: entry or None}) when it describes the tgtd
    ``instance``; None when it describes another one or cannot be read."""
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get('tgtd') != instance or not isinstance(record.get('accounts'), dict):
        return None
    return record['accounts']


def record_text(instance, accounts):
    return json.dumps(dict(tgtd=instance, accounts=accounts), indent=1, sort_keys=True) + '\n'


def wanted_secrets(desired):
    """user -> secret of every account a present target of ``desired`` lists."""
    wanted = {}
    for target in desired:
        if target['state'] == 'present':
            for account in target['incoming_users'] + ([target['outgoing_user']] if target['outgoing_user'] else []):
                wanted[account['user']] = account['password']
    return wanted


def records_voided(records, plan):
    """The record to write before ``plan`` runs: the accounts it sets or deletes lose their entry."""
    accounts = dict(records or {})
    accounts.update((user, None) for user in plan.rekeyed)
    for user in plan.deleted_users:
        accounts.pop(user, None)
    return accounts


def records_after(records, desired, plan, new_salt):
    """The record once ``plan`` ran: an entry for every account ``desired`` lists (kept when the
    plan found it matching, made anew otherwise; ``new_salt()`` gives a random hex salt)."""
    accounts = records_voided(records, plan)
    for user, secret in sorted(wanted_secrets(desired).items()):
        if user not in plan.recorded:
            accounts[user] = secret_entry(secret, new_salt())
    return accounts


# ---------------------------------------------------------------- planning

def _tgtadm(*args):
    return TGTADM + [str(a) for a in args]


def _sessions_text(live):
    return ', '.join('%s (%s)' % (s['initiator'], ', '.join(s['addresses']) or 'no address')
                     for s in live['sessions'])


def _new_lun_actions(tid, iqn, lun):
    params = 'scsi_id=%s,scsi_sn=%s,readonly=%d' % (lun['scsi_id'], lun['scsi_sn'], 1 if lun['readonly'] else 0)
    return [Action(_tgtadm('--mode', 'logicalunit', '--op', 'new', '--tid', tid, '--lun', lun['lun'],
                           '-b', lun['path']),
                   'add LUN %d (%s) to %s' % (lun['lun'], lun['path'], iqn)),
            Action(_tgtadm('--mode', 'logicalunit', '--op', 'update', '--tid', tid, '--lun', lun['lun'],
                           '--params', params),
                   'set the identity of LUN %d of %s' % (lun['lun'], iqn))]


def shown_megabytes(size_text):
    """The megabytes of tgtadm's ``Size: 537 MB``, or None."""
    match = re.match(r'^(\d+) MB$', size_text or '')
    return int(match.group(1)) if match else None


def resize_of(want, have):
    """(old MB, new MB) when the backing device of a live LUN (``want['size']``, bytes, None when it
    could not be read) no longer has the size tgtd exports, else None."""
    shown = shown_megabytes(have.get('size_text'))
    if want.get('size') is None or shown is None or abs(want['size'] - shown * 1000 * 1000) <= SIZE_SLACK:
        return None
    return shown, (want['size'] + 500 * 1000) // (1000 * 1000)


def _readd_lun_actions(tid, iqn, lun, why):
    """Delete a LUN and add it again with the same identity, the delete retried while tgt finds the
    LUN busy."""
    return [Action(_tgtadm('--mode', 'logicalunit', '--op', 'delete', '--tid', tid, '--lun', lun['lun']),
                   'remove LUN %d from %s %s' % (lun['lun'], iqn, why),
                   retry_while=(LUN_BUSY, LUN_BUSY_RETRIES, LUN_BUSY_DELAY))] + _new_lun_actions(tid, iqn, lun)


def _lun_differs(want, have):
    """What differs between a desired LUN and the live one, as words, or []."""
    changes = []
    if want['path'] != have['path']:
        changes.append('backing path %s -> %s' % (have['path'], want['path']))
    if want['scsi_id'] != have['scsi_id'] or want['scsi_sn'] != have['scsi_sn']:
        changes.append('SCSI identity')
    if want['readonly'] != have['readonly']:
        changes.append('readonly %s -> %s' % (have['readonly'], want['readonly']))
    return changes


class Plan(object):
    """The outcome of planning: the actions in order (tgtadm commands, and each target's conf.d
    file written or removed right after its live change), refusals."""

    def __init__(self):
        self.actions = []
        self.writes = {}     # path -> text, of the conf.d writes among the actions
        self.removals = []   # paths, of the conf.d removals among the actions
        self.refusals = []
        self.warnings = []
        self.needs_accounts = False
        self.changed_iqns = set()  # listed targets the plan creates or changes, live or in conf.d
        self.rekeyed = set()       # CHAP users whose account the plan creates, or deletes and creates again
        self.deleted_users = set()  # CHAP users whose account the plan deletes for good
        self.recorded = set()      # CHAP users whose secret the record showed to be set already
        # iqn -> [first action that blocks new logins to it, last action that admits them again,
        #         the actions that admit them again when the target is not listed (else None)]
        self.blocked = {}

    def persist(self, path, text=None):
        """The action that writes a target's conf.d file (0600: it holds CHAP secrets), or removes it
        (``text`` None), recorded in ``writes`` or ``removals``."""
        if text is None:
            self.removals.append(path)
            return FileWrite(path, None, 'remove %s' % path)
        self.writes[path] = text
        return FileWrite(path, text, 'write %s' % path, mode=0o600)

    def blocked_advice(self, failed):
        """What to tell when action ``failed`` of this plan fails while targets refuse new logins
        (their block ran and their access list is not whole again), or None."""
        at = dict((id(action), index) for index, action in enumerate(self.actions))
        blocked = [(iqn, restore) for iqn, (block, unblock, restore) in sorted(self.blocked.items())
                   if at[id(block)] < at[id(failed)] <= at[id(unblock)]]
        if not blocked:
            return None
        advice = ('new logins to %s are refused: their access lists were emptied for the change of a CHAP '
                  'secret (connected initiators keep their sessions)' % ', '.join(iqn for iqn, _r in blocked))
        listed = [iqn for iqn, restore in blocked if restore is None]
        if listed:
            advice += '; re-run this task to finish the change and admit them again (%s)' % ', '.join(listed)
        for iqn, restore in blocked:
            if restore is not None:
                advice += ('; %s is not listed in this task: once a run of this task succeeded, bind its CHAP users '
                           'and admit its initiators again with: %s' % (iqn, ' && '.join(a.shown() for a in restore)))
        return advice


def plan_targets(desired, live, files, accounts=None, exclusive=False, force=False, persist=True, records=None,
                 resize_in_use=False, expect_logouts=False):
    """Plan the convergence of ``desired`` (validated) against ``live`` (parse_show).

    ``files`` maps iqn -> {path, text, secrets} for every conf.d file this collection manages.
    ``records`` is the ``accounts`` part of the secrets record of the running tgtd (see
    ``known_record``), or None when there is none.
    ``accounts`` is the set of global tgt accounts, or None when not read yet; when the plan
    needs it, ``plan.needs_accounts`` is set and the caller reads it and plans again.
    A desired LUN's ``size`` is its backing device's size in bytes (None: not known); a live LUN that
    exports another size is added again, which needs ``resize_in_use`` (or ``force``) while
    initiators are connected. ``expect_logouts`` (check mode) predicts the removal of a target with
    connected initiators as after they log out, with a warning, instead of refusing it.
    """
    plan = Plan()
    listed = set(t['iqn'] for t in desired)
    present = [t for t in desired if t['state'] == 'present']
    removed = [t['iqn'] for t in desired if t['state'] == 'absent']
    if exclusive:
        removed += sorted(iqn for iqn in files if iqn not in listed)

    # Who holds each account now: user -> [(iqn, outgoing)].
    bindings = {}
    for target in live.values():
        for user in target['incoming_users']:
            bindings.setdefault(user, []).append((target['iqn'], False))
        if target['outgoing_user']:
            bindings.setdefault(target['outgoing_user'], []).append((target['iqn'], True))
    known_secrets = {}
    for managed in files.values():
        known_secrets.update(managed['secrets'])

    # 1. Targets to remove.
    deletions = []
    for iqn in removed:
        target = live.get(iqn)
        if target is not None:
            cut = target['sessions'] and not expect_logouts
            if cut and not force:
                plan.refusals.append('target %s has connected initiators %s: removing it cuts them off; log them '
                                     'out first or set force: true' % (iqn, _sessions_text(target)))
            elif target['sessions'] and expect_logouts:
                plan.warnings.append('check mode: target %s has connected initiators %s; its removal is predicted '
                                     'as after an earlier play of this run logs them out (site.yml detaches the '
                                     'compute nodes first), and is refused otherwise' % (iqn, _sessions_text(target)))
            argv = _tgtadm('--mode', 'target', '--op', 'delete', '--tid', target['tid'])
            if cut:
                argv.append('--force')
            deletions.append(Action(argv, 'remove target %s (tid %d)' % (iqn, target['tid'])))
        if iqn in files:
            deletions.append(plan.persist(files[iqn]['path']))
    gone = set(removed)

    # 2. Accounts every present target needs: create the missing ones, reset unknown secrets.
    wanted_secret = wanted_secrets(desired)
    created, reset = [], set()
    for user in sorted(wanted_secret):
        exists = user in bindings or (accounts is not None and user in accounts)
        if not exists and accounts is None:
            plan.needs_accounts = True
        elif not exists:
            created.append(user)
        elif records is not None and user in records:
            # The record of this tgtd decides; an entry voided by a run that failed is unknown.
            if records[user] is not None and secret_matches(records[user], wanted_secret[user]):
                plan.recorded.add(user)
            else:
                created.append(user)
                reset.add(user)
        elif known_secrets.get(user) != wanted_secret[user]:
            created.append(user)
            reset.add(user)
    plan.rekeyed = set(created)

    # tgt cannot change a secret: the account is deleted (which unbinds it everywhere), created
    # again and bound back. Between the delete and the bind a target it guarded asks for no CHAP,
    # so every live target bound to it stops admitting new logins first: its access list is
    # emptied (tgt then admits nobody; sessions already logged in go on) and filled again after
    # the bind (for a listed target, by its own update below).
    blocked = sorted((iqn for iqn, target in live.items() if iqn not in gone
                      and (target['addresses'] or target['initiators'])
                      and reset.intersection(target['incoming_users'] + [target['outgoing_user']])),
                     key=lambda iqn: live[iqn]['tid'])
    blocks, unblocks, bound_back = [], [], {}
    for iqn in blocked:
        target = live[iqn]
        block = _acl_actions('unbind', target['tid'], iqn, target['addresses'], target['initiators'],
                             ' (no new logins during the CHAP secret change)')
        blocks += block
        plan.blocked[iqn] = [block[0], None, None]
    account_actions = []
    for user in created:
        if user in reset:
            account_actions.append(Action(_tgtadm('--mode', 'account', '--op', 'delete', '--user', user),
                                          'replace the secret of CHAP user %s' % user))
        account_actions.append(Action(_tgtadm('--mode', 'account', '--op', 'new', '--user', user,
                                              '--password', wanted_secret[user]),
                                      'create CHAP user %s' % user, secrets=[wanted_secret[user]]))
        for iqn, outgoing in bindings.get(user, []) if user in reset else []:
            if iqn in gone or iqn in listed:
                continue  # removed, or re-bound below by its own target's plan
            argv = _tgtadm('--mode', 'account', '--op', 'bind', '--tid', live[iqn]['tid'], '--user', user)
            bind = Action(argv + (['--outgoing'] if outgoing else []), 'bind CHAP user %s back to %s' % (user, iqn))
            account_actions.append(bind)
            bound_back.setdefault(iqn, []).append(bind)
    for iqn in blocked:
        if iqn not in listed:
            target = live[iqn]
            unblock = _acl_actions('bind', target['tid'], iqn, target['addresses'], target['initiators'],
                                   ' again, after the CHAP secret change')
            unblocks += unblock
            # No later run knows this target's entries once they are unbound: the error of a
            # failed run names the commands that bind its accounts and entries back.
            plan.blocked[iqn][1:] = [unblock[-1], bound_back.get(iqn, []) + unblock]
    account_actions = blocks + account_actions + unblocks

    # 3. Targets to create or reconcile.
    used_tids = set(t['tid'] for iqn, t in live.items() if iqn not in gone)
    updates, creations = [], []
    for target in present:
        iqn = target['iqn']
        have = live.get(iqn)
        if have is None:
            tid = 1
            while tid in used_tids:
                tid += 1
            used_tids.add(tid)
            actions = _create_actions(tid, target)
        else:
            if iqn in plan.blocked:
                # Its access list is empty from the block on: the update binds every wanted entry,
                # and those binds come last, after the accounts are bound.
                have = dict(have, addresses=[], initiators=[])
            actions = _update_actions(have, target, reset, force, plan.refusals, resize_in_use)
            if iqn in plan.blocked:
                plan.blocked[iqn][1] = actions[-1]
        # The conf.d file follows the target's live change at once: a run that fails part-way
        # leaves every target it went through persisted as it runs.
        persisted = []
        if persist:
            text = render_conf(target)
            managed = files.get(iqn)
            if managed is None or managed['text'] != text:
                persisted.append(plan.persist(conf_path(iqn), text))
        elif iqn in files:
            persisted.append(plan.persist(files[iqn]['path']))
        if have is None:
            creations += actions + persisted
        else:
            updates += actions + persisted
        if actions or persisted:
            plan.changed_iqns.add(iqn)

    # 4. Accounts nobody uses any more that came from our files.
    cleanup = []
    still_bound = set()
    for user, held in bindings.items():
        if any(iqn not in gone and iqn not in listed for iqn, _outgoing in held):
            still_bound.add(user)
    ours = set()
    for iqn, managed in files.items():
        if iqn in gone or iqn in listed:
            ours.update(managed['secrets'])
    for user in sorted(ours - set(wanted_secret) - still_bound):
        if user not in bindings and accounts is None:
            plan.needs_accounts = True
        elif user in bindings or user in accounts:
            cleanup.append(Action(_tgtadm('--mode', 'account', '--op', 'delete', '--user', user),
                                  'delete CHAP user %s, which no target uses any more' % user))
            plan.deleted_users.add(user)

    plan.actions = deletions + account_actions + updates + creations + cleanup
    return plan


def _bind_actions(tid, target, have_addresses=(), have_initiators=(), have_in=(), have_out=None, reset=()):
    iqn = target['iqn']
    actions = []
    for account in target['incoming_users']:
        if account['user'] not in have_in or account['user'] in reset:
            actions.append(Action(_tgtadm('--mode', 'account', '--op', 'bind', '--tid', tid, '--user', account['user']),
                                  'let CHAP user %s log in to %s' % (account['user'], iqn)))
    out = target['outgoing_user']
    if out and (out['user'] != have_out or out['user'] in reset):
        actions.append(Action(_tgtadm('--mode', 'account', '--op', 'bind', '--tid', tid, '--user', out['user'],
                                      '--outgoing'),
                              'make %s answer mutual CHAP as %s' % (iqn, out['user'])))
    return actions + _acl_actions('bind', tid, iqn, [a for a in acl_addresses(target) if a not in have_addresses],
                                  [n for n in target['initiators'] if n not in have_initiators])


def _acl_actions(op, tid, iqn, addresses, initiators, why=''):
    """Bind (admit) or unbind (stop admitting) address and initiator-name ACL entries of a target."""
    verb = 'admit' if op == 'bind' else 'stop admitting'
    return ([Action(_tgtadm('--mode', 'target', '--op', op, '--tid', tid, '-I', address),
                    '%s address %s to %s%s' % (verb, address, iqn, why)) for address in addresses] +
            [Action(_tgtadm('--mode', 'target', '--op', op, '--tid', tid, '-Q', name),
                    '%s initiator %s to %s%s' % (verb, name, iqn, why)) for name in initiators])


def _create_actions(tid, target):
    # LUNs get their identity before any ACL admits an initiator, so nobody sees tid-derived IDs.
    actions = [Action(_tgtadm('--mode', 'target', '--op', 'new', '--tid', tid, '-T', target['iqn']),
                      'create target %s (tid %d)' % (target['iqn'], tid))]
    for lun in target['luns']:
        actions += _new_lun_actions(tid, target['iqn'], lun)
    return actions + _bind_actions(tid, target)


def _update_actions(have, target, reset, force, refusals, resize_in_use=False):
    tid, iqn = have['tid'], target['iqn']
    in_use = bool(have['sessions'])

    def refuse_if_in_use(what):
        if in_use and not force:
            refusals.append('target %s has connected initiators %s: %s would change a disk under them; '
                            'log them out first or set force: true' % (iqn, _sessions_text(have), what))

    # Take away what is not wanted first.
    want_addresses = acl_addresses(target)
    actions = _acl_actions('unbind', tid, iqn, [a for a in have['addresses'] if a not in want_addresses],
                           [n for n in have['initiators'] if n not in target['initiators']])
    want_in = set(a['user'] for a in target['incoming_users'])
    for user in have['incoming_users']:
        if user not in want_in and user not in reset:
            actions.append(Action(_tgtadm('--mode', 'account', '--op', 'unbind', '--tid', tid, '--user', user),
                                  'stop CHAP user %s logging in to %s' % (user, iqn)))
    want_out = target['outgoing_user']['user'] if target['outgoing_user'] else None
    if have['outgoing_user'] and have['outgoing_user'] != want_out and have['outgoing_user'] not in reset:
        actions.append(Action(_tgtadm('--mode', 'account', '--op', 'unbind', '--tid', tid, '--user',
                                      have['outgoing_user'], '--outgoing'),
                              'drop outgoing CHAP user %s of %s' % (have['outgoing_user'], iqn)))

    wanted = dict((lun['lun'], lun) for lun in target['luns'])
    for number in sorted(have['luns']):
        if number != 0 and number not in wanted:
            refuse_if_in_use('removing LUN %d (%s)' % (number, have['luns'][number]['path']))
            actions.append(Action(_tgtadm('--mode', 'logicalunit', '--op', 'delete', '--tid', tid, '--lun', number),
                                  'remove LUN %d from %s' % (number, iqn)))
    for number, lun in sorted(wanted.items()):
        current = have['luns'].get(number)
        if current is None:
            actions += _new_lun_actions(tid, iqn, lun)
            continue
        changes = _lun_differs(lun, current)
        resize = None if changes else resize_of(lun, current)
        if resize:
            # Re-adding drops the LUN for about a second: initiators that queue I/O meanwhile
            # (dm-multipath with no_path_retry) ride it out, others see errors.
            if in_use and not (force or resize_in_use):
                refusals.append('target %s has connected initiators %s: LUN %d (%s) grew from %d to %d MB, and tgt '
                                'exports the new size only when the LUN is added again, which fails their I/O for '
                                'about a second unless they queue it (dm-multipath with no_path_retry does); set '
                                'resize_in_use: true when they do, or log them out first'
                                % (iqn, _sessions_text(have), number, lun['path'], resize[0], resize[1]))
            actions += _readd_lun_actions(tid, iqn, lun, 'to export its new size (%d MB, was %d MB)'
                                          % (resize[1], resize[0]))
            continue
        if not changes:
            continue
        refuse_if_in_use('changing LUN %d (%s)' % (number, ', '.join(changes)))
        if lun['path'] != current['path']:
            actions += _readd_lun_actions(tid, iqn, lun, 'to change its backing path')
        else:
            actions.append(_new_lun_actions(tid, iqn, lun)[1])

    have_out = have['outgoing_user'] if have['outgoing_user'] not in reset else None
    return actions + _bind_actions(tid, target, have['addresses'], have['initiators'],
                                   [u for u in have['incoming_users'] if u not in reset], have_out, reset)


# ---------------------------------------------------------------- results

def target_view(live, size_of=None):
    """What the module returns for one live target: no secrets, only account names."""
    luns = []
    for number in sorted(live['luns']):
        lun = live['luns'][number]
        if number == 0:
            continue
        luns.append(dict(lun=number, path=lun['path'], readonly=lun['readonly'], scsi_id=lun['scsi_id'],
                         scsi_sn=lun['scsi_sn'], wwid=wwid_of(lun['scsi_id']),
                         size=size_of(lun['path']) if size_of else None, size_text=lun['size_text']))
    return dict(iqn=live['iqn'], tid=live['tid'], state=live['state'], luns=luns,
                acl=dict(addresses=list(live['addresses']), initiators=list(live['initiators'])),
                accounts=dict(incoming=list(live['incoming_users']), outgoing=live['outgoing_user']),
                connected=[dict(initiator=s['initiator'], addresses=list(s['addresses'])) for s in live['sessions']])


def owned_view(live):
    """The part of a live target the module owns, for diff before/after."""
    if live is None:
        return None
    return dict(luns=[dict(lun=n, path=l['path'], readonly=l['readonly'], scsi_id=l['scsi_id'], scsi_sn=l['scsi_sn'])
                      for n, l in sorted(live['luns'].items()) if n != 0],
                addresses=sorted(live['addresses']), initiators=sorted(live['initiators']),
                incoming_users=sorted(live['incoming_users']), outgoing_user=live['outgoing_user'])


def desired_view(target):
    """The owned view a desired target will have once converged (for check-mode diffs)."""
    if target['state'] == 'absent':
        return None
    return dict(luns=[dict(lun=l['lun'], path=l['path'], readonly=l['readonly'], scsi_id=l['scsi_id'],
                           scsi_sn=l['scsi_sn']) for l in target['luns']],
                addresses=sorted(acl_addresses(target)), initiators=sorted(target['initiators']),
                incoming_users=sorted(a['user'] for a in target['incoming_users']),
                outgoing_user=target['outgoing_user']['user'] if target['outgoing_user'] else None)
