"""Unit tests of the plugin's parsers and mappings; python_test.go runs them with the
plugin's virtualenv (python3 -m unittest test_forwarder)."""

import base64
import datetime
import json
import random
import unittest

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

import forwarder
import goplugin
from forwarder import DELIVERED, FAILED, RETRY, ConfigError

NOW = datetime.datetime(2026, 11, 27, 10, 0, 0, tzinfo=datetime.timezone.utc)


class ParseDuration(unittest.TestCase):
    def test_go_durations(self):
        for text, want in [("10s", 10), ("1m30s", 90), ("250ms", 0.25), ("1.5h", 5400),
                           ("0", 0), ("2us", 2e-6), ("2µs", 2e-6), ("100ns", 1e-7), (".5s", 0.5)]:
            with self.subTest(text=text):
                self.assertAlmostEqual(forwarder.parse_duration(text), want)

    def test_not_durations(self):
        for text in ["", "10", "s", "10 s", "-5s", "+5s", "5sec", "1e3s", "5s ", "٥s", "5S", "0x10s"]:
            with self.subTest(text=text), self.assertRaises(ValueError):
                forwarder.parse_duration(text)


class ParseRetryAfter(unittest.TestCase):
    def test_values(self):
        cases = [
            (None, 0), ("", 0), ("7", 7), (" 7 ", 7), ("0", 0), ("3600", 3600), ("3601", 3600),
            ("9" * 7, 3600), ("9" * 5000, 3600),
            # An HTTP-date in each of the three forms a recipient must read.
            ("Fri, 27 Nov 2026 10:01:30 GMT", 90),
            ("Friday, 27-Nov-26 10:01:30 GMT", 90),
            ("Fri Nov 27 10:01:30 2026", 90),
            ("Fri, 27 Nov 2026 09:00:00 GMT", 0),   # past
            ("Fri, 27 Nov 2099 09:00:00 GMT", 3600),  # capped
            # Hostile or malformed: the host's back-off decides.
            ("-5", 0), ("+5", 0), ("5.5", 0), ("1e3", 0), ("٣", 0), ("5_0", 0), ("0x10", 0),
            ("soon", 0), ("Fri, 27 Nov 2026 10:01:30 PST", 0), ("Fri, 32 Nov 2026 10:01:30 GMT", 0),
            ("\x00", 0), ("7\r\nSet-Cookie: x", 0),
        ]
        for value, want in cases:
            with self.subTest(value=value):
                self.assertAlmostEqual(forwarder.parse_retry_after(value, NOW), want)

    def test_random_input_stays_in_bounds(self):
        rnd = random.Random(1)
        alphabet = "0123456789 ,:-GMTFriNov\x00\xff é\t"
        for _ in range(5000):
            value = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(40)))
            got = forwarder.parse_retry_after(value, NOW)
            self.assertTrue(0 <= got <= forwarder.MAX_RETRY_AFTER, (value, got))


class Outcome(unittest.TestCase):
    def test_statuses(self):
        cases = [
            (200, None, b"", DELIVERED, 0, ""),
            (204, "30", b"", DELIVERED, 0, ""),
            (429, "30", b"slow down", RETRY, 30, "429 slow down"),
            (500, None, b"  boom\n\ttoo ", RETRY, 0, "500 boom too"),
            (503, "x", b"", RETRY, 0, "503"),
            (400, "30", b'{"error":"bad"}', FAILED, 0, '400 {"error":"bad"}'),
            (404, None, b"", FAILED, 0, "404"),
            (302, None, b"moved", FAILED, 0, "302 moved"),
        ]
        for status, after, body, want, want_after, want_reason in cases:
            with self.subTest(status=status):
                self.assertEqual(forwarder.outcome(status, after, body, NOW), (want, want_after, want_reason))

    def test_snippet_is_one_short_printable_line(self):
        body = b"\x00\x1b[31mred\xff\xfe\n" + "é".encode() * 500
        s = forwarder.snippet(body)
        self.assertTrue(s.isprintable())
        self.assertLessEqual(len(s), forwarder.SNIPPET_BYTES)
        self.assertTrue(s.startswith("[31mred"))

    def test_header_safe(self):
        self.assertTrue(forwarder.header_safe("06j0000000000000000000001"))
        self.assertTrue(forwarder.header_safe(""))
        for bad in ["a\r\nX: 1", "a\nb", "é", "\x00", "a\x7f"]:
            self.assertFalse(forwarder.header_safe(bad), bad)

    def test_loopback(self):
        for host, want in [("localhost", True), ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True),
                           ("hooks.example.com", False), ("10.0.0.1", False), ("", False)]:
            self.assertEqual(forwarder.loopback(host), want, host)

    def test_redact(self):
        self.assertEqual(forwarder.redact("401 Bearer s3cret", "s3cret"), "401 Bearer [redacted]")
        self.assertEqual(forwarder.redact("401", ""), "401")


