"""
Tests for L{echotwist.addresses}: one client is one key, however its
address is spelled; loopback is this machine; IPv6 counts by network.
"""

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.trial.unittest import SynchronousTestCase

from echotwist.addresses import LOCAL, is_loopback, network_key, peer_host


class AddressTests(SynchronousTestCase):
    def test_peer_host(self):
        """
        IPv4-mapped IPv6 is given as IPv4, IPv6 in compressed lower case,
        zones dropped; a UNIX socket's client is L{LOCAL}.
        """
        self.assertEqual(peer_host(IPv4Address("TCP", "10.1.2.3", 1)), "10.1.2.3")
        self.assertEqual(
            peer_host(IPv6Address("TCP", "::ffff:10.1.2.3", 1)), "10.1.2.3"
        )
        self.assertEqual(peer_host(IPv6Address("TCP", "2001:DB8::1", 1)), "2001:db8::1")
        self.assertEqual(peer_host(IPv6Address("TCP", "fe80::1%eth0", 1)), "fe80::1")
        self.assertEqual(peer_host(UNIXAddress(b"/tmp/s")), LOCAL)

    def test_loopback(self):
        """
        127.0.0.0/8, ::1, IPv4-mapped loopback and L{LOCAL} are this
        machine; nothing else is.
        """
        for host in ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1", LOCAL]:
            self.assertTrue(is_loopback(host), host)
        for host in ["10.1.2.3", "0.0.0.0", "::ffff:10.0.0.1", "fe80::1", "name"]:
            self.assertFalse(is_loopback(host), host)

    def test_network_key(self):
        """
        IPv6 addresses count by their /64 (or the prefix given); IPv4 and
        L{LOCAL} as they are.
        """
        self.assertEqual(network_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64")
        self.assertEqual(network_key("2001:db8:1:2::9"), "2001:db8:1:2::/64")
        self.assertEqual(network_key("2001:db8::1", 48), "2001:db8::/48")
        self.assertEqual(network_key("2001:db8::1", 128), "2001:db8::1")
        self.assertEqual(network_key("10.0.0.1"), "10.0.0.1")
        self.assertEqual(network_key(LOCAL), LOCAL)
