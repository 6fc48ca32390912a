"""Capabilities a container keeps by default (Docker's set), by name and number."""

DEFAULT_CAPS = {"AUDIT_WRITE": 29, "CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4,
                "KILL": 5, "NET_BIND_SERVICE": 10, "NET_RAW": 13, "SETFCAP": 31, "SETGID": 6,
                "SETPCAP": 8, "SETUID": 7, "SYS_CHROOT": 18}
