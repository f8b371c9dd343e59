package main

import (
	"strings"
	"testing"
)

// TestNetSubjectsQueues: with --queues N every subject's guest gets N
// queue pairs — ember's --net with queues=N, QEMU's -netdev tap with
// queues=N and its virtio-net-pci with mq=on and a vector a queue, plus
// two; ember once more with a thread a pair — and with one, the subjects
// ask for no more than one.
func TestNetSubjectsQueues(t *testing.T) {
	for _, tc := range []struct {
		queues int
		want   map[string]string // the option each subject's flag must end its value with
	}{
		{1, map[string]string{"--net": "", "-netdev": "", "-device": ""}},
		{2, map[string]string{"--net": ",queues=2", "-netdev": ",queues=2", "-device": ",mq=on,vectors=6"}},
	} {
		for _, s := range netSubjects("/e/ember", "k", "i", tc.queues) {
			if strings.HasPrefix(s.name, "ember threads=") {
				if v, want := argAfter(s.argv, "--net"), ",queues=2,threads=2"; tc.queues != 2 || !strings.HasSuffix(v, want) {
					t.Errorf("queues %d, %s: --net %q, want it to end %q", tc.queues, s.name, v, want)
				}
				continue
			}
			flags := []string{"--net"}
			if isBaseline(s) {
				flags = []string{"-netdev", "-device"}
			}
			for _, flag := range flags {
				v := argAfter(s.argv, flag)
				switch want := tc.want[flag]; {
				case v == "":
					t.Errorf("queues %d, %s: no %s", tc.queues, s.name, flag)
				case want != "" && !strings.HasSuffix(v, want):
					t.Errorf("queues %d, %s: %s %q, want it to end %q", tc.queues, s.name, flag, v, want)
				case want == "" && (strings.Contains(v, "queues=") || strings.Contains(v, "mq=")):
					t.Errorf("queues %d, %s: %s %q asks for several queue pairs", tc.queues, s.name, flag, v)
				}
			}
		}
	}
}

// argAfter returns the argument after flag in argv, or "".
func argAfter(argv []string, flag string) string {
	for i, a := range argv {
		if a == flag && i+1 < len(argv) {
			return argv[i+1]
		}
	}
	return ""
}
