package api

import (
	"time"

	"ember/machine"
)

// VM states. A VM made through the API is created (built, not yet run),
// running, paused, or stopped (its run ended: see VM.LastStop); one made by
// HC_CREATE_VM has ACRN's states, created, running, paused and powered-off.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StatePaused     = "paused"
	StateStopped    = "stopped"
	StatePoweredOff = "powered-off"
)

// Where a VM came from.
const (
	OriginAPI       = "api"       // POST /v1/vms
	OriginHypercall = "hypercall" // HC_CREATE_VM, through POST /v1/hypercall
)

// VM is one VM as the API shows it.
type VM struct {
	// ID names the VM in the API's paths: the name given at creation, or
	// one the daemon chose ("vm-3"); "acrn-N" for a VM HC_CREATE_VM made.
	ID     string `json:"id"`
	Origin string `json:"origin"`
	State  string `json:"state"`
	// ACRNID is the VM's ID in the ACRN VM table, which hypercalls name
	// it by; absent for a VM beyond the table's 32 entries.
	ACRNID *uint16 `json:"acrn_id,omitempty"`
	// Config is the configuration it was built from (OriginAPI only).
	Config    *machine.Config `json:"config,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	// Boots counts the machine's boots: start, restart and guest reboots
	// under reboot=restart each build it afresh.
	Boots int `json:"boots"`
	// Asleep says the guest is suspended to RAM (ACPI S3): its vCPUs wait
	// for a wake event, the RTC alarm or POST /v1/vms/{id}/wake.
	Asleep   bool      `json:"asleep,omitempty"`
	LastStop *StopInfo `json:"last_stop,omitempty"`
	Counters Counters  `json:"counters"`
}

// StopInfo says how a VM's last run ended.
type StopInfo struct {
	// Reason is exit, shutdown, halted, reset, host, error or poweroff.
	Reason string    `json:"reason"`
	Status int       `json:"status"` // the guest's exit status, for exit
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
}

// Counters are a VM's running totals since it was built.
type Counters struct {
	Exits         uint64            `json:"exits"`           // VM exits handled
	ExitsByReason map[string]uint64 `json:"exits_by_reason"` // by KVM exit reason, KVM_EXIT_INTR too
	// IORequests counts emulated accesses by the client that served them.
	IORequests       map[string]uint64 `json:"io_requests"`
	GuestTimeSeconds float64           `json:"guest_time_seconds"` // CPU time in guest mode, all vCPUs
	// Disks are the totals of the disks served in ember's process, and
	// Nets of the network interfaces, for a VM the API built.
	Disks []DiskCounters `json:"disks,omitempty"`
	Nets  []NetCounters  `json:"nets,omitempty"`
}

// DiskCounters are one disk's totals since its VM was built (blk.Stats):
// requests answered by type, the bytes of those that succeeded, and those
// answered with an error.
type DiskCounters struct {
	Index       int    `json:"index"` // its place in the configuration's disks
	Path        string `json:"path"`
	Reads       uint64 `json:"reads"`
	ReadBytes   uint64 `json:"read_bytes"`
	Writes      uint64 `json:"writes"`
	WriteBytes  uint64 `json:"write_bytes"`
	Flushes     uint64 `json:"flushes"`
	Discards    uint64 `json:"discards"`    // DISCARD and WRITE_ZEROES
	Errors      uint64 `json:"errors"`      // answered VIRTIO_BLK_S_IOERR
	Unsupported uint64 `json:"unsupported"` // answered VIRTIO_BLK_S_UNSUPP
}

// NetCounters are one network interface's totals since its VM was built
// (virtio-net's Stats): frames the guest sent (tx) and was given (rx).
type NetCounters struct {
	Index     int    `json:"index"` // its place in the configuration's nets
	TAP       string `json:"tap"`
	TXPackets uint64 `json:"tx_packets"`
	TXBytes   uint64 `json:"tx_bytes"`
	TXDropped uint64 `json:"tx_dropped"` // malformed, or refused by the TAP
	RXPackets uint64 `json:"rx_packets"`
	RXBytes   uint64 `json:"rx_bytes"`
	RXDropped uint64 `json:"rx_dropped"` // the guest had no buffers for them
	// With vhost the kernel's vhost-net moves the frames, and they are not
	// counted here (the TAP's own statistics count them).
}

// VMList is GET /v1/vms's answer.
type VMList struct {
	VMs []VM `json:"vms"`
}

// CreateRequest is POST /v1/vms's body.
type CreateRequest struct {
	// ID is the VM's name: 1 to 64 of [A-Za-z0-9._-], not starting with
	// "acrn-"; empty lets the daemon choose.
	ID     string         `json:"id,omitempty"`
	Config machine.Config `json:"config"`
	// Start starts the VM once it is built.
	Start bool `json:"start,omitempty"`
}

// RestartRequest is POST /v1/vms/{id}/restart's optional body: a new
// configuration (another kernel, say) for the machine built afresh.
type RestartRequest struct {
	Config *machine.Config `json:"config,omitempty"`
}

// Event types on GET /v1/events.
const (
	EventCreated     = "created"
	EventStarted     = "started"
	EventPaused      = "paused"
	EventResumed     = "resumed"
	EventStopped     = "stopped"
	EventRestarted   = "restarted"
	EventDeleted     = "deleted"
	EventDeviceError = "device_error"
)

// Event is one line of GET /v1/events: something that happened to a VM.
type Event struct {
	Seq  uint64    `json:"seq"` // increases by one per event the daemon makes
	Time time.Time `json:"time"`
	Type string    `json:"type"`
	VM   string    `json:"vm"`
	// State is the VM's state after the event.
	State string `json:"state,omitempty"`
	// Stop is how the run ended, for stopped.
	Stop *StopInfo `json:"stop,omitempty"`
	// Message is the log message of a device_error.
	Message string `json:"message,omitempty"`
}

// HypercallRequest is POST /v1/hypercall's body: one ACRN hypercall made as
// the Service VM on the daemon's VM table. Pointer parameters are addresses
// in the daemon's Service VM memory (16 MiB from 0): Write puts structures
// there before the call, Read returns memory after it.
type HypercallRequest struct {
	// Hypercall is the name in ACRN's header (HC_CREATE_VM) or the ID as a
	// number ("0x80000010").
	Hypercall string        `json:"hypercall"`
	Param1    uint64        `json:"param1,omitempty"`
	Param2    uint64        `json:"param2,omitempty"`
	Write     []MemoryBytes `json:"write,omitempty"`
	Read      []MemoryRange `json:"read,omitempty"`
}

// MemoryBytes is bytes at a guest-physical address of the Service VM
// memory, in hex.
type MemoryBytes struct {
	GPA  uint64 `json:"gpa"`
	Data string `json:"data"`
}

// MemoryRange is a range of the Service VM memory to read back, at most
// MaxHypercallRead bytes.
type MemoryRange struct {
	GPA  uint64 `json:"gpa"`
	Size uint64 `json:"size"`
}

// Limits of a HypercallRequest.
const (
	MaxHypercallRead   = 4096 // bytes per MemoryRange
	MaxHypercallRanges = 16   // Write and Read entries each
)

// HypercallResponse is POST /v1/hypercall's answer: what the guest would
// find in RAX, and the memory asked for.
type HypercallResponse struct {
	Hypercall string `json:"hypercall"` // the name
	Result    int64  `json:"result"`    // RAX as a signed value: 0, or -errno
	// Errno names a negative Result (EINVAL); empty for success.
	Errno string        `json:"errno,omitempty"`
	Read  []MemoryBytes `json:"read,omitempty"`
}

// Info is GET /v1/info's answer: the daemon and its host.
type Info struct {
	Version    string         `json:"version"`
	KVMBackend string         `json:"kvm_backend"` // hardware virtualization, or kvm-pvm
	VMs        map[string]int `json:"vms"`         // VM counts by state
	MaxVMs     int            `json:"max_vms"`
}

// ConsoleUpgrade is the protocol a client names, with "Connection:
// Upgrade", to turn GET /v1/vms/{id}/console into the console's raw byte
// stream both ways (after a 101 Switching Protocols).
const ConsoleUpgrade = "ember-console"

// Balloon is GET /v1/vms/{id}/balloon's answer: the virtio-balloon
// device's target, what the guest has given, and its last memory
// statistics.
type Balloon struct {
	TargetBytes uint64 `json:"target_bytes"` // what the guest is asked to give up
	ActualBytes uint64 `json:"actual_bytes"` // what the guest says it has given
	// Stats are the guest's last memory statistics, by the virtio spec's
	// names (swap_in, free_memory, ...: bytes, or counts for faults and
	// hugetlb), only those it reported; absent before its first report.
	Stats           map[string]uint64 `json:"stats,omitempty"`
	StatsAgeSeconds float64           `json:"stats_age_seconds,omitempty"`
}

// BalloonUpdate is PUT /v1/vms/{id}/balloon's body.
type BalloonUpdate struct {
	// Target is the new balloon size, as machine.Config.Memory is written
	// ("64M", "0"); it must be less than the guest's RAM.
	Target string `json:"target"`
}
