"""The one helper the benchmark scripts share for picking where a server listens."""
import socket


def free_port(host="127.0.0.1"):
    """A port nothing listens on right now (the kernel's pick), for a server to bind."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
