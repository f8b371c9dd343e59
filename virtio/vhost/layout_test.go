package vhost

import (
	"fmt"
	"testing"
	"unsafe"

	"ember/internal/cheader"
)

// TestLayoutMatchesKernelHeaders compiles a C program against the host's
// <linux/vhost.h> and compares every request number, struct size and field
// offset this package mirrors with the kernel's.
func TestLayoutMatchesKernelHeaders(t *testing.T) {
	want := map[string]uint64{
		"VHOST_GET_FEATURES":                 uint64(reqGetFeatures),
		"VHOST_SET_FEATURES":                 uint64(reqSetFeatures),
		"VHOST_SET_OWNER":                    uint64(reqSetOwner),
		"VHOST_SET_MEM_TABLE":                uint64(reqSetMemTable),
		"VHOST_SET_VRING_NUM":                uint64(reqSetVringNum),
		"VHOST_SET_VRING_ADDR":               uint64(reqSetVringAddr),
		"VHOST_SET_VRING_BASE":               uint64(reqSetVringBase),
		"VHOST_GET_VRING_BASE":               uint64(reqGetVringBase),
		"VHOST_SET_VRING_KICK":               uint64(reqSetVringKick),
		"VHOST_SET_VRING_CALL":               uint64(reqSetVringCall),
		"VHOST_SET_VRING_ERR":                uint64(reqSetVringErr),
		"VHOST_NET_SET_BACKEND":              uint64(reqNetSetBack),
		"1ULL << VHOST_F_LOG_ALL":            FeatureLogAll,
		"1ULL << VHOST_NET_F_VIRTIO_NET_HDR": FeatureNetHeader,
	}
	structs := []struct {
		c      string
		size   uintptr
		fields map[string]uintptr
	}{
		{"vhost_vring_state", unsafe.Sizeof(VringState{}), map[string]uintptr{
			"index": unsafe.Offsetof(VringState{}.Index), "num": unsafe.Offsetof(VringState{}.Num)}},
		{"vhost_vring_file", unsafe.Sizeof(VringFile{}), map[string]uintptr{
			"index": unsafe.Offsetof(VringFile{}.Index), "fd": unsafe.Offsetof(VringFile{}.FD)}},
		{"vhost_vring_addr", unsafe.Sizeof(VringAddr{}), map[string]uintptr{
			"index": unsafe.Offsetof(VringAddr{}.Index), "flags": unsafe.Offsetof(VringAddr{}.Flags),
			"desc_user_addr": unsafe.Offsetof(VringAddr{}.DescUser), "used_user_addr": unsafe.Offsetof(VringAddr{}.UsedUser),
			"avail_user_addr": unsafe.Offsetof(VringAddr{}.AvailUser), "log_guest_addr": unsafe.Offsetof(VringAddr{}.LogGuest)}},
		{"vhost_memory", unsafe.Sizeof(memoryHeader{}), map[string]uintptr{"nregions": 0}},
		{"vhost_memory_region", unsafe.Sizeof(MemoryRegion{}), map[string]uintptr{
			"guest_phys_addr": unsafe.Offsetof(MemoryRegion{}.GuestPhys), "memory_size": unsafe.Offsetof(MemoryRegion{}.Size),
			"userspace_addr": unsafe.Offsetof(MemoryRegion{}.User)}},
	}
	for _, s := range structs {
		want[fmt.Sprintf("sizeof(struct %s)", s.c)] = uint64(s.size)
		for f, off := range s.fields {
			want[fmt.Sprintf("offsetof(struct %s, %s)", s.c, f)] = uint64(off)
		}
	}
	exprs := make([]string, 0, len(want))
	for e := range want {
		exprs = append(exprs, e)
	}
	got := cheader.Values(t, "linux/vhost.h", exprs)
	for e, w := range want {
		if g, ok := got[e]; !ok || g != w {
			t.Errorf("%s = %#x in C (printed: %v), %#x in Go", e, g, ok, w)
		}
	}
}
