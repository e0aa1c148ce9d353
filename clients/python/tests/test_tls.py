"""TLS: the server with a certificate from a throwaway CA (openssl CLI), the
client trusting that CA through ``tls=grpc.ssl_channel_credentials(...)``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest

import posterior_client as pc
from conftest import Server


def make_certs(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=posterior-py-test-ca")
    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
    )
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=server")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")


def test_tls(tmp_path: Path, name: str) -> None:
    make_certs(tmp_path)
    srv = Server(tmp_path, "embedded", tls_cert=str(tmp_path / "server.pem"),
                 tls_key=str(tmp_path / "server.key"))
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=(tmp_path / "ca.pem").read_bytes())
        with pc.Client(srv.target, tls=creds) as c:
            e = c.create_experiment(name, ["a", "b"])
            assert not e.reward(e.choose().decision_id, 1.0).duplicate
        # The CLI's URL form: https:// with the private CA.
        with pc.Client(f"https://{srv.target}", tls=creds) as c:
            assert c.experiment(name).summary().name == name
        # Plaintext against a TLS listener is refused, and not retried forever.
        fast = pc.Retry(max_attempts=2, initial_backoff=0.01, max_backoff=0.01)
        with pc.Client(srv.target, timeout=3, retry=fast) as plain:
            with pytest.raises(pc.PosteriorError):
                plain.experiment(name).summary()
        # tls=True trusts the system roots only: the private CA is refused.
        with pc.Client(srv.target, timeout=3, tls=True, retry=fast) as system:
            with pytest.raises(pc.Unavailable):
                system.experiment(name).summary()
    finally:
        srv.stop()
