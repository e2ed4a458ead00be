// Package workload is the chaos runner's client side: the proposers and match hosts
// whose every call goes into the run's history with its invocation and return times
// on the runner's reference clock.
//
// It drives load with the reference shard server's load driver (shardsvc.LoadGen) and
// puts a Recording proposer between the driver and the coordinator client, so that
// the history holds exactly what the coordinator told its callers. It never decides
// whether a run is correct: that is chaos/history's job.
package workload
