package net

import "runtime"

// The tests count the device's named threads. Go hands its idle main
// thread to a new locked goroutine as readily as any other, and there a
// device's thread keeps the process's name (threadname.Set), so the test
// binary's main goroutine keeps the main thread to itself.
func init() { runtime.LockOSThread() }
