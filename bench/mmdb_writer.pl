#!/usr/bin/perl
# Write a small MaxMind DB (country + ASN) for bench/access.sh, the same way as
# tests/e2e/test_access_http.py (libmaxmind-db-writer-perl).
#   perl bench/mmdb_writer.pl OUT.mmdb NETWORK CC ASN [NETWORK CC ASN ...]
use strict; use warnings;
use MaxMind::DB::Writer::Tree;
my ($out, @pairs) = @ARGV;
die "usage: $0 OUT.mmdb NETWORK CC ASN ...\n" unless defined $out && @pairs && @pairs % 3 == 0;
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version => 6, record_size => 24, database_type => 'Portcullis-Bench-Country',
    languages => ['en'], description => { en => 'portcullis benchmark' },
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
$tree->write_tree($fh); close $fh or die "$out.tmp: $!";
rename "$out.tmp", $out or die "rename $out.tmp: $!";
