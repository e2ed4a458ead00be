package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Bad `coordinator nats` input ends with exit code 2 and one line naming the flag,
// before any server starts.
func TestNatsFlagErrors(t *testing.T) {
	dir := t.TempDir()
	store := []string{"nats", "--store", dir}
	auth := writeFile(t, dir, "routes.auth", "route:s3cret\n")
	// Clipped, so that every case's append copies.
	cluster := slices.Clip(append(slices.Clone(store), "--name", "n0", "--cluster-addr", "127.0.0.1:6222", "--cluster-auth-file", auth))
	noAuth := slices.Clip(append(slices.Clone(store), "--name", "n0", "--cluster-addr", "127.0.0.1:6222", "--routes", "nats://a:6222"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nats"}, "--store is required"},
		{append(store, "--addr", "localhost"), `--addr "localhost" is not host:port`},
		{append(store, "--addr", "h:70000"), `--addr "h:70000" is not host:port`},
		{append(store, "--monitor-addr", "h:x"), `--monitor-addr "h:x" is not host:port`},
		{append(store, "--cluster-addr", "127.0.0.1:6222"), "--cluster-addr needs --routes"},
		{append(store, "--routes", "nats://a:6222"), "--routes needs --cluster-addr"},
		{append(store, "--cluster-addr", "h:6222", "--routes", "nats://a:6222"), "--routes needs --name"},
		{append(cluster, "--cluster-addr", "h", "--routes", "nats://a:6222"), `--cluster-addr "h" is not host:port`},
		{append(cluster, "--routes", "nats://a:6222", "--cluster-name", ""), "--cluster-name is empty"},
		{append(cluster, "--routes", "nats://a:6222", "--cluster-name", "my cluster"), `--cluster-name "my cluster" contains white space`},
		{append(cluster, "--routes", "a:6222"), `--routes: route "a:6222": want nats://host:port`},
		{append(cluster, "--routes", "nats://a:6222,,nats://b:6222"), "--routes: route list"},
		{append(cluster, "--routes", "nats://a"), `--routes: route "nats://a" needs a port`},
		{append(cluster, "--routes", "nats://a:1", "--name", "n 0"), `--name "n 0" contains white space`},
		{append(store, "--name", "n 0"), `--name "n 0" contains white space`},
		{append(store, "extra"), `unexpected argument "extra"`},
		// Route credentials.
		{noAuth, "--routes needs --cluster-auth-file (route credentials, user:password; " +
			"without them anyone who reaches --cluster-addr joins the cluster), or --cluster-insecure to run so knowingly"},
		{append(cluster, "--routes", "nats://a:6222", "--cluster-insecure"), "--cluster-auth-file and --cluster-insecure exclude each other"},
		{append(store, "--cluster-auth-file", auth), "--cluster-auth-file needs --routes"},
		{append(store, "--cluster-insecure"), "--cluster-insecure needs --routes"},
		{append(noAuth, "--cluster-auth-file", dir+"/missing"), "--cluster-auth-file: open " + dir + "/missing"},
		{append(noAuth, "--cluster-auth-file", writeFile(t, dir, "a1", "s3cret\n")), "a1: want one line user:password"},
		{append(noAuth, "--cluster-auth-file", writeFile(t, dir, "a2", "route:\n")), "want one line user:password"},
		{append(noAuth, "--cluster-auth-file", writeFile(t, dir, "a3", ":s3cret")), "want one line user:password"},
		{append(noAuth, "--cluster-auth-file", writeFile(t, dir, "a4", "route: s3cret\n")), "white space or a control character"},
		{append(noAuth, "--cluster-auth-file", writeFile(t, dir, "a5", "route:s3cret\nother:s3cret\n")), "white space or a control character"},
		{append(noAuth, "--cluster-auth-file", writeFile(t, dir, "a6", "route:$2a$11$s3cret")), "bcrypt hash"},
		{append(cluster, "--routes", "nats://u:s3cret@a:6222"), `--routes: route "nats://u:xxxxx@a:6222" has credentials in it: put them in --cluster-auth-file`},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || stdout != "" || !strings.Contains(lines[0], tc.want) ||
			len(lines) != 2 || lines[1] != "Run 'coordinator nats --help' for usage." {
			t.Errorf("%v: exit %d, stdout %q, stderr:\n%s\nwant exit 2, one line with %q and the hint", tc.args[1:], code, stdout, stderr, tc.want)
		}
		if strings.Contains(stderr, "s3cret") {
			t.Errorf("%v: the password is in the message: %s", tc.args[1:], stderr)
		}
	}
	if code, stdout, _ := runCmd(t, "nats", "--help"); code != 0 || !strings.Contains(stdout, "--routes nats://host:port") {
		t.Errorf("--help: exit %d:\n%s", code, stdout)
	}
}

// Good flags become the embedded server's configuration: port 0 is any free port,
// the routes are parsed, and an unclustered server keeps the default name.
func TestNatsFlagsToConfig(t *testing.T) {
	parse := func(args ...string) *natsFlags {
		t.Helper()
		fs := flag.NewFlagSet("nats", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var f natsFlags
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		fs.Visit(func(fl *flag.Flag) { f.nameSet = f.nameSet || fl.Name == "name" })
		return &f
	}
	cfg, err := parse("--store", "d", "--addr", ":0", "--monitor-addr", "0.0.0.0:8222").embeddedConfig()
	if err != nil || cfg.Host != "" || cfg.Port != -1 || cfg.MonitorHost != "0.0.0.0" || cfg.MonitorPort != 8222 ||
		cfg.ServerName != "shardmatch-nats" || len(cfg.Cluster.Routes) != 0 {
		t.Fatalf("single server: %+v, %v", cfg, err)
	}
	auth := writeFile(t, t.TempDir(), "routes.auth", "route:pa:ss%word\r\n")
	cfg, err = parse("--store", "d", "--addr", "0.0.0.0:4222", "--name", "nats-1", "--cluster-addr", "0.0.0.0:6222",
		"--cluster-auth-file", auth, "--routes", "nats://nats-0.h:6222, nats://nats-1.h:6222,nats://nats-2.h:6222").embeddedConfig()
	c := cfg.Cluster
	if err != nil || cfg.ServerName != "nats-1" || c.Name != "shardmatch" || c.Host != "0.0.0.0" || c.Port != 6222 ||
		len(c.Routes) != 3 || c.Routes[1].Host != "nats-1.h:6222" || c.Username != "route" || c.Password != "pa:ss%word" {
		t.Fatalf("cluster: %+v, %v", cfg, err)
	}
	// Without credentials, only knowingly.
	f := parse("--store", "d", "--name", "nats-1", "--cluster-addr", ":6222", "--routes", "nats://nats-0.h:6222")
	if _, err := f.embeddedConfig(); !errors.Is(err, errRoutesUnauthenticated) {
		t.Fatalf("no route credentials: %v, want errRoutesUnauthenticated", err)
	}
	f.clusterInsecure = true
	if cfg, err := f.embeddedConfig(); err != nil || len(cfg.Cluster.Routes) != 1 || cfg.Cluster.Username != "" || cfg.Cluster.Password != "" {
		t.Fatalf("--cluster-insecure: %+v, %v", cfg, err)
	}
}

// writeFile writes content to dir/name (mode 0600) and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
