"""
Tests for L{echotwist.prompts} as the client uses it: host and port
parsing, and the ask-again loop (lab task 2).
"""

import socket

from twisted.trial.unittest import SynchronousTestCase

from echotwist import prompts


def resolves_only(*names):
    """
    A fake C{getaddrinfo} that knows only C{names}.
    """

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    return getaddrinfo


class ParseHostTests(SynchronousTestCase):
    def parse(self, text):
        return prompts.parse_host(
            text, getaddrinfo=resolves_only("localhost", "example.org")
        )

    def test_addresses(self):
        """
        IPv4 and IPv6 literals stand for themselves, brackets allowed, and
        are never looked up.
        """
        self.assertEqual(self.parse("127.0.0.1"), "127.0.0.1")
        self.assertEqual(self.parse("::1"), "::1")
        self.assertEqual(self.parse("[::1]"), "::1")
        self.assertEqual(self.parse(" 0:0:0:0:0:0:0:1 "), "::1")

    def test_names(self):
        """
        A host name that resolves is taken, trimmed and in lower case.
        """
        self.assertEqual(self.parse(" localhost "), "localhost")
        self.assertEqual(self.parse("Example.ORG"), "example.org")

    def test_refused(self):
        """
        Empty, malformed and unresolvable hosts are refused with a reason.
        """
        for text, reason in [
            ("", "the host is empty"),
            ("   ", "the host is empty"),
            ("[]", "the host is empty"),
            ("local host", "is not a host name"),
            ("-bad.example", "is not a host name"),
            ("a..b", "is not a host name"),
            ("hôte", "is not a host name"),
            ("x" * 300, "is not a host name"),
            ("nowhere.invalid", "cannot resolve 'nowhere.invalid'"),
        ]:
            with self.assertRaises(ValueError, msg=text) as caught:
                self.parse(text)
            self.assertIn(reason, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))

    def test_no_resolving(self):
        """
        With C{resolve=False} a well-formed name is taken unresolved.
        """
        self.assertEqual(
            prompts.parse_host(
                "nowhere.invalid", resolve=False, getaddrinfo=resolves_only()
            ),
            "nowhere.invalid",
        )


class ParsePortTests(SynchronousTestCase):
    def test_client_ports(self):
        """
        The client takes ports 1 to 65535 and refuses 0, out of range and
        non-numbers with a reason.
        """

        def parse(text):
            return prompts.parse_port(text, allow_zero=False)

        self.assertEqual(parse("1"), 1)
        self.assertEqual(parse(" 65535 "), 65535)
        for text in ["0", "65536", "-1", "abc", "9090x", "", "１２", "1e3", "+80"]:
            with self.assertRaises(ValueError, msg=text):
                parse(text)


class AskTests(SynchronousTestCase):
    def run_ask(self, answers, parse=lambda text: prompts.parse_port(text, False)):
        answers = list(answers)
        prompts_seen, written = [], []

        def read(prompt):
            prompts_seen.append(prompt)
            if not answers:
                raise EOFError()
            return answers.pop(0)

        value = prompts.ask("Server port", 9090, parse, read, written.append)
        return value, prompts_seen, written

    def test_default(self):
        """
        An empty answer takes the default, which the question shows.
        """
        value, seen, written = self.run_ask([""])
        self.assertEqual((value, seen, written), (9090, ["Server port [9090]: "], []))

    def test_ask_again(self):
        """
        A refused answer gets one line of reason and the question again.
        """
        value, seen, written = self.run_ask(["abc", "0", "8080"])
        self.assertEqual(value, 8080)
        self.assertEqual(len(seen), 3)
        self.assertEqual(len(written), 2)
        self.assertIn("'abc' is not a port number", written[0])
        self.assertIn("port 0 is out of range (1-65535)", written[1])

    def test_end_of_input(self):
        """
        The end of input ends the asking with L{EOFError}.
        """
        self.assertRaises(EOFError, self.run_ask, ["abc"])
