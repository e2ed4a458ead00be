// Package inject is the client of the fault-injection endpoints that `coordinator
// serve` and `shardsvc` serve when started with --enable-fault-injection (docs/chaos.md):
// it steps and skews a process's clock and sets the share of messages its
// transport duplicates and reorders.
//
// Clock faults reach a Go process only this way: every component of a shardmatch
// process reads one skewable clock (clock.Skewed), and libfaketime cannot
// reach Go's time.Now. A process started without --enable-fault-injection answers 404,
// which the client reports as ErrNotEnabled.
//
// What it must never do: retry a call on its own (a clock step is absolute, but the
// caller decides when a fault starts and ends), or talk to anything but the admin API
// it is pointed at.
package inject
