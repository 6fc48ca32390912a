"""A pseudo-terminal's master side, driven as a user at a busybox prompt would."""

import os
import select
import time


class Terminal:
    """The master side of a pseudo-terminal, read up to what one waits for."""

    def __init__(self, fd):
        self.fd, self.pending = fd, b""

    def read_until(self, text, timeout=20.0):
        """What came up to and including ``text``; the rest stays for the next call."""
        wanted, deadline = text.encode(), time.monotonic() + timeout
        while wanted not in self.pending:
            left = deadline - time.monotonic()
            assert left > 0, "never saw %r in %r" % (text, self.pending)
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                assert chunk, "the terminal closed before %r: %r" % (text, self.pending)
                self.pending += chunk
        end = self.pending.index(wanted) + len(wanted)
        seen, self.pending = self.pending[:end], self.pending[end:]
        return seen.decode(errors="replace")

    def type_at_prompt(self, line):
        """Wait for busybox's prompt, which asks the terminal where its cursor is
        (ESC [6n); answer as a terminal does, then type ``line``."""
        self.read_until("\x1b[6n")
        os.write(self.fd, b"\x1b[1;5R")
        time.sleep(0.2)
        os.write(self.fd, line)
