# An external-perl check as ldirectord runs one: evaluated with @ARGV =
# (VIP, VPORT, RIP, RPORT); exit 0 is up.
use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => $ARGV[2], PeerPort => $ARGV[3], Timeout => 1);
exit($s ? 0 : 1);
