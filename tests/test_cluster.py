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
        done = subprocess.run(
            [sys.executable, SCRIPT, "--nodes", "3"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        print(done.stdout, done.stderr)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        for what in (
            "token logins landed on node1",
            "logged out on one node was refused by all",
            "refused unchecked while blocked",
            "killed (kill -9)",
            "all checks passed",
        ):
            self.assertIn(what, done.stdout)

    def test_admin_revoke_within_a_second(self):
        """
        An admin revoke made on one node is refused on all within 1 s.

        To write once merged: in cluster_checks, register through HAProxy,
        log in with the token on every node (caches warm), run
        C{echolab-admin revoke} against the cluster's store (cluster.url)
        inside node1's namespace, then log in with the token through
        HAProxy 2 x nodes times starting 1 s later: every one C{bad_token}.
        """

    test_admin_revoke_within_a_second.skip = (
        "to enable once the admin tool and its changes table (operations "
        "issue) are merged: run the admin revoke against the cluster's store"
    )
