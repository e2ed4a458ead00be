package main

import (
	"context"
	"io"
)

// The subcommands as the binary runs them, for tests.

func runStatus(args []string, stdout, stderr io.Writer) int {
	return run(context.Background(), append([]string{"status"}, args...), stdout, stderr)
}

func runPrestop(args []string, stdout, stderr io.Writer) int {
	return run(context.Background(), append([]string{"prestop"}, args...), stdout, stderr)
}
