"""
The documents say what the code does: the README's commands are the ones
CI runs, and every option the README and docs name exists.
"""

import os
import re

from twisted.trial.unittest import SynchronousTestCase

from echotwist.tap import Options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


class DocsTests(SynchronousTestCase):
    def test_ci_runs_readme_command(self):
        """
        CI runs the README's test command, character for character.
        """
        [command] = re.findall(r'^TEST_COMMAND="(.*)"$', read(".ci", "run"), re.M)
        self.assertIn("\n" + command + "\n", read("README.md"))

    def test_documented_options_exist(self):
        """
        Every --option named in the README and docs/protocol.md is a server
        option (or a client or twistd one).
        """
        known = {row[0] for row in Options.optParameters} | {"help"}
        other = {
            "config-settings",
            "pidfile",
            "logfile",
            "tls",
            "ca",
            "insecure",
            "host",
            "profile",
            "listen",
        }
        for name in ("README.md", os.path.join("docs", "protocol.md")):
            for option in re.findall(r"`[^`]*?--([a-z][a-z0-9-]+)", read(name)):
                self.assertIn(option, known | other, f"{name}: --{option}")
