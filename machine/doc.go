// Package machine builds a whole ember VM from a declarative configuration:
// the guest to boot (a built-in tiny guest, a Linux or multiboot kernel, or
// a firmware ROM), its vCPUs and memory, the PC platform and the virtio devices.
//
// It is the one place that turns "what the user asked for" into a running
// VM, so `ember run` (its flags, or the JSON file of --config) and the
// daemon's API (the same JSON) build identical machines:
//
//	cfg, _ := machine.ParseConfig(jsonBytes) // or fill a Config in Go
//	p, err := cfg.Prepare()                  // validate, read the files
//	m, err := machine.Build(hc, p, machine.Options{Console: os.Stdout})
//	defer m.Close()
//	res, err := m.VM.Run(ctx)
//
// Prepare reports every misconfiguration (a bad size, a missing image, a
// duplicate vsock CID) before /dev/kvm is opened or a VM exists.
package machine
