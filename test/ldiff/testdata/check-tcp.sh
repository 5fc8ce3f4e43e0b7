#!/bin/bash
# An external check as ldirectord calls it: VIP VPORT RIP RPORT; up when
# RIP:RPORT accepts a TCP connection.
exec 3<>"/dev/tcp/$3/$4"
