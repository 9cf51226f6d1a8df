package main

import (
	"runtime"
	"syscall"
	"time"
)

// prSetTimerSlack is prctl's PR_SET_TIMERSLACK.
const prSetTimerSlack = 29

// exactSleeper returns a sleep for -pace exact: nanosleep on a thread of
// its own, with the kernel's timer slack cut from 50 µs to 1 µs, so each
// request leaves within microseconds of its time. It locks the calling
// goroutine to its thread and never unlocks it: that goroutine must end
// when the loop does, which ends the thread and its changed slack with it.
func exactSleeper() func(time.Time) {
	runtime.LockOSThread()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, uintptr(time.Microsecond), 0)
	return func(at time.Time) {
		for {
			w := time.Until(at)
			if w <= 0 {
				return
			}
			ts := syscall.NsecToTimespec(int64(w))
			_ = syscall.Nanosleep(&ts, nil) // interrupted by the runtime's signals: sleep on
		}
	}
}

// exactPacing reports whether -pace exact is available here.
const exactPacing = true
