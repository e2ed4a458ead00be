package admin

import (
	"io/fs"
	"net/http"
	"strings"
	"testing"
)

// The console's assets are served from the embedded files with their content types and
// the console's headers, and need no token even when both roles are configured; the API
// they call still does.
func TestUIServesAssetsWithoutToken(t *testing.T) {
	f := newFixture(t, func(c *Config, n *fakeNode) Node { c.ReadToken = "reader"; return n })
	if rec := f.do("GET", "/v1/status", "", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("the API without a token: %d, want 401", rec.Code)
	}
	rec := f.do("GET", PathUI, "", "")
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != PathUI+"/" {
		t.Fatalf("GET /ui: %d Location %q", rec.Code, rec.Header().Get("Location"))
	}
	for path, want := range map[string]struct{ ctype, body string }{
		"/ui/":          {"text/html; charset=utf-8", `<script src="app.js" defer></script>`},
		"/ui/app.js":    {"text/javascript; charset=utf-8", `"use strict";`},
		"/ui/style.css": {"text/css; charset=utf-8", ":root"},
	} {
		rec := f.do("GET", path, "", "")
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, rec.Code, rec.Body)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != want.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, want.ctype)
		}
		if !strings.Contains(rec.Body.String(), want.body) {
			t.Errorf("GET %s: body lacks %q", path, want.body)
		}
		h := rec.Header()
		if h.Get("Content-Security-Policy") != uiCSP || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: headers %v", path, h)
		}
	}
	if rec := f.do("GET", "/ui/nope.js", "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /ui/nope.js: %d", rec.Code)
	}
	if rec := f.do("POST", "/ui/", "", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d", rec.Code)
	}
}

// The console works offline: no asset refers to another origin, and the page runs no
// inline script (the CSP forbids it).
func TestUIAssetsAreSelfContained(t *testing.T) {
	err := fs.WalkDir(uiAssets, "ui", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(uiAssets, path)
		if err != nil {
			return err
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "innerHTML", "eval("} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q", path, bad)
			}
		}
		if strings.HasSuffix(path, ".html") && (strings.Contains(string(b), "<script>") || strings.Contains(string(b), "onclick=")) {
			t.Errorf("%s has an inline script", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
