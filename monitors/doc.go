// Package monitors will hold the health checks (tcp, http/https, dns, smtp,
// ping, external mon-style scripts) and alert senders shared by the
// ldirectord and mon resources. See DESIGN.md §2.5 and §2.6.
package monitors
