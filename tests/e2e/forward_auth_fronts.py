"""Real proxies in front of Portcullis' verify endpoint (docs/forward-auth.md),
for tests/e2e/test_forward_auth.py and bench/forward_auth.sh: Debian's nginx
(auth_request) and Caddy (forward_auth), each serving HTTPS on loopback with a
self-signed certificate for "localhost", sending /saml/ to Portcullis and
everything else, once the verify endpoint said yes, to the upstream with the
identity headers it answered.  Stopped by PID."""

import os
import socket
import subprocess
import time

IDENTITY = ("X-Auth-User", "X-Auth-Email", "X-Portcullis-Assertion")

NGINX_CONF = """\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
	access_log {d}/access.log;
	client_body_temp_path {d}/tmp/body;
	proxy_temp_path {d}/tmp/proxy;
	fastcgi_temp_path {d}/tmp/fastcgi;
	uwsgi_temp_path {d}/tmp/uwsgi;
	scgi_temp_path {d}/tmp/scgi;
	upstream portcullis {{ server 127.0.0.1:{portcullis}; keepalive 32; }}
	upstream app {{ server {upstream}; keepalive 32; }}
	server {{
		listen 127.0.0.1:{port} ssl;
		server_name localhost;
		ssl_certificate {d}/cert.pem;
		ssl_certificate_key {d}/key.pem;

		# the subrequest: the original URL and the cookies, no body
		location = /_portcullis/verify {{
			internal;
			proxy_pass http://portcullis;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_pass_request_body off;
			proxy_set_header Content-Length "";
			proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
			proxy_set_header X-Original-Method $request_method;
			proxy_set_header X-Forwarded-For $remote_addr;
		}}
		# the SP endpoints (login, ACS, logout, metadata) on this host
		location /saml/ {{
			proxy_pass http://portcullis;
			proxy_set_header Host $http_host;
			proxy_set_header X-Forwarded-For $remote_addr;
			proxy_set_header X-Forwarded-Proto $scheme;
		}}
		location @portcullis_login {{ return 302 $portcullis_login; }}
		location / {{
			auth_request /_portcullis/verify;
			auth_request_set $portcullis_login $upstream_http_x_portcullis_login;
			auth_request_set $auth_user $upstream_http_x_auth_user;
			auth_request_set $auth_email $upstream_http_x_auth_email;
			auth_request_set $auth_assertion $upstream_http_x_portcullis_assertion;
			auth_request_set $auth_cookie $upstream_http_set_cookie;
			add_header Set-Cookie $auth_cookie;
			error_page 401 = @portcullis_login;
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header X-Auth-User $auth_user;
			proxy_set_header X-Auth-Email $auth_email;
			proxy_set_header X-Portcullis-Assertion $auth_assertion;
		}}
	}}
}}
"""

CADDYFILE = """\
{{
	admin off
	auto_https disable_redirects
	skip_install_trust
	storage file_system {d}/data
}}
https://localhost:{port} {{
	tls {d}/cert.pem {d}/key.pem
	bind 127.0.0.1
	handle /saml/* {{
		reverse_proxy 127.0.0.1:{portcullis}
	}}
	handle {{
		forward_auth 127.0.0.1:{portcullis} {{
			uri /_portcullis/verify?mode=redirect
			copy_headers X-Auth-User X-Auth-Email X-Portcullis-Assertion
		}}
		reverse_proxy {upstream}
	}}
}}
"""


def self_signed(d):
    """A key and a self-signed certificate for localhost in <d>."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout",
                    os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem")],
                   check=True, capture_output=True, timeout=30)


class Front:
    """nginx or Caddy (kind) on 127.0.0.1:<port> in front of Portcullis on
    <portcullis> and the upstream at <upstream> ("host:port")."""

    def __init__(self, kind, workdir, port, portcullis, upstream):
        self.kind, self.port = kind, port
        self.dir = os.path.join(workdir, kind)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self_signed(self.dir)
        values = {"d": self.dir, "port": port, "portcullis": portcullis, "upstream": upstream}
        self.log = open(os.path.join(self.dir, "stderr.log"), "wb")
        env = dict(os.environ, HOME=self.dir, XDG_DATA_HOME=os.path.join(self.dir, "data"),
                   XDG_CONFIG_HOME=os.path.join(self.dir, "config"))
        if kind == "nginx":
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(**values))
            cmd = ["nginx", "-p", self.dir, "-e", os.path.join(self.dir, "error.log"), "-c",
                   conf, "-g", "daemon off;"]
        else:
            conf = os.path.join(self.dir, "Caddyfile")
            with open(conf, "w") as f:
                f.write(CADDYFILE.format(**values))
            cmd = ["caddy", "run", "--adapter", "caddyfile", "--config", conf]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=env, cwd=self.dir)
        self._wait_listening()

    def _wait_listening(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("%s exited (%s): %s" % (self.kind, self.proc.returncode,
                                                              self.stderr()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("%s did not listen on %d: %s" % (self.kind, self.port, self.stderr()))

    def stderr(self):
        parts = []
        for name in ("stderr.log", "error.log"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    parts.append(f.read()[-4000:])
        return "\n".join(parts)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
