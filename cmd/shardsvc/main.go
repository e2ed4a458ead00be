// Command shardsvc runs the reference shard server as its own process: a
// shardsvc.World of simulated players behind a twophase.Participant with a bbolt
// journal, serving the coordinator's commands over NATS JetStream, with an optional
// load driver that proposes cross-shard matches through the client SDK.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
