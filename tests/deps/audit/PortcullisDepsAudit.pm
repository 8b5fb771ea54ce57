# Records, for tests/deps/check_deps.py, the modules that the repository's own
# Perl code (files in it, or `perl -e` run by its tests) loads: PERL5OPT loads
# this module into every perl the suite starts (tests/deps/README.md).
# Inactive unless PORTCULLIS_DEPS_LOG is set.
package PortcullisDepsAudit;
use strict;
use warnings;

my $log    = $ENV{PORTCULLIS_DEPS_LOG};
my $source = $ENV{PORTCULLIS_SOURCE_DIR};
my %direct;    # "Foo/Bar.pm" => 1, required by our code

sub ours {
	my ($file) = @_;
	return 0 unless defined $file;
	return 1 if $file eq '-e' || $file eq '-E';
	return 0 if $file =~ m{node_modules};
	return index($file, "$source/") == 0;
}

if ($log && $source) {
	unshift @INC, sub {
		my (undef, $file) = @_;
		for (my $i = 0; my @c = caller($i); $i++) {
			next if $c[1] eq __FILE__;
			$direct{$file} = 1 if ours($c[1]);
			last;
		}
		return;    # not found here: perl searches the rest of @INC
	};
}

sub json_str {
	my ($s) = @_;
	$s =~ s/(["\\])/\\$1/g;
	$s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord $1)/ge;
	return "\"$s\"";
}

END {
	return unless $log && $source;
	my $for = $ENV{PORTCULLIS_DEPS_FOR} || 'test';
	my $by  = $ENV{PYTEST_CURRENT_TEST} || $0;
	open(my $fh, '>>', $log) or return;
	for my $file (sort keys %direct) {
		my $path = $INC{$file};
		next unless defined $path && !ref $path;
		next if index($path, "$source/") == 0;
		(my $name = $file) =~ s{/}{::}g;
		$name =~ s/\.pm$//;
		print $fh '{"kind": "perl", "name": ', json_str($name), ', "path": ', json_str($path),
		  ', "for": ', json_str($for), ', "by": ', json_str($by), "}\n";
	}
	close $fh;
}

1;
