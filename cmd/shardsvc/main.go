// Command shardsvc will run the reference shard server (a shardsvc.World behind the
// participant SDK) as its own process over the NATS transport. Until that transport
// lands it only says so; `coordinator dev` runs the same shard logic in-process.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "shardsvc: the networked shard server arrives with the NATS transport; "+
		"until then run `coordinator dev`, which runs the same simulated shards in-process")
	os.Exit(2)
}
