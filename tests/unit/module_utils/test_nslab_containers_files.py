"""nslab_container's files with a mode and ``restart`` (the topology's node files): a
change of such a file's content or mode restarts the container; /etc/hosts-style files
(plain content) are rewritten in place without a restart, as before."""

import os
import stat

from ansible_collections.nslab.lab.plugins.module_utils.nslab_container_store import ContainerState
from ansible_collections.nslab.lab.plugins.module_utils.nslab_containers import (
    ContainerSpec, files_to_write, plan_containers, write_host_file)


def running(spec):
    return ContainerState(spec.name, {"config": spec.config(), "pid": 42}, running=True)


def verbs(spec, current, stale=None):
    return [a.verb for a in plan_containers([spec], {spec.name: current},
                                            {spec.name: stale or []})]


def test_a_restart_file_change_restarts_the_container():
    before = ContainerSpec("r1", rootfs="/j", files={"/etc/frr/frr.conf": "a"},
                           restart_files=["/etc/frr/frr.conf"])
    after = ContainerSpec("r1", rootfs="/j", files={"/etc/frr/frr.conf": "b"},
                          restart_files=["/etc/frr/frr.conf"])
    assert verbs(after, running(before), ["/etc/frr/frr.conf"]) == ["files", "restart"]
    assert verbs(before, running(before)) == []
    mode = ContainerSpec("r1", rootfs="/j", files={"/etc/frr/frr.conf": "a"},
                         file_modes={"/etc/frr/frr.conf": 0o640},
                         restart_files=["/etc/frr/frr.conf"])
    assert verbs(mode, running(before), ["/etc/frr/frr.conf"]) == ["files", "restart"]


def test_a_plain_file_change_is_written_in_place_without_a_restart():
    before = ContainerSpec("a", rootfs="/j", files={"/etc/hosts": "1"})
    after = ContainerSpec("a", rootfs="/j", files={"/etc/hosts": "2"})
    assert verbs(after, running(before), ["/etc/hosts"]) == ["files"]


def test_a_record_from_before_file_digests_does_not_restart():
    spec = ContainerSpec("a", rootfs="/j", files={"/etc/hosts": "1"})
    config = spec.config()
    del config["file_digests"]
    assert verbs(spec, ContainerState("a", {"config": config, "pid": 1}, running=True)) == []


def test_the_host_copy_gets_the_mode_and_a_mode_change_is_stale(tmp_path):
    directory = str(tmp_path / "a.files")
    spec = ContainerSpec("a", files={"/etc/x": "hi"}, file_modes={"/etc/x": 0o640})
    assert files_to_write(spec, directory) == ["/etc/x"]
    write_host_file(directory, "/etc/x", "hi", 0o640)
    copy = os.path.join(directory, os.listdir(directory)[0])
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o640
    assert files_to_write(spec, directory) == []
    spec.file_modes = {}
    assert files_to_write(spec, directory) == ["/etc/x"]
