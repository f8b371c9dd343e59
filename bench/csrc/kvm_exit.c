/*
 * kvm_exit.c: the physical limit for an exit round trip on this host. A
 * raw-ioctl KVM loop with nothing in it that a VMM could leave out: one VM,
 * one 2 MiB memory slot, one vCPU started in real mode at F000:FFF0 on a
 * 64 KiB reset-vector image loaded at 0xF0000 (the same bytes ember and QEMU
 * run), KVM_RUN in a loop that counts port and MMIO exits and stops at a
 * write to port 0xf4.
 *
 *   kvm_exit IMAGE       prints "exits=E ns=T status=S", T the nanoseconds
 *                        from the first KVM_RUN to the exit-port write
 *
 * Built by package bench with gcc; part of ember's benchmark harness.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE   (2u << 20)
#define IMAGE_BASE 0xf0000u
#define IMAGE_SIZE 0x10000u
#define PORT_EXIT  0xf4

static void die(const char *what)
{
	fprintf(stderr, "kvm_exit: %s: %s\n", what, strerror(errno));
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: kvm_exit IMAGE\n");
		return 2;
	}
	int img = open(argv[1], O_RDONLY);
	if (img < 0)
		die(argv[1]);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
		die("KVM_SET_TSS_ADDR");

	uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap guest memory");
	ssize_t n = read(img, mem + IMAGE_BASE, IMAGE_SIZE);
	if (n != IMAGE_SIZE) {
		fprintf(stderr, "kvm_exit: %s: want a %u-byte image\n", argv[1], IMAGE_SIZE);
		return 2;
	}
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");

	/* Real mode at the reset vector: CS 0xf000 with base 0xf0000, IP 0xfff0. */
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	sregs.cs.selector = 0xf000;
	sregs.cs.base = 0xf0000;
	struct kvm_segment *data[] = {&sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss};
	for (unsigned i = 0; i < sizeof data / sizeof data[0]; i++) {
		data[i]->selector = 0;
		data[i]->base = 0;
	}
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS");
	struct kvm_regs regs = {.rip = 0xfff0, .rflags = 0x2, .rsp = 0x8000};
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");

	uint64_t exits = 0, start = now_ns();
	int status = -1;
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN");
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == PORT_EXIT) {
				status = ((uint8_t *)run)[run->io.data_offset];
				goto done;
			}
			if (run->io.direction == KVM_EXIT_IO_IN)
				memset((uint8_t *)run + run->io.data_offset, 0xff,
				       (size_t)run->io.size * run->io.count);
			exits++;
			break;
		case KVM_EXIT_MMIO:
			if (!run->mmio.is_write)
				memset(run->mmio.data, 0xff, sizeof run->mmio.data);
			exits++;
			break;
		default:
			fprintf(stderr, "kvm_exit: unexpected exit reason %u after %llu exits\n",
				run->exit_reason, (unsigned long long)exits);
			return 1;
		}
	}
done:
	printf("exits=%llu ns=%llu status=%d\n", (unsigned long long)exits,
	       (unsigned long long)(now_ns() - start), status);
	return 0;
}
