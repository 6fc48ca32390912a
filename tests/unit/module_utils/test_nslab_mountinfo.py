"""The mount table, whole or only the lines that name a path (a lab's thousands of mounts
are parsed once per run, not once per jail)."""

from ansible_collections.nslab.lab.plugins.module_utils.nslab_mountinfo import (
    _unescape, escape, mounts_below, parse_mountinfo, read_mountinfo)

TABLE = "\n".join([
    r"22 1 0:21 / /proc rw,nosuid - proc proc rw",
    r"30 22 0:25 / /proc/sys/fs/binfmt_misc rw - autofs systemd-1 rw",
    r"40 1 0:40 / /srv/a\040b rw - tmpfs tmpfs rw",
    r"41 40 0:41 / /srv/a\040b/c rw - tmpfs tmpfs rw",
    r"42 1 0:42 / /srv/a rw - tmpfs tmpfs rw",
])


def test_escape_is_the_inverse_of_unescape():
    for path in ("/srv/a b", "/x\ty", "/back\\slash", "/plain/path"):
        assert _unescape(escape(path)) == path
    assert escape("/srv/a b") == r"/srv/a\040b"


def test_mounts_below_a_path_with_a_space(tmp_path):
    entries = parse_mountinfo(TABLE)
    assert [e.mount_point for e in mounts_below(entries, "/srv/a b")] == [
        "/srv/a b", "/srv/a b/c"]
    assert [e.mount_point for e in mounts_below(entries, "/srv/a")] == ["/srv/a"]


def test_only_the_lines_naming_a_path_give_the_same_mounts_below_it():
    for path in ("/proc", "/sys/fs/cgroup", "/nonexistent"):   # where no test mounts
        assert mounts_below(read_mountinfo(containing=path), path) == \
            mounts_below(read_mountinfo(), path)
