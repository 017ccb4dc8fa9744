# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a block device is in use on this host, and by what: the one place for that question.

A device is in use when device-mapper, LVM or md holds it or one of its partitions, when it or a
partition is mounted or a swap device, or when a process holds it open: tgtd exporting it as a LUN,
a qemu guest, a ``dd``. Processes are found by their open file descriptors
(``/proc/PID/fd``), matched by device number (``major:minor``), so a device opened as
``/dev/mapper/NAME``, ``/dev/VG/LV`` or ``/dev/disk/by-id/...`` is found as the ``/dev/dm-N`` or
``/dev/sdX`` it is. The holders of the device (a multipath map, the LVs on it) are looked at too, so
the process behind a holder is named.

Every path is a parameter, so unit tests run these functions on a fake tree. Checks fail closed:
when ``/proc`` cannot be read, the device counts as in use and the reason says so.
"""

from __future__ import annotations

import os
import stat

SYS_BLOCK = '/sys/class/block'
PROC = '/proc'
# Holders of holders are followed this deep (disk -> multipath map -> LV -> partition mapping).
HOLDER_DEPTH = 4


def block_rdev(fd_link):
    """``major:minor`` of the block device an fd link (``/proc/PID/fd/N``) points to, or None.

    ``os.stat`` of the link reaches the open file itself, whatever path it was opened by.
    """
    try:
        st = os.stat(fd_link)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    return '%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))


def device_openers(proc=PROC, rdev_of=block_rdev):
    """The processes that hold block devices open: ``({'major:minor': ['comm (pid N)', ...]}, error)``.

    Only fds whose link names a path under ``/dev/`` are looked at (never a file on a network
    filesystem, whose stat could hang); ``rdev_of(link)`` gives the device number of one.
    ``error`` is None, or why the scan is incomplete (``/proc`` or a process's fds unreadable):
    the caller then counts every device as in use.
    """
    try:
        pids = sorted((entry for entry in os.listdir(proc) if entry.isdigit()), key=int)
    except OSError as err:
        return {}, 'cannot read %s to find the processes that hold devices open (%s)' % (proc, err.strerror)
    openers, unreadable = {}, []
    for pid in pids:
        fd_dir = os.path.join(proc, pid, 'fd')
        try:
            fds = os.listdir(fd_dir)
        except FileNotFoundError:
            continue  # the process has exited
        except OSError:
            unreadable.append(pid)
            continue
        numbers = set()
        for fd in fds:
            link = os.path.join(fd_dir, fd)
            try:
                target = os.readlink(link)
            except OSError:
                continue  # closed meanwhile
            if target.startswith('/dev/'):
                number = rdev_of(link)
                if number:
                    numbers.add(number)
        if numbers:
            name = '%s (pid %s)' % (_first_line(os.path.join(proc, pid, 'comm')) or '?', pid)
            for number in numbers:
                openers.setdefault(number, []).append(name)
    error = None
    if unreadable:
        error = 'cannot read the open files of pid %s under %s' % (', '.join(unreadable[:5]), proc)
    return openers, error


def devices_usage(names, sys_block=SYS_BLOCK, mountinfo=PROC + '/self/mountinfo', swaps=PROC + '/swaps',
                  proc=PROC, rdev_of=block_rdev, removed_holders=()):
    """Why each kernel device ``name`` (``sdb``, ``vdc``, ``dm-3``) is in use: ``{name: [reasons]}``.

    An empty list means free: nothing holds, mounts, swaps on or opens the device or its partitions.
    A name with no directory under ``sys_block`` (gone already) is free. ``/proc`` is read once for
    all the names. Holders in ``removed_holders`` (dm-N of maps the caller removes first, after
    checking their own usage) do not count, nor does what sits on them.
    """
    openers, problems = None, []
    mount_lines = _lines(mountinfo)
    if mount_lines is None:
        problems.append('cannot read %s to find the mounts' % mountinfo)
    mounts = [line.split() for line in mount_lines or []]
    # No swaps file: a kernel without swap.
    swap_devices = [line.split()[0] for line in (_lines(swaps) or [])[1:] if line.split()]
    usage = {}
    for name in names:
        base = os.path.join(sys_block, name)
        if not os.path.isdir(base):
            usage[name] = []
            continue
        if openers is None:
            openers, scan_error = device_openers(proc, rdev_of)
            problems += [scan_error] if scan_error else []
        parts = [name] + sorted(p for p in os.listdir(base) if p.startswith(name))
        reasons, numbers = [], {}
        # a path of a map the caller removes: multipathd's path checker lets go of it with the map
        path_of_removed = any(holder in removed_holders for part in parts
                              for holder in _listdir(os.path.join(base if part == name else os.path.join(base, part),
                                                                  'holders')))
        for part in parts:
            pdir = base if part == name else os.path.join(base, part)
            for holder in _listdir(os.path.join(pdir, 'holders')):
                if holder not in removed_holders:
                    reasons.append('/dev/%s is held by %s' % (part, holder_name(sys_block, holder)))
            number = _first_line(os.path.join(pdir, 'dev'))
            if number:
                numbers[number] = part
        for fields in mounts:
            if len(fields) > 4 and fields[2] in numbers:
                reasons.append('/dev/%s is mounted on %s' % (numbers[fields[2]], fields[4]))
        for device in swap_devices:
            if os.path.basename(device) in numbers.values():
                reasons.append('%s is a swap device' % device)
        for number, part in sorted(numbers.items(), key=lambda item: item[1]):
            for opener in openers.get(number, []):
                if not (path_of_removed and opener.startswith('multipathd (')):
                    reasons.append('%s is open by %s' % (_label(sys_block, part), opener))
        for holder in _holders(sys_block, parts, base, removed_holders):
            number = _first_line(os.path.join(sys_block, holder, 'dev'))
            for opener in openers.get(number, []):
                reasons.append('%s, which holds it, is open by %s' % (_label(sys_block, holder), opener))
        usage[name] = reasons + problems
    return usage


def device_usage(name, sys_block=SYS_BLOCK, mountinfo=PROC + '/self/mountinfo', swaps=PROC + '/swaps',
                 proc=PROC, rdev_of=block_rdev):
    """Why kernel device ``name`` is in use (see devices_usage); empty list = free."""
    return devices_usage([name], sys_block, mountinfo, swaps, proc, rdev_of)[name]


def multipath_maps(sys_block=SYS_BLOCK):
    """The dm-multipath maps of this host: [{name, dm, slaves, size}], size in 512-byte sectors."""
    maps = []
    for dm in _listdir(sys_block):
        if dm.startswith('dm-') and _first_line(os.path.join(sys_block, dm, 'dm', 'uuid')).startswith('mpath-'):
            maps.append(dict(name=_first_line(os.path.join(sys_block, dm, 'dm', 'name')), dm=dm,
                             slaves=_listdir(os.path.join(sys_block, dm, 'slaves')), size=sectors(dm, sys_block)))
    return maps


def sectors(name, sys_block=SYS_BLOCK):
    """Size of block device ``name`` in 512-byte sectors (0 when it cannot be read)."""
    text = _first_line(os.path.join(sys_block, name, 'size'))
    return int(text) if text.isdigit() else 0


def holder_name(sys_block, holder):
    """dm-3 -> 'dm-3 (mpatha)' when the device-mapper name is known."""
    name = _first_line(os.path.join(sys_block, holder, 'dm', 'name'))
    return '%s (%s)' % (holder, name) if name else holder


def _label(sys_block, name):
    """/dev/sdb, or /dev/dm-3 (vg-lv) for a device-mapper device."""
    return '/dev/' + holder_name(sys_block, name)


def _holders(sys_block, parts, base, skipped=()):
    """Every device that holds the device or its partitions, directly or through other holders
    (but those in ``skipped`` and what holds them)."""
    found = []
    todo = [os.path.join(base, 'holders') if part == parts[0] else os.path.join(base, part, 'holders')
            for part in parts]
    for dummy in range(HOLDER_DEPTH):
        nxt = []
        for holders_dir in todo:
            for holder in _listdir(holders_dir):
                if holder not in found and holder not in skipped:
                    found.append(holder)
                    nxt.append(os.path.join(sys_block, holder, 'holders'))
        todo = nxt
    return found


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _first_line(path):
    try:
        with open(path) as handle:
            return handle.readline().strip()
    except OSError:
        return ''


def _lines(path):
    """The lines of a file, or None when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read().splitlines()
    except OSError:
        return None
