package main

import (
	"github.com/spf13/cobra"

	"github.com/shardmatch/shardmatch/cmd/internal/cli"
)

func versionString() string { return cli.ReadBuildInfo("coordinator").String() }

func newVersionCmd() *cobra.Command { return cli.NewVersionCmd("coordinator") }
