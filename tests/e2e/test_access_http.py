"""Access rules on the HTTP path: CIDR allow/deny on listeners, sites and
routes (127.0.0.x source addresses), no path encoding reaching a restricted
route from a refused address, X-Forwarded-For from trusted and untrusted
peers, rate limits (429 + Retry-After, then recovery), GeoIP country rules
and headers against an mmdb built here (and re-opened when it changes), and
the refusal metrics.

The address rules, the path tricks and the rate limit run over HTTP/1.1 and
HTTP/2 (the `client` fixture; h2c on the same listener)."""

import os
import subprocess
import time


from clients import Http1, refused
from configs import config
from harness import WAIT, need, request, wait_until

HOST = "site.test"


def site(routes, access=None):
    s = {"name": "main", "hosts": [HOST], "default": True, "routes": routes}
    if access:
        s["access"] = access
    return s


def get(port, path, source=None, headers=(), client=Http1()):
    return client.request(port, "GET", path, host=HOST, headers=headers, source=source,
                          allow_reset=True)


def test_site_and_route_rules(lab, client):
    web = lab.upstream("web")
    cfg = config({"web": web}, [site([
        {"name": "private", "match": {"path": ["/private"]}, "upstream": "web",
         "access": {"allow": ["127.0.0.1/32"]}},
        {"name": "open", "upstream": "web"},
    ], access={"deny": ["127.0.0.9/32"]})])
    p = lab.proxy(client.listener(cfg))
    assert get(p.port, "/private/x", client=client).status == 200
    r = get(p.port, "/private/x", source="127.0.0.2", client=client)
    assert r.status == 403
    assert b"127.0.0" not in r.body and b"sites[" not in r.body  # names nothing secret
    assert get(p.port, "/elsewhere", source="127.0.0.2", client=client).status == 200
    # the site's deny
    assert get(p.port, "/elsewhere", source="127.0.0.9", client=client).status == 403
    err = p.stderr()
    assert ("access refused for 127.0.0.2: address "
            "(sites[0].routes[0].access.allow: no entry matched)") in err
    assert "access refused for 127.0.0.9: address (sites[0].access.deny[0] 127.0.0.9/32)" in err


def test_no_path_encoding_reaches_a_restricted_route(lab, client):
    web = lab.upstream("web")
    cfg = config({"web": web}, [site([
        {"name": "admin", "match": {"path": ["/admin"]}, "upstream": "web",
         "access": {"allow": ["127.0.0.1/32"]}},
        {"name": "open", "upstream": "web"},
    ])])
    p = lab.proxy(client.listener(cfg))
    tricks = ["/admin", "/ADMIN", "/Admin/", "/%61dmin", "/%41DMIN/x", "//admin", "/./admin",
              "/x/../admin", "/x/%2e%2e/admin", "/admin;x", "/admin%2f", "/%2fadmin",
              "/x/..%2fadmin", "/admin/.", "/admin?x=1", "/admin#frag", "/.%2e/admin",
              "/admin%00", "/%2e/admin", "/admin\\x"]
    for path in tricks:
        r = get(p.port, path, source="127.0.0.2", client=client)
        assert r.status in (400, 403, 404) or refused(r), (path, r)
    time.sleep(0.1)
    for rec in web.snapshot():
        assert not rec.path.lower().lstrip("/").startswith("admin"), rec.path
    assert get(p.port, "/x/../admin", source="127.0.0.1", client=client).status == 200


def test_listener_rules(lab, client):
    web = lab.upstream("web")
    cfg = config({"web": web}, [site([{"upstream": "web"}])])
    cfg["listeners"][0]["allow"] = ["127.0.0.0/30"]
    cfg["listeners"][0]["deny"] = ["127.0.0.2/32"]
    p = lab.proxy(client.listener(cfg))
    assert get(p.port, "/", client=client).status == 200
    assert get(p.port, "/", source="127.0.0.3", client=client).status == 200
    assert get(p.port, "/", source="127.0.0.2", client=client).status == 403
    assert get(p.port, "/", source="127.0.0.5", client=client).status == 403


def test_forwarded_for_from_trusted_and_untrusted_peers(lab, client):
    web = lab.upstream("web")
    cfg = config({"web": web}, [site([{"upstream": "web"}], access={"allow": ["10.1.1.0/24"]})],
                 trusted_proxies=["127.0.0.3/32"])
    p = lab.proxy(client.listener(cfg))
    # trusted peer: the rightmost untrusted X-Forwarded-For address is the client
    r = get(p.port, "/", source="127.0.0.3", headers=[("X-Forwarded-For", "198.51.100.1, 10.1.1.5")],
            client=client)
    assert r.status == 200
    assert web.snapshot()[-1].header("X-Real-IP") == "10.1.1.5"
    r = get(p.port, "/", source="127.0.0.3", headers=[("X-Forwarded-For", "10.1.1.5, 198.51.100.1")],
            client=client)
    assert r.status == 403
    # untrusted peer: its X-Forwarded-For is ignored, the socket peer is the client
    r = get(p.port, "/", source="127.0.0.4", headers=[("X-Forwarded-For", "10.1.1.5")],
            client=client)
    assert r.status == 403
    assert "access refused for 127.0.0.4" in p.stderr()


