"""Root filesystem parsers and source resolution (pure, or reading files in tmp_path)."""

import os
import struct
import subprocess

import pytest

from ansible_collections.nslab.lab.plugins.module_utils.nslab_rootfs import (
    default_mirror, elf_interpreter, parse_apt_sources, parse_busybox_list, parse_loader_list)
from ansible_collections.nslab.lab.plugins.module_utils.nslab_sources import (
    SourceResolver, canonical, strip_special, tree_digest, walk_tree)

from helpers.paths import UNIT_FIXTURES as FIXTURES


def elf(interp=None, wide=True, order="<"):
    """A minimal ELF image: header, one PT_LOAD, and a PT_INTERP when ``interp`` is set."""
    phnum = 2 if interp else 1
    if wide:
        header_size, phentsize = 64, 56
    else:
        header_size, phentsize = 52, 32
    data_at = header_size + phnum * phentsize
    blob = (interp or "").encode() + b"\0" if interp else b""
    ident = b"\x7fELF" + bytes([2 if wide else 1, 1 if order == "<" else 2, 1]) + b"\0" * 9
    if wide:
        header = ident + struct.pack(order + "HHIQQQIHHHHHH", 2, 62, 1, 0, header_size, 0, 0,
                                     header_size, phentsize, phnum, 0, 0, 0)
        phdr = lambda t, off, size: struct.pack(order + "IIQQQQQQ", t, 4, off, 0, 0, size,
                                                size, 1)
    else:
        header = ident + struct.pack(order + "HHIIIIIHHHHHH", 2, 3, 1, 0, header_size, 0, 0,
                                     header_size, phentsize, phnum, 0, 0, 0)
        phdr = lambda t, off, size: struct.pack(order + "IIIIIIII", t, off, 0, 0, size, size,
                                                4, 1)
    out = header + phdr(1, 0, data_at)
    if interp:
        out += phdr(3, data_at, len(blob))
    return out + blob


@pytest.mark.parametrize("wide,order", [(True, "<"), (False, "<"), (True, ">")])
def test_elf_interpreter_of_a_dynamic_binary(wide, order):
    head = elf("/lib64/ld-linux-x86-64.so.2", wide, order)
    assert elf_interpreter(head) == "/lib64/ld-linux-x86-64.so.2"


def test_elf_interpreter_of_a_static_binary_is_none():
    assert elf_interpreter(elf()) is None


@pytest.mark.parametrize("head,fragment", [
    (b"#!/bin/sh\necho hi\n", "not an ELF"),
    (elf("/lib/ld.so")[:70], "truncated"),
])
def test_elf_interpreter_rejects(head, fragment):
    with pytest.raises(ValueError, match=fragment):
        elf_interpreter(head)


@pytest.mark.skipif(not os.path.exists("/usr/bin/busybox"), reason="no busybox on this host")
def test_elf_interpreter_of_real_binaries():
    with open("/usr/bin/busybox", "rb") as handle:
        static = handle.read(65536)
    with open("/bin/ls", "rb") as handle:
        dynamic = handle.read(65536)
    if b"ld-linux" not in dynamic:
        pytest.skip("/bin/ls is not dynamically linked against glibc here")
    assert elf_interpreter(dynamic).startswith("/")
    # busybox-static, if that is the busybox installed
    assert elf_interpreter(static) in (None, elf_interpreter(dynamic))


def test_parse_loader_list_captured():
    listed = parse_loader_list((FIXTURES / "loader_list.txt").read_text())
    assert listed.paths == ["/lib/x86_64-linux-gnu/libselinux.so.1",
                            "/lib/x86_64-linux-gnu/libc.so.6",
                            "/lib/x86_64-linux-gnu/libpcre2-8.so.0",
                            "/lib64/ld-linux-x86-64.so.2"]     # the vDSO has no file
    assert listed.missing == ["libmissing.so.7"]


def test_parse_busybox_list_captured_and_hostile():
    applets = parse_busybox_list((FIXTURES / "busybox_list.txt").read_text())
    assert "usr/bin/[" in applets and "sbin/acpid" in applets
    for bad in ("/bin/ls", "../../etc/passwd", "bin/../../x"):
        with pytest.raises(ValueError, match="plain relative path"):
            parse_busybox_list(bad)


def test_apt_sources_deb822_captured_and_one_line():
    deb822 = parse_apt_sources((FIXTURES / "apt_debian.sources").read_text(), deb822=True)
    assert [s.uri for s in deb822] == ["http://deb.debian.org/debian",
                                       "http://deb.debian.org/debian-security"]
    assert default_mirror(deb822, "bookworm") == "http://deb.debian.org/debian"
    assert default_mirror(deb822, "bookworm-security") == "http://deb.debian.org/debian-security"
    assert default_mirror(deb822, "trixie") == "http://deb.debian.org/debian"
    one_line = parse_apt_sources(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/ubuntu jammy main\n"
        "deb-src http://m.example/ubuntu jammy main\n"
        "deb http://m.example/ubuntu jammy-updates main universe\n", deb822=False)
    assert [(s.uri, s.suites) for s in one_line] == [
        ("http://m.example/ubuntu", ["jammy"]), ("http://m.example/ubuntu", ["jammy-updates"])]
    assert default_mirror([], "bookworm") is None


