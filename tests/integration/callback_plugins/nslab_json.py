# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only stdout callback: one JSON line per task result, diff included.

ansible-core 2.19 no longer ships the json callback, and the text callbacks drop the
``diff`` key, which the integration tests assert on.
"""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: nslab_json
type: stdout
short_description: one JSON line per task result (nslab's tests)
description: Prints each task result as a JSON object on its own line.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "nslab_json"

    def _emit(self, result, status):
        data = dict(result._result)
        data["_status"] = status
        data["_host"] = result._host.get_name()
        data["_task"] = result._task.get_name()
        self._display.display(json.dumps(data, default=str))

    def v2_runner_on_ok(self, result):
        self._emit(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._emit(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._emit(result, "skipped")