def test_rate_limit_hit_and_recovered(lab, client):
    web = lab.upstream("web")
    cfg = config({"web": web}, [site([
        {"name": "api", "upstream": "web", "access": {"rate": {"per_second": 1, "burst": 2}}}])])
    p = lab.proxy(client.listener(cfg))
    assert get(p.port, "/a", client=client).status == 200
    assert get(p.port, "/a", client=client).status == 200
    r = get(p.port, "/a", client=client)
    assert r.status == 429
    retry = int(r.header("Retry-After"))
    assert 1 <= retry <= 2
    assert get(p.port, "/a", source="127.0.0.2", client=client).status == 200  # per client
    time.sleep(retry + 0.1)
    assert get(p.port, "/a", client=client).status == 200
    m = request(p.admin_port, "GET", "/metrics").body.decode()
    assert 'portcullis_rate_limited_requests_total{rule="sites[0].routes[0].access.rate"}' in m


MMDB_WRITER = r"""
use strict; use warnings;
use MaxMind::DB::Writer::Tree;
my ($out, @pairs) = @ARGV;
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version => 6, record_size => 24, database_type => 'Portcullis-Test-Country',
    languages => ['en'], description => { en => 'portcullis e2e' },
    remove_reserved_networks => 0, alias_ipv6_to_ipv4 => 1,
    map_key_type_callback => sub {
        { country => 'map', iso_code => 'utf8_string',
          autonomous_system_number => 'uint32' }->{ $_[0] } });
while (@pairs) {
    my ($net, $cc, $asn) = splice(@pairs, 0, 3);
    $tree->insert_network($net, { country => { iso_code => $cc },
                                  autonomous_system_number => $asn + 0 });
}
open my $fh, '>:raw', "$out.tmp" or die "$out.tmp: $!";
$tree->write_tree($fh); close $fh or die;
rename "$out.tmp", $out or die "rename: $!";
"""


def write_mmdb(path, entries):
    args = []
    for net, cc, asn in entries:
        args += [net, cc, str(asn)]
    need("MaxMind::DB::Writer::Tree", "perl")
    r = subprocess.run(["perl", "-e", MMDB_WRITER, str(path)] + args, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr.decode()


def test_geoip_countries_headers_and_reload(lab, tmp_path):
    db = tmp_path / "country.mmdb"
    write_mmdb(db, [("127.0.0.5/32", "DE", 64500), ("127.0.0.6/32", "FR", 64501)])
    web = lab.upstream("web")
    cfg = config({"web": web}, [site([
        {"name": "eu", "upstream": "web", "access": {"countries_allow": ["DE"]}}])],
        geoip={"database": str(db), "country_header": "X-Client-Country",
               "asn_header": "X-Client-ASN"})
    p = lab.proxy(cfg)
    r = get(p.port, "/", source="127.0.0.5", headers=[("X-Client-Country", "US")])
    assert r.status == 200
    rec = web.snapshot()[-1]
    assert rec.header_all("X-Client-Country") == ["DE"]  # the client's copy is dropped
    assert rec.header("X-Client-ASN") == "64500"
    assert get(p.port, "/", source="127.0.0.6").status == 403
    assert get(p.port, "/", source="127.0.0.7").status == 403  # unknown country
    assert "access refused for 127.0.0.6: country FR (sites[0].routes[0].access)" in p.stderr()

    # the file changes: re-opened without a reload
    write_mmdb(db, [("127.0.0.5/32", "DE", 64500), ("127.0.0.6/32", "DE", 64501)])
    wait_until(lambda: get(p.port, "/", source="127.0.0.6").status == 200, timeout=WAIT,
               what="the new database in use")
    # a corrupt replacement: logged, the last good one stays
    bad = tmp_path / "bad.tmp"
    bad.write_bytes(b"this is not a maxmind database" * 10)
    os.replace(bad, db)
    wait_until(lambda: "not a usable MaxMind database" in p.stderr(), what="the error logged")
    assert get(p.port, "/", source="127.0.0.6").status == 200
    assert get(p.port, "/", source="127.0.0.7").status == 403
    m = request(p.admin_port, "GET", "/metrics").body.decode()
    assert 'portcullis_access_refusals_total{rule="sites[0].routes[0].access",reason="country"}' in m


def test_geoip_missing_database_is_a_start_error(tmp_path):
    import json
    from harness import BINARY
    cfg = config({"web": "127.0.0.1:9"}, [site([{"upstream": "web"}])],
                 geoip={"database": str(tmp_path / "missing.mmdb")})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([BINARY, "-t", "-c", str(path)], capture_output=True, timeout=30)
    assert r.returncode == 1
    assert ("geoip.database: %s: cannot open the GeoIP database" % (tmp_path / "missing.mmdb")
            ) in r.stderr.decode()
