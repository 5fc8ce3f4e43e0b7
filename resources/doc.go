// Package resources holds Vigil's built-in resource plugins: ipaddr (the
// floating VIP with gratuitous ARP / unsolicited NA), ldirectord (the IPVS
// manager and its director backends), mon (watches and alerts) and script
// (OCF, LSB and heartbeat resource.d adapters). Each runs as a plugin
// subprocess of the vigil binary and talks to the core only through the
// plugin protocol in plugins/: nothing here imports cluster/.
//
// The packages arrive with the plugin-system, IPaddr, IPVS-manager and mon
// issues; the configuration loader already normalises their haresources
// shorthand (see cluster/config.ParseShorthand).
package resources
