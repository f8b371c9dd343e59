package main

import (
	"errors"
	"fmt"
	"io/fs"

	"ember/hv"
	"ember/hypercall"
)

// explainKVM turns a failure to open /dev/kvm into advice: what is missing,
// how to check, and where ember can run instead.
func explainKVM(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf(`%w
ember needs KVM, and this machine has no /dev/kvm. Check that the CPU has
hardware virtualization (grep -E 'vmx|svm' /proc/cpuinfo), that it is on in
the firmware, and that the kvm_intel or kvm_amd module is loaded (lsmod | grep
kvm). Where there is none (a cloud VM without nested virtualization, say),
run ember in the lab from its source tree: go run ./lab exec -- run`, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf(`%w
ember needs read and write access to /dev/kvm. Check its owner and mode
(ls -l /dev/kvm); usually adding yourself to the kvm group (then logging in
again) is enough`, err)
	}
	return err
}

// openService opens /dev/kvm (explained if it fails) and the hypercall
// service that makes VMs on it, as run, daemon and hypercall do: VMs made
// through the service have a guest's OUT to the hypercall port judged as
// docs/abi.md says (#UD for a plain VM). done releases both.
func openService() (hc *hypercall.Service, done func(), err error) {
	h, err := hv.Open()
	if err != nil {
		return nil, nil, explainKVM(err)
	}
	hc = hypercall.New(h)
	return hc, func() { hc.Close(); h.Close() }, nil
}
