// Package testutil holds the small helpers every package's tests share: polling a
// condition until it holds (WaitFor, WaitUntil, WaitUntilEvery) instead of sleeping
// for a guessed time (CONVENTIONS: poll, don't sleep).
//
// What this package must never do:
//   - be imported by anything but _test.go files and test-support packages;
//   - import anything but the standard library: it sits under internal/, which is
//     leaf plumbing, and every package's tests use it.
package testutil
