// Package plugins will hold the plugin protocol (protobuf + generated gRPC
// code), the host that launches, supervises and restarts plugin processes
// through hashicorp/go-plugin, and the SDK third parties write resource,
// monitor, alert and fence plugins with. See DESIGN.md §2.3.
package plugins
