package vsock

// firstHostPort is where the device starts looking for a host port for a
// host-initiated connection: high, away from the service ports guests
// connect to, as Firecracker's hybrid vsock does.
const firstHostPort = 1 << 30

// portAny is VMADDR_PORT_ANY (-1U), never a port of a connection.
const portAny = 0xffffffff

// key identifies a connection: the host's port and the guest's. The CIDs
// are implied, HostCID and the guest's.
type key struct {
	local uint32 // the host's port
	peer  uint32 // the guest's port
}

// allocPort returns a host port no connection uses, from firstHostPort up
// and around; false if there is none, which cannot happen while the
// connections are fewer than the ports. The caller holds d.mu.
func (s *session) allocPort() (uint32, bool) {
	for range len(s.ports) + 1 {
		p := s.nextPort
		if s.nextPort++; s.nextPort == portAny {
			s.nextPort = firstHostPort
		}
		if s.ports[p] == 0 {
			return p, true
		}
	}
	return 0, false
}
