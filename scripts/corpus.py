#!/usr/bin/env python3
"""Replay Gunicorn's request corpus (tests/requests/valid and invalid) against pyfork.

    python scripts/corpus.py /work/.mirror/benoitc+gunicorn/repo      # a bare mirror (git dir)
    python scripts/corpus.py ~/src/gunicorn -v                          # or a checkout

The corpus is read from the Gunicorn repository named on the command line and never
copied here. Each .http file is decoded as Gunicorn's tests/treq.py does (one line per
file line, `\\r\\n`, `\\t`, `\\0`, `\\xHH` escapes) and sent over one connection to a
running pyfork serving scripts/echo.py; the write side is then half-closed.

The .py beside it says what Gunicorn expects: an exception name (invalid/) or the
requests its parser must read (valid/). Settings it makes with cfg.set() that pyfork has
too (request line and field limits, forwarded_allow_ips) start a pyfork with the same
flag; settings pyfork lacks (proxy_protocol, permit_obsolete_folding, ...)
are named in the result, and the case runs against pyfork's defaults.

Counted:
  invalid  refused when no response is 2xx (an error status, or the connection closed);
  valid    accepted when each expected request got a 2xx answer; the echo app's reading
           (method, target, body, header fields) is compared with Gunicorn's expectation
           and differences are listed. Refusals are grouped by reason: a transfer coding
           other than chunked answered 501, HTTP/1.1 without Host (RFC 9112 3.2 MUST; counted
           so only when the same request with a Host line is accepted), a Gunicorn option
           pyfork does not have, the stale cases 009 and 027, and a file whose body is
           shorter than its Content-Length (over a socket that request never completes).
--add-host inserts `Host: corpus` into HTTP/1.1 requests without one, to show what
pyfork would do with the rest of each such request.
"""
import argparse
import os
import re
import subprocess
import sys

import peers

FLAGS = {"limit_request_line": "--limit-request-line", "limit_request_fields": "--limit-request-fields",
         "limit_request_field_size": "--limit-request-field-size",
         "forwarded_allow_ips": "--forwarded-allow-ips", "header_map": "--header-map"}
REFUSED_VALUES = {"header_map": ("dangerous",)}     # pyfork refuses these values at start
STALE = {"valid/009", "valid/027"}     # issue 10: Gunicorn itself refuses these now
KNOWN = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}


class Source:
    """Files under tests/requests, from a checkout or a git directory (HEAD)."""

    def __init__(self, path):
        self.path = path
        self.checkout = os.path.isdir(os.path.join(path, "tests", "requests"))

    def names(self, kind):
        if self.checkout:
            return sorted(os.listdir(os.path.join(self.path, "tests", "requests", kind)))
        out = subprocess.run(["git", "--git-dir", self.path, "ls-tree", "--name-only", "HEAD:tests/requests/" + kind],
                             capture_output=True, check=True)
        return sorted(out.stdout.decode().split())

    def read(self, kind, name):
        if self.checkout:
            with open(os.path.join(self.path, "tests", "requests", kind, name), "rb") as f:
                return f.read()
        return subprocess.run(["git", "--git-dir", self.path, "show", "HEAD:tests/requests/%s/%s" % (kind, name)],
                              capture_output=True, check=True).stdout


