package image_test

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// lastStage parses a Dockerfile into its instructions (continuation lines
// joined, comments dropped) and returns those of the last stage.
func lastStage(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		all = append(all, strings.Join(strings.Fields(cur), " "))
		cur = ""
	}
	last := -1
	for i, in := range all {
		if strings.HasPrefix(in, "FROM ") {
			last = i
		}
	}
	if last < 0 {
		t.Fatalf("%s: no FROM", name)
	}
	return all[last:]
}

// TestFinalStagesAgree keeps the registry build (Dockerfile) and the offline
// build (Dockerfile.prebuilt) producing the same image: FROM scratch, the same
// user, environment, working directory, labels and command, and the same
// destinations copied.
func TestFinalStagesAgree(t *testing.T) {
	norm := func(ins []string) []string {
		var out []string
		for _, in := range ins {
			// COPY sources differ (a stage vs the context); destinations and
			// ownership must not.
			if f := strings.Fields(in); f[0] == "COPY" {
				var flags []string
				for _, x := range f[1:] {
					if strings.HasPrefix(x, "--chown=") {
						flags = append(flags, x)
					}
				}
				in = "COPY " + strings.Join(flags, " ") + " -> " + f[len(f)-1]
			}
			out = append(out, in)
		}
		return out
	}
	full, pre := norm(lastStage(t, "Dockerfile")), norm(lastStage(t, "Dockerfile.prebuilt"))
	if !slices.Equal(full, pre) {
		t.Fatalf("final stages differ:\nDockerfile:\n  %s\nDockerfile.prebuilt:\n  %s",
			strings.Join(full, "\n  "), strings.Join(pre, "\n  "))
	}
	for _, want := range []string{"FROM scratch", "USER 65532:65532", "ENV PATH=/usr/local/bin", "WORKDIR /var/lib/shardmatch"} {
		if !slices.Contains(full, want) {
			t.Errorf("final stage lacks %q", want)
		}
	}
	for _, in := range full {
		if strings.HasPrefix(in, "ENTRYPOINT") || (strings.HasPrefix(in, "CMD") && !strings.HasPrefix(in, "CMD [")) {
			t.Errorf("%q: the image has no shell; use the exec (JSON) form", in)
		}
	}
	labels := strings.Join(full, " ")
	for _, l := range []string{"title", "description", "source", "version", "revision", "created"} {
		if !strings.Contains(labels, "org.opencontainers.image."+l+"=") {
			t.Errorf("no org.opencontainers.image.%s label", l)
		}
	}
}

// stampVar is the variable both binaries report as their version.
const stampVar = "github.com/shardmatch/shardmatch/cmd/internal/cli.Version"

// TestVersionIsStamped checks that what the builds pass to -X exists: the
// linker silently ignores -X of an unknown name.
func TestVersionIsStamped(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "cmd", "internal", "cli", "version.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^var Version = ""`).Match(src) {
		t.Fatal(`cmd/internal/cli/version.go has no "var Version" for -X ` + stampVar)
	}
	for _, f := range []string{"Dockerfile", "build.sh"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if strings.Count(s, "-X "+stampVar+"=") != 2 || !strings.Contains(s, "CGO_ENABLED=0") || !strings.Contains(s, "-trimpath") {
			t.Errorf("%s: want static (CGO_ENABLED=0), -trimpath builds of both binaries stamped with -X %s", f, stampVar)
		}
	}
	passwd, err := os.ReadFile(filepath.Join("rootfs", "etc", "passwd"))
	if err != nil || !strings.Contains(string(passwd), ":65532:65532:") {
		t.Fatalf("rootfs/etc/passwd names no uid 65532: %v", err)
	}
}

// TestBuildOffline runs build.sh and inspects the OCI archive it writes. It
// builds both binaries (minutes on a loaded 2-core machine), so it runs only
// with SHARDMATCH_IMAGE_BUILD=1 and buildah installed.
func TestBuildOffline(t *testing.T) {
	if os.Getenv("SHARDMATCH_IMAGE_BUILD") != "1" {
		t.Skip("set SHARDMATCH_IMAGE_BUILD=1 to build the image (needs buildah)")
	}
	if _, err := exec.LookPath("buildah"); err != nil {
		t.Skip("buildah not installed")
	}
	out := filepath.Join(t.TempDir(), "image.tar")
	const image = "localhost/shardmatch:test"
	cmd := exec.Command("./build.sh", "--no-load")
	cmd.Env = append(os.Environ(), "OUT="+out, "IMAGE="+image, "VERSION=v0.0.0-test")
	t.Cleanup(func() { _ = exec.Command("buildah", "rmi", image).Run() }) // buildah keeps it in its storage
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	blobs := readOCI(t, out)
	var index struct{ Manifests []struct{ Digest string } }
	mustJSON(t, blobs["index.json"], &index)
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	mustJSON(t, blobs[index.Manifests[0].Digest], &manifest)
	var config struct {
		Config struct {
			User   string
			Cmd    []string
			Labels map[string]string
		}
	}
	mustJSON(t, blobs[manifest.Config.Digest], &config)
	if c := config.Config; c.User != "65532:65532" || c.Labels["org.opencontainers.image.version"] != "v0.0.0-test" {
		t.Fatalf("config: %+v", c)
	}
	owners := map[string]string{}
	for _, l := range manifest.Layers {
		zr, err := gzip.NewReader(strings.NewReader(string(blobs[l.Digest])))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			owners[strings.TrimSuffix(h.Name, "/")] = h.FileInfo().Mode().String() + " " + strconv.Itoa(h.Uid)
		}
	}
	for name, want := range map[string]string{
		"usr/local/bin/coordinator": "-rwxr-xr-x 0",
		"usr/local/bin/shardsvc":    "-rwxr-xr-x 0",
		"var/lib/shardmatch":        "drwxr-x--- 65532",
		"tmp":                       "dtrwxrwxrwx 0",
	} {
		if owners[name] != want {
			t.Errorf("%s: %q, want %q", name, owners[name], want)
		}
	}
	for name := range owners {
		if strings.HasPrefix(name, "bin/") || name == "bin/sh" {
			t.Errorf("image has %s: want no shell", name)
		}
	}
}

// readOCI returns an oci-archive's index.json and blobs (by "sha256:..." digest).
func readOCI(t *testing.T, name string) map[string][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.TrimPrefix(h.Name, "./"); n == "index.json" {
			out[n] = b
		} else if strings.HasPrefix(n, "blobs/sha256/") {
			out["sha256:"+strings.TrimPrefix(n, "blobs/sha256/")] = b
		}
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %.200s", err, b)
	}
}
