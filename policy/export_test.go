package policy

// SetTestHooks installs the package's test hooks and returns a function that
// removes them. evalStarted runs once an evaluation has picked its bundle
// version; polled runs after every poll of Watch. Either may be nil.
func SetTestHooks(evalStarted func(revision string), polled func()) (restore func()) {
	testHookEvalStarted, testHookPolled = evalStarted, polled
	return func() { testHookEvalStarted, testHookPolled = nil, nil }
}
