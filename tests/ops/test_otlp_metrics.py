"""The clock process exports the metrics over OTLP/HTTP to a collector (here a minimal receiver)."""
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from tests.conftest import ARTIFACTS, ROOT
from tests.helpers import wait_for


class Receiver(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        Receiver.bodies.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_clock_exports_metrics_over_otlp(app, worker):
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
           "OTEL_METRIC_EXPORT_INTERVAL": "500", "LONGRUN_SWEEP_SECONDS": "3600"}
    log = open(ARTIFACTS / "clock-otlp.log", "w")
    clock = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi:app", "clock"], cwd=ROOT, env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        path, body = wait_for(lambda: next((b for b in Receiver.bodies if b[0] == "/v1/metrics"), None), timeout=30,
                              what="an OTLP metrics export")
        # Gauges always have samples (counters only once jobs finished): the same names as /metrics.
        assert b"longrun_jobs_in_progress" in body or b"longrun_jobs" in body
        assert b"longrun_queue_length" in body and b"longrun_notification_sockets" in body
    finally:
        clock.terminate()
        clock.wait(10)
        log.close()
        server.shutdown()
