"""
The cluster, for real (contrib/cluster/cluster.py): PostgreSQL, echolab
nodes in network namespaces of their own, HAProxy in front. CI runs it as
root, with the packages .ci/run installs.
"""

import os
import subprocess
import sys
from unittest import SkipTest

from twisted.trial.unittest import SynchronousTestCase

from tests.test_twistd import ROOT

SCRIPT = os.path.join(ROOT, "contrib", "cluster", "cluster.py")


def cluster_missing():
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        from cluster import missing
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    return missing()


_runs = {}


def run_cluster():
    """
    The cluster script's run (once for all the tests here: it takes a
    minute), as its status and output.
    """
    if "done" not in _runs:
        _runs["done"] = subprocess.run(
            [sys.executable, SCRIPT, "--nodes", "3"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        print(_runs["done"].stdout, _runs["done"].stderr)
    done = _runs["done"]
    return done.returncode, done.stdout + done.stderr


class ClusterTests(SynchronousTestCase):
    def setUp(self):
        why = cluster_missing()
        if why:
            raise SkipTest(why)

    def test_cluster(self):
        """
        Through HAProxy: a token works on every node; a logout is refused
        everywhere; throttling holds across nodes; kill -9 of a node loses
        no acknowledged registration and its clients reconnect to the
        others, the echo path serving all along. (The script's output is
        in the test log.)
        """
        status, output = run_cluster()
        self.assertEqual(status, 0, output)
        for what in (
            "token logins landed on node1",
            "logged out on one node was refused by all",
            "refused unchecked while blocked",
            "killed (kill -9)",
            "all checks passed",
        ):
            self.assertIn(what, output)

    def test_admin_revoke_within_a_second(self):
        """
        An C{echolab-admin --store URL revoke LOGIN} made once, from one
        node's namespace: the login's sessions on every node end, and its
        token is refused by every node, within a second (the check waits
        for each session's C{bye} no longer than that).
        """
        status, output = run_cluster()
        self.assertEqual(status, 0, output)
        self.assertRegex(
            output,
            r"ok: admin revoke made once \('revoked 1 token of revoked; .*'\): "
            r"all 6 sessions on 3 nodes ended within 0\.\d\d s",
        )