def test_canonical_resolves_the_directory_only(tmp_path):
    (tmp_path / "usr" / "lib64").mkdir(parents=True)
    (tmp_path / "lib64").symlink_to("usr/lib64")
    assert canonical(str(tmp_path / "lib64" / "ld.so")) == str(tmp_path / "usr/lib64/ld.so")


# --- resolving sources with a fake host ---------------------------------------------------

def resolver(tmp_path, which=None, loader_out=""):
    def run(argv, data=None):
        return 0, loader_out, ""
    return SourceResolver(run, which or (lambda name: None), cache_dir=str(tmp_path / "cache"),
                          apt_dir=str(tmp_path / "apt"))


def item(**options):
    return dict(dict.fromkeys(["path", "binaries", "suite", "mirror", "variant", "include"]),
                **options)


def test_busybox_must_exist_and_be_static(tmp_path):
    missing = resolver(tmp_path).resolve(item(source="busybox"), "jails[0].")
    assert missing[0] is None
    assert missing[1][0].startswith("jails[0].path: no busybox found on PATH")
    dynamic = tmp_path / "busybox"
    dynamic.write_bytes(elf("/lib/ld.so"))
    found = resolver(tmp_path).resolve(item(source="busybox", path=str(dynamic)), "")
    assert "is dynamically linked (it needs /lib/ld.so)" in found[1][0]
    dynamic.write_bytes(elf())
    source, problems = resolver(tmp_path).resolve(item(source="busybox", path=str(dynamic)), "")
    assert problems == [] and source.base_id.startswith("busybox-")
    again, _ = resolver(tmp_path).resolve(item(source="busybox", path=str(dynamic)), "")
    assert again.base_id == source.base_id
    dynamic.write_bytes(elf() + b"changed")
    changed, _ = resolver(tmp_path).resolve(item(source="busybox", path=str(dynamic)), "")
    assert changed.base_id != source.base_id


def test_one_resolver_hashes_a_shared_source_once_until_it_changes(tmp_path, monkeypatch):
    """A lab's jails share their busybox: one run hashes it once, not once per jail
    (issue #12), and a file rewritten in between is hashed again."""
    from ansible_collections.nslab.lab.plugins.module_utils import nslab_sources
    hashed = []
    real = nslab_sources.sha256_file
    monkeypatch.setattr(nslab_sources, "sha256_file", lambda p: hashed.append(p) or real(p))
    binary = tmp_path / "busybox"
    binary.write_bytes(elf())
    one = resolver(tmp_path)
    ids = set(one.resolve(item(source="busybox", path=str(binary)), "")[0].base_id
              for _ in range(5))
    assert len(ids) == 1 and hashed == [str(binary)]
    binary.write_bytes(elf() + b"rebuilt")
    rebuilt = one.resolve(item(source="busybox", path=str(binary)), "")[0].base_id
    assert rebuilt not in ids and len(hashed) == 2


def test_host_binaries_missing_or_with_missing_libraries(tmp_path):
    problems = resolver(tmp_path).resolve(item(source="host", binaries=["nosuchbin"]), "")[1]
    assert problems == ["binaries: 'nosuchbin' not found on PATH; expected a command on PATH "
                        "or the absolute path of an executable file"]
    binary = tmp_path / "tool"
    binary.write_bytes(elf("/lib64/ld-linux-x86-64.so.2"))
    binary.chmod(0o755)
    out = (FIXTURES / "loader_list.txt").read_text()
    problems = resolver(tmp_path, loader_out=out).resolve(
        item(source="host", binaries=[str(binary)]), "")[1]
    assert problems == ["binaries: '%s' needs libmissing.so.7, which the loader cannot find"
                        % binary]


def test_options_of_another_source_and_bad_paths(tmp_path):
    problems = resolver(tmp_path).resolve(item(source="directory", path="/srv/../etc",
                                               binaries=["sh"]), "")[1]
    assert problems[0] == "binaries: only used with source 'host' (source is 'directory')"
    assert problems[1].startswith("path: path '/srv/../etc' is not in normal form")
    for path, fragment in (("/", "'/' resolves to '/', the host's root"),
                           ("/var/lib/nslab/x", "inside nslab's /var/lib/nslab"),
                           (str(tmp_path / "no"), "which is not a directory")):
        problem = resolver(tmp_path).resolve(item(source="directory", path=path), "")[1][0]
        assert fragment in problem, problem


