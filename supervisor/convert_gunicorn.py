"""Converters for the settings pyfork took over from Gunicorn's list for its drop-in
(the trusted proxy's headers, the PROXY protocol, statsd, logging, syslog, TLS):
a raw value -> the typed one, or a ConfigError naming the setting. Pure: no I/O; the ssl
module's numbers are written out, so that reading a setting does not import ssl."""
import re

from .convert import ConfigError


def _scheme_headers(value, name):
    """Gunicorn's secure_scheme_headers: {header name: the value meaning https} (a dict in the
    config file; on a flag or in the environment NAME=VALUE,NAME=VALUE) -> ((environ key,
    value), ...). Names in any case; a name with '_' never reaches pyfork (header_map)."""
    if isinstance(value, str):
        pairs = [p.partition("=")[::2] for p in value.split(",") if p.strip()]
        if any(not k.strip() or not v.strip() for k, v in pairs):
            raise ConfigError("%s: %r: write NAME=VALUE,NAME=VALUE, like X-Forwarded-Proto=https" % (name, value))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise ConfigError("%s: %r is not a mapping of header names to values" % (name, value))
    out = []
    for key, secure in pairs:
        key = str(key).strip()
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^`|~-]+", key):
            raise ConfigError("%s: %r is not a header name this server passes on (letters, digits, '-')" % (name, key))
        out.append(("HTTP_" + key.upper().replace("-", "_"), str(secure).strip()))
    return tuple(out)


def _names(value, name):
    """Gunicorn's forwarder_headers: header names, comma separated (or a list) -> upper-case tuple."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(i).strip().upper() for i in items if str(i).strip())


_PROXY_PROTOCOL = {"off": "off", "false": "off", "0": "off", "none": "off", "": "off",
                   "auto": "auto", "true": "auto", "1": "auto", "v1": "v1", "v2": "v2"}


def _proxy_protocol(value, name):
    """Gunicorn's proxy_protocol: off, v1, v2 or auto; True and False (older config files) are auto and off."""
    if isinstance(value, bool):
        return "auto" if value else "off"
    text = str(value).strip().lower()
    if text not in _PROXY_PROTOCOL:
        raise ConfigError("%s: %r is not one of off, v1, v2, auto" % (name, value))
    return _PROXY_PROTOCOL[text]


def _statsd_host(value, name):
    """Gunicorn's --statsd-host: HOST[:PORT] (port 8125), [IPv6]:PORT, unix:PATH or unix://PATH
    -> ("unix", path) or (host, port); '' or None: no statsd."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.startswith("unix:"):
        path = re.sub(r"^unix:(//)?", "", text)
        if not path:
            raise ConfigError("%s: %r: give a path after unix:" % (name, value))
        return ("unix", path)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "8125"
    else:
        host, _, port = text.partition(":")
        port = port or "8125"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("%s: %r is not HOST:PORT or unix:PATH" % (name, value))
    return (host.lower(), int(port))


def _log_dict(value, name):
    """Gunicorn's logconfig_dict: a dict in the config file, JSON text on a flag; {} is none."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        import json       # value-level: parsing only
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError("%s: not JSON: %s" % (name, exc)) from None
    if not isinstance(value, dict):
        raise ConfigError("%s: %r is not a logging.config.dictConfig dictionary" % (name, value))
    return value


# the ssl module's numbers, so that reading a setting does not import ssl (memory in every process)
_SSL_VERSIONS = {"tls": 2, "sslv23": 2, "tls_server": 17, "tlsv1": 3, "tlsv1_1": 4, "tlsv1_2": 5}
_CERT_REQS = {"cert_none": 0, "none": 0, "cert_optional": 1, "optional": 1, "cert_required": 2, "required": 2}


def _ssl_version(value, name):
    """Gunicorn's --ssl-version: a number (ssl.PROTOCOL_*) or its name: TLS_SERVER, TLS, TLSv1_2, ..."""
    text = str(value).strip().lower()
    text = text[len("protocol_"):] if text.startswith("protocol_") else text
    if text.isdigit() and int(text) in _SSL_VERSIONS.values():
        return int(text)
    if text not in _SSL_VERSIONS:
        raise ConfigError("%s: %r is not an ssl protocol: TLS_SERVER (the default), TLS, TLSv1_2" % (name, value))
    return _SSL_VERSIONS[text]


def _cert_reqs(value, name):
    """Gunicorn's --cert-reqs: 0 (none), 1 (optional), 2 (required), or ssl's names."""
    text = str(value).strip().lower()
    if text in ("0", "1", "2"):
        return int(text)
    if text not in _CERT_REQS:
        raise ConfigError("%s: %r is not 0 (none), 1 (optional) or 2 (required)" % (name, value))
    return _CERT_REQS[text]


def _syslog_addr(value, name):
    """Gunicorn's --log-syslog-to: unix://PATH[#dgram|#stream], udp://HOST:PORT or tcp://HOST:PORT
    (port 514 by default) -> ("unix" | "udp" | "tcp", path or (host, port), "dgram" | "stream" | "")."""
    text = str(value).strip()
    if text.startswith("unix://"):
        path, _, kind = text[len("unix://"):].partition("#")
        if not path or kind not in ("", "dgram", "stream"):
            raise ConfigError("%s: %r: write unix://PATH, unix://PATH#dgram or unix://PATH#stream" % (name, value))
        return ("unix", path, kind)
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("udp", "tcp"):
        raise ConfigError("%s: %r: write udp://HOST:PORT, tcp://HOST:PORT or unix://PATH" % (name, value))
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = rest.partition(":")
    port = port or "514"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("%s: %r: %r is not a port" % (name, value, port))
    return (scheme, (host.lower() or "localhost", int(port)), "")


SYSLOG_FACILITIES = ("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "security",
                     "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5",
                     "local6", "local7")