class ParseConfig(unittest.TestCase):
    def test_accepted(self):
        c = forwarder.parse_config(b'{"url":"https://h.example:8443/a?b=c","token":"t","timeout":"1m"}')
        self.assertEqual((c.url.hostname, c.url.port, c.url.path, c.url.query, c.token, c.timeout),
                         ("h.example", 8443, "/a", "b=c", "t", 60))
        self.assertEqual(forwarder.parse_config(b'{"url":"http://h.example"}').timeout, 10)
        self.assertNotIn("secret-token", repr(forwarder.parse_config(b'{"url":"http://h","token":"secret-token"}')))

    def test_rejected(self):
        cases = {
            b"": "config.url", b"{}": "config.url", b"null": "JSON object", b"[1]": "JSON object",
            b"{": "not JSON", b'{"url":"file:///etc/passwd"}': "config.url",
            b'{"url":"http://h/","extra":1}': "unknown field 'extra'",
            b'{"url":"http://h:0x/"}': "config.url", b'{"url":"http://a:b@h/"}': "credentials",
            b'{"url":"http://h/\\n"}': "config.url", b'{"url":"http://h/","token":["t"]}': "config.token",
            b'{"url":"http://h/","token":"t\\u0000"}': "config.token",
            b'{"url":"http://h/","timeout":"-1s"}': "config.timeout",
            b'{"url":"http://h/","timeout":"5m1s"}': "config.timeout",
            b'{"url":"http://h/","timeout":null}': "config.timeout",
        }
        for raw, want in cases.items():
            with self.subTest(raw=raw):
                with self.assertRaises(ConfigError) as e:
                    forwarder.parse_config(raw)
                self.assertIn(want, str(e.exception))


class Statuses(unittest.TestCase):
    def test_match_the_protocol(self):
        from clickgate_forwarder_v1 import forwarder_pb2 as pb

        self.assertEqual((DELIVERED, RETRY, FAILED), (pb.Result.DELIVERED, pb.Result.RETRY, pb.Result.FAILED))


class Describe(unittest.TestCase):
    def test_go_shape(self):
        d = json.loads(forwarder.describe())
        self.assertEqual(list(d), ["name", "version", "protocol_version", "description", "config"])
        self.assertEqual([f["name"] for f in d["config"]], ["url", "token", "timeout"])
        self.assertNotIn("<", forwarder.describe())  # escaped as Go does: \u003c


class Protocol(unittest.TestCase):
    def test_negotiate(self):
        for ours, offered, want in [((1,), "1", 1), ((1, 2), "2,1", 2), ((1, 2), "1", 1), ((1, 2), "3,2", 2),
                                    ((1,), "", 1), ((1,), "2,3", 1), ((2, 3), "x, 3 ,", 3), ((1,), "١", 1)]:
            with self.subTest(ours=ours, offered=offered):
                self.assertEqual(goplugin.negotiate(ours, offered), want)

    def test_server_certificate(self):
        key_pem, cert_pem, field = goplugin.server_certificate()
        self.assertNotIn("=", field)
        self.assertNotIn("\n", field)
        der = base64.b64decode(field + "=" * (-len(field) % 4))
        cert = x509.load_der_x509_certificate(der)
        self.assertEqual(cert, x509.load_pem_x509_certificate(cert_pem))
        self.assertIsInstance(cert.public_key().curve, ec.SECP256R1)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertIn(b"PRIVATE KEY", key_pem)

    def test_log_lines_are_hclog_json(self):
        class Out:
            text = ""

            def write(self, s):
                Out.text += s

            def flush(self):
                pass

        goplugin.Logger("t", Out()).warn("hello", n=1, **{"@level": "spoofed"})
        rec = json.loads(Out.text)
        self.assertEqual((rec["@level"], rec["@message"], rec["@module"], rec["n"]), ("warn", "hello", "t", 1))
        datetime.datetime.strptime(rec["@timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")


if __name__ == "__main__":
    unittest.main()
