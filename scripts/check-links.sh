#!/usr/bin/env bash
# check-links.sh - every link and citation in the repository's text points inside it, at
# something that exists.
#
#   scripts/check-links.sh [SRCDIR]
#
# Reads the tracked text files (git ls-files; without git, every file except node_modules,
# build output and autotools/protoc-c output) and reports, as FILE:LINE: reason,
#   - Markdown links [text](target) whose target is outside the repository (an absolute
#     path, or ../ past the top), a missing file, or a #anchor that no heading of the
#     target produces (GitHub's heading ids);
#   - citations of a document anywhere (comments included): a path ending in .md that
#     does not name a file of the repository (a path with a / is taken from the top, or
#     from the citing file's folder; a bare name from the citing file's folder, then the
#     top), or that leaves the repository;
#   - section citations: each §N (§N.M, §N-§M) must be a numbered heading ("## N. Title",
#     "### N.M Title") of the document cited last before it: on the same line in Markdown
#     (else the page itself), in the same comment paragraph elsewhere (lines up to a blank
#     one); a quoted heading after a document (broker/ml/README.md "Durable store") must
#     be part of one of its headings;
#   - paths in Markdown code spans that start with a top-level folder (`broker/ml/ml.c`,
#     `tests/integration/`) and do not exist;
#   - any reference to the team's notes or the build machine's folders outside the
#     repository (the shared design and reference notes, absolute home paths).
# http(s) URLs are not fetched. A file with a comment line reading "check-links: ignore-file"
# (the test of this script, whose fixtures are faulty on purpose) is skipped.
# Exit status: 0 when nothing is found, 1 otherwise.
# docs/style.md §10 gives the citation forms.
set -euo pipefail
top=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$top"
if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
   [ "$(git rev-parse --show-toplevel)" = "$(pwd -P)" ]; then
  list() { git ls-files; }
else
  list() {
    find . -type d \( -name node_modules -o -name .git -o -name 'build*' \
      -o -name autom4te.cache -o -name build-aux -o -name m4 \) -prune -o -type f -print |
      sed 's|^\./||' |
      grep -vE '(^|/)(Makefile\.in|Makefile|configure|aclocal\.m4|config\.(log|status))$|\.pb-c\.[ch]$|\.(o|a)$'
  }
fi
list | perl -e '
use strict;
use warnings;

my @files = grep { length } map { chomp; $_ } <STDIN>;
my %tracked = map { $_ => 1 } @files;
my %dirs;
for my $f (@files) {
    my $d = $f;
    while ($d =~ s{/[^/]*$}{}) { $dirs{$d} = 1 }
}
my $bad = 0;
my %headcache;

sub report { my ($f, $n, $msg) = @_; print "$f:$n: $msg\n"; $bad++ }

# Normalise a relative path (a/b/../c -> a/c); undef when it climbs above the top.
sub norm {
    my ($p) = @_;
    my @out;
    for my $part (split m{/}, $p) {
        next if $part eq "" || $part eq ".";
        if ($part eq "..") { return undef unless @out; pop @out; next }
        push @out, $part;
    }
    return join "/", @out;
}
sub exists_in_repo { my ($p) = @_; return $tracked{$p} || $dirs{$p} || ($p eq "") }
sub dir_of { my ($f) = @_; return $f =~ m{^(.*)/} ? $1 : "" }

