"""
Tests for L{echotwist.client.options}: the command line is checked with
the same parsers as the questions, and a missing host or port is asked
for only when a person is there.
"""

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from echotwist.client.options import Options, fill_in


def parse(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self):
        """
        With no options nothing is chosen yet: host and port are left to
        L{fill_in}; TLS is off.
        """
        options = parse()
        self.assertEqual(
            (
                options["host"],
                options["port"],
                options["tls"],
                options["insecure"],
                options["timeout"],
            ),
            (None, None, False, False, 10.0),
        )

    def test_values(self):
        """
        Good values are parsed: an IPv6 literal, a port, a CA file that
        implies TLS.
        """
        options = parse("--host", "[::1]", "--port", "8080", "--ca", "ca.pem")
        self.assertEqual(
            (options["host"], options["port"], options["tls"]), ("::1", 8080, True)
        )

    def test_bad_values(self):
        """
        A bad option value is a one-line usage error naming the option.
        """
        for argv, expected in [
            (["--port", "0"], "--port: port 0 is out of range (1-65535)"),
            (["--port", "http"], "--port: 'http' is not a port number"),
            (["--host", ""], "--host: the host is empty"),
            (["--host", "a b"], "--host: 'a b' is not a host name"),
            (["--timeout", "0"], "--timeout: 0 is out of range"),
        ]:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                parse(*argv)
            self.assertIn(expected, str(caught.exception))
            self.assertNotIn("\n", str(caught.exception))


class FillInTests(SynchronousTestCase):
    def test_not_interactive(self):
        """
        Without a terminal the defaults are taken and no input is read.
        """
        options = parse()

        def read(prompt):
            raise AssertionError("read from a script")

        fill_in(options, False, read, None)
        self.assertEqual((options["host"], options["port"]), ("localhost", 9090))

    def test_asked(self):
        """
        With a terminal, host and port are asked with their defaults shown;
        empty takes the default, a bad port is asked again.
        """
        options = parse()
        answers, prompts, written = ["", "99999", "7070"], [], []

        def read(prompt):
            prompts.append(prompt)
            return answers.pop(0)

        fill_in(options, True, read, written.append)
        self.assertEqual((options["host"], options["port"]), ("localhost", 7070))
        self.assertEqual(
            prompts,
            [
                "Server host [localhost]: ",
                "Server port [9090]: ",
                "Server port [9090]: ",
            ],
        )
        self.assertEqual(len(written), 1)

    def test_given_not_asked(self):
        """
        What the command line gave is not asked again.
        """
        options = parse("--port", "7070")
        fill_in(options, True, lambda prompt: "::1", None)
        self.assertEqual((options["host"], options["port"]), ("::1", 7070))
