package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ember/acrn"
	"ember/acrn/iorequest"
	"ember/api"
	"ember/api/client"
	"ember/devicemodel"
	"ember/internal/cli"
	"ember/internal/kvmtest"
	"ember/ioreq"
	"ember/kvm"
	"ember/machine"
)

// asEmberEnv makes this test binary behave as the ember command, so tests
// can start `ember daemon` as a separate process where there is no go
// toolchain (the lab).
const asEmberEnv = "EMBER_TEST_AS_EMBER"

func TestMain(m *testing.M) {
	if os.Getenv(asEmberEnv) == "1" {
		cli.Exit("ember", newRootCmd().Execute())
	}
	os.Exit(m.Run())
}

// daemonProc is an `ember daemon` started by a test.
type daemonProc struct {
	sock   string
	c      *client.Client
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

// lockedBuffer is a bytes.Buffer safe for the process's writer and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon runs `ember daemon --api-socket DIR/api.sock` as a separate
// process and waits until it answers; the test's cleanup stops it.
func startDaemon(t testing.TB, args ...string) *daemonProc {
	t.Helper()
	return startDaemonIn(t, t.TempDir(), args...)
}

// startDaemonIn is startDaemon with the socket in dir.
func startDaemonIn(t testing.TB, dir string, args ...string) *daemonProc {
	t.Helper()
	kvmtest.Require(t)
	sock := filepath.Join(dir, "api.sock")
	d := &daemonProc{sock: sock, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	d.cmd = exec.Command(os.Args[0], append([]string{"daemon", "--api-socket", sock, "--log-format", "json"}, args...)...)
	d.cmd.Env = append(os.Environ(), asEmberEnv+"=1")
	d.cmd.Stderr = d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	d.c = client.New(sock)
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.c.Info(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case err := <-d.done:
			t.Fatalf("ember daemon exited: %v\n%s", err, d.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ember daemon did not answer within a minute: %v\n%s", err, d.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop sends SIGTERM and checks that the daemon ends cleanly, its socket
// gone.
func (d *daemonProc) stop(t testing.TB) {
	t.Helper()
	if d.cmd.ProcessState != nil {
		return
	}
	d.c.Close()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("ember daemon after SIGTERM: %v\n%s", err, d.stderr)
		}
	case <-time.After(time.Minute):
		d.cmd.Process.Kill()
		t.Errorf("ember daemon still running a minute after SIGTERM\n%s", d.stderr)
	}
	if _, err := os.Stat(d.sock); err == nil {
		t.Errorf("the API socket %s is left after the daemon ended", d.sock)
	}
}

// explainStuck is for a failing test whose VM id did not stop: it logs the
// VM's counters twice, two seconds apart (is the guest still making
// progress, in guest mode or through exits?), then ends the daemon with
// SIGQUIT and logs its stderr, where the Go runtime has written every
// goroutine's stack (is a vCPU in KVM_RUN, or waiting in ember?).
func (d *daemonProc) explainStuck(t testing.TB, id string) {
	t.Helper()
	for i := 0; i < 2; i++ {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		v, err := d.c.Get(context.Background(), id)
		t.Logf("VM %s: state %s, err %v, exits %d %v, I/O requests %v, guest time %.3f s",
			id, v.State, err, v.Counters.Exits, v.Counters.ExitsByReason, v.Counters.IORequests, v.Counters.GuestTimeSeconds)
	}
	d.c.Close()
	d.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		d.cmd.Process.Kill()
		<-d.done
	}
	t.Logf("the daemon's stderr, with its goroutines' stacks (SIGQUIT):\n%s", d.stderr)
}

// rawHTTP sends one HTTP/1.1 request over a fresh connection to the socket,
// as curl --unix-socket would, and returns the status and body.
func rawHTTP(t testing.TB, sock, method, path, body string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		method, path, len(body), body)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// eventLog collects a daemon's events from the moment it is made.
type eventLog struct {
	mu     sync.Mutex
	events []api.Event
	cancel context.CancelFunc
}

func watchEvents(t testing.TB, c *client.Client) *eventLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &eventLog{cancel: cancel}
	ready := make(chan struct{})
	go func() {
		// The subscription is made before the first event is waited for:
		// the info request after it is answered only once it is in place.
		go func() { c.Info(ctx); close(ready) }()
		c.Events(ctx, "", func(e api.Event) bool {
			l.mu.Lock()
			l.events = append(l.events, e)
			l.mu.Unlock()
			return true
		})
	}()
	<-ready
	time.Sleep(100 * time.Millisecond) // the stream's headers have been sent by now
	t.Cleanup(cancel)
	return l
}

// await waits for an event of type typ for vm and returns it.
func (l *eventLog) await(t testing.TB, vm, typ string) api.Event {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, e := range l.events {
			if e.VM == vm && e.Type == typ {
				l.mu.Unlock()
				return e
			}
		}
		l.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Fatalf("no %s event for %s; events: %+v", typ, vm, l.events)
	return api.Event{}
}

// readUntil reads r until what it read contains want.
func readUntil(t testing.TB, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	deadline := time.Now().Add(time.Minute)
	for !bytes.Contains(got, []byte(want)) {
		if c, ok := r.(net.Conn); ok {
			c.SetReadDeadline(deadline)
		}
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading for %q: %v; got %q", want, err, got)
		}
	}
	return string(got)
}

