// Package devicemodel is the protocol that lets a device model run in a
// process of its own (docs/ioreq-protocol.md): ember's side, a Server on a
// VM's unix socket that makes each connected model a client of the VM's
// ioreq.Dispatcher, and the model's side, Conn (Dial, Claim, Serve), which
// examples/devicemodel uses. Requests travel through the VM's request buffer,
// shared as a memfd; futexes on words of the shared pages (the futex
// hand-off), or with an older peer eventfds, kick the model and wake a vCPU
// whose request is complete; both sides poll the buffer for an adaptive
// while before they sleep (ioreq.PollWindow).
package devicemodel
