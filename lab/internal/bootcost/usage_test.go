package bootcost

import (
	"os/exec"
	"strings"
	"testing"
)

// A boot's usage is its VMM's, counted once the process has been waited for.
func TestUsageCountsAnEndedChild(t *testing.T) {
	before := ReadUsage()
	if err := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done").Run(); err != nil {
		t.Fatal(err)
	}
	got := ReadUsage().Since(before)
	if cpu := got[UsageMeasures[0]]; cpu <= 0 || cpu > 60 {
		t.Errorf("the child's CPU time: %v s; want a count above 0 (it looped 200,000 times)", cpu)
	}
	if sw := got[UsageMeasures[1]]; sw < 0 {
		t.Errorf("context switches %v thousand; want none negative", sw)
	}
	line := Line(got)
	if !strings.HasPrefix(line, "vmm cpu (s) ") || strings.Contains(line, "kvm") {
		t.Errorf("Line = %q; want the usage only, with no KVM counters read", line)
	}
}