// TestDaemonLifecycle drives a daemon process through a VM's whole life
// with the Go client: create, start, the console stream both ways, pause,
// resume, restart from another configuration, the event stream, the log,
// `ember vm ls`, delete; and a demo VM that runs to its end.
func TestDaemonLifecycle(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	ev := watchEvents(t, d.c)

	demo, err := d.c.Create(ctx, api.CreateRequest{ID: "demo", Config: machine.Config{}, Start: true})
	if err != nil {
		t.Fatal(err)
	}
	if demo.State != api.StateRunning && demo.State != api.StateStopped {
		t.Errorf("created and started: state %s", demo.State)
	}
	stopped := ev.await(t, "demo", api.EventStopped)
	if stopped.Stop == nil || stopped.Stop.Reason != "exit" || stopped.Stop.Status != 0 {
		t.Errorf("demo stopped: %+v", stopped.Stop)
	}
	out, err := d.c.ConsoleLog(ctx, "demo")
	if err != nil || !strings.Contains(string(out), "Goodbye.") {
		t.Errorf("demo console: %q, %v", out, err)
	}
	if v, _ := d.c.Get(ctx, "demo"); v.State != api.StateStopped || v.Boots != 1 || v.Counters.Exits == 0 {
		t.Errorf("demo after its run: %+v", v)
	}

	if _, err := d.c.Create(ctx, api.CreateRequest{ID: "echo", Config: machine.Config{Guest: "echo", Balloon: &machine.Balloon{}}}); err != nil {
		t.Fatal(err)
	}
	// The balloon's API: the tiny guest has no driver, so nothing is
	// given, but the target is the device's.
	if b, err := d.c.SetBalloon(ctx, "echo", "1M"); err != nil || b.TargetBytes != 1<<20 || b.ActualBytes != 0 {
		t.Errorf("balloon target 1M: %+v, %v", b, err)
	}
	if _, err := d.c.SetBalloon(ctx, "echo", "2M"); client.Code(err) != api.CodeInvalidConfig {
		t.Errorf("balloon target of all RAM: %v, want invalid_config", err)
	}
	if _, err := d.c.Balloon(ctx, "demo"); client.Code(err) != api.CodeConflict {
		t.Errorf("the balloon of a VM without one: %v, want conflict", err)
	}
	if _, err := d.c.Create(ctx, api.CreateRequest{ID: "echo", Config: machine.Config{Guest: "echo"}}); client.Code(err) != api.CodeConflict {
		t.Errorf("a second VM named echo: %v, want conflict", err)
	}
	if _, err := d.c.Action(ctx, "echo", "pause"); client.Code(err) != api.CodeConflict {
		t.Errorf("pausing a created VM: %v, want conflict", err)
	}
	if _, err := d.c.Action(ctx, "echo", "start"); err != nil {
		t.Fatal(err)
	}
	con, err := d.c.Console(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer con.Close()
	readUntil(t, con, "echo> ")
	// Waking a guest that is not asleep in ACPI S3 is a conflict (package
	// pc's TestS3SuspendAndResume wakes one that is).
	if v, err := d.c.Action(ctx, "echo", "wake"); client.Code(err) != api.CodeConflict {
		t.Errorf("waking a guest that is not asleep: %+v, %v; want conflict", v, err)
	}
	if v, _ := d.c.Get(ctx, "echo"); v.Asleep {
		t.Errorf("the echo guest shows as asleep")
	}
	io.WriteString(con, "hello")
	readUntil(t, con, "hello")
	// What the echo guest is doing, as `ember vm state` shows it: its
	// vCPU, and COM1 with the receive interrupt it waits on enabled.
	state, _, err := execute(t, "vm", "--api-socket", d.sock, "state", "echo")
	if err != nil || !strings.Contains(state, "vCPU 0: ") || !strings.Contains(state, "COM1: IER 0x1 ") {
		t.Errorf("ember vm state echo: %v\n%s", err, state)
	}

	for _, step := range []struct{ action, state, event string }{
		{"pause", api.StatePaused, api.EventPaused},
		{"resume", api.StateRunning, api.EventResumed},
	} {
		v, err := d.c.Action(ctx, "echo", step.action)
		if err != nil || v.State != step.state {
			t.Fatalf("%s: %+v, %v", step.action, v, err)
		}
		ev.await(t, "echo", step.event)
	}
	io.WriteString(con, "q")
	readUntil(t, con, "bye")
	if st := ev.await(t, "echo", api.EventStopped); st.Stop == nil || st.Stop.Reason != "exit" {
		t.Errorf("echo stopped: %+v", st.Stop)
	}

	// Restart with another configuration: the demo this time.
	v, err := d.c.Restart(ctx, "echo", &machine.Config{Guest: "demo"})
	if err != nil || v.Boots != 2 || v.Config.Guest != "demo" {
		t.Fatalf("restart: %+v, %v", v, err)
	}
	ev.await(t, "echo", api.EventRestarted)

	ls, _, err := execute(t, "vm", "--api-socket", d.sock, "ls")
	if err != nil || !strings.Contains(ls, "demo") || !strings.Contains(ls, "echo") || !strings.Contains(ls, "STATE") {
		t.Errorf("ember vm ls: %v\n%s", err, ls)
	}
	js, _, err := execute(t, "vm", "--api-socket", d.sock, "--json", "show", "demo")
	var shown api.VM
	if err != nil || json.Unmarshal([]byte(js), &shown) != nil || shown.ID != "demo" {
		t.Errorf("ember vm show --json: %v\n%s", err, js)
	}

	for _, id := range []string{"demo", "echo"} {
		if err := d.c.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		ev.await(t, id, api.EventDeleted)
	}
	if _, err := d.c.Get(ctx, "echo"); client.Code(err) != api.CodeNotFound {
		t.Errorf("a deleted VM: %v, want not_found", err)
	}
	if vms, err := d.c.List(ctx); err != nil || len(vms) != 0 {
		t.Errorf("after deleting both: %+v, %v", vms, err)
	}
}

// Service VM memory layout of TestDaemonHypercallVM.
const (
	hcParam   = 0x1000   // structures passed to hypercalls
	hcRegions = 0x3000   // the memory region array
	hcIOReq   = 0x4000   // the new VM's I/O request page
	hcRAM     = 0x100000 // the new VM's RAM, 1 MiB, at its GPA 0
	hcCounter = 0x2000   // the guest's counter, in its RAM
)

// hcCall makes one hypercall through raw HTTP, as an ACRN tool would with
// curl, writing the structures first; it returns the response.
func hcCall(t testing.TB, sock string, name string, p1, p2 uint64, writes map[uint64][]byte, reads ...api.MemoryRange) api.HypercallResponse {
	t.Helper()
	req := api.HypercallRequest{Hypercall: name, Param1: p1, Param2: p2, Read: reads}
	for gpa, b := range writes {
		req.Write = append(req.Write, api.MemoryBytes{GPA: gpa, Data: hex.EncodeToString(b)})
	}
	body, _ := json.Marshal(req)
	status, out := rawHTTP(t, sock, "POST", "/v1/hypercall", string(body))
	var r api.HypercallResponse
	if status != http.StatusOK || json.Unmarshal(out, &r) != nil {
		t.Fatalf("POST /v1/hypercall %s: %d %s", name, status, out)
	}
	return r
}

// TestDaemonHypercallVM creates and runs a VM with ACRN's hypercalls
// through POST /v1/hypercall (HC_CREATE_VM, HC_VM_SET_MEMORY_REGIONS,
// HC_SET_VCPU_REGS, HC_START_VM): it runs a tiny guest that counts in its
// RAM, shows in `ember vm ls` and the event stream, its metrics move as it
// runs, and HC_PAUSE_VM and HC_DESTROY_VM end it.
func TestDaemonHypercallVM(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	ev := watchEvents(t, d.c)

	cr := hcCall(t, d.sock, "HC_CREATE_VM", hcParam, 0,
		map[uint64][]byte{hcParam: acrn.Marshal(&acrn.VMCreation{VCPUNum: 1})},
		api.MemoryRange{GPA: hcParam, Size: uint64(len(acrn.Marshal(&acrn.VMCreation{})))})
	if cr.Result != 0 {
		t.Fatalf("HC_CREATE_VM: %+v", cr)
	}
	var created acrn.VMCreation
	b, _ := hex.DecodeString(cr.Read[0].Data)
	if err := created.Decode(b); err != nil {
		t.Fatal(err)
	}
	id := uint64(created.VMID)
	name := fmt.Sprintf("acrn-%d", id)
	// inc dword [0x2000]; jmp back: the guest counts in its RAM forever.
	code := []byte{0x66, 0xff, 0x06, 0x00, 0x20, 0xeb, 0xf9}
	steps := []struct {
		name   string
		p1, p2 uint64
		writes map[uint64][]byte
	}{
		{"HC_VM_SET_MEMORY_REGIONS", hcParam, 0, map[uint64][]byte{
			hcRegions:      acrn.Marshal(&acrn.VMMemoryRegion{Type: acrn.MRAdd, Prot: acrn.MemAccessRWX | acrn.MemTypeWB, GPA: 0, SOSVMGPA: hcRAM, Size: 1 << 20}),
			hcParam:        acrn.Marshal(&acrn.SetRegions{VMID: created.VMID, MRNum: 1, RegionsGPA: hcRegions}),
			hcRAM + 0x1000: code,
		}},
		{"HC_SET_IOREQ_BUFFER", id, hcParam, map[uint64][]byte{
			hcParam: acrn.Marshal(&iorequest.IOReqBuffer{IOReqBuf: hcIOReq}),
		}},
		{"HC_SET_VCPU_REGS", id, hcParam, map[uint64][]byte{
			hcParam: acrn.Marshal(&acrn.VCPURegs{VCPURegs: acrn.Regs{RIP: 0x1000, CR0: 0x60000010, CSAR: 0x9b, CSLimit: 0xffff, RFlags: 2}}),
		}},
		{"HC_START_VM", id, 0, nil},
	}
	for _, s := range steps {
		if r := hcCall(t, d.sock, s.name, s.p1, s.p2, s.writes); r.Result != 0 {
			t.Fatalf("%s: %+v", s.name, r)
		}
	}
	ev.await(t, name, api.EventCreated)
	ev.await(t, name, api.EventStarted)

	ls, _, err := execute(t, "vm", "--api-socket", d.sock, "ls")
	if err != nil || !strings.Contains(ls, name) || !strings.Contains(ls, "hypercall") {
		t.Errorf("ember vm ls lacks %s:\n%s", name, ls)
	}
	counter := func() uint32 {
		r := hcCall(t, d.sock, "HC_GET_API_VERSION", hcParam, 0, nil, api.MemoryRange{GPA: hcRAM + hcCounter, Size: 4})
		b, _ := hex.DecodeString(r.Read[0].Data)
		return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	}
	metric := func() string {
		m, err := d.c.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	c1, m1 := counter(), metric()
	deadline := time.Now().Add(time.Minute)
	for counter() == c1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if c2 := counter(); c2 == c1 {
		t.Errorf("the guest's counter stayed at %d", c1)
	}
	for _, want := range []string{`ember_hypercalls_total{hypercall="HC_CREATE_VM",result="ok"} 1`,
		`ember_vms{state="running"} 1`} {
		if !strings.Contains(m1, want) {
			t.Errorf("metrics lack %s:\n%s", want, m1)
		}
	}
	if m2 := metric(); hypercallCount(m2, "HC_GET_API_VERSION") <= hypercallCount(m1, "HC_GET_API_VERSION") {
		t.Errorf("the hypercall metrics did not move:\n%s", m2)
	}
	// The guest's CPU time grows as it counts (the kernel's guest_time
	// ticks at 10 ms). kvm-pvm emulates guest ring 0 inside the host's
	// kernel, which counts that as system time: this guest, counting in
	// ring 0, got no guest time there in 5 runs of 7 (60 s each), so on
	// kvm-pvm the series must exist but need not grow; the lab, with
	// hardware virtualization, checks that it grows.
	guestTime := func(m string) float64 { return metricValue(m, `ember_vm_guest_seconds_total{vm="`+name+`"}`) }
	g1 := guestTime(m1)
	switch {
	case g1 < 0:
		t.Errorf("metrics lack the guest's CPU time (ember_vm_guest_seconds_total):\n%s", m1)
	case kvm.Backend() == kvm.BackendPVM:
		t.Log("kvm-pvm: not checking that the guest's CPU time grows (its ring 0 is emulated, counted as system time); the lab checks it")
	default:
		for deadline := time.Now().Add(time.Minute); guestTime(metric()) <= g1 && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		if g2 := guestTime(metric()); g2 <= g1 {
			t.Errorf("the guest's CPU time in the metrics stayed at %v s", g1)
		}
	}
	// ember hypercall --api-socket makes its calls on the same table.
	before := hypercallCount(metric(), "HC_GET_API_VERSION")
	out, _, err := execute(t, "hypercall", "--api-socket", d.sock, "HC_GET_API_VERSION", "@0x1000:0000000000000000")
	if err != nil || !strings.Contains(out, "HC_GET_API_VERSION(0x1000, 0x0) = 0") || !strings.Contains(out, "@0x1000: 01 00") ||
		hypercallCount(metric(), "HC_GET_API_VERSION") != before+1 {
		t.Errorf("ember hypercall --api-socket: %v\n%s", err, out)
	}
	v, err := d.c.Get(ctx, name)
	if err != nil || v.Origin != api.OriginHypercall || v.State != api.StateRunning || v.ACRNID == nil || uint64(*v.ACRNID) != id {
		t.Errorf("GET %s: %+v, %v", name, v, err)
	}
	if _, err := d.c.Action(ctx, name, "stop"); client.Code(err) != api.CodeConflict {
		t.Errorf("stopping a hypercall VM through the API: %v, want conflict", err)
	}
	for _, s := range []string{"HC_PAUSE_VM", "HC_DESTROY_VM"} {
		if r := hcCall(t, d.sock, s, id, 0, nil); r.Result != 0 {
			t.Fatalf("%s: %+v", s, r)
		}
	}
	ev.await(t, name, api.EventPaused)
	ev.await(t, name, api.EventDeleted)
	if r := hcCall(t, d.sock, "HC_DESTROY_VM", id, 0, nil); r.Result != -22 || r.Errno != "EINVAL" {
		t.Errorf("destroying it again: %+v, want -22 EINVAL", r)
	}
}

// metricValue returns the value of the sample whose name and labels are
// series, or -1.
func metricValue(metrics, series string) float64 {
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return -1
}

// hypercallCount sums a hypercall's counts in a metrics exposition.
func hypercallCount(metrics, name string) int {
	n := 0
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, `ember_hypercalls_total{hypercall="`+name+`"`) {
			var v int
			fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v)
			n += v
		}
	}
	return n
}

