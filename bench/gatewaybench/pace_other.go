//go:build !linux

package main

import "time"

// exactSleeper is Linux only (see pace_linux.go); run refuses -pace exact
// elsewhere.
func exactSleeper() func(time.Time) { return timerSleep }

// exactPacing reports whether -pace exact is available here.
const exactPacing = false
