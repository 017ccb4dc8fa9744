"""Reading `multipath -ll` in the lab's system tests and scenarios."""

import re


def maps_on_two_running_paths(text):
    """The map names of `multipath -ll` ``text`` when there is at least one map and every map has two
    paths, both active, ready and running (the lab's two portals); else an empty list."""
    names = re.findall(r'^(\S+) \(', text, re.M)
    return names if len(re.findall(r'active ready\s+running', text)) == 2 * len(names) else []