def test_a_directory_source_is_resolved_before_it_is_checked(tmp_path):
    cases = {"/": "the host's root", "/etc": "a host system directory",
             "/usr": "a host system directory", "/var": "which holds nslab's /var/cache/nslab",
             "/proc/self": "inside the host's /proc", "/run/nslab": "inside nslab's /run/nslab",
             str(tmp_path / "cache" / "x"): "inside nslab's %s" % (tmp_path / "cache")}
    for index, (target, why) in enumerate(cases.items()):
        link = tmp_path / ("link%d" % index)
        link.symlink_to(target)
        problems = resolver(tmp_path).resolve(item(source="directory", path=str(link)),
                                              "jails[1].")[1]
        real = os.path.realpath(target)
        assert problems == ["jails[1].path: '%s' resolves to '%s', %s; expected a root "
                            "filesystem tree of its own (not /, a host system directory, or "
                            "inside or above nslab's /run/nslab, %s, /var/cache/nslab, "
                            "/var/lib/nslab)" % (link, real, why, tmp_path / "cache")], target
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tree)
    source, problems = resolver(tmp_path).resolve(
        item(source="directory", path=str(tmp_path / "alias"), keep_setuid=True), "")
    assert problems == []
    assert source.spec == {"path": str(tree), "keep_setuid": True}
    before = source.base_id
    (tree / "etc" / "new").write_text("x")
    assert resolver(tmp_path).resolve(item(source="directory", path=str(tree)),
                                      "")[0].base_id != before


def test_a_tarball_must_resolve_to_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to("/dev/null")
    for path, kind in ((fifo, "a FIFO"), (tmp_path / "link", "a character device"),
                       (tmp_path, "a directory")):
        problems = resolver(tmp_path, which=lambda n: "/usr/bin/" + n).resolve(
            item(source="tarball", path=str(path)), "")[1]
        assert problems == ["path: '%s' resolves to '%s', which is %s; expected a root "
                            "filesystem archive (a regular file: tar, optionally compressed)"
                            % (path, os.path.realpath(path), kind)]


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_strip_special_drops_devices_and_clears_setuid_unless_kept(tmp_path):
    for keep in (False, True):
        top = tmp_path / ("keep" if keep else "strip")
        (top / "dev").mkdir(parents=True)
        (top / "sgid-dir").mkdir()
        os.chmod(top / "sgid-dir", 0o2755)
        os.mknod(top / "dev" / "mem", 0o666 | 0o020000, os.makedev(1, 1))
        os.mknod(top / "dev" / "sda", 0o660 | 0o060000, os.makedev(8, 0))
        for name, mode in (("su", 0o4755), ("sg", 0o2711), ("plain", 0o755)):
            (top / name).write_text("x")
            os.chmod(top / name, mode)
        (top / "link").symlink_to("su")
        counts = strip_special(str(top), keep_setuid=keep)
        assert counts == {"device_nodes": 2, "setuid_setgid": 0 if keep else 2}
        assert sorted(os.listdir(top / "dev")) == []
        modes = dict((n, os.stat(top / n).st_mode & 0o7777) for n in ("su", "sg", "plain"))
        assert modes == ({"su": 0o4755, "sg": 0o2711, "plain": 0o755} if keep else
                         {"su": 0o755, "sg": 0o711, "plain": 0o755})
        assert os.stat(top / "sgid-dir").st_mode & 0o7777 == 0o2755   # directories keep it


def test_walk_tree_has_no_recursion_limit_and_the_digest_sees_changes(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(1100):
            os.mkdir("d", dir_fd=fd)
            deeper = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = deeper
        os.close(fd)
        assert len(list(walk_tree(str(tmp_path)))) == 1100
        before = tree_digest(str(tmp_path))
        os.chmod(tmp_path / "d", 0o700)
        assert tree_digest(str(tmp_path)) != before
    finally:
        # pytest's own cleanup of old temporary directories uses shutil.rmtree
        subprocess.run(["rm", "-rf", "--one-file-system", str(tmp_path / "d")], check=True)


def test_debootstrap_needs_a_suite_a_mirror_and_the_tool_or_a_cache(tmp_path):
    problems = resolver(tmp_path).resolve(item(source="debootstrap", suite="Bad Suite",
                                               include=["ok-pkg", "BAD;"]), "")[1]
    assert problems[0].startswith("suite: 'Bad Suite' is not a suite name")
    assert problems[1].startswith("include: 'BAD;' is not a package name")
    no_mirror = resolver(tmp_path).resolve(item(source="debootstrap", suite="bookworm"), "")[1]
    assert no_mirror[0].startswith("mirror: not set and no deb source is configured")
    no_tool = resolver(tmp_path).resolve(item(source="debootstrap", suite="bookworm",
                                              mirror="http://m.example/debian"), "")[1]
    assert "needs the debootstrap command" in no_tool[0]
    source, problems = resolver(tmp_path, which=lambda n: "/usr/sbin/" + n).resolve(
        item(source="debootstrap", suite="bookworm", mirror="http://m.example/debian/"), "")
    assert problems == []
    assert source.spec["mirror"] == "http://m.example/debian" and source.spec["variant"] == \
        "minbase"
    assert source.cache == str(tmp_path / "cache" / "debootstrap" / (source.base_id + ".tar"))


def test_every_source_kind_has_a_resolver_and_a_builder():
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_jail_vocab import SOURCES
    from ansible_collections.nslab.lab.plugins.module_utils.nslab_sources import RootfsBuilder
    run = which = None
    assert set(SourceResolver(run, which).resolvers) == set(SOURCES)
    assert set(RootfsBuilder(run, which).builders) == set(SOURCES)
