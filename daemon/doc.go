// Package daemon is ember's daemon: one process that holds a hypervisor and
// the ACRN VM table (the host acts as the Service VM, ID 0) and serves the
// REST API of package api over HTTP on a unix socket. VMs made through the
// API (POST /v1/vms) and VMs made by hypercalls (POST /v1/hypercall,
// HC_CREATE_VM) live on the same table and show in the same list.
//
// Files: daemon.go (the Daemon and its VM registry), vm.go (one API VM's
// lifecycle), console.go (console history and streams), events.go (the
// event stream), logs.go (each VM's log), metrics.go (Prometheus text),
// hypercall.go (POST /v1/hypercall), http.go (routes, decoding, errors),
// listen.go (the socket and its peer check).
package daemon