def decode(raw):
    """A .http file -> the bytes it stands for (tests/treq.py's rules)."""
    data = raw.replace(b"\n", b"").replace(b"\\r\\n", b"\r\n")
    data = data.replace(b"\\0", b"\0").replace(b"\\n", b"\n").replace(b"\\t", b"\t")
    return re.sub(rb"\\x([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)


class _Config:
    def __init__(self):
        self.settings = {}

    def set(self, name, value):
        self.settings[name] = value


class _Names(dict):
    """Locals for exec: any unknown name (an exception class) reads as its own name."""

    def __missing__(self, key):
        return key


def expectation(text):
    """The .py -> (expected: exception name or list of request dicts, cfg settings)."""
    source = "\n".join(line for line in text.splitlines() if not line.startswith(("from ", "import ")))
    names = _Names(cfg=_Config(), Config=_Config, uri=lambda raw: {"raw": raw})
    exec(compile(source, "<corpus>", "exec"), {"__builtins__": __builtins__}, names)
    expect = names["request"]
    if isinstance(expect, dict):
        expect = [expect]     # valid/: the requests; invalid/: the exception's name
    return expect, names["cfg"].settings


def load(source, add_host=False):
    cases = []
    for kind in ("valid", "invalid"):
        for name in source.names(kind):
            if not name.endswith(".http"):
                continue
            stem = name[:-5]
            data = decode(source.read(kind, name))
            if add_host:
                data = with_host(data)
            expect, settings = expectation(source.read(kind, stem + ".py").decode())
            cases.append({"id": "%s/%s" % (kind, stem), "kind": kind, "data": data,
                          "expect": expect, "settings": settings})
    return cases


_LINE = re.compile(rb"(?:^|(?<=\n))[!-~]+ [^ \r\n]+ HTTP/1\.1\r\n")


def with_host(data):
    """Each HTTP/1.1 request head in `data` that has no Host gets `Host: corpus`."""
    out, pos = [], 0
    for m in _LINE.finditer(data):
        head = data[m.end():data.find(b"\r\n\r\n", m.end() - 2) + 2]
        if not re.search(rb"(?im)^host:", head):
            out += [data[pos:m.end()], b"Host: corpus\r\n"]
            pos = m.end()
    return b"".join(out) + data[pos:]


def flags_for(settings):
    """cfg.set() calls -> (pyfork flags, names of settings pyfork lacks)."""
    flags, lacking = [], []
    for name, value in sorted(settings.items()):
        if name in FLAGS and str(value) not in REFUSED_VALUES.get(name, ()):
            flags += [FLAGS[name], str(value)]
        else:
            lacking.append("%s=%s" % (name, value))
    return tuple(flags), lacking


def env_key(name):
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def differences(expect, seen):
    """What the app read that differs from Gunicorn's expectation of its parser."""
    diffs = []
    if seen is None:
        return ["no echo reading"]
    if seen["method"] != expect["method"]:
        diffs.append("method %r != %r" % (seen["method"], expect["method"]))
    if seen["uri"] != expect["uri"]["raw"]:
        diffs.append("target %r != %r" % (seen["uri"], expect["uri"]["raw"]))
    body = expect.get("body", b"")
    body = body.decode("latin-1") if isinstance(body, bytes) else body
    if seen["body"] != body:
        diffs.append("body %r != %r" % (seen["body"][:60], body[:60]))
    want = {}
    for name, value in expect.get("headers", []):
        if "_" in name:
            continue          # dropped by default, as Gunicorn does (header_map=drop)
        key = env_key(name)
        want[key] = want[key] + "," + value if key in want else value
    for key, value in want.items():
        if seen["headers"].get(key) != value:
            diffs.append("%s %r != %r" % (key, seen["headers"].get(key), value))
    return diffs


def refusal_reason(case, statuses, lacking):
    """Why a valid case was refused, when the reason is an allowed one; else ''. A request
    without the Host that HTTP/1.1 requires is judged by what the same request with one got."""
    data = case["data"]
    head = data.partition(b"\r\n\r\n")[0].lower()
    if case["id"] in STALE:
        return "stale in the corpus (Gunicorn refuses it too)"
    if lacking:
        return "needs a Gunicorn option pyfork lacks: " + ", ".join(lacking)
    hosted = case.get("with_host")
    if hosted is not None and all(200 <= s < 300 for s in hosted):
        return "HTTP/1.1 without Host: %s, and 2xx with one (RFC 9112 3.2 MUST)" % statuses
    why = "no Host (RFC 9112 3.2 MUST: 400), and with one: " if hosted is not None else ""
    got = hosted if hosted is not None else statuses
    te = re.findall(rb"(?m)^transfer-encoding:[ \t]*([^\r]*)", head)
    if 501 in got and te and any(v.strip() != b"chunked" for v in te):
        return why + "a transfer coding other than chunked: 501"
    if 501 in got and case["expect"][0]["method"] not in KNOWN:
        return why + "a method llhttp does not know: 501 (RFC 9110 9.1; llhttp cannot pass it on)"
    length = re.search(rb"(?m)^content-length:[ \t]*([0-9]+)", head)
    short = int(length.group(1)) - len(data.partition(b"\r\n\r\n")[2]) if length else 0
    if short > 0 and not statuses:
        return ("the file's body is %d bytes short of its Content-Length: an incomplete request "
                "never reaches the app" % short)
    return ""


def run(cases, python):
    groups = {}
    for case in cases:
        case["flags"], case["lacking"] = flags_for(case["settings"])
        groups.setdefault(case["flags"], []).append(case)
    for flags, group in groups.items():
        server = peers.Peer("pyfork", flags, python=python)
        try:
            for case in group:
                got = peers.exchange(server.port, case["data"])
                case["statuses"] = got.statuses()
                case["seen"] = [r.seen() for r in got.responses]
                if case["kind"] == "valid" and with_host(case["data"]) != case["data"]:
                    case["with_host"] = peers.exchange(server.port, with_host(case["data"])).statuses()
                if not server.alive():
                    raise RuntimeError("pyfork died on %s" % case["id"])
        finally:
            server.stop()
    return cases


def verdicts(cases):
    table = {"invalid refused": [], "invalid ANSWERED 2xx": [],
             "invalid answered 2xx: Gunicorn refuses it only with an option pyfork lacks": [],
             "valid accepted": [],
             "valid accepted, reading differs": [], "valid refused (allowed)": [], "valid REFUSED": []}
    for case in cases:
        st = case["statuses"]
        two = [s for s in st if 200 <= s < 300]
        if case["kind"] == "invalid":
            key = "invalid refused"
            if two:
                key = "invalid ANSWERED 2xx"
                if case["lacking"]:
                    key = "invalid answered 2xx: Gunicorn refuses it only with an option pyfork lacks"
            table[key].append((case, "%s (Gunicorn: %s) %s" % (st or "closed", case["expect"],
                                                               ", ".join(case["lacking"]))))
            continue
        n = len(case["expect"])
        if len(two) >= n and all(200 <= s < 300 for s in st[:n]):
            diffs = [d for exp, seen in zip(case["expect"], case["seen"]) for d in differences(exp, seen)]
            key = "valid accepted, reading differs" if diffs else "valid accepted"
            table[key].append((case, "; ".join(diffs)))
            continue
        why = refusal_reason(case, st, case["lacking"])
        table["valid refused (allowed)" if why else "valid REFUSED"].append((case, "%s %s" % (st or "closed", why)))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gunicorn", help="Gunicorn's repository: a checkout, or a git directory (its HEAD is read)")
    parser.add_argument("--python", default=sys.executable, help="interpreter pyfork runs with")
    parser.add_argument("--add-host", action="store_true", help="add Host to HTTP/1.1 requests without one")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every case, not only the notable ones")
    args = parser.parse_args(argv)
    cases = run(load(Source(args.gunicorn), args.add_host), args.python)
    table = verdicts(cases)
    quiet = ("invalid refused", "valid accepted")
    for key, rows in table.items():
        if rows and (args.verbose or key not in quiet):
            print("\n## %s (%d)" % (key, len(rows)))
            for case, note in rows:
                print("  %-48s %s" % (case["id"], note))
    invalid = sum(1 for c in cases if c["kind"] == "invalid")
    valid = len(cases) - invalid
    print("\ninvalid refused: %d/%d (%d more answered, refused by Gunicorn only with an option pyfork lacks)"
          "   valid accepted: %d/%d (%d with a different reading)   "
          "valid refused for an allowed reason: %d   valid refused otherwise: %d"
          % (len(table["invalid refused"]), invalid,
             len(table["invalid answered 2xx: Gunicorn refuses it only with an option pyfork lacks"]),
             len(table["valid accepted"]) + len(table["valid accepted, reading differs"]), valid,
             len(table["valid accepted, reading differs"]), len(table["valid refused (allowed)"]),
             len(table["valid REFUSED"])))
    return 1 if table["invalid ANSWERED 2xx"] or table["valid REFUSED"] else 0


if __name__ == "__main__":
    sys.exit(main())
