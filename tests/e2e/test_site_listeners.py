"""Sites bound to listeners ("sites[i].listeners"): a listener that sites are
bound to serves only those (any Host, its own default, its own access rules),
the other listeners never reach them, and -t refuses a site bound to a
listener that does not exist or to a TCP relay, naming the JSON path."""

import json

from configs import config
from harness import request, run_binary


def two_listener_config(web, ui):
    cfg = config({"web": web, "ui": ui}, [
        {"name": "main", "hosts": ["site.test"], "default": True,
         "routes": [{"upstream": "web"}]},
        {"name": "ui", "listeners": ["ui"], "access": {"allow": ["127.0.0.1/32"]},
         "routes": [{"upstream": "ui"}]},
        {"name": "ui-named", "hosts": ["site.test"], "listeners": ["ui"],
         "routes": [{"respond": {"status": 200, "body": "named ui site\n"}}]},
    ])
    cfg["listeners"].append({"name": "ui", "address": "127.0.0.1:0"})
    return cfg


def test_listener_serves_only_its_sites(lab):
    web, ui = lab.upstream("web"), lab.upstream("ui")
    p = lab.proxy(two_listener_config(web, ui))
    http, uip = p.ports["http"], p.ports["ui"]

    # The first listener: the unbound sites, as always.
    assert request(http, "GET", "/a", host="site.test").status == 200
    assert request(http, "GET", "/b", host="other.test").status == 200
    assert [r.path for r in web.snapshot()] == ["/a", "/b"]
    assert ui.snapshot() == []

    # The bound listener: its hostless site for any host, its named site by Host.
    assert request(uip, "GET", "/ui", host="temporal.test").status == 200
    assert request(uip, "GET", "/ui2", host="10.1.1.5:8081").status == 200
    r = request(uip, "GET", "/x", host="site.test")
    assert r.status == 200 and r.body == b"named ui site\n"
    assert [r.path for r in ui.snapshot()] == ["/ui", "/ui2"]
    assert len(web.snapshot()) == 2

    # Its site's access rules: a 403 page, not a closed connection.
    r = request(uip, "GET", "/ui", host="temporal.test", source="127.0.0.2")
    assert r.status == 403
    assert len(ui.snapshot()) == 2
    assert "access refused for 127.0.0.2" in p.stderr()


def check(tmp_path, cfg):
    path = tmp_path / "bound.json"
    path.write_text(json.dumps(cfg))
    return run_binary(["-t", "-c", str(path)])


def test_check_refuses_unknown_and_tcp_listeners(tmp_path):
    cfg = two_listener_config("127.0.0.1:1", "127.0.0.1:2")
    res = check(tmp_path, cfg)
    assert res.returncode == 0, res.stderr

    cfg["sites"][1]["listeners"] = ["temporal"]
    res = check(tmp_path, cfg)
    assert res.returncode == 1
    assert ('sites[1].listeners[0]: no listener named "temporal"; HTTP listeners: "http", "ui"'
            in res.stderr), res.stderr

    cfg["listeners"].append({"name": "grpc", "address": "127.0.0.1:0", "type": "tcp",
                             "upstream": "127.0.0.1:3"})
    cfg["sites"][1]["listeners"] = ["ui", "grpc"]
    res = check(tmp_path, cfg)
    assert res.returncode == 1
    assert ('sites[1].listeners[1]: listener "grpc" (listeners[2]) is a TCP relay'
            in res.stderr), res.stderr
    assert 'remove "type": "tcp" from that listener' in res.stderr
