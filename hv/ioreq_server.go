package hv

import (
	"errors"
	"fmt"

	"ember/devicemodel"
)

// deviceModelSocket is a VM's device-model socket (Config.DeviceModelSocket):
// an devicemodel.Server on the VM's dispatcher, with the VM's eventfds, accepting
// out-of-process device models (docs/ioreq-protocol.md).
type deviceModelSocket struct {
	srv    *devicemodel.Server
	served chan error // Serve's result, once it has returned
}

// startDeviceModelSocket listens on Config.DeviceModelSocket, if set, and
// serves device models there until closeDeviceModelSocket. The socket must
// not exist yet.
func (vm *VM) startDeviceModelSocket() error {
	path := vm.cfg.DeviceModelSocket
	if path == "" {
		return nil
	}
	s, err := devicemodel.Listen(path, vm.ioreq, devicemodel.ServerConfig{
		VMID:     vm.cfg.ID,
		EventFDs: vm.EventFDs(),
		Logger:   vm.log,
		Memory:   vm.memorySegments,
	})
	if err != nil {
		return fmt.Errorf("hv: device-model socket %s: %w", path, err)
	}
	dm := &deviceModelSocket{srv: s, served: make(chan error, 1)}
	go func() { dm.served <- s.Serve() }()
	vm.dmSocket = dm
	return nil
}

// DeviceModelSocket returns the device-model server, or nil without
// Config.DeviceModelSocket.
func (vm *VM) DeviceModelSocket() *devicemodel.Server {
	if vm.dmSocket == nil {
		return nil
	}
	return vm.dmSocket.srv
}

// closeDeviceModelSocket disconnects every device model (their requests in
// flight fail), removes the socket file and waits for the server's goroutines.
func (vm *VM) closeDeviceModelSocket() error {
	dm := vm.dmSocket
	if dm == nil {
		return nil
	}
	vm.dmSocket = nil
	err := dm.srv.Close() // the listener unlinks the socket it created
	if serr := <-dm.served; serr != nil {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("hv: device-model socket: %w", err)
	}
	return nil
}

// memorySegments answers a device model's MEMORY request: every RAM region
// with the memfd behind it (a VM with a device-model socket gets memfd-backed
// RAM, memory.NewShared).
func (vm *VM) memorySegments() ([]devicemodel.Segment, error) {
	var segs []devicemodel.Segment
	for _, r := range vm.mem.Regions() {
		if r.FD < 0 {
			return nil, devicemodel.ErrNotShareable
		}
		segs = append(segs, devicemodel.Segment{GPA: r.GPA, Len: r.Size, FD: r.FD})
	}
	return segs, nil
}