// TestDaemonHostileClients: conflicting lifecycle requests at once each
// get a success or conflict and leave the VM usable; a bad request over
// raw HTTP gets its documented error while the daemon keeps serving; a
// client of another uid cannot connect through the socket's mode, and is
// refused by the peer check when the mode is opened.
func TestDaemonHostileClients(t *testing.T) {
	// The socket's directory (and its parents) let everyone through, so
	// the socket's own mode is what keeps another uid out.
	dir, err := os.MkdirTemp("", "ember-peers-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startDaemonIn(t, dir)
	ctx := context.Background()
	if _, err := d.c.Create(ctx, api.CreateRequest{ID: "e", Config: machine.Config{Guest: "echo"}, Start: true}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := map[string]int{}
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			action := []string{"pause", "resume", "stop", "start"}[i%4]
			_, err := d.c.Action(ctx, "e", action)
			if err != nil && client.Code(err) != api.CodeConflict {
				mu.Lock()
				bad[fmt.Sprint(err)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("conflicting requests got errors other than conflict: %v", bad)
	}
	if v, err := d.c.Get(ctx, "e"); err != nil || v.State == "" {
		t.Fatalf("after the storm: %+v, %v", v, err)
	}

	for _, tt := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"config":{"memory":"1000T"}}`, 400, api.CodeInvalidConfig},
		{`{"config":{"cpus":100000}}`, 400, api.CodeInvalidConfig},
		{`{"config":{"cpus":"four"}}`, 400, api.CodeBadRequest},
		{`{"config":{},"extra":1}`, 400, api.CodeBadRequest},
		{`{"config":`, 400, api.CodeBadRequest},
		{`{"config":{"disks":[{"path":"` + strings.Repeat("d", 300<<10) + `"}]}}`, 413, api.CodeTooLarge},
		{`{"config":{"kernel":"/nonexistent/vmlinuz"}}`, 400, api.CodeInvalidConfig},
	} {
		status, body := rawHTTP(t, d.sock, "POST", "/v1/vms", tt.body)
		var e api.ErrorBody
		if json.Unmarshal(body, &e); status != tt.status || e.Error.Code != tt.code {
			t.Errorf("POST /v1/vms %.60s: %d %s, want %d %s", tt.body, status, body, tt.status, tt.code)
		}
	}
	if status, _ := rawHTTP(t, d.sock, "GET", "/v1/vms", ""); status != 200 {
		t.Errorf("the daemon stopped serving: %d", status)
	}
	if err := d.c.Delete(ctx, "e"); err != nil {
		t.Fatal(err)
	}

	if os.Getuid() != 0 {
		t.Log("another uid's client: not tried (needs root to take another uid)")
		return
	}

	if _, err := connectAs(d.sock, 65534); err == nil {
		t.Error("uid 65534 connected to the 0600 socket")
	}
	if err := os.Chmod(d.sock, 0o666); err != nil {
		t.Fatal(err)
	}
	conn, err := connectAs(d.sock, 65534)
	if err != nil {
		t.Fatalf("uid 65534 could not connect to the opened socket: %v", err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /v1/vms HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	var e api.ErrorBody
	if json.Unmarshal(body, &e); res.StatusCode != http.StatusForbidden || e.Error.Code != api.CodeForbidden {
		t.Errorf("uid 65534's request: %d %s, want 403 forbidden", res.StatusCode, body)
	}
}

// connectAs connects to the unix socket at path as uid (its effective uid
// on one locked thread, which is what the socket's mode and SO_PEERCRED
// see), then takes root back. The caller must be root.
func connectAs(path string, uid int) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked if root cannot be taken back: the thread dies with the goroutine
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			ch <- result{nil, e}
			return
		}
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			if err = unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
				unix.Close(fd)
			}
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e != 0 {
			ch <- result{nil, fmt.Errorf("taking root back: %w", e)}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			ch <- result{nil, err}
			return
		}
		f := os.NewFile(uintptr(fd), path)
		c, err := net.FileConn(f)
		f.Close()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// procStatus returns a process's resident set size in KiB, its open fds
// and its threads.
func procStatus(t testing.TB, pid int) (rssKiB, fds, threads int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			fmt.Sscan(f[1], &rssKiB)
		case "Threads:":
			fmt.Sscan(f[1], &threads)
		}
	}
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return rssKiB, len(es), threads
}

// TestDaemonHoldsAThousandVMs: one daemon holds 1,000 running tiny VMs at
// once, a neighbour that triple-faults stops alone, and deleting them all
// gives back every fd (and the memory, within the Go heap's slack).
func TestDaemonHoldsAThousandVMs(t *testing.T) {
	const n = 1000
	d := startDaemon(t, "--max-vms", fmt.Sprint(n+1))
	ctx := context.Background()
	pid := d.cmd.Process.Pid
	// One VM made and deleted first, so what is made once per process
	// (the Service VM memory, KVM's module state) is in the baseline.
	if _, err := d.c.Create(ctx, api.CreateRequest{ID: "warm", Config: machine.Config{Guest: "echo"}, Start: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.c.Delete(ctx, "warm"); err != nil {
		t.Fatal(err)
	}
	d.c.Close()
	time.Sleep(100 * time.Millisecond) // the daemon's side of the idle connection closes
	rss0, fds0, thr0 := procStatus(t, pid)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ids := make(chan int, n)
	for i := range n {
		ids <- i
	}
	close(ids)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				if _, err := d.c.Create(ctx, api.CreateRequest{ID: fmt.Sprintf("e%d", i), Config: machine.Config{Guest: "echo"}, Start: true}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating VM: %v", err)
	}
	made := time.Since(start)
	info, err := d.c.Info(ctx)
	if err != nil || info.VMs[api.StateRunning] != n {
		t.Fatalf("after creating %d: %+v, %v", n, info, err)
	}
	rss1, fds1, thr1 := procStatus(t, pid)

	// A neighbour that triple-faults stops by itself; the others run on.
	if _, err := d.c.Create(ctx, api.CreateRequest{ID: "crash", Config: machine.Config{Guest: "triple"}, Start: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := d.c.Get(ctx, "crash")
		if err != nil {
			t.Fatal(err)
		}
		if v.State == api.StateStopped {
			if v.LastStop == nil || v.LastStop.Reason != "shutdown" {
				t.Errorf("the triple-faulting VM stopped with %+v", v.LastStop)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the triple-faulting VM is still %s", v.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if info, _ := d.c.Info(ctx); info.VMs[api.StateRunning] != n {
		t.Errorf("after a neighbour's crash %d VMs run, want %d", info.VMs[api.StateRunning], n)
	}

	start = time.Now()
	vms, err := d.c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed := time.Since(start)
	start = time.Now()
	work := make(chan string, len(vms))
	for _, v := range vms {
		work <- v.ID
	}
	close(work)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if err := d.c.Delete(ctx, id); err != nil {
					t.Errorf("delete %s: %v", id, err)
				}
			}
		}()
	}
	wg.Wait()
	deleted := time.Since(start)
	// The client's idle keep-alive connections are fds of the daemon too.
	d.c.Close()
	var rss2, fds2, thr2 int
	for range 100 {
		if rss2, fds2, thr2 = procStatus(t, pid); fds2 <= fds0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d VMs: created and started in %v (%v each), listed in %v, deleted in %v", n, made.Round(time.Millisecond),
		(made / n).Round(time.Microsecond), listed.Round(time.Millisecond), deleted.Round(time.Millisecond))
	t.Logf("daemon RSS %d MiB before, %d MiB with %d VMs, %d MiB after; fds %d, %d, %d; threads %d, %d, %d",
		rss0>>10, rss1>>10, n, rss2>>10, fds0, fds1, fds2, thr0, thr1, thr2)
	if fds2 > fds0 {
		t.Errorf("%d fds open after deleting every VM, %d before: leaked", fds2, fds0)
	}
	if fds1 < fds0+n {
		t.Errorf("%d fds with %d VMs, %d before: the VMs cannot all be there", fds1, n, fds0)
	}
	if thr2 > thr0+16 {
		t.Errorf("%d threads after deleting every VM, %d before: the vCPU threads stayed", thr2, thr0)
	}
	if rss2 > rss0+256<<10 {
		t.Errorf("RSS %d MiB after deleting every VM, %d MiB before", rss2>>10, rss0>>10)
	}
}

// BenchmarkDaemonStart measures what a user of the API waits for, from
// POST /v1/vms (create and start the demo) to the guest's first console
// byte, against `ember run`'s own start to its first byte, and reports the
// ratio. Both are the test binary as ember, so neither pays a build.
func BenchmarkDaemonStart(b *testing.B) {
	d := startDaemon(b)
	ctx := context.Background()
	var viaAPI, run time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		id := fmt.Sprintf("b%d", i)
		if _, err := d.c.Create(ctx, api.CreateRequest{ID: id, Config: machine.Config{}, Start: true}); err != nil {
			b.Fatal(err)
		}
		con, err := d.c.Console(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		one := make([]byte, 1)
		if _, err := io.ReadFull(con, one); err != nil {
			b.Fatal(err)
		}
		viaAPI += time.Since(t0)
		con.Close()
		d.c.Delete(ctx, id)

		t0 = time.Now()
		cmd := exec.Command(os.Args[0], "run", "-q")
		cmd.Env = append(os.Environ(), asEmberEnv+"=1")
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(out, one); err != nil {
			b.Fatal(err)
		}
		run += time.Since(t0)
		io.Copy(io.Discard, out)
		cmd.Wait()
	}
	b.ReportMetric(float64(viaAPI.Microseconds())/float64(b.N), "api-µs/op")
	b.ReportMetric(float64(run.Microseconds())/float64(b.N), "run-µs/op")
	b.ReportMetric(float64(viaAPI)/float64(run), "api/run")
}

// dyingHandler answers its first serve requests, then holds the next one:
// it says so on held and keeps it until release is closed, so the device
// model can die with a request of the guest's in its hands.
type dyingHandler struct {
	serve   int64
	n       atomic.Int64
	held    chan struct{}
	release chan struct{}
}

func (h *dyingHandler) HandleIORequest(*iorequest.IORequest) {
	if h.n.Add(1) == h.serve+1 {
		close(h.held)
		<-h.release
	}
}

// TestDaemonDeviceModelDies: a VM's out-of-process device model serves the
// guest's port writes through the VM's device-model socket, then dies with
// one of them in its hands; the daemon disconnects it, the guest's remaining
// accesses go unclaimed and it runs to its end, and the daemon and a
// neighbour VM never notice.
func TestDaemonDeviceModelDies(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	dir := t.TempDir()
	// 4000 port writes: the device model serves 1000, dies with the next,
	// and 2999 go unclaimed. (Each write exits; the guest's run is kept
	// short, since the lab's software SVM now and then sends a guest that
	// exits tens of thousands of times astray: README, the lab's quirks.)
	if err := writeBenchImages(io.Discard, dir, 4000); err != nil {
		t.Fatal(err)
	}
	if _, err := d.c.Create(ctx, api.CreateRequest{ID: "neighbour", Config: machine.Config{Guest: "echo"}, Start: true}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "dm.sock")
	if _, err := d.c.Create(ctx, api.CreateRequest{ID: "dm", Config: machine.Config{BIOS: filepath.Join(dir, "bench_pio.rom"), DeviceModelSocket: sock}}); err != nil {
		t.Fatal(err)
	}
	dm, err := devicemodel.Dial(sock, "dying")
	if err != nil {
		t.Fatal(err)
	}
	// Closed by the test below; this is for a failure before it.
	t.Cleanup(func() { dm.Close() })
	const benchPort = 0x4f0 // guest/src/bench_pio.S's PORT_BENCH
	if err := dm.Claim(ioreq.Range{Type: iorequest.ReqPortIO, Start: benchPort, End: benchPort}); err != nil {
		t.Fatal(err)
	}
	if err := dm.Attach(); err != nil {
		t.Fatal(err)
	}
	h := &dyingHandler{serve: 1000, held: make(chan struct{}), release: make(chan struct{})}
	served := make(chan struct{})
	go func() { dm.Serve(h); close(served) }()
	if _, err := d.c.Action(ctx, "dm", "start"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.held:
	case <-time.After(time.Minute):
		t.Fatalf("the device model served %d requests in a minute", h.n.Load())
	}
	dm.Close() // the device model dies mid-request
	close(h.release)
	select {
	case <-served:
	case <-time.After(time.Minute):
		t.Error("the device model's Serve went on a minute after Close")
	}
	var v api.VM
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if v, err = d.c.Get(ctx, "dm"); err != nil {
			t.Fatalf("the daemon after its device model died: %v", err)
		}
		if v.State == api.StateStopped || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v.LastStop == nil || v.LastStop.Reason != "exit" || v.LastStop.Status != 0 {
		t.Errorf("the VM whose device model died: %s, last stop %+v", v.State, v.LastStop)
		d.explainStuck(t, "dm")
		return
	}
	var n uint64
	for client, c := range v.Counters.IORequests {
		if strings.HasPrefix(client, "dying") { // the device model's name, numbered by the server
			n += c
		}
	}
	if n < 1001 {
		t.Errorf("the VM's counters show %d requests to its device model, want 1001 (1000 served, 1 in its hands): %v", n, v.Counters.IORequests)
	}
	if nb, err := d.c.Get(ctx, "neighbour"); err != nil || nb.State != api.StateRunning {
		t.Errorf("the neighbour: %+v, %v", nb, err)
	}
}

// TestDaemonShowsDeviceCounters: a VM the API built shows each of its
// disks served in ember's process in its counters, by its place in the
// configuration and its path, with its totals (zero: the tiny guest has
// no virtio driver; the device's own tests count requests), in the
// metrics and in its state report, and they stay readable once the VM has
// stopped.
func TestDaemonShowsDeviceCounters(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := machine.Config{Disks: []machine.Disk{{Path: img, ReadOnly: true}}}
	ev := watchEvents(t, d.c)
	if _, err := d.c.Create(ctx, api.CreateRequest{ID: "disked", Config: cfg, Start: true}); err != nil {
		t.Fatal(err)
	}
	ev.await(t, "disked", api.EventStopped)
	v, err := d.c.Get(ctx, "disked")
	if err != nil {
		t.Fatal(err)
	}
	want := []api.DiskCounters{{Index: 0, Path: img}}
	if !reflect.DeepEqual(v.Counters.Disks, want) || len(v.Counters.Nets) != 0 {
		t.Fatalf("the stopped VM's device counters: disks %+v, nets %+v; want disks %+v", v.Counters.Disks, v.Counters.Nets, want)
	}
	if m, err := d.c.Metrics(ctx); err != nil || !strings.Contains(m, `ember_vm_disk_requests_total{vm="disked",disk="0",type="read"} 0`) {
		t.Errorf("the metrics lack the disk's reads (%v):\n%s", err, m)
	}
	if s, err := d.c.State(ctx, "disked"); err != nil || !strings.Contains(s, "disk 0: 0 reads (0 bytes), 0 writes") {
		t.Errorf("the state report lacks the disk's totals (%v):\n%s", err, s)
	}
}