# GitHub heading ids and section numbers of a Markdown file.
sub headings {
    my ($f) = @_;
    return $headcache{$f} if $headcache{$f};
    my (%slug, %sect, @titles);
    if (open my $fh, "<", $f) {
        my $fence = 0;
        while (my $l = <$fh>) {
            if ($l =~ /^\s*(```|~~~)/) { $fence = !$fence; next }
            next if $fence || $l !~ /^(#{1,6})\s+(.*?)\s*#*\s*$/;
            my $t = $2;
            push @titles, $t;
            $sect{$1} = 1 if $t =~ /^(\d+(?:\.\d+)*)[.)]?(?:\s|$)/;
            (my $s = lc $t) =~ s/[^\w\- ]//g;
            $s =~ s/ /-/g;
            my $id = $s;
            my $k = 1;
            $id = $s . "-" . $k++ while $slug{$id};
            $slug{$id} = 1;
        }
    }
    return $headcache{$f} = { slug => \%slug, sect => \%sect, titles => \@titles };
}

# Resolve a cited document path; returns (path) or (undef, reason).
sub resolve_doc {
    my ($f, $tok) = @_;
    my $dir = dir_of($f);
    my @cand;
    if ($tok =~ m{^/}) { return (undef, "absolute path $tok leaves the repository") }
    if ($tok =~ m{^\.\.?/}) {
        my $p = norm(($dir eq "" ? "" : "$dir/") . $tok);
        return (undef, "$tok leaves the repository") unless defined $p;
        @cand = ($p);
    } elsif ($tok =~ m{/}) {
        @cand = (norm($tok), norm(($dir eq "" ? "" : "$dir/") . $tok));
    } else {
        @cand = (norm(($dir eq "" ? "" : "$dir/") . $tok), $tok);
    }
    for my $c (@cand) { return ($c) if defined $c && $tracked{$c} }
    return (undef, "$tok: no such file in the repository");
}

my $outside = qr{(?:\.\./)+shared/|(?<![\w.-])shared/(?:reference/|DESIGN\.md|STYLE\.md)|/w(?:o)rk/|/ho(?:m)e/\w};
my $mdtok = qr{(?<![\w./*<>\$\-])((?:\.{1,2}/)*[\w.\-]+(?:/[\w.\-]+)*\.md)(?![\w/])};
my $topdirs = qr{(?:broker|conf|docs|proto|scripts|tests)};

for my $f (@files) {
    next if $f =~ m{(^|/)node_modules/} || $f =~ m{package-lock\.json$};
    next if $f =~ m{\.(bin|png|jpg|gz|tar)$};
    open my $fh, "<", $f or next;
    my $text = do { local $/; <$fh> };
    next if $text =~ /\0/;
    next if $text =~ /^\W*check-links: ignore-file\b/m;
    my $is_md = $f =~ /\.md$/;
    my $n = 0;
    my $fence = 0;
    my ($carry, $carryname);    # document cited last in this paragraph
    for my $line (split /\n/, $text, -1) {
        $n++;
        if ($line =~ m{^\s*(?:[*#]|//|/\*)?\s*$} || ($is_md && $line =~ /^\s*(?:#|```|~~~)/)) {
            ($carry, $carryname) = (undef, undef);
        }
        if ($line =~ $outside) { report($f, $n, "refers to a location outside the repository") }
        my $l = $line;
        $l =~ s{\b[a-z][a-z0-9+.\-]*://\S*}{ }gi;    # URLs are not checked
        if ($is_md) {
            if ($l =~ /^\s*(```|~~~)/) { $fence = !$fence; next }
            next if $fence;
            # Markdown links: check, then blank them so the document pass skips them.
            while ($l =~ /\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g) {
                my $t = $1;
                next if $t eq "" || $t =~ /^[a-z][a-z0-9+.\-]*:/i;
                my ($path, $anchor) = $t =~ /^([^#]*)(?:#(.*))?$/;
                my $target = $f;
                if ($path ne "") {
                    if ($path =~ m{^/}) { report($f, $n, "link $t: absolute path leaves the repository"); next }
                    my $dir = dir_of($f);
                    $target = norm(($dir eq "" ? "" : "$dir/") . $path);
                    if (!defined $target) { report($f, $n, "link $t leaves the repository"); next }
                    $target =~ s{/$}{};
                    if (!exists_in_repo($target)) { report($f, $n, "link $t: no such file"); next }
                }
                if (defined $anchor && $anchor ne "") {
                    if ($target !~ /\.md$/) { report($f, $n, "link $t: anchor into a file that is not Markdown"); next }
                    report($f, $n, "link $t: no heading with id #$anchor in $target")
                        unless headings($target)->{slug}{lc $anchor};
                }
            }
            $l =~ s/\]\([^)]*\)/] /g;
            # Code spans naming a path of the repository.
            while ($l =~ /`($topdirs\/[^`\s]*)(?:\s[^`]*)?`/g) {
                my $p = $1;
                next if $p =~ /[<>*{}\[\]\$]|\.\.\./;
                (my $q = $p) =~ s{/$}{};
                $q =~ s{:\d+$}{};
                report($f, $n, "path $p does not exist") unless exists_in_repo($q);
            }
        }
        # Documents and sections cited on this line, in order.
        my $doc = $is_md ? $f : undef;
        my $docname = $is_md ? "this file" : undef;
        ($doc, $docname) = ($carry, $carryname) if defined $carryname && !$is_md;
        my $rest = $l;
        while ($rest =~ /\G.*?(?:$mdtok|(§\s*\d+(?:\.\d+)*(?:\s*(?:-|\xe2\x80\x93)\s*§?\s*\d+(?:\.\d+)*)?))/gcs) {
            my ($tok, $sec) = ($1, $2);
            if (defined $tok) {
                my ($p, $why) = resolve_doc($f, $tok);
                if (!defined $p) {
                    report($f, $n, $why);
                    ($doc, $docname, $carry, $carryname) = (undef, $tok, undef, $tok);
                    next;
                }
                ($doc, $docname) = ($p, $tok);
                ($carry, $carryname) = ($p, $tok);
                # A quoted heading right after the document: broker/ml/README.md "Durable store"
                if ($rest =~ /\G,?\s*"([^"]+)"/gc) {
                    my $h = $1;
                    report($f, $n, "$tok has no heading \"$h\"")
                        unless grep { index(lc $_, lc $h) >= 0 } @{ headings($p)->{titles} };
                }
                next;
            }
            if (!defined $docname) { report($f, $n, "$sec: section of no document (name the file on the same line)"); next }
            next unless defined $doc;    # the document itself was already reported
            my $h = headings($doc);
            for my $num ($sec =~ /(\d+(?:\.\d+)*)/g) {
                report($f, $n, "$docname has no section $num") unless $h->{sect}{$num};
            }
        }
    }
}
print STDERR "check-links: " . ($bad ? "$bad problem(s)" : "ok") . " in " . scalar(@files) . " files\n";
exit($bad ? 1 : 0);
'
